/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Directory operations: an open directory is a listing (fscore/listing.h)
 * registered under the handle the kernel holds (fscore/handles.h); READDIR
 * and READDIRPLUS fill the reply from it, squashfuse directories straight
 * from the image.
 */
#include "config.h"
#include "ops.h"
#include "defer.h"
#include "common/clock.h"
#include "fscore/listing.h"
#include "images/sqfs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Opens directory INODE (node id INO) for the kernel and answers REQ. */
static void open_dir(fuse_req_t req, struct lz_fs *fs, struct lz_inode *inode, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct lz_listing *l;
	bool cache;
	int err;

	if (inode->image != NULL)
		lz_image_touch(inode->image);
	err = lz_listing_open(fs, inode, ino, &cache, &l);
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	fi->fh = lz_handle_add(fs->handles, l);
	if (fi->fh == 0) {
		lz_listing_free(l);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->cache_readdir = cache;
	fi->keep_cache = cache;
	if (fuse_reply_open(req, fi) != 0)
		lz_listing_free(lz_handle_remove(fs->handles, fi->fh));
}

/* The root of a remote image not fetched yet, opened on a deferral thread (defer.h). */
struct deferred_opendir {
	struct lz_fs *fs;
	struct lz_inode *inode; /* held */
	fuse_ino_t ino;
	struct fuse_file_info fi;
};

static void drop_opendir(void *arg)
{
	struct deferred_opendir *o = arg;

	lz_inode_unhold(o->fs->inodes, o->inode);
	free(o);
}

static void run_opendir(struct lz_defer_job *job, fuse_req_t req, void *arg)
{
	struct deferred_opendir *o = arg;
	int err = lz_sqfs_image_fetch(o->inode->sqfs);

	if (lz_defer_claim(job)) {
		if (err != 0)
			fuse_reply_err(req, -err);
		else
			open_dir(req, o->fs, o->inode, o->ino, &o->fi);
	}
	drop_opendir(o);
}

/* Fetches INODE's image on a deferral thread, then opens it: 0, or -errno (not answered). */
static int defer_opendir(fuse_req_t req, struct lz_inode *inode, fuse_ino_t ino,
			 const struct fuse_file_info *fi)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct deferred_opendir *o = malloc(sizeof(*o));
	int err;

	if (o == NULL)
		return -ENOMEM;
	*o = (struct deferred_opendir){ .fs = fs, .inode = inode, .ino = ino, .fi = *fi };
	lz_inode_hold(fs->inodes, inode);
	err = lz_defer_submit(lz_daemon_of(req)->defer, lz_image_name(inode->image), req,
			      run_opendir, drop_opendir, o);
	if (err != 0)
		drop_opendir(o);
	return err;
}

void lz_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_inode *inode = lz_inode_or_estale(req, ino);

	if (inode == NULL)
		return;
	/* Listing a remote image's root fetches the image: never on a FUSE worker. */
	if (inode->kind == LZ_INODE_SQFS && !lz_sqfs_image_fetched(inode->sqfs)) {
		int err = defer_opendir(req, inode, ino, fi);
		if (err != 0)
			fuse_reply_err(req, -err);
		return;
	}
	open_dir(req, lz_fs_of(req), inode, ino, fi);
}

/*
 * The listing of an open directory. A handle this process did not give out
 * was opened before a live upgrade: the directory is opened again, and the
 * listing goes on from the kernel's offset (the backing directory's own
 * position cookie, or the index in a snapshot taken anew).
 */
static int listing_of(struct lz_fs *fs, struct lz_inode *inode, fuse_ino_t ino, uint64_t fh,
		      struct lz_listing **out)
{
	struct lz_listing *l = lz_handle_find(fs->handles, fh), *adopted;
	bool cache;
	int err;

	*out = l;
	if (l != NULL)
		return 0;
	err = lz_listing_open(fs, inode, ino, &cache, &l);
	if (err != 0)
		return err;
	adopted = lz_handle_adopt(fs->handles, fh, l);
	if (adopted != l)
		lz_listing_free(l);
	*out = adopted;
	return adopted != NULL ? 0 : -ENOMEM;
}

