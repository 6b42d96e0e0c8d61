/*
 * Directory listings. Below the root they come straight from the backing
 * directory. The root of a mount with images is the union of the image names
 * and the underlay (an image shadows the underlay entry of its name), taken as
 * a sorted snapshot when the directory is opened; listing it mounts nothing.
 */
#include "config.h"
#include "common/names.h"
#include "core/fs.h"
#include "core/handles.h"
#include "core/nodeid.h"
#include "images/sqfs.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct listed {
	char *name;
	unsigned char type;
	bool image; /* an image or mapped path: listed without a lookup, so nothing mounts */
	ino_t backing_ino;
};

struct lz_dir {
	DIR *stream;
	struct dirent *pending; /* read but not yet sent: it did not fit */
	off_t offset;
	unsigned source; /* node id source of the entries */
	uint64_t self_ino;
	bool is_snapshot; /* root with images: the union, sorted */
	struct listed *snapshot;
	size_t count, cap;
};

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Never 0 for the dot entries: glibc's readdir skips entries with d_ino 0. */
static uint64_t listed_nodeid(const struct lz_dir *dir, const char *name, ino_t backing_ino)
{
	bool dot = is_dot_or_dotdot(name);

	if (strcmp(name, ".") == 0)
		return dir->self_ino;
	if (dir->source == 0 || !lz_nodeid_fits(backing_ino))
		return dot ? dir->self_ino : 0;
	return lz_nodeid_make(dir->source, backing_ino);
}

/* Until an image is resolved its inode number is unknown; list a stable stand-in. */
static uint64_t unresolved_image_ino(const char *name)
{
	uint64_t h = lz_hash64(name, UINT64_C(1469598103934665603));
	return lz_nodeid_make(LZ_NODEID_LISTED_SOURCE, (h & LZ_NODEID_INO_MASK) | 2);
}

static int snapshot_add(struct lz_dir *dir, const char *name, unsigned char type, bool image,
			ino_t backing_ino)
{
	if (dir->count == dir->cap) {
		size_t cap = dir->cap ? dir->cap * 2 : 64;
		struct listed *grown = realloc(dir->snapshot, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		dir->snapshot = grown;
		dir->cap = cap;
	}
	char *copy = strdup(name);
	if (copy == NULL)
		return -ENOMEM;
	dir->snapshot[dir->count++] = (struct listed){
		.name = copy, .type = type, .image = image, .backing_ino = backing_ino
	};
	return 0;
}

struct snapshot_fill {
	struct lz_dir *dir;
	int err;
};

static void add_image_name(void *ctx, const char *name)
{
	struct snapshot_fill *fill = ctx;

	if (fill->err == 0)
		fill->err = -snapshot_add(fill->dir, name, DT_DIR, true, 0);
}

/* By name; of equal names the image comes first and is the one kept. */
static int compare_listed(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c != 0 ? c : (int)y->image - (int)x->image;
}

/* The union of the underlay listing, the map's children and (at the root) images=. */
static int build_snapshot(struct lz_fs *fs, struct lz_dir *dir, const struct lz_map_node *mapped,
			  bool root, const char *remote_dir)
{
	struct dirent *entry;
	int err = 0;

	while (err == 0 && dir->stream != NULL && (errno = 0, entry = readdir(dir->stream)) != NULL)
		err = -snapshot_add(dir, entry->d_name, entry->d_type, false, entry->d_ino);
	if (err == 0 && dir->stream != NULL && errno != 0)
		err = errno;
	if (dir->stream == NULL) {
		if (err == 0)
			err = -snapshot_add(dir, ".", DT_DIR, false, 0);
		if (err == 0)
			err = -snapshot_add(dir, "..", DT_DIR, false, 0);
	}
	for (size_t i = 0; err == 0 && mapped != NULL && i < mapped->nchildren; i++) {
		const struct lz_map_node *child = mapped->children[i];
		/* A mapped image whose file is missing would list a name that cannot be looked up.
		 */
		if (child->image != NULL && access(child->image, R_OK) != 0)
			continue;
		err = -snapshot_add(dir, child->name, DT_DIR, true, 0);
	}
	if (err != 0)
		return err;
	if (remote_dir != NULL) {
		struct lz_source_entry *entries;
		size_t count;
		int rc = lz_objects_list(fs, remote_dir, &entries, &count);
		if (rc < 0)
			return -rc;
		for (size_t i = 0; err == 0 && i < count; i++) {
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s%s%s", remote_dir, *remote_dir ? "/" : "",
				 entries[i].name);
			/* Listed without a lookup: a remote directory can hold 150k objects. */
			err = -snapshot_add(dir, entries[i].name,
					    entries[i].is_dir ? DT_DIR : DT_REG, true,
					    (ino_t)lz_objects_nodeid(path));
		}
		free(entries);
		if (err != 0)
			return err;
	}
	struct snapshot_fill fill = { .dir = dir };
	if (root && fs->images != NULL)
		lz_images_list(fs->images, add_image_name, &fill);
	if (fill.err != 0)
		return fill.err;
	qsort(dir->snapshot, dir->count, sizeof(*dir->snapshot), compare_listed);
	size_t kept = 0;
	for (size_t i = 0; i < dir->count; i++) {
		if (kept > 0 && strcmp(dir->snapshot[kept - 1].name, dir->snapshot[i].name) == 0) {
			free(dir->snapshot[i].name);
			continue;
		}
		dir->snapshot[kept++] = dir->snapshot[i];
	}
	dir->count = kept;
	return 0;
}

