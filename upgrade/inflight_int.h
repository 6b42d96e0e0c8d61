/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The in-flight record's layout in its memfd (inflight.h): what inflight.c
 * and the fuzz target that damages a kept record share. Not for users of
 * the record, which go through inflight.h.
 */
#ifndef LAZYFS_INFLIGHT_INT_H
#define LAZYFS_INFLIGHT_INT_H

#include <stdatomic.h>
#include <stdint.h>

#define LZ_INFLIGHT_MAGIC	 0x6c7a6966u /* "lzif" */
#define LZ_INFLIGHT_VERSION	 2u
#define LZ_INFLIGHT_SLOTS	 1024u /* FUSE workers and deferral threads, with room */
#define LZ_INFLIGHT_SUSPECTS	 64u
#define LZ_INFLIGHT_POISON_AFTER 2u /* crashes in a row with it in flight */

struct lz_inflight_suspect {
	uint64_t sig;
	uint32_t crashes; /* in a row with it in flight */
	uint32_t strikes; /* times it was answered EIO as poison */
};

struct lz_inflight_region {
	uint32_t magic, version;
	_Atomic uint32_t sources;		   /* source numbers the worker took */
	_Atomic uint64_t slots[LZ_INFLIGHT_SLOTS]; /* signatures in flight; 0: free */
	struct lz_inflight_suspect suspects[LZ_INFLIGHT_SUSPECTS];
};

#endif
