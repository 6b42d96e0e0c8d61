/* Namespace operations: lookup, attributes, links, directories, xattrs. */
#include "config.h"
#include "core/fs.h"
#include "common/log.h"
#include "common/names.h"
#include "core/nodeid.h"
#include "images/sqfs.h"
#include "core/underlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

struct lz_inode *lz_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_fs *fs = lz_fs_of(req);

	if (ino == FUSE_ROOT_ID)
		return fs->root;
	return lz_inode_find(fs->inodes, ino);
}

struct lz_inode *lz_inode_or_estale(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_of(req, ino);

	if (inode == NULL)
		fuse_reply_err(req, ESTALE);
	return inode;
}

double lz_timeout_of(const struct lz_fs *fs, const struct lz_inode *inode)
{
	if (inode != NULL && inode->kind == LZ_INODE_REMOTE)
		return fs->settings->listing_ttl;
	return inode != NULL && inode->image != NULL ? fs->settings->image_timeout
						     : fs->settings->underlay_timeout;
}

uint64_t lz_nodeid_of(struct lz_fs *fs, dev_t dev, ino_t ino)
{
	static atomic_bool warned;
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
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = inode->nodeid;
	e->attr = *st;
	e->attr.st_ino = inode->nodeid;
	e->attr_timeout = lz_timeout_of(fs, inode);
	e->entry_timeout = e->attr_timeout;
}

/*
 * Takes a lookup reference on the file behind FD (consumed) and fills E.
 * MAPPED: the map node of this path; a mapped directory that is not a
 * directory in the underlay gets -ENOTDIR (the map wins, the caller
 * synthesizes it).
 */
static int enter(struct lz_fs *fs, int fd, struct lz_image *image, const struct lz_map_node *mapped,
		 struct fuse_entry_param *e)
{
	struct lz_inode *inode;
	struct stat st;
	int err = lz_backing_stat(fd, &st);

	if (err == 0 && mapped != NULL && !S_ISDIR(st.st_mode))
		err = -ENOTDIR;
	if (err != 0) {
		close(fd);
		return -err;
	}
	uint64_t nodeid = lz_nodeid_of(fs, st.st_dev, st.st_ino);
	if (nodeid == 0) {
		close(fd);
		return EOVERFLOW;
	}
	inode = lz_inode_ref(fs->inodes, nodeid, fd, st.st_mode);
	if (inode == NULL)
		return errno;
	inode->image = image; /* the same for every lookup of this node id */
	if (mapped != NULL)
		inode->map_node = mapped;
	fill_entry(fs, inode, &st, e);
	return 0;
}

/* A read-only directory standing in for a mapped path the underlay lacks. */
static void synth_stat(const struct lz_fs *fs, uint64_t nodeid, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = nodeid;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_mtim = fs->map_mtime;
	st->st_ctim = fs->map_mtime;
	st->st_atim = fs->map_mtime;
	st->st_blksize = 4096;
}

static int enter_synth(struct lz_fs *fs, const struct lz_map_node *mapped,
		       struct fuse_entry_param *e)
{
	uint64_t nodeid = lz_nodeid_make(LZ_NODEID_SYNTH_SOURCE, mapped->index);
	struct lz_inode *inode = lz_inode_ref(fs->inodes, nodeid, -1, S_IFDIR);
	struct stat st;

	if (inode == NULL)
		return errno;
	inode->kind = LZ_INODE_SYNTH;
	inode->map_node = mapped;
	synth_stat(fs, nodeid, &st);
	fill_entry(fs, inode, &st, e);
	return 0;
}

