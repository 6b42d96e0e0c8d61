/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The kernel's permission rule, mode bits and POSIX ACLs (access.h).
 */
#include "config.h"
#include "access.h"

#include <endian.h>
#include <stdint.h>
#include <string.h>

/* <linux/posix_acl_xattr.h> and <linux/posix_acl.h>: the stored form, little-endian. */
#define ACL_XATTR_VERSION 2
enum {
	TAG_USER_OBJ = 0x01,
	TAG_USER = 0x02,
	TAG_GROUP_OBJ = 0x04,
	TAG_GROUP = 0x08,
	TAG_MASK = 0x10,
	TAG_OTHER = 0x20
};

struct entry {
	unsigned tag, perm;
	uint32_t id;
};

static size_t entries(size_t len)
{
	return len < 4 || (len - 4) % 8 != 0 ? 0 : (len - 4) / 8;
}

static struct entry entry_at(const unsigned char *acl, size_t i)
{
	const unsigned char *p = acl + 4 + i * 8;
	uint16_t tag, perm;
	uint32_t id;

	memcpy(&tag, p, 2);
	memcpy(&perm, p + 2, 2);
	memcpy(&id, p + 4, 4);
	return (struct entry){ le16toh(tag), le16toh(perm), le32toh(id) };
}

bool lz_acl_valid(const void *acl, size_t len)
{
	size_t n = entries(len);
	uint32_t version;
	unsigned state = TAG_USER_OBJ;
	bool named = false, mask = false;

	if (n == 0)
		return false;
	memcpy(&version, acl, 4);
	if (le32toh(version) != ACL_XATTR_VERSION)
		return false;
	/* Entries come in tag order: owner, users, group, groups, mask, other. */
	for (size_t i = 0; i < n; i++) {
		struct entry e = entry_at(acl, i);
		if (e.perm & ~7u)
			return false;
		switch (e.tag) {
		case TAG_USER_OBJ:
			if (state != TAG_USER_OBJ)
				return false;
			state = TAG_USER;
			break;
		case TAG_USER:
			if (state != TAG_USER)
				return false;
			named = true;
			break;
		case TAG_GROUP_OBJ:
			if (state != TAG_USER)
				return false;
			state = TAG_GROUP;
			break;
		case TAG_GROUP:
			if (state != TAG_GROUP)
				return false;
			named = true;
			break;
		case TAG_MASK:
			if (state != TAG_GROUP)
				return false;
			state = TAG_OTHER;
			mask = true;
			break;
		case TAG_OTHER:
			if (state != TAG_OTHER && !(state == TAG_GROUP && !named))
				return false;
			state = 0;
			break;
		default:
			return false;
		}
	}
	return state == 0 && (!named || mask);
}

/* The mask's bits when ACL has a mask entry, else all. */
static unsigned mask_of(const unsigned char *acl, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct entry e = entry_at(acl, i);
		if (e.tag == TAG_MASK)
			return e.perm;
	}
	return 7;
}

/* posix_acl_permission for a caller who does not own the file (its owner has the owner's bits). */
static bool acl_permits(const struct lz_caller *c, const struct stat *st, const unsigned char *acl,
			size_t n, unsigned want)
{
	unsigned mask = mask_of(acl, n);
	bool found = false;

	for (size_t i = 0; i < n; i++) {
		struct entry e = entry_at(acl, i);
		switch (e.tag) {
		case TAG_USER:
			if (e.id == c->uid[LZ_ID_FS])
				return (e.perm & mask & want) == want;
			break;
		case TAG_GROUP_OBJ:
		case TAG_GROUP:
			/*
			 * One matching entry that grants is enough; when entries
			 * match and none grants, the others' entry does not count.
			 */
			if (lz_caller_in_group(c, e.tag == TAG_GROUP ? e.id : st->st_gid)) {
				found = true;
				if ((e.perm & mask & want) == want)
					return true;
			}
			break;
		case TAG_OTHER:
			return !found && (e.perm & want) == want;
		default:
			break;
		}
	}
	return false;
}

bool lz_may_access(const struct lz_caller *c, const struct stat *st, const void *acl, size_t len,
		   unsigned want)
{
	unsigned mode = st->st_mode;
	bool granted;

	want &= 7;
	if (st->st_uid == c->uid[LZ_ID_FS]) {
		granted = ((mode >> 6) & want) == want;
	} else if (acl != NULL && len > 4 && (mode & S_IRWXG)) {
		if (!lz_acl_valid(acl, len))
			return false;
		granted = acl_permits(c, st, acl, entries(len), want);
	} else if (lz_caller_in_group(c, st->st_gid)) {
		granted = ((mode >> 3) & want) == want;
	} else {
		granted = (mode & want) == want;
	}
	if (granted)
		return true;
	/*
	 * generic_permission's overrides (the file's ids are mapped in the
	 * initial namespace, so capable_wrt_inode_uidgid is capable): reading
	 * and searching a directory, reading a file; anything but executing a
	 * file no one may execute.
	 */
	if (S_ISDIR(mode) ? !(want & LZ_MAY_WRITE) : want == LZ_MAY_READ)
		if (lz_caller_capable(c, LZ_CAP_DAC_READ_SEARCH))
			return true;
	return (S_ISDIR(mode) || !(want & LZ_MAY_EXEC) || (mode & 0111)) &&
	       lz_caller_capable(c, LZ_CAP_DAC_OVERRIDE);
}