/*
 * Adds entry E to the reply buffer at P (REM bytes left): its size, more than
 * REM when it did not fit. READDIRPLUS looks it up first (*ERR on failure).
 */
static size_t add_entry(fuse_req_t req, struct lz_fs *fs, struct lz_inode *parent, bool plus,
			char *p, size_t rem, const struct lz_listed *e, int *err)
{
	struct fuse_entry_param fe;
	struct lz_entry found;
	size_t size;

	memset(&fe, 0, sizeof(fe));
	fe.attr.st_mode = DTTOIF(e->type);
	fe.attr.st_ino = e->ino;
	if (!plus)
		return fuse_add_direntry(req, p, rem, e->name, &fe.attr, e->next);
	/*
	 * Node id 0: listed without an inode; a later lookup resolves it. So is
	 * an image that may wait on its store, which a FUSE worker must not (the
	 * LOOKUP is deferred), or that failed (the lookup says how).
	 */
	char key[PATH_MAX + 1];
	if (e->lookup && !lz_lookup_may_block(fs, parent, e->name, key, sizeof(key))) {
		*err = lz_lookup(fs, parent, e->name, &found);
		if (*err != 0 && e->image)
			*err = 0;
		else if (*err != 0)
			return 0;
		else
			lz_fuse_entry(&found, &fe);
	}
	size = fuse_add_direntry_plus(req, p, rem, e->name, &fe, e->next);
	if (size > rem && fe.ino != 0)
		lz_inode_forget(fs->inodes, fe.ino, 1);
	return size;
}

/* Fills a reply from a squashfuse directory; offsets 1 and 2 stand for "." and "..". */
struct sqfs_fill {
	fuse_req_t req;
	struct lz_fs *fs;
	struct lz_inode *dir;
	bool plus;
	bool file_attrs; /* READDIRPLUS: of files too, not only of directories */
	char *p;
	size_t rem;
	int err;
};

/* Files of an image looked up this recently (ns): an ls -l is walking it. */
#define STAT_WALK_NS (100 * 1000 * 1000LL)

/* The node id of an entry whose directory records inode number NUMBER, as stat reports it. */
static ino_t listed_ino(struct sqfs_fill *f, uint32_t number)
{
	uint64_t nodeid = lz_nodeid_of(f->fs, f->dir->sqfs->dev, number);

	return nodeid != 0 ? nodeid : f->dir->nodeid;
}

/*
 * READDIRPLUS gives the attributes of directories, and of files too while
 * files of the image are being looked up (images/images.h: file_lookup_ns):
 * a find walking the tree stats no file, and entering ten thousand inodes it
 * never asks for costs it more than the walk itself; an ls -l asks for them
 * all, and after its first directory gets them with the listing.
 */
static bool sqfs_add(struct sqfs_fill *f, const char *name, uint64_t id, uint32_t number,
		     mode_t type, off_t next)
{
	struct fuse_entry_param fe;
	struct lz_entry found;
	size_t size;

	memset(&fe, 0, sizeof(fe));
	fe.attr.st_mode = type;
	fe.attr.st_ino = f->dir->nodeid; /* dot entries: glibc skips d_ino 0 */
	bool attrs = f->plus && id != UINT64_MAX && (S_ISDIR(type) || f->file_attrs);
	if (!f->plus) {
		if (id != UINT64_MAX)
			fe.attr.st_ino = listed_ino(f, number);
		size = fuse_add_direntry(f->req, f->p, f->rem, name, &fe.attr, next);
	} else {
		if (attrs) {
			lz_sqfs_image_get(f->dir->sqfs);
			f->err =
				lz_enter_sqfs(f->fs, f->dir->image, f->dir->sqfs, id, NULL, &found);
			if (f->err != 0)
				return false;
			lz_sqfs_entered(f->fs, f->dir, name, &found, true);
			lz_fuse_entry(&found, &fe);
		} else if (id != UINT64_MAX) {
			fe.attr.st_ino = listed_ino(f, number);
		}
		size = fuse_add_direntry_plus(f->req, f->p, f->rem, name, &fe, next);
		if (size > f->rem && fe.ino != 0)
			lz_inode_forget(f->fs->inodes, fe.ino, 1);
	}
	if (size > f->rem)
		return false;
	f->p += size;
	f->rem -= size;
	return true;
}

