/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "underlay.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int lz_backing_open_path(int dir_fd, const char *name)
{
	/* NO_SYMLINKS still returns the link itself for O_PATH|O_NOFOLLOW. */
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dir_fd, name, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

int lz_backing_stat(int path_fd, struct stat *st)
{
	if (fstatat(path_fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	return 0;
}

void lz_backing_proc_path(int path_fd, char *buf, size_t size)
{
	snprintf(buf, size, "/proc/self/fd/%d", path_fd);
}

int lz_backing_reopen(int path_fd, int flags)
{
	char path[64];
	int fd;

	/* An O_PATH descriptor cannot be read; its proc link reopens the same file. */
	lz_backing_proc_path(path_fd, path, sizeof(path));
	fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}
