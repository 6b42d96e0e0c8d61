/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "attr.h"
#include "lookup.h"
#include "objects.h"
#include "underlay.h"
#include "images/sqfs.h"

#include <errno.h>
#include <unistd.h>

int lz_inode_getattr(struct lz_fs *fs, struct lz_inode *inode, struct stat *st)
{
	int err = 0;

	switch (inode->kind) {
	case LZ_INODE_SYNTH:
		lz_synth_stat(fs, inode->nodeid, st);
		return 0;
	case LZ_INODE_REMOTE:
		lz_objects_stat(inode, st);
		return 0;
	case LZ_INODE_SQFS:
		err = lz_sqfs_image_stat(inode->sqfs, inode->sqfs_id, st);
		break;
	case LZ_INODE_FD: {
		int fd = lz_inode_path_get(fs->inodes, inode);
		if (fd < 0)
			return fd;
		err = lz_backing_stat(fd, st);
		lz_inode_path_put(fs->inodes, inode);
		break;
	}
	}
	if (err != 0)
		return err;
	st->st_ino = inode->nodeid;
	if (inode->image != NULL)
		lz_image_touch(inode->image);
	return 0;
}

int lz_inode_readlink(struct lz_fs *fs, struct lz_inode *inode, char *buf, size_t size)
{
	ssize_t len;
	int fd;

	if (inode->kind == LZ_INODE_SQFS) {
		struct lz_sqfs *reader = lz_sqfs_image_reader(inode->sqfs);
		return reader ? lz_sqfs_readlink(reader, inode->sqfs_id, buf, size) : -EIO;
	}
	if (inode->kind != LZ_INODE_FD)
		return -EINVAL;
	if ((fd = lz_inode_path_get(fs->inodes, inode)) < 0)
		return fd;
	len = readlinkat(fd, "", buf, size);
	len = len < 0 ? -errno : len;
	lz_inode_path_put(fs->inodes, inode);
	if (len < 0)
		return (int)len;
	if ((size_t)len >= size)
		return -ENAMETOOLONG;
	buf[len] = '\0';
	return 0;
}

int lz_inode_statfs(struct lz_fs *fs, struct lz_inode *inode, struct statvfs *sv)
{
	int fd, err;

	if (inode == NULL || inode->kind != LZ_INODE_FD)
		inode = fs->root;
	if ((fd = lz_inode_path_get(fs->inodes, inode)) < 0)
		return fd;
	err = fstatvfs(fd, sv) == 0 ? 0 : -errno;
	lz_inode_path_put(fs->inodes, inode);
	return err;
}
