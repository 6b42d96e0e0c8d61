/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The control plane's listeners and its thread: one request per connection,
 * the control socket's (root only, checked with SO_PEERCRED) run as commands
 * (commands.c), the HTTP listener's answered with the metrics.
 */
#include "config.h"
#include "control.h"
#include "commands.h"
#include "http.h"
#include "jobs.h"
#include "report.h"
#include "common/clock.h"
#include "fscore/fs.h"
#include "common/log.h"
#include "common/mountpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REQUEST_MAX 4096
/* A request line takes at most this long to arrive: a stalled client cannot hold the thread. */
#define REQUEST_DEADLINE_MS 2000
#define WRITE_TIMEOUT_S	    2

struct lz_control {
	struct lz_fs *fs;
	struct lz_control_hooks hooks;
	struct lz_jobs *jobs; /* pin and prefetch */
	struct lz_http *http; /* the metrics listener's thread, or NULL */
	int listen_fd, stop_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
	bool running; /* the control socket's thread */
};

/* Reads one request line until LF, EOF or REQUEST_DEADLINE_MS in all. */
static ssize_t read_request(int fd, char *buf, size_t size)
{
	int64_t deadline = lz_clock_ns(CLOCK_MONOTONIC) + REQUEST_DEADLINE_MS * 1000000LL;
	size_t n = 0;

	while (n + 1 < size) {
		int64_t left_ms = (deadline - lz_clock_ns(CLOCK_MONOTONIC)) / 1000000;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0)
			break;
		ssize_t r = recv(fd, buf + n, size - 1 - n, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(buf, '\n', n) != NULL)
			break;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

/* Answers one client: false when this process hands over and ends (accept no more). */
static bool serve_control(struct lz_control *c, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char req[REQUEST_MAX], *body = NULL;
	size_t body_len = 0;
	FILE *out;
	int rc;

	/* The socket is 0600 in a 0700 directory; the peer check makes it explicit. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != 0) {
		write_all(fd, "error: root only\n", 17);
		return true;
	}
	if (read_request(fd, req, sizeof(req)) <= 0)
		return true;
	out = open_memstream(&body, &body_len);
	if (out == NULL)
		return true;
	struct lz_command_ctx cc = {
		.fs = c->fs,
		.jobs = c->jobs,
		.upgrade = c->hooks.upgrade,
		.hooks_ctx = c->hooks.ctx,
	};
	rc = lz_command_run(&cc, req, out);
	fclose(out);
	if (rc == 0) {
		write_all(fd, "ok\n", 3);
		write_all(fd, body, body_len);
	} else {
		write_all(fd, "error: ", 7);
		write_all(fd, body, body_len);
		write_all(fd, "\n", 1);
	}
	free(body);
	/* After an upgrade the process may end now. */
	return c->hooks.replied == NULL || !c->hooks.replied(c->hooks.ctx);
}

static void *control_main(void *arg)
{
	struct lz_control *c = arg;
	struct pollfd pfd[2] = {
		{ .fd = c->stop_fd, .events = POLLIN },
		{ .fd = c->listen_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (pfd[0].revents != 0)
			return NULL;
		if (!(pfd[1].revents & POLLIN))
			continue;
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct timeval tv = { .tv_sec = WRITE_TIMEOUT_S };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		bool more = serve_control(c, fd);
		close(fd);
		/*
		 * Upgraded: the listener is the new process's now. Accepting on until
		 * our exit would answer a status with this pid after it handed over;
		 * the thread waits for the stop instead (poll skips a negative fd).
		 */
		if (!more)
			pfd[1].fd = -1;
	}
}

/* A socket file left by a daemon that died: nobody answers on it. */
static bool stale(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return !live;
}

static int open_unix(struct lz_control *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char real[PATH_MAX];
	mode_t old;
	int fd;

	if (realpath(c->fs->settings->mountpoint, real) == NULL)
		return -1;
	if (mkdir(LZ_CONTROL_DIR, 0700) != 0 && errno != EEXIST) {
		lz_warn("control socket: cannot create %s: %s", LZ_CONTROL_DIR, strerror(errno));
		return -1;
	}
	lz_control_path(real, c->path, sizeof(c->path));
	if (access(c->path, F_OK) == 0) {
		if (!stale(c->path)) {
			lz_warn("control socket %s answers already (another lazyfs on %s?); none "
				"here",
				c->path, real);
			c->path[0] = '\0';
			return -1;
		}
		unlink(c->path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		umask(old);
		lz_warn("control socket %s: %s", c->path, strerror(errno));
		close(fd);
		c->path[0] = '\0';
		return -1;
	}
	umask(old);
	return fd;
}

static void lz_control_stop_free(struct lz_control *c)
{
	lz_http_stop(c->http);
	lz_jobs_free(c->jobs);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->path[0] != '\0')
		unlink(c->path);
	free(c);
}

void lz_control_stop(struct lz_control *c)
{
	uint64_t one = 1;

	if (c == NULL)
		return;
	if (c->running && write(c->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(c->thread, NULL);
	lz_control_stop_free(c);
}

void lz_control_fds(struct lz_control *c, int *listen_fd, int *http_fd, const char **path)
{
	*listen_fd = c != NULL ? c->listen_fd : -1;
	*http_fd = c != NULL ? lz_http_fd(c->http) : -1;
	*path = c != NULL && c->path[0] != '\0' ? c->path : NULL;
}

/* The metrics listener: the old daemon's (HTTP_FD) after an upgrade, else one of its own. */
static void start_http(struct lz_control *c, bool inherited, int http_fd)
{
	const char *spec = c->fs->settings->metrics;

	if (!inherited && spec != NULL) {
		http_fd = lz_http_listen(spec, c->fs->settings->metrics_remote);
		if (http_fd < 0)
			lz_warn("metrics=%s: no listener", spec);
	}
	if (http_fd >= 0 && (c->http = lz_http_start(c->fs, http_fd)) == NULL)
		lz_warn("metrics: the listener's thread cannot start");
}

static struct lz_control *start(struct lz_fs *fs, const struct lz_control_hooks *hooks,
				bool inherited, int listen_fd, int http_fd, const char *path)
{
	struct lz_control *c = calloc(1, sizeof(*c));
	sigset_t all, old;

	if (c == NULL || (c->jobs = lz_jobs_new()) == NULL) {
		free(c);
		if (listen_fd >= 0)
			close(listen_fd);
		if (http_fd >= 0)
			close(http_fd);
		return NULL;
	}
	c->fs = fs;
	if (hooks != NULL)
		c->hooks = *hooks;
	c->listen_fd = listen_fd;
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	/* A live upgrade: the same sockets, so clients never find the path missing. */
	if (inherited && path != NULL && listen_fd >= 0)
		snprintf(c->path, sizeof(c->path), "%s", path);
	if (!inherited)
		c->listen_fd = open_unix(c);
	start_http(c, inherited, http_fd);
	if (c->stop_fd < 0 || (c->listen_fd < 0 && c->http == NULL)) {
		lz_control_stop_free(c);
		return NULL;
	}
	if (c->listen_fd < 0) /* only the metrics listener */
		return c;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		lz_control_stop_free(c);
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	c->running = true;
	return c;
}

struct lz_control *lz_control_start(struct lz_fs *fs, const struct lz_control_hooks *hooks)
{
	return start(fs, hooks, false, -1, -1, NULL);
}

struct lz_control *lz_control_start_inherited(struct lz_fs *fs,
					      const struct lz_control_hooks *hooks, int listen_fd,
					      int http_fd, const char *path)
{
	return start(fs, hooks, true, listen_fd, http_fd, path);
}
