/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internal to the rclone fetcher: how the `rclone rcd` child is made. Its
 * command line and environment are built once; each spawn forks and execs
 * with nothing of ours but what it needs.
 */
#ifndef LAZYFS_CACHE_RCLONE_SPAWN_H
#define LAZYFS_CACHE_RCLONE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Who the child runs as and what configures it. */
struct lz_rcd_how {
	/* rclone's config file (its RCLONE_CONFIG); NULL: the environment's, if any. */
	const char *config;
	/*
	 * Run as UID:GID (not 0) with no supplementary groups: a root daemon's
	 * child. It gets a sealed in-memory copy of the config file read now (it
	 * may not read the file itself), as RCLONE_CONFIG=/dev/fd/3, and HOME is
	 * /nonexistent: nothing of root's home is its to read.
	 */
	bool as_user;
	uid_t uid;
	gid_t gid;
	/*
	 * Not NULL: --rc-serve on, and this remote named LZ_RCD_SERVE_NAME in the
	 * child's environment (an alias), so GET /[lazyfs_remote:]/PATH with a
	 * Range header reads an object: what streamed reads use. The remote's own
	 * string cannot go in the URL: rclone's router folds the "//" of an
	 * inline remote's url= and redirects. rc-serve answers only with the rc
	 * credentials, which could already copy any object the child reaches.
	 */
	const char *serve_remote;
};

#define LZ_RCD_SERVE_NAME "lazyfs_remote"
#define LZ_RCD_SERVE_ENV  "RCLONE_CONFIG_LAZYFS_REMOTE_"

struct lz_rcd_cmd {
	char *bin;
	char **argv;
	char **envp;
	char **base; /* the environment as it was at init, filtered: envp without credentials */
	bool as_user;
	uid_t uid;
	gid_t gid;
	int config_fd; /* the config's copy for a child running as_user, or -1 */
};

/*
 * The command for BIN (a path): `rclone rcd` on 127.0.0.1 with a port the
 * kernel picks, auth on, no GUI, no file serving, logs on stderr; USER and
 * PASS in its environment, which is ours as it is now minus the variables
 * that would change those settings; run as HOW says. -errno with WHY.
 */
int lz_rcd_cmd_init(struct lz_rcd_cmd *cmd, const char *bin, const char *user, const char *pass,
		    const struct lz_rcd_how *how, char *why, size_t whylen);
/* Gives the next child USER and PASS instead (over the environment kept at init). -errno. */
int lz_rcd_cmd_set_creds(struct lz_rcd_cmd *cmd, const char *user, const char *pass);
/* Frees the command, wiping the password's copy. */
void lz_rcd_cmd_destroy(struct lz_rcd_cmd *cmd);

/*
 * Forks and execs CMD: its stdin is /dev/null, stdout and stderr go to *OUT
 * (non-blocking, for the caller to read), other descriptors are closed, its
 * signal state is reset, it leaves our process group and gets SIGTERM when
 * the calling thread ends. It runs with no capabilities in any set and
 * no_new_privs (so it can never gain any), as CMD's user if it has one. 0 with *PID, *PIDFD and
 * *OUT; -errno with WHY.
 */
int lz_rcd_spawn(const struct lz_rcd_cmd *cmd, pid_t *pid, int *pidfd, int *out, char *why,
		 size_t whylen);

#endif
