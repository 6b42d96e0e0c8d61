/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Union listings: built, sorted by name, shared by directory and content,
 * and evicted past the table's cap, least recently read first.
 */
#include "config.h"
#include "union.h"
#include "objects.h"
#include "common/names.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUCKETS 256u

/* The unions kept, by directory: where a new one looks for its twin. */
struct lz_unions {
	pthread_mutex_t lock;
	struct lz_union *buckets[BUCKETS];
	uint64_t cap, bytes, count, entries;
	uint64_t tick; /* counts reads: a union's `used` */
	uint64_t evictions;
};

struct lz_unions *lz_unions_new(uint64_t cap)
{
	struct lz_unions *t = calloc(1, sizeof(*t));

	if (t != NULL) {
		pthread_mutex_init(&t->lock, NULL);
		t->cap = cap;
	}
	return t;
}

void lz_unions_free(struct lz_unions *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t); /* every union was put back by the listings that held it */
}

static void free_entries(struct lz_union *u)
{
	for (size_t i = 0; i < u->count; i++)
		if (!u->entries[i].borrowed)
			free(u->entries[i].name);
	free(u->entries);
	u->entries = NULL;
	u->count = 0;
	lz_objects_listing_put(u->fs, u->listing);
	u->listing = NULL;
}

static void free_union(struct lz_union *u)
{
	free_entries(u);
	free(u);
}

/* A union being built: its entries and their room. */
struct builder {
	struct lz_union *u;
	size_t cap;
	int err;
};

/* Room for N more entries. */
static int reserve(struct builder *b, size_t n)
{
	struct lz_union *u = b->u;
	size_t cap = b->cap ? b->cap : 64;

	if (u->count + n <= b->cap)
		return 0;
	while (cap < u->count + n)
		cap *= 2;
	struct lz_union_entry *grown = realloc(u->entries, cap * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	u->entries = grown;
	b->cap = cap;
	return 0;
}

/* NAME copied, unless BORROWED: it is the remote listing's, which the union holds. */
static int add_name(struct builder *b, const char *name, bool borrowed, unsigned char type,
		    bool image, bool resolvable, ino_t backing_ino)
{
	struct lz_union *u = b->u;

	if (reserve(b, 1) != 0)
		return -ENOMEM;
	char *copy = borrowed ? (char *)name : strdup(name);
	if (copy == NULL)
		return -ENOMEM;
	u->entries[u->count++] = (struct lz_union_entry){
		.name = copy,
		.type = type,
		.image = image,
		.resolvable = resolvable,
		.borrowed = borrowed,
		.backing_ino = backing_ino,
	};
	/* What malloc gives a short string is at least 32 bytes. */
	u->bytes += sizeof(*u->entries) + (borrowed		   ? 0
					   : strlen(name) + 1 < 32 ? 32
								   : strlen(name) + 1);
	return 0;
}

static int add_full(struct builder *b, const char *name, unsigned char type, bool image,
		    bool resolvable, ino_t backing_ino)
{
	return add_name(b, name, false, type, image, resolvable, backing_ino);
}

static int add(struct builder *b, const char *name, unsigned char type, bool image,
	       ino_t backing_ino)
{
	return add_full(b, name, type, image, false, backing_ino);
}

/* An image or a subdirectory of the images tree: both are listed as directories. */
static void add_tree_name(void *ctx, const char *name, bool is_dir)
{
	struct builder *b = ctx;

	(void)is_dir;
	if (b->err == 0)
		b->err = add_full(b, name, DT_DIR, true, true, 0);
}

/* The backing directory's entries, or "." and ".." for a directory without one. */
static int add_backing(struct builder *b, DIR *stream)
{
	struct dirent *entry;
	int err = 0;

	if (stream == NULL) {
		err = add(b, ".", DT_DIR, false, 0);
		return err == 0 ? add(b, "..", DT_DIR, false, 0) : err;
	}
	while (err == 0 && (errno = 0, entry = readdir(stream)) != NULL)
		err = add(b, entry->d_name, entry->d_type, false, entry->d_ino);
	return err == 0 && errno != 0 ? -errno : err;
}

static int add_mapped(struct builder *b, const struct lz_map_node *mapped)
{
	int err = 0;

	for (size_t i = 0; err == 0 && mapped != NULL && i < mapped->nchildren; i++) {
		const struct lz_map_node *child = mapped->children[i];
		/* A mapped image whose file is missing would list a name that cannot be looked up.
		 */
		if (child->image != NULL && access(child->image, R_OK) != 0)
			continue;
		err = add(b, child->name, DT_DIR, true, 0);
	}
	return err;
}

/*
 * Listed without a lookup: a remote directory can hold 150k objects. Their
 * names are borrowed from LISTING (held by the union from now on), not copied.
 */
static int add_objects(struct builder *b, const char *remote_dir,
		       const struct lz_source_listing *listing)
{
	int err = reserve(b, listing->count);

	b->u->listing = listing;
	for (size_t i = 0; err == 0 && i < listing->count; i++) {
		const struct lz_source_item *item = &listing->items[i];
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s%s%s", remote_dir, *remote_dir ? "/" : "",
			 item->name);
		err = add_name(b, item->name, true, item->is_dir ? DT_DIR : DT_REG, true, false,
			       (ino_t)lz_objects_nodeid(path));
	}
	return err;
}

