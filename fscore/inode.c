/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "inode.h"
#include "nodeid.h"
#include "map.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Power of two; chains stay short up to about a million live inodes. */
#define BUCKETS	     (1u << 16)
#define SOURCE_HINTS (1u << 14)

struct lz_inode_table {
	pthread_mutex_t lock;
	struct lz_pathfds *pathfds;
	struct lz_inode *buckets[BUCKETS];
	size_t count;
	dev_t source_dev[LZ_NODEID_MAX_SOURCE + 1];
	/* After a crash: the image a reserved number was claimed for (lz_inode_source_for_image).
	 */
	const void *source_owner[LZ_NODEID_MAX_SOURCE + 1];
	unsigned sources; /* source numbers 1..sources are taken */
	/*
	 * Where a device was last found in source_dev, by a hash of it: checked
	 * before use, so a stale hint costs only the search it saves (one per
	 * image entered, with thousands of images).
	 */
	uint16_t source_hint[SOURCE_HINTS];
	void (*on_sources)(void *ctx, unsigned sources);
	void *on_sources_ctx;
	void (*on_free)(void *ctx, struct lz_inode *inode);
	void *on_free_ctx;
	lz_inode_count_fn *on_count;
	void *on_count_ctx;
	lz_inode_held_fn *held;
	void *held_ctx;
};

/* Under the table's lock: INODE's lookup count changed (0: it is being freed). */
static void count_changed(struct lz_inode_table *table, const struct lz_inode *inode)
{
	if (table->on_count != NULL)
		table->on_count(table->on_count_ctx, inode, inode->nlookup - inode->holds);
}

static unsigned bucket_of(uint64_t nodeid)
{
	/* Fibonacci hashing spreads sequential inode numbers of every source. */
	return (unsigned)((nodeid * UINT64_C(0x9E3779B97F4A7C15)) >> 48) & (BUCKETS - 1);
}

struct lz_inode_table *lz_inode_table_new(unsigned path_fds)
{
	struct lz_inode_table *table = calloc(1, sizeof(*table));

	if (table == NULL)
		return NULL;
	table->pathfds = lz_pathfds_new(path_fds);
	if (table->pathfds == NULL) {
		free(table);
		return NULL;
	}
	pthread_mutex_init(&table->lock, NULL);
	return table;
}

void lz_inode_table_on_free(struct lz_inode_table *table,
			    void (*fn)(void *ctx, struct lz_inode *inode), void *ctx)
{
	table->on_free = fn;
	table->on_free_ctx = ctx;
}

/* Frees what the table gave INODE: an inode nobody else saw goes this way alone. */
static void discard(struct lz_inode_table *table, struct lz_inode *inode)
{
	lz_pathfd_fini(table->pathfds, &inode->path);
	if (inode->read_fd >= 0)
		close(inode->read_fd);
	pthread_mutex_destroy(&inode->lock);
	lz_map_node_put(atomic_load(&inode->map_node));
	free(inode->remote_path);
	free(atomic_load(&inode->relpath));
	free(atomic_load(&inode->tree));
	free(inode);
}

void lz_inode_set_tree(struct lz_inode *inode, const char *rel)
{
	char *copy, *none = NULL;

	if (atomic_load(&inode->tree) != NULL || (copy = strdup(rel)) == NULL)
		return;
	if (!atomic_compare_exchange_strong(&inode->tree, &none, copy))
		free(copy);
}

/* The inode's lock orders a swap after a reload against a reader taking its hold. */
const struct lz_map_node *lz_inode_map_hold(struct lz_inode *inode)
{
	const struct lz_map_node *node;

	/* Most inodes have none (no map, or below one): nothing to hold, no lock taken. */
	if (atomic_load(&inode->map_node) == NULL)
		return NULL;
	pthread_mutex_lock(&inode->lock);
	node = atomic_load(&inode->map_node);
	if (node != NULL)
		lz_map_hold(node->owner);
	pthread_mutex_unlock(&inode->lock);
	return node;
}

void lz_inode_map_set(struct lz_inode *inode, const struct lz_map_node *node)
{
	const struct lz_map_node *old;

	if (node != NULL)
		lz_map_hold(node->owner);
	pthread_mutex_lock(&inode->lock);
	old = atomic_exchange(&inode->map_node, node);
	atomic_store(&inode->map_index, node != NULL ? node->index : 0);
	pthread_mutex_unlock(&inode->lock);
	lz_map_node_put(old);
}

