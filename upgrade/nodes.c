/*
 * The node record (nodes.h): an open-addressed table of fixed size in a
 * memfd the keeper holds, by node id, with linear probing. A removed record
 * leaves a tombstone so that probes go on past it; a set reuses the first
 * tombstone it passed. At most three quarters of the slots are ever taken,
 * tombstones included, so every probe ends at a free slot soon: past that,
 * the table is rebuilt without its tombstones, or, full of live records,
 * takes no new ones.
 *
 * Sources' images follow the records, by source number up to the highest
 * one named. What the workers before named is also indexed by name when the
 * record is opened (sorted, the last source of each name), for the lookups
 * that ask which source an image had.
 */
#include "config.h"
#include "nodes.h"
#include "region.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NODES_MAGIC   0x6c7a6e64u /* "lznd" */
#define NODES_VERSION 5u
#define FREE	      0u
#define TOMBSTONE     1u /* node id 1 is the root, never recorded */

struct record {
	uint64_t nodeid; /* FREE, TOMBSTONE, or a node id */
	uint64_t nlookup;
	uint64_t map_index;
	int32_t handle_type;
	uint32_t handle_bytes;
	unsigned char handle[LZ_NODES_HANDLE_MAX];
};

struct region {
	uint32_t magic, version;
	uint32_t live, tombstones;
	uint32_t sources_high; /* no source above it is named */
	uint32_t map_noted;    /* map is set */
	struct lz_nodes_map map;
	struct record records[LZ_NODES_MAX];
	/* Untouched pages of the memfd cost nothing: only named sources' are written. */
	struct source_image {
		char name[LZ_NODES_NAME_MAX];
		struct lz_image_file file;
	} source_image[LZ_NODES_SOURCES];
};

/* An image the workers before named, with its last source. */
struct prior {
	const char *name; /* in the region */
	unsigned source;
};

#define TAKEN_MAX (LZ_NODES_MAX / 4 * 3)

struct lz_nodes {
	struct lz_region mem;
	struct region *r; /* mem.base */
	pthread_mutex_t lock;
	struct prior *prior; /* by name; NULL: none */
	size_t nprior;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct prior *)a)->name, ((const struct prior *)b)->name);
}

static int by_name_then_source(const void *a, const void *b)
{
	const struct prior *x = a, *y = b;
	int c = by_name(a, b);

	return c != 0 ? c : (x->source > y->source) - (x->source < y->source);
}

/* Indexes the sources the workers before named (when it fails, none are looked up by name). */
static void index_prior(struct lz_nodes *n)
{
	uint32_t high =
		n->r->sources_high < LZ_NODES_SOURCES ? n->r->sources_high : LZ_NODES_SOURCES - 1;
	size_t count = 0;

	n->prior = malloc(sizeof(*n->prior) * (high + 1));
	if (n->prior == NULL)
		return;
	for (uint32_t s = 1; s <= high; s++) {
		char *name = n->r->source_image[s].name;
		name[LZ_NODES_NAME_MAX - 1] = '\0';
		if (name[0] != '\0')
			n->prior[count++] = (struct prior){ name, s };
	}
	qsort(n->prior, count, sizeof(*n->prior), by_name_then_source);
	/* Keeps the last source of each name. */
	n->nprior = 0;
	for (size_t i = 0; i < count; i++) {
		if (i + 1 < count && strcmp(n->prior[i].name, n->prior[i + 1].name) == 0)
			continue;
		n->prior[n->nprior++] = n->prior[i];
	}
}

struct lz_nodes *lz_nodes_open(int kept_fd)
{
	struct lz_nodes *n = calloc(1, sizeof(*n));

	if (n == NULL || lz_region_open(&n->mem, kept_fd, "lazyfs-nodes", sizeof(struct region),
					NODES_MAGIC, NODES_VERSION) != 0) {
		if (n == NULL && kept_fd >= 0)
			close(kept_fd);
		free(n);
		return NULL;
	}
	n->r = n->mem.base;
	pthread_mutex_init(&n->lock, NULL);
	if (n->mem.kept)
		index_prior(n);
	return n;
}

