/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Opening an image file: a handle shared by reference and given a slot,
 * whose made-up device number is the node id source of the image's inodes.
 * It knows its root's attributes and opens a libsquashfuse reader (sqfs.c)
 * only when the image is walked into. Both backends start so; the kernel
 * backend mounts the image only when a file of it is opened (kopen.c).
 */
#include "config.h"
#include "images_int.h"
#include "sqfs.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Made-up device numbers of squashfuse handles: a major no real device has. */
#define SQFS_DEV_MAJOR 0xfffff000u

void lz_sqfs_image_get(struct lz_sqfs_image *handle)
{
	atomic_fetch_add(&handle->refs, 1);
}

static void release_slot(struct lz_images *images, unsigned slot)
{
	pthread_mutex_lock(&images->slot_lock);
	images->slot_used[slot] = 0;
	pthread_mutex_unlock(&images->slot_lock);
}

void lz_sqfs_image_put(struct lz_sqfs_image *handle)
{
	if (handle == NULL || atomic_fetch_sub(&handle->refs, 1) != 1)
		return;
	/* No inode uses it any more, so its device number (node id source) may be reused. */
	lz_sqfs_close(atomic_load(&handle->reader));
	if (handle->file_fd >= 0)
		close(handle->file_fd);
	free(handle->fetch_name);
	if (handle->mount_fd >= 0)
		close(handle->mount_fd); /* the mount and its loop device go with it */
	pthread_mutex_destroy(&handle->mount_lock);
	pthread_mutex_destroy(&handle->reader_lock);
	release_slot(handle->images, handle->slot);
	free(handle);
}

/* Takes slot WANT (a takeover), or the first free one for -1. LZ_SQFS_SLOTS if none. */
static unsigned claim_slot(struct lz_images *images, long want)
{
	unsigned slot;

	pthread_mutex_lock(&images->slot_lock);
	if (want >= 0)
		slot = want < LZ_SQFS_SLOTS && !images->slot_used[want] ? (unsigned)want
									: LZ_SQFS_SLOTS;
	else
		for (slot = 0; slot < LZ_SQFS_SLOTS && images->slot_used[slot]; slot++)
			;
	if (slot < LZ_SQFS_SLOTS)
		images->slot_used[slot] = 1;
	pthread_mutex_unlock(&images->slot_lock);
	return slot;
}

bool lz_sqfs_image_fetched(struct lz_sqfs_image *handle)
{
	return atomic_load_explicit(&handle->fetched, memory_order_acquire);
}

int lz_sqfs_image_fetch(struct lz_sqfs_image *handle)
{
	int rc = 0;

	if (lz_sqfs_image_fetched(handle))
		return 0;
	pthread_mutex_lock(&handle->reader_lock);
	if (!atomic_load(&handle->fetched))
		rc = lz_fetch_locked(handle);
	pthread_mutex_unlock(&handle->reader_lock);
	return rc;
}

struct lz_sqfs *lz_sqfs_image_reader(struct lz_sqfs_image *handle)
{
	struct lz_sqfs *reader = atomic_load_explicit(&handle->reader, memory_order_acquire);
	char err[256];

	if (reader != NULL)
		return reader;
	if (!lz_sqfs_image_fetched(handle)) {
		errno = EIO; /* walking in fetches it first (lz_sqfs_image_fetch) */
		return NULL;
	}
	pthread_mutex_lock(&handle->reader_lock);
	reader = atomic_load(&handle->reader);
	if (reader == NULL && (reader = lz_sqfs_open_fd(handle->file_fd, err, sizeof(err))) != NULL)
		atomic_store_explicit(&handle->reader, reader, memory_order_release);
	pthread_mutex_unlock(&handle->reader_lock);
	if (reader == NULL && !atomic_exchange(&handle->reader_failed, true))
		lz_warn("image %s: %s; its files answer EIO",
			handle->owner != NULL ? lz_image_name(handle->owner) : "?", err);
	if (reader == NULL)
		errno = EIO;
	return reader;
}

int lz_sqfs_image_stat(struct lz_sqfs_image *handle, uint64_t id, struct stat *st)
{
	struct lz_sqfs *reader;

	/* A remote image's root answers from its card until the image is here. */
	if (id == handle->root_id && (id != LZ_SQFS_ROOT || !lz_sqfs_image_fetched(handle))) {
		*st = handle->root_st;
		return 0;
	}
	reader = lz_sqfs_image_reader(handle);
	return reader != NULL ? lz_sqfs_stat(reader, id, st) : -EIO;
}

