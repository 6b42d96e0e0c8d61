/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The parked backing ids: a fixed pool of entries, found by node id through a
 * hash table and ordered by a least-recently-parked list, behind one mutex
 * that is never held while calling anything else (callers hold inode locks,
 * and the cache's eviction callback holds the store's).
 *
 * Ids are closed with the ioctl itself rather than fuse_passthrough_close(),
 * which needs a request: evictions happen on the tracker's and prefetch's
 * threads too, and their disk space is wanted back at once.
 */
#include "config.h"
#include "linger.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* The kernel's uapi (linux/fuse.h since 6.9; Debian 12's headers predate it). */
#ifndef FUSE_DEV_IOC_BACKING_CLOSE
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
#endif

struct parked {
	uint64_t nodeid;
	const void *owner;
	int backing_id;
	struct parked *hash_next;
	struct parked *older, *newer; /* LRU list, or the free list through newer */
};

struct lz_linger {
	pthread_mutex_t lock;
	unsigned max, count, buckets_mask;
	struct parked *pool, *free_list;
	struct parked **buckets;
	struct parked *oldest, *newest;
	atomic_int fuse_fd;
};

struct lz_linger *lz_linger_new(unsigned max)
{
	struct lz_linger *l = calloc(1, sizeof(*l));
	unsigned buckets = 1;

	if (l == NULL)
		return NULL;
	while (buckets < max * 2)
		buckets <<= 1;
	l->max = max;
	l->buckets_mask = buckets - 1;
	l->pool = calloc(max ? max : 1, sizeof(*l->pool));
	l->buckets = calloc(buckets, sizeof(*l->buckets));
	if (l->pool == NULL || l->buckets == NULL) {
		lz_linger_free(l);
		return NULL;
	}
	for (unsigned i = 0; i < max; i++) {
		l->pool[i].newer = l->free_list;
		l->free_list = &l->pool[i];
	}
	pthread_mutex_init(&l->lock, NULL);
	atomic_store(&l->fuse_fd, -1);
	return l;
}

void lz_linger_free(struct lz_linger *l)
{
	if (l == NULL)
		return;
	free(l->pool);
	free(l->buckets);
	free(l);
}

void lz_linger_set_device(struct lz_linger *l, int fuse_fd)
{
	atomic_store(&l->fuse_fd, fuse_fd);
}

void lz_linger_close(struct lz_linger *l, int backing_id)
{
	uint32_t id = (uint32_t)backing_id;
	int fd = atomic_load(&l->fuse_fd);

	if (backing_id > 0 && fd >= 0 && ioctl(fd, FUSE_DEV_IOC_BACKING_CLOSE, &id) != 0)
		lz_debug("backing id %d: not closed: %s", backing_id, strerror(errno));
}

static struct parked **slot_of(struct lz_linger *l, uint64_t nodeid)
{
	uint64_t h = nodeid * UINT64_C(0x9e3779b97f4a7c15);
	return &l->buckets[(h >> 32) & l->buckets_mask];
}

/* Unlinks P from the hash and the list and returns its id; lock held. */
static int unpark(struct lz_linger *l, struct parked *p)
{
	struct parked **pp = slot_of(l, p->nodeid);
	int id = p->backing_id;

	while (*pp != p)
		pp = &(*pp)->hash_next;
	*pp = p->hash_next;
	if (p->older != NULL)
		p->older->newer = p->newer;
	else
		l->oldest = p->newer;
	if (p->newer != NULL)
		p->newer->older = p->older;
	else
		l->newest = p->older;
	memset(p, 0, sizeof(*p));
	p->newer = l->free_list;
	l->free_list = p;
	l->count--;
	return id;
}

void lz_linger_park(struct lz_linger *l, uint64_t nodeid, int backing_id, const void *owner)
{
	int pushed_out = 0;

	if (l->max == 0) {
		lz_linger_close(l, backing_id);
		return;
	}
	pthread_mutex_lock(&l->lock);
	if (l->free_list == NULL)
		pushed_out = unpark(l, l->oldest);
	struct parked *p = l->free_list;
	l->free_list = p->newer;
	*p = (struct parked){ .nodeid = nodeid, .owner = owner, .backing_id = backing_id };
	struct parked **slot = slot_of(l, nodeid);
	p->hash_next = *slot;
	*slot = p;
	p->older = l->newest;
	if (l->newest != NULL)
		l->newest->newer = p;
	else
		l->oldest = p;
	l->newest = p;
	l->count++;
	pthread_mutex_unlock(&l->lock);
	lz_linger_close(l, pushed_out);
}

static struct parked *find(struct lz_linger *l, uint64_t nodeid)
{
	struct parked *p = *slot_of(l, nodeid);

	while (p != NULL && p->nodeid != nodeid)
		p = p->hash_next;
	return p;
}

int lz_linger_take(struct lz_linger *l, uint64_t nodeid)
{
	int id = 0;

	pthread_mutex_lock(&l->lock);
	struct parked *p = find(l, nodeid);
	if (p != NULL)
		id = unpark(l, p);
	pthread_mutex_unlock(&l->lock);
	return id;
}

void lz_linger_revoke(struct lz_linger *l, uint64_t nodeid)
{
	lz_linger_close(l, lz_linger_take(l, nodeid));
}

/* Closes the ids of OWNER, or all of them when ALL. */
static void revoke_where(struct lz_linger *l, bool all, const void *owner)
{
	int *ids = NULL;
	size_t n = 0;

	pthread_mutex_lock(&l->lock);
	if (l->count > 0 && (ids = malloc(l->count * sizeof(*ids))) != NULL)
		for (struct parked *p = l->oldest, *next; p != NULL; p = next) {
			next = p->newer;
			if (all || p->owner == owner)
				ids[n++] = unpark(l, p);
		}
	pthread_mutex_unlock(&l->lock);
	/* Without memory the ids stay parked: the image's FORGETs close them. */
	for (size_t i = 0; i < n; i++)
		lz_linger_close(l, ids[i]);
	free(ids);
}

void lz_linger_revoke_owner(struct lz_linger *l, const void *owner)
{
	revoke_where(l, false, owner);
}

void lz_linger_clear(struct lz_linger *l)
{
	revoke_where(l, true, NULL);
}

unsigned lz_linger_count(struct lz_linger *l)
{
	pthread_mutex_lock(&l->lock);
	unsigned n = l->count;
	pthread_mutex_unlock(&l->lock);
	return n;
}
