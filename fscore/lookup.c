/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Lookups: what a name means (see lookup.h), and the inode it is entered as.
 */
#include "config.h"
#include "lookup.h"
#include "objects.h"
#include "revive.h"
#include "nodeid.h"
#include "underlay.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/names.h"
#include "images/sqfs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/*
 * How long the kernel keeps the attributes of the root of a remote image not
 * fetched yet: they may be made up (images/fetch.c), and are true once the
 * image is walked into, which the kernel then sees within this time.
 */
#define UNFETCHED_ROOT_TIMEOUT_S 1.0

double lz_timeout_of(const struct lz_fs *fs, const struct lz_inode *inode)
{
	if (inode != NULL && inode->kind == LZ_INODE_REMOTE)
		return fs->settings->listing_ttl;
	if (inode != NULL && inode->kind == LZ_INODE_SQFS && !lz_sqfs_image_fetched(inode->sqfs) &&
	    fs->settings->image_timeout > UNFETCHED_ROOT_TIMEOUT_S)
		return UNFETCHED_ROOT_TIMEOUT_S;
	return inode != NULL && inode->image != NULL ? fs->settings->image_timeout
						     : fs->settings->underlay_timeout;
}

uint64_t lz_nodeid_of(struct lz_fs *fs, dev_t dev, ino_t ino)
{
	static atomic_bool warned; /* once per process: the log line, nothing else */
	unsigned source = lz_inode_source_for_dev(fs->inodes, dev);

	if (source == 0 || !lz_nodeid_fits(ino)) {
		if (!atomic_exchange(&warned, true))
			lz_warn("inode %ju on device %u:%u cannot be given a node id; such files "
				"are hidden",
				(uintmax_t)ino, major(dev), minor(dev));
		return 0;
	}
	return lz_nodeid_make(source, ino);
}

static void fill_entry(struct lz_fs *fs, struct lz_inode *inode, const struct stat *st,
		       struct lz_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = inode->nodeid;
	e->attr = *st;
	e->attr.st_ino = inode->nodeid;
	e->attr_timeout = lz_timeout_of(fs, inode);
	e->entry_timeout = e->attr_timeout;
}

/* Where a directory of the mount that is not in an image comes from, besides the underlay. */
struct dir_of {
	const struct lz_map_node *mapped; /* the map's node of its path, or NULL */
	const char *tree;		  /* its path in the images tree, or NULL */
};

/*
 * Takes a lookup reference on the file behind FD (consumed) and fills E.
 * A path the map or the images tree makes a directory (FROM) that is not
 * a directory in the underlay gets -ENOTDIR (they win: the caller
 * synthesizes it).
 */
static int enter(struct lz_fs *fs, int fd, struct lz_image *image, const struct dir_of *from,
		 struct lz_entry *e)
{
	const struct lz_map_node *mapped = from != NULL ? from->mapped : NULL;
	const char *tree = from != NULL ? from->tree : NULL;
	struct lz_inode *inode;
	struct stat st;
	int err = lz_backing_stat(fd, &st);

	if (err == 0 && (mapped != NULL || tree != NULL) && !S_ISDIR(st.st_mode))
		err = -ENOTDIR;
	if (err != 0) {
		close(fd);
		return err;
	}
	uint64_t nodeid = lz_nodeid_of(fs, st.st_dev, st.st_ino);
	if (nodeid == 0) {
		close(fd);
		return -EOVERFLOW;
	}
	/*
	 * The image is the same for every lookup of this node id; the map node
	 * too, but for a reload. A new inode has both at once: its record needs
	 * them (upgrade/nodes.h).
	 */
	struct lz_inode_init init = { .kind = LZ_INODE_FD,
				      .path_fd = fd,
				      .type = st.st_mode,
				      .image = image,
				      .map_node = mapped,
				      .tree = tree };
	bool created;
	inode = lz_inode_ref_init(fs->inodes, nodeid, &init, &created);
	if (inode == NULL)
		return -errno;
	if (mapped != NULL && atomic_load(&inode->map_node) != mapped)
		lz_inode_map_set(inode, mapped);
	if (tree != NULL)
		lz_inode_set_tree(inode, tree);
	fill_entry(fs, inode, &st, e);
	return 0;
}

