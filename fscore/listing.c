/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Open directories. A union listing (union.c) is shared and holds no
 * descriptor. A plain backing directory is read through a directory stream;
 * at most LZ_LISTING_STREAMS of those are open at once for the whole mount,
 * the least recently read closed first and opened again, at the position
 * the kernel asks for, when its directory is read next: an unprivileged user
 * holding thousands of directory handles costs the daemon no descriptor
 * each.
 */
#include "config.h"
#include "listing.h"
#include "union.h"
#include "common/names.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lz_listing {
	/*
	 * Held from begin to end. The kernel sends one READDIR at a time for an
	 * open directory, but the FUSE worker that served the last one and the
	 * one serving the next are ordered only through /dev/fuse, which
	 * ThreadSanitizer cannot see: this lock (never contended) makes that
	 * hand-off of the fields below explicit.
	 */
	pthread_mutex_t lock;
	struct lz_fs *fs;
	struct lz_listings *pool;
	struct lz_inode *dir; /* the directory (the kernel keeps it while it is open) */
	uint64_t self_ino;
	unsigned source; /* node id source of a backing directory's entries */
	off_t offset;	 /* what the next peek reads: an entry's cookie */
	/* A union listing: the union, where the next peek reads, and what it is made of. */
	bool is_union;
	struct lz_union *u; /* NULL after a failed rebuild */
	size_t index;
	const struct lz_map_node *mapped; /* its map held while the listing lives */
	const char *tree; /* its directory in the images tree ("" the top), NULL: none */
	const char *remote_dir;
	/* A backing directory: its stream while open, under the pool's lock when not busy. */
	DIR *stream;
	struct dirent *pending;		/* read but not consumed */
	bool busy;			/* between begin and end: never closed */
	struct lz_listing *prev, *next; /* open streams, most recently read first */
};

struct lz_listings {
	pthread_mutex_t lock;
	struct lz_listing *head, *tail; /* listings with an open stream */
	unsigned open;			/* streams */
	uint64_t listings;		/* open directories */
	struct lz_unions *unions;
};

