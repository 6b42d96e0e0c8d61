/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel backend: a squashfs image on a read-only, autoclearing loop
 * device, mounted with the new mount API but never attached to any mount
 * namespace. Nothing shows in /proc/self/mountinfo; closing the returned
 * descriptor releases the mount and with it the loop device.
 */
#ifndef LAZYFS_KMOUNT_H
#define LAZYFS_KMOUNT_H

#include <stddef.h>

/*
 * Mounts the squashfs image IMAGE_FD (readable) detached. Returns a descriptor
 * of the mount's root directory, or -errno with a one-line reason in ERR.
 */
int lz_kmount_squashfs(int image_fd, char *err, size_t errlen);

/* True when this process can create loop devices and mounts; when false, errno says why. */
int lz_kmount_available(void);

#endif
