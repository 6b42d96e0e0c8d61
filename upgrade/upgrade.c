/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Live upgrade, the old daemon's side: the request from the control thread,
 * the new process started with the takeover socket, the state captured and
 * sent while the FUSE loop stands still, and then either the exit (the new
 * process serves) or serving again.
 */
#include "config.h"
#include "upgrade.h"
#include "handover.h"
#include "head.h"
#include "restart.h"
#include "snapshot.h"
#include "common/clock.h"
#include "common/log.h"
#include "fscore/fs.h"

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif
/* FUSE_INIT's flags: FUSE_INIT_EXT, and FUSE_OVER_IO_URING (1 << 41, Linux 6.14) in flags2. */
#define INIT_FLAGS_EXT		  (UINT32_C(1) << 30)
#define INIT_FLAGS2_OVER_IO_URING (UINT32_C(1) << 9)

/* Generous: the new process opens its images directory, map and cache meanwhile. */
#define HANDOVER_TIMEOUT_MS 60000
#define REPLY_TIMEOUT_S	    5

extern char **environ;

struct lz_upgrade {
	char **argv; /* the command line, for the new process */
	const struct lz_settings *settings;
	unsigned char *init_request; /* the kernel's FUSE_INIT */
	size_t init_len;
	char *mount_path;
	unsigned mount_minor;

	/* The request from the control thread to the main thread, and its outcome. */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	bool requested, done, replied;
	int outcome;
	char outcome_msg[512];
	pid_t child;
	int sock;
	char binary_path[PATH_MAX];
};

struct lz_upgrade *lz_upgrade_new(int argc, char **argv, const struct lz_settings *settings)
{
	struct lz_upgrade *up = calloc(1, sizeof(*up));

	(void)argc;
	if (up == NULL)
		return NULL;
	up->argv = argv;
	up->settings = settings;
	up->child = -1;
	up->sock = -1;
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->changed, NULL);
	return up;
}

void lz_upgrade_free(struct lz_upgrade *up)
{
	if (up == NULL)
		return;
	if (up->sock >= 0)
		close(up->sock);
	free(up->init_request);
	free(up->mount_path);
	pthread_mutex_destroy(&up->lock);
	pthread_cond_destroy(&up->changed);
	free(up);
}

int lz_upgrade_set_init(struct lz_upgrade *up, const void *request, size_t len)
{
	unsigned char *copy = malloc(len);

	if (copy == NULL)
		return -1;
	memcpy(copy, request, len);
	free(up->init_request);
	up->init_request = copy;
	up->init_len = len;
	return 0;
}

int lz_upgrade_first_init(struct lz_upgrade *up, struct fuse_session *se)
{
	struct fuse_buf buf = { 0 };
	int rc = fuse_session_receive_buf(se, &buf);

	if (rc <= 0)
		return -1;
	/* Kept before libfuse sees it: the new process replays these very bytes. */
	if (!(buf.flags & FUSE_BUF_IS_FD) && lz_upgrade_set_init(up, buf.mem, (size_t)rc) != 0)
		lz_warn("upgrade: cannot keep the FUSE_INIT request; lazyfsctl upgrade will fail");
	fuse_session_process_buf(se, &buf);
	free(buf.mem);
	return fuse_session_exited(se) ? -1 : 0;
}

void lz_upgrade_set_mount(struct lz_upgrade *up, const char *mountpoint, unsigned minor)
{
	free(up->mount_path);
	up->mount_path = mountpoint != NULL ? strdup(mountpoint) : NULL;
	up->mount_minor = minor;
}

void lz_upgrade_resend(int fuse_fd)
{
	struct {
		uint32_t len;
		int32_t error;
		uint64_t unique;
	} notify = { .len = sizeof(notify), .error = FUSE_NOTIFY_RESEND, .unique = 0 };

	/* Older kernels answer EINVAL: nothing was dropped there only if the loop was idle. */
	if (write(fuse_fd, &notify, sizeof(notify)) != (ssize_t)sizeof(notify))
		lz_debug("upgrade: FUSE_NOTIFY_RESEND: %s", strerror(errno));
}

/*
 * Does libfuse serve this connection through io_uring rings? Only if asked
 * (-o io_uring, or libfuse's FUSE_URING_ENABLE) and the kernel offered it in
 * the FUSE_INIT we answered (enable_uring=Y at mount time); otherwise the
 * connection is plain /dev/fuse, which can be handed over.
 */
