/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the superblock of a squashfs image says, read and checked before
 * libsquashfuse reads anything of the image (it trusts positions and sizes).
 */
#include "config.h"
#include "sqfs.h"
#include "squashfuse_inc.h"
#include "superblock.h"
#include "common/error.h"

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lz_sqfs_features(int fd, struct lz_sqfs_features *out)
{
	struct squashfs_super_block sb;

	if (pread(fd, &sb, sizeof(sb), 0) != (ssize_t)sizeof(sb) ||
	    le32toh(sb.s_magic) != SQUASHFS_MAGIC || le16toh(sb.s_major) != 4)
		return -EIO;
	out->xattrs = (int64_t)le64toh(sb.xattr_id_table_start) != SQUASHFS_INVALID_BLK;
	out->exports = (int64_t)le64toh(sb.lookup_table_start) != SQUASHFS_INVALID_BLK;
	return 0;
}

/* Superblock sanity beyond what sqfs_init checks; NULL when fine, else what is wrong. */
static const char *superblock_problem(const struct squashfs_super_block *sb, uint64_t bytes_used)
{
	uint32_t bs = le32toh(sb->block_size);
	uint64_t inode_table = le64toh(sb->inode_table_start);
	uint64_t dir_table = le64toh(sb->directory_table_start);

	if (bs < 4096 || bs > SQUASHFS_FILE_MAX_SIZE || (bs & (bs - 1)) != 0 ||
	    le16toh(sb->block_log) > 20 || (UINT32_C(1) << le16toh(sb->block_log)) != bs)
		return "block size";
	if (bytes_used < LZ_SQFS_SB_SIZE || inode_table < LZ_SQFS_SB_SIZE ||
	    inode_table >= dir_table || dir_table >= bytes_used)
		return "table positions";
	if (le64toh(sb->id_table_start) >= bytes_used || le16toh(sb->no_ids) == 0)
		return "id table";
	if (le32toh(sb->fragments) != 0 && le64toh(sb->fragment_table_start) >= bytes_used)
		return "fragment table";
	if (le64toh(sb->xattr_id_table_start) != (uint64_t)SQUASHFS_INVALID_BLK &&
	    le64toh(sb->xattr_id_table_start) >= bytes_used)
		return "xattr table";
	if (le32toh(sb->inodes) == 0)
		return "inode count";
	return NULL;
}

int lz_sqfs_check_superblock(int fd, uint64_t *bytes_used, char *err, size_t errlen)
{
	struct squashfs_super_block sb;
	struct stat st;
	uint64_t file_size;
	const char *problem;

	if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		lz_seterr(err, errlen, "not a regular file");
		return -EINVAL;
	}
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		file_size = end < 0 ? 0 : (uint64_t)end;
	} else {
		file_size = (uint64_t)st.st_size;
	}
	ssize_t n = pread(fd, &sb, sizeof(sb), 0);
	if (n < 0) {
		int e = errno;
		lz_seterr(err, errlen, "cannot read: %s", strerror(e));
		return -e;
	}
	if (n < 4 || le32toh(sb.s_magic) != SQUASHFS_MAGIC) {
		lz_seterr(err, errlen, "not a squashfs image");
		return -EINVAL;
	}
	if ((size_t)n < sizeof(sb)) {
		lz_seterr(err, errlen, "truncated: %zd bytes, less than a superblock", n);
		return -EIO;
	}
	if (le16toh(sb.s_major) != SQUASHFS_MAJOR || le16toh(sb.s_minor) > SQUASHFS_MINOR) {
		lz_seterr(err, errlen, "squashfs %u.%u is not supported (only 4.0)",
			  le16toh(sb.s_major), le16toh(sb.s_minor));
		return -ENOTSUP;
	}
	*bytes_used = le64toh(sb.bytes_used);
	if (*bytes_used > file_size) {
		lz_seterr(err, errlen, "truncated: %ju of %ju bytes", (uintmax_t)file_size,
			  (uintmax_t)*bytes_used);
		return -EIO;
	}
	if (sqfs_decompressor_get(le16toh(sb.compression)) == NULL) {
		const char *comp = sqfs_compression_name(le16toh(sb.compression));
		if (comp != NULL) {
			lz_seterr(err, errlen, "%s compression is not supported by libsquashfuse",
				  comp);
			return -ENOTSUP;
		}
		lz_seterr(err, errlen, "corrupt superblock: unknown compression %u",
			  le16toh(sb.compression));
		return -EIO;
	}
	if ((problem = superblock_problem(&sb, *bytes_used)) != NULL) {
		lz_seterr(err, errlen, "corrupt superblock: %s", problem);
		return -EIO;
	}
	return 0;
}
