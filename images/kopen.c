/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel backend's opens: an image is read in user space (sqfs.c) until
 * a file of it is opened; then, once per handle, the same image file is
 * mounted detached (kmount.c) and each file is opened there by its squashfs
 * inode number, so passthrough has a backing file and the kernel's page cache
 * and decompressors serve the reads. The inode numbers are the ones the
 * user-space reader reports, so nothing the kernel caches changes at the
 * switch. Squashfs decodes a handle of type FILEID_INO32_GEN through the
 * image's export table and ignores the generation; an image without that
 * table is read by the daemon.
 */
#include "config.h"
#include "images_int.h"
#include "kmount.h"
#include "sqfs.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FILEID_INO32_GEN 1 /* include/linux/exportfs.h: { u32 ino; u32 gen; } */

/* Mounts HANDLE's image unless it is or cannot be; under mount_lock. True when mounted now. */
static bool mount_locked(struct lz_sqfs_image *handle)
{
	struct lz_sqfs_features features;
	const char *name = handle->owner != NULL ? lz_image_name(handle->owner) : "?";
	int file_fd = handle->file_fd;
	char err[256];

	if (handle->mount_fd >= 0 || handle->mount_refused)
		return false;
	if (handle->mount_failed_at != 0 &&
	    lz_clock_s(CLOCK_MONOTONIC) - (double)handle->mount_failed_at < LZ_IMAGE_RETRY_S)
		return false;
	if (lz_sqfs_features(file_fd, &features) == 0 && !features.exports) {
		handle->mount_refused = true;
		lz_info("image %s has no export table (mksquashfs -no-exports): the daemon "
			"reads its files",
			name);
		return false;
	}
	int mnt = lz_kmount_squashfs(file_fd, err, sizeof(err));
	if (mnt >= 0) {
		/* open_by_handle_at wants an open directory, not fsmount's O_PATH one. */
		handle->mount_fd = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (handle->mount_fd < 0)
			snprintf(err, sizeof(err), "opening its root: %s", strerror(errno));
		close(mnt);
	}
	if (handle->mount_fd >= 0) {
		handle->mount_failed_at = 0;
		return true;
	}
	handle->mount_failed_at = (long long)lz_clock_s(CLOCK_MONOTONIC);
	lz_warn("image %s: kernel mount: %s; the daemon reads its files for now", name, err);
	return false;
}

/*
 * The kernel mount's root directory, made if needed: valid while the caller
 * holds HANDLE (it is closed with it). -EOPNOTSUPP when there is none.
 */
static int mounted_root(struct lz_sqfs_image *handle)
{
	pthread_mutex_lock(&handle->mount_lock);
	bool made = mount_locked(handle);
	int fd = handle->mount_fd >= 0 ? handle->mount_fd : -EOPNOTSUPP;
	pthread_mutex_unlock(&handle->mount_lock);
	struct lz_images *images = handle->images;
	if (made && images->on_mounted != NULL && handle->owner != NULL)
		images->on_mounted(images->on_mounted_ctx, handle->owner, handle->generation);
	return fd;
}

int lz_sqfs_image_kernel_root(struct lz_sqfs_image *handle)
{
	/* A remote image is fetched first: whether the kernel may mount it is known then. */
	if (lz_sqfs_image_fetch(handle) != 0)
		return -EIO;
	int root = handle->kernel ? mounted_root(handle) : -EOPNOTSUPP;

	if (root < 0)
		return root;
	int fd = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int lz_sqfs_image_open_file(struct lz_sqfs_image *handle, uint64_t id)
{
	struct stat st, got;
	int rc, anchor, fd;
	union {
		struct file_handle fh;
		char bytes[sizeof(struct file_handle) + 8];
	} h;
	uint32_t fid[2];

	if (!handle->kernel)
		return -EOPNOTSUPP;
	rc = lz_sqfs_image_stat(handle, id, &st);
	if (rc != 0)
		return rc;
	if (!S_ISREG(st.st_mode) || st.st_ino > UINT32_MAX)
		return -EOPNOTSUPP;
	anchor = mounted_root(handle);
	if (anchor < 0)
		return anchor;
	fid[0] = (uint32_t)st.st_ino;
	fid[1] = 0;
	h.fh.handle_bytes = sizeof(fid);
	h.fh.handle_type = FILEID_INO32_GEN;
	memcpy(h.fh.f_handle, fid, sizeof(fid));
	fd = open_by_handle_at(anchor, &h.fh, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	rc = fd < 0 ? -errno : 0;
	/* The very inode the reader saw: anything else is the daemon's to read. */
	if (fd >= 0 && (fstat(fd, &got) != 0 || got.st_ino != st.st_ino || !S_ISREG(got.st_mode) ||
			got.st_size != st.st_size)) {
		close(fd);
		fd = -1;
		rc = -ESTALE;
	}
	if (fd >= 0)
		return fd;
	lz_debug("image %s: inode %ju not opened in the kernel mount (%s); the daemon reads it",
		 handle->owner != NULL ? lz_image_name(handle->owner) : "?", (uintmax_t)st.st_ino,
		 strerror(-rc));
	return rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE ? rc : -EOPNOTSUPP;
}