static void inode_free(struct lz_inode_table *table, struct lz_inode *inode)
{
	if (table->on_free != NULL)
		table->on_free(table->on_free_ctx, inode);
	discard(table, inode);
}

void lz_inode_table_free(struct lz_inode_table *table)
{
	if (table == NULL)
		return;
	for (unsigned i = 0; i < BUCKETS; i++) {
		struct lz_inode *inode = table->buckets[i];
		while (inode != NULL) {
			struct lz_inode *next = inode->next;
			inode_free(table, inode);
			inode = next;
		}
	}
	lz_pathfds_free(table->pathfds);
	pthread_mutex_destroy(&table->lock);
	free(table);
}

static struct lz_inode *find_locked(struct lz_inode_table *table, uint64_t nodeid)
{
	struct lz_inode *inode = table->buckets[bucket_of(nodeid)];

	while (inode != NULL && inode->nodeid != nodeid)
		inode = inode->next;
	return inode;
}

/* A new inode from INIT (its descriptor consumed), not yet in the table; NULL (errno). */
static struct lz_inode *make_inode(struct lz_inode_table *table, uint64_t nodeid,
				   const struct lz_inode_init *init, uint64_t held)
{
	struct lz_inode *inode = calloc(1, sizeof(*inode));

	if (inode == NULL ||
	    (init->remote_path != NULL &&
	     (inode->remote_path = strdup(init->remote_path)) == NULL) ||
	    (init->tree != NULL && (inode->tree = strdup(init->tree)) == NULL)) {
		if (inode != NULL)
			free(inode->remote_path);
		free(inode);
		if (init->path_fd >= 0)
			close(init->path_fd);
		errno = ENOMEM;
		return NULL;
	}
	inode->nodeid = nodeid;
	inode->kind = init->kind;
	inode->type = init->type & S_IFMT;
	inode->image = init->image;
	inode->map_node = init->map_node;
	if (init->map_node != NULL) {
		lz_map_hold(init->map_node->owner);
		inode->map_index = init->map_node->index;
	}
	inode->sqfs = init->sqfs;
	inode->sqfs_id = init->sqfs_id;
	inode->nlookup = (init->nlookup > 0 ? init->nlookup : 1) + held;
	inode->read_fd = -1;
	pthread_mutex_init(&inode->lock, NULL);
	/* The root's descriptor stays open: everything else is found from it. */
	lz_pathfd_init(table->pathfds, &inode->path, init->path_fd,
		       nodeid == LZ_ROOT_ID ? 0 : lz_nodeid_source(nodeid), inode->type);
	return inode;
}

/* Under the table's lock: NODEID with one more reference, or NULL. */
static struct lz_inode *ref_locked(struct lz_inode_table *table, uint64_t nodeid)
{
	struct lz_inode *inode = find_locked(table, nodeid);

	if (inode != NULL) {
		inode->nlookup++;
		count_changed(table, inode);
	}
	return inode;
}

struct lz_inode *lz_inode_ref_init(struct lz_inode_table *table, uint64_t nodeid,
				   const struct lz_inode_init *init, bool *created)
{
	struct lz_inode *inode, *made;

	*created = false;
	pthread_mutex_lock(&table->lock);
	inode = ref_locked(table, nodeid);
	pthread_mutex_unlock(&table->lock);
	if (inode != NULL) {
		/* A fresh descriptor of the same file: kept if the inode's was closed for room. */
		if (init->path_fd >= 0)
			lz_pathfd_offer(table->pathfds, &inode->path, init->path_fd);
		return inode;
	}
	/* Made outside the lock: taking the file handle is a system call. */
	made = make_inode(table, nodeid, init,
			  table->held ? table->held(table->held_ctx, nodeid) : 0);
	if (made == NULL)
		return NULL;
	pthread_mutex_lock(&table->lock);
	inode = ref_locked(table, nodeid); /* another lookup may have made it meanwhile */
	if (inode == NULL) {
		unsigned b = bucket_of(nodeid);
		inode = made;
		inode->next = table->buckets[b];
		table->buckets[b] = inode;
		table->count++;
		*created = true;
		count_changed(table, inode);
	}
	pthread_mutex_unlock(&table->lock);
	if (inode != made)
		discard(table, made); /* its sqfs reference stays the caller's, as for one found */
	return inode;
}

struct lz_inode *lz_inode_ref(struct lz_inode_table *table, uint64_t nodeid, int path_fd,
			      mode_t type)
{
	struct lz_inode_init init = { .kind = LZ_INODE_FD, .path_fd = path_fd, .type = type };
	bool created;

	return lz_inode_ref_init(table, nodeid, &init, &created);
}

