/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * After a crash: node ids the kernel kept from the dead worker, brought back
 * as inodes when the kernel uses them. The glue keeps the record of what
 * each one was (upgrade/nodes.h: a count and what finds the file again) and
 * asks here; the core reopens the file: an underlay file by its file handle,
 * a file of an image by resolving the image again (mounting it) and opening
 * the file by its handle there, or by its squashfs inode id in a squashfuse
 * image; a directory the map synthesizes by its map index; one of the images
 * tree by its path there, if still a directory; a remote object by its
 * path, looked up on the remote again. The file must be
 * the one the node id names (its inode number), and a map index must name a
 * node of the same map (numbered alike: lz_map_renumber), or nothing is
 * revived and the kernel gets ESTALE as before.
 *
 * A revived inode starts with the lookup count the kernel holds (the
 * table's lz_inode_held_fn says it). Resolving an image may wait on its
 * store: revive is called where a request may wait.
 */
#ifndef LAZYFS_REVIVE_H
#define LAZYFS_REVIVE_H

#include <fcntl.h>
#include <stdint.h>

#include "fs.h"

/* A file handle with room for what a record keeps. */
union lz_revive_handle {
	struct file_handle fh;
	char room[sizeof(struct file_handle) + 40];
};

/*
 * What finds INODE's file again, in BUF: its file handle, or for a squashfuse
 * inode its squashfs inode id (a handle of a type no kernel makes); for a
 * synthesized directory or a remote object an empty handle (the node id, and
 * the remote path recorded apart, say which). NULL when there is none (a
 * filesystem without file handles).
 */
const struct file_handle *lz_revive_handle(const struct lz_inode *inode,
					   union lz_revive_handle *buf);

/*
 * Underlay node id NODEID, its file opened by handle H against ANCHOR (the
 * underlay's root); MAP_INDEX: the map node of a directory on a mapped path
 * (0: none); TREE: its path in the images tree (NULL: none).
 */
struct lz_inode *lz_revive_underlay(struct lz_fs *fs, int anchor, uint64_t nodeid,
				    const struct file_handle *h, uint64_t map_index,
				    const char *tree);
/* Remote object or directory PATH (remote_mode=objects), node id NODEID, as the remote lists it. */
struct lz_inode *lz_revive_remote(struct lz_fs *fs, uint64_t nodeid, const char *path);
/* Directory TREE of the images tree where the underlay has none, node id NODEID. */
struct lz_inode *lz_revive_tree(struct lz_fs *fs, uint64_t nodeid, const char *tree);
/* A directory the map synthesizes, node id NODEID, for map node MAP_INDEX. */
struct lz_inode *lz_revive_synth(struct lz_fs *fs, uint64_t nodeid, uint64_t map_index);
/*
 * Node id NODEID of a file of image IMAGE (its registry key: N, or
 * "/rel/path"), found by H, when the image is still FILE (not replaced).
 */
struct lz_inode *lz_revive_image(struct lz_fs *fs, uint64_t nodeid, const char *image,
				 const struct lz_image_file *file, const struct file_handle *h);

/*
 * Called as image IMAGE's root ROOT is looked up: with a record of the
 * worker before (fs->prior_source), the image's files take the node id
 * source they had (lz_inode_source_for_image).
 */
void lz_revive_settle_source(struct lz_fs *fs, struct lz_image *image,
			     const struct lz_image_root *root);

#endif
