/* SPDX-License-Identifier: BSD-2-Clause */
/* Node ids of a crashed worker served again (revive.h). */
#include "config.h"
#include "revive.h"
#include "lookup.h"
#include "nodeid.h"
#include "objects.h"
#include "images/sqfs.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * A request reviving a file of an image not mounted yet waits this long (or
 * resolve_timeout when shorter) for the mount, on a FUSE thread; past it the
 * resolve goes on in the background, and the request gets ESTALE (the kernel
 * walks the path again, and its lookup defers as any does).
 */
#define REVIVE_WAIT_S 1.0

/* Handle types of our own: negative, which no kernel handle is. */
#define SQFS_HANDLE_TYPE  (-2) /* a squashfuse inode's id */
#define SYNTH_HANDLE_TYPE (-3) /* a synthesized directory: nothing, its node id says it */
#define PATH_HANDLE_TYPE  (-4) /* a remote object: nothing, its path is recorded apart */

const struct file_handle *lz_revive_handle(const struct lz_inode *inode,
					   union lz_revive_handle *buf)
{
	if (inode->kind == LZ_INODE_FD)
		return inode->path.handle;
	if (inode->kind == LZ_INODE_SYNTH || inode->kind == LZ_INODE_REMOTE) {
		buf->fh.handle_type =
			inode->kind == LZ_INODE_SYNTH ? SYNTH_HANDLE_TYPE : PATH_HANDLE_TYPE;
		buf->fh.handle_bytes = 0;
		return &buf->fh;
	}
	if (inode->kind != LZ_INODE_SQFS)
		return NULL;
	buf->fh.handle_type = SQFS_HANDLE_TYPE;
	buf->fh.handle_bytes = sizeof(inode->sqfs_id);
	memcpy(buf->fh.f_handle, &inode->sqfs_id, sizeof(inode->sqfs_id));
	return &buf->fh;
}

/* INIT as the inode NODEID, with the kernel's references only; NULL when out of memory. */
static struct lz_inode *take(struct lz_fs *fs, uint64_t nodeid, const struct lz_inode_init *init)
{
	bool created;
	struct lz_inode *inode = lz_inode_ref_init(fs->inodes, nodeid, init, &created);

	if (inode == NULL) {
		lz_sqfs_image_put(init->sqfs);
		return NULL;
	}
	if (!created)
		lz_sqfs_image_put(init->sqfs); /* a lookup made it meanwhile */
	else
		atomic_fetch_add(&fs->revived, 1);
	/* The reference taking it made is not the kernel's. */
	lz_inode_forget(fs->inodes, nodeid, 1);
	return lz_inode_find(fs->inodes, nodeid);
}

/* The file handle H names against directory DIR (O_PATH), on device DEV with NODEID's inode. */
static int open_handle(int dir, const struct file_handle *h, uint64_t nodeid, dev_t dev,
		       struct stat *st)
{
	int anchor = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = -1;

