/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Squashfs images read in user space through libsquashfuse (the squashfuse
 * backend). Each image has its own lock, so images never wait for each other;
 * calls on one image are serialized because a libsquashfuse handle is not
 * thread-safe. A corrupt or hostile image makes calls fail with -EIO rather
 * than crash: the wrapper checks the on-disk offsets, indexes and lengths the
 * library would trust blindly before it hands them over.
 *
 * Inode ids are squashfs inode references (metadata block << 16 | offset), so
 * getting from an id to its inode costs no lookup table. Hard links share one
 * id. 0 is a valid id: the root of an image that holds nothing else.
 * LZ_SQFS_ROOT names the root directory whatever its id: an image listed
 * before its file is fetched has its root entered by that name.
 */
#ifndef LAZYFS_SQFS_H
#define LAZYFS_SQFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct lz_sqfs;

#define LZ_SQFS_ROOT (UINT64_MAX - 1)

/*
 * What the superblock of the squashfs image file FD says, read without
 * opening the image: whether it holds extended attributes, and an export
 * table (the kernel's squashfs then opens its files by handle). 0, or -EIO
 * when FD is no squashfs 4 image.
 */
struct lz_sqfs_features {
	bool xattrs, exports;
};
int lz_sqfs_features(int fd, struct lz_sqfs_features *out);

/*
 * Opens the image at IMAGE_PATH and checks its superblock, tables and root
 * inode. NULL on failure with a one-line reason in ERR ("not a squashfs image",
 * "truncated: 4096 of 81920 bytes", "squashfs 3.1 is not supported (only 4.0)", ...),
 * without the path; errno is set too.
 */
struct lz_sqfs *lz_sqfs_open(const char *image_path, char *err, size_t errlen);
/* The same for the image file FD, which stays the caller's: open until the reader is closed. */
struct lz_sqfs *lz_sqfs_open_fd(int fd, char *err, size_t errlen);
void lz_sqfs_close(struct lz_sqfs *img);

/* The inode id of the root directory. */
uint64_t lz_sqfs_root(struct lz_sqfs *img);

/*
 * The stat of an inode: st_ino is the squashfs inode number (shared by hard
 * links), st_dev is 0, times are all the image's mtime, st_blocks counts
 * 512-byte units without holes, st_blksize is the image's block size.
 */
int lz_sqfs_stat(struct lz_sqfs *img, uint64_t ino, struct stat *st);

/*
 * Looks NAME up in directory DIR: *CHILD gets its inode id and ST (if not NULL)
 * its stat. 0, -ENOENT, -ENOTDIR or -EIO. "." and ".." are the caller's
 * business (-ENOENT here); a squashfs directory records only its parent's inode number.
 */
int lz_sqfs_lookup(struct lz_sqfs *img, uint64_t dir, const char *name, uint64_t *child,
		   struct stat *st);

/*
 * Puts the NUL-terminated target of symlink INO in BUF: 0, -EINVAL (not a
 * symlink), -ENAMETOOLONG (SIZE too small), -EIO. Targets are at most 4096 bytes.
 */
int lz_sqfs_readlink(struct lz_sqfs *img, uint64_t ino, char *buf, size_t size);

/* One entry of a listing, as lz_sqfs_readdir gives it. */
struct lz_sqfs_dirent {
	const char *name; /* valid only during the call */
	uint64_t id;	  /* its inode id */
	uint32_t number;  /* its inode number as the directory records it (a listing's d_ino) */
	mode_t type;	  /* S_IFMT bits */
	off_t next;	  /* the offset of the entry after it */
};

/*
 * Calls FN for each entry of directory DIR from OFFSET on (0 is the start),
 * without "." and "..". Stops when FN returns non-zero. Offsets are
 * byte positions in the image's directory listing, stable for the life of the
 * image, and always greater than 2 (a caller may use 1 and 2 for "." and "..").
 * An OFFSET past the end lists nothing; one that is not an entry boundary
 * gives -EINVAL. FN runs with the image locked and may call other lz_sqfs
 * functions on the same image (the lock is recursive). Entries whose names
 * cannot be valid (containing '/', ".", "..") are skipped. Returns 0 or
 * -errno (-ENOTDIR, -EIO).
 */
typedef int (*lz_sqfs_dir_fn)(void *ctx, const struct lz_sqfs_dirent *e);
int lz_sqfs_readdir(struct lz_sqfs *img, uint64_t dir, off_t offset, lz_sqfs_dir_fn fn, void *ctx);

/*
 * Reads up to SIZE bytes of regular file INO at OFF. Short only at the end of
 * the file; -EISDIR / -EINVAL for other types, -EIO for a corrupt block.
 */
ssize_t lz_sqfs_read(struct lz_sqfs *img, uint64_t ino, char *buf, size_t size, off_t off);

/*
 * The value of extended attribute NAME: its length, or with SIZE 0 only its
 * length; -ENODATA, -ERANGE (BUF too small), -EIO.
 */
ssize_t lz_sqfs_getxattr(struct lz_sqfs *img, uint64_t ino, const char *name, char *buf,
			 size_t size);
/* The NUL-separated attribute names, as listxattr(2): length, -ERANGE, -EIO. */
ssize_t lz_sqfs_listxattr(struct lz_sqfs *img, uint64_t ino, char *buf, size_t size);

#endif
