/* SPDX-License-Identifier: BSD-2-Clause */
/* One mounted lazyfs: making its parts, its root, and freeing them. */
#include "config.h"
#include "fs.h"
#include "objects.h"
#include "underlay.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* What an inode holds beyond its descriptors, dropped as the table frees it. */
static void release_inode(void *ctx, struct lz_inode *inode)
{
	struct lz_fs *fs = ctx;

	lz_sqfs_image_put(inode->sqfs);
	/* open_mode=cached keeps a remote object open until the kernel forgets it. */
	if (inode->kind == LZ_INODE_REMOTE && inode->read_fd >= 0)
		lz_objects_release(fs, inode);
	/* Its parked backing file (the connection drops those left at exit). */
	if (fs->linger != NULL)
		lz_linger_revoke(fs->linger, inode->nodeid);
}

/*
 * How many inodes keep their backing descriptor open: a quarter of the
 * descriptor limit (the rest is for open files, directory streams, images),
 * between 32 and 16384; beyond that a file is opened again by its handle.
 */
static unsigned path_fd_budget(void)
{
	struct rlimit lim;
	rlim_t quarter;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
		return 256;
	quarter = lim.rlim_cur / 4;
	return quarter < 32 ? 32 : quarter > 16384 ? 16384 : (unsigned)quarter;
}

int lz_fs_init(struct lz_fs *fs, const struct lz_settings *settings)
{
	bool passthrough = settings->open_mode == LZ_OPEN_PASSTHROUGH;

	memset(fs, 0, sizeof(*fs));
	fs->settings = settings;
	pthread_mutex_init(&fs->map_lock, NULL);
	atomic_store(&fs->passthrough, true);
	fs->inodes = lz_inode_table_new(path_fd_budget());
	if (fs->inodes != NULL)
		lz_inode_table_on_free(fs->inodes, release_inode, fs);
	fs->linger = lz_linger_new(passthrough ? settings->backing_keep : 0);
	fs->handles = lz_handles_new();
	fs->listings = lz_listings_new(settings->listing_max);
	fs->expiry = lz_expiry_new(fs);
	if (fs->inodes == NULL || fs->linger == NULL || fs->handles == NULL ||
	    fs->listings == NULL || fs->expiry == NULL)
		return -ENOMEM;
	return 0;
}

int lz_fs_make_root(struct lz_fs *fs, int underlay_fd)
{
	struct stat st;
	int err = lz_backing_stat(underlay_fd, &st);

	if (err != 0) {
		close(underlay_fd);
		return err;
	}
	/* Registers the underlay's device as the first node id source. */
	lz_inode_source_for_dev(fs->inodes, st.st_dev);
	fs->root = lz_inode_ref(fs->inodes, LZ_ROOT_ID, underlay_fd, st.st_mode);
	return fs->root != NULL ? 0 : -errno;
}

/* A resolved image: the tracker counts its opens as warm. */
static void image_ready(void *ctx, struct lz_image *image, unsigned generation)
{
	struct lz_fs *fs = ctx;

	lz_track_resolved(fs->track, lz_image_name(image));
}

/*
 * A file of the image was opened, and the kernel mounted it: its real use,
 * recorded as a working set; the last one is read ahead. (A browse that
 * opens nothing records nothing.)
 */
static void image_mounted(void *ctx, struct lz_image *image, unsigned generation)
{
	struct lz_fs *fs = ctx;

	lz_prefetch_image_mounted(fs->prefetch, image, generation);
}

void lz_fs_set_images(struct lz_fs *fs, struct lz_images *images)
{
	fs->images = images;
	lz_images_on_ready(images, image_ready, fs);
	lz_images_on_mounted(images, image_mounted, fs);
}

/* Prefetch fills the cache through the source directly: its opens are not recorded. */
static int prefetch_object(void *ctx, const char *path)
{
	const struct lz_source *objects = ctx;
	int fd = objects->open(objects->ctx, path);

	if (fd < 0)
		return fd;
	close(fd);
	objects->release(objects->ctx, path);
	return 0;
}

int lz_fs_open_prefetch(struct lz_fs *fs)
{
	char dir[PATH_MAX];

	if (!fs->settings->prefetch || (fs->images == NULL && fs->objects == NULL))
		return 0;
	snprintf(dir, sizeof(dir), "%s/workingset%s", fs->settings->cache,
		 fs->objects != NULL ? "/objects" : "");
	fs->prefetch = lz_prefetch_new(dir, fs->settings->prefetch_max);
	if (fs->prefetch == NULL)
		return -ENOMEM;
	if (fs->objects != NULL)
		lz_prefetch_set_fetch(fs->prefetch, prefetch_object, (void *)fs->objects);
	return 0;
}

void lz_fs_object_evicted(void *ctx, const char *path)
{
	struct lz_fs *fs = ctx;

	/* Its file may be parked for passthrough: let the kernel drop it, and its disk space. */
	lz_linger_revoke(fs->linger, lz_objects_nodeid(path));
	/* The tracker reports its next open again. */
	lz_track_forget(fs->track, path);
	LZ_LOG_LIMITED(LZ_LOG_INFO, "cache: evicted '%s'", path);
}

void lz_fs_forget_entry(struct lz_fs *fs, uint64_t parent, const char *name)
{
	if (fs->forget_entry != NULL)
		fs->forget_entry(fs->forget_ctx, parent, name);
}

struct lz_map *lz_fs_map_hold(struct lz_fs *fs)
{
	struct lz_map *map;

	pthread_mutex_lock(&fs->map_lock);
	map = atomic_load(&fs->map);
	if (map != NULL)
		lz_map_hold(map);
	pthread_mutex_unlock(&fs->map_lock);
	return map;
}

struct lz_map *lz_fs_map_replace(struct lz_fs *fs, struct lz_map *map)
{
	struct lz_map *old;

	pthread_mutex_lock(&fs->map_lock);
	old = atomic_exchange(&fs->map, map);
	pthread_mutex_unlock(&fs->map_lock);
	return old;
}

void lz_fs_destroy(struct lz_fs *fs)
{
	lz_pins_free(fs->pins); /* stopped by the daemon before */
	lz_inode_table_free(fs->inodes);
	lz_linger_free(fs->linger); /* after the inodes, which revoke their ids as they go */
	lz_images_free(fs->images);
	lz_handles_free(fs->handles);
	lz_listings_free(fs->listings);
	lz_expiry_free(fs->expiry);
	lz_map_release(atomic_load(&fs->map));
	pthread_mutex_destroy(&fs->map_lock);
	memset(fs, 0, sizeof(*fs));
}