bool lz_upgrade_serves_uring(const struct lz_upgrade *up)
{
	/* After the 40-byte fuse_in_header: major, minor, max_readahead, flags, flags2. */
	const size_t flags_at = 40 + 3 * sizeof(uint32_t);
	const char *env = getenv("FUSE_URING_ENABLE");
	uint32_t flags[2];

	if (!up->settings->io_uring && (env == NULL || atoi(env) == 0))
		return false;
	if (up->init_request == NULL || up->init_len < flags_at + sizeof(flags))
		return false;
	memcpy(flags, up->init_request + flags_at, sizeof(flags));
	return (flags[0] & INIT_FLAGS_EXT) && (flags[1] & INIT_FLAGS2_OVER_IO_URING);
}

/* The path of the running binary, without the " (deleted)" an upgrade in place leaves. */
static int running_binary(char *out, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", out, size - 1);
	const char *deleted = " (deleted)";
	size_t dl = strlen(deleted);

	if (n <= 0)
		return -1;
	out[n] = '\0';
	if ((size_t)n > dl && strcmp(out + n - dl, deleted) == 0)
		out[n - dl] = '\0';
	return 0;
}

/* A copy of our environment with LAZYFS_TAKEOVER_FD=FD, in VAR; NULL when out of memory. */
static char **takeover_env(int fd, char *var, size_t size)
{
	size_t nenv = 0, k = 0;
	char **env;

	while (environ[nenv] != NULL)
		nenv++;
	env = calloc(nenv + 2, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], LZ_TAKEOVER_ENV "=", strlen(LZ_TAKEOVER_ENV) + 1) != 0)
			env[k++] = environ[i];
	snprintf(var, size, "%s=%d", LZ_TAKEOVER_ENV, fd);
	env[k] = var;
	return env;
}

/*
 * Opens BINARY for the exec, once it is known to be one this daemon may run
 * with its privileges: a regular executable file owned by root (or by the
 * daemon's own user) that nobody else may write, as sudo checks what it
 * runs. A descriptor (O_PATH), or -1 with a reason in MSG.
 */