/* By name; of equal names the image comes first and is the one kept. */
static int compare_entries(const void *a, const void *b)
{
	const struct lz_union_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c != 0 ? c : (int)y->image - (int)x->image;
}

/* Sorts the entries and keeps the first of equal names. */
static void sort_unique(struct lz_union *u)
{
	size_t kept = 0;

	qsort(u->entries, u->count, sizeof(*u->entries), compare_entries);
	for (size_t i = 0; i < u->count; i++) {
		if (kept > 0 && strcmp(u->entries[kept - 1].name, u->entries[i].name) == 0) {
			if (!u->entries[i].borrowed)
				free(u->entries[i].name); /* its bytes stay counted: close enough */
			continue;
		}
		u->entries[kept++] = u->entries[i];
	}
	u->count = kept;
}

static bool same(const struct lz_union *a, const struct lz_union *b)
{
	if (a->dir != b->dir || a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		const struct lz_union_entry *x = &a->entries[i], *y = &b->entries[i];
		if (x->type != y->type || x->image != y->image ||
		    x->backing_ino != y->backing_ino || strcmp(x->name, y->name) != 0)
			return false;
	}
	return true;
}

/* Under the table's lock. */
static void unlink_union(struct lz_unions *t, struct lz_union *u)
{
	struct lz_union **link = &t->buckets[u->dir % BUCKETS];

	while (*link != u)
		link = &(*link)->next;
	*link = u->next;
	t->bytes -= u->bytes;
	t->count--;
	t->entries -= u->count;
}

/* Under the table's lock: the least recently read union nobody reads, but KEEP. */
static struct lz_union *coldest(struct lz_unions *t, const struct lz_union *keep)
{
	struct lz_union *best = NULL;

	for (unsigned i = 0; i < BUCKETS; i++)
		for (struct lz_union *u = t->buckets[i]; u != NULL; u = u->next)
			if (u != keep && u->readers == 0 && (best == NULL || u->used < best->used))
				best = u;
	return best;
}

/* Under the table's lock: evicts unions until those kept fit the cap. */
static void evict_over_cap(struct lz_unions *t, const struct lz_union *keep)
{
	struct lz_union *u;

	while (t->bytes > t->cap && (u = coldest(t, keep)) != NULL) {
		unlink_union(t, u);
		u->evicted = true;
		free_entries(u);
		t->evictions++;
	}
}

/*
 * The union in use of remote directory DIR made of LISTING alone, with one
 * more reference; NULL when there is none (the caller builds it).
 */
static struct lz_union *listing_twin(struct lz_unions *t, uint64_t dir,
				     const struct lz_source_listing *listing)
{
	struct lz_union *u;

	pthread_mutex_lock(&t->lock);
	for (u = t->buckets[dir % BUCKETS]; u != NULL; u = u->next)
		if (u->dir == dir && u->listing_only && u->listing == listing)
			break;
	if (u != NULL)
		u->refs++;
	pthread_mutex_unlock(&t->lock);
	return u;
}

/* U (built, one reference) or its twin in use, which then takes the reference. */
static struct lz_union *share(struct lz_unions *t, struct lz_union *u)
{
	struct lz_union **bucket = &t->buckets[u->dir % BUCKETS], *twin;

	pthread_mutex_lock(&t->lock);
	for (twin = *bucket; twin != NULL && !same(twin, u); twin = twin->next)
		;
	if (twin != NULL) {
		twin->refs++;
	} else {
		u->next = *bucket;
		*bucket = u;
		u->used = ++t->tick;
		t->bytes += u->bytes;
		t->count++;
		t->entries += u->count;
		evict_over_cap(t, u);
	}
	pthread_mutex_unlock(&t->lock);
	if (twin == NULL)
		return u;
	free_union(u);
	return twin;
}

