/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The sorted union a directory of the mount lists when it is more than its
 * backing directory: the root of a mount with images or remote objects, a
 * directory the map adds names to, a remote directory, a synthesized one.
 * Built when the directory is opened and immutable after; listings of the
 * same directory with the same entries share one copy (reference counted),
 * so holding many handles on it costs one union, not one each. A remote
 * directory's entries borrow their names from the source's shared listing
 * instead of copying them, and a directory opened again while its union is
 * in use shares it without building a new one to compare.
 *
 * The unions kept for open directories are bounded in memory (the cap the
 * table is made with): past it, the least recently read union nobody is
 * reading is evicted. Its listings stay open and take the directory again
 * when they are read next (lz_union_reading says so); an entry's cookie
 * (lz_union_cookie) carries a hash of its name, so a listing resumes at the
 * same name in the new snapshot. A single union bigger than the cap is still
 * built: the cap bounds what is kept, not what one listing may read. Only
 * listing.c uses this.
 */
#ifndef LAZYFS_UNION_H
#define LAZYFS_UNION_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs.h"

struct lz_union_entry {
	char *name;
	unsigned char type; /* DT_* */
	bool image;	    /* an image, mapped path or object: listed without a lookup... */
	bool resolvable;    /* ...unless a name of the images directory (lz_listed.lookup) */
	bool borrowed;	    /* NAME is the remote listing's (the union holds it), not a copy */
	ino_t backing_ino;  /* an object's node id; the backing inode for the others */
};

struct lz_union {
	uint64_t dir; /* the directory's node id */
	struct lz_union_entry *entries;
	size_t count;
	/*
	 * The remote listing whose names the entries borrow, referenced; with
	 * LISTING_ONLY (a remote directory: nothing but "." and ".." besides),
	 * a new listing of the directory finds its twin by this pointer alone,
	 * before building anything.
	 */
	struct lz_fs *fs;
	const struct lz_source_listing *listing;
	bool listing_only;
	/* Under the table's lock: */
	size_t bytes;	       /* what the entries take */
	unsigned refs;	       /* listings holding it */
	unsigned readers;      /* listings reading it now: never evicted */
	uint64_t used;	       /* when it was last read (the table's tick) */
	bool evicted;	       /* entries freed: listings take the directory again */
	struct lz_union *next; /* in the table, until evicted */
};

struct lz_unions;

/* A table keeping at most CAP bytes of unions nobody is reading; NULL when out of memory. */
struct lz_unions *lz_unions_new(uint64_t cap);
void lz_unions_free(struct lz_unions *t);

/*
 * The union of node id DIR: STREAM's entries (NULL: "." and ".." only), the
 * map's children of MAPPED, the remote directory REMOTE_DIR's objects, and
 * the images and subdirectories of directory TREE of the images tree ("" at
 * the root, NULL: none); shared with a union in use that has the same
 * entries. 0 or -errno.
 */
int lz_union_get(struct lz_fs *fs, struct lz_unions *t, uint64_t dir, DIR *stream,
		 const struct lz_map_node *mapped, const char *tree, const char *remote_dir,
		 struct lz_union **out);
/* Drops one reference; the last frees it. */
void lz_union_put(struct lz_unions *t, struct lz_union *u);
/*
 * Before reading U's entries: false when it was evicted (put it and get the
 * directory again); true keeps it until lz_union_done.
 */
bool lz_union_reading(struct lz_unions *t, struct lz_union *u);
void lz_union_done(struct lz_unions *t, struct lz_union *u);

/*
 * The cookie of entry I of U (a READDIR offset, never 0 past the first), and
 * the entry a cookie names in U: the same index when its name is still there,
 * else the entry of that name nearest to it, else the index itself.
 */
uint64_t lz_union_cookie(const struct lz_union *u, size_t i);
size_t lz_union_index(const struct lz_union *u, uint64_t cookie);

struct lz_unions_stats {
	uint64_t unions, entries, bytes; /* kept now */
	uint64_t evictions;		 /* since the start */
};
void lz_unions_stats(struct lz_unions *t, struct lz_unions_stats *out);

#endif