static int open_binary(const char *binary, char *msg, size_t size)
{
	struct stat st;
	int fd = open(binary, O_PATH | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(msg, size, "%s: %s", binary, strerror(errno));
	} else if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) {
		snprintf(msg, size, "%s: not an executable file", binary);
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(msg, size, "%s: owned by uid %u, not root", binary, (unsigned)st.st_uid);
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(msg, size, "%s: writable by %s", binary,
			 st.st_mode & S_IWOTH ? "others" : "its group");
	} else {
		return fd;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Starts BINARY with our arguments and the takeover socket; -1 with a reason in MSG. */
static int spawn_new(struct lz_upgrade *up, const char *binary, char *msg, size_t size)
{
	int pair[2];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	char var[64], exe[64], **env;
	pid_t pid;

	int binary_fd = open_binary(binary, msg, size);
	if (binary_fd < 0)
		return -1;
	/* The very file checked is executed, whatever the path names by then. */
	snprintf(exe, sizeof(exe), "/proc/self/fd/%d", binary_fd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
		snprintf(msg, size, "socketpair: %s", strerror(errno));
		close(binary_fd);
		return -1;
	}
	env = takeover_env(pair[1], var, sizeof(var));
	if (env == NULL) {
		close(pair[0]);
		close(pair[1]);
		close(binary_fd);
		snprintf(msg, size, "out of memory");
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	/* dup2 onto itself clears close-on-exec: only this end is inherited, and the keeper's. */
	posix_spawn_file_actions_adddup2(&fa, pair[1], pair[1]);
	if (lz_restart_keeper_fd() >= 0)
		posix_spawn_file_actions_adddup2(&fa, lz_restart_keeper_fd(),
						 lz_restart_keeper_fd());
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGHUP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int rc = posix_spawn(&pid, exe, &fa, &attr, up->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(env);
	close(pair[1]);
	close(binary_fd);
	if (rc != 0) {
		close(pair[0]);
		snprintf(msg, size, "cannot start %s: %s", binary, strerror(rc));
		return -1;
	}
	up->child = pid;
	up->sock = pair[0];
	return 0;
}

/* Under up->lock: starts the new process for BINARY. 0, or -1 with a reason in MSG. */
static int begin_locked(struct lz_upgrade *up, const char *binary, char *msg, size_t size)
{
	if (up->requested) {
		snprintf(msg, size, "an upgrade is already running");
		return -1;
	}
	if (binary != NULL && *binary != '\0') {
		snprintf(up->binary_path, sizeof(up->binary_path), "%s", binary);
	} else if (running_binary(up->binary_path, sizeof(up->binary_path)) != 0) {
		snprintf(msg, size, "cannot read /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	/* Started while this daemon still serves: it waits for the state on its socket. */
	if (spawn_new(up, up->binary_path, msg, size) != 0)
		return -1;
	up->requested = true;
	up->done = false;
	up->replied = false;
	return 0;
}

int lz_upgrade_request(struct lz_upgrade *up, struct fuse_session *se, const char *binary,
		       char *msg, size_t size)
{
	int rc;

	if (up->argv == NULL || up->init_request == NULL) {
		snprintf(msg, size, "this daemon did not keep its FUSE_INIT request");
		return -1;
	}
	/*
	 * Linux 6.18 strands the requests in this process's ring entries: its
	 * io_uring's cancel (fuse_uring_cancel) frees only idle entries, one
	 * holding a request keeps it until the connection ends, and
	 * FUSE_NOTIFY_RESEND (fuse_resend) requeues only what /dev/fuse read.
	 * Once the rings were ready every request goes to a ring (fiq->ops), so
	 * the new process cannot fall back to /dev/fuse either.
	 */
	if (lz_upgrade_serves_uring(up)) {
		snprintf(msg, size, "not with -o io_uring: its rings cannot be handed over");
		return -1;
	}
	pthread_mutex_lock(&up->lock);
	rc = begin_locked(up, binary, msg, size);
	pthread_mutex_unlock(&up->lock);
	if (rc != 0)
		return -1;
	lz_info("upgrade: handing %s over to %s (pid %d)",
		up->mount_path ? up->mount_path : "the mount", up->binary_path, (int)up->child);
	fuse_session_exit(se); /* the main thread takes it from here */
	pthread_mutex_lock(&up->lock);
	while (!up->done)
		pthread_cond_wait(&up->changed, &up->lock);
	snprintf(msg, size, "%s", up->outcome_msg);
	rc = up->outcome;
	if (rc != 0)
		up->requested = false;
	pthread_mutex_unlock(&up->lock);
	return rc;
}

bool lz_upgrade_replied(struct lz_upgrade *up)
{
	pthread_mutex_lock(&up->lock);
	up->replied = true;
	bool ending = up->done && up->outcome == 0;
	pthread_cond_broadcast(&up->changed);
	pthread_mutex_unlock(&up->lock);
	return ending;
}

bool lz_upgrade_requested(struct lz_upgrade *up)
{
	pthread_mutex_lock(&up->lock);
	bool r = up->requested && !up->done;
	pthread_mutex_unlock(&up->lock);
	return r;
}

int lz_upgrade_mount_lines(const struct lz_upgrade *up, struct lz_handover *h)
{
	if (up->init_request == NULL || up->mount_path == NULL)
		return -1;
	lz_head_write_mount(h, up->mount_path, up->mount_minor, up->init_request, up->init_len);
	return 0;
}

static int capture(struct lz_upgrade *up, struct lz_fs *fs, struct fuse_session *se,
		   const struct lz_upgrade_hooks *hooks, struct lz_handover *h, char *err,
		   size_t errlen)
{
	int listen_fd = -1, http_fd = -1;
	const char *path = NULL;

	lz_handover_printf(h, "version %d\n", lz_snapshot_version(fs));
	lz_upgrade_mount_lines(up, h);
	int fuse_index = lz_handover_add_fd(h, fuse_session_fd(se));
	if (hooks->control_fds != NULL)
		hooks->control_fds(hooks->ctx, &listen_fd, &http_fd, &path);
	int listen_index = lz_handover_add_fd(h, listen_fd);
	lz_head_write_fds(h, fuse_index, listen_index, lz_handover_add_fd(h, http_fd), path);
	if (lz_snapshot_capture(fs, h, err, errlen) != 0)
		return -1;
	lz_handover_printf(h, "end\n");
	return 0;
}

static void finish(struct lz_upgrade *up, int rc, const char *msg)
{
	pthread_mutex_lock(&up->lock);
	up->outcome = rc;
	snprintf(up->outcome_msg, sizeof(up->outcome_msg), "%s", msg);
	up->done = true;
	pthread_cond_broadcast(&up->changed);
	pthread_mutex_unlock(&up->lock);
}

/* Why the new process went away, for the one-line reason. */
static void reap(struct lz_upgrade *up, char *why, size_t size)
{
	int status;
	pid_t r = 0;

	if (up->child <= 0)
		return;
	/* A process that said why it gave up exits by itself: give it a moment. */
	for (int i = 0; i < 50 && (r = waitpid(up->child, &status, WNOHANG)) == 0; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	if (r == 0) {
		kill(up->child, SIGKILL);
		waitpid(up->child, &status, 0);
		snprintf(why, size, "killed (no answer)");
	} else if (WIFEXITED(status)) {
		snprintf(why, size, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		snprintf(why, size, "killed by signal %d", WTERMSIG(status));
	}
	up->child = -1;
}

/* Sends the state and waits for the new process: its pid, or -1 with a reason in ERR. */
static long hand_over(struct lz_upgrade *up, struct lz_fs *fs, struct fuse_session *se,
		      const struct lz_upgrade_hooks *hooks, char *err, size_t errlen)
{
	struct lz_handover h = { 0 };
	char line[256] = "";
	long pid = -1;

	if (capture(up, fs, se, hooks, &h, err, errlen) == 0 &&
	    lz_handover_send(up->sock, &h, err, errlen) == 0) {
		if (lz_handover_hear(up->sock, line, sizeof(line), HANDOVER_TIMEOUT_MS) != 0)
			snprintf(err, errlen, "the new process %s",
				 errno == ETIMEDOUT ? "did not answer" : "went away");
		else if (strncmp(line, "ready ", 6) == 0)
			pid = strtol(line + 6, NULL, 10);
		else
			snprintf(err, errlen, "%s",
				 strncmp(line, "error ", 6) == 0 ? line + 6 : line);
	}
	lz_handover_free(&h); /* closes only the copies made for the record */
	return pid;
}

/* The new process PID serves: names it to systemd, lets lazyfsctl hear, and exits. */
static _Noreturn void leave(struct lz_upgrade *up, long pid)
{
	char notify[64], msg[512];

	snprintf(notify, sizeof(notify), "MAINPID=%ld", pid);
#ifdef HAVE_LIBSYSTEMD
	/* NotifyAccess=main: only the current main process may name the next one. */
	sd_notify(0, notify);
#endif
	lz_handover_say(up->sock, "bye");
	lz_info("upgrade: pid %ld serves %s now; exiting without unmounting", pid,
		up->mount_path ? up->mount_path : "the mount");
	snprintf(msg, sizeof(msg), "upgraded: pid %ld serves the mount (%.200s)", pid,
		 up->binary_path);
	finish(up, 0, msg);
	/* Let the control thread tell lazyfsctl before the process ends. */
	struct timespec until = lz_clock_after(CLOCK_REALTIME, REPLY_TIMEOUT_S);
	pthread_mutex_lock(&up->lock);
	while (!up->replied && pthread_cond_timedwait(&up->changed, &up->lock, &until) == 0)
		;
	pthread_mutex_unlock(&up->lock);
	/*
	 * Not exit(): no unmount, no destructor. The new process holds its own
	 * references on the connection, the mounts and every descriptor.
	 */
	_exit(0);
}

void lz_upgrade_run(struct lz_upgrade *up, struct lz_fs *fs, struct fuse_session *se,
		    const struct lz_upgrade_hooks *hooks)
{
	char err[400] = "", why[128] = "", msg[512];
	long pid;

	/* Nothing but the kernel queue moves now: no FUSE worker, expiry, tracker or prefetch. */
	hooks->pause(hooks->ctx);
	/* Parked backing ids are not handed over: closed now, or they would hold their files. */
	lz_linger_clear(fs->linger);
	pid = hand_over(up, fs, se, hooks, err, sizeof(err));
	if (pid >= 0)
		leave(up, pid);
	close(up->sock);
	up->sock = -1;
	reap(up, why, sizeof(why));
	if (why[0] != '\0')
		snprintf(err + strlen(err), sizeof(err) - strlen(err), " (%s)", why);
	lz_warn("upgrade to %.200s failed: %.250s; serving on", up->binary_path, err);
	hooks->resume(hooks->ctx);
	fuse_session_reset(se);
	lz_upgrade_resend(fuse_session_fd(se));
	snprintf(msg, sizeof(msg), "upgrade to %.200s failed: %.250s; the running daemon serves on",
		 up->binary_path, err);
	finish(up, -1, msg);
}
