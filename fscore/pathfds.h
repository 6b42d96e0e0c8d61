/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The O_PATH descriptors of backing files, bounded. Every inode the kernel
 * holds needs its backing file, but a walk of a million-entry underlay must
 * not need a million descriptors: at most CAP are open at once for the
 * mount. A descriptor nobody is using may be closed for room (the least
 * recently used first, by a clock sweep); the file is opened again when
 * needed, by the file handle taken when it was first seen
 * (name_to_handle_at, then open_by_handle_at on a descriptor of the same
 * filesystem kept open per node id source: the "anchor", a directory or a
 * regular file of it). A file on a filesystem without file handles keeps its
 * descriptor (pinned).
 *
 * A struct lz_pathfd is embedded in its owner (an inode); the owner calls
 * init once, fini once, and brackets every use of the descriptor with get
 * and put. Calls are thread-safe; one entry's calls may race.
 */
#ifndef LAZYFS_PATHFDS_H
#define LAZYFS_PATHFDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct file_handle;

struct lz_pathfd {
	int fd;			    /* open now, or -1 (closed for room, or none) */
	unsigned users;		    /* between get and put: never closed */
	bool referenced;	    /* used since the sweep last passed */
	bool listed;		    /* in the sweep's list */
	unsigned anchor;	    /* its source's anchor, 0: none (pinned) */
	struct file_handle *handle; /* NULL: pinned */
	struct lz_pathfd *prev, *next;
};

struct lz_pathfds;

/* At most CAP descriptors open (not counting pinned ones); NULL when out of memory. */
struct lz_pathfds *lz_pathfds_new(unsigned cap);
/* Frees the set: every entry was finished (fini) before. */
void lz_pathfds_free(struct lz_pathfds *p);

/*
 * Starts E with FD (consumed; -1 for none), the O_PATH descriptor of a file
 * of type TYPE (S_IFMT bits) of node id source SOURCE (0: never closed, like
 * the root). Until its filesystem has an anchor (a directory or a regular
 * file of it seen first), a file of another type is never closed either.
 */
void lz_pathfd_init(struct lz_pathfds *p, struct lz_pathfd *e, int fd, unsigned source,
		    mode_t type);
/* Closes E's descriptor and forgets its handle. */
void lz_pathfd_fini(struct lz_pathfds *p, struct lz_pathfd *e);

/*
 * E's descriptor, opened again if it was closed: valid until lz_pathfd_put.
 * -errno when it cannot be (-ESTALE: the file is gone; -EBADF: E has none).
 */
int lz_pathfd_get(struct lz_pathfds *p, struct lz_pathfd *e);
void lz_pathfd_put(struct lz_pathfds *p, struct lz_pathfd *e);
/* A new descriptor of E's file, the caller's to close; -errno. */
int lz_pathfd_dup(struct lz_pathfds *p, struct lz_pathfd *e);
/* FD, a new descriptor of E's file (a repeated lookup): kept if E has none open, else closed. */
void lz_pathfd_offer(struct lz_pathfds *p, struct lz_pathfd *e, int fd);

struct lz_pathfds_stats {
	uint64_t open;	   /* closable descriptors open now */
	uint64_t cap;	   /* and the most there may be */
	uint64_t pinned;   /* files without a handle: never closed */
	uint64_t anchors;  /* one descriptor per filesystem seen */
	uint64_t closed;   /* closed for room, since the start */
	uint64_t reopened; /* opened again by handle */
	uint64_t stale;	   /* handles that no longer opened (the file was gone) */
};
void lz_pathfds_stats(struct lz_pathfds *p, struct lz_pathfds_stats *out);

#endif
