/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "rclone_rcd.h"
#include "rclone_spawn.h"
#include "common/log.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A start that failed this recently is reported again rather than retried. */
#define START_RETRY_S 1.0
/* How long a stopping child gets between SIGTERM and SIGKILL. */
#define STOP_GRACE_MS 3000
#define LINE_MAX_LEN  1024

enum rcd_state { RCD_DOWN, RCD_STARTING, RCD_UP };

struct lz_rcd {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	/* Guarded by lock. */
	enum rcd_state state;
	unsigned port;
	unsigned generation; /* of the newest child */
	bool want_start, stopping, thread_started, discarded;
	pid_t pid;
	int pidfd;
	unsigned failed_gen; /* the newest child that never served, and when it ended */
	double failed_at;
	char start_error[256];

	/* The supervisor's alone. */
	pthread_t thread;
	int wake_fd;
	int err_fd; /* the child's stderr and stdout */
	double start_deadline;
	bool start_timed_out;
	char line[LINE_MAX_LEN];
	size_t line_len;
	char last_line[200]; /* for the reason a start failed */

	/* Guarded by lock: the newest child's command and credentials, new for each. */
	struct lz_rcd_cmd cmd;
	struct lz_rcd_creds creds;
	double start_timeout_s;
	struct lz_rc_log log;
};

