/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Who the tracker acts for (opener.h).
 */
#include "config.h"
#include "opener.h"
#include "common/mountpoint.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define GROUPS_MAX 256

struct creds {
	uid_t euid;
	gid_t egid;
	gid_t groups[GROUPS_MAX];
	size_t ngroups;
};

/* TGID's effective uid, gid and supplementary groups from /proc; false when it is gone. */
static bool read_creds(pid_t tgid, struct creds *c)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	unsigned found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tgid);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	c->ngroups = 0;
	while (getline(&line, &cap, f) > 0) {
		unsigned long real, eff;
		if (sscanf(line, "Uid: %lu %lu", &real, &eff) == 2) {
			c->euid = (uid_t)eff;
			found |= 1;
		} else if (sscanf(line, "Gid: %lu %lu", &real, &eff) == 2) {
			c->egid = (gid_t)eff;
			found |= 2;
		} else if (strncmp(line, "Groups:", 7) == 0) {
			char *p = line + 7, *end;
			for (;;) {
				unsigned long g = strtoul(p, &end, 10);
				if (end == p || c->ngroups == GROUPS_MAX)
					break;
				c->groups[c->ngroups++] = (gid_t)g;
				p = end;
			}
		}
	}
	free(line);
	fclose(f);
	return found == 3;
}

static bool in_groups(const struct creds *c, gid_t gid)
{
	if (c->egid == gid)
		return true;
	for (size_t i = 0; i < c->ngroups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

/*
 * Whether the mount on top at PREFIX in TGID's mount namespace is ours (of
 * device DEV), from its mountinfo: /proc/PID/root would need the daemon to
 * hold every capability the process holds (ptrace's rule), and it does not.
 */
static bool sees_mount(pid_t tgid, const char *prefix, dev_t dev)
{
	char path[64];
	unsigned major, minor;
	FILE *f;
	bool found;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)tgid);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	/* Of any type: another filesystem mounted over ours hides it. */
	found = lz_mountinfo_find(f, prefix, NULL, true, &major, &minor);
	fclose(f);
	return found && makedev(major, minor) == dev;
}

bool lz_opener_may_use(pid_t tgid, const char *prefix, dev_t dev, const struct stat *root,
		       bool allow_other)
{
	const struct stat st = *root; /* the same in every namespace that sees the mount */
	struct creds c;

	if (!sees_mount(tgid, prefix, dev) || !read_creds(tgid, &c))
		return false;
	if (c.euid == 0)
		return true;
	if (!allow_other)
		return false; /* the kernel lets only the mount's owner, root, in */
	if (st.st_uid == c.euid)
		return st.st_mode & S_IXUSR;
	if (in_groups(&c, st.st_gid))
		return st.st_mode & S_IXGRP;
	return st.st_mode & S_IXOTH;
}