void lz_synth_stat(struct lz_fs *fs, uint64_t nodeid, struct stat *st)
{
	/* Held: a reload may release the map meanwhile. */
	struct lz_map *map = lz_fs_map_hold(fs);
	/* The map's time for its directories; the mount's for those of the images tree. */
	struct timespec mtime = map != NULL && lz_nodeid_source(nodeid) == LZ_NODEID_SYNTH_SOURCE
					? map->mtime
					: fs->started;

	lz_map_release(map);
	memset(st, 0, sizeof(*st));
	st->st_ino = nodeid;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_mtim = mtime;
	st->st_ctim = mtime;
	st->st_atim = mtime;
	st->st_blksize = 4096;
}

/* A read-only directory standing in for a mapped path the underlay lacks. */
static int enter_synth(struct lz_fs *fs, const struct lz_map_node *mapped, struct lz_entry *e)
{
	uint64_t nodeid = lz_nodeid_make(LZ_NODEID_SYNTH_SOURCE, mapped->index);
	struct lz_inode_init init = {
		.kind = LZ_INODE_SYNTH, .path_fd = -1, .type = S_IFDIR, .map_node = mapped
	};
	bool created;
	struct lz_inode *inode = lz_inode_ref_init(fs->inodes, nodeid, &init, &created);
	struct stat st;

	if (inode == NULL)
		return -errno;
	if (atomic_load(&inode->map_node) != mapped)
		lz_inode_map_set(inode, mapped);
	lz_synth_stat(fs, nodeid, &st);
	fill_entry(fs, inode, &st, e);
	return 0;
}

/* The node id of directory TREE of the images tree, moved on by SALT after a collision. */
static uint64_t tree_nodeid(const char *tree, uint64_t salt)
{
	uint64_t h = lz_hash64(tree, UINT64_C(1469598103934665603) ^ (salt * 0x9e3779b97f4a7c15u));
	/* Never 0, which is no node id. */
	return lz_nodeid_make(LZ_NODEID_TREE_SOURCE, (h & LZ_NODEID_INO_MASK) | 1);
}

/* Collisions move a directory's node id on to the next salt, up to this many. */
#define TREE_SALTS 8

bool lz_tree_names(uint64_t nodeid, const char *tree)
{
	for (uint64_t salt = 0; salt < TREE_SALTS; salt++)
		if (nodeid == tree_nodeid(tree, salt))
			return true;
	return false;
}

/*
 * A read-only directory standing in for directory TREE of the images tree
 * where the underlay has none. Its node id is made from its path, so a
 * worker after a crash gives the same one (revive.h).
 */
static int enter_tree(struct lz_fs *fs, const char *tree, struct lz_entry *e)
{
	struct lz_inode_init init = {
		.kind = LZ_INODE_SYNTH, .path_fd = -1, .type = S_IFDIR, .tree = tree
	};
	struct lz_inode *inode = NULL;
	uint64_t nodeid = 0;
	struct stat st;

	/* Referenced before its path is compared: FORGET could free it meanwhile. */
	for (uint64_t salt = 0; salt < TREE_SALTS && inode == NULL; salt++) {
		bool created;
		nodeid = tree_nodeid(tree, salt);
		inode = lz_inode_ref_init(fs->inodes, nodeid, &init, &created);
		if (inode == NULL)
			return -errno;
		const char *its = atomic_load(&inode->tree);
		if (its == NULL || strcmp(its, tree) != 0) {
			lz_inode_forget(fs->inodes, nodeid, 1);
			inode = NULL;
		}
	}
	if (inode == NULL)
		return -EOVERFLOW;
	lz_synth_stat(fs, nodeid, &st);
	fill_entry(fs, inode, &st, e);
	return 0;
}

int lz_enter_sqfs(struct lz_fs *fs, struct lz_image *image, struct lz_sqfs_image *handle,
		  uint64_t id, const struct stat *known, struct lz_entry *e)
{
	struct stat st;
	bool created;
	int rc = known ? 0 : lz_sqfs_image_stat(handle, id, &st);

	if (rc != 0) {
		lz_sqfs_image_put(handle);
		return rc;
	}
	if (known)
		st = *known;
	uint64_t nodeid = lz_nodeid_of(fs, handle->dev, st.st_ino);
	if (nodeid == 0) {
		lz_sqfs_image_put(handle);
		return -EOVERFLOW;
	}
	struct lz_inode_init init = {
		.kind = LZ_INODE_SQFS,
		.path_fd = -1,
		.type = st.st_mode,
		.image = image,
		.sqfs = handle,
		.sqfs_id = id,
	};
	struct lz_inode *inode = lz_inode_ref_init(fs->inodes, nodeid, &init, &created);
	if (inode == NULL || !created)
		lz_sqfs_image_put(handle);
	if (inode == NULL)
		return -errno;
	fill_entry(fs, inode, &st, e);
	return 0;
}

