/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The keeper's one loop: a signalfd (SIGCHLD, and the stop and reload
 * signals it passes on to the worker) and the channel, nothing else. See
 * keeper.h for what it does and why it stays this small.
 */
#include "config.h"
#include "keeper.h"
#include "keeper_msg.h"
#include "stragglers.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mountpoint.h"
#include "fscore/track.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS                                                                                      \
	5 /* stored: the connection, the underlay, the state, the in-flight and node records */
#define RESTARTS_MAX 64
/* How long a failed-open mount answers what still reaches it before the keeper exits. */
#define STRAGGLERS_S 5.0

struct slot {
	char name[LZ_KEEPER_NAME_MAX];
	int fd;
};

struct keeper {
	const struct lz_keeper_config *cfg;
	struct slot slots[SLOTS];
	int chan;	    /* our end of the worker's channel */
	int sigfd;	    /* SIGCHLD, SIGTERM, SIGINT, SIGHUP */
	int ready_fd;	    /* the command waiting for the mount to serve, or -1 */
	pid_t worker;	    /* the process that serves now */
	bool served;	    /* a worker said ready at least once */
	bool stopping;	    /* a stop signal was passed on */
	char exe[PATH_MAX]; /* the binary of the last worker that said ready */
	unsigned restarts;
	double restart_at[RESTARTS_MAX]; /* CLOCK_MONOTONIC seconds, a ring */
	bool killed;			 /* the last worker ended by SIGKILL */
};

static void notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* The running binary's path, without the " (deleted)" a replaced file leaves. */
static void binary_of(pid_t pid, char *out, size_t size)
{
	char link[64];
	const char *deleted = " (deleted)";
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, out, size - 1);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	if ((size_t)n > strlen(deleted) && strcmp(out + n - strlen(deleted), deleted) == 0)
		out[n - strlen(deleted)] = '\0';
}

static struct slot *slot_named(struct keeper *k, const char *name, bool add)
{
	for (int i = 0; i < SLOTS; i++)
		if (k->slots[i].fd >= 0 && strcmp(k->slots[i].name, name) == 0)
			return &k->slots[i];
	for (int i = 0; add && i < SLOTS; i++)
		if (k->slots[i].fd < 0) {
			snprintf(k->slots[i].name, sizeof(k->slots[i].name), "%s", name);
			return &k->slots[i];
		}
	return NULL;
}

static void unstore_all(struct keeper *k)
{
	for (int i = 0; i < SLOTS; i++)
		if (k->slots[i].fd >= 0) {
			close(k->slots[i].fd);
			k->slots[i].fd = -1;
		}
}