int lz_enter_sqfs(struct lz_fs *fs, struct lz_image *image, struct lz_sqfs_image *handle,
		  uint64_t id, const struct stat *known, struct fuse_entry_param *e)
{
	struct stat st;
	bool created;
	int rc = known ? 0 : lz_sqfs_stat(handle->sqfs, id, &st);

	if (rc != 0) {
		lz_sqfs_image_put(handle);
		return -rc;
	}
	if (known)
		st = *known;
	uint64_t nodeid = lz_nodeid_of(fs, handle->dev, st.st_ino);
	if (nodeid == 0) {
		lz_sqfs_image_put(handle);
		return EOVERFLOW;
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
		return errno;
	fill_entry(fs, inode, &st, e);
	return 0;
}

/*
 * An image entry: 0, ENOENT when there is none, EIO when it failed (the
 * caller serves the underlay: fail open, logged).
 */
static int lookup_image(struct lz_fs *fs, const struct lz_image_ref *ref,
			struct fuse_entry_param *e)
{
	struct lz_image *image;
	struct lz_image_root root;

	int err;

	lz_track_lookup_seen(fs, ref->key);
	err = lz_images_resolve(fs->images, ref, &image, &root);
	if (err < 0)
		return err == -ENOENT ? ENOENT : EIO;
	if (root.sqfs != NULL)
		err = lz_enter_sqfs(fs, image, root.sqfs, lz_sqfs_root(root.sqfs->sqfs), NULL, e);
	else
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
static void record_use(struct lz_fs *fs, struct lz_inode *parent, const char *name,
		       const struct fuse_entry_param *e)
{
	char link[32], dir[PATH_MAX], rel[PATH_MAX];
	ssize_t len;

	if (!S_ISREG(e->attr.st_mode) ||
	    atomic_load_explicit(&parent->image->ws, memory_order_relaxed) == NULL)
		return;
	/* Inside a detached mount the link reads from its root: "/", "/usr/include"... */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", parent->path_fd);
	len = readlink(link, dir, sizeof(dir) - 1);
	if (len <= 0 || dir[0] != '/')
		return;
	dir[len] = '\0';
	if (snprintf(rel, sizeof(rel), "%s%s%s", dir + 1, len > 1 ? "/" : "", name) <
	    (int)sizeof(rel))
		lz_prefetch_record(fs->prefetch, parent->image, rel, e->attr.st_size);
}

static int lookup_entry(struct lz_fs *fs, struct lz_inode *parent, const char *name,
			struct fuse_entry_param *e, bool *image_failed)
{
	const struct lz_map_node *mapped = NULL;
	int err, fd;

	err = lz_name_check(name);
	if (err != 0)
		return err;
	if (parent->kind == LZ_INODE_SQFS) {
		uint64_t child;
		struct stat st;
		lz_image_touch(parent->image);
		err = lz_sqfs_lookup(parent->sqfs->sqfs, parent->sqfs_id, name, &child, &st);
		if (err != 0)
			return -err;
		lz_sqfs_image_get(parent->sqfs);
		return lz_enter_sqfs(fs, parent->image, parent->sqfs, child, &st, e);
	}
	if (parent->kind == LZ_INODE_REMOTE)
		return lz_objects_lookup(fs, parent->remote_path, name, e);
	if (parent->nodeid == FUSE_ROOT_ID && fs->objects != NULL &&
	    lz_objects_lookup(fs, "", name, e) == 0)
		return 0; /* the remote's top shadows the underlay's root */
	if (parent->image != NULL) {
		lz_image_touch(parent->image);
	} else {
		mapped = lz_map_child(parent->map_node, name);
		struct lz_image_ref ref = { .parent = parent->nodeid, .entry = name };
		if (mapped != NULL && mapped->image != NULL) {
			char key[PATH_MAX + 1];
			snprintf(key, sizeof(key), "/%s", mapped->relpath);
			ref.key = key;
			ref.path = mapped->image;
			err = lookup_image(fs, &ref, e);
			if (err == 0)
				return 0;
			*image_failed = err == EIO;
			mapped = NULL; /* failed: the underlay entry, if any, as it is */
		} else if (mapped == NULL && parent->nodeid == FUSE_ROOT_ID && fs->images != NULL) {
			ref.key = name;
			err = lookup_image(fs, &ref, e);
			if (err == 0)
				return 0;
			*image_failed = err == EIO;
		}
	}
	if (parent->kind == LZ_INODE_SYNTH)
		return mapped ? enter_synth(fs, mapped, e) : ENOENT;
	fd = lz_backing_open_path(parent->path_fd, name);
	if (fd >= 0)
		err = enter(fs, fd, parent->image, mapped, e);
	else
		err = fd == -ELOOP || fd == -EXDEV ? ENOENT : -fd;
	if (fd >= 0 && err == 0 && parent->image != NULL)
		record_use(fs, parent, name, e);
	if (mapped != NULL && (err == ENOENT || err == ENOTDIR))
		return enter_synth(fs, mapped, e);
	return err;
}

int lz_lookup(struct lz_fs *fs, struct lz_inode *parent, const char *name,
	      struct fuse_entry_param *e)
{
	bool image_failed = false;
	int err = lookup_entry(fs, parent, name, e, &image_failed);

	if (err == ENOENT) {
		/* A zero node id with a timeout: a negative entry the kernel caches. */
		memset(e, 0, sizeof(*e));
		e->entry_timeout = lz_timeout_of(fs, parent);
	}
	/* What stands in for a failed image is looked up again when it is tried again. */
	if (image_failed && e->entry_timeout > LZ_IMAGE_RETRY_S)
		e->entry_timeout = LZ_IMAGE_RETRY_S;
	return err;
}

/*
 * Resolves KEY by walking to it through lazyfs's own lookups, as the kernel
 * is about to: the image mounts (or the object is fetched) now, and the
 * kernel's LOOKUP finds it ready or waits on the same single resolve. The
 * lookup references taken here are dropped again: the kernel holds none.
 */
bool lz_resolve_entry(struct lz_fs *fs, const char *key, bool fetch)
{
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
		struct fuse_entry_param e;
		if (lz_lookup(fs, cur, name, &e) != 0)
			break;
		taken[ntaken++] = e.ino;
		cur = lz_inode_find(fs->inodes, e.ino);
		if (cur == NULL)
			break;
		/* Reached an image: it is resolved, the rest is the kernel's to walk. */
		if (!objects && cur->image != NULL) {
			resolved = true;
			break;
		}
	}
	/* Without FETCH an object is resolved once the listings along its path are. */
	if (objects && !fetch && cur != NULL && cur->kind == LZ_INODE_REMOTE && ntaken > 0)
		resolved = true;
	else if (objects && cur != NULL && cur->kind == LZ_INODE_REMOTE && S_ISREG(cur->type) &&
		 ntaken > 0) {
		int fd = lz_objects_open(fs, cur);
		if (fd >= 0) {
			close(fd);
			lz_objects_release(fs, cur);
			resolved = true;
		}
	}
	while (ntaken > 0)
		lz_inode_forget(fs->inodes, taken[--ntaken], 1);
	return resolved;
}

static void lz_op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *parent = lz_inode_or_estale(req, parent_ino);
	struct fuse_entry_param e;
	int err;

	if (parent == NULL)
		return;
	err = lz_lookup(fs, parent, name, &e);
	if (err == ENOENT) {
		fuse_reply_entry(req, &e); /* negative: lz_lookup set its timeout */
	} else if (err != 0) {
		fuse_reply_err(req, err);
	} else if (fuse_reply_entry(req, &e) != 0) {
		lz_inode_forget(fs->inodes, e.ino, 1);
	}
}

