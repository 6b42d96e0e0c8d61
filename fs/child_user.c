/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "child_user.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* NAME as a user name or a number: 0 with *PW filled, or -1. */
static int find_user(const char *name, struct passwd *pw, char *buf, size_t buflen)
{
	struct passwd *found = NULL;
	char *end;

	errno = 0;
	unsigned long n = strtoul(name, &end, 10);
	if (*name != '\0' && *end == '\0' && errno == 0 && n < (unsigned long)INT32_MAX) {
		if (getpwuid_r((uid_t)n, pw, buf, buflen, &found) == 0 && found != NULL)
			return 0;
		/* A uid without a passwd entry: its group is its uid, as systemd's DynamicUser. */
		*pw = (struct passwd){ .pw_name = (char *)name,
				       .pw_uid = (uid_t)n,
				       .pw_gid = (gid_t)n };
		return 0;
	}
	return getpwnam_r(name, pw, buf, buflen, &found) == 0 && found != NULL ? 0 : -1;
}

/*
 * Whether UID:GID, with no supplementary groups (the child has none), may
 * search every existing directory above DIR. Mode bits only: an ACL granting
 * more is not seen, and the message says which directory to open.
 */
static int check_reach(const char *dir, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;

	if (dir[0] != '/' || snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return 0; /* relative or too long: the store reports it */
	for (char *p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (stat(path, &st) == 0) {
			mode_t need = st.st_uid == uid	 ? S_IXUSR
				      : st.st_gid == gid ? S_IXGRP
							 : S_IXOTH;
			if (!(st.st_mode & need)) {
				snprintf(err, errlen,
					 "cache %s: the rclone child's user (uid %u) cannot reach "
					 "it: "
					 "%s is mode %04o, owned by %u:%u",
					 dir, (unsigned)uid, path, (unsigned)(st.st_mode & 07777),
					 (unsigned)st.st_uid, (unsigned)st.st_gid);
				return -1;
			}
		}
		*p = '/';
	}
	return 0;
}

/* "name:path" is a remote of rclone's config; ":backend,...:" and local paths are not. */
static bool named_remote(const char *remote)
{
	const char *colon = strchr(remote, ':'), *slash = strchr(remote, '/');

	return remote[0] != ':' && colon != NULL && (slash == NULL || colon < slash);
}

int lz_child_user_resolve(const struct lz_settings *cfg, struct lz_child_user *out, char *err,
			  size_t errlen)
{
	const char *name = cfg->rclone_user ? cfg->rclone_user : LZ_CHILD_USER_DEFAULT;
	struct passwd pw;
	char buf[4096];

	*out = (struct lz_child_user){ 0 };
	if (geteuid() != 0) {
		if (cfg->rclone_user == NULL)
			return 0;
		snprintf(err, errlen,
			 "rclone_user=%s: only a daemon running as root can start rclone as "
			 "another user (this one runs as uid %u, and so does its rclone)",
			 name, (unsigned)geteuid());
		return -1;
	}
	if (find_user(name, &pw, buf, sizeof(buf)) != 0) {
		snprintf(err, errlen,
			 "rclone_user: no user '%s' to run rclone as: create it (useradd --system "
			 "--user-group --no-create-home --home-dir /nonexistent --shell "
			 "/usr/sbin/nologin %s) or name another with -o rclone_user=USER",
			 name, name);
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen,
			 "rclone_user=%s: rclone must not run as root (with the rc password, a "
			 "local user could write any root file through it)",
			 name);
		return -1;
	}
	if (check_reach(cfg->cache, pw.pw_uid, pw.pw_gid, err, errlen) != 0)
		return -1;
	const char *env_config = getenv("RCLONE_CONFIG");
	if (named_remote(cfg->remote) && cfg->rclone_config == NULL &&
	    (env_config == NULL || env_config[0] == '\0')) {
		snprintf(err, errlen,
			 "remote '%.*s' names a remote of rclone's config: name its file with -o "
			 "rclone_config=FILE (rclone runs as %s and reads nothing in root's home)",
			 (int)(strchr(cfg->remote, ':') - cfg->remote + 1), cfg->remote, name);
		return -1;
	}
	out->as_user = true;
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
	return 0;
}