static void free_dir(struct lz_dir *dir)
{
	for (size_t i = 0; i < dir->count; i++)
		free(dir->snapshot[i].name);
	free(dir->snapshot);
	if (dir->stream != NULL)
		closedir(dir->stream);
	free(dir);
}

/*
 * The listing state of directory INODE (node id INO), or NULL with *ERR.
 * *CACHE: whether the kernel may keep the listing.
 */
static struct lz_dir *open_dir(struct lz_fs *fs, struct lz_inode *inode, fuse_ino_t ino,
			       bool *cache, int *err)
{
	struct lz_dir *dir = calloc(1, sizeof(*dir));
	struct stat st;

	if (dir == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	dir->self_ino = ino;
	*cache = false;
	if (inode->kind == LZ_INODE_SQFS) {
		/* Listed straight from the image, with its own stable offsets. */
		*cache = true;
		return dir;
	}
	if (inode->kind == LZ_INODE_REMOTE) {
		dir->is_snapshot = true;
		*err = build_snapshot(fs, dir, NULL, false, inode->remote_path);
		if (*err != 0) {
			free_dir(dir);
			return NULL;
		}
		return dir;
	}
	if (inode->kind == LZ_INODE_FD) {
		int fd = openat(inode->path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) == -1 || (dir->stream = fdopendir(fd)) == NULL) {
			*err = errno;
			if (fd >= 0)
				close(fd);
			free(dir);
			return NULL;
		}
		dir->source = lz_inode_source_for_dev(fs->inodes, st.st_dev);
	}
	const struct lz_map_node *mapped = inode->image == NULL ? inode->map_node : NULL;
	bool root = ino == FUSE_ROOT_ID;
	bool objects = root && fs->objects != NULL;
	if ((mapped != NULL && mapped->nchildren > 0) || (root && fs->images != NULL) || objects ||
	    dir->stream == NULL) {
		/* Images and the map change at any time: such listings are never cached. */
		dir->is_snapshot = true;
		*err = build_snapshot(fs, dir, mapped, root, objects ? "" : NULL);
		if (*err != 0) {
			free_dir(dir);
			return NULL;
		}
		return dir;
	}
	/* Listings stay in the kernel; it drops them itself when the directory's mtime changes. */
	*cache = true;
	return dir;
}