/*
 * Checks the image at FILE_FD as a reader opens it, and keeps its root's
 * attributes: the reader itself is let go (the next is opened when the
 * image is walked into). 0, or -1 with ERR.
 */
static int read_root(struct lz_sqfs_image *handle, int file_fd, char *err, size_t errlen)
{
	struct lz_sqfs *reader = lz_sqfs_open_fd(file_fd, err, errlen);
	int rc;

	if (reader == NULL)
		return -1;
	handle->root_id = lz_sqfs_root(reader);
	rc = lz_sqfs_stat(reader, handle->root_id, &handle->root_st);
	lz_sqfs_close(reader);
	if (rc != 0)
		snprintf(err, errlen, "corrupt: cannot read the root directory");
	return rc == 0 ? 0 : -1;
}

/* A new handle in slot WANT (-1: the first free one), with no image file yet. */
static struct lz_sqfs_image *new_handle(struct lz_images *images, long want, char *err,
					size_t errlen)
{
	struct lz_sqfs_image *handle = calloc(1, sizeof(*handle));
	unsigned slot;

	if (handle == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	slot = claim_slot(images, want);
	if (slot == LZ_SQFS_SLOTS) {
		snprintf(err, errlen,
			 want < 0 ? "too many squashfuse images open"
				  : "squashfuse slot taken twice");
		free(handle);
		return NULL;
	}
	handle->file_fd = -1;
	handle->slot = slot;
	handle->dev = makedev(SQFS_DEV_MAJOR, slot);
	handle->images = images;
	handle->mount_fd = -1;
	pthread_mutex_init(&handle->mount_lock, NULL);
	pthread_mutex_init(&handle->reader_lock, NULL);
	atomic_store(&handle->refs, 1);
	return handle;
}

struct lz_sqfs_image *lz_backend_open_sqfs(struct lz_images *images, int file_fd, long want,
					   bool kernel, char *err, size_t errlen)
{
	struct lz_sqfs_image *handle = new_handle(images, want, err, errlen);

	if (handle == NULL)
		return NULL;
	handle->kernel = kernel && images->backend == LZ_IMAGE_KERNEL;
	handle->file_fd = fcntl(file_fd, F_DUPFD_CLOEXEC, 0);
	if (handle->file_fd < 0)
		snprintf(err, errlen, "%s", strerror(errno));
	if (handle->file_fd < 0 || read_root(handle, file_fd, err, errlen) != 0) {
		lz_sqfs_image_put(handle);
		return NULL;
	}
	atomic_store(&handle->fetched, true);
	return handle;
}

struct lz_sqfs_image *lz_backend_open_remote(struct lz_images *images, const char *name,
					     uint64_t size, struct timespec mtime, long want,
					     bool *no_xattrs, char *err, size_t errlen)
{
	struct lz_sqfs_image *handle = new_handle(images, want, err, errlen);

	if (handle == NULL)
		return NULL;
	if ((handle->fetch_name = strdup(name)) == NULL) {
		snprintf(err, errlen, "out of memory");
		lz_sqfs_image_put(handle);
		return NULL;
	}
	handle->fetch_size = size;
	handle->fetch_mtime = mtime;
	lz_remote_root(handle, no_xattrs);
	return handle;
}

struct lz_sqfs_image *lz_images_adopt_sqfs(struct lz_images *images, int file_fd, unsigned slot,
					   bool kernel, char *err, size_t errlen)
{
	return lz_backend_open_sqfs(images, file_fd, slot, kernel, err, errlen);
}

struct lz_sqfs_image *lz_images_adopt_unfetched(struct lz_images *images, unsigned slot,
						const char *name, uint64_t size,
						struct timespec mtime, char *err, size_t errlen)
{
	bool no_xattrs;

	return lz_backend_open_remote(images, name, size, mtime, slot, &no_xattrs, err, errlen);
}

int lz_backend_open(struct lz_images *images, int file_fd, const char *path, const struct stat *st,
		    bool kernel, struct lz_image_root *root)
{
	char err[256];

	root->fd = -1;
	root->sqfs = NULL;
	if (!S_ISREG(st->st_mode)) {
		lz_warn("image %s: not a regular file; serving the underlay", path);
		return -EINVAL;
	}
	root->sqfs = lz_backend_open_sqfs(images, file_fd, -1, kernel, err, sizeof(err));
	if (root->sqfs != NULL)
		return 0;
	lz_warn("image %s: %s; serving the underlay", path, err);
	return -EIO;
}