void lz_nodes_close(struct lz_nodes *n)
{
	if (n == NULL)
		return;
	lz_region_close(&n->mem);
	pthread_mutex_destroy(&n->lock);
	free(n->prior);
	free(n);
}

bool lz_nodes_kept(const struct lz_nodes *n)
{
	return n != NULL && n->mem.kept;
}

int lz_nodes_fd(const struct lz_nodes *n)
{
	return n != NULL ? n->mem.fd : -1;
}

static uint32_t home_of(uint64_t nodeid)
{
	nodeid ^= nodeid >> 33;
	nodeid *= 0xff51afd7ed558ccdull;
	nodeid ^= nodeid >> 33;
	return (uint32_t)(nodeid % LZ_NODES_MAX);
}

/* Under the lock: NODEID's record, or where it would go (*SLOT; NULL when full). */
static struct record *find_locked(struct lz_nodes *n, uint64_t nodeid, struct record **slot)
{
	uint32_t at = home_of(nodeid);

	*slot = NULL;
	for (uint32_t i = 0; i < LZ_NODES_MAX; i++) {
		struct record *rec = &n->r->records[(at + i) % LZ_NODES_MAX];
		if (rec->nodeid == nodeid)
			return rec;
		if (rec->nodeid == TOMBSTONE && *slot == NULL)
			*slot = rec;
		if (rec->nodeid == FREE) {
			if (*slot == NULL)
				*slot = rec;
			return NULL;
		}
	}
	return NULL;
}

/* Under the lock: every live record placed again, the tombstones gone. */
static void rebuild_locked(struct lz_nodes *n)
{
	struct region *r = n->r;
	struct record *live = malloc(sizeof(*live) * (r->live + 1)), *slot;
	uint32_t count = 0;

	if (live == NULL)
		return;
	for (uint32_t i = 0; i < LZ_NODES_MAX; i++) {
		if (r->records[i].nodeid > TOMBSTONE && count < r->live)
			live[count++] = r->records[i];
		r->records[i].nodeid = FREE;
	}
	for (uint32_t i = 0; i < count; i++)
		if (find_locked(n, live[i].nodeid, &slot) == NULL && slot != NULL)
			*slot = live[i];
	r->live = count;
	r->tombstones = 0;
	free(live);
}

/* Under the lock: whether a new record may be taken (tombstones cleared out when many). */
static bool room_locked(struct lz_nodes *n)
{
	struct region *r = n->r;

	if (r->live + r->tombstones >= TAKEN_MAX && r->live < TAKEN_MAX / 2)
		rebuild_locked(n);
	return r->live + r->tombstones < TAKEN_MAX;
}

static void take_locked(struct lz_nodes *n, struct record *slot, uint64_t nodeid,
			const struct lz_node_record *r, const struct file_handle *handle)
{
	if (slot->nodeid == TOMBSTONE)
		n->r->tombstones--;
	n->r->live++;
	slot->nlookup = r->nlookup;
	slot->map_index = r->map_index;
	slot->handle_type = handle->handle_type;
	slot->handle_bytes = handle->handle_bytes;
	memcpy(slot->handle, handle->f_handle, handle->handle_bytes);
	slot->nodeid = nodeid;
}

void lz_nodes_set(struct lz_nodes *n, uint64_t nodeid, const struct lz_node_record *r,
		  const struct file_handle *handle)
{
	struct record *rec, *slot;
	bool drop = r->nlookup == 0 || handle == NULL || handle->handle_bytes > LZ_NODES_HANDLE_MAX;

	if (n == NULL || nodeid <= TOMBSTONE)
		return;
	pthread_mutex_lock(&n->lock);
	rec = find_locked(n, nodeid, &slot);
	if (rec != NULL && drop) {
		rec->nodeid = TOMBSTONE;
		n->r->live--;
		n->r->tombstones++;
	} else if (rec != NULL) {
		rec->nlookup = r->nlookup;
		rec->map_index = r->map_index;
	} else if (!drop && room_locked(n) && find_locked(n, nodeid, &slot) == NULL &&
		   slot != NULL) {
		take_locked(n, slot, nodeid, r, handle);
	}
	pthread_mutex_unlock(&n->lock);
}