static void lz_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino != FUSE_ROOT_ID)
		lz_inode_forget(lz_fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void lz_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct lz_fs *fs = lz_fs_of(req);

	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino != FUSE_ROOT_ID)
			lz_inode_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void lz_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	struct stat st;
	int err;

	if (inode == NULL)
		return;
	if (inode->kind == LZ_INODE_SYNTH || inode->kind == LZ_INODE_REMOTE) {
		if (inode->kind == LZ_INODE_SYNTH)
			synth_stat(lz_fs_of(req), ino, &st);
		else
			lz_objects_stat(inode, &st);
		fuse_reply_attr(req, &st, lz_timeout_of(lz_fs_of(req), inode));
		return;
	}
	err = inode->kind == LZ_INODE_SQFS ? lz_sqfs_stat(inode->sqfs->sqfs, inode->sqfs_id, &st)
					   : lz_backing_stat(inode->path_fd, &st);
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	st.st_ino = ino;
	if (inode->image != NULL)
		lz_image_touch(inode->image);
	fuse_reply_attr(req, &st, lz_timeout_of(lz_fs_of(req), inode));
}

static void lz_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	char target[PATH_MAX + 1];
	ssize_t len;

	if (inode == NULL)
		return;
	if (inode->kind == LZ_INODE_SQFS) {
		int rc =
			lz_sqfs_readlink(inode->sqfs->sqfs, inode->sqfs_id, target, sizeof(target));
		if (rc != 0)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_readlink(req, target);
		return;
	}
	if (inode->kind != LZ_INODE_FD) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	len = readlinkat(inode->path_fd, "", target, sizeof(target));
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)len >= sizeof(target)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	target[len] = '\0';
	fuse_reply_readlink(req, target);
}

