/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Every lookup and release names its key. OpenSSL 3's one-shot SHA256() looks
 * the algorithm up on each call (300 ns, more than the rest of a lookup): it
 * is fetched once instead (130 ns), and kept for the life of the process.
 */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void sha_name(const char *key, size_t keylen, uint8_t name[LZ_NAME_BYTES])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	pthread_once(&sha256_once, fetch_sha256);
	if (sha256 == NULL || EVP_Digest(key, keylen, md, NULL, sha256, NULL) != 1)
		SHA256((const unsigned char *)key, keylen, md);
	memcpy(name, md, LZ_NAME_BYTES);
}

void (*lz_store_name_fn)(const char *key, size_t keylen, uint8_t name[LZ_NAME_BYTES]) = sha_name;

static size_t bucket_of(const struct lz_table *t, const uint8_t name[LZ_NAME_BYTES])
{
	uint64_t h;

	memcpy(&h, name, sizeof(h));
	return h & (t->nbuckets - 1);
}

void lz_table_init(struct lz_table *t)
{
	t->nbuckets = 0;
	t->count = 0;
	t->buckets = NULL;
}

struct lz_entry *lz_entry_new(const char *key, size_t keylen)
{
	struct lz_entry *e = calloc(1, sizeof(*e) + keylen + 1);

	if (e == NULL)
		return NULL;
	e->key = (char *)(e + 1);
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	e->keylen = keylen;
	return e;
}

void lz_entry_free(struct lz_entry *e)
{
	if (e == NULL)
		return;
	free(e->hash);
	free(e->flight);
	free(e);
}

void lz_table_free(struct lz_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct lz_entry *e = t->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->hnext;
			lz_entry_free(e);
		}
	}
	free(t->buckets);
	lz_table_init(t);
}

