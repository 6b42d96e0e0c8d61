/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel's permission rule for a file (generic_permission in
 * fs/namei.c, posix_acl_permission in fs/posix_acl.c), for decisions the
 * daemon makes on a caller's behalf: the owner's bits for the owner; else
 * the POSIX access ACL when there is one and the mode has group bits; else
 * the group's bits for a member of the file's group, the others' bits for
 * the rest; CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH for reading) over
 * all of it. An ACL is given as the kernel stores it in the
 * system.posix_acl_access attribute (<linux/posix_acl_xattr.h>).
 */
#ifndef LAZYFS_ACCESS_H
#define LAZYFS_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "caller.h"

#define LZ_MAY_EXEC  1
#define LZ_MAY_WRITE 2
#define LZ_MAY_READ  4

/*
 * Whether caller C may do WANT (LZ_MAY_*) to a file of attributes ST whose
 * access ACL is ACL (LEN bytes; NULL or LEN 0: none). A malformed ACL
 * permits nothing (the kernel answers EINVAL or EIO).
 */
bool lz_may_access(const struct lz_caller *c, const struct stat *st, const void *acl, size_t len,
		   unsigned want);

/*
 * Whether ACL (LEN bytes) is well formed, as posix_acl_valid checks it: the
 * version, one owner, group and other entry, named entries in order without
 * duplicates, and a mask whenever there are named entries.
 */
bool lz_acl_valid(const void *acl, size_t len);

#endif
