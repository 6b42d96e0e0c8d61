/*
 * The control plane's listeners and its thread: one request per connection,
 * the control socket's (root only, checked with SO_PEERCRED) run as commands
 * (commands.c), the HTTP listener's answered with the metrics.
 */
#include "config.h"
#include "control.h"
#include "commands.h"
#include "report.h"
#include "core/fs.h"
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

#define REQUEST_MAX  4096
#define IO_TIMEOUT_S 2 /* a client that stalls does not hold the control thread longer */

struct lz_control {
	struct lz_fs *fs;
	struct lz_control_hooks hooks;
	int listen_fd, http_fd, stop_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
};

/* Reads one request line (or HTTP head) until LF, EOF or the timeout. */
static ssize_t read_request(int fd, char *buf, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
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

static void serve_control(struct lz_control *c, int fd)
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
		return;
	}
	if (read_request(fd, req, sizeof(req)) <= 0)
		return;
	out = open_memstream(&body, &body_len);
	if (out == NULL)
		return;
	struct lz_command_ctx cc = {
		.fs = c->fs,
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
	if (c->hooks.replied != NULL)
		c->hooks.replied(c->hooks.ctx); /* after an upgrade, the process may end now */
}

static void serve_http(struct lz_control *c, int fd)
{
	char req[REQUEST_MAX], head[160], *body = NULL;
	size_t body_len = 0;
	FILE *out;

	if (read_request(fd, req, sizeof(req)) <= 0)
		return;
	if (strncmp(req, "GET /metrics ", 13) != 0 && strncmp(req, "GET /metrics?", 13) != 0) {
		static const char nf[] = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
					 "Content-Length: 20\r\n\r\nonly /metrics here.\n";
		write_all(fd, nf, sizeof(nf) - 1);
		return;
	}
	out = open_memstream(&body, &body_len);
	if (out == NULL)
		return;
	lz_report_metrics(c->fs, out);
	fclose(out);
	snprintf(head, sizeof(head),
		 "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
		 "Content-Length: %zu\r\n\r\n",
		 body_len);
	write_all(fd, head, strlen(head));
	write_all(fd, body, body_len);
	free(body);
}

static void *control_main(void *arg)
{
	struct lz_control *c = arg;
	struct pollfd pfd[3] = {
		{ .fd = c->stop_fd, .events = POLLIN },
		{ .fd = c->listen_fd, .events = POLLIN },
		{ .fd = c->http_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (pfd[0].revents != 0)
			return NULL;
		for (int i = 1; i < 3; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & POLLIN))
				continue;
			int fd = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			if (i == 1)
				serve_control(c, fd);
			else
				serve_http(c, fd);
			close(fd);
		}
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

/* -o metrics=ADDR:PORT, loopback only (the numbers are for this machine's collector). */
static int open_http(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char *end;
	long port;
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		return -1;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		lz_warn("metrics listener %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void lz_control_stop_free(struct lz_control *c)
{
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->http_fd >= 0)
		close(c->http_fd);
	if (c->path[0] != '\0')
		unlink(c->path);
	free(c);
}

void lz_control_stop(struct lz_control *c)
{
	uint64_t one = 1;

	if (c == NULL)
		return;
	if (write(c->stop_fd, &one, sizeof(one)) == sizeof(one))
		pthread_join(c->thread, NULL);
	lz_control_stop_free(c);
}

void lz_control_fds(struct lz_control *c, int *listen_fd, int *http_fd, const char **path)
{
	*listen_fd = c != NULL ? c->listen_fd : -1;
	*http_fd = c != NULL ? c->http_fd : -1;
	*path = c != NULL && c->path[0] != '\0' ? c->path : NULL;
}

static struct lz_control *start(struct lz_fs *fs, const struct lz_control_hooks *hooks,
				bool inherited, int listen_fd, int http_fd, const char *path)
{
	struct lz_control *c = calloc(1, sizeof(*c));
	sigset_t all, old;

	if (c == NULL) {
		if (listen_fd >= 0)
			close(listen_fd);
		if (http_fd >= 0)
			close(http_fd);
		return NULL;
	}
	c->fs = fs;
	if (hooks != NULL)
		c->hooks = *hooks;
	c->http_fd = http_fd;
	c->listen_fd = listen_fd;
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (inherited) {
		/* A live upgrade: the same sockets, so clients never find the path missing. */
		if (path != NULL && listen_fd >= 0)
			snprintf(c->path, sizeof(c->path), "%s", path);
	} else {
		c->listen_fd = open_unix(c);
		if (fs->settings->metrics != NULL) {
			c->http_fd = open_http(fs->settings->metrics);
			if (c->http_fd < 0)
				lz_warn("metrics=%s: no listener (loopback ADDR:PORT only)",
					fs->settings->metrics);
		}
	}
	if (c->stop_fd < 0 || (c->listen_fd < 0 && c->http_fd < 0)) {
		lz_control_stop_free(c);
		return NULL;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		lz_control_stop_free(c);
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
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