/* Keeps chains short: doubles when entries outnumber buckets. False: ENOMEM. */
static bool table_room(struct lz_table *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 1024;
	struct lz_entry **b;

	if (t->count < t->nbuckets)
		return true;
	b = calloc(n, sizeof(*b));
	if (b == NULL)
		return t->nbuckets > 0; /* longer chains, still correct */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct lz_entry *e = t->buckets[i], *next;
		for (; e != NULL; e = next) {
			uint64_t h;
			next = e->hnext;
			memcpy(&h, e->name, sizeof(h));
			e->hnext = b[h & (n - 1)];
			b[h & (n - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return true;
}

struct lz_entry *lz_table_find(struct lz_table *t, const char *key, size_t keylen,
			       const uint8_t name[LZ_NAME_BYTES])
{
	struct lz_entry *e;

	if (t->nbuckets == 0)
		return NULL;
	for (e = t->buckets[bucket_of(t, name)]; e != NULL; e = e->hnext)
		if (e->keylen == keylen && memcmp(e->name, name, LZ_NAME_BYTES) == 0 &&
		    memcmp(e->key, key, keylen) == 0)
			return e;
	return NULL;
}

static bool slot_taken(const struct lz_table *t, const uint8_t name[LZ_NAME_BYTES], uint32_t slot)
{
	for (struct lz_entry *e = t->buckets[bucket_of(t, name)]; e != NULL; e = e->hnext)
		if (e->slot == slot && memcmp(e->name, name, LZ_NAME_BYTES) == 0)
			return true;
	return false;
}

static void link_entry(struct lz_table *t, struct lz_entry *e)
{
	size_t b = bucket_of(t, e->name);

	e->hnext = t->buckets[b];
	t->buckets[b] = e;
	t->count++;
}

struct lz_entry *lz_table_add(struct lz_table *t, const char *key, size_t keylen,
			      const uint8_t name[LZ_NAME_BYTES])
{
	struct lz_entry *e;

	if (!table_room(t))
		return NULL;
	e = lz_entry_new(key, keylen);
	if (e == NULL)
		return NULL;
	memcpy(e->name, name, LZ_NAME_BYTES);
	/* SHA-256 names practically never collide, but a collision must not lose an object. */
	while (slot_taken(t, name, e->slot))
		e->slot++;
	e->state = LZ_ABSENT;
	link_entry(t, e);
	return e;
}

bool lz_table_insert(struct lz_table *t, struct lz_entry *e)
{
	if (!table_room(t) || lz_table_find(t, e->key, e->keylen, e->name) != NULL ||
	    slot_taken(t, e->name, e->slot))
		return false;
	link_entry(t, e);
	return true;
}

static void table_remove(struct lz_table *t, struct lz_entry *e)
{
	struct lz_entry **p = &t->buckets[bucket_of(t, e->name)];

	for (; *p != NULL; p = &(*p)->hnext)
		if (*p == e) {
			*p = e->hnext;
			t->count--;
			return;
		}
}

void lz_entry_path(const struct lz_entry *e, char path[LZ_OBJ_PATH])
{
	static const char hex[] = "0123456789abcdef";
	char *p = path;

	*p++ = hex[e->name[0] >> 4];
	*p++ = hex[e->name[0] & 15];
	*p++ = '/';
	for (int i = 0; i < LZ_NAME_BYTES; i++) {
		*p++ = hex[e->name[i] >> 4];
		*p++ = hex[e->name[i] & 15];
	}
	snprintf(p, LZ_OBJ_PATH - (size_t)(p - path), "-%u", e->slot);
}

static void lru_remove(struct lz_store *s, struct lz_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		s->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		s->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
	e->in_lru = false;
}

static void lru_append(struct lz_store *s, struct lz_entry *e)
{
	e->lru_next = NULL;
	e->lru_prev = s->lru_tail;
	if (s->lru_tail)
		s->lru_tail->lru_next = e;
	else
		s->lru_head = e;
	s->lru_tail = e;
	e->in_lru = true;
}

/*
 * The LRU list holds exactly the entries eviction may take. An entry joins at
 * the tail, as the most recent: it was just published, released or unpinned.
 */
static void lru_update(struct lz_store *s, struct lz_entry *e)
{
	bool evictable = e->state == LZ_READY && e->opens == 0 && e->pins == 0;

	if (evictable && !e->in_lru)
		lru_append(s, e);
	else if (!evictable && e->in_lru)
		lru_remove(s, e);
}

static int by_atime(const void *a, const void *b)
{
	const struct lz_entry *x = *(struct lz_entry *const *)a, *y = *(struct lz_entry *const *)b;

	return (x->atime > y->atime) - (x->atime < y->atime);
}

void lz_lru_sort(struct lz_store *s)
{
	size_t n = 0;
	struct lz_entry **all, *e;

	all = malloc((s->table.count + 1) * sizeof(*all));
	if (all == NULL)
		return; /* publication order then: only the eviction order suffers */
	for (e = s->lru_head; e != NULL; e = e->lru_next)
		all[n++] = e;
	qsort(all, n, sizeof(*all), by_atime);
	s->lru_head = s->lru_tail = NULL;
	for (size_t i = 0; i < n; i++)
		lru_append(s, all[i]);
	free(all);
}

void lz_entry_published(struct lz_store *s, struct lz_entry *e)
{
	s->used += (uint64_t)e->size;
	s->stats.objects++;
	lru_update(s, e);
}

void lz_entry_maybe_free(struct lz_store *s, struct lz_entry *e)
{
	if (e->state != LZ_ABSENT || e->opens || e->pins || e->holds || e->flight)
		return;
	table_remove(&s->table, e);
	lz_entry_free(e);
}

void lz_entry_get_open(struct lz_store *s, struct lz_entry *e)
{
	if (e->opens++ == 0)
		s->stats.open_objects++;
	lru_update(s, e);
}

void lz_entry_put_open(struct lz_store *s, struct lz_entry *e)
{
	if (--e->opens == 0) {
		s->stats.open_objects--;
		e->atime = lz_clock_ns(CLOCK_REALTIME);
	}
	lru_update(s, e);
}

void lz_entry_pin(struct lz_store *s, struct lz_entry *e, int delta)
{
	if (delta > 0 && e->pins++ == 0)
		s->stats.pinned++;
	if (delta < 0 && --e->pins == 0) {
		s->stats.pinned--;
		e->atime = lz_clock_ns(CLOCK_REALTIME);
	}
	lru_update(s, e);
}

/* Takes a READY entry off the books before its file goes: it is EVICTING, held. */
static void unpublish(struct lz_store *s, struct lz_entry *e)
{
	if (e->in_lru)
		lru_remove(s, e);
	e->state = LZ_EVICTING;
	e->gen++;
	e->holds++;
	s->used -= (uint64_t)e->size;
	s->stats.objects--;
}

static void finish_unlink(struct lz_entry *e)
{
	e->state = LZ_ABSENT;
	e->holds--;
	free(e->hash);
	e->hash = NULL;
}

void lz_entry_drop(struct lz_store *s, struct lz_entry *e)
{
	char path[LZ_OBJ_PATH];

	unpublish(s, e);
	lz_entry_path(e, path);
	pthread_mutex_unlock(&s->lock);
	lz_obj_unlink(s, path);
	pthread_mutex_lock(&s->lock);
	finish_unlink(e);
	pthread_cond_broadcast(&s->changed);
}

/*
 * Evicts from the LRU head until BYTES are freed; with ALL_OR_NOTHING, evicts
 * nothing unless that much can go. Returns the bytes freed, at least 1 when
 * anything went (empty objects free nothing but are progress). Unlinks happen
 * with the lock dropped: victims are EVICTING meanwhile, so a fill of one of
 * them waits, and a new file under the same name cannot be unlinked by mistake.
 */
static uint64_t evict(struct lz_store *s, uint64_t bytes, bool all_or_nothing)
{
	struct lz_entry *e, *next, *victims = NULL, **tail = &victims;
	uint64_t sum = 0;
	char path[LZ_OBJ_PATH];

	if (all_or_nothing) {
		for (e = s->lru_head; e != NULL && sum < bytes; e = e->lru_next)
			sum += (uint64_t)e->size;
		if (sum < bytes)
			return 0;
		sum = 0;
	}
	while (s->lru_head != NULL && sum < bytes) {
		e = s->lru_head;
		sum += (uint64_t)e->size;
		unpublish(s, e);
		e->victim_next = NULL;
		*tail = e;
		tail = &e->victim_next;
	}
	if (victims == NULL)
		return 0;
	pthread_mutex_unlock(&s->lock);
	for (e = victims; e != NULL; e = e->victim_next) {
		lz_entry_path(e, path);
		lz_obj_unlink(s, path);
	}
	pthread_mutex_lock(&s->lock);
	for (e = victims; e != NULL; e = next) {
		next = e->victim_next;
		finish_unlink(e);
		s->stats.evictions++;
		if (s->evicted != NULL)
			s->evicted(s->evicted_ctx, e->key);
		lz_entry_maybe_free(s, e);
	}
	pthread_cond_broadcast(&s->changed);
	return sum ? sum : 1;
}

int lz_store_reserve(struct lz_store *s, uint64_t bytes, char *err, size_t errlen)
{
	if (bytes > s->quota) {
		lz_seterr(err, errlen, "object of %llu bytes exceeds the cache quota of %llu bytes",
			  (unsigned long long)bytes, (unsigned long long)s->quota);
		return -EFBIG;
	}
	for (;;) {
		uint64_t total = s->used + s->reserved + bytes;
		if (total <= s->quota) {
			s->reserved += bytes;
			return 0;
		}
		/* Other fills' reservations count: they are about to publish. */
		if (evict(s, total - s->quota, true) == 0) {
			lz_seterr(err, errlen,
				  "cache quota of %llu bytes is full: %llu more bytes needed, and "
				  "too little can be evicted (%llu objects open, %llu pinned, "
				  "%llu bytes being filled)",
				  (unsigned long long)s->quota,
				  (unsigned long long)(total - s->quota),
				  (unsigned long long)s->stats.open_objects,
				  (unsigned long long)s->stats.pinned,
				  (unsigned long long)s->reserved);
			return -ENOSPC;
		}
	}
}

uint64_t lz_store_free_disk(struct lz_store *s, uint64_t bytes)
{
	return evict(s, bytes ? bytes : 1, false);
}

/* The quota shrank below what is cached (a new cache_size): trims to it. */
void lz_store_trim(struct lz_store *s)
{
	if (s->used > s->quota)
		evict(s, s->used - s->quota, false);
}
