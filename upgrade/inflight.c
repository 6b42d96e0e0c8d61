/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The in-flight record (inflight.h): a memfd of fixed layout, shared with
 * the keeper, which only holds it. Slots are claimed with a compare-and-swap
 * from a place picked by the thread, so threads rarely meet; the suspects
 * table is read and written only by the worker that opens the record, before
 * it serves, and under a lock after.
 */
#include "config.h"
#include "inflight.h"
#include "inflight_int.h"
#include "region.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lz_inflight {
	struct lz_region mem;
	struct lz_inflight_region *r; /* mem.base */
	pthread_mutex_t lock;	      /* the suspects */
	atomic_uint npoison; /* suspects to answer EIO now: the fast path skips them when 0 */
	atomic_ullong poisoned;
	unsigned kept_sources; /* what the dead worker had taken */
};

static bool is_poison(const struct lz_inflight_suspect *s)
{
	return s->sig != 0 && s->crashes >= (s->strikes > 0 ? 1u : LZ_INFLIGHT_POISON_AFTER);
}

/*
 * After a crash: what was in flight becomes suspect, what was not is cleared.
 * After a SIGKILL the slots are only emptied.
 */
static void judge(struct lz_inflight *f, bool killed)
{
	struct lz_inflight_region *r = f->r;
	bool seen[LZ_INFLIGHT_SUSPECTS] = { false };

	for (unsigned i = 0; i < LZ_INFLIGHT_SLOTS; i++) {
		uint64_t sig = atomic_exchange(&r->slots[i], 0);
		if (sig == 0 || killed)
			continue;
		unsigned j, free_at = LZ_INFLIGHT_SUSPECTS;
		for (j = 0; j < LZ_INFLIGHT_SUSPECTS && r->suspects[j].sig != sig; j++)
			if (r->suspects[j].sig == 0 && free_at == LZ_INFLIGHT_SUSPECTS)
				free_at = j;
		if (j == LZ_INFLIGHT_SUSPECTS && (j = free_at) < LZ_INFLIGHT_SUSPECTS)
			r->suspects[j] = (struct lz_inflight_suspect){ .sig = sig };
		if (j < LZ_INFLIGHT_SUSPECTS && !seen[j]) {
			seen[j] = true;
			r->suspects[j].crashes++;
		}
	}
	for (unsigned j = 0; killed && j < LZ_INFLIGHT_SUSPECTS; j++)
		if (is_poison(&r->suspects[j]))
			atomic_fetch_add(&f->npoison, 1); /* still owed its EIO */
	for (unsigned j = 0; !killed && j < LZ_INFLIGHT_SUSPECTS; j++) {
		struct lz_inflight_suspect *s = &r->suspects[j];
		if (!seen[j])
			s->crashes = 0; /* not in a row: only strikes are remembered */
		if (s->crashes == 0 && s->strikes == 0)
			s->sig = 0;
		if (is_poison(s)) {
			atomic_fetch_add(&f->npoison, 1);
			lz_err("restart: a request (signature %016jx) was being served at %u "
			       "crashes "
			       "in a row: it is answered EIO when it comes again",
			       (uintmax_t)s->sig, s->crashes);
		}
	}
}

struct lz_inflight *lz_inflight_open(int kept_fd, bool killed)
{
	struct lz_inflight *f = calloc(1, sizeof(*f));

	if (f == NULL ||
	    lz_region_open(&f->mem, kept_fd, "lazyfs-inflight", sizeof(struct lz_inflight_region),
			   LZ_INFLIGHT_MAGIC, LZ_INFLIGHT_VERSION) != 0) {
		lz_warn("restart: no in-flight record (%s): a request that crashes the worker "
			"is served again after each restart",
			strerror(f == NULL ? ENOMEM : errno));
		if (f == NULL && kept_fd >= 0)
			close(kept_fd);
		free(f);
		return NULL;
	}
	pthread_mutex_init(&f->lock, NULL);
	f->r = f->mem.base;
	if (f->mem.kept) {
		f->kept_sources = atomic_load(&f->r->sources);
		judge(f, killed);
	}
	return f;
}

void lz_inflight_close(struct lz_inflight *f)
{
	if (f == NULL)
		return;
	lz_region_close(&f->mem);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int lz_inflight_fd(const struct lz_inflight *f)
{
	return f != NULL ? f->mem.fd : -1;
}

uint64_t lz_inflight_sig(unsigned op, uint64_t nodeid, const char *name)
{
	/* FNV-1a over the three; never 0 (a free slot). */
	uint64_t h = 1469598103934665603ull;
	const unsigned char *p = (const unsigned char *)&nodeid;

	h = (h ^ op) * 1099511628211ull;
	for (size_t i = 0; i < sizeof(nodeid); i++)
		h = (h ^ p[i]) * 1099511628211ull;
	for (const char *c = name; c != NULL && *c != '\0'; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	return h != 0 ? h : 1;
}

/* Whether SIG is poison now; if so it is forgiven, with a strike. */
static bool take_poison(struct lz_inflight *f, uint64_t sig)
{
	bool poison = false;

	pthread_mutex_lock(&f->lock);
	for (unsigned j = 0; j < LZ_INFLIGHT_SUSPECTS; j++) {
		struct lz_inflight_suspect *s = &f->r->suspects[j];
		if (s->sig != sig || !is_poison(s))
			continue;
		s->crashes = 0;
		s->strikes++;
		atomic_fetch_sub(&f->npoison, 1);
		poison = true;
		break;
	}
	pthread_mutex_unlock(&f->lock);
	return poison;
}

int lz_inflight_enter(struct lz_inflight *f, uint64_t sig)
{
	static _Thread_local unsigned start;
	static atomic_uint next_start;

	if (f == NULL)
		return LZ_INFLIGHT_NONE;
	if (atomic_load(&f->npoison) > 0 && take_poison(f, sig)) {
		atomic_fetch_add(&f->poisoned, 1);
		return LZ_INFLIGHT_POISON;
	}
	if (start == 0)
		start = atomic_fetch_add(&next_start, 7) + 1;
	for (unsigned i = 0; i < LZ_INFLIGHT_SLOTS; i++) {
		unsigned slot = (start + i) % LZ_INFLIGHT_SLOTS;
		uint64_t expected = 0;
		if (atomic_compare_exchange_strong(&f->r->slots[slot], &expected, sig))
			return (int)slot;
	}
	return LZ_INFLIGHT_NONE;
}

void lz_inflight_leave(struct lz_inflight *f, int slot)
{
	if (f != NULL && slot >= 0)
		atomic_store(&f->r->slots[slot], 0);
}

void lz_inflight_note_sources(struct lz_inflight *f, unsigned n)
{
	if (f != NULL && n > atomic_load(&f->r->sources))
		atomic_store(&f->r->sources, n);
}

unsigned lz_inflight_sources(const struct lz_inflight *f)
{
	return f != NULL ? f->kept_sources : 0;
}

unsigned long long lz_inflight_poisoned(const struct lz_inflight *f)
{
	return f != NULL ? atomic_load(&f->poisoned) : 0;
}
