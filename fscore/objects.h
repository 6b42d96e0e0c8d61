/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The entries of a remote tree (remote_mode=objects), over the underlay's
 * root: listed and looked up through the source (common/source.h), named by
 * their path on the remote, opened as local copies the kernel then reads
 * through passthrough. Calls return 0 or -errno.
 */
#ifndef LAZYFS_OBJECTS_H
#define LAZYFS_OBJECTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs.h"
#include "lookup.h"

/* Looks NAME up in the remote directory DIR_PATH into E: 0, -ENOENT or -errno. */
int lz_objects_lookup(struct lz_fs *fs, const char *dir_path, const char *name, struct lz_entry *e);
void lz_objects_stat(struct lz_inode *inode, struct stat *st);
/* Sets remote object INODE's size and mtime from a newer listing's ENTRY. */
void lz_objects_set_meta(struct lz_inode *inode, const struct lz_source_entry *entry);
/* The node id PATH gets unless its hash collides (for listings, which look nothing up). */
uint64_t lz_objects_nodeid(const char *path);
/* Whether NODEID is one a lookup of PATH may give (its hash, or one past a collision). */
bool lz_objects_names(uint64_t nodeid, const char *path);
/* The remote listing of DIR_PATH in *ENTRIES (free it). */
int lz_objects_list(struct lz_fs *fs, const char *dir_path, struct lz_source_entry **entries,
		    size_t *count);
/* The same listing shared, not copied (common/source.h): put it back when done. */
int lz_objects_listing_get(struct lz_fs *fs, const char *dir_path,
			   const struct lz_source_listing **out);
void lz_objects_listing_put(struct lz_fs *fs, const struct lz_source_listing *listing);
/*
 * Opens the local copy of INODE for reading (fetching it): a descriptor or
 * -errno. INODE's lock held: a lookup may update its size meanwhile. With
 * STREAM, a cold object may come as the file being fetched: *STREAM is then
 * its stream (else NULL), whose bytes lz_objects_wait must see first.
 */
int lz_objects_open(struct lz_fs *fs, struct lz_inode *inode, void **stream);
/*
 * Waits for bytes [OFF, OFF+LEN) of STREAM: 0, or -EIO (the fetch or its
 * check failed); without BLOCK, -EAGAIN when they are not there yet.
 */
int lz_objects_wait(struct lz_fs *fs, void *stream, uint64_t off, uint64_t len, bool block);
/* A reference on STREAM for a read that waits elsewhere; let go with lz_objects_stream_put. */
void lz_objects_stream_hold(struct lz_fs *fs, void *stream);
void lz_objects_stream_put(struct lz_fs *fs, void *stream);
/* Lets go of what lz_objects_open gave INODE: its stream (then cleared), or the cached copy. */
void lz_objects_release(struct lz_fs *fs, struct lz_inode *inode);
/*
 * Live upgrade: takes again, in a cache opened anew, the references the open
 * remote objects and the images from a remote hold. 0, or -ENOENT with the
 * first object the cache no longer has in ERR (all the others are taken).
 */
int lz_objects_adopt(struct lz_fs *fs, char *err, size_t errlen);

#endif
