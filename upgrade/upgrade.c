#include "config.h"
#include "upgrade.h"
#include "control/control.h"
#include "core/fs.h"
#include "handover.h"
#include "common/log.h"
#include "snapshot.h"
#include "common/clock.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static int saved_argc;
static char **saved_argv;
static unsigned char *init_request;
static size_t init_len;
static char *mount_path;
static unsigned mount_minor;

/* The request from the control thread to the main thread, and its outcome. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static bool requested, done, replied;
static int outcome;
static char outcome_msg[512];
static pid_t child = -1;
static int sock = -1;
static char binary_path[PATH_MAX];

void lz_upgrade_init(int argc, char **argv)
{
	saved_argc = argc;
	saved_argv = argv;
}

int lz_upgrade_set_init(const void *request, size_t len)
{
	unsigned char *copy = malloc(len);

	if (copy == NULL)
		return -1;
	memcpy(copy, request, len);
	free(init_request);
	init_request = copy;
	init_len = len;
	return 0;
}

int lz_upgrade_first_init(struct lz_fs *fs)
{
	struct fuse_buf buf = { 0 };
	int rc = fuse_session_receive_buf(fs->se, &buf);

	if (rc <= 0)
		return -1;
	/* Kept before libfuse sees it: the new process replays these very bytes. */
	if (!(buf.flags & FUSE_BUF_IS_FD) && lz_upgrade_set_init(buf.mem, (size_t)rc) != 0)
		lz_warn("upgrade: cannot keep the FUSE_INIT request; lazyfsctl upgrade will fail");
	fuse_session_process_buf(fs->se, &buf);
	free(buf.mem);
	return fuse_session_exited(fs->se) ? -1 : 0;
}