int lz_union_get(struct lz_fs *fs, struct lz_unions *t, uint64_t dir, DIR *stream,
		 const struct lz_map_node *mapped, const char *tree, const char *remote_dir,
		 struct lz_union **out)
{
	const struct lz_source_listing *listing = NULL;
	bool listing_only = remote_dir != NULL && stream == NULL && tree == NULL &&
			    (mapped == NULL || mapped->nchildren == 0);
	struct builder b = { 0 };
	int err;

	if (remote_dir != NULL) {
		err = lz_objects_listing_get(fs, remote_dir, &listing);
		if (err != 0)
			return err;
		/*
		 * The listing is the directory's whole content and the same one a
		 * union in use holds: share that union, building nothing.
		 */
		if (listing_only && (*out = listing_twin(t, dir, listing)) != NULL) {
			lz_objects_listing_put(fs, listing);
			return 0;
		}
	}
	b.u = calloc(1, sizeof(*b.u));
	if (b.u == NULL) {
		lz_objects_listing_put(fs, listing);
		return -ENOMEM;
	}
	b.u->dir = dir;
	b.u->refs = 1;
	b.u->fs = fs;
	b.u->listing_only = listing_only;
	err = add_backing(&b, stream);
	if (err == 0)
		err = add_mapped(&b, mapped);
	if (err == 0 && listing != NULL)
		err = add_objects(&b, remote_dir, listing);
	else
		lz_objects_listing_put(fs, listing);
	/* A tree that cannot be read lists what the underlay has (its lookups say the same). */
	if (err == 0 && tree != NULL && fs->images != NULL)
		lz_images_list_dir(fs->images, tree, add_tree_name, &b);
	if (err == 0)
		err = b.err;
	if (err != 0) {
		free_union(b.u);
		return err;
	}
	sort_unique(b.u);
	*out = share(t, b.u);
	return 0;
}

void lz_union_put(struct lz_unions *t, struct lz_union *u)
{
	bool last;

	if (u == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	last = --u->refs == 0;
	if (last && !u->evicted)
		unlink_union(t, u);
	pthread_mutex_unlock(&t->lock);
	if (last)
		free_union(u);
}

bool lz_union_reading(struct lz_unions *t, struct lz_union *u)
{
	bool kept;

	pthread_mutex_lock(&t->lock);
	kept = !u->evicted;
	if (kept) {
		u->readers++;
		u->used = ++t->tick;
	}
	pthread_mutex_unlock(&t->lock);
	return kept;
}

void lz_union_done(struct lz_unions *t, struct lz_union *u)
{
	pthread_mutex_lock(&t->lock);
	u->readers--;
	pthread_mutex_unlock(&t->lock);
}

/* 31 bits of the name's hash, never 0 (0 says "no name": the end of the listing). */
static uint64_t name_hash(const char *name)
{
	return (lz_hash64(name, UINT64_C(1469598103934665603)) & 0x7fffffffu) | 1;
}

uint64_t lz_union_cookie(const struct lz_union *u, size_t i)
{
	uint64_t h = i < u->count ? name_hash(u->entries[i].name) : 0;
	return h << 32 | (uint64_t)(i & 0xffffffffu);
}

size_t lz_union_index(const struct lz_union *u, uint64_t cookie)
{
	size_t i = (size_t)(cookie & 0xffffffffu), best = SIZE_MAX, dist = SIZE_MAX;
	uint64_t h = cookie >> 32;

	if (h == 0 || (i < u->count && name_hash(u->entries[i].name) == h))
		return i < u->count ? i : u->count;
	/* Another snapshot: find the name where it went (entries before it were listed). */
	for (size_t j = 0; j < u->count; j++) {
		size_t d = j > i ? j - i : i - j;
		if (d < dist && name_hash(u->entries[j].name) == h) {
			best = j;
			dist = d;
		}
	}
	if (best != SIZE_MAX)
		return best;
	return i < u->count ? i : u->count;
}

void lz_unions_stats(struct lz_unions *t, struct lz_unions_stats *out)
{
	pthread_mutex_lock(&t->lock);
	*out = (struct lz_unions_stats){
		.unions = t->count,
		.entries = t->entries,
		.bytes = t->bytes,
		.evictions = t->evictions,
	};
	pthread_mutex_unlock(&t->lock);
}
