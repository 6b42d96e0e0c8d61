/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GETXATTR and LISTXATTR. A value is served as the backing holds it: the
 * kernel checked the caller's right to it before sending the request
 * (fscore/xattr.h). A list is cut to the names the requesting process could
 * read, which needs its credentials: the request carries its uid, gid and
 * pid, /proc/PID/status the rest (groups, capabilities). When they cannot be
 * learnt, or are not the request's (the pid is another process's by now, or
 * the kernel asks with credentials other than the process's own), the list
 * keeps only what anyone may read.
 */
#include "config.h"
#include "ops.h"
#include "common/caller.h"
#include "fscore/xattr.h"

#include <errno.h>
#include <stdlib.h>

void lz_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	char *buf = NULL;
	ssize_t len;

	if (inode == NULL)
		return;
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = lz_inode_xattr(lz_fs_of(req), inode, name, buf, size);
	if (len < 0)
		fuse_reply_err(req, (int)-len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, buf, (size_t)len);
	free(buf);
}

/* Every name INODE holds, in *LIST (malloc'd): its length, or -errno. */
static ssize_t all_names(struct lz_fs *fs, struct lz_inode *inode, char **list)
{
	/* The list may grow between asking its size and reading it: ask again. */
	for (int tries = 0; tries < 4; tries++) {
		ssize_t len = lz_inode_xattr(fs, inode, NULL, NULL, 0), got;
		if (len < 0)
			return len;
		if ((*list = malloc((size_t)len + 1)) == NULL)
			return -ENOMEM;
		got = len == 0 ? 0 : lz_inode_xattr(fs, inode, NULL, *list, (size_t)len);
		if (got != -ERANGE)
			return got;
		free(*list);
		*list = NULL;
	}
	return -ERANGE;
}

/* The credentials of the process REQ is for; NULL when they cannot be trusted. */
static const struct lz_caller *caller_of(fuse_req_t req, struct lz_caller *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (lz_caller_read(ctx->pid, c) != 0)
		return NULL;
	if (c->uid[LZ_ID_FS] != ctx->uid || c->gid[LZ_ID_FS] != ctx->gid)
		return NULL;
	return c;
}

void lz_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	struct lz_caller *c = NULL;
	char *list = NULL;
	ssize_t len;

	if (inode == NULL)
		return;
	len = all_names(fs, inode, &list);
	if (len > 0 && lz_xattr_needs_caller(list, (size_t)len) && (c = malloc(sizeof(*c))) == NULL)
		len = -ENOMEM;
	if (len > 0)
		len = (ssize_t)lz_xattr_visible(fs, inode, c ? caller_of(req, c) : NULL, list,
						(size_t)len);
	if (len < 0)
		fuse_reply_err(req, (int)-len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, (size_t)len);
	free(c);
	free(list);
}