struct lz_inode *lz_inode_find(struct lz_inode_table *table, uint64_t nodeid)
{
	struct lz_inode *inode;

	pthread_mutex_lock(&table->lock);
	inode = find_locked(table, nodeid);
	pthread_mutex_unlock(&table->lock);
	return inode;
}

void lz_inode_forget(struct lz_inode_table *table, uint64_t nodeid, uint64_t count)
{
	struct lz_inode **link, *inode;

	pthread_mutex_lock(&table->lock);
	link = &table->buckets[bucket_of(nodeid)];
	while (*link != NULL && (*link)->nodeid != nodeid)
		link = &(*link)->next;
	inode = *link;
	if (inode == NULL) {
		pthread_mutex_unlock(&table->lock);
		return;
	}
	inode->nlookup = count >= inode->nlookup ? 0 : inode->nlookup - count;
	count_changed(table, inode);
	if (inode->nlookup > 0) {
		pthread_mutex_unlock(&table->lock);
		return;
	}
	*link = inode->next;
	table->count--;
	pthread_mutex_unlock(&table->lock);
	inode_free(table, inode);
}

void lz_inode_hold(struct lz_inode_table *table, struct lz_inode *inode)
{
	pthread_mutex_lock(&table->lock);
	inode->nlookup++;
	inode->holds++;
	pthread_mutex_unlock(&table->lock);
}

void lz_inode_unhold(struct lz_inode_table *table, struct lz_inode *inode)
{
	pthread_mutex_lock(&table->lock);
	inode->holds--;
	if (inode->nodeid == LZ_ROOT_ID) {
		/* The root is never freed (the kernel never forgets it): only counted. */
		inode->nlookup--;
		pthread_mutex_unlock(&table->lock);
		return;
	}
	pthread_mutex_unlock(&table->lock);
	lz_inode_forget(table, inode->nodeid, 1);
}

int lz_inode_path_get(struct lz_inode_table *table, struct lz_inode *inode)
{
	return lz_pathfd_get(table->pathfds, &inode->path);
}

void lz_inode_path_put(struct lz_inode_table *table, struct lz_inode *inode)
{
	lz_pathfd_put(table->pathfds, &inode->path);
}

int lz_inode_path_dup(struct lz_inode_table *table, struct lz_inode *inode)
{
	return lz_pathfd_dup(table->pathfds, &inode->path);
}

void lz_inode_table_stats(struct lz_inode_table *table, uint64_t *inodes,
			  struct lz_pathfds_stats *fds)
{
	*inodes = lz_inode_count(table);
	lz_pathfds_stats(table->pathfds, fds);
}

size_t lz_inode_count(struct lz_inode_table *table)
{
	size_t count;

	pthread_mutex_lock(&table->lock);
	count = table->count;
	pthread_mutex_unlock(&table->lock);
	return count;
}

unsigned lz_inode_source_for_dev(struct lz_inode_table *table, dev_t dev)
{
	unsigned source = 0;
	unsigned hint = (unsigned)(((uint64_t)dev * UINT64_C(0x9E3779B97F4A7C15)) >> 50);

	pthread_mutex_lock(&table->lock);
	if (table->source_hint[hint] != 0 && table->source_dev[table->source_hint[hint]] == dev)
		source = table->source_hint[hint];
	for (unsigned i = 1; source == 0 && i <= table->sources; i++) {
		if (table->source_dev[i] == dev)
			source = i;
	}
	/* The last sources are reserved (nodeid.h). */
	if (source == 0 && table->sources < LZ_NODEID_FIRST_RESERVED - 1) {
		source = ++table->sources;
		table->source_dev[source] = dev;
		if (table->on_sources != NULL)
			table->on_sources(table->on_sources_ctx, table->sources);
	}
	table->source_hint[hint] = (uint16_t)source;
	pthread_mutex_unlock(&table->lock);
	return source;
}

void lz_inode_foreach(struct lz_inode_table *table, void (*fn)(void *ctx, struct lz_inode *inode),
		      void *ctx)
{
	pthread_mutex_lock(&table->lock);
	for (unsigned i = 0; i < BUCKETS; i++)
		for (struct lz_inode *inode = table->buckets[i]; inode != NULL; inode = inode->next)
			fn(ctx, inode);
	pthread_mutex_unlock(&table->lock);
}

