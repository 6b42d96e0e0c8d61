/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One image of the registry: its life (made on first use, freed with the
 * registry), and what the rest of lazyfs may read or change of it, each
 * call taking the image's lock itself.
 */
#include "config.h"
#include "images_int.h"
#include "common/clock.h"
#include "common/source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lz_image *lz_image_new(struct lz_images *images, const char *name)
{
	struct lz_image *image = calloc(1, sizeof(*image));

	if (image == NULL)
		return NULL;
	image->name = strdup(name);
	if (image->name == NULL) {
		free(image);
		return NULL;
	}
	pthread_mutex_init(&image->lock, NULL);
	pthread_cond_init(&image->changed, NULL);
	image->images = images;
	image->root_fd = -1;
	return image;
}

void lz_image_free(struct lz_image *image)
{
	lz_image_close_locked(image); /* the registry is going: nobody else holds it */
	pthread_mutex_destroy(&image->lock);
	pthread_cond_destroy(&image->changed);
	free(image->name);
	free(image->path);
	free(image->entry);
	free(image);
}

void lz_image_close_locked(struct lz_image *image)
{
	if (image->root_fd >= 0)
		close(image->root_fd);
	image->root_fd = -1;
	lz_sqfs_image_put(image->sqfs);
	image->sqfs = NULL;
	if (image->source_key != NULL) {
		const struct lz_source *source = image->images->source;
		source->release(source->ctx, image->source_key);
		free(image->source_key);
		image->source_key = NULL;
	}
}

int lz_image_remember_locked(struct lz_image *image, const struct lz_image_ref *ref)
{
	if (image->entry == NULL || strcmp(image->entry, ref->entry) != 0) {
		char *entry = strdup(ref->entry);
		if (entry == NULL)
			return -ENOMEM;
		free(image->entry);
		image->entry = entry;
	}
	if (ref->path != NULL && (image->path == NULL || strcmp(image->path, ref->path) != 0)) {
		char *path = strdup(ref->path);
		if (path == NULL)
			return -ENOMEM;
		free(image->path);
		image->path = path;
	}
	image->parent = ref->parent;
	return 0;
}

const char *lz_image_name(const struct lz_image *image)
{
	return image->name;
}

void lz_image_touch(struct lz_image *image)
{
	long long now = (long long)lz_clock_s(CLOCK_MONOTONIC);

	/* Most touches find the second unchanged: skip the cache-line write. */
	if (atomic_load_explicit(&image->last_use, memory_order_relaxed) != now)
		atomic_store_explicit(&image->last_use, now, memory_order_relaxed);
}

void lz_image_files_opened(struct lz_image *image, unsigned n)
{
	atomic_fetch_add(&image->open_files, n);
}

void lz_image_files_closed(struct lz_image *image, unsigned n)
{
	atomic_fetch_sub(&image->open_files, n);
}

void lz_image_pin(struct lz_image *image)
{
	atomic_fetch_add(&image->pins, 1);
}

int lz_image_unpin(struct lz_image *image)
{
	unsigned pins = atomic_load(&image->pins);

	while (pins > 0 && !atomic_compare_exchange_weak(&image->pins, &pins, pins - 1))
		;
	return pins > 0 ? 0 : -EINVAL;
}

bool lz_image_no_xattrs(struct lz_image *image)
{
	pthread_mutex_lock(&image->lock);
	bool none = image->no_xattrs;
	pthread_mutex_unlock(&image->lock);
	return none;
}

void lz_image_file_id(struct lz_image *image, struct lz_image_file *out)
{
	pthread_mutex_lock(&image->lock);
	*out = (struct lz_image_file){
		.dev = image->file_st.st_dev,
		.ino = image->file_st.st_ino,
		.size = image->file_st.st_size,
		.mtime_ns = image->file_st.st_mtim.tv_sec * INT64_C(1000000000) +
			    image->file_st.st_mtim.tv_nsec,
	};
	pthread_mutex_unlock(&image->lock);
}

void lz_image_info(struct lz_image *image, struct lz_image_info *out)
{
	out->name = image->name;
	out->pins = atomic_load(&image->pins);
	out->open_files = atomic_load(&image->open_files);
	out->resolves = atomic_load(&image->resolves);
	out->last_use = atomic_load(&image->last_use);
	pthread_mutex_lock(&image->lock);
	out->state = image->state;
	out->backend =
		image->sqfs != NULL && !image->sqfs->kernel ? LZ_IMAGE_SQUASHFUSE : LZ_IMAGE_KERNEL;
	out->generation = image->generation;
	out->bytes = image->file_st.st_size > 0 ? image->file_st.st_size : 0;
	snprintf(out->path, sizeof(out->path), "%s", image->path != NULL ? image->path : "");
	snprintf(out->trust, sizeof(out->trust), "%s",
		 image->state == LZ_IMAGE_READY ? image->trust : "");
	pthread_mutex_unlock(&image->lock);
}

int lz_image_open_root(struct lz_image *image, unsigned generation)
{
	int fd = -1;

	pthread_mutex_lock(&image->lock);
	struct lz_sqfs_image *handle = NULL;
	bool ready = image->state == LZ_IMAGE_READY && image->generation == generation;

	if (ready && image->root_fd >= 0)
		fd = fcntl(image->root_fd, F_DUPFD_CLOEXEC, 0);
	else if (ready && image->sqfs != NULL && image->sqfs->kernel)
		lz_sqfs_image_get(handle = image->sqfs);
	pthread_mutex_unlock(&image->lock);
	if (handle != NULL) {
		fd = lz_sqfs_image_kernel_root(handle);
		lz_sqfs_image_put(handle);
	}
	return fd < 0 ? -1 : fd;
}

bool lz_image_is_generation(struct lz_image *image, unsigned generation)
{
	bool same;

	pthread_mutex_lock(&image->lock);
	same = image->state == LZ_IMAGE_READY && image->generation == generation;
	pthread_mutex_unlock(&image->lock);
	return same;
}

void lz_image_export(struct lz_image *image, struct lz_image_adopt *out)
{
	pthread_mutex_lock(&image->lock);
	bool ready = image->state == LZ_IMAGE_READY;
	*out = (struct lz_image_adopt){
		.name = image->name,
		.path = image->path,
		.entry = image->entry,
		.parent = image->parent,
		.generation = image->generation,
		.pins = atomic_load(&image->pins),
		.file_st = image->file_st,
		.root_fd = ready ? image->root_fd : -1,
		.sqfs = ready ? image->sqfs : NULL,
		.source_key = ready ? image->source_key : NULL,
	};
	pthread_mutex_unlock(&image->lock);
}