static void poke(struct lz_rcd *rcd)
{
	uint64_t one = 1;

	if (write(rcd->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter is already non-zero: the supervisor will wake. */
	}
}

/* Hex of getrandom(2) bytes: a child's user and password, alive only in memory. */
static int random_hex(char *out, size_t bytes)
{
	unsigned char raw[32];
	size_t got = 0;

	while (got < bytes) {
		ssize_t n = getrandom(raw + got, bytes - got, 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	for (size_t i = 0; i < bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

void lz_rcd_creds_wipe(struct lz_rcd_creds *creds)
{
	explicit_bzero(creds->user, sizeof(creds->user));
	explicit_bzero(creds->pass, sizeof(creds->pass));
}

/* New credentials, given to the next child; under the lock. */
static int renew_locked(struct lz_rcd *rcd)
{
	int rc = random_hex(rcd->creds.user, 16);

	if (rc == 0)
		rc = random_hex(rcd->creds.pass, 32);
	return rc == 0 ? lz_rcd_cmd_set_creds(&rcd->cmd, rcd->creds.user, rcd->creds.pass) : rc;
}

struct lz_rcd *lz_rcd_new(const char *bin, const struct lz_rcd_how *how, double start_timeout_s,
			  const struct lz_rc_log *log, char *err, size_t errlen)
{
	struct lz_rcd *rcd = calloc(1, sizeof(*rcd));
	pthread_condattr_t attr;

	if (rcd == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&rcd->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&rcd->changed, &attr);
	pthread_condattr_destroy(&attr);
	rcd->wake_fd = rcd->err_fd = rcd->pidfd = -1;
	rcd->cmd.config_fd = -1;
	rcd->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rcd->wake_fd < 0 || random_hex(rcd->creds.user, 16) < 0 ||
	    random_hex(rcd->creds.pass, 32) < 0) {
		snprintf(err, errlen, "cannot set up the rclone child: %s", strerror(errno));
		lz_rcd_free(rcd);
		return NULL;
	}
	char why[256];
	if (lz_rcd_cmd_init(&rcd->cmd, bin, rcd->creds.user, rcd->creds.pass, how, why,
			    sizeof(why)) < 0) {
		snprintf(err, errlen, "cannot set up the rclone child: %s", why);
		lz_rcd_free(rcd);
		return NULL;
	}
	rcd->start_timeout_s = start_timeout_s;
	rcd->log = *log;
	return rcd;
}

/* The child failed to start (rcd->start_error says why): no new one for a while. */
static void start_failed(struct lz_rcd *rcd)
{
	rcd->failed_gen = rcd->generation;
	rcd->failed_at = lz_clock_s(CLOCK_MONOTONIC);
}

/* Spawns a child; called with the lock held, state DOWN. */
static void spawn(struct lz_rcd *rcd)
{
	char why[sizeof(rcd->start_error)];

	rcd->generation++;
	rcd->discarded = false;
	rcd->start_timed_out = false;
	rcd->line_len = 0;
	rcd->last_line[0] = '\0';
	/* The first child has the credentials made with the command; every later one new ones. */
	int rc = rcd->generation > 1 ? renew_locked(rcd) : 0;
	if (rc < 0)
		snprintf(why, sizeof(why), "new credentials: %s", strerror(-rc));
	if (rc < 0 ||
	    lz_rcd_spawn(&rcd->cmd, &rcd->pid, &rcd->pidfd, &rcd->err_fd, why, sizeof(why)) < 0) {
		lz_seterr(rcd->start_error, sizeof(rcd->start_error), "%s", why);
		start_failed(rcd);
		return;
	}
	rcd->state = RCD_STARTING;
	rcd->start_deadline = lz_clock_s(CLOCK_MONOTONIC) + rcd->start_timeout_s;
}

unsigned lz_rcd_serving_port(const char *line)
{
	static const char prefix[] = "Serving remote control on http://127.0.0.1:";
	const char *p = strstr(line, prefix);
	unsigned long port;
	char *end;

	if (p == NULL)
		return 0;
	p += sizeof(prefix) - 1;
	if (*p < '1' || *p > '9')
		return 0;
	errno = 0;
	port = strtoul(p, &end, 10);
	if (errno != 0 || port > 65535 || *end != '/')
		return 0;
	return (unsigned)port;
}

/* "Serving remote control on http://127.0.0.1:PORT/": the child is ready. */
static bool serving_line(struct lz_rcd *rcd, const char *line)
{
	unsigned port;

	if (rcd->state != RCD_STARTING || (port = lz_rcd_serving_port(line)) == 0)
		return false;
	pthread_mutex_lock(&rcd->lock);
	rcd->state = RCD_UP;
	rcd->port = port;
	pthread_cond_broadcast(&rcd->changed);
	pthread_mutex_unlock(&rcd->lock);
	lz_rc_logf(&rcd->log, LZ_LOG_DEBUG, "rclone rcd (pid %d) serves on 127.0.0.1:%u",
		   (int)rcd->pid, port);
	return true;
}

/* A line of rclone's log: "2024/01/02 03:04:05 LEVEL : message". */
static void on_line(struct lz_rcd *rcd, char *line)
{
	static const struct {
		const char *tag;
		enum lz_log_level level;
	} levels[] = {
		{ "CRITICAL: ", LZ_LOG_ERR }, { "ERROR : ", LZ_LOG_WARN },
		{ "NOTICE: ", LZ_LOG_INFO },  { "INFO  : ", LZ_LOG_INFO },
		{ "DEBUG : ", LZ_LOG_DEBUG },
	};
	enum lz_log_level level = LZ_LOG_INFO;
	char clean[LINE_MAX_LEN];
	const char *msg = line;

	if (line[0] == '\0' || serving_line(rcd, line))
		return;
	/* Skip the date and time. */
	if (strlen(line) > 20 && line[4] == '/' && line[7] == '/' && line[10] == ' ' &&
	    line[13] == ':' && line[19] == ' ')
		msg = line + 20;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strncmp(msg, levels[i].tag, strlen(levels[i].tag)) == 0) {
			level = levels[i].level;
			msg += strlen(levels[i].tag);
			break;
		}
	}
	/*
	 * While it serves, rclone's errors are those of our calls (a missing
	 * directory, a failing remote), which their callers report with context.
	 */
	if (level == LZ_LOG_WARN && rcd->state == RCD_UP)
		level = LZ_LOG_DEBUG;
	lz_rc_sanitize(clean, sizeof(clean), msg);
	lz_rc_sanitize(rcd->last_line, sizeof(rcd->last_line), msg);
	lz_rc_logf(&rcd->log, level, "rclone: %s", clean);
}

/* Reads what the child wrote; false at end of file. */
static bool read_output(struct lz_rcd *rcd)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(rcd->err_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && errno == EAGAIN;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || rcd->line_len == sizeof(rcd->line) - 1) {
				rcd->line[rcd->line_len] = '\0';
				on_line(rcd, rcd->line);
				rcd->line_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			rcd->line[rcd->line_len++] = buf[i];
		}
	}
}

