#include "config.h"
#include "rclone_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
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

/* Our environment now, without what would change our settings, plus CONFIG. */
static char **make_base(const char *config)
{
	extern char **environ;
	size_t n = 0, k = 0;
	char **env;

	for (char **e = environ; *e; e++)
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (char **e = environ; *e; e++) {
		/* rclone_config= names the config file; the environment's is not used then. */
		if (config != NULL && strncmp(*e, "RCLONE_CONFIG=", 14) == 0)
			continue;
		if (!dropped(*e) && (env[k] = strdup(*e)) != NULL)
			k++;
	}
	if (config != NULL && asprintf(&env[k], "RCLONE_CONFIG=%s", config) < 0) {
		env[k] = NULL;
		free_vec(env);
		return NULL;
	}
	return env;
}

/* BASE plus the credentials. */
static char **make_env(char *const *base, const char *user, const char *pass)
{
	size_t n = 0, k = 0;
	char **env;

	while (base[n] != NULL)
		n++;
	env = calloc(n + 3, sizeof(*env));
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

static char **make_argv(const char *bin)
{
	size_t n = sizeof(rcd_flags) / sizeof(rcd_flags[0]);
	char **argv = calloc(n + 2, sizeof(*argv));

	if (argv == NULL || (argv[0] = strdup(bin)) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if ((argv[i + 1] = strdup(rcd_flags[i])) == NULL)
			goto fail;
	}
	return argv;
fail:
	free_vec(argv);
	return NULL;
}

/* In the new child: only async-signal-safe calls until exec. */
static _Noreturn void exec_child(const struct lz_rcd_cmd *cmd, int out, int devnull, pid_t parent)
{
	static const char msg[] = "lazyfs: cannot execute rclone\n";
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* Ignored signals and the supervisor's blocked mask would survive exec. */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Dies with the supervisor thread, which lives as long as the fetcher. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(127);
	/* Out of our process group: a terminal's ^C is ours to handle, not rclone's. */
	setpgid(0, 0);
	if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (close_range(3, ~0U, 0) != 0) {
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	}
	execve(cmd->bin, cmd->argv, cmd->envp);
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nowhere left to say it */
	}
	_exit(127);
}

int lz_rcd_cmd_init(struct lz_rcd_cmd *cmd, const char *bin, const char *user, const char *pass,
		    const char *config)
{
	cmd->bin = strdup(bin);
	cmd->argv = make_argv(bin);
	cmd->base = make_base(config);
	cmd->envp = cmd->base != NULL ? make_env(cmd->base, user, pass) : NULL;
	if (cmd->bin == NULL || cmd->argv == NULL || cmd->envp == NULL) {
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
