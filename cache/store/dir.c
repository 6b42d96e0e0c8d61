/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The store's directory: created or checked, locked against a second
 * process, its layout made, leftovers of unfinished fills removed.
 */

static int remove_tree(int fd, int depth)
{
	int copy = dup(fd), rc = 0;
	struct dirent *de;
	DIR *d;

	if (copy < 0)
		return -errno;
	d = fdopendir(copy);
	if (d == NULL) {
		close(copy);
		return -errno;
	}
	rewinddir(d); /* the copy shares FD's offset, wherever an earlier walk left it */
	while ((de = readdir(d)) != NULL) {
		int sub, r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR || depth >= 16) {
			rc = errno == EISDIR ? -ELOOP : -errno;
			continue;
		}
		sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			rc = -errno;
			continue;
		}
		r = remove_tree(sub, depth + 1);
		close(sub);
		if (r < 0)
			rc = r;
		if (unlinkat(fd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			rc = -errno;
	}
	closedir(d);
	return rc;
}

int lz_remove_tree(int fd)
{
	return remove_tree(fd, 0);
}

/* Creates (0700) and opens DIR's subdirectory NAME, refusing anything but a directory. */
static int open_sub(struct lz_store *s, int parent, const char *name, int *out, char *err,
		    size_t errlen)
{
	int fd;

	if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST) {
		lz_seterr(err, errlen, "cannot create %s/%s: %s", s->dir, name, strerror(errno));
		return -errno;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		lz_seterr(err, errlen, "%s/%s: %s", s->dir, name,
			  e == ELOOP || e == ENOTDIR ? "not a directory (refusing it)"
						     : strerror(e));
		return -e;
	}
	*out = fd;
	return 0;
}

static int open_root(struct lz_store *s, const char *dir, char *err, size_t errlen)
{
	struct stat st;
	char real[PATH_MAX];

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		lz_seterr(err, errlen, "cannot create cache directory %s: %s", dir,
			  strerror(errno));
		return -errno;
	}
	if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
		lz_seterr(err, errlen,
			  "cache directory %s is a symlink: refusing it (give its real path)", dir);
		return -ELOOP;
	}
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dir_fd < 0) {
		int e = errno;
		lz_seterr(err, errlen, "cache directory %s: %s", dir,
			  e == ELOOP ? "a symlink (refusing it)" : strerror(e));
		return -e;
	}
	if (fstat(s->dir_fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid()) {
		lz_seterr(err, errlen,
			  "cache directory %s is owned by uid %u, not uid %u: refusing it", dir,
			  (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if ((st.st_mode & 07777) != 0700 && fchmod(s->dir_fd, 0700) < 0) {
		lz_seterr(err, errlen, "cannot chmod 0700 %s: %s", dir, strerror(errno));
		return -errno;
	}
	/* Two daemons on one directory would clean each other's fills away. */
	if (flock(s->dir_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		lz_seterr(err, errlen, "cache directory %s: %s", dir,
			  e == EWOULDBLOCK ? "in use by another process" : strerror(e));
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}
	/* Fetchers get absolute temporary paths, valid whatever the working directory. */
	if (realpath(dir, real) == NULL || (s->dir = strdup(real)) == NULL) {
		lz_seterr(err, errlen, "cache directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

int lz_obj_dir(struct lz_store *s, const char *path)
{
	char sub[3] = { path[0], path[1], '\0' };
	int fd = openat(s->objects_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int lz_obj_open(struct lz_store *s, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, s->objects_fd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

int lz_obj_unlink(struct lz_store *s, const char *path)
{
	int dfd = lz_obj_dir(s, path), rc = 0;

	if (dfd < 0)
		return dfd;
	if (unlinkat(dfd, path + 3, 0) < 0)
		rc = -errno;
	close(dfd);
	return rc;
}

int lz_dir_open(struct lz_store *s, const char *dir, char *err, size_t errlen)
{
	int rc = open_root(s, dir, err, errlen);

	if (rc == 0)
		rc = open_sub(s, s->dir_fd, "objects", &s->objects_fd, err, errlen);
	if (rc == 0)
		rc = open_sub(s, s->dir_fd, "tmp", &s->tmp_fd, err, errlen);
	for (int i = 0; rc == 0 && i < 256; i++) {
		char sub[3];
		struct stat st;

		snprintf(sub, sizeof(sub), "%02x", i);
		if (mkdirat(s->objects_fd, sub, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			lz_seterr(err, errlen, "cannot create %s/objects/%s: %s", s->dir, sub,
				  strerror(errno));
		} else if (fstatat(s->objects_fd, sub, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			   !S_ISDIR(st.st_mode)) {
			rc = -ENOTDIR;
			lz_seterr(err, errlen, "%s/objects/%s is not a directory: refusing it",
				  s->dir, sub);
		}
	}
	if (rc == 0) {
		/* Fills of a previous run that never finished: none is visible, none is needed. */
		lz_remove_tree(s->tmp_fd);
		unlinkat(s->dir_fd, "index.tmp", 0);
		unlinkat(s->dir_fd, "clean.tmp", 0);
	}
	return rc;
}
