/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A hash table of fixed size by 64-bit key, in memory the caller gives (a
 * region the keeper keeps): COUNT slots of STRIDE bytes, each opening with
 * its key, with linear probing. A dropped slot leaves a tombstone so that
 * probes go on past it; a new key takes the first tombstone it passed. At
 * most three quarters of the slots are ever taken, tombstones included, so
 * every probe ends at a free slot soon: past that, the table is rebuilt
 * without its tombstones, or, full of live keys, takes no new ones.
 *
 * Keys 0 and 1 are the table's own (free, tombstone). Not thread-safe: the
 * caller locks.
 */
#ifndef LAZYFS_SLOTS_H
#define LAZYFS_SLOTS_H

#include <stddef.h>
#include <stdint.h>

/* The counts, kept in the region with the slots. */
struct lz_slots_head {
	uint32_t live, tombstones;
};

struct lz_slots {
	struct lz_slots_head *head;
	unsigned char *base; /* COUNT slots */
	size_t stride;	     /* bytes a slot, a multiple of 8 */
	uint32_t count;
};

#define LZ_SLOTS_MIN_KEY 2

/* KEY's slot, or NULL. */
void *lz_slots_find(const struct lz_slots *t, uint64_t key);
/* KEY's slot: its own, or a new one (its key set, the rest zeroed); NULL when full. */
void *lz_slots_take(struct lz_slots *t, uint64_t key);
/* Drops SLOT (from find or take). */
void lz_slots_drop(struct lz_slots *t, void *slot);

#endif
