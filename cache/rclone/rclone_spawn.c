/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "rclone_spawn.h"
#include "common/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Our own settings win over the user's environment: flags below override
 * RCLONE_* variables, and variables for the rc server or logging that we do
 * not set ourselves are dropped (RCLONE_RC_NO_AUTH=true would open the API
 * to every local user; RCLONE_VERBOSE conflicts with --log-level). So is a
 * service manager's protocol, meant for the daemon alone: rclone rcd would
 * notify our supervisor itself (and exit when it cannot).
 */
static const char *const dropped_env[] = {
	"RCLONE_RC_",	       "RCLONE_RC=",	 "RCLONE_LOG_",	 "RCLONE_SYSLOG",
	"RCLONE_USE_JSON_LOG", "RCLONE_VERBOSE", "RCLONE_QUIET", "RCLONE_STATS",
	"RCLONE_PROGRESS",     "NOTIFY_SOCKET=", "LISTEN_FDS=",	 "LISTEN_PID=",
	"LISTEN_FDNAMES=",     "WATCHDOG_",
};

static const char *const rcd_flags[] = {
	"rcd",
	"--rc-addr=127.0.0.1:0", /* the kernel picks the port; rclone logs it */
	"--rc-no-auth=false",
	"--rc-serve=false",
	"--rc-web-gui=false",
	"--rc-files=",
	"--rc-enable-metrics=false",
	/* A copy of a large image can outlast the 1 h default; we watch for stalls ourselves. */
	"--rc-server-write-timeout=8760h",
	"--log-level=NOTICE",
	"--log-file=",
	"--syslog=false",
	"--use-json-log=false",
	"--stats=0",
	"--ask-password=false",
	/* Listings give server times; without it S3 makes one HEAD per object for its mtime. */
	"--use-server-modtime",
};

static bool dropped(const char *var)
{
	for (size_t i = 0; i < sizeof(dropped_env) / sizeof(dropped_env[0]); i++) {
		if (strncmp(var, dropped_env[i], strlen(dropped_env[i])) == 0)
			return true;
	}
	return false;
}

static void free_vec(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
	free(v);
}

/* Where a child running as its own user finds its config: the copy on its fd 3. */
#define CONFIG_FD  3
#define CONFIG_MAX (4u << 20)

/* Replaced, not inherited: rclone_config= names the file, a child of its own has no home. */
static bool replaced(const char *var, const struct lz_rcd_how *how)
{
	if ((how->config != NULL || how->as_user) && strncmp(var, "RCLONE_CONFIG=", 14) == 0)
		return true;
	if (how->serve_remote != NULL &&
	    strncmp(var, LZ_RCD_SERVE_ENV, strlen(LZ_RCD_SERVE_ENV)) == 0)
		return true;
	return how->as_user && strncmp(var, "HOME=", 5) == 0;
}

