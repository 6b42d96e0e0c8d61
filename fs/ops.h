/*
 * The FUSE glue: the only code that sees FUSE requests. Each operation finds
 * its inode, asks the core (fscore/) and ends in exactly one reply; the core's
 * -errno becomes the reply's error here and nowhere else.
 */
#ifndef LAZYFS_OPS_H
#define LAZYFS_OPS_H

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>

#include "daemon.h"
#include "fscore/fs.h"
#include "fscore/lookup.h"

/* The fuse_lowlevel_ops of lazyfs; the session's userdata is the struct lz_daemon. */
extern const struct fuse_lowlevel_ops lz_ops;

static inline struct lz_daemon *lz_daemon_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct lz_fs *lz_fs_of(fuse_req_t req)
{
	return &lz_daemon_of(req)->fs;
}

/* The inode of node id INO, or NULL. */
struct lz_inode *lz_inode_of(fuse_req_t req, fuse_ino_t ino);
/* lz_inode_of, answering ESTALE itself when the node id is unknown. */
struct lz_inode *lz_inode_or_estale(fuse_req_t req, fuse_ino_t ino);
/* The core's entry as libfuse takes it. */
void lz_fuse_entry(const struct lz_entry *e, struct fuse_entry_param *out);

/* dir.c */
void lz_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void lz_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		   struct fuse_file_info *fi);
void lz_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi);
void lz_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* open.c */
void lz_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void lz_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void lz_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
