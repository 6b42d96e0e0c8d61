/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Entries of a remote tree (remote_mode=objects): listed through the source,
 * named by their path on the remote, opened as local copies the kernel then
 * reads through passthrough. Node ids come from a hash of the path, so the
 * same object keeps its id for the life of the mount (and across restarts).
 */
#include "config.h"
#include "objects.h"
#include "nodeid.h"
#include "common/names.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t path_hash(const char *path, uint64_t salt)
{
	uint64_t h = lz_hash64(path, UINT64_C(1469598103934665603) ^ salt);
	return (h & LZ_NODEID_INO_MASK) | 2; /* never 0 or the root */
}

int lz_objects_list(struct lz_fs *fs, const char *dir_path, struct lz_source_entry **entries,
		    size_t *count)
{
	return fs->objects->list(fs->objects->ctx, dir_path, entries, count);
}

int lz_objects_listing_get(struct lz_fs *fs, const char *dir_path,
			   const struct lz_source_listing **out)
{
	return fs->objects->list_get(fs->objects->ctx, dir_path, out);
}

void lz_objects_listing_put(struct lz_fs *fs, const struct lz_source_listing *listing)
{
	if (listing != NULL)
		fs->objects->list_put(fs->objects->ctx, listing);
}

void lz_objects_stat(struct lz_inode *inode, struct stat *st)
{
	bool dir = S_ISDIR(inode->type);

	memset(st, 0, sizeof(*st));
	st->st_ino = inode->nodeid;
	st->st_mode = dir ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = dir ? 2 : 1;
	st->st_blksize = 1 << 20;
	/* A lookup may be setting them from a newer listing. */
	pthread_mutex_lock(&inode->lock);
	st->st_size = (off_t)inode->remote_size;
	st->st_mtim = inode->remote_mtime;
	pthread_mutex_unlock(&inode->lock);
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

void lz_objects_set_meta(struct lz_inode *inode, const struct lz_source_entry *entry)
{
	pthread_mutex_lock(&inode->lock);
	inode->remote_size = entry->is_dir ? 0 : entry->size;
	inode->remote_mtime = entry->mtime;
	pthread_mutex_unlock(&inode->lock);
}

uint64_t lz_objects_nodeid(const char *path)
{
	return lz_nodeid_make(LZ_NODEID_REMOTE_SOURCE, path_hash(path, 0));
}

/* Collisions move a path's node id on to the next salt, up to this many. */
#define SALTS 8

bool lz_objects_names(uint64_t nodeid, const char *path)
{
	for (uint64_t salt = 0; salt < SALTS; salt++)
		if (nodeid == lz_nodeid_make(LZ_NODEID_REMOTE_SOURCE, path_hash(path, salt)))
			return true;
	return false;
}

int lz_objects_lookup(struct lz_fs *fs, const char *dir_path, const char *name, struct lz_entry *e)
{
	struct lz_source_entry entry, *found = &entry;
	char path[PATH_MAX];
	int rc = fs->objects->lookup(fs->objects->ctx, dir_path, name, &entry);

	if (rc < 0)
		return rc == -ENOTDIR ? -ENOENT : rc;
	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", dir_path, *dir_path ? "/" : "", name) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	struct lz_inode_init init = {
		.kind = LZ_INODE_REMOTE,
		.path_fd = -1,
		.type = found->is_dir ? S_IFDIR : S_IFREG,
		.remote_path = path,
	};
	struct lz_inode *inode = NULL;
	/*
	 * A hash collision with another path moves on to the next id. The id
	 * is referenced before its path is compared: an inode looked at without
	 * a reference could be freed by a FORGET meanwhile.
	 */
	for (uint64_t salt = 0; salt < SALTS && inode == NULL; salt++) {
		uint64_t nodeid = lz_nodeid_make(LZ_NODEID_REMOTE_SOURCE, path_hash(path, salt));
		bool created;
		inode = lz_inode_ref_init(fs->inodes, nodeid, &init, &created);
		if (inode == NULL)
			return -errno;
		if (strcmp(inode->remote_path ? inode->remote_path : "", path) != 0) {
			lz_inode_forget(fs->inodes, nodeid, 1);
			inode = NULL;
		}
	}
	if (inode == NULL)
		return -EOVERFLOW;
	/* Objects can change on the remote: the newest listing wins. */
	lz_objects_set_meta(inode, found);

	struct stat st;
	lz_objects_stat(inode, &st);
	memset(e, 0, sizeof(*e));
	e->ino = inode->nodeid;
	e->attr = st;
	e->attr_timeout = fs->settings->listing_ttl;
	e->entry_timeout = fs->settings->listing_ttl;
	return 0;
}

int lz_objects_open(struct lz_fs *fs, struct lz_inode *inode, void **stream)
{
	const struct lz_source *src = fs->objects;
	int fd;

	if (stream != NULL)
		*stream = NULL;
	if (stream != NULL && src->open_streamed != NULL)
		fd = src->open_streamed(src->ctx, inode->remote_path, stream);
	else
		fd = src->open(src->ctx, inode->remote_path);

	if (fd >= 0) {
		lz_track_resolved(fs->track, inode->remote_path);
		lz_prefetch_object_opened(fs->prefetch, inode->remote_path,
					  (off_t)inode->remote_size);
	}
	return fd;
}

int lz_objects_wait(struct lz_fs *fs, void *stream, uint64_t off, uint64_t len, bool block)
{
	return fs->objects->stream_wait(fs->objects->ctx, stream, off, len, block);
}

void lz_objects_stream_hold(struct lz_fs *fs, void *stream)
{
	fs->objects->stream_hold(fs->objects->ctx, stream);
}

void lz_objects_stream_put(struct lz_fs *fs, void *stream)
{
	fs->objects->stream_close(fs->objects->ctx, stream);
}

void lz_objects_release(struct lz_fs *fs, struct lz_inode *inode)
{
	if (inode->stream != NULL) {
		fs->objects->stream_close(fs->objects->ctx, inode->stream);
		inode->stream = NULL;
		return;
	}
	fs->objects->release(fs->objects->ctx, inode->remote_path);
}

struct adoption {
	struct lz_fs *fs;
	char *err;
	size_t errlen;
	int failed;
};

static void adopt_one(struct adoption *a, const struct lz_source *source, const char *path)
{
	if (source->adopt(source->ctx, path) == 0 || a->failed++ > 0)
		return;
	snprintf(a->err, a->errlen, "'%s' is no longer in the cache", path);
}

static void adopt_inode_object(void *ctx, struct lz_inode *inode)
{
	struct adoption *a = ctx;

	if (inode->kind != LZ_INODE_REMOTE)
		return;
	pthread_mutex_lock(&inode->lock);
	if (inode->read_fd >= 0 || inode->object_held)
		adopt_one(a, a->fs->objects, inode->remote_path);
	pthread_mutex_unlock(&inode->lock);
}

int lz_objects_adopt(struct lz_fs *fs, char *err, size_t errlen)
{
	struct adoption a = { .fs = fs, .err = err, .errlen = errlen };

	if (fs->objects != NULL)
		lz_inode_foreach(fs->inodes, adopt_inode_object, &a);
	/* Every reference is taken again; ERR names the first object missing. */
	if (fs->images != NULL && lz_images_adopt_sources(fs->images, a.failed == 0 ? err : NULL,
							  a.failed == 0 ? errlen : 0) != 0)
		a.failed++;
	return a.failed > 0 ? -ENOENT : 0;
}