bool lz_nodes_get(struct lz_nodes *n, uint64_t nodeid, struct lz_node_record *r,
		  struct file_handle *handle)
{
	struct record *rec, *slot;
	bool found = false;

	if (n == NULL || nodeid <= TOMBSTONE)
		return false;
	pthread_mutex_lock(&n->lock);
	rec = find_locked(n, nodeid, &slot);
	if (rec != NULL) {
		*r = (struct lz_node_record){ rec->nlookup, rec->map_index };
		found = true;
	}
	if (found && handle != NULL) {
		handle->handle_type = rec->handle_type;
		handle->handle_bytes = rec->handle_bytes;
		memcpy(handle->f_handle, rec->handle, rec->handle_bytes);
	}
	pthread_mutex_unlock(&n->lock);
	return found;
}

bool lz_nodes_source_is(struct lz_nodes *n, unsigned source, const char *name)
{
	size_t len = strlen(name);

	if (n == NULL || source == 0 || source >= LZ_NODES_SOURCES || len >= LZ_NODES_NAME_MAX)
		return true; /* nothing to record */
	/* Read without the lock: a torn read only makes the caller record it again. */
	return memcmp(n->r->source_image[source].name, name, len + 1) == 0;
}

void lz_nodes_set_source(struct lz_nodes *n, unsigned source, const char *name,
			 const struct lz_image_file *file)
{
	if (lz_nodes_source_is(n, source, name))
		return;
	struct source_image *slot = &n->r->source_image[source];
	pthread_mutex_lock(&n->lock);
	memcpy(slot->name, name, strlen(name) + 1);
	slot->file = *file;
	if (source > n->r->sources_high)
		n->r->sources_high = source;
	pthread_mutex_unlock(&n->lock);
}

bool lz_nodes_source_image(struct lz_nodes *n, unsigned source, char *name,
			   struct lz_image_file *file)
{
	if (n == NULL || source == 0 || source >= LZ_NODES_SOURCES)
		return false;
	pthread_mutex_lock(&n->lock);
	memcpy(name, n->r->source_image[source].name, LZ_NODES_NAME_MAX);
	*file = n->r->source_image[source].file;
	pthread_mutex_unlock(&n->lock);
	name[LZ_NODES_NAME_MAX - 1] = '\0';
	return name[0] != '\0';
}

unsigned lz_nodes_image_source(const struct lz_nodes *n, const char *name)
{
	struct prior key = { name, 0 }, *found;

	if (n == NULL || n->nprior == 0)
		return 0;
	/* Compared by name alone: the index holds one entry per name. */
	found = bsearch(&key, n->prior, n->nprior, sizeof(key), by_name);
	return found != NULL ? found->source : 0;
}

void lz_nodes_clear_sources(struct lz_nodes *n)
{
	if (n == NULL)
		return;
	pthread_mutex_lock(&n->lock);
	for (uint32_t s = 1; s <= n->r->sources_high && s < LZ_NODES_SOURCES; s++)
		n->r->source_image[s].name[0] = '\0';
	n->r->sources_high = 0;
	pthread_mutex_unlock(&n->lock);
	free(n->prior);
	n->prior = NULL;
	n->nprior = 0;
}

void lz_nodes_note_map(struct lz_nodes *n, const struct lz_nodes_map *m)
{
	if (n == NULL)
		return;
	/* Read without the lock: a torn read only makes it write again. */
	if (n->r->map_noted && n->r->map.crc == m->crc && n->r->map.first == m->first &&
	    n->r->map.next == m->next)
		return;
	pthread_mutex_lock(&n->lock);
	n->r->map = *m;
	n->r->map_noted = 1;
	pthread_mutex_unlock(&n->lock);
}

bool lz_nodes_noted_map(struct lz_nodes *n, struct lz_nodes_map *m)
{
	bool noted;

	if (n == NULL)
		return false;
	pthread_mutex_lock(&n->lock);
	noted = n->r->map_noted != 0;
	*m = n->r->map;
	pthread_mutex_unlock(&n->lock);
	return noted;
}
