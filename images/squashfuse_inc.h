/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libsquashfuse's headers, included the way they must be: by sqfs.c and
 * superblock.c only (the rest of lazyfs sees sqfs.h).
 */
#ifndef LAZYFS_SQUASHFUSE_INC_H
#define LAZYFS_SQUASHFUSE_INC_H

#include <sys/types.h>

/*
 * The library's headers include "config.h", which the compiler finds next to
 * them: libsquashfuse's own installed config.h, which defines _POSIX_C_SOURCE,
 * PACKAGE, VERSION, FUSE_USE_VERSION, ... over ours. Its include guard lets us
 * mark it as read; the only macro the public headers consult is
 * HAVE_LINUX_TYPES_LE16 (take __le16 etc. from <linux/types.h>).
 */
#define SQFS_CONFIG_H	      1
#define HAVE_LINUX_TYPES_LE16 1
#include <squashfuse.h>

/* The library's structures use off_t; it was built without _FILE_OFFSET_BITS. */
_Static_assert(sizeof(off_t) == 8, "libsquashfuse is only ABI-compatible with a 64-bit off_t");

/* Bytes of the superblock, where every image begins. */
#define LZ_SQFS_SB_SIZE ((uint64_t)sizeof(struct squashfs_super_block))

#endif
