/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * After setup lazyfs keeps only the capabilities it uses while serving, in
 * the effective, permitted and bounding sets (so nothing it starts can get the
 * others back either):
 *   CAP_SYS_ADMIN        passthrough backing files (FUSE_DEV_IOC_BACKING_OPEN),
 *                        loop devices and fsmount() for the kernel backend,
 *                        the unmount at exit, reloading the tracker's BPF
 *                        program after a failed upgrade (it also stands for
 *                        CAP_BPF and CAP_PERFMON);
 *   CAP_DAC_OVERRIDE,    reading whatever the clients may read: the kernel
 *   CAP_DAC_READ_SEARCH  checks their permissions (default_permissions), the
 *                        daemon opens backing files as itself, and clears the
 *                        rclone child's download directories;
 * and, with a remote whose rclone child runs under a uid of its own:
 *   CAP_SETUID,          starting that child (each restart is a new one) under
 *   CAP_SETGID           its uid and gid, with no supplementary groups;
 *   CAP_KILL             stopping it (another uid's process);
 *   CAP_CHOWN            handing each fetched file to root before it is checked,
 *                        so the child can no longer change it.
 * Not kept: CAP_SYS_RESOURCE (RLIMIT_NOFILE is raised to its hard limit before,
 * which needs none; the cache then stops at the root-reserved blocks), CAP_FOWNER
 * (every file the daemon changes is its own), CAP_BPF (CAP_SYS_ADMIN covers it).
 */
#include "config.h"
#include "privileges.h"
#include "log.h"

#include <errno.h>
#include <string.h>

#ifdef HAVE_LIBCAP
#include <sys/capability.h>
#include <sys/prctl.h>

static const cap_value_t always[] = { CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH };
static const cap_value_t for_child_uid[] = { CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN };

static bool listed(const cap_value_t *caps, size_t n, cap_value_t c)
{
	for (size_t i = 0; i < n; i++)
		if (caps[i] == c)
			return true;
	return false;
}

static bool is_kept(const struct lz_privilege_needs *needs, cap_value_t c)
{
	return listed(always, sizeof(always) / sizeof(always[0]), c) ||
	       (needs->child_uid &&
		listed(for_child_uid, sizeof(for_child_uid) / sizeof(for_child_uid[0]), c));
}

int lz_drop_privileges(const struct lz_privilege_needs *needs)
{
	cap_t caps = cap_get_proc();
	cap_flag_value_t has;
	unsigned dropped = 0;
	int rc = 0;

	if (caps == NULL)
		return -errno;
	if (cap_get_flag(caps, CAP_SETPCAP, CAP_EFFECTIVE, &has) != 0 || has != CAP_SET) {
		cap_free(caps);
		return 0; /* not privileged: nothing to give up */
	}
	/* Kept ones too: what we execute (an upgrade, rclone) gets nothing by inheritance. */
	if (cap_clear_flag(caps, CAP_INHERITABLE) != 0 || cap_reset_ambient() != 0)
		rc = -errno;
	for (cap_value_t c = 0; rc == 0 && c <= CAP_LAST_CAP; c++) {
		if (is_kept(needs, c))
			continue;
		/* The bounding set first: it needs CAP_SETPCAP, dropped last. */
		if (CAP_IS_SUPPORTED(c) && cap_drop_bound(c) == 0)
			dropped++;
		cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_CLEAR);
		cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_CLEAR);
	}
	if (rc == 0 && cap_set_proc(caps) != 0)
		rc = -errno;
	cap_free(caps);
	if (rc == 0)
		lz_debug("dropped %u capabilities; kept sys_admin, dac_override, dac_read_search%s",
			 dropped, needs->child_uid ? ", setuid, setgid, kill, chown" : "");
	return rc;
}
#else
int lz_drop_privileges(const struct lz_privilege_needs *needs)
{
	(void)needs;
	return 0;
}
#endif
