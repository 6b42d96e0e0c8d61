/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Directory listings: the names a directory shows, and the inode numbers a
 * plain listing gives them. Below the root they come straight from the
 * backing directory. The root of a mount with images or remote objects, and
 * every directory the map adds names to, is a union taken as a sorted
 * snapshot when the directory is opened: images, mapped paths and remote
 * objects are listed without a lookup, so listing mounts and fetches nothing.
 * A squashfuse image's directories are listed by the glue straight from the
 * image (lz_sqfs_readdir), which has offsets of its own.
 *
 * A listing is used by one request at a time (the kernel serializes
 * READDIRs of one open directory). Holding one costs no descriptor: at most
 * LZ_LISTING_STREAMS directory streams are open for the whole mount, and a
 * union is shared by every listing of it (union.h). Calls return 0 or
 * -errno.
 */
#ifndef LAZYFS_LISTING_H
#define LAZYFS_LISTING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs.h"

struct lz_listing;
struct lz_listings;

/* Directory streams open at once, for the whole mount. */
#define LZ_LISTING_STREAMS 64

/*
 * The listings of one mount (lz_fs.listings), keeping at most UNION_CAP
 * bytes of union listings for open directories nobody is reading (union.h):
 * NULL when out of memory.
 */
struct lz_listings *lz_listings_new(uint64_t union_cap);
void lz_listings_free(struct lz_listings *p);
struct lz_listings_stats {
	uint64_t open;		  /* directories open now (the kernel's handles) */
	uint64_t streams;	  /* backing directory streams open now */
	uint64_t unions;	  /* union listings kept, each shared by its handles */
	uint64_t union_entries;	  /* and their entries */
	uint64_t union_bytes;	  /* and the memory they take */
	uint64_t union_evictions; /* since the start, past the cap */
};
void lz_listings_stats(struct lz_listings *p, struct lz_listings_stats *out);

/* One entry, valid until the listing moves on. */
struct lz_listed {
	const char *name;
	unsigned char type; /* DT_* */
	uint64_t ino;	    /* what a plain listing shows (never 0 for "." and "..") */
	/*
	 * Whether READDIRPLUS may look it up: not the dot entries. An image
	 * (IMAGE) is looked up only when that cannot wait on its store
	 * (lz_lookup_may_block), and listed without attributes when it fails.
	 */
	bool lookup;
	bool image;
	off_t next; /* the offset of the entry after it */
};

/*
 * The listing of directory INODE, node id INO (not a squashfuse one). *CACHE:
 * whether the kernel may keep it (it drops it itself when the directory's
 * mtime changes); unions are never cached, images and the map change at any
 * time.
 */
int lz_listing_open(struct lz_fs *fs, struct lz_inode *inode, uint64_t ino, bool *cache,
		    struct lz_listing **out);
void lz_listing_free(struct lz_listing *l);
/*
 * Before reading (one READDIR): goes to OFFSET (0: the start; else an
 * entry's `next`), opening the directory again if its stream was closed for
 * room, and keeps it open until lz_listing_end; the listing is locked until
 * then (not after a failure). 0 or -errno.
 */
int lz_listing_begin(struct lz_listing *l, off_t offset);
void lz_listing_end(struct lz_listing *l);
/*
 * The entry at the current position, without moving on: 1, 0 at the end, or
 * -errno. An entry that did not fit in a reply is given again by the next
 * call unless lz_listing_advance was called.
 */
int lz_listing_peek(struct lz_listing *l, struct lz_listed *out);
void lz_listing_advance(struct lz_listing *l);

#endif
