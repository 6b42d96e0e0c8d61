/* SPDX-License-Identifier: BSD-2-Clause */
/* Giving up what the daemon does not need once it serves. */
#ifndef LAZYFS_PRIVILEGES_H
#define LAZYFS_PRIVILEGES_H

#include <stdbool.h>

/* What this mount does beyond reading, each needing a capability of its own. */
struct lz_privilege_needs {
	/*
	 * Starts its rclone child under another uid (setuid, setgid), signals it
	 * (kill), and hands the files it fetched to root (chown).
	 */
	bool child_uid;
};

/*
 * Drops every capability but those serving needs (see privileges.c), from
 * the effective, permitted and bounding sets; the inheritable and ambient
 * sets are emptied, so nothing this process executes inherits any. 0 also
 * when there was nothing to drop or lazyfs was built without libcap; -errno
 * when the kernel refused.
 */
int lz_drop_privileges(const struct lz_privilege_needs *needs);

#endif
