/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The credentials of a process that asked something of the mount, as
 * /proc/PID/status tells them: its uids and gids (real, effective, saved,
 * filesystem), its supplementary groups and its effective capabilities. The
 * kernel gives a request's uid, gid and pid only; whatever else a decision
 * needs comes from here, and a decision must fail closed when it cannot be
 * learnt (the process is gone, its pid is another process's by now, /proc
 * hides it, or it holds more groups than are kept).
 *
 * Calls return 0 or -errno; nothing here keeps state between calls.
 */
#ifndef LAZYFS_CALLER_H
#define LAZYFS_CALLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LZ_CALLER_GROUPS 1024 /* more: the groups count as unknown */

/* Capabilities by number, as <linux/capability.h> has them. */
#define LZ_CAP_DAC_OVERRIDE    1
#define LZ_CAP_DAC_READ_SEARCH 2
#define LZ_CAP_SYS_ADMIN       21

struct lz_caller {
	uid_t uid[4]; /* real, effective, saved, filesystem */
	gid_t gid[4];
	gid_t groups[LZ_CALLER_GROUPS];
	size_t ngroups;
	uint64_t cap_eff;
	/*
	 * Whether the capabilities count: the process is in the initial user
	 * namespace (a container's root holds its capabilities over its own
	 * namespace only). cap_eff is 0 when not.
	 */
	bool init_userns;
};

enum { LZ_ID_REAL, LZ_ID_EFFECTIVE, LZ_ID_SAVED, LZ_ID_FS };

/*
 * Parses the text of a /proc/PID/status (LEN bytes) into C: 0, or -EINVAL
 * when a field is missing or malformed, -E2BIG past LZ_CALLER_GROUPS groups.
 * C->init_userns is left false (status does not say).
 */
int lz_caller_parse(const char *text, size_t len, struct lz_caller *c);

/*
 * Learns process PID's credentials: its status, and whether its user
 * namespace is the initial one (/proc/PID/uid_map maps every id to itself).
 * -ESRCH when it is gone or hidden, the errors of lz_caller_parse.
 */
int lz_caller_read(pid_t pid, struct lz_caller *c);

/* Whether C's filesystem gid or one of its supplementary groups is GID. */
bool lz_caller_in_group(const struct lz_caller *c, gid_t gid);

/* Whether C holds capability CAP (LZ_CAP_*) over the initial user namespace. */
bool lz_caller_capable(const struct lz_caller *c, unsigned cap);

#endif
