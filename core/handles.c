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

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *buckets[BUCKETS];
static uint64_t prefix; /* random, never 0; set on first use */
static uint32_t counter;

static struct handle **bucket_of(uint64_t fh)
{
	return &buckets[(fh ^ (fh >> 32)) % BUCKETS];
}

static struct handle *find(uint64_t fh)
{
	for (struct handle *h = *bucket_of(fh); h != NULL; h = h->next)
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

static int insert(uint64_t fh, void *obj)
{
	struct handle *h = malloc(sizeof(*h));

	if (h == NULL)
		return -1;
	struct handle **b = bucket_of(fh);
	*h = (struct handle){ .fh = fh, .obj = obj, .next = *b };
	*b = h;
	return 0;
}

uint64_t lz_handle_add(void *obj)
{
	uint64_t fh;

	pthread_mutex_lock(&lock);
	if (prefix == 0)
		prefix = new_prefix();
	do
		fh = prefix | ++counter;
	while (counter == 0 || find(fh) != NULL); /* after 2^32 handles: skip those still open */
	if (insert(fh, obj) != 0)
		fh = 0;
	pthread_mutex_unlock(&lock);
	return fh;
}

void *lz_handle_find(uint64_t fh)
{
	pthread_mutex_lock(&lock);
	struct handle *h = find(fh);
	void *obj = h != NULL ? h->obj : NULL;
	pthread_mutex_unlock(&lock);
	return obj;
}

void *lz_handle_adopt(uint64_t fh, void *obj)
{
	pthread_mutex_lock(&lock);
	struct handle *h = find(fh);
	if (h != NULL)
		obj = h->obj;
	else if (insert(fh, obj) != 0)
		obj = NULL;
	pthread_mutex_unlock(&lock);
	return obj;
}

void *lz_handle_remove(uint64_t fh)
{
	void *obj = NULL;

	pthread_mutex_lock(&lock);
	for (struct handle **p = bucket_of(fh); *p != NULL; p = &(*p)->next) {
		if ((*p)->fh == fh) {
			struct handle *h = *p;
			*p = h->next;
			obj = h->obj;
			free(h);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return obj;
}
