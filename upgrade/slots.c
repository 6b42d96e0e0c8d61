/* SPDX-License-Identifier: BSD-2-Clause */
/* The fixed hash table of the keeper's records (slots.h). */
#include "config.h"
#include "slots.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FREE	  0u
#define TOMBSTONE 1u

static uint64_t *slot_at(const struct lz_slots *t, uint32_t i)
{
	return (uint64_t *)(t->base + (size_t)i * t->stride);
}

static uint32_t home_of(const struct lz_slots *t, uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (uint32_t)(key % t->count);
}

/* KEY's slot, or NULL with where it would go in *SPOT (NULL when none). */
static uint64_t *probe(const struct lz_slots *t, uint64_t key, uint64_t **spot)
{
	uint32_t at = home_of(t, key);

	*spot = NULL;
	for (uint32_t i = 0; i < t->count; i++) {
		uint64_t *slot = slot_at(t, (at + i) % t->count);
		if (*slot == key)
			return slot;
		if (*slot == TOMBSTONE && *spot == NULL)
			*spot = slot;
		if (*slot == FREE) {
			if (*spot == NULL)
				*spot = slot;
			return NULL;
		}
	}
	return NULL;
}

void *lz_slots_find(const struct lz_slots *t, uint64_t key)
{
	uint64_t *spot;

	return key >= LZ_SLOTS_MIN_KEY ? probe(t, key, &spot) : NULL;
}

/* Every live slot placed again, the tombstones gone. */
static void rebuild(struct lz_slots *t)
{
	uint32_t live = t->head->live, n = 0;
	unsigned char *copy = malloc(t->stride * (live + 1));
	uint64_t *spot;

	if (copy == NULL)
		return;
	for (uint32_t i = 0; i < t->count; i++) {
		uint64_t *slot = slot_at(t, i);
		if (*slot >= LZ_SLOTS_MIN_KEY && n < live)
			memcpy(copy + (size_t)n++ * t->stride, slot, t->stride);
		*slot = FREE;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t key;
		memcpy(&key, copy + (size_t)i * t->stride, sizeof(key));
		if (probe(t, key, &spot) == NULL && spot != NULL)
			memcpy(spot, copy + (size_t)i * t->stride, t->stride);
	}
	t->head->live = n;
	t->head->tombstones = 0;
	free(copy);
}

void *lz_slots_take(struct lz_slots *t, uint64_t key)
{
	uint32_t most = t->count / 4 * 3;
	uint64_t *slot, *spot;

	if (key < LZ_SLOTS_MIN_KEY)
		return NULL;
	if ((slot = probe(t, key, &spot)) != NULL)
		return slot;
	if (t->head->live + t->head->tombstones >= most && t->head->live < most / 2) {
		rebuild(t);
		probe(t, key, &spot);
	}
	if (spot == NULL || t->head->live + t->head->tombstones >= most)
		return NULL;
	if (*spot == TOMBSTONE)
		t->head->tombstones--;
	t->head->live++;
	memset(spot, 0, t->stride);
	*spot = key;
	return spot;
}

void lz_slots_drop(struct lz_slots *t, void *slot)
{
	*(uint64_t *)slot = TOMBSTONE;
	t->head->live--;
	t->head->tombstones++;
}
