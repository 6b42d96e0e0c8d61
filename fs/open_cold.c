/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Cold opens of remote objects, off the FUSE worker threads. A worker that
 * fetched an object itself stayed blocked for the whole fetch: sixteen cold
 * opens at once took every worker, and a warm open (24 µs on its own) then
 * waited in the kernel's queue behind whole downloads. An OPEN of an object
 * the cache does not hold is handed instead to the fetch pool (defer.h, no
 * deadline: a fetch fails on its own after fetch_timeout without progress),
 * which runs at most fetch_max fetches at once, one per object (opens of the
 * same object queue behind its fetch), and answers the OPEN once the object
 * is cached, through the same path a warm open takes. With stream=on that
 * path starts the streamed fetch and answers once it has begun.
 */
#include "config.h"
#include "ops.h"
#include "defer.h"
#include "fscore/objects.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Set on a fetch thread while it answers: its lz_op_open must not defer again. */
static _Thread_local bool answering;

struct cold_open {
	struct lz_fs *fs;
	struct lz_inode *inode; /* held: the kernel may forget it once answered */
	fuse_ino_t ino;
	struct fuse_file_info fi;
};

static void drop_cold(void *arg)
{
	struct cold_open *c = arg;

	lz_inode_unhold(c->fs->inodes, c->inode);
	free(c);
}

static void run_cold(struct lz_defer_job *job, fuse_req_t req, void *arg)
{
	struct cold_open *c = arg;
	const struct lz_source *src = c->fs->objects;
	bool whole = !c->fs->settings->stream;
	int fd = 0;

	/*
	 * stream=on: the open below starts the fetch and returns once it has
	 * begun (or, when the object cannot be streamed, fetches it whole, here).
	 * Otherwise the fetch, into the cache; the open below finds it there (or
	 * waits for its publication).
	 */
	if (whole)
		fd = src->open(src->ctx, c->inode->remote_path);
	if (whole && fd >= 0) {
		close(fd);
		src->release(src->ctx, c->inode->remote_path);
	}
	if (lz_defer_claim(job)) {
		if (fd < 0) {
			fuse_reply_err(req, -fd);
		} else {
			answering = true;
			lz_op_open(req, c->ino, &c->fi);
			answering = false;
		}
	}
	drop_cold(c);
}

/* Whether opening INODE may fetch: a remote file with nothing open and no cached copy. */
static bool is_cold(struct lz_fs *fs, struct lz_inode *inode)
{
	const struct lz_source *src = fs->objects;
	bool open;
	uint64_t size;
	struct timespec mtime;

	if (inode->kind != LZ_INODE_REMOTE || !S_ISREG(inode->type) || src == NULL)
		return false;
	pthread_mutex_lock(&inode->lock);
	open = inode->read_fd >= 0 || inode->backing_id > 0 || inode->object_held;
	size = inode->remote_size;
	mtime = inode->remote_mtime;
	pthread_mutex_unlock(&inode->lock);
	if (open)
		return false;
	/* A hash lookup in the store's index (no file opened), given back at once. */
	if (src->hold(src->ctx, inode->remote_path, size, mtime) != 0)
		return true;
	src->release(src->ctx, inode->remote_path);
	return false;
}

bool lz_open_cold(fuse_req_t req, struct lz_inode *inode, fuse_ino_t ino,
		  const struct fuse_file_info *fi)
{
	struct lz_daemon *d = lz_daemon_of(req);
	struct lz_fs *fs = &d->fs;
	struct cold_open *c;
	int err;

	if (answering || d->fetches == NULL || !is_cold(fs, inode))
		return false;
	c = malloc(sizeof(*c));
	if (c == NULL)
		return false; /* fetched on this worker, as before */
	*c = (struct cold_open){ .fs = fs, .inode = inode, .ino = ino, .fi = *fi };
	lz_inode_hold(fs->inodes, inode);
	/* Keyed by the object: a second open of it waits for the first one's fetch. */
	err = lz_defer_submit(d->fetches, inode->remote_path, req, run_cold, drop_cold, c);
	if (err != 0) {
		drop_cold(c);
		fuse_reply_err(req, -err);
	}
	return true;
}
