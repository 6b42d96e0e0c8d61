/*
 * After setup lazyfs keeps only the capabilities it uses while serving, in
 * every set and the bounding set (so the rclone child cannot get the others
 * back either):
 *   CAP_SYS_ADMIN        passthrough backing files (FUSE_DEV_IOC_BACKING_OPEN),
 *                        loop devices and fsmount() for the kernel backend,
 *                        the unmount at exit;
 *   CAP_DAC_OVERRIDE,    reading whatever the clients may read: the kernel
 *   CAP_DAC_READ_SEARCH  checks their permissions (default_permissions), the
 *                        daemon opens backing files as itself;
 *   CAP_BPF              updating the tracker's maps (bpf() needs it when
 *                        unprivileged BPF is disabled);
 *   CAP_SYS_RESOURCE     raising limits (RLIMIT_NOFILE) for many open inodes;
 *   CAP_FOWNER, CAP_CHOWN the cache's own files and directories.
 */
#include "config.h"
#include "privileges.h"
#include "log.h"

#include <errno.h>
#include <string.h>

#ifdef HAVE_LIBCAP
#include <sys/capability.h>
#include <sys/prctl.h>

static const cap_value_t kept[] = {
	CAP_SYS_ADMIN,	  CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_BPF,
	CAP_SYS_RESOURCE, CAP_FOWNER,	    CAP_CHOWN,
};

static bool is_kept(cap_value_t c)
{
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (kept[i] == c)
			return true;
	return false;
}

int lz_drop_privileges(void)
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
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (is_kept(c))
			continue;
		/* The bounding set first: it needs CAP_SETPCAP, dropped last. */
		if (CAP_IS_SUPPORTED(c) && cap_drop_bound(c) == 0)
			dropped++;
		cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_CLEAR);
		cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_CLEAR);
		cap_set_flag(caps, CAP_INHERITABLE, 1, &c, CAP_CLEAR);
	}
	if (cap_set_proc(caps) != 0)
		rc = -errno;
	cap_free(caps);
	if (rc == 0)
		lz_debug("dropped %u capabilities; kept sys_admin, dac_override, dac_read_search, "
			 "bpf, sys_resource, fowner, chown",
			 dropped);
	return rc;
}
#else
int lz_drop_privileges(void)
{
	return 0;
}
#endif