/* Gives NODEID the path DIR/NAME in its image, unless it has one. */
static void set_relpath(struct lz_fs *fs, uint64_t nodeid, const char *dir, const char *name)
{
	struct lz_inode *inode = lz_inode_find(fs->inodes, nodeid);
	char *path, *none = NULL;

	if (inode == NULL || atomic_load(&inode->relpath) != NULL)
		return;
	if (asprintf(&path, "%s%s%s", dir, *dir != '\0' ? "/" : "", name) < 0)
		return;
	if (!atomic_compare_exchange_strong(&inode->relpath, &none, path))
		free(path);
}

/*
 * An image entry: 0, -ENOENT when there is none, -EIO when it failed (the
 * caller serves the underlay: fail open, logged).
 */
static int lookup_image(struct lz_fs *fs, const struct lz_image_ref *ref, struct lz_entry *e)
{
	struct lz_image *image;
	struct lz_image_root root;
	int err;

	lz_track_lookup_seen(fs->track, ref->key);
	err = lz_images_resolve(fs->images, ref, &image, &root);
	if (err < 0)
		return err == -ENOENT ? -ENOENT : -EIO;
	lz_revive_settle_source(fs, image, &root);
	if (root.sqfs != NULL) {
		/* A remote image not fetched yet may turn out trusted: the kernel's then. */
		bool kernel = !lz_sqfs_image_fetched(root.sqfs) || root.sqfs->kernel;
		err = lz_enter_sqfs(fs, image, root.sqfs, root.sqfs->root_id, NULL, e);
		if (err == 0 && kernel)
			set_relpath(fs, e->ino, "", "");
	} else
		err = enter(fs, root.fd, image, NULL, e);
	/*
	 * In open_mode=cached the daemon sees no opens or reads: a short entry
	 * timeout on the image's root makes path walks through it look it up
	 * again now and then, which is how an image in use shows it is not idle.
	 */
	double idle = fs->settings->idle_timeout;
	if (err == 0 && idle > 0 && atomic_load(&fs->no_open) && e->entry_timeout > idle / 2)
		e->entry_timeout = idle / 2;
	return err;
}

/* A file of a kernel-mounted image looked up while its working set is being recorded. */
static void record_use(struct lz_fs *fs, struct lz_inode *parent, int parent_fd, const char *name,
		       const struct lz_entry *e)
{
	char link[32], dir[PATH_MAX], rel[PATH_MAX];
	ssize_t len;

	if (!S_ISREG(e->attr.st_mode) || !lz_prefetch_recording(fs->prefetch, parent->image))
		return;
	/* Inside a detached mount the link reads from its root: "/", "/usr/include"... */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", parent_fd);
	len = readlink(link, dir, sizeof(dir) - 1);
	if (len <= 0 || dir[0] != '/')
		return;
	dir[len] = '\0';
	if (snprintf(rel, sizeof(rel), "%s%s%s", dir + 1, len > 1 ? "/" : "", name) <
	    (int)sizeof(rel))
		lz_prefetch_record(fs->prefetch, parent->image, rel, e->attr.st_size);
}

void lz_sqfs_entered(struct lz_fs *fs, struct lz_inode *parent, const char *name,
		     const struct lz_entry *e, bool listed)
{
	const char *dir = atomic_load(&parent->relpath);

	if (dir == NULL || e->ino == 0)
		return;
	set_relpath(fs, e->ino, dir, name);
	if (!listed)
		lz_sqfs_used(fs, lz_inode_find(fs->inodes, e->ino));
}

void lz_sqfs_used(struct lz_fs *fs, struct lz_inode *inode)
{
	const char *rel = inode != NULL ? atomic_load(&inode->relpath) : NULL;
	struct stat st;

	if (rel == NULL || !S_ISREG(inode->type) ||
	    !lz_prefetch_recording(fs->prefetch, inode->image) ||
	    lz_sqfs_image_stat(inode->sqfs, inode->sqfs_id, &st) != 0)
		return;
	lz_prefetch_record(fs->prefetch, inode->image, rel, st.st_size);
}