/* Our environment now, without what would change our settings, plus the config's place. */
static char **make_base(const struct lz_rcd_how *how)
{
	extern char **environ;
	size_t n = 0, k = 0;
	char **env;
	int rc = 0;

	for (char **e = environ; *e; e++)
		n++;
	env = calloc(n + 5, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (char **e = environ; *e; e++) {
		if (!dropped(*e) && !replaced(*e, how) && (env[k] = strdup(*e)) != NULL)
			k++;
	}
	if (how->as_user) {
		rc = asprintf(&env[k], "RCLONE_CONFIG=/dev/fd/%d", CONFIG_FD);
		if (rc >= 0 && (env[++k] = strdup("HOME=/nonexistent")) == NULL)
			rc = -1;
	} else if (how->config != NULL) {
		rc = asprintf(&env[k], "RCLONE_CONFIG=%s", how->config);
	}
	while (rc >= 0 && env[k] != NULL)
		k++;
	if (rc >= 0 && how->serve_remote != NULL) {
		rc = asprintf(&env[k], "%sTYPE=alias", LZ_RCD_SERVE_ENV);
		if (rc >= 0)
			rc = asprintf(&env[++k], "%sREMOTE=%s", LZ_RCD_SERVE_ENV,
				      how->serve_remote);
		if (rc < 0)
			env[k] = NULL;
	}
	if (rc < 0) {
		env[k] = NULL;
		free_vec(env);
		return NULL;
	}
	return env;
}

/* Copies what PATH holds (up to CONFIG_MAX) into FD. -errno. */
static int copy_file(int fd, const char *path)
{
	char buf[65536];
	size_t total = 0;
	ssize_t n;
	int in = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc = 0;

	if (in < 0)
		return -errno;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (total += (size_t)n) > CONFIG_MAX) {
			rc = n < 0 ? -errno : -EFBIG;
			break;
		}
		if (write(fd, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	close(in);
	return rc;
}

/*
 * A sealed memfd holding the config file (empty without one), read by us
 * now: the child's own uid may not read root's file, and a copy no one can
 * change is what it was given. Its secrets stay in memory, as they are in
 * rclone's. A token rclone refreshes cannot be saved back (rclone logs it).
 */
static int config_copy(const struct lz_rcd_how *how, char *why, size_t whylen)
{
	const char *path = how->config != NULL ? how->config : getenv("RCLONE_CONFIG");
	int fd = memfd_create("rclone.conf", MFD_CLOEXEC | MFD_ALLOW_SEALING), rc = 0;

	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "memfd for rclone's config: %s", strerror(errno));
		return rc;
	}
	if (path != NULL && path[0] != '\0' && strcmp(path, "/dev/null") != 0 &&
	    (rc = copy_file(fd, path)) < 0) {
		snprintf(why, whylen, "rclone config %s: %s", path,
			 rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
		close(fd);
		return rc;
	}
	lseek(fd, 0, SEEK_SET);
	fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK);
	return fd;
}

/* BASE plus the credentials. */
static char **make_env(char *const *base, const char *user, const char *pass)
{
	size_t n = 0, k = 0;
	char **env;

	while (base[n] != NULL)
		n++;
	env = calloc(n + 5, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (; k < n; k++)
		if ((env[k] = strdup(base[k])) == NULL)
			break;
	if (k < n || asprintf(&env[k++], "RCLONE_RC_USER=%s", user) < 0 ||
	    asprintf(&env[k++], "RCLONE_RC_PASS=%s", pass) < 0) {
		if (k > 0)
			env[k - 1] = NULL;
		free_vec(env);
		return NULL;
	}
	return env;
}

int lz_rcd_cmd_set_creds(struct lz_rcd_cmd *cmd, const char *user, const char *pass)
{
	char **env = cmd->base != NULL ? make_env(cmd->base, user, pass) : NULL;

	if (env == NULL)
		return -ENOMEM;
	free_vec(cmd->envp);
	cmd->envp = env;
	return 0;
}

static char **make_argv(const char *bin, bool serve)
{
	size_t n = sizeof(rcd_flags) / sizeof(rcd_flags[0]);
	char **argv = calloc(n + 2, sizeof(*argv));

	if (argv == NULL || (argv[0] = strdup(bin)) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const char *flag = rcd_flags[i];

		if (serve && strcmp(flag, "--rc-serve=false") == 0)
			flag = "--rc-serve=true";
		if ((argv[i + 1] = strdup(flag)) == NULL)
			goto fail;
	}
	return argv;
fail:
	free_vec(argv);
	return NULL;
}

static _Noreturn void child_fail(const char *msg)
{
	if (write(2, msg, strlen(msg)) < 0) {
		/* nowhere left to say it */
	}
	_exit(127);
}

/*
 * Becomes CMD's user, then holds no capability in any set and can gain none
 * (no_new_privs: neither file capabilities nor set-user-ID bits at exec).
 * Leaving uid 0 empties the effective and permitted sets; the daemon's
 * inheritable and ambient sets are already empty, capset makes sure.
 */
static void shed_privileges(const struct lz_rcd_cmd *cmd)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { 0 };

	if (cmd->as_user &&
	    (setgroups(0, NULL) != 0 || setresgid(cmd->gid, cmd->gid, cmd->gid) != 0 ||
	     setresuid(cmd->uid, cmd->uid, cmd->uid) != 0))
		child_fail("lazyfs: cannot switch the rclone child to its user\n");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 ||
	    syscall(SYS_capset, &hdr, none) != 0)
		child_fail("lazyfs: cannot drop the rclone child's capabilities\n");
}