	if (h->handle_type >= 0 && anchor >= 0)
		fd = open_by_handle_at(anchor, (struct file_handle *)h, O_PATH | O_CLOEXEC);
	if (anchor >= 0)
		close(anchor);
	/* The same file, not one that took its place. */
	if (fd >= 0 && (fstat(fd, st) != 0 || st->st_dev != dev ||
			(uint64_t)st->st_ino != lz_nodeid_backing_ino(nodeid))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The node numbered INDEX of the map now with its map held (lz_map_node_put), or NULL. */
static const struct lz_map_node *mapped(struct lz_fs *fs, uint64_t index)
{
	struct lz_map *map = lz_fs_map_hold(fs);
	const struct lz_map_node *node = map != NULL ? lz_map_by_index(map, index) : NULL;

	if (node == NULL)
		lz_map_release(map);
	return node;
}

struct lz_inode *lz_revive_underlay(struct lz_fs *fs, int anchor, uint64_t nodeid,
				    const struct file_handle *h, uint64_t map_index,
				    const char *tree)
{
	struct lz_inode_init init = { .kind = LZ_INODE_FD, .tree = tree };
	struct lz_inode *inode = NULL;
	struct stat root, st;

	if (map_index != 0 && (init.map_node = mapped(fs, map_index)) == NULL)
		return NULL;
	if (anchor >= 0 && fstat(anchor, &root) == 0 &&
	    lz_nodeid_of(fs, root.st_dev, lz_nodeid_backing_ino(nodeid)) == nodeid &&
	    (init.path_fd = open_handle(anchor, h, nodeid, root.st_dev, &st)) >= 0) {
		init.type = st.st_mode;
		inode = take(fs, nodeid, &init);
	}
	lz_map_node_put(init.map_node); /* the inode holds its own */
	return inode;
}

struct lz_inode *lz_revive_tree(struct lz_fs *fs, uint64_t nodeid, const char *tree)
{
	struct lz_inode_init init = {
		.kind = LZ_INODE_SYNTH, .path_fd = -1, .type = S_IFDIR, .tree = tree
	};

	if (fs->images == NULL || !lz_tree_names(nodeid, tree) ||
	    !lz_images_tree_dir(fs->images, tree))
		return NULL;
	return take(fs, nodeid, &init);
}

struct lz_inode *lz_revive_synth(struct lz_fs *fs, uint64_t nodeid, uint64_t map_index)
{
	struct lz_inode_init init = { .kind = LZ_INODE_SYNTH, .path_fd = -1, .type = S_IFDIR };

	/* (After a live upgrade the node id keeps the number the process before gave.) */
	if (lz_nodeid_source(nodeid) != LZ_NODEID_SYNTH_SOURCE ||
	    (init.map_node = mapped(fs, map_index)) == NULL)
		return NULL;
	struct lz_inode *inode = take(fs, nodeid, &init);
	lz_map_node_put(init.map_node); /* the inode holds its own */
	return inode;
}

struct lz_inode *lz_revive_remote(struct lz_fs *fs, uint64_t nodeid, const char *path)
{
	struct lz_inode_init init = { .kind = LZ_INODE_REMOTE, .path_fd = -1, .remote_path = path };
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	struct lz_source_entry entry;

	if (fs->objects == NULL || !lz_objects_names(nodeid, path))
		return NULL;
	snprintf(dir, sizeof(dir), "%.*s", slash != NULL ? (int)(slash - path) : 0, path);
	if (fs->objects->lookup(fs->objects->ctx, dir, slash != NULL ? slash + 1 : path, &entry) !=
	    0)
		return NULL;
	init.type = entry.is_dir ? S_IFDIR : S_IFREG;
	struct lz_inode *inode = take(fs, nodeid, &init);
	if (inode != NULL) /* as a lookup sets them: the newest listing wins */
		lz_objects_set_meta(inode, &entry);
	return inode;
}

static struct lz_inode *revive_in_sqfs(struct lz_fs *fs, uint64_t nodeid, struct lz_image *image,
				       struct lz_sqfs_image *handle, const struct file_handle *h)
{
	struct lz_inode_init init = {
		.kind = LZ_INODE_SQFS, .path_fd = -1, .image = image, .sqfs = handle
	};
	struct stat st;

	if (h->handle_type != SQFS_HANDLE_TYPE || h->handle_bytes != sizeof(init.sqfs_id)) {
		lz_sqfs_image_put(handle);
		return NULL;
	}
	memcpy(&init.sqfs_id, h->f_handle, sizeof(init.sqfs_id));
	/* A file of a remote image was walked to: the image was fetched, and is in the cache. */
	if (init.sqfs_id != LZ_SQFS_ROOT)
		lz_sqfs_image_fetch(handle);
	/*
	 * The root of a remote image listed before it was fetched goes by its
	 * image alone: its made-up inode number may have become the real one.
	 */
	if (lz_sqfs_image_stat(handle, init.sqfs_id, &st) != 0 ||
	    (init.sqfs_id != LZ_SQFS_ROOT &&
	     (uint64_t)st.st_ino != lz_nodeid_backing_ino(nodeid))) {
		lz_sqfs_image_put(handle);
		return NULL;
	}
	init.type = st.st_mode;
	return take(fs, nodeid, &init);
}

static int resolve_briefly(struct lz_fs *fs, const struct lz_image_ref *ref,
			   struct lz_image **image, struct lz_image_root *root)
{
	double timeout = fs->settings->resolve_timeout;

	return lz_images_resolve_within(
		fs->images, ref, timeout > 0 && timeout < REVIVE_WAIT_S ? timeout : REVIVE_WAIT_S,
		image, root);
}

/*
 * The node id of mapped directory RELPATH ("" is the root) as a lookup gives
 * it: the underlay's directory there, else the one the map synthesizes; 0
 * when it has none.
 */
static uint64_t mapped_dir_id(struct lz_fs *fs, const struct lz_map *map, const char *relpath)
{
	const struct lz_map_node *node = lz_map_find(map, relpath);
	int root = lz_inode_path_get(fs->inodes, fs->root);
	struct stat st;
	uint64_t id = 0;

	if (relpath[0] == '\0')
		id = LZ_ROOT_ID;
	else if (root >= 0 && fstatat(root, relpath, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		 S_ISDIR(st.st_mode))
		id = lz_nodeid_of(fs, st.st_dev, st.st_ino);
	else if (node != NULL)
		id = lz_nodeid_make(LZ_NODEID_SYNTH_SOURCE, node->index);
	if (root >= 0)
		lz_inode_path_put(fs->inodes, fs->root);
	return id;
}

/*
 * Where image NAME comes from, in REF (PARENT_PATH: room for the map's): the
 * images directory or source (NAME), or the map ("/rel/path": the map
 * entry's file, its entry in its mapped directory).
 */
static bool image_ref(struct lz_fs *fs, struct lz_map *map, const char *name,
		      struct lz_image_ref *ref, char parent_path[PATH_MAX])
{
	const struct lz_map_node *node;

	if (name[0] != '/')
		return lz_images_at_root(fs->images);
	if (map == NULL || (node = lz_map_find(map, name + 1)) == NULL || node->image == NULL)
		return false;
	snprintf(parent_path, PATH_MAX, "%s", name + 1);
	char *slash = strrchr(parent_path, '/');
	*(slash != NULL ? slash : parent_path) = '\0';
	*ref = (struct lz_image_ref){ .key = name, .path = node->image, .entry = node->name };
	ref->parent = mapped_dir_id(fs, map, parent_path);
	return ref->parent != 0;
}

/* Whether IMAGE is still FILE. */
static bool same_file(struct lz_image *image, const struct lz_image_file *file)
{
	struct lz_image_file now;

	lz_image_file_id(image, &now);
	return now.dev == file->dev && now.ino == file->ino && now.size == file->size &&
	       now.mtime_ns == file->mtime_ns;
}

static void release_root(struct lz_image_root *root)
{
	if (root->sqfs != NULL)
		lz_sqfs_image_put(root->sqfs);
	else
		close(root->fd);
}

struct lz_inode *lz_revive_image(struct lz_fs *fs, uint64_t nodeid, const char *name,
				 const struct lz_image_file *file, const struct file_handle *h)
{
	struct lz_image_ref ref = { .key = name, .parent = LZ_ROOT_ID, .entry = name };
	struct lz_inode_init init = { .kind = LZ_INODE_FD, .path_fd = -1 };
	struct lz_image_root root;
	struct stat root_st, st;
	char parent_path[PATH_MAX];
	/* Held while REF points into it. */
	struct lz_map *map = lz_fs_map_hold(fs);
	bool resolved = fs->images != NULL && image_ref(fs, map, name, &ref, parent_path) &&
			resolve_briefly(fs, &ref, &init.image, &root) == 0;

	lz_map_release(map);
	if (!resolved)
		return NULL;
	/* Replaced since: its node ids would name other files (lookups give new ones). */
	if (!same_file(init.image, file)) {
		release_root(&root);
		return NULL;
	}
	lz_revive_settle_source(fs, init.image, &root);
	if (root.sqfs != NULL)
		return revive_in_sqfs(fs, nodeid, init.image, root.sqfs, h);
	if (fstat(root.fd, &root_st) == 0)
		init.path_fd = open_handle(root.fd, h, nodeid, root_st.st_dev, &st);
	close(root.fd);
	if (init.path_fd < 0)
		return NULL;
	init.type = st.st_mode;
	return take(fs, nodeid, &init);
}

void lz_revive_settle_source(struct lz_fs *fs, struct lz_image *image,
			     const struct lz_image_root *root)
{
	struct stat st;
	dev_t dev;

	if (fs->prior_source == NULL)
		return;
	if (root->sqfs != NULL)
		dev = root->sqfs->dev;
	else if (fstat(root->fd, &st) == 0)
		dev = st.st_dev;
	else
		return;
	lz_inode_source_for_image(fs->inodes, dev, image,
				  fs->prior_source(fs->prior_source_ctx, image));
}
