/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Opening and reading files. In passthrough mode every open of an inode shares
 * one backing id, registered with the kernel on the first open and parked at
 * the last release for the next one (linger.h), so reads and mmap never reach
 * the daemon. Reads only arrive here when passthrough is off or refused, in
 * open_mode=cached, where the kernel sends no OPEN at all and reads come
 * without a file handle, and for a remote object opened while it is
 * streamed (cache/stream.h): each read waits for its bytes, then is served
 * from the file being filled.
 */
#include "config.h"
#include "ops.h"
#include "defer.h"
#include "fscore/objects.h"
#include "fscore/underlay.h"
#include "common/log.h"
#include "images/sqfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * A new readable descriptor of INODE's file, not a remote object's; call with
 * inode->lock held. -EOPNOTSUPP when the daemon reads the file itself
 * (squashfuse), or -errno.
 */
static int open_read_fd(struct lz_fs *fs, struct lz_inode *inode)
{
	if (inode->kind == LZ_INODE_SQFS)
		return lz_sqfs_image_open_file(inode->sqfs, inode->sqfs_id);
	int path = lz_inode_path_get(fs->inodes, inode);
	if (path < 0)
		return path;
	int fd = lz_backing_reopen(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
	lz_inode_path_put(fs->inodes, inode);
	/* O_NONBLOCK only kept a fifo from hanging the open; reads should block. */
	if (fd >= 0)
		fcntl(fd, F_SETFL, 0);
	return fd;
}

/*
 * Opens inode->read_fd if needed; call with inode->lock held. 0, -EOPNOTSUPP
 * when the daemon reads the file itself (squashfuse), or -errno. With
 * MAY_STREAM (an OPEN) a cold remote object may come while it is fetched
 * (inode->stream set); a READ without an OPEN (open_mode=cached) holds its
 * descriptor until the kernel forgets the inode, so it takes the whole object.
 */
static int ensure_read_fd(struct lz_fs *fs, struct lz_inode *inode, bool may_stream)
{
	int fd;

	if (inode->read_fd >= 0)
		return 0;
	if (inode->kind == LZ_INODE_REMOTE) {
		/* The first open fetches the object; later ones find it in the cache. */
		if (S_ISDIR(inode->type))
			return -EISDIR;
		fd = lz_objects_open(fs, inode, may_stream ? &inode->stream : NULL);
	} else {
		fd = open_read_fd(fs, inode);
	}
	if (fd < 0)
		return fd;
	inode->read_fd = fd;
	return 0;
}

static void share_backing_id(fuse_req_t req, struct lz_fs *fs, struct lz_inode *inode)
{
	/*
	 * Opens served by the daemon (a streamed object's; after a live upgrade,
	 * those it handed over) keep the inode's later opens the daemon's until
	 * the last one closes: the kernel fails a passthrough open beside them.
	 */
	if (inode->backing_id > 0 || inode->stream != NULL || inode->opens > 0 ||
	    !atomic_load(&fs->passthrough) || !S_ISREG(inode->type))
		return;
	int id = fuse_passthrough_open(req, inode->read_fd);
	if (id > 0) {
		inode->backing_id = id;
		return;
	}
	atomic_store(&fs->passthrough, false);
	if (!atomic_exchange(&fs->passthrough_warned, true))
		lz_warn("the kernel refused a passthrough backing file (%s); serving reads in "
			"the daemon from now on",
			strerror(errno));
}

/*
 * The first open of an inode since its last release takes back the backing id
 * parked then, when there is one: no file to open, nothing to register. A
 * remote object must still be the cached copy, and is kept while open.
 */
static void reuse_parked_backing(struct lz_fs *fs, struct lz_inode *inode)
{
	int id = lz_linger_take(fs->linger, inode->nodeid);

	if (id == 0)
		return;
	if (inode->kind == LZ_INODE_REMOTE && inode->read_fd < 0) {
		if (fs->objects->hold(fs->objects->ctx, inode->remote_path, inode->remote_size,
				      inode->remote_mtime) != 0) {
			lz_linger_close(fs->linger, id); /* evicted or changed: fetch it again */
			return;
		}
		inode->object_held = true;
	}
	inode->backing_id = id;
}

/* Drops one open; the last one parks the shared backing id and closes the descriptor. */
static void drop_open(fuse_req_t req, struct lz_fs *fs, struct lz_inode *inode)
{
	pthread_mutex_lock(&inode->lock);
	if (inode->opens > 0 && inode->image != NULL)
		lz_image_files_closed(inode->image, 1);
	if (inode->opens > 0 && --inode->opens == 0) {
		bool held = inode->read_fd >= 0 || inode->object_held;
		/* Parked before the object is released: an eviction then finds it. */
		if (inode->backing_id > 0)
			lz_linger_park(fs->linger, inode->nodeid, inode->backing_id, inode->image);
		inode->backing_id = 0;
		if (inode->read_fd >= 0)
			close(inode->read_fd);
		inode->read_fd = -1;
		if (held && inode->kind == LZ_INODE_REMOTE)
			lz_objects_release(fs, inode); /* may be evicted again */
		inode->object_held = false;
	}
	pthread_mutex_unlock(&inode->lock);
}

void lz_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	int err;

	if (inode == NULL)
		return;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (atomic_load(&fs->no_open)) {
		if (inode->image != NULL)
			lz_image_touch(inode->image);
		/* The kernel takes ENOSYS as "never send OPEN or RELEASE again". */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* A fetch would hold this worker for the whole download: a thread of its own instead. */
	if (lz_open_cold(req, inode, ino, fi))
		return;
	pthread_mutex_lock(&inode->lock);
	err = 0;
	if (inode->opens == 0 && inode->backing_id == 0)
		reuse_parked_backing(fs, inode);
	if (inode->backing_id == 0 && (err = ensure_read_fd(fs, inode, true)) == 0)
		share_backing_id(req, fs, inode);
	if (err == -EOPNOTSUPP)
		err = 0; /* no file to hand the kernel: the daemon reads for it */
	if (err == 0) {
		inode->opens++;
		if (inode->image != NULL) {
			/* An image with open files is never expired. */
			lz_image_files_opened(inode->image, 1);
			lz_image_touch(inode->image);
		}
		fi->backing_id = inode->backing_id;
	}
	/* The first open of a stream: no other handle reads (or waits) on its pages. */
	bool stream_begins = inode->stream != NULL && inode->opens == 1;
	pthread_mutex_unlock(&inode->lock);
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	/*
	 * No FLUSH on close. The page cache is kept when the daemon serves reads;
	 * the kernel refuses keep_cache on a passthrough open (EIO to the caller).
	 * The first open of a stream drops the pages the kernel kept of the
	 * object (bytes of an earlier stream that failed its check must not
	 * outlive it); later ones share them: dropping pages while a read waits
	 * on one would hold the open until that read is answered.
	 */
	fi->keep_cache = fi->backing_id == 0 && !stream_begins;
	fi->noflush = 1;
	/* The open that mounted the image began its working set: it comes after the lookup. */
	if (inode->kind == LZ_INODE_SQFS)
		lz_sqfs_used(fs, inode);
	if (fuse_reply_open(req, fi) != 0)
		drop_open(req, lz_fs_of(req),
			  inode); /* the open was interrupted: no RELEASE will come */
}

static void read_sqfs(fuse_req_t req, struct lz_inode *inode, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	struct lz_sqfs *reader = lz_sqfs_image_reader(inode->sqfs);
	ssize_t n;

	if (buf == NULL || reader == NULL) {
		fuse_reply_err(req, buf == NULL ? ENOMEM : EIO);
		free(buf);
		return;
	}
	n = lz_sqfs_read(reader, inode->sqfs_id, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Replies to a READ with SIZE bytes at OFF of FD. */
static void reply_read(fuse_req_t req, int fd, size_t size, off_t off)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].fd = fd;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/*
 * A read of a streamed object whose bytes are not there yet waits on a
 * deferral thread (defer.h), not on a FUSE worker: a slow fetch must not
 * take the threads warm opens need. It holds the stream and a descriptor of
 * its own: an interrupt answers the read, and its RELEASE may follow, while
 * the wait goes on.
 */
struct deferred_read {
	struct lz_fs *fs;
	void *stream;
	int fd;
	size_t size;
	off_t off;
};

static void drop_read(void *arg)
{
	struct deferred_read *r = arg;

	lz_objects_stream_put(r->fs, r->stream);
	close(r->fd);
	free(r);
}

static void run_read(struct lz_defer_job *job, fuse_req_t req, void *arg)
{
	struct deferred_read *r = arg;
	int err = lz_objects_wait(r->fs, r->stream, (uint64_t)r->off, r->size, true);

	if (lz_defer_claim(job)) {
		if (err != 0)
			fuse_reply_err(req, -err);
		else
			reply_read(req, r->fd, r->size, r->off);
	}
	drop_read(r);
}

/* 0 when the read was handed over (and will be answered), else -errno. */
static int defer_read(fuse_req_t req, void *stream, int fd, size_t size, off_t off)
{
	struct deferred_read *r = malloc(sizeof(*r));
	char key[48];
	int err;

	if (r == NULL)
		return -ENOMEM;
	*r = (struct deferred_read){
		.fs = lz_fs_of(req), .stream = stream, .size = size, .off = off
	};
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (r->fd < 0) {
		free(r);
		return -errno;
	}
	lz_objects_stream_hold(r->fs, stream);
	/* A lane of its own: reads of one object wait side by side, not in turn. */
	snprintf(key, sizeof(key), "\x01read:%p", (void *)r);
	err = lz_defer_submit(lz_daemon_of(req)->defer, key, req, run_read, drop_read, r);
	if (err != 0)
		drop_read(r);
	return err;
}

void lz_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	int err;

	if (inode == NULL)
		return;
	/*
	 * Open files keep read_fd until their release. In cached mode nothing is
	 * opened: the kernel keeps the pages, so a READ comes once per page, and
	 * its descriptor is opened for it alone; a walk reading every file would
	 * otherwise hold one per file until the kernel forgets it. A remote
	 * object's stays until then: it holds the object in the cache.
	 */
	pthread_mutex_lock(&inode->lock);
	bool for_this_read =
		inode->read_fd < 0 && atomic_load(&fs->no_open) && inode->kind != LZ_INODE_REMOTE;
	if (for_this_read) {
		int fd = open_read_fd(fs, inode);
		err = fd < 0 ? fd : 0;
		buf.buf[0].fd = fd;
	} else {
		err = ensure_read_fd(fs, inode, false);
		buf.buf[0].fd = inode->read_fd;
	}
	/* Its open holds it: the last release comes after this read. */
	void *stream = inode->stream;
	pthread_mutex_unlock(&inode->lock);
	if (err == 0 && stream != NULL) {
		err = lz_objects_wait(fs, stream, (uint64_t)off, size, false);
		if (err == -EAGAIN && defer_read(req, stream, buf.buf[0].fd, size, off) == 0)
			return;
		if (err == -EAGAIN) /* no thread to wait on: here then */
			err = lz_objects_wait(fs, stream, (uint64_t)off, size, true);
	}
	if (err == -EOPNOTSUPP) {
		read_sqfs(req, inode, size, off);
		return;
	}
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	/*
	 * The kernel now caches these bytes in lazyfs's own page cache: drop the
	 * image's copy so a hot file is cached once. (The underlay's pages are
	 * shared with other users of it and stay.)
	 */
	if (inode->image != NULL || (inode->kind == LZ_INODE_REMOTE && stream == NULL))
		posix_fadvise(buf.buf[0].fd, off, (off_t)size, POSIX_FADV_DONTNEED);
	if (for_this_read)
		close(buf.buf[0].fd);
}

void lz_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_inode *inode = lz_inode_of(req, ino);

	if (inode != NULL)
		drop_open(req, lz_fs_of(req), inode);
	fuse_reply_err(req, 0);
}
