/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "kmount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

/* Another process can take the free device between GET_FREE and CONFIGURE. */
#define LOOP_ATTEMPTS 16

/*
 * Our own threads take loop devices one at a time: GET_FREE names the same
 * device to every thread asking at once, and with dozens of images resolving
 * together (parallel lookups at the root) 16 attempts were not enough for all
 * of them. Attaching takes a few hundred microseconds; the mount itself
 * still runs in parallel.
 */
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;

static int attach_loop_locked(int image_fd, char *dev, size_t devlen, char *err, size_t errlen);

static int attach_loop(int image_fd, char *dev, size_t devlen, char *err, size_t errlen)
{
	pthread_mutex_lock(&attach_lock);
	int rc = attach_loop_locked(image_fd, dev, devlen, err, errlen);
	pthread_mutex_unlock(&attach_lock);
	return rc;
}

static int attach_loop_locked(int image_fd, char *dev, size_t devlen, char *err, size_t errlen)
{
	struct loop_config config = {
		.fd = (unsigned)image_fd,
		.info = { .lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR },
	};
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), missing = 0;

	if (ctl < 0) {
		int e = errno;
		snprintf(err, errlen, "/dev/loop-control: %s", strerror(e));
		return -e;
	}
	for (int attempt = 0; attempt < LOOP_ATTEMPTS; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			int e = errno;
			close(ctl);
			snprintf(err, errlen, "no free loop device: %s", strerror(e));
			return -e;
		}
		snprintf(dev, devlen, "/dev/loop%d", n);
		int loop = open(dev, O_RDONLY | O_CLOEXEC);
		if (loop < 0) {
			/* A new device's node may not be there yet; or never, in a container. */
			if (errno == ENOENT || errno == ENXIO) {
				missing++;
				continue;
			}
			int e = errno;
			close(ctl);
			snprintf(err, errlen, "%s: %s", dev, strerror(e));
			return -e;
		}
		if (ioctl(loop, LOOP_CONFIGURE, &config) == 0) {
			close(ctl);
			return loop;
		}
		int e = errno;
		close(loop);
		if (e != EBUSY) {
			close(ctl);
			snprintf(err, errlen, "%s: LOOP_CONFIGURE: %s", dev, strerror(e));
			return -e;
		}
	}
	close(ctl);
	if (missing == LOOP_ATTEMPTS) {
		snprintf(err, errlen, "%s: no such device node", dev);
		return -ENOENT;
	}
	snprintf(err, errlen, "every free loop device was taken by others");
	return -EBUSY;
}

/* The kernel explains a failed fsconfig on the fs context descriptor. */
static void context_message(int fsfd, const char *what, int e, char *err, size_t errlen)
{
	char msg[256];
	ssize_t n = read(fsfd, msg, sizeof(msg) - 1);

	if (n > 2) {
		msg[n] = '\0';
		msg[strcspn(msg, "\n")] = '\0';
		snprintf(err, errlen, "%s: %s", what, msg + 2); /* skip the "e " prefix */
	} else {
		snprintf(err, errlen, "%s: %s", what, strerror(e));
	}
}

int lz_kmount_squashfs(int image_fd, char *err, size_t errlen)
{
	char dev[32];
	int loop, fsfd, mnt, e;

	loop = attach_loop(image_fd, dev, sizeof(dev), err, errlen);
	if (loop < 0)
		return loop;
	fsfd = fsopen("squashfs", FSOPEN_CLOEXEC);
	if (fsfd < 0) {
		e = errno;
		close(loop);
		snprintf(err, errlen, "fsopen squashfs: %s", strerror(e));
		return -e;
	}
	/* "ro" is mandatory: a read-only loop device refuses a read-write superblock. */
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", dev, 0) == -1 ||
	    fsconfig(fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) == -1 ||
	    fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == -1) {
		e = errno;
		context_message(fsfd, "not a valid squashfs image", e, err, errlen);
		close(fsfd);
		close(loop);
		return -(e == EINVAL ? EIO : e);
	}
	mnt = fsmount(fsfd, FSMOUNT_CLOEXEC,
		      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
	e = errno;
	close(fsfd);
	/* The superblock holds the block device now; autoclear frees it with the mount. */
	close(loop);
	if (mnt < 0) {
		snprintf(err, errlen, "fsmount: %s", strerror(e));
		return -e;
	}
	return mnt;
}

int lz_kmount_available(void)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	int fsfd;

	if (ctl < 0)
		return 0;
	close(ctl);
	fsfd = fsopen("squashfs", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return 0;
	close(fsfd);
	return 1;
}
