/*
 * Who the tracker acts for (opener.h).
 */
#include "config.h"
#include "opener.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

bool lz_opener_may_use(pid_t tgid, const char *prefix, dev_t dev, bool allow_other)
{
	char path[PATH_MAX + 32];
	struct creds c;
	struct stat st;

	/* The path as the process resolves it, from its own root. */
	if (snprintf(path, sizeof(path), "/proc/%d/root%s", (int)tgid, prefix) >=
		    (int)sizeof(path) ||
	    stat(path, &st) != 0 || st.st_dev != dev || !read_creds(tgid, &c))
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
