/*
 * What an inode says about itself, whatever backs it (the underlay, a
 * kernel-mounted image, a squashfuse image, the remote, the map): its
 * attributes, a symlink's target, extended attributes, the filesystem's
 * numbers. Calls return 0 (or a length) or -errno.
 */
#ifndef LAZYFS_ATTR_H
#define LAZYFS_ATTR_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "fs.h"

/* INODE's attributes, st_ino its node id; an access to its image. */
int lz_inode_getattr(struct lz_fs *fs, struct lz_inode *inode, struct stat *st);
/* The NUL-terminated target of symlink INODE in BUF: 0, -EINVAL, -ENAMETOOLONG, -errno. */
int lz_inode_readlink(struct lz_fs *fs, struct lz_inode *inode, char *buf, size_t size);
/*
 * Extended attribute NAME of INODE (NAME NULL: the NUL-separated list of
 * names) into BUF, as getxattr(2) and listxattr(2): its length (with SIZE 0
 * only the length), or -errno.
 */
ssize_t lz_inode_xattr(struct lz_fs *fs, struct lz_inode *inode, const char *name, char *buf,
		       size_t size);
/* The numbers of the filesystem behind INODE (the underlay's for the others). */
int lz_inode_statfs(struct lz_fs *fs, struct lz_inode *inode, struct statvfs *sv);

#endif
