/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Remote images (remote_mode=images) are listed before they are fetched: a
 * browse of the prefix gets each root's attributes from its root card
 * (cards.h), learnt when the image was first fetched, or made-up ones, and
 * fetches nothing. The object is fetched when the image is walked into (a
 * lookup, listing or open below its root), on a thread that may wait.
 */
#include "config.h"
#include "images_int.h"
#include "cards.h"
#include "sqfs.h"
#include "trust.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The inode number of a made-up root: above the 32-bit inode numbers of
 * squashfs, so its node id is never that of a file in the image.
 */
#define MADE_UP_ROOT_INO (UINT64_C(1) << 32)

int lz_images_set_cards(struct lz_images *images, const char *path, char *err, size_t errlen)
{
	images->cards = lz_cards_open(path, err, errlen);
	return images->cards != NULL ? 0 : -1;
}

static struct lz_card_key card_key(const struct lz_sqfs_image *handle)
{
	return (struct lz_card_key){ .name = handle->fetch_name,
				     .size = handle->fetch_size,
				     .mtime = handle->fetch_mtime };
}

void lz_remote_root(struct lz_sqfs_image *handle, bool *no_xattrs)
{
	struct lz_card_key key = card_key(handle);
	struct lz_image_card card;
	struct stat *st = &handle->root_st;

	handle->root_id = LZ_SQFS_ROOT;
	if (handle->images->cards != NULL && lz_cards_find(handle->images->cards, &key, &card)) {
		*st = card.root;
		*no_xattrs = card.no_xattrs;
		return;
	}
	/* Never fetched here: what mksquashfs gives a root by default, dated by the object. */
	*no_xattrs = false;
	memset(st, 0, sizeof(*st));
	st->st_ino = MADE_UP_ROOT_INO;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_blksize = 4096;
	st->st_mtim = handle->fetch_mtime;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* Learns the card of the image just fetched into FD, unless the object changed since listed. */
static void learn_card(struct lz_sqfs_image *handle, struct lz_sqfs *reader, int fd,
		       bool *no_xattrs)
{
	struct lz_card_key key = card_key(handle);
	struct lz_sqfs_features features;
	struct lz_image_card card;
	struct stat file;

	*no_xattrs = lz_sqfs_features(fd, &features) == 0 && !features.xattrs;
	if (handle->images->cards == NULL || fstat(fd, &file) != 0 ||
	    (uint64_t)file.st_size != handle->fetch_size ||
	    lz_sqfs_stat(reader, LZ_SQFS_ROOT, &card.root) != 0)
		return;
	card.no_xattrs = *no_xattrs;
	lz_cards_put(handle->images->cards, &key, &card);
}

/*
 * The image the handle was opened for keeps the object in the cache while it
 * is READY with this handle (and hands it over in a live upgrade); the
 * tracker is told it is resolved now that it is here.
 */
static void attach(struct lz_sqfs_image *handle, bool no_xattrs, const char *trust)
{
	struct lz_images *images = handle->images;
	const struct lz_source *source = images->source;
	struct lz_image *image = handle->owner;
	bool kept = false, announce = false;
	unsigned generation = 0;

	if (image != NULL) {
		pthread_mutex_lock(&image->lock);
		bool current = image->state == LZ_IMAGE_READY && image->sqfs == handle;
		if (current && image->source_key == NULL)
			kept = (image->source_key = strdup(handle->fetch_name)) != NULL;
		if (current) {
			image->no_xattrs = no_xattrs;
			snprintf(image->trust, sizeof(image->trust), "%s", trust);
			announce = images->on_ready != NULL;
			generation = image->generation;
		}
		pthread_mutex_unlock(&image->lock);
	}
	/* Not kept: the handle's descriptor still reads the copy it has. */
	if (!kept)
		source->release(source->ctx, handle->fetch_name);
	if (announce)
		images->on_ready(images->on_ready_ctx, image, generation);
}

/*
 * A fetch failed: the image fails as a resolve that failed would, so its
 * entry falls through to the underlay until LZ_IMAGE_RETRY_S have passed.
 * The walk that wanted it is answered ESTALE, which makes the kernel walk
 * the path again, and look up the entry anew: it finds the underlay's.
 */
static void fail_image(struct lz_sqfs_image *handle, long long now)
{
	struct lz_image *image = handle->owner;

	if (image == NULL)
		return;
	pthread_mutex_lock(&image->lock);
	if (image->state == LZ_IMAGE_READY && image->sqfs == handle) {
		lz_image_close_locked(image); /* the caller holds the handle still */
		image->state = LZ_IMAGE_FAILED;
		image->failed_at = now;
		atomic_fetch_add(&handle->images->failed, 1);
	}
	pthread_mutex_unlock(&image->lock);
}

/*
 * Whether the kernel may mount the copy FD just fetched (trust.h: its digest),
 * with why in TRUST; false with ERR when it may not and only the kernel
 * backend was asked for. The digest is read only where it decides something.
 */
static bool copy_trust(struct lz_sqfs_image *handle, int fd, char *trust, size_t len, char *err,
		       size_t errlen)
{
	struct lz_images *images = handle->images;

	if (images->backend != LZ_IMAGE_KERNEL) {
		snprintf(trust, len, "read with squashfuse");
		return true;
	}
	handle->kernel = lz_trust_copy(images->trust, handle->fetch_name, fd, trust, len);
	if (handle->kernel || !images->trusted_only)
		return true;
	snprintf(err, errlen, "%s; backend=kernel mounts only trusted images", trust);
	return false;
}

int lz_fetch_locked(struct lz_sqfs_image *handle)
{
	const struct lz_source *source = handle->images->source;
	long long now = (long long)lz_clock_s(CLOCK_MONOTONIC);
	struct lz_sqfs *reader = NULL;
	char err[256], trust[96];
	bool no_xattrs;
	int fd;

	if (source == NULL || handle->fetch_name == NULL)
		return -ESTALE;
	if (handle->fetch_failed_at != 0 && now - handle->fetch_failed_at < LZ_IMAGE_RETRY_S)
		return -ESTALE; /* logged when it failed */
	fd = source->open(source->ctx, handle->fetch_name);
	if (fd < 0)
		snprintf(err, sizeof(err), "fetching %s: %s", handle->fetch_name, strerror(-fd));
	else if ((reader = lz_sqfs_open_fd(fd, err, sizeof(err))) == NULL ||
		 !copy_trust(handle, fd, trust, sizeof(trust), err, sizeof(err))) {
		lz_sqfs_close(reader);
		reader = NULL;
		close(fd);
		source->release(source->ctx, handle->fetch_name);
	}
	if (reader == NULL) {
		handle->fetch_failed_at = now;
		lz_warn("image %s: %s; serving the underlay",
			handle->owner != NULL ? lz_image_name(handle->owner) : handle->fetch_name,
			err);
		fail_image(handle, now);
		return -ESTALE;
	}
	handle->file_fd = fd;
	atomic_store_explicit(&handle->reader, reader, memory_order_release);
	atomic_store_explicit(&handle->fetched, true, memory_order_release);
	learn_card(handle, reader, fd, &no_xattrs);
	attach(handle, no_xattrs, trust);
	lz_debug("image %s: fetched", handle->fetch_name);
	return 0;
}