/* The worker (or a new one after a live upgrade) serves: tell whoever waits. */
static void on_ready(struct keeper *k, pid_t pid)
{
	if (pid > 0) {
		k->worker = pid;
		binary_of(pid, k->exe, sizeof(k->exe));
	}
	if (k->served)
		return;
	k->served = true;
	notify("READY=1");
	if (k->ready_fd >= 0) {
		if (write(k->ready_fd, "r", 1) != 1)
			lz_debug("keeper: the command that started it is gone");
		close(k->ready_fd);
		k->ready_fd = -1;
		/* Detached from the terminal from now on, as the worker is. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
		lz_log_to_syslog();
	}
}

/*
 * One message from the channel; false when there is none. When every worker
 * holding the channel's other end is gone, it is closed (SIGCHLD says the
 * rest).
 */
static bool receive(struct keeper *k)
{
	char text[LZ_KEEPER_MSG_MAX + 1], ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = text, .iov_len = LZ_KEEPER_MSG_MAX };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	ssize_t n = k->chan >= 0 ? recvmsg(k->chan, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) : -1;
	int fd = -1;

	if (n == 0) {
		close(k->chan);
		k->chan = -1;
	}
	if (n <= 0)
		return false;
	text[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	struct lz_keeper_msg m;
	lz_keeper_msg_parse(text, &m);
	if (m.kind == LZ_KEEPER_STORE && fd >= 0) {
		struct slot *s = slot_named(k, m.name, true);
		if (s != NULL) {
			if (s->fd >= 0)
				close(s->fd);
			s->fd = fd;
			fd = -1;
		}
	} else if (m.kind == LZ_KEEPER_UNSTORE) {
		unstore_all(k);
	} else if (m.kind == LZ_KEEPER_READY) {
		on_ready(k, (pid_t)m.pid);
	}
	if (fd >= 0)
		close(fd);
	return true;
}

/*
 * In the child: the stored descriptors at 3, 4, ..., the channel after
 * them, and the environment saying so; then the worker's binary.
 */
static _Noreturn void exec_worker(struct keeper *k, int chan, bool restart)
{
	char names[LZ_KEEPER_FDS_MAX] = "", var[64];
	sigset_t none;
	/* Above every target (3, 4...) and within any descriptor limit that can serve. */
	const int out_of_the_way = 3 + SLOTS + 1;
	int next = 3, high[SLOTS + 1];

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	/* Moved out of the way first: the targets 3, 4... may be any of them. */
	for (int i = 0; i < SLOTS; i++)
		high[i] = restart && k->slots[i].fd >= 0
				  ? fcntl(k->slots[i].fd, F_DUPFD, out_of_the_way)
				  : -1;
	high[SLOTS] = fcntl(chan, F_DUPFD, out_of_the_way);
	if (high[SLOTS] < 0) {
		/* EINVAL: the limit is below out_of_the_way. */
		fprintf(stderr, "lazyfs: keeper: cannot start the worker: %s\n",
			strerror(errno == EINVAL ? EMFILE : errno));
		_exit(127);
	}
	for (int i = 0; i < SLOTS; i++) {
		if (high[i] < 0)
			continue;
		dup2(high[i], next);
		lz_keeper_fds_add(names, sizeof(names), k->slots[i].name, next);
		next++;
	}
	dup2(high[SLOTS], next);
	close_range((unsigned)next + 1, ~0U, 0);
	snprintf(var, sizeof(var), "%d", next);
	setenv(LZ_KEEPER_ENV, var, 1);
	snprintf(var, sizeof(var), "%d", (int)getppid());
	setenv(LZ_KEEPER_PID_ENV, var, 1);
	snprintf(var, sizeof(var), "%u", k->restarts);
	setenv(LZ_RESTARTS_ENV, var, 1);
	if (restart)
		setenv(LZ_RESTART_FDS_ENV, names, 1);
	else
		unsetenv(LZ_RESTART_FDS_ENV);
	setenv(LZ_WORKER_KILLED_ENV, restart && k->killed ? "1" : "0", 1);
	/* systemd talks to the keeper, the unit's main process: never to a worker. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	execv(k->exe, k->cfg->argv);
	fprintf(stderr, "lazyfs: keeper: cannot run %s: %s\n", k->exe, strerror(errno));
	_exit(127);
}

/* Starts a worker (RESTART: one that takes the stored mount over). 0 or -1. */
static int spawn(struct keeper *k, bool restart)
{
	int pair[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pair[0]);
		close(pair[1]);
		return -1;
	}
	if (pid == 0)
		exec_worker(k, pair[1], restart);
	close(pair[1]);
	if (k->chan >= 0)
		close(k->chan);
	k->chan = pair[0];
	k->worker = pid;
	return 0;
}

/* Removes DIR's files and DIR (a bpffs directory of pinned maps). */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

/* What dead workers leave: the tracker's pinned maps and the control socket. */
static void remove_leftovers(const char *mountpoint)
{
	char name[256], path[PATH_MAX];

	lz_escape_mountpoint(mountpoint, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", LZ_TRACK_PIN_ROOT, name);
	remove_dir(path);
	lz_control_path(mountpoint, path, sizeof(path));
	unlink(path);
}

/* The worker cannot stay up: the mount goes, the directory underneath shows. */
static int fail_open(struct keeper *k, const char *why)
{
	const char *mp = k->cfg->mountpoint;

	lz_err("keeper: %s; failing open: %s is detached and shows the directory underneath", why,
	       mp);
	if (umount2(mp, MNT_DETACH) != 0)
		lz_err("keeper: cannot detach %s: %s", mp, strerror(errno));
	struct slot *fuse = slot_named(k, "lazyfs-fuse", false);
	if (fuse != NULL)
		lz_answer_stragglers(fuse->fd, STRAGGLERS_S);
	unstore_all(k);
	remove_leftovers(mp);
	notify("STOPPING=1");
	return 1;
}

/* Whether another restart fits in the window; records it when it does. */
static bool may_restart(struct keeper *k)
{
	double now = lz_clock_s(CLOCK_MONOTONIC);
	unsigned recent = 0, limit = k->cfg->restart_limit;

	for (unsigned i = 0; i < k->restarts && i < RESTARTS_MAX; i++)
		recent += now - k->restart_at[i] < k->cfg->restart_window;
	if (recent >= limit || limit == 0)
		return false;
	k->restart_at[k->restarts % RESTARTS_MAX] = now;
	k->restarts++;
	return true;
}

/* Whether the stored connection still has a mount (the kernel ends it at unmount). */
static bool connection_alive(struct keeper *k)
{
	struct slot *s = slot_named(k, "lazyfs-fuse", false);
	struct pollfd pfd;

	if (s == NULL)
		return false;
	pfd = (struct pollfd){ .fd = s->fd };
	return poll(&pfd, 1, 0) == 0;
}

/*
 * The current worker ended with STATUS: the keeper's exit status, or -1 to
 * go on (a new worker took over).
 */
static int worker_ended(struct keeper *k, int status)
{
	char why[128];

	while (receive(k)) /* what it said before it went */
		;
	k->killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "the worker (pid %d) was killed by signal %d",
			 (int)k->worker, WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "the worker (pid %d) exited with status %d",
			 (int)k->worker, WEXITSTATUS(status));
	if (!k->served || k->stopping || !connection_alive(k) ||
	    (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		/*
		 * It never served, it was told to stop, the mount is gone, or it
		 * ended by itself (a worker exits 0 only after its mount or a live
		 * upgrade's handover, and the new worker said ready first): so do we.
		 */
		unstore_all(k);
		return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	}
	if (!may_restart(k)) {
		char longer[256];
		snprintf(longer, sizeof(longer), "%s, %u restarts within %g s", why,
			 k->cfg->restart_limit, k->cfg->restart_window);
		return fail_open(k, longer);
	}
	lz_warn("keeper: %s; restart %u: a new worker takes %s over", why, k->restarts,
		k->cfg->mountpoint);
	if (spawn(k, true) != 0)
		return fail_open(k, "a new worker cannot be started");
	return -1;
}

/* Reaps every child that ended; the keeper's exit status, or -1 to go on. */
static int reap(struct keeper *k)
{
	int status, rc = -1;
	pid_t pid;

	/* Children a live upgrade's old worker left come to us too (a subreaper). */
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (pid == k->worker && rc < 0)
			rc = worker_ended(k, status);
	return rc;
}

static int on_signal(struct keeper *k)
{
	struct signalfd_siginfo si;

	if (read(k->sigfd, &si, sizeof(si)) != sizeof(si))
		return -1;
	if (si.ssi_signo == SIGCHLD)
		return reap(k);
	/* Stop and reload are the worker's to do: it unmounts, or rereads. */
	if (si.ssi_signo != SIGHUP)
		k->stopping = true;
	if (k->worker > 0)
		kill(k->worker, (int)si.ssi_signo);
	return -1;
}

static int loop(struct keeper *k)
{
	int rc = -1;

	while (rc < 0) {
		struct pollfd pfd[2] = { { .fd = k->sigfd, .events = POLLIN },
					 { .fd = k->chan, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			return fail_open(k, "poll failed");
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			while (receive(k))
				;
		if (pfd[0].revents & POLLIN)
			rc = on_signal(k);
	}
	notify("STOPPING=1");
	return rc;
}

/*
 * Not in the foreground: the command returns once the mount serves (0), or
 * when the first worker gives up (1; it said why on stderr). The keeper goes
 * on in a session of its own. Returns in the keeper, with *READY_FD to write
 * to once ready; exits in the command.
 */
static void detach(int *ready_fd)
{
	int pipefd[2];
	char c;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		fprintf(stderr, "lazyfs: cannot start the keeper: %s\n", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(pipefd[1]);
		exit(read(pipefd[0], &c, 1) == 1 ? 0 : 1);
	}
	close(pipefd[0]);
	setsid();
	if (chdir("/") != 0)
		lz_debug("keeper: cannot chdir to /");
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	*ready_fd = pipefd[1];
}

int lz_keeper_run(const struct lz_keeper_config *cfg)
{
	struct keeper k = { .cfg = cfg, .chan = -1, .ready_fd = -1 };
	sigset_t mask;

	for (int i = 0; i < SLOTS; i++)
		k.slots[i].fd = -1;
	if (!cfg->foreground)
		detach(&k.ready_fd);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN); /* the command it tells "ready" may be gone */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	k.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	binary_of(getpid(), k.exe, sizeof(k.exe));
	if (k.sigfd < 0 || spawn(&k, false) != 0) {
		fprintf(stderr, "lazyfs: keeper: cannot start the worker: %s\n", strerror(errno));
		/* Out of descriptors, most likely: what exits after us (a sanitizer) needs one. */
		if (k.sigfd >= 0)
			close(k.sigfd);
		return 1;
	}
	return loop(&k);
}