void lz_upgrade_set_mount(const char *mountpoint, unsigned minor)
{
	free(mount_path);
	mount_path = mountpoint != NULL ? strdup(mountpoint) : NULL;
	mount_minor = minor;
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
bool lz_upgrade_serves_uring(const struct lz_settings *cfg)
{
	/* After the 40-byte fuse_in_header: major, minor, max_readahead, flags, flags2. */
	const size_t flags_at = 40 + 3 * sizeof(uint32_t);
	const char *env = getenv("FUSE_URING_ENABLE");
	uint32_t flags[2];

	if (!cfg->io_uring && (env == NULL || atoi(env) == 0))
		return false;
	if (init_request == NULL || init_len < flags_at + sizeof(flags))
		return false;
	memcpy(flags, init_request + flags_at, sizeof(flags));
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

/* Starts BINARY with our arguments and the takeover socket; -1 with a reason. */
static int spawn_new(const char *binary, char *msg, size_t size)
{
	int pair[2];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, defaults;
	char var[64];
	size_t nenv = 0;

	if (access(binary, X_OK) != 0) {
		snprintf(msg, size, "%s: %s", binary, strerror(errno));
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
		snprintf(msg, size, "socketpair: %s", strerror(errno));
		return -1;
	}
	while (environ[nenv] != NULL)
		nenv++;
	char **env = calloc(nenv + 2, sizeof(*env));
	if (env == NULL) {
		close(pair[0]);
		close(pair[1]);
		snprintf(msg, size, "out of memory");
		return -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], LZ_TAKEOVER_ENV "=", strlen(LZ_TAKEOVER_ENV) + 1) != 0)
			env[k++] = environ[i];
	snprintf(var, sizeof(var), "%s=%d", LZ_TAKEOVER_ENV, pair[1]);
	env[k] = var;
	posix_spawn_file_actions_init(&fa);
	/* dup2 onto itself clears close-on-exec: only this end is inherited. */
	posix_spawn_file_actions_adddup2(&fa, pair[1], pair[1]);
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
	pid_t pid;
	int rc = posix_spawn(&pid, binary, &fa, &attr, saved_argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(env);
	close(pair[1]);
	if (rc != 0) {
		close(pair[0]);
		snprintf(msg, size, "cannot start %s: %s", binary, strerror(rc));
		return -1;
	}
	child = pid;
	sock = pair[0];
	return 0;
}

int lz_upgrade_request(struct lz_fs *fs, const char *binary, char *msg, size_t size)
{
	const struct lz_settings *cfg = fs->settings;

	if (saved_argv == NULL || init_request == NULL) {
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
	if (lz_upgrade_serves_uring(cfg)) {
		snprintf(msg, size, "not with -o io_uring: its rings cannot be handed over");
		return -1;
	}
	pthread_mutex_lock(&lock);
	if (requested) {
		pthread_mutex_unlock(&lock);
		snprintf(msg, size, "an upgrade is already running");
		return -1;
	}
	if (binary != NULL && *binary != '\0')
		snprintf(binary_path, sizeof(binary_path), "%s", binary);
	else if (running_binary(binary_path, sizeof(binary_path)) != 0) {
		pthread_mutex_unlock(&lock);
		snprintf(msg, size, "cannot read /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	/* Started while this daemon still serves: it waits for the state on its socket. */
	if (spawn_new(binary_path, msg, size) != 0) {
		pthread_mutex_unlock(&lock);
		return -1;
	}
	requested = true;
	done = false;
	replied = false;
	pthread_mutex_unlock(&lock);
	lz_info("upgrade: handing %s over to %s (pid %d)", mount_path ? mount_path : "the mount",
		binary_path, (int)child);
	fuse_session_exit(fs->se); /* the main thread takes it from here */
	pthread_mutex_lock(&lock);
	while (!done)
		pthread_cond_wait(&changed, &lock);
	snprintf(msg, size, "%s", outcome_msg);
	int rc = outcome;
	if (rc != 0)
		requested = false;
	pthread_mutex_unlock(&lock);
	return rc;
}

void lz_upgrade_replied(void)
{
	pthread_mutex_lock(&lock);
	replied = true;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

bool lz_upgrade_requested(void)
{
	pthread_mutex_lock(&lock);
	bool r = requested && !done;
	pthread_mutex_unlock(&lock);
	return r;
}

int lz_upgrade_mount_lines(struct lz_handover *h)
{
	if (init_request == NULL || mount_path == NULL)
		return -1;
	lz_handover_printf(h, "mountpoint");
	lz_handover_string(h, mount_path);
	lz_handover_printf(h, "\nminor %u\ninit", mount_minor);
	lz_handover_bytes(h, init_request, init_len);
	lz_handover_printf(h, "\n");
	return 0;
}

static int capture(struct lz_fs *fs, struct lz_handover *h, char *err, size_t errlen)
{
	int listen_fd = -1, http_fd = -1;
	const char *path = NULL;

	lz_handover_printf(h, "version %d\n", lz_snapshot_version(fs));
	lz_upgrade_mount_lines(h);
	lz_handover_printf(h, "fuse %d\n", lz_handover_add_fd(h, fuse_session_fd(fs->se)));
	lz_control_fds(fs, &listen_fd, &http_fd, &path);
	lz_handover_printf(h, "control %d %d", lz_handover_add_fd(h, listen_fd),
			   lz_handover_add_fd(h, http_fd));
	lz_handover_string(h, path);
	lz_handover_printf(h, "\n");
	if (lz_snapshot_capture(fs, h, err, errlen) != 0)
		return -1;
	lz_handover_printf(h, "end\n");
	return 0;
}

static void finish(int rc, const char *msg)
{
	pthread_mutex_lock(&lock);
	outcome = rc;
	snprintf(outcome_msg, sizeof(outcome_msg), "%s", msg);
	done = true;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

/* Why the new process went away, for the one-line reason. */
static void reap(char *why, size_t size)
{
	int status;

	pid_t r = 0;

	if (child <= 0)
		return;
	/* A process that said why it gave up exits by itself: give it a moment. */
	for (int i = 0; i < 50 && (r = waitpid(child, &status, WNOHANG)) == 0; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	if (r == 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		snprintf(why, size, "killed (no answer)");
	} else if (WIFEXITED(status)) {
		snprintf(why, size, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		snprintf(why, size, "killed by signal %d", WTERMSIG(status));
	}
	child = -1;
}

void lz_upgrade_run(struct lz_fs *fs, const struct lz_upgrade_hooks *hooks)
{
	struct lz_handover h = { 0 };
	char err[400] = "", line[256] = "", msg[512];
	int rc = -1;

	/* Nothing but the kernel queue moves now: no FUSE worker, expiry, tracker or prefetch. */
	hooks->pause(fs);
	/* Parked backing ids are not handed over: closed now, or they would hold their files. */
	lz_linger_clear(fs->linger);
	if (capture(fs, &h, err, sizeof(err)) == 0 &&
	    lz_handover_send(sock, &h, err, sizeof(err)) == 0) {
		if (lz_handover_hear(sock, line, sizeof(line), HANDOVER_TIMEOUT_MS) != 0)
			snprintf(err, sizeof(err), "the new process %s",
				 errno == ETIMEDOUT ? "did not answer" : "went away");
		else if (strncmp(line, "ready ", 6) == 0)
			rc = 0;
		else
			snprintf(err, sizeof(err), "%s",
				 strncmp(line, "error ", 6) == 0 ? line + 6 : line);
	}
	lz_handover_free(&h); /* borrowed descriptors: nothing is closed */
	if (rc == 0) {
		char notify[64];
		long pid = strtol(line + 6, NULL, 10);
		snprintf(notify, sizeof(notify), "MAINPID=%ld", pid);
#ifdef HAVE_LIBSYSTEMD
		/* NotifyAccess=main: only the current main process may name the next one. */
		sd_notify(0, notify);
#endif
		lz_handover_say(sock, "bye");
		lz_info("upgrade: pid %ld serves %s now; exiting without unmounting", pid,
			mount_path ? mount_path : "the mount");
		snprintf(msg, sizeof(msg), "upgraded: pid %ld serves the mount (%.200s)", pid,
			 binary_path);
		finish(0, msg);
		/* Let the control thread tell lazyfsctl before the process ends. */
		struct timespec until = lz_clock_after(CLOCK_REALTIME, REPLY_TIMEOUT_S);
		pthread_mutex_lock(&lock);
		while (!replied && pthread_cond_timedwait(&changed, &lock, &until) == 0)
			;
		pthread_mutex_unlock(&lock);
		/*
		 * Not exit(): no unmount, no destructor. The new process holds its own
		 * references on the connection, the mounts and every descriptor.
		 */
		_exit(0);
	}
	char why[128] = "";
	close(sock);
	sock = -1;
	reap(why, sizeof(why));
	if (why[0] != '\0')
		snprintf(err + strlen(err), sizeof(err) - strlen(err), " (%s)", why);
	lz_warn("upgrade to %.200s failed: %.250s; serving on", binary_path, err);
	hooks->resume(fs);
	fuse_session_reset(fs->se);
	lz_upgrade_resend(fuse_session_fd(fs->se));
	snprintf(msg, sizeof(msg), "upgrade to %.200s failed: %.250s; the running daemon serves on",
		 binary_path, err);
	finish(-1, msg);
}