/* The child has exited (or must be waited for): reap it and mark it gone. */
static void reap(struct lz_rcd *rcd)
{
	char why[64], msg[sizeof(rcd->start_error) + 64];
	int status = 0, level;
	pid_t pid = rcd->pid;
	bool stopping;

	if (rcd->err_fd >= 0) {
		read_output(rcd);
		if (rcd->line_len > 0) {
			rcd->line[rcd->line_len] = '\0';
			on_line(rcd, rcd->line);
			rcd->line_len = 0;
		}
	}
	/* ECHILD: someone reaped it for us (SIGCHLD ignored); the pidfd still said it ended. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));

	pthread_mutex_lock(&rcd->lock);
	if (rcd->state == RCD_STARTING) {
		if (rcd->start_timed_out)
			lz_seterr(rcd->start_error, sizeof(rcd->start_error),
				  "rclone rcd did not start within %gs", rcd->start_timeout_s);
		else
			lz_seterr(rcd->start_error, sizeof(rcd->start_error),
				  "rclone rcd %s before serving%s%s", why,
				  rcd->last_line[0] ? ": " : "", rcd->last_line);
		start_failed(rcd);
		snprintf(msg, sizeof(msg), "%s", rcd->start_error);
		level = LZ_LOG_ERR;
	} else {
		snprintf(msg, sizeof(msg),
			 "rclone rcd (pid %d) %s; a new one starts on the next request", (int)pid,
			 why);
		level = rcd->discarded ? LZ_LOG_INFO : LZ_LOG_WARN;
	}
	stopping = rcd->stopping;
	rcd->state = RCD_DOWN;
	rcd->pid = 0;
	close(rcd->pidfd);
	rcd->pidfd = -1;
	pthread_cond_broadcast(&rcd->changed);
	pthread_mutex_unlock(&rcd->lock);
	if (!stopping)
		lz_rc_logf(&rcd->log, level, "%s", msg);
	if (rcd->err_fd >= 0)
		close(rcd->err_fd);
	rcd->err_fd = -1;
}

/* SIGTERM, a grace period with its output still read, then SIGKILL. */
static void stop_child(struct lz_rcd *rcd)
{
	double deadline = lz_clock_s(CLOCK_MONOTONIC) + STOP_GRACE_MS / 1000.0;
	bool exited = false;

	if (rcd->pid == 0)
		return;
	pidfd_send_signal(rcd->pidfd, SIGTERM, NULL, 0);
	while (!exited) {
		struct pollfd pfd[2] = { { .fd = rcd->pidfd, .events = POLLIN },
					 { .fd = rcd->err_fd, .events = POLLIN } };
		int left = (int)((deadline - lz_clock_s(CLOCK_MONOTONIC)) * 1000);

		if (left <= 0)
			break;
		if (poll(pfd, 2, left) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents && !read_output(rcd)) {
			close(rcd->err_fd);
			rcd->err_fd = -1;
		}
		exited = pfd[0].revents != 0;
	}
	if (!exited)
		pidfd_send_signal(rcd->pidfd, SIGKILL, NULL, 0);
	reap(rcd);
}

static void *supervise(void *arg)
{
	struct lz_rcd *rcd = arg;

	for (;;) {
		struct pollfd pfd[3] = { { .fd = rcd->wake_fd, .events = POLLIN },
					 { .fd = rcd->err_fd, .events = POLLIN },
					 { .fd = rcd->pidfd, .events = POLLIN } };
		int timeout = -1;
		uint64_t count;

		pthread_mutex_lock(&rcd->lock);
		if (rcd->stopping) {
			pthread_mutex_unlock(&rcd->lock);
			break;
		}
		if (rcd->state == RCD_DOWN && rcd->want_start) {
			rcd->want_start = false;
			spawn(rcd);
			pthread_cond_broadcast(&rcd->changed);
			pthread_mutex_unlock(&rcd->lock);
			continue;
		}
		pthread_mutex_unlock(&rcd->lock);
		/* Only this thread changes the state from STARTING. */
		if (rcd->state == RCD_STARTING) {
			double left = rcd->start_deadline - lz_clock_s(CLOCK_MONOTONIC);

			if (left <= 0 && !rcd->start_timed_out) {
				rcd->start_timed_out = true;
				pidfd_send_signal(rcd->pidfd, SIGKILL, NULL, 0);
			}
			timeout = left <= 0 ? 100 : (int)(left * 1000) + 1;
		}
		pfd[1].fd = rcd->err_fd;
		pfd[2].fd = rcd->pidfd;
		if (poll(pfd, 3, timeout) < 0 && errno != EINTR)
			break; /* cannot happen with valid descriptors */
		if (pfd[0].revents && read(rcd->wake_fd, &count, sizeof(count)) < 0) {
			/* nothing to read: fine */
		}
		if (pfd[1].revents && !read_output(rcd)) {
			/* End of output: the child is exiting; the pidfd says when. */
			close(rcd->err_fd);
			rcd->err_fd = -1;
		}
		if (pfd[2].revents)
			reap(rcd);
	}
	stop_child(rcd);
	return NULL;
}

/* Starts the supervisor with all signals blocked: the process's other threads take them. */
static int start_thread(struct lz_rcd *rcd)
{
	sigset_t all, old;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&rcd->thread, NULL, supervise, rcd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e == 0)
		rcd->thread_started = true;
	return e;
}

