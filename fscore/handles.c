/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "handles.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 256 /* open directories are few: a listing lasts a few requests */

struct handle {
	uint64_t fh;
	void *obj;
	struct handle *next;
};

struct lz_handles {
	pthread_mutex_t lock;
	struct handle *buckets[BUCKETS];
	uint64_t prefix; /* random, never 0 */
	uint32_t counter;
};

static struct handle **bucket_of(struct lz_handles *t, uint64_t fh)
{
	return &t->buckets[(fh ^ (fh >> 32)) % BUCKETS];
}

static struct handle *find(struct lz_handles *t, uint64_t fh)
{
	for (struct handle *h = *bucket_of(t, fh); h != NULL; h = h->next)
		if (h->fh == fh)
			return h;
	return NULL;
}

static uint64_t new_prefix(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	return (uint64_t)(r | 1) << 32;
}

struct lz_handles *lz_handles_new(void)
{
	struct lz_handles *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	t->prefix = new_prefix();
	return t;
}

void lz_handles_free(struct lz_handles *t)
{
	if (t == NULL)
		return;
	for (unsigned b = 0; b < BUCKETS; b++) {
		while (t->buckets[b] != NULL) {
			struct handle *h = t->buckets[b];
			t->buckets[b] = h->next;
			free(h);
		}
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static int insert(struct lz_handles *t, uint64_t fh, void *obj)
{
	struct handle *h = malloc(sizeof(*h));

	if (h == NULL)
		return -1;
	struct handle **b = bucket_of(t, fh);
	*h = (struct handle){ .fh = fh, .obj = obj, .next = *b };
	*b = h;
	return 0;
}

uint64_t lz_handle_add(struct lz_handles *t, void *obj)
{
	uint64_t fh;

	pthread_mutex_lock(&t->lock);
	do
		fh = t->prefix | ++t->counter;
	while (t->counter == 0 || find(t, fh) != NULL); /* after 2^32: skip those still open */
	if (insert(t, fh, obj) != 0)
		fh = 0;
	pthread_mutex_unlock(&t->lock);
	return fh;
}

void *lz_handle_find(struct lz_handles *t, uint64_t fh)
{
	pthread_mutex_lock(&t->lock);
	struct handle *h = find(t, fh);
	void *obj = h != NULL ? h->obj : NULL;
	pthread_mutex_unlock(&t->lock);
	return obj;
}

void *lz_handle_adopt(struct lz_handles *t, uint64_t fh, void *obj)
{
	pthread_mutex_lock(&t->lock);
	struct handle *h = find(t, fh);
	if (h != NULL)
		obj = h->obj;
	else if (insert(t, fh, obj) != 0)
		obj = NULL;
	pthread_mutex_unlock(&t->lock);
	return obj;
}

void *lz_handle_remove(struct lz_handles *t, uint64_t fh)
{
	void *obj = NULL;

	pthread_mutex_lock(&t->lock);
	for (struct handle **p = bucket_of(t, fh); *p != NULL; p = &(*p)->next) {
		if ((*p)->fh == fh) {
			struct handle *h = *p;
			*p = h->next;
			obj = h->obj;
			free(h);
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return obj;
}