struct held {
	struct lz_inode *inode;
	uint64_t kernel_refs;
};

/* Table locked: holds every inode (as lz_inode_hold) into ALL; how many. */
static size_t hold_all(struct lz_inode_table *table, struct held *all)
{
	size_t n = 0;

	for (unsigned i = 0; i < BUCKETS; i++) {
		for (struct lz_inode *in = table->buckets[i]; in != NULL; in = in->next) {
			all[n++] = (struct held){ in, in->nlookup - in->holds };
			in->nlookup++;
			in->holds++;
		}
	}
	return n;
}

int lz_inode_foreach_held(struct lz_inode_table *table, lz_inode_held_each_fn *fn, void *ctx)
{
	struct held *all;
	size_t n = 0;

	pthread_mutex_lock(&table->lock);
	all = malloc((table->count + 1) * sizeof(*all));
	if (all != NULL)
		n = hold_all(table, all);
	pthread_mutex_unlock(&table->lock);
	if (all == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(ctx, all[i].inode, all[i].kernel_refs);
	for (size_t i = 0; i < n; i++)
		lz_inode_unhold(table, all[i].inode);
	free(all);
	return 0;
}

unsigned lz_inode_sources(struct lz_inode_table *table, dev_t *devs, unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&table->lock);
	n = table->sources < max ? table->sources : max;
	for (unsigned i = 1; i <= n; i++)
		devs[i] = table->source_dev[i];
	pthread_mutex_unlock(&table->lock);
	return n;
}

/*
 * Reserving more would leave too few numbers (and make every new device's
 * search long): past it, a restart reuses numbers as before.
 */
#define RESERVE_MAX (LZ_NODEID_FIRST_RESERVED / 4)

/* No file has it: stat never reports a device of all ones. */
#define NO_DEVICE ((dev_t)-1)

int lz_inode_reserve_sources(struct lz_inode_table *table, unsigned n)
{
	if (n >= RESERVE_MAX)
		return -1;
	pthread_mutex_lock(&table->lock);
	for (unsigned i = table->sources + 1; i <= n; i++)
		table->source_dev[i] = NO_DEVICE;
	if (n > table->sources)
		table->sources = n;
	pthread_mutex_unlock(&table->lock);
	return 0;
}

void lz_inode_source_for_image(struct lz_inode_table *table, dev_t dev, const void *owner,
			       unsigned prior)
{
	unsigned have = 0;

	pthread_mutex_lock(&table->lock);
	for (unsigned i = 1; i <= table->sources && have == 0; i++)
		if (table->source_dev[i] == dev)
			have = i;
	if (have != 0 && table->source_owner[have] != NULL && table->source_owner[have] != owner) {
		/* Another image's mount ended and its device number came back. */
		table->source_dev[have] = NO_DEVICE;
		have = 0;
	}
	if (have == 0 && prior != 0 && prior <= table->sources &&
	    table->source_dev[prior] == NO_DEVICE && table->source_owner[prior] == NULL) {
		table->source_dev[prior] = dev;
		table->source_owner[prior] = owner;
	}
	pthread_mutex_unlock(&table->lock);
}

void lz_inode_table_held_by(struct lz_inode_table *table, lz_inode_held_fn *fn, void *ctx)
{
	pthread_mutex_lock(&table->lock);
	table->held = fn;
	table->held_ctx = ctx;
	pthread_mutex_unlock(&table->lock);
}

void lz_inode_table_on_count(struct lz_inode_table *table, lz_inode_count_fn *fn, void *ctx)
{
	pthread_mutex_lock(&table->lock);
	table->on_count = fn;
	table->on_count_ctx = ctx;
	pthread_mutex_unlock(&table->lock);
}

void lz_inode_table_on_sources(struct lz_inode_table *table,
			       void (*fn)(void *ctx, unsigned sources), void *ctx)
{
	pthread_mutex_lock(&table->lock);
	table->on_sources = fn;
	table->on_sources_ctx = ctx;
	fn(ctx, table->sources);
	pthread_mutex_unlock(&table->lock);
}

int lz_inode_set_sources(struct lz_inode_table *table, const dev_t *devs, unsigned n)
{
	if (n >= LZ_NODEID_FIRST_RESERVED)
		return -1;
	pthread_mutex_lock(&table->lock);
	for (unsigned i = 1; i <= n; i++)
		table->source_dev[i] = devs[i];
	table->sources = n;
	pthread_mutex_unlock(&table->lock);
	return 0;
}
