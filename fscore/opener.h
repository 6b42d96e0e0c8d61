/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Who the tracker acts for. An event names a process and a path string that
 * matched the prefix; it starts work (a resolve, a mount, a fetch) only for a
 * process that sees this very mount at the prefix (its mount namespace's
 * view: a sandbox with a bind mount of the prefix
 * does, a container with another tree there does not; read from its
 * mountinfo, so a mount namespace whose paths differ from ours, as a chroot's
 * do, counts as not seeing it) and may search the
 * mount's root (root only, unless the mount allows others; then its effective
 * uid and groups against the root's mode). The
 * check is made when the worker takes the event; a process gone by then, or
 * whose pid was reused, is not acted for. An entry whose event is not acted
 * for stays pending in the tracker's map: its later opens resolve through
 * the kernel's LOOKUP, as without the tracker.
 */
#ifndef LAZYFS_OPENER_H
#define LAZYFS_OPENER_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * Whether process TGID sees the mount of device DEV at PREFIX and may search
 * its root, of stat ROOT; ALLOW_OTHER: users other than root may use the
 * mount at all. Reads /proc/TGID/mountinfo and /proc/TGID/status only.
 */
bool lz_opener_may_use(pid_t tgid, const char *prefix, dev_t dev, const struct stat *root,
		       bool allow_other);

#endif