/* Lock held: asks the supervisor for a child unless one runs, starts, or failed lately. */
static void want_child_locked(struct lz_rcd *rcd)
{
	if (rcd->state != RCD_DOWN || rcd->want_start)
		return;
	if (rcd->failed_gen == rcd->generation && rcd->generation != 0 &&
	    lz_clock_s(CLOCK_MONOTONIC) - rcd->failed_at < START_RETRY_S)
		return;
	rcd->want_start = true;
	poke(rcd);
}

void lz_rcd_start(struct lz_rcd *rcd)
{
	pthread_mutex_lock(&rcd->lock);
	if (!rcd->stopping && (rcd->thread_started || start_thread(rcd) == 0))
		want_child_locked(rcd);
	pthread_mutex_unlock(&rcd->lock);
}

int lz_rcd_get(struct lz_rcd *rcd, unsigned *port, unsigned *gen, struct lz_rcd_creds *creds,
	       char *err, size_t errlen)
{
	double deadline = lz_clock_s(CLOCK_MONOTONIC) + rcd->start_timeout_s + 2;
	struct timespec ts;
	int ret = 0;

	pthread_mutex_lock(&rcd->lock);
	if (!rcd->thread_started && (ret = start_thread(rcd)) != 0) {
		snprintf(err, errlen, "cannot start the rclone supervisor thread: %s",
			 strerror(ret));
		pthread_mutex_unlock(&rcd->lock);
		return -ret;
	}
	for (;;) {
		if (rcd->stopping) {
			snprintf(err, errlen, "the rclone fetcher is shutting down");
			ret = -ESHUTDOWN;
			break;
		}
		if (rcd->state == RCD_UP) {
			*port = rcd->port;
			*gen = rcd->generation;
			*creds = rcd->creds;
			break;
		}
		if (rcd->state == RCD_DOWN && !rcd->want_start) {
			want_child_locked(rcd);
			if (!rcd->want_start) { /* it failed less than a second ago */
				snprintf(err, errlen, "%s", rcd->start_error);
				ret = -EIO;
				break;
			}
		}
		double left = deadline - lz_clock_s(CLOCK_MONOTONIC);
		if (left <= 0) {
			snprintf(err, errlen, "rclone rcd did not start within %gs",
				 rcd->start_timeout_s);
			ret = -ETIMEDOUT;
			break;
		}
		ts = lz_clock_after(CLOCK_MONOTONIC, left);
		pthread_cond_timedwait(&rcd->changed, &rcd->lock, &ts);
	}
	pthread_mutex_unlock(&rcd->lock);
	return ret;
}

void lz_rcd_discard(struct lz_rcd *rcd, unsigned gen, const char *why)
{
	pid_t killed = 0;

	pthread_mutex_lock(&rcd->lock);
	if (gen == rcd->generation && rcd->state == RCD_UP && !rcd->discarded) {
		rcd->discarded = true;
		killed = rcd->pid;
		pidfd_send_signal(rcd->pidfd, SIGKILL, NULL, 0);
	}
	pthread_mutex_unlock(&rcd->lock);
	if (killed)
		lz_rc_logf(&rcd->log, LZ_LOG_WARN, "restarting rclone rcd (pid %d): %s",
			   (int)killed, why);
}

pid_t lz_rcd_pid(struct lz_rcd *rcd)
{
	pid_t pid;

	pthread_mutex_lock(&rcd->lock);
	pid = rcd->state == RCD_UP ? rcd->pid : 0;
	pthread_mutex_unlock(&rcd->lock);
	return pid;
}

bool lz_rcd_vouch(struct lz_rcd *rcd, unsigned gen)
{
	bool ok;

	pthread_mutex_lock(&rcd->lock);
	ok = gen == rcd->generation && rcd->state == RCD_UP && rcd->pidfd >= 0;
	if (ok) {
		struct pollfd pfd = { .fd = rcd->pidfd, .events = POLLIN };
		ok = poll(&pfd, 1, 0) == 0;
	}
	pthread_mutex_unlock(&rcd->lock);
	return ok;
}

void lz_rcd_free(struct lz_rcd *rcd)
{
	if (rcd == NULL)
		return;
	if (rcd->thread_started) {
		pthread_mutex_lock(&rcd->lock);
		rcd->stopping = true;
		pthread_cond_broadcast(&rcd->changed);
		poke(rcd);
		pthread_mutex_unlock(&rcd->lock);
		pthread_join(rcd->thread, NULL);
	}
	pthread_mutex_destroy(&rcd->lock);
	pthread_cond_destroy(&rcd->changed);
	if (rcd->wake_fd >= 0)
		close(rcd->wake_fd);
	lz_rcd_cmd_destroy(&rcd->cmd);
	lz_rcd_creds_wipe(&rcd->creds);
	free(rcd);
}