static int sqfs_entry(void *ctx, const struct lz_sqfs_dirent *e)
{
	return sqfs_add(ctx, e->name, e->id, e->number, e->type, e->next) ? 0 : 1;
}

static void sqfs_readdir(fuse_req_t req, struct lz_fs *fs, struct lz_inode *dir, size_t size,
			 off_t offset, bool plus)
{
	char *buf = malloc(size);
	int64_t since = lz_clock_ns(CLOCK_MONOTONIC) - atomic_load(&dir->sqfs->file_lookup_ns);
	struct sqfs_fill f = { .req = req,
			       .fs = fs,
			       .dir = dir,
			       .plus = plus,
			       .file_attrs = since < STAT_WALK_NS,
			       .p = buf,
			       .rem = size };
	bool more = true;

	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	lz_image_touch(dir->image);
	if (offset == 0)
		more = sqfs_add(&f, ".", UINT64_MAX, 0, S_IFDIR, 1);
	if (more && offset <= 1)
		more = sqfs_add(&f, "..", UINT64_MAX, 0, S_IFDIR, 2);
	struct lz_sqfs *reader = more ? lz_sqfs_image_reader(dir->sqfs) : NULL;
	if (more && reader == NULL)
		f.err = -EIO;
	if (reader != NULL) {
		int rc = lz_sqfs_readdir(reader, dir->sqfs_id, offset <= 2 ? 0 : offset, sqfs_entry,
					 &f);
		if (rc != 0 && f.err == 0)
			f.err = rc;
	}
	if (f.err != 0 && f.rem == size)
		fuse_reply_err(req, -f.err);
	else
		fuse_reply_buf(req, buf, size - f.rem);
	free(buf);
}

/* Fills BUF (SIZE bytes) from L at OFFSET: the bytes used; *ERR when it stopped on an error. */
static size_t fill(fuse_req_t req, struct lz_fs *fs, struct lz_inode *parent, struct lz_listing *l,
		   char *buf, size_t size, off_t offset, bool plus, int *err)
{
	struct lz_listed e;
	size_t rem = size;
	int rc;

	rc = lz_listing_begin(l, offset);
	if (rc != 0) {
		*err = rc;
		return 0;
	}
	while ((rc = lz_listing_peek(l, &e)) > 0) {
		size_t entsize = add_entry(req, fs, parent, plus, buf + (size - rem), rem, &e, err);
		if (*err == -ENOENT || *err == -EOVERFLOW) {
			/* Gone since it was listed, or hidden: skip it. */
			*err = 0;
			entsize = 0;
		} else if (*err != 0 || entsize > rem) {
			break;
		}
		rem -= entsize;
		lz_listing_advance(l);
	}
	if (rc < 0)
		*err = rc;
	lz_listing_end(l);
	return size - rem;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, bool plus)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *parent = lz_inode_or_estale(req, ino);
	struct lz_listing *l;
	size_t used;
	char *buf;
	int err;

	if (parent == NULL)
		return;
	if (parent->kind == LZ_INODE_SQFS) {
		sqfs_readdir(req, fs, parent, size, offset, plus);
		return;
	}
	err = listing_of(fs, parent, ino, fi->fh, &l);
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	err = 0;
	used = fill(req, fs, parent, l, buf, size, offset, plus, &err);
	if (err != 0 && used == 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, buf, used);
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
	lz_listing_free(lz_handle_remove(lz_fs_of(req)->handles, fi->fh));
	fuse_reply_err(req, 0);
}
