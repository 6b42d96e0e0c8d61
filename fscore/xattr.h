/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Extended attributes of an inode, whatever backs it, and which of them a
 * caller may see.
 *
 * POSIX ACLs (system.posix_acl_access and _default): the underlay's are
 * served as they are; images hold none (squashfs has no place for them:
 * mksquashfs drops them, and the kernel's squashfs enforces none), nor do
 * the remote's objects and the map's directories. With ACLs on (fs->acl,
 * the kernel enforcing them through FUSE_POSIX_ACL) a file without one
 * answers ENODATA, never EOPNOTSUPP: the kernel's permission check takes
 * any answer but "no data" as an error and refuses access. With ACLs off
 * they are neither served nor listed (EOPNOTSUPP): the kernel checks mode
 * bits only, and getfacl must not show an ACL that nothing enforces.
 *
 * Reading one attribute is not checked here: the kernel's VFS checks it
 * before the request is sent (xattr_permission: trusted.* without
 * CAP_SYS_ADMIN gets ENODATA, user.* without read permission EACCES), with
 * the credentials the request is made with, including the kernel's own
 * (an ACL fetched for a permission check, security.capability at exec).
 * Listing is: the kernel passes it on unchecked, and the daemon reads with
 * every capability. Calls return a length or -errno.
 */
#ifndef LAZYFS_XATTR_H
#define LAZYFS_XATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fs.h"
#include "common/caller.h"

/*
 * Extended attribute NAME of INODE (NAME NULL: the NUL-separated list of
 * names) into BUF, as getxattr(2) and listxattr(2): its length (with SIZE 0
 * only the length), or -errno. The list is everything INODE holds (see
 * lz_xattr_visible).
 */
ssize_t lz_inode_xattr(struct lz_fs *fs, struct lz_inode *inode, const char *name, char *buf,
		       size_t size);

/* Whether LIST (LEN bytes, as listxattr gives it) holds names only some callers may see. */
bool lz_xattr_needs_caller(const char *list, size_t len);

/*
 * Keeps in LIST (LEN bytes, as listxattr gives it), in order, the names
 * caller C could read, by the kernel's rule: security.* and system.* all
 * (the ACL names only with ACLs on); trusted.* with CAP_SYS_ADMIN; user.*
 * on a regular file or directory the caller may read, by its mode and ACL.
 * C NULL (its credentials could not be learnt): security.* and system.*
 * only. The new length.
 */
size_t lz_xattr_visible(struct lz_fs *fs, struct lz_inode *inode, const struct lz_caller *c,
			char *list, size_t len);

#endif
