/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The inode table: every node id the kernel holds a lookup reference on, with
 * the O_PATH descriptor of its backing file and its open state. Those
 * descriptors are bounded (pathfds.h): use one only between
 * lz_inode_path_get and lz_inode_path_put.
 */
#ifndef LAZYFS_INODE_H
#define LAZYFS_INODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pathfds.h"

struct lz_image;

enum lz_inode_kind {
	LZ_INODE_FD,	 /* a backing file: the underlay, or inside a kernel-mounted image */
	LZ_INODE_SYNTH,	 /* a directory the map or the images tree needs where the underlay has none
			  */
	LZ_INODE_SQFS,	 /* inside an image read through libsquashfuse */
	LZ_INODE_REMOTE, /* an object or directory of the remote (remote_mode=objects) */
};

struct lz_sqfs_image;

struct lz_map_node;

struct lz_inode {
	uint64_t nodeid;
	enum lz_inode_kind kind;
	struct lz_pathfd path; /* LZ_INODE_FD: O_PATH, never followed (lz_inode_path_get) */
	/*
	 * Directories on a mapped path (the root too): the map's node for it,
	 * whose map the inode holds. Replaced by a lookup after a reload, so read
	 * it with lz_inode_map_hold, change it with lz_inode_map_set.
	 */
	const struct lz_map_node *_Atomic map_node;
	_Atomic uint64_t map_index; /* map_node's index, for who may not walk it (0: none) */
	mode_t type;		    /* S_IFMT bits */
	uint64_t nlookup;	    /* references; guarded by the table lock */
	uint64_t holds;		    /* of them lz_inode_hold's, the rest the kernel's; same lock */
	struct lz_image *image;	    /* the image it belongs to, NULL for the underlay */
	struct lz_sqfs_image *sqfs; /* LZ_INODE_SQFS: the image handle (one reference) */
	uint64_t sqfs_id;	    /* LZ_INODE_SQFS: the squashfs inode id */
	/*
	 * LZ_INODE_SQFS inodes of kernel-backend images: the path from the
	 * image's root ("" for it), set once at lookup, so the files used can
	 * be recorded in a working set; NULL when not known.
	 */
	char *_Atomic relpath;
	/*
	 * Directories of the mount, not in an image, that are directories of
	 * the images tree (images.h, nested trees): their path there, set once
	 * (lz_inode_set_tree); NULL otherwise. The root is the tree's top by
	 * its node id and has none.
	 */
	char *_Atomic tree;
	/* LZ_INODE_REMOTE: its path on the remote ("" is the top), and size and mtime. */
	char *remote_path;
	uint64_t remote_size;
	struct timespec remote_mtime;

	/* Open state; guarded by lock. */
	pthread_mutex_t lock;
	int read_fd;	  /* O_RDONLY while the inode is open (or for cached-mode reads) */
	int backing_id;	  /* passthrough backing id shared by all opens, 0 if none */
	unsigned opens;	  /* open files using read_fd / backing_id */
	bool object_held; /* LZ_INODE_REMOTE: the cache keeps its object for opens without read_fd
			   */
	/*
	 * LZ_INODE_REMOTE opened while it is fetched (stream=on): the source's
	 * stream, read_fd its file; NULL otherwise. Its opens are all served by
	 * the daemon (no backing id: the kernel refuses a passthrough open beside
	 * a daemon-served one), until the last one closes; then later opens find
	 * the published copy and take passthrough.
	 */
	void *stream;

	struct lz_inode *next; /* hash chain */
};

struct lz_inode_table;

/* What a new inode starts with; fields are set before any other thread sees it. */
struct lz_inode_init {
	enum lz_inode_kind kind;
	int path_fd; /* consumed */
	mode_t type;
	struct lz_image *image;
	const struct lz_map_node *map_node;
	struct lz_sqfs_image *sqfs; /* a reference the new inode takes over */
	uint64_t sqfs_id;
	const char *remote_path; /* copied */
	const char *tree;	 /* copied: its path in the images tree, or NULL */
	uint64_t nlookup;	 /* the lookup count it starts with if new; 0 means 1 */
};

/* Gives INODE the path REL in the images tree (copied) unless it has one. */
void lz_inode_set_tree(struct lz_inode *inode, const char *rel);

/* A table keeping at most PATH_FDS backing descriptors open; NULL when out of memory. */
struct lz_inode_table *lz_inode_table_new(unsigned path_fds);
/* Called (with CTX) as each inode is freed, for what the table does not own (sqfs handles). */
void lz_inode_table_on_free(struct lz_inode_table *table,
			    void (*fn)(void *ctx, struct lz_inode *inode), void *ctx);
/* Frees every inode (closing its descriptors) and the table. */
void lz_inode_table_free(struct lz_inode_table *table);

/*
 * Returns the inode NODEID with one more lookup reference. If it is new it takes
 * ownership of PATH_FD; otherwise PATH_FD is closed. NULL (errno) on failure.
 */
struct lz_inode *lz_inode_ref(struct lz_inode_table *table, uint64_t nodeid, int path_fd,
			      mode_t type);
/*
 * Like lz_inode_ref, with all initial fields. *CREATED tells whether the inode
 * is new; if not, INIT's descriptor was closed and its sqfs reference is still
 * the caller's.
 */
/*
 * INODE's map node with its map held, so it stays while the caller walks it
 * even if a reload and a lookup replace it meanwhile; NULL when it has none.
 * Give it back with lz_map_node_put.
 */