void lz_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	struct lz_dir *dir;
	bool cache;
	int err;

	if (inode == NULL)
		return;
	if (inode->image != NULL)
		lz_image_touch(inode->image);
	dir = open_dir(fs, inode, ino, &cache, &err);
	if (dir == NULL) {
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = lz_handle_add(dir);
	if (fi->fh == 0) {
		free_dir(dir);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->cache_readdir = cache;
	fi->keep_cache = cache;
	if (fuse_reply_open(req, fi) != 0)
		free_dir(lz_handle_remove(fi->fh));
}

/*
 * The listing state of an open directory. A handle this process did not give
 * out was opened before a live upgrade: the directory is opened again, and
 * the listing goes on from the kernel's offset (the backing directory's own
 * position cookie, or the index in a snapshot taken anew).
 */
static struct lz_dir *dir_of(struct lz_fs *fs, struct lz_inode *inode, fuse_ino_t ino, uint64_t fh,
			     int *err)
{
	struct lz_dir *dir = lz_handle_find(fh), *adopted;
	bool cache;

	if (dir != NULL)
		return dir;
	dir = open_dir(fs, inode, ino, &cache, err);
	if (dir == NULL)
		return NULL;
	adopted = lz_handle_adopt(fh, dir);
	if (adopted != dir)
		free_dir(dir);
	if (adopted == NULL)
		*err = ENOMEM;
	return adopted;
}

/* Adds one entry to the reply buffer; returns its size, > REM when it did not fit. */
static size_t add_entry(fuse_req_t req, struct lz_fs *fs, struct lz_inode *parent,
			struct lz_dir *dir, bool plus, char *p, size_t rem, const char *name,
			unsigned char type, bool image, ino_t backing_ino, off_t next, int *err)
{
	struct fuse_entry_param e;
	size_t size;

	memset(&e, 0, sizeof(e));
	e.attr.st_mode = DTTOIF(type);
	/* Entries listed without a lookup carry their node id (remote) or get a stand-in. */
	if (image)
		e.attr.st_ino = backing_ino ? backing_ino : unresolved_image_ino(name);
	else
		e.attr.st_ino = listed_nodeid(dir, name, backing_ino);
	if (!plus)
		return fuse_add_direntry(req, p, rem, name, &e.attr, next);
	/*
	 * Node id 0: listed without an inode. Used for dot entries and for images,
	 * which a listing must not mount; a later lookup resolves them.
	 */
	if (!is_dot_or_dotdot(name) && !image) {
		*err = lz_lookup(fs, parent, name, &e);
		if (*err != 0)
			return 0;
	}
	size = fuse_add_direntry_plus(req, p, rem, name, &e, next);
	if (size > rem && e.ino != 0)
		lz_inode_forget(fs->inodes, e.ino, 1);
	return size;
}

/* Fills a reply from a squashfuse directory; offsets 1 and 2 stand for "." and "..". */
struct sqfs_fill {
	fuse_req_t req;
	struct lz_fs *fs;
	struct lz_inode *dir;
	bool plus;
	char *p;
	size_t rem;
	int err;
};

static bool sqfs_add(struct sqfs_fill *f, const char *name, uint64_t id, mode_t type, off_t next)
{
	struct fuse_entry_param e;
	size_t size;

	memset(&e, 0, sizeof(e));
	e.attr.st_mode = type;
	e.attr.st_ino = f->dir->nodeid; /* dot entries: glibc skips d_ino 0 */
	if (!f->plus) {
		struct stat st;
		/* The inode number of a plain listing must match what stat reports. */
		if (id != UINT64_MAX && lz_sqfs_stat(f->dir->sqfs->sqfs, id, &st) == 0)
			e.attr.st_ino = lz_nodeid_of(f->fs, f->dir->sqfs->dev, st.st_ino);
		size = fuse_add_direntry(f->req, f->p, f->rem, name, &e.attr, next);
	} else {
		if (id != UINT64_MAX) {
			lz_sqfs_image_get(f->dir->sqfs);
			f->err = lz_enter_sqfs(f->fs, f->dir->image, f->dir->sqfs, id, NULL, &e);
			if (f->err != 0)
				return false;
		}
		size = fuse_add_direntry_plus(f->req, f->p, f->rem, name, &e, next);
		if (size > f->rem && e.ino != 0)
			lz_inode_forget(f->fs->inodes, e.ino, 1);
	}
	if (size > f->rem)
		return false;
	f->p += size;
	f->rem -= size;
	return true;
}

static int sqfs_entry(void *ctx, const char *name, uint64_t id, mode_t type, off_t next)
{
	return sqfs_add(ctx, name, id, type, next) ? 0 : 1;
}

static void sqfs_readdir(fuse_req_t req, struct lz_fs *fs, struct lz_inode *dir, size_t size,
			 off_t offset, bool plus)
{
	char *buf = malloc(size);
	struct sqfs_fill f = { req, fs, dir, plus, buf, size, 0 };
	bool more = true;

	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	lz_image_touch(dir->image);
	if (offset == 0)
		more = sqfs_add(&f, ".", UINT64_MAX, S_IFDIR, 1);
	if (more && offset <= 1)
		more = sqfs_add(&f, "..", UINT64_MAX, S_IFDIR, 2);
	if (more) {
		int rc = lz_sqfs_readdir(dir->sqfs->sqfs, dir->sqfs_id, offset <= 2 ? 0 : offset,
					 sqfs_entry, &f);
		if (rc != 0 && f.err == 0)
			f.err = -rc;
	}
	if (f.err != 0 && f.rem == size)
		fuse_reply_err(req, f.err);
	else
		fuse_reply_buf(req, buf, size - f.rem);
	free(buf);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, bool plus)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *parent = lz_inode_or_estale(req, ino);
	struct lz_dir *dir;
	char *buf, *p;
	size_t rem = size, entsize;
	int err = 0;

	if (parent == NULL)
		return;
	if (parent->kind == LZ_INODE_SQFS) {
		sqfs_readdir(req, fs, parent, size, offset, plus);
		return;
	}
	dir = dir_of(fs, parent, ino, fi->fh, &err);
	if (dir == NULL) {
		fuse_reply_err(req, err);
		return;
	}
	buf = p = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (dir->is_snapshot) {
		/* Snapshot offsets are the index of the next entry. */
		for (size_t i = (size_t)offset; i < dir->count; i++) {
			const struct listed *l = &dir->snapshot[i];
			entsize = add_entry(req, fs, parent, dir, plus, p, rem, l->name, l->type,
					    l->image, l->backing_ino, (off_t)(i + 1), &err);
			if (err == ENOENT || err == EOVERFLOW) {
				err = 0;
				continue;
			}
			if (err != 0 || entsize > rem)
				break;
			p += entsize;
			rem -= entsize;
		}
		goto reply;
	}
	if (offset != dir->offset) {
		seekdir(dir->stream, offset);
		dir->pending = NULL;
		dir->offset = offset;
	}
	for (;;) {
		struct dirent *entry = dir->pending;

		if (entry == NULL) {
			errno = 0;
			entry = readdir(dir->stream);
			if (entry == NULL) {
				err = errno;
				break;
			}
		}
		dir->pending = entry;
		entsize = add_entry(req, fs, parent, dir, plus, p, rem, entry->d_name,
				    entry->d_type, false, entry->d_ino, entry->d_off, &err);
		if (err == ENOENT || err == EOVERFLOW) {
			/* Gone since it was listed, or hidden: skip it. */
			err = 0;
			entsize = 0;
		} else if (err != 0 || entsize > rem) {
			break;
		}
		p += entsize;
		rem -= entsize;
		dir->pending = NULL;
		dir->offset = entry->d_off;
	}
reply:
	if (err != 0 && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

void lz_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, false);
}

void lz_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, true);
}

void lz_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	/* Not registered: opened before a live upgrade and never listed since. */
	struct lz_dir *dir = lz_handle_remove(fi->fh);
	if (dir != NULL)
		free_dir(dir);
	fuse_reply_err(req, 0);
}
