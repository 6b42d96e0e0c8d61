/* SPDX-License-Identifier: BSD-2-Clause */
/* Checks on the mountpoint before anything is mounted over it, and reading mountinfo. */
#ifndef LAZYFS_MOUNTPOINT_H
#define LAZYFS_MOUNTPOINT_H

#include <stdbool.h>
#include <stdio.h>

/*
 * True when MOUNTINFO (a /proc/self/mountinfo stream) lists a mount of type
 * FSTYPE exactly at PATH (an absolute path without symlinks).
 */
bool lz_mountinfo_has(FILE *mountinfo, const char *path, const char *fstype);

/*
 * Like lz_mountinfo_has, also giving the device of the mount (of the last one
 * listed when LAST: the one on top). FSTYPE NULL: a mount of any type.
 */
bool lz_mountinfo_find(FILE *mountinfo, const char *path, const char *fstype, bool last,
		       unsigned *major, unsigned *minor);

/*
 * The type of the (first listed) mount of device MAJOR:MINOR in MOUNTINFO,
 * in FSTYPE ("ext4", "nfs4", "fuse.sshfs"...); false when none is listed.
 */
bool lz_mountinfo_fstype(FILE *mountinfo, unsigned major, unsigned minor, char *fstype, size_t len);

/*
 * MOUNTPOINT (absolute, no symlinks) as one file name, the way systemd names
 * mount units: "/opt/ce" is "opt-ce", "/" is "-", and every character but
 * letters, digits and '_' is written \xNN (bpffs refuses '.').
 */
void lz_escape_mountpoint(const char *mountpoint, char *out, size_t size);

/* Where the daemon serving MOUNTPOINT listens for lazyfsctl. */
#define LZ_CONTROL_DIR "/run/lazyfs"
void lz_control_path(const char *mountpoint, char *out, size_t size);

/* 0 when MOUNTPOINT can take a lazyfs mount; else -1 with a reason in ERR. */
int lz_mountpoint_check(const char *mountpoint, char *err, size_t errlen);

#endif