const struct lz_map_node *lz_inode_map_hold(struct lz_inode *inode);
/* Makes NODE (or NULL) INODE's map node, holding NODE's map and letting the old one go. */
void lz_inode_map_set(struct lz_inode *inode, const struct lz_map_node *node);

struct lz_inode *lz_inode_ref_init(struct lz_inode_table *table, uint64_t nodeid,
				   const struct lz_inode_init *init, bool *created);
/*
 * INODE's O_PATH descriptor (LZ_INODE_FD), opened again if it was closed for
 * room: valid until lz_inode_path_put. -errno, -ESTALE when the file is gone.
 */
int lz_inode_path_get(struct lz_inode_table *table, struct lz_inode *inode);
void lz_inode_path_put(struct lz_inode_table *table, struct lz_inode *inode);
/* A new descriptor of INODE's backing file, the caller's to close; -errno. */
int lz_inode_path_dup(struct lz_inode_table *table, struct lz_inode *inode);
/* How many inodes there are and what their descriptors cost. */
void lz_inode_table_stats(struct lz_inode_table *table, uint64_t *inodes,
			  struct lz_pathfds_stats *fds);

/* The inode NODEID, or NULL. The kernel keeps it alive while it sends requests for it. */
struct lz_inode *lz_inode_find(struct lz_inode_table *table, uint64_t nodeid);
/* Drops COUNT lookup references; the last one frees the inode. */
void lz_inode_forget(struct lz_inode_table *table, uint64_t nodeid, uint64_t count);
/*
 * Keeps INODE (which the caller reached through a live kernel reference)
 * from being freed until lz_inode_unhold, as one more lookup reference
 * would: for work that outlives the request that named it.
 */
void lz_inode_hold(struct lz_inode_table *table, struct lz_inode *inode);
void lz_inode_unhold(struct lz_inode_table *table, struct lz_inode *inode);
/* Number of inodes in the table (for statistics and tests). */
size_t lz_inode_count(struct lz_inode_table *table);

/*
 * Source numbers for node ids: one per backing device, assigned on first sight.
 * Returns 0 when all are taken.
 */
unsigned lz_inode_source_for_dev(struct lz_inode_table *table, dev_t dev);

/* Live upgrade (snapshot.c): the whole table as the old daemon hands it over. */
/* Calls FN for every inode with the table locked: FN must not call into the table. */
void lz_inode_foreach(struct lz_inode_table *table, void (*fn)(void *ctx, struct lz_inode *inode),
		      void *ctx);
/*
 * Calls FN for every inode with the table unlocked, each inode held meanwhile:
 * FN may take the inode's lock (the table's lock is taken under the inode's,
 * through an image handle's, never the other way). KERNEL_REFS: the lookup
 * references the kernel held when the table was walked. 0, or -ENOMEM.
 */
typedef void lz_inode_held_each_fn(void *ctx, struct lz_inode *inode, uint64_t kernel_refs);
int lz_inode_foreach_held(struct lz_inode_table *table, lz_inode_held_each_fn *fn, void *ctx);
/* Copies the devices of source numbers 1..N into DEVS[1..N] (DEVS holds MAX + 1); N. */
unsigned lz_inode_sources(struct lz_inode_table *table, dev_t *devs, unsigned max);
/* Gives a new, empty table the old daemon's sources, so node ids mean the same. 0 or -1. */
int lz_inode_set_sources(struct lz_inode_table *table, const dev_t *devs, unsigned n);
/*
 * After a crash: takes source numbers up to N without a device, so that the
 * devices seen from now on get numbers above them. The kernel still holds the
 * dead worker's node ids; an image mounted again, or another on a reused loop
 * device, must not get a number that makes them mean another file. 0, or -1
 * when too few numbers would be left (nothing is taken).
 */
int lz_inode_reserve_sources(struct lz_inode_table *table, unsigned n);
/*
 * After a crash, as image OWNER's root on DEV is looked up: a number reserved
 * for the image (PRIOR, the last it had before; 0: none) and never claimed
 * since is given to DEV, so the image's files keep the node ids the kernel
 * holds. A number claimed so is only ever its image's: when DEV comes back
 * for another one (the mount ended, its device number was reused), DEV is
 * given a new number and the old one stays reserved.
 */
void lz_inode_source_for_image(struct lz_inode_table *table, dev_t dev, const void *owner,
			       unsigned prior);
/*
 * Told, under the table's lock, each time INODE's lookup count changes, with
 * the count (0: the inode is being freed). FN must be quick and not call in.
 */
typedef void lz_inode_count_fn(void *ctx, const struct lz_inode *inode, uint64_t nlookup);
void lz_inode_table_on_count(struct lz_inode_table *table, lz_inode_count_fn *fn, void *ctx);
/*
 * Asked, as a node id becomes an inode, how many references the kernel
 * already holds on it from an earlier worker (a crash restart): the new
 * inode starts with them too, so the kernel's FORGETs balance.
 */
typedef uint64_t lz_inode_held_fn(void *ctx, uint64_t nodeid);
void lz_inode_table_held_by(struct lz_inode_table *table, lz_inode_held_fn *fn, void *ctx);
/*
 * FN(CTX, N) is told how many source numbers are taken: now, and each time a
 * new one is (under the table's lock: FN must be quick and not call in).
 */
void lz_inode_table_on_sources(struct lz_inode_table *table,
			       void (*fn)(void *ctx, unsigned sources), void *ctx);

#endif