struct lz_listings *lz_listings_new(uint64_t union_cap)
{
	struct lz_listings *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	p->unions = lz_unions_new(union_cap);
	if (p->unions == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

void lz_listings_free(struct lz_listings *p)
{
	if (p == NULL)
		return;
	lz_unions_free(p->unions);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void lz_listings_stats(struct lz_listings *p, struct lz_listings_stats *out)
{
	struct lz_unions_stats u;

	pthread_mutex_lock(&p->lock);
	out->open = p->listings;
	out->streams = p->open;
	pthread_mutex_unlock(&p->lock);
	lz_unions_stats(p->unions, &u);
	out->unions = u.unions;
	out->union_entries = u.entries;
	out->union_bytes = u.bytes;
	out->union_evictions = u.evictions;
}

/* Under the pool's lock. */
static void unlink_stream(struct lz_listings *p, struct lz_listing *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		p->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		p->tail = l->prev;
	l->prev = l->next = NULL;
	p->open--;
}

static void push_front(struct lz_listings *p, struct lz_listing *l)
{
	l->next = p->head;
	if (p->head != NULL)
		p->head->prev = l;
	p->head = l;
	if (p->tail == NULL)
		p->tail = l;
	p->open++;
}

/* Under the pool's lock: closes the least recently read streams until there is room. */
static void make_room(struct lz_listings *p)
{
	for (struct lz_listing *l = p->tail; l != NULL && p->open >= LZ_LISTING_STREAMS;) {
		struct lz_listing *prev = l->prev;
		if (!l->busy) {
			unlink_stream(p, l);
			closedir(l->stream);
			l->stream = NULL;
			l->pending = NULL; /* read again from l->offset */
		}
		l = prev;
	}
}

/* A directory stream of INODE's backing directory; -errno. */
static int open_dir(struct lz_fs *fs, struct lz_inode *inode, DIR **out)
{
	int path = lz_inode_path_get(fs->inodes, inode), fd, err;

	if (path < 0)
		return path;
	fd = openat(path, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	lz_inode_path_put(fs->inodes, inode);
	if (fd >= 0 && (*out = fdopendir(fd)) == NULL) {
		err = -errno;
		close(fd);
	}
	return err;
}

/* The backing directory of L, opened (again) at L's offset, and kept from closing (busy). */
static int open_stream(struct lz_listing *l)
{
	DIR *stream = NULL;
	int err = open_dir(l->fs, l->dir, &stream);

	if (err != 0)
		return err;
	if (l->offset != 0)
		seekdir(stream, l->offset);
	pthread_mutex_lock(&l->pool->lock);
	make_room(l->pool);
	l->stream = stream;
	l->busy = true;
	push_front(l->pool, l);
	pthread_mutex_unlock(&l->pool->lock);
	return 0;
}

void lz_listing_free(struct lz_listing *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock); /* after the last request that read it (RELEASEDIR) */
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_destroy(&l->lock);
	lz_union_put(l->pool->unions, l->u);
	lz_map_node_put(l->mapped);
	pthread_mutex_lock(&l->pool->lock);
	l->pool->listings--;
	if (l->stream != NULL) {
		unlink_stream(l->pool, l);
		closedir(l->stream);
	}
	pthread_mutex_unlock(&l->pool->lock);
	free(l);
}

/* The union of L's directory (again); its backing entries read once and closed again. */
static int open_union(struct lz_listing *l)
{
	DIR *stream = NULL;
	int err;

	if (l->dir->kind == LZ_INODE_FD && (err = open_dir(l->fs, l->dir, &stream)) != 0)
		return err;
	err = lz_union_get(l->fs, l->pool->unions, l->self_ino, stream, l->mapped, l->tree,
			   l->remote_dir, &l->u);
	if (stream != NULL)
		closedir(stream);
	return err;
}

/* The node id source of a backing directory's entries. */
static int backing_source(struct lz_fs *fs, struct lz_inode *inode, unsigned *source)
{
	struct stat st;
	int fd = lz_inode_path_get(fs->inodes, inode), err;

	if (fd < 0)
		return fd;
	err = fstat(fd, &st) == 0 ? 0 : -errno;
	lz_inode_path_put(fs->inodes, inode);
	if (err == 0)
		*source = lz_inode_source_for_dev(fs->inodes, st.st_dev);
	return err;
}

int lz_listing_open(struct lz_fs *fs, struct lz_inode *inode, uint64_t ino, bool *cache,
		    struct lz_listing **out)
{
	struct lz_listing *l = calloc(1, sizeof(*l));
	const struct lz_map_node *mapped = inode->image == NULL ? lz_inode_map_hold(inode) : NULL;
	bool root = ino == LZ_ROOT_ID, objects = root && fs->objects != NULL;
	/* Set once by a lookup, then kept with the inode: the listing may borrow it. */
	const char *tree = root && fs->images != NULL ? ""
			   : inode->image == NULL     ? atomic_load(&inode->tree)
						      : NULL;
	int err = 0;

	*out = NULL;
	*cache = false;
	if (l == NULL) {
		lz_map_node_put(mapped);
		return -ENOMEM;
	}
	l->mapped = mapped; /* the listing's reference, given back when it is freed */
	pthread_mutex_init(&l->lock, NULL);
	l->fs = fs;
	l->pool = fs->listings;
	pthread_mutex_lock(&l->pool->lock);
	l->pool->listings++;
	pthread_mutex_unlock(&l->pool->lock);
	l->dir = inode;
	l->self_ino = ino;
	if (inode->kind == LZ_INODE_SQFS) {
		/* Listed by the glue straight from the image, with its own stable offsets. */
		*cache = true;
	} else if (inode->kind == LZ_INODE_REMOTE) {
		l->is_union = true;
		l->remote_dir = inode->remote_path;
		err = open_union(l);
	} else if ((mapped != NULL && mapped->nchildren > 0) || tree != NULL || objects ||
		   inode->kind != LZ_INODE_FD) {
		/* Images and the map change at any time: such listings are never cached. */
		if (inode->kind == LZ_INODE_FD)
			err = backing_source(fs, inode, &l->source);
		l->is_union = true;
		l->tree = tree;
		l->remote_dir = objects ? "" : NULL;
		if (err == 0)
			err = open_union(l);
	} else {
		/* Listings stay in the kernel; it drops them itself when the directory's mtime
		 * changes. */
		err = backing_source(fs, inode, &l->source);
		*cache = err == 0;
	}
	if (err != 0) {
		lz_listing_free(l);
		return err;
	}
	*out = l;
	return 0;
}

/* A union listing at OFFSET, its union taken again if it was evicted. */
static int begin_union(struct lz_listing *l, off_t offset)
{
	while (l->u == NULL || !lz_union_reading(l->pool->unions, l->u)) {
		lz_union_put(l->pool->unions, l->u);
		l->u = NULL;
		int err = open_union(l);
		if (err != 0)
			return err;
	}
	l->index = offset == 0 ? 0 : lz_union_index(l->u, (uint64_t)offset);
	return 0;
}

/* A backing directory's stream at OFFSET, opened again if it was closed for room. */
static int begin_stream(struct lz_listing *l, off_t offset)
{
	bool moved = offset != l->offset, open;

	l->offset = offset;
	if (moved)
		l->pending = NULL;
	/* Under the lock: a stream not busy may be closed for room at any time. */
	pthread_mutex_lock(&l->pool->lock);
	open = l->stream != NULL;
	if (open) {
		unlink_stream(l->pool, l); /* the most recently read from now on */
		push_front(l->pool, l);
		l->busy = true;
	}
	pthread_mutex_unlock(&l->pool->lock);
	if (!open)
		return open_stream(l);
	if (moved)
		seekdir(l->stream, offset);
	return 0;
}

int lz_listing_begin(struct lz_listing *l, off_t offset)
{
	int err;

	if (l->dir->kind == LZ_INODE_SQFS)
		return 0;
	pthread_mutex_lock(&l->lock);
	err = l->is_union ? begin_union(l, offset) : begin_stream(l, offset);
	if (err != 0)
		pthread_mutex_unlock(&l->lock); /* no lz_listing_end follows */
	return err;
}

void lz_listing_end(struct lz_listing *l)
{
	if (l->dir->kind == LZ_INODE_SQFS)
		return;
	if (l->is_union) {
		lz_union_done(l->pool->unions, l->u);
	} else {
		pthread_mutex_lock(&l->pool->lock);
		l->busy = false;
		pthread_mutex_unlock(&l->pool->lock);
	}
	pthread_mutex_unlock(&l->lock);
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Never 0 for the dot entries: glibc's readdir skips entries with d_ino 0. */
static uint64_t listed_nodeid(const struct lz_listing *l, const char *name, ino_t backing_ino,
			      unsigned source)
{
	bool dot = is_dot_or_dotdot(name);

	if (strcmp(name, ".") == 0)
		return l->self_ino;
	if (source == 0 || !lz_nodeid_fits(backing_ino))
		return dot ? l->self_ino : 0;
	return lz_nodeid_make(source, backing_ino);
}

/* Until an image is resolved its inode number is unknown; list a stable stand-in. */
static uint64_t unresolved_image_ino(const char *name)
{
	uint64_t h = lz_hash64(name, UINT64_C(1469598103934665603));
	return lz_nodeid_make(LZ_NODEID_LISTED_SOURCE, (h & LZ_NODEID_INO_MASK) | 2);
}

static int peek_union(struct lz_listing *l, struct lz_listed *out)
{
	size_t i = l->index;

	if (i >= l->u->count)
		return 0;
	const struct lz_union_entry *e = &l->u->entries[i];
	out->name = e->name;
	out->type = e->type;
	/* Entries listed without a lookup carry their node id (remote) or get a stand-in. */
	if (e->image)
		out->ino = e->backing_ino ? e->backing_ino : unresolved_image_ino(e->name);
	else
		out->ino = listed_nodeid(l, e->name, e->backing_ino, l->source);
	out->lookup = (!e->image || e->resolvable) && !is_dot_or_dotdot(e->name);
	out->image = e->image;
	out->next = (off_t)lz_union_cookie(l->u, i + 1);
	return 1;
}

int lz_listing_peek(struct lz_listing *l, struct lz_listed *out)
{
	if (l->is_union)
		return peek_union(l, out);
	if (l->pending == NULL) {
		errno = 0;
		l->pending = readdir(l->stream);
		if (l->pending == NULL)
			return -errno;
	}
	out->name = l->pending->d_name;
	out->type = l->pending->d_type;
	out->ino = listed_nodeid(l, l->pending->d_name, l->pending->d_ino, l->source);
	out->lookup = !is_dot_or_dotdot(l->pending->d_name);
	out->next = l->pending->d_off;
	return 1;
}

void lz_listing_advance(struct lz_listing *l)
{
	if (l->is_union) {
		l->index++;
		return;
	}
	if (l->pending != NULL)
		l->offset = l->pending->d_off;
	l->pending = NULL;
}
