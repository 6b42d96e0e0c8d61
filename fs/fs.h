/* State of one mounted lazyfs, shared by the FUSE operations. */
#ifndef LAZYFS_FS_H
#define LAZYFS_FS_H

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "inode.h"
#include "options.h"

struct lz_fs {
	const struct lz_config *config;
	struct lz_inode_table *inodes;
	struct lz_inode *root;
	/* Cleared when the kernel or libfuse turn passthrough down; reads then come to us. */
	atomic_bool passthrough;
	atomic_bool passthrough_warned;
	/* open_mode=cached and the kernel can skip OPEN: answer the first one ENOSYS. */
	atomic_bool no_open;
};

/* The fuse_lowlevel_ops of lazyfs. */
extern const struct fuse_lowlevel_ops lz_ops;

static inline struct lz_fs *lz_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct lz_inode *lz_inode_of(fuse_req_t req, fuse_ino_t ino);

/* open.c */
void lz_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void lz_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void lz_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
