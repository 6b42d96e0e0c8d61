/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The node record (nodes.h) in a memfd the keeper holds: a table of records
 * by node id (slots.h), a smaller one of remote objects' paths by node id,
 * and the sources' images.
 *
 * Sources' images follow the records, by source number up to the highest
 * one named. What the workers before named is also indexed by name when the
 * record is opened (sorted, the last source of each name), for the lookups
 * that ask which source an image had.
 */
#include "config.h"
#include "nodes.h"
#include "nodes_int.h"
#include "region.h"
#include "slots.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An image the workers before named, with its last source. */
struct prior {
	const char *name; /* in the region */
	unsigned source;
};

struct lz_nodes {
	struct lz_region mem;
	struct lz_nodes_region *r; /* mem.base */
	struct lz_slots records, paths;
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

	if (n == NULL ||
	    lz_region_open(&n->mem, kept_fd, "lazyfs-nodes", sizeof(struct lz_nodes_region),
			   LZ_NODES_MAGIC, LZ_NODES_VERSION) != 0) {
		if (n == NULL && kept_fd >= 0)
			close(kept_fd);
		free(n);
		return NULL;
	}
	n->r = n->mem.base;
	n->records = (struct lz_slots){ &n->r->records_head, (unsigned char *)n->r->records,
					sizeof(struct lz_nodes_rec), LZ_NODES_MAX };
	n->paths = (struct lz_slots){ &n->r->paths_head, (unsigned char *)n->r->paths,
				      sizeof(struct lz_nodes_path_rec), LZ_NODES_PATHS };
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

void lz_nodes_set(struct lz_nodes *n, uint64_t nodeid, const struct lz_node_record *r,
		  const struct file_handle *handle)
{
	struct lz_nodes_rec *rec;
	bool drop = r->nlookup == 0 || handle == NULL || handle->handle_bytes > LZ_NODES_HANDLE_MAX;

	if (n == NULL)
		return;
	pthread_mutex_lock(&n->lock);
	rec = lz_slots_find(&n->records, nodeid);
	if (rec != NULL && drop) {
		lz_slots_drop(&n->records, rec);
		struct lz_nodes_path_rec *p = lz_slots_find(&n->paths, nodeid);
		if (p != NULL)
			lz_slots_drop(&n->paths, p);
	} else if (rec != NULL) {
		rec->nlookup = r->nlookup;
		rec->map_index = r->map_index;
	} else if (!drop && (rec = lz_slots_take(&n->records, nodeid)) != NULL) {
		rec->nlookup = r->nlookup;
		rec->map_index = r->map_index;
		rec->handle_type = handle->handle_type;
		rec->handle_bytes = handle->handle_bytes;
		memcpy(rec->handle, handle->f_handle, handle->handle_bytes);
	}
	pthread_mutex_unlock(&n->lock);
}

bool lz_nodes_get(struct lz_nodes *n, uint64_t nodeid, struct lz_node_record *r,
		  struct file_handle *handle)
{
	struct lz_nodes_rec *rec;

	if (n == NULL)
		return false;
	pthread_mutex_lock(&n->lock);
	rec = lz_slots_find(&n->records, nodeid);
	/*
	 * Never one this process wrote, but the worker before may have crashed
	 * from a wild write into this memory: a record claiming a longer handle
	 * than it holds is not whole, and would overrun HANDLE.
	 */
	if (rec != NULL && rec->handle_bytes > LZ_NODES_HANDLE_MAX)
		rec = NULL;
	if (rec != NULL)
		*r = (struct lz_node_record){ rec->nlookup, rec->map_index };
	if (rec != NULL && handle != NULL) {
		handle->handle_type = rec->handle_type;
		handle->handle_bytes = rec->handle_bytes;
		memcpy(handle->f_handle, rec->handle, rec->handle_bytes);
	}
	pthread_mutex_unlock(&n->lock);
	return rec != NULL;
}

void lz_nodes_set_path(struct lz_nodes *n, uint64_t nodeid, const char *path)
{
	size_t len = strlen(path);
	struct lz_nodes_path_rec *p;

	if (n == NULL || len >= LZ_NODES_PATH_MAX)
		return;
	pthread_mutex_lock(&n->lock);
	/* A node id's path never changes: written once. */
	if (lz_slots_find(&n->records, nodeid) != NULL &&
	    lz_slots_find(&n->paths, nodeid) == NULL &&
	    (p = lz_slots_take(&n->paths, nodeid)) != NULL)
		memcpy(p->path, path, len + 1);
	pthread_mutex_unlock(&n->lock);
}

bool lz_nodes_get_path(struct lz_nodes *n, uint64_t nodeid, char *path)
{
	struct lz_nodes_path_rec *p;

	if (n == NULL)
		return false;
	pthread_mutex_lock(&n->lock);
	p = lz_slots_find(&n->paths, nodeid);
	if (p != NULL)
		memcpy(path, p->path, LZ_NODES_PATH_MAX);
	pthread_mutex_unlock(&n->lock);
	if (p == NULL)
		return false;
	path[LZ_NODES_PATH_MAX - 1] = '\0';
	return true;
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
	struct lz_nodes_source_rec *slot = &n->r->source_image[source];
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
