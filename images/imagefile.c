/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Image files checked before they are opened (imagefile.h).
 */
#include "config.h"
#include "imagefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Whether user UID could read a file of stat ST (its group aside: a conservative answer). */
static bool readable_by(const struct stat *st, uid_t uid)
{
	return uid == 0 || (st->st_mode & S_IROTH) ||
	       (st->st_uid == uid && (st->st_mode & S_IRUSR));
}

/*
 * The symlink NAME in DIR_FD, of stat LST: the O_PATH descriptor of where it
 * leads when the rule allows following it; -errno with WHY otherwise. The
 * kernel follows it, by the same name; the link found there after is checked
 * to be the one checked before, so a link swapped meanwhile is refused.
 */
static int follow(int dir_fd, const char *name, const struct stat *lst, char *why, size_t whylen)
{
	struct stat dir_st, again;
	/* A map entry's path (DIR_FD is AT_FDCWD) is root's: so must its link be. */
	uid_t dir_owner = 0;

	if (dir_fd != AT_FDCWD) {
		if (fstat(dir_fd, &dir_st) != 0)
			return -errno;
		dir_owner = dir_st.st_uid;
	}
	if (lst->st_uid != 0 && lst->st_uid != dir_owner) {
		snprintf(why, whylen,
			 "a symlink owned by uid %u, neither root nor the directory's owner",
			 (unsigned)lst->st_uid);
		return -EPERM;
	}
	int fd = openat(dir_fd, name, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(dir_fd, name, &again, AT_SYMLINK_NOFOLLOW) != 0 ||
	    again.st_ino != lst->st_ino || again.st_dev != lst->st_dev) {
		close(fd);
		snprintf(why, whylen, "the symlink changed while it was followed");
		return -EPERM;
	}
	return fd;
}

int lz_open_image_file(int dir_fd, const char *name, struct stat *st, char *why, size_t whylen)
{
	struct stat lst;
	char proc[64];
	int link, file, fd;

	why[0] = '\0';
	link = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (link < 0)
		return -errno;
	if (fstat(link, &lst) != 0) {
		int err = -errno;
		close(link);
		return err;
	}
	file = S_ISLNK(lst.st_mode) ? follow(dir_fd, name, &lst, why, whylen) : link;
	if (file != link)
		close(link);
	if (file < 0)
		return file;
	fd = fstat(file, st) == 0 ? 0 : -errno;
	if (fd == 0 && !S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "not a regular file");
		fd = -EINVAL;
	} else if (fd == 0 && S_ISLNK(lst.st_mode) && !readable_by(st, lst.st_uid)) {
		snprintf(why, whylen, "a symlink by uid %u to a file uid %u cannot read",
			 (unsigned)lst.st_uid, (unsigned)lst.st_uid);
		fd = -EPERM;
	}
	if (fd == 0) {
		/* The very inode checked, opened for reading. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", file);
		fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		fd = fd >= 0 ? fd : -errno;
	}
	close(file);
	return fd;
}
