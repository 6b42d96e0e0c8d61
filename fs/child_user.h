/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Who a root daemon's rclone child runs as: rclone_user= (default _lazyfs),
 * resolved and checked at mount time so a setup that could not fetch fails
 * the mount with one line, not every later open.
 */
#ifndef LAZYFS_CHILD_USER_H
#define LAZYFS_CHILD_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fscore/settings.h"

#define LZ_CHILD_USER_DEFAULT "_lazyfs"

struct lz_child_user {
	bool as_user; /* false: the daemon is not root, the child runs as the daemon's uid */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/*
 * Fills OUT for CFG's remote: a root daemon's child runs as rclone_user
 * (never root), which must exist and reach the cache directory; a named
 * remote needs a config file the daemon can hand it (rclone_config= or
 * RCLONE_CONFIG). 0, or -1 with a one-line reason in ERR.
 */
int lz_child_user_resolve(const struct lz_settings *cfg, struct lz_child_user *out, char *err,
			  size_t errlen);

#endif