/* NAME inside the squashfuse image of PARENT. */
static int lookup_in_sqfs(struct lz_fs *fs, struct lz_inode *parent, const char *name,
			  struct lz_entry *e)
{
	struct lz_sqfs *reader = lz_sqfs_image_reader(parent->sqfs);
	uint64_t child;
	struct stat st;
	int err;

	lz_image_touch(parent->image);
	/* A remote image is fetched as it is walked into (lz_lookup_may_block deferred it). */
	if (reader == NULL && !lz_sqfs_image_fetched(parent->sqfs)) {
		err = lz_sqfs_image_fetch(parent->sqfs);
		if (err != 0)
			return err;
		reader = lz_sqfs_image_reader(parent->sqfs);
	}
	if (reader == NULL)
		return -EIO;
	err = lz_sqfs_lookup(reader, parent->sqfs_id, name, &child, &st);
	if (err != 0)
		return err;
	if (!S_ISDIR(st.st_mode))
		atomic_store_explicit(&parent->sqfs->file_lookup_ns, lz_clock_ns(CLOCK_MONOTONIC),
				      memory_order_relaxed);
	lz_sqfs_image_get(parent->sqfs);
	err = lz_enter_sqfs(fs, parent->image, parent->sqfs, child, &st, e);
	if (err == 0)
		lz_sqfs_entered(fs, parent, name, e, false);
	return err;
}

/*
 * Whether NAME beneath PARENT sits where an image may be: PARENT's map child
 * MAPPED is an image entry (REF gets its key, in KEY, and its file), or
 * PARENT is the root of a mount with images (REF's key is NAME) or a
 * directory R of the images tree (REF's key is R/NAME, in KEY).
 */
static bool image_ref(const struct lz_fs *fs, const struct lz_inode *parent, const char *name,
		      const struct lz_map_node *mapped, char *key, size_t keylen,
		      struct lz_image_ref *ref)
{
	*ref = (struct lz_image_ref){ .parent = parent->nodeid, .entry = name };
	if (mapped != NULL && mapped->image != NULL) {
		snprintf(key, keylen, "/%s", mapped->relpath);
		ref->key = key;
		ref->path = mapped->image;
		return true;
	}
	ref->key = name;
	if (mapped != NULL || fs->images == NULL)
		return false;
	if (parent->nodeid == LZ_ROOT_ID)
		return true;
	const char *tree = atomic_load(&parent->tree);
	if (tree == NULL || (size_t)snprintf(key, keylen, "%s/%s", tree, name) >= keylen)
		return false;
	ref->key = key;
	return true;
}

/*
 * The path of NAME beneath PARENT in the images tree, in REL, when it is a
 * directory there: PARENT is the root or a directory of the tree, and no
 * map entry is at NAME. May wait on the images directory's store.
 */
static const char *tree_dir(struct lz_fs *fs, const struct lz_inode *parent, const char *name,
			    const struct lz_map_node *mapped, char *rel, size_t len)
{
	const char *dir = parent->nodeid == LZ_ROOT_ID ? "" : atomic_load(&parent->tree);

	if (fs->images == NULL || dir == NULL || mapped != NULL || parent->image != NULL ||
	    (size_t)snprintf(rel, len, "%s%s%s", dir, *dir != '\0' ? "/" : "", name) >= len)
		return NULL;
	return lz_images_tree_dir(fs->images, rel) ? rel : NULL;
}

/*
 * NAME as an image, when it sits where one may be (image_ref): 0, -ENOENT
 * when it is not an image, or -EIO when the image failed (*FAILED: the
 * underlay is served instead).
 */
static int lookup_as_image(struct lz_fs *fs, struct lz_inode *parent, const char *name,
			   const struct lz_map_node *mapped, struct lz_entry *e, bool *failed)
{
	struct lz_image_ref ref;
	char key[PATH_MAX + 1];
	int err;

	if (!image_ref(fs, parent, name, mapped, key, sizeof(key), &ref))
		return -ENOENT;
	err = lookup_image(fs, &ref, e);
	*failed = err == -EIO;
	return err;
}

