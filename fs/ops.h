/* SPDX-License-Identifier: BSD-2-Clause */
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

/* What lz_serve_begin records, by the kernel's opcode (a part of each request's signature). */
enum lz_op {
	LZ_OP_LOOKUP = 1,
	LZ_OP_GETATTR = 3,
	LZ_OP_READLINK = 5,
	LZ_OP_OPEN = 14,
	LZ_OP_READ = 15,
	LZ_OP_GETXATTR = 22,
	LZ_OP_LISTXATTR = 23,
	LZ_OP_OPENDIR = 27,
	LZ_OP_READDIR = 28,
	LZ_OP_READDIRPLUS = 44,
};

struct lz_inflight;
struct lz_served {
	struct lz_inflight *inflight;
	int slot;
};

/*
 * Records the request in flight (OP on INO, with NAME or NULL) for the keeper
 * (upgrade/inflight.h): true to serve it, then lz_serve_end once it was
 * answered; false when it is poison, answered EIO here.
 */
bool lz_serve_begin(fuse_req_t req, enum lz_op op, fuse_ino_t ino, const char *name,
		    struct lz_served *s);
void lz_serve_end(const struct lz_served *s);

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

/* xattr.c */
void lz_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void lz_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

/* open.c */
void lz_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/*
 * open_cold.c: when opening INODE would fetch a remote object, hands the OPEN
 * to the fetch pool, which answers it (true); false: open it here.
 */
bool lz_open_cold(fuse_req_t req, struct lz_inode *inode, fuse_ino_t ino,
		  const struct fuse_file_info *fi);
void lz_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void lz_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