static void lz_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_of(req, ino);
	struct statvfs sv;

	if (inode == NULL || inode->kind != LZ_INODE_FD)
		inode = lz_fs_of(req)->root;
	if (fstatvfs(inode->path_fd, &sv) == -1) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_statfs(req, &sv);
}

/* Symlinks answer from the link itself: their proc path would lead to the target. */
static ssize_t inode_xattr(struct lz_inode *inode, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t len;

	if (inode->kind == LZ_INODE_SQFS) {
		len = name ? lz_sqfs_getxattr(inode->sqfs->sqfs, inode->sqfs_id, name, buf, size)
			   : lz_sqfs_listxattr(inode->sqfs->sqfs, inode->sqfs_id, buf, size);
		if (len < 0) {
			errno = (int)-len;
			return -1;
		}
		return len;
	}
	if (S_ISLNK(inode->type) || inode->kind != LZ_INODE_FD) {
		errno = name ? ENODATA : 0;
		return name ? -1 : 0;
	}
	lz_backing_proc_path(inode->path_fd, path, sizeof(path));
	len = name ? getxattr(path, name, buf, size) : listxattr(path, buf, size);
	return len;
}

static void reply_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	char *buf = NULL;
	ssize_t len;

	if (inode == NULL)
		return;
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = inode_xattr(inode, name, buf, size);
	if (len < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, buf, (size_t)len);
	free(buf);
}

static void lz_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	reply_xattr(req, ino, name, size);
}

static void lz_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, ino, NULL, size);
}

static void lz_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lz_fs *fs = userdata;

	fuse_set_feature_flag(conn, FUSE_CAP_CACHE_SYMLINKS);
	fuse_unset_feature_flag(conn, FUSE_CAP_WRITEBACK_CACHE);
	/*
	 * RELEASE and RELEASEDIR are background requests, 12 in flight by
	 * default: under 64 busy clients they queued by the thousand behind the
	 * OPENs, and each waiting RELEASEDIR keeps a directory stream open here.
	 */
	conn->max_background = 128;
	conn->congestion_threshold = 96;
	if (fs->settings->open_mode == LZ_OPEN_CACHED) {
		if (fuse_set_feature_flag(conn, FUSE_CAP_NO_OPEN_SUPPORT)) {
			atomic_store(&fs->no_open, true);
			atomic_store(&fs->passthrough, false);
		} else {
			lz_warn("kernel cannot skip OPEN; open_mode=cached serves opens as "
				"passthrough");
		}
	}
	if (atomic_load(&fs->passthrough) && !fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		lz_warn("kernel has no FUSE passthrough; serving reads in the daemon");
		atomic_store(&fs->passthrough, false);
		atomic_store(&fs->passthrough_warned, true);
	}
	if (fs->settings->io_uring && (conn->capable_ext & FUSE_CAP_OVER_IO_URING))
		lz_info("FUSE-over-io_uring enabled");
	else if (fs->settings->io_uring)
		lz_warn("io_uring requested, but the kernel does not offer it "
			"(/sys/module/fuse/parameters/enable_uring); using /dev/fuse");
}

const struct fuse_lowlevel_ops lz_ops = {
	.init = lz_op_init,
	.lookup = lz_op_lookup,
	.forget = lz_op_forget,
	.forget_multi = lz_op_forget_multi,
	.getattr = lz_op_getattr,
	.readlink = lz_op_readlink,
	.opendir = lz_op_opendir,
	.readdir = lz_op_readdir,
	.readdirplus = lz_op_readdirplus,
	.releasedir = lz_op_releasedir,
	.open = lz_op_open,
	.read = lz_op_read,
	.release = lz_op_release,
	.statfs = lz_op_statfs,
	.getxattr = lz_op_getxattr,
	.listxattr = lz_op_listxattr,
};
