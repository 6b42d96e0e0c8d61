/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * FUSE node ids (and the st_ino lazyfs reports) are derived from where a file
 * comes from: a 16-bit source number (one per backing filesystem: the underlay's
 * devices, later each image) above the backing inode number. The same backing
 * file always gets the same id, hard links share one, and ids never collide
 * across sources. Source 0 holds only the mount root (FUSE_ROOT_ID == 1).
 */
#ifndef LAZYFS_NODEID_H
#define LAZYFS_NODEID_H

#include <stdbool.h>
#include <stdint.h>

/* The mount's root; FUSE_ROOT_ID. */
#define LZ_ROOT_ID 1

#define LZ_NODEID_INO_BITS   48
#define LZ_NODEID_INO_MASK   ((UINT64_C(1) << LZ_NODEID_INO_BITS) - 1)
#define LZ_NODEID_MAX_SOURCE 0xffffu
/*
 * Reserved sources: listed-but-unresolved images, synthesized map
 * directories, remote objects, and directories of the images tree that the
 * underlay lacks; none below LZ_NODEID_FIRST_RESERVED is a device's.
 */
#define LZ_NODEID_LISTED_SOURCE	 LZ_NODEID_MAX_SOURCE
#define LZ_NODEID_SYNTH_SOURCE	 (LZ_NODEID_MAX_SOURCE - 1)
#define LZ_NODEID_REMOTE_SOURCE	 (LZ_NODEID_MAX_SOURCE - 2)
#define LZ_NODEID_TREE_SOURCE	 (LZ_NODEID_MAX_SOURCE - 3)
#define LZ_NODEID_FIRST_RESERVED LZ_NODEID_TREE_SOURCE

static inline bool lz_nodeid_fits(uint64_t backing_ino)
{
	return backing_ino <= LZ_NODEID_INO_MASK;
}

static inline uint64_t lz_nodeid_make(unsigned source, uint64_t backing_ino)
{
	return ((uint64_t)source << LZ_NODEID_INO_BITS) | (backing_ino & LZ_NODEID_INO_MASK);
}

static inline unsigned lz_nodeid_source(uint64_t nodeid)
{
	return (unsigned)(nodeid >> LZ_NODEID_INO_BITS);
}

static inline uint64_t lz_nodeid_backing_ino(uint64_t nodeid)
{
	return nodeid & LZ_NODEID_INO_MASK;
}

#endif