bool lz_lookup_may_block(struct lz_fs *fs, struct lz_inode *parent, const char *name, char *key,
			 size_t keylen)
{
	const struct lz_map_node *dir;
	struct lz_image_ref ref;
	bool is_image;

	/* Walking into a remote image not fetched yet fetches it. */
	if (parent->kind == LZ_INODE_SQFS && !lz_sqfs_image_fetched(parent->sqfs)) {
		snprintf(key, keylen, "%s", lz_image_name(parent->image));
		return true;
	}
	if (fs->images == NULL || parent->image != NULL || parent->kind == LZ_INODE_SQFS ||
	    parent->kind == LZ_INODE_REMOTE || lz_name_check(name) != 0)
		return false;
	dir = lz_inode_map_hold(parent);
	is_image = image_ref(fs, parent, name, lz_map_child(dir, name), key, keylen, &ref);
	/* ref.key is KEY (copied) or NAME, never the map's: the map may go now. */
	lz_map_node_put(dir);
	if (!is_image)
		return false;
	/* map= alone: a name at the root is no image, and finding that out opens nothing. */
	if (ref.path == NULL && (!lz_images_at_root(fs->images) || lz_images_local(fs->images)))
		return false;
	if (ref.key != key)
		snprintf(key, keylen, "%s", ref.key);
	return !lz_images_ready(fs->images, key);
}

/* The directory FROM makes of a path the underlay lacks; -ENOENT when none. */
static int enter_made(struct lz_fs *fs, const struct dir_of *from, struct lz_entry *e)
{
	if (from != NULL && from->mapped != NULL)
		return enter_synth(fs, from->mapped, e);
	if (from != NULL && from->tree != NULL)
		return enter_tree(fs, from->tree, e);
	return -ENOENT;
}

/* NAME in the underlay directory of PARENT, or synthesized when FROM needs it. */
static int lookup_in_underlay(struct lz_fs *fs, struct lz_inode *parent, const char *name,
			      const struct dir_of *from, struct lz_entry *e)
{
	int err, fd;

	if (parent->kind == LZ_INODE_SYNTH)
		return enter_made(fs, from, e);
	int parent_fd = lz_inode_path_get(fs->inodes, parent);
	if (parent_fd < 0)
		return parent_fd;
	fd = lz_backing_open_path(parent_fd, name);
	if (fd >= 0)
		err = enter(fs, fd, parent->image, from, e);
	else
		err = fd == -ELOOP || fd == -EXDEV ? -ENOENT : fd;
	if (fd >= 0 && err == 0 && parent->image != NULL)
		record_use(fs, parent, parent_fd, name, e);
	lz_inode_path_put(fs->inodes, parent);
	if (err == -ENOENT || err == -ENOTDIR) {
		int made = enter_made(fs, from, e);
		if (made != -ENOENT)
			return made;
	}
	return err;
}

/* NAME beneath PARENT, which is no image, knowing DIR: PARENT's map node, held. */
static int lookup_mapped(struct lz_fs *fs, struct lz_inode *parent, const char *name,
			 const struct lz_map_node *dir, struct lz_entry *e, bool *image_failed)
{
	const struct lz_map_node *mapped = lz_map_child(dir, name);
	int err = lookup_as_image(fs, parent, name, mapped, e, image_failed);
	char rel[PATH_MAX];

	if (err == 0)
		return 0;
	/* An image wins over a directory of the same name in the tree (the image failed: not). */
	struct dir_of from = { .mapped = mapped,
			       .tree = tree_dir(fs, parent, name, mapped, rel, sizeof(rel)) };
	if (mapped != NULL && mapped->image != NULL)
		from.mapped = NULL; /* failed: the underlay entry, if any, as it is */
	return lookup_in_underlay(fs, parent, name, &from, e);
}

static int lookup_entry(struct lz_fs *fs, struct lz_inode *parent, const char *name,
			struct lz_entry *e, bool *image_failed)
{
	int err = lz_name_check(name);

	if (err != 0)
		return err;
	if (parent->kind == LZ_INODE_SQFS)
		return lookup_in_sqfs(fs, parent, name, e);
	if (parent->kind == LZ_INODE_REMOTE)
		return lz_objects_lookup(fs, parent->remote_path, name, e);
	if (parent->nodeid == LZ_ROOT_ID && fs->objects != NULL &&
	    lz_objects_lookup(fs, "", name, e) == 0)
		return 0; /* the remote's top shadows the underlay's root */
	if (parent->image != NULL) {
		lz_image_touch(parent->image);
		return lookup_in_underlay(fs, parent, name, NULL, e);
	}
	/* Held while the lookup walks it: a reload may replace PARENT's node meanwhile. */
	const struct lz_map_node *dir = lz_inode_map_hold(parent);
	err = lookup_mapped(fs, parent, name, dir, e, image_failed);
	lz_map_node_put(dir);
	return err;
}

