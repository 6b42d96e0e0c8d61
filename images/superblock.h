/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Checks of a squashfs image's superblock, made before libsquashfuse reads
 * the image (superblock.c). Internal to images/.
 */
#ifndef LAZYFS_SUPERBLOCK_H
#define LAZYFS_SUPERBLOCK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads and checks the superblock of the image open at FD: 0 with the bytes
 * the image uses, or -errno with the reason in ERR.
 */
int lz_sqfs_check_superblock(int fd, uint64_t *bytes_used, char *err, size_t errlen);

#endif