/* In the new child: only async-signal-safe calls until exec. */
static _Noreturn void exec_child(const struct lz_rcd_cmd *cmd, int out, int devnull, pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* Ignored signals and the supervisor's blocked mask would survive exec. */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Out of our process group: a terminal's ^C is ours to handle, not rclone's. */
	setpgid(0, 0);
	if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (cmd->config_fd >= 0 && dup2(cmd->config_fd, CONFIG_FD) < 0)
		_exit(127);
	int keep = cmd->config_fd >= 0 ? CONFIG_FD + 1 : CONFIG_FD;
	if (close_range((unsigned)keep, ~0U, 0) != 0) {
		for (int fd = keep; fd < 65536; fd++)
			close(fd);
	}
	/* rclone is fetch-side work: it yields a busy CPU to the daemon (common/sched.h). */
	lz_sched_background(parent);
	shed_privileges(cmd);
	/* After the switch, which clears it: dies with the supervisor thread. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(127);
	execve(cmd->bin, cmd->argv, cmd->envp);
	child_fail("lazyfs: cannot execute rclone\n");
}

int lz_rcd_cmd_init(struct lz_rcd_cmd *cmd, const char *bin, const char *user, const char *pass,
		    const struct lz_rcd_how *how, char *why, size_t whylen)
{
	*cmd = (struct lz_rcd_cmd){
		.as_user = how->as_user, .uid = how->uid, .gid = how->gid, .config_fd = -1
	};
	if (how->as_user && (cmd->config_fd = config_copy(how, why, whylen)) < 0) {
		int rc = cmd->config_fd;
		lz_rcd_cmd_destroy(cmd);
		return rc;
	}
	cmd->bin = strdup(bin);
	cmd->argv = make_argv(bin, how->serve_remote != NULL);
	cmd->base = make_base(how);
	cmd->envp = cmd->base != NULL ? make_env(cmd->base, user, pass) : NULL;
	if (cmd->bin == NULL || cmd->argv == NULL || cmd->envp == NULL) {
		snprintf(why, whylen, "out of memory");
		lz_rcd_cmd_destroy(cmd);
		return -ENOMEM;
	}
	return 0;
}

void lz_rcd_cmd_destroy(struct lz_rcd_cmd *cmd)
{
	free(cmd->bin);
	free_vec(cmd->argv);
	free_vec(cmd->envp);
	free_vec(cmd->base);
	if (cmd->config_fd >= 0)
		close(cmd->config_fd);
	cmd->config_fd = -1;
	cmd->bin = NULL;
	cmd->argv = cmd->envp = cmd->base = NULL;
}

int lz_rcd_spawn(const struct lz_rcd_cmd *cmd, pid_t *pid, int *pidfd, int *out, char *why,
		 size_t whylen)
{
	int pipefd[2], devnull, e;
	pid_t parent = getpid(), child;

	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		e = errno;
		snprintf(why, whylen, "cannot start rclone rcd: pipe: %s", strerror(e));
		return -e;
	}
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		e = errno;
		snprintf(why, whylen, "cannot start rclone rcd: /dev/null: %s", strerror(e));
		close(pipefd[0]);
		close(pipefd[1]);
		return -e;
	}
	child = fork();
	if (child == 0)
		exec_child(cmd, pipefd[1], devnull, parent);
	e = errno;
	close(pipefd[1]);
	close(devnull);
	if (child < 0) {
		close(pipefd[0]);
		snprintf(why, whylen, "cannot start rclone rcd: fork: %s", strerror(e));
		return -e;
	}
	/* Our unreaped child: its pid cannot be reused before the pidfd holds it. */
	*pidfd = pidfd_open(child, 0);
	if (*pidfd < 0) {
		e = errno;
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		close(pipefd[0]);
		snprintf(why, whylen, "cannot start rclone rcd: pidfd_open: %s", strerror(e));
		return -e;
	}
	fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	*out = pipefd[0];
	*pid = child;
	return 0;
}