int lz_lookup(struct lz_fs *fs, struct lz_inode *parent, const char *name, struct lz_entry *e)
{
	bool image_failed = false;
	int err = lookup_entry(fs, parent, name, e, &image_failed);

	if (err == -ENOENT) {
		/* A zero node id with a timeout: a negative entry the kernel caches. */
		memset(e, 0, sizeof(*e));
		e->entry_timeout = lz_timeout_of(fs, parent);
	}
	/* What stands in for a failed image is looked up again when it is tried again. */
	if (image_failed && e->entry_timeout > LZ_IMAGE_RETRY_S)
		e->entry_timeout = LZ_IMAGE_RETRY_S;
	return err;
}

/* Mounts INODE's kernel-backend image now, so the open that follows finds it mounted. */
static void mount_ahead(struct lz_inode *inode)
{
	if (inode->kind != LZ_INODE_SQFS || !inode->sqfs->kernel)
		return;
	int fd = lz_sqfs_image_kernel_root(inode->sqfs);
	if (fd >= 0)
		close(fd);
}

/*
 * Fetches remote object INODE into the cache and lets it go again. With
 * STREAM the fetch is only started (the OPEN that follows joins it, rather
 * than fetching the object a second time beside a whole-object fill).
 */
static bool fetch_object(struct lz_fs *fs, struct lz_inode *inode, bool stream)
{
	void *handle = NULL;

	/* As an OPEN does: it reads the size a concurrent lookup may set (objects.c). */
	pthread_mutex_lock(&inode->lock);
	int fd = lz_objects_open(fs, inode, stream ? &handle : NULL);
	pthread_mutex_unlock(&inode->lock);

	if (fd < 0)
		return false;
	close(fd);
	if (handle != NULL)
		fs->objects->stream_close(fs->objects->ctx, handle);
	else
		fs->objects->release(fs->objects->ctx, inode->remote_path);
	return true;
}

/*
 * Walks to KEY as the kernel is about to: the image opens (and mounts, with
 * LZ_RESOLVE_MOUNT) or the object is fetched now, and the kernel's LOOKUP
 * finds it ready or waits on the same single resolve. The kernel holds none
 * of the references taken here.
 */
bool lz_resolve_entry(struct lz_fs *fs, const char *key, unsigned how)
{
	bool fetch = how & LZ_RESOLVE_FETCH;
	bool objects = fs->objects != NULL;
	uint64_t taken[PATH_MAX / 2];
	unsigned ntaken = 0;
	struct lz_inode *cur = fs->root;
	char path[PATH_MAX], *save = NULL;
	bool resolved = false;

	if (snprintf(path, sizeof(path), "%s", key) >= (int)sizeof(path))
		return false;
	for (char *name = strtok_r(path, "/", &save); name != NULL;
	     name = strtok_r(NULL, "/", &save)) {
		struct lz_entry e;
		if (lz_lookup(fs, cur, name, &e) != 0)
			break;
		taken[ntaken++] = e.ino;
		cur = lz_inode_find(fs->inodes, e.ino);
		if (cur == NULL)
			break;
		/* Reached an image: it is resolved, the rest is the kernel's to walk. */
		if (!objects && cur->image != NULL) {
			/* A remote one is fetched for an open; a stat needs only its root. */
			if (fetch && cur->kind == LZ_INODE_SQFS)
				lz_sqfs_image_fetch(cur->sqfs);
			if (how & LZ_RESOLVE_MOUNT)
				mount_ahead(cur);
			resolved = true;
			break;
		}
	}
	bool object = objects && cur != NULL && cur->kind == LZ_INODE_REMOTE && ntaken > 0;
	/* Without FETCH an object is resolved once the listings along its path are. */
	if (object && !fetch)
		resolved = true;
	else if (object && S_ISREG(cur->type))
		resolved = fetch_object(fs, cur, how & LZ_RESOLVE_STREAM);
	while (ntaken > 0)
		lz_inode_forget(fs->inodes, taken[--ntaken], 1);
	return resolved;
}

struct lz_image *lz_image_of_entry(struct lz_fs *fs, const char *entry)
{
	char key[PATH_MAX + 1];
	struct lz_image *image;

	if (fs->images == NULL)
		return NULL;
	image = lz_images_find(fs->images, entry);
	if (image == NULL) {
		snprintf(key, sizeof(key), "/%s", entry);
		image = lz_images_find(fs->images, key);
	}
	return image;
}
