/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What an inode says about itself, whatever backs it (the underlay, a
 * kernel-mounted image, a squashfuse image, the remote, the map): its
 * attributes, a symlink's target, the filesystem's numbers (extended
 * attributes: xattr.h). Calls return 0 (or a length) or -errno.
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
/* The numbers of the filesystem behind INODE (the underlay's for the others). */
int lz_inode_statfs(struct lz_fs *fs, struct lz_inode *inode, struct statvfs *sv);

#endif
