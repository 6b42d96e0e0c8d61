/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a name under the mount means, decided in one place. At the root, a
 * remote object (remote_mode=objects) or an image of that name shadows the
 * underlay; on a mapped path, a map entry is an image, and a directory the
 * map needs where the underlay has none is synthesized; inside an image or
 * the remote tree, their own entries; everywhere else the underlay. An image
 * that cannot be resolved falls back to the underlay (fail open).
 *
 * Every successful lookup takes one lookup reference on the inode it returns
 * (the kernel's, dropped by lz_inode_forget). Calls return 0 or -errno.
 */
#ifndef LAZYFS_LOOKUP_H
#define LAZYFS_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs.h"

/* What the kernel learns about an entry (a FUSE entry reply carries the same). */
struct lz_entry {
	uint64_t ino; /* its node id; 0 for a negative entry */
	struct stat attr;
	double attr_timeout, entry_timeout; /* seconds the kernel may keep them */
};

/*
 * Looks NAME up beneath PARENT into E. -ENOENT also fills E as a negative
 * entry (ino 0 with its timeout), which the kernel may cache.
 */
int lz_lookup(struct lz_fs *fs, struct lz_inode *parent, const char *name, struct lz_entry *e);

/*
 * Whether looking NAME up beneath PARENT may wait on a store (it names an
 * image that is not mounted yet, whose file may sit on a slow or hung
 * filesystem): KEY (KEYLEN bytes) then gets the image's key, which lookups
 * waiting on the same image share. False: the lookup takes no longer than
 * the underlay, a mounted image, or the remote's own deadlines make it.
 */
bool lz_lookup_may_block(struct lz_fs *fs, struct lz_inode *parent, const char *name, char *key,
			 size_t keylen);

/*
 * Takes a lookup reference on squashfuse inode ID of HANDLE (whose reference
 * the call consumes) in IMAGE and fills E. KNOWN: its stat if the caller has it.
 */
int lz_enter_sqfs(struct lz_fs *fs, struct lz_image *image, struct lz_sqfs_image *handle,
		  uint64_t id, const struct stat *known, struct lz_entry *e);
/*
 * Child NAME of squashfuse directory PARENT was entered as E: an inode of a
 * kernel-backend image learns its path in it; one looked up (not LISTED) is
 * used, as lz_sqfs_used says.
 */
void lz_sqfs_entered(struct lz_fs *fs, struct lz_inode *parent, const char *name,
		     const struct lz_entry *e, bool listed);
/* A file of a kernel-backend image was looked up or opened: its working set records it. */
void lz_sqfs_used(struct lz_fs *fs, struct lz_inode *inode);

/*
 * Resolves entry KEY ("N", "a/b/c", or an object path) now, walking to it
 * through lazyfs's own lookups as the kernel would: the image is opened, the
 * object or remote image fetched with LZ_RESOLVE_FETCH (a stat needs only the
 * listings along the path), a kernel-backend image mounted with LZ_RESOLVE_MOUNT (a file of
 * it is about to be opened: an exec, not a browse). The references taken on
 * the way are dropped again. True when there was something to resolve and
 * it worked.
 */
#define LZ_RESOLVE_FETCH 1u
#define LZ_RESOLVE_MOUNT 2u
/* With FETCH: a remote object's fetch may be a stream, started and not waited for. */
#define LZ_RESOLVE_STREAM 4u
bool lz_resolve_entry(struct lz_fs *fs, const char *key, unsigned how);

/* How long the kernel may cache what it learns about INODE (NULL: the underlay). */
double lz_timeout_of(const struct lz_fs *fs, const struct lz_inode *inode);
/* The node id of a backing file, or 0 when it cannot have one (warned once). */
uint64_t lz_nodeid_of(struct lz_fs *fs, dev_t dev, ino_t ino);
/* The attributes of a directory the map synthesizes (node id NODEID). */
void lz_synth_stat(struct lz_fs *fs, uint64_t nodeid, struct stat *st);
/* Whether NODEID may be the node id of directory TREE of the images tree where the underlay has
 * none. */
bool lz_tree_names(uint64_t nodeid, const char *tree);

/* The image ENTRY ("gcc-12", "arm/gcc-12") names: key N, or "/rel/path" of a map entry; or NULL. */
struct lz_image *lz_image_of_entry(struct lz_fs *fs, const char *entry);

#endif
