/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Extended attributes and who may see their names (xattr.h).
 */
#include "config.h"
#include "xattr.h"
#include "attr.h"
#include "underlay.h"
#include "common/access.h"
#include "images/sqfs.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ACL_ACCESS  "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"
/* The kernel asks for an ACL with one page; a larger one it refuses (E2BIG). */
#define ACL_MAX 4096

static bool prefixed(const char *name, const char *prefix)
{
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

static bool acl_name(const char *name)
{
	return strcmp(name, ACL_ACCESS) == 0 || strcmp(name, ACL_DEFAULT) == 0;
}

/* What the backing holds, unchanged. Symlinks answer from the link itself: their proc path
 * would lead to the target. */
static ssize_t backing_xattr(struct lz_fs *fs, struct lz_inode *inode, const char *name, char *buf,
			     size_t size)
{
	char path[64];
	ssize_t len;
	int fd;

	/*
	 * An image without extended attributes says so: "not supported" makes
	 * ls(1) and the like stop asking the device (the kernel forgets it at
	 * once: only ENOSYS would stop it asking the whole mount).
	 */
	if (inode->image != NULL && lz_image_no_xattrs(inode->image))
		return name ? -EOPNOTSUPP : 0;
	/* A remote image's root is listed before its image is fetched: nothing to say yet. */
	if (inode->kind == LZ_INODE_SQFS && !lz_sqfs_image_fetched(inode->sqfs))
		return name ? -ENODATA : 0;
	if (inode->kind == LZ_INODE_SQFS) {
		struct lz_sqfs *reader = lz_sqfs_image_reader(inode->sqfs);
		if (reader == NULL)
			return -EIO;
		return name ? lz_sqfs_getxattr(reader, inode->sqfs_id, name, buf, size)
			    : lz_sqfs_listxattr(reader, inode->sqfs_id, buf, size);
	}
	if (S_ISLNK(inode->type) || inode->kind != LZ_INODE_FD)
		return name ? -ENODATA : 0;
	if ((fd = lz_inode_path_get(fs->inodes, inode)) < 0)
		return fd;
	lz_backing_proc_path(fd, path, sizeof(path));
	len = name ? getxattr(path, name, buf, size) : listxattr(path, buf, size);
	len = len < 0 ? -errno : len;
	lz_inode_path_put(fs->inodes, inode);
	return len;
}

ssize_t lz_inode_xattr(struct lz_fs *fs, struct lz_inode *inode, const char *name, char *buf,
		       size_t size)
{
	bool acl = name != NULL && acl_name(name);
	ssize_t len;

	if (acl && !atomic_load(&fs->acl))
		return -EOPNOTSUPP;
	len = backing_xattr(fs, inode, name, buf, size);
	/* A backing without ACLs (an image, a filesystem mounted without them) has none. */
	return acl && len == -EOPNOTSUPP ? -ENODATA : len;
}

bool lz_xattr_needs_caller(const char *list, size_t len)
{
	for (size_t at = 0; at < len; at += strnlen(list + at, len - at) + 1)
		if (prefixed(list + at, "trusted.") || prefixed(list + at, "user."))
			return true;
	return false;
}

/* Whether C may read INODE, as the kernel decides it (mode bits, the ACL when enforced). */
static bool may_read(struct lz_fs *fs, struct lz_inode *inode, const struct lz_caller *c)
{
	char acl[ACL_MAX];
	struct stat st;
	ssize_t len = 0;

	if (lz_inode_getattr(fs, inode, &st) != 0)
		return false;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return false; /* user.* is for files and directories only */
	if (atomic_load(&fs->acl)) {
		len = lz_inode_xattr(fs, inode, ACL_ACCESS, acl, sizeof(acl));
		if (len == -ENODATA)
			len = 0;
		else if (len < 0)
			return false; /* the kernel would refuse the read with this error */
	}
	return lz_may_access(c, &st, acl, (size_t)len, LZ_MAY_READ);
}

size_t lz_xattr_visible(struct lz_fs *fs, struct lz_inode *inode, const struct lz_caller *c,
			char *list, size_t len)
{
	size_t out = 0;
	int readable = -1; /* user.*: decided at the first such name */

	for (size_t at = 0; at < len;) {
		const char *name = list + at;
		size_t n = strnlen(name, len - at);
		bool keep;
		if (prefixed(name, "security."))
			keep = true;
		else if (prefixed(name, "system."))
			keep = !acl_name(name) || atomic_load(&fs->acl);
		else if (prefixed(name, "trusted."))
			keep = c != NULL && lz_caller_capable(c, LZ_CAP_SYS_ADMIN);
		else if (prefixed(name, "user.") && c != NULL) {
			if (readable < 0)
				readable = may_read(fs, inode, c);
			keep = readable;
		} else
			keep = false; /* no other namespace can be read */
		if (keep && n < len - at) {
			memmove(list + out, name, n + 1);
			out += n + 1;
		}
		at += n + 1;
	}
	return out;
}
