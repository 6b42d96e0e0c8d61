/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "sqfs.h"
#include "superblock.h"
#include "common/error.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "squashfuse_inc.h"

#define MD_SIZE	    SQUASHFS_METADATA_SIZE
#define SYMLINK_MAX 4096 /* the kernel refuses longer symlinks in squashfs too */
/* sqfs_dir_next reads as many name bytes as the image says (a 16-bit length). */
#define NAMEBUF_SIZE (65536 + 2)

/* Direct-mapped, spares re-parsing hot inodes; sized by the inode count (browses open many). */
#define ICACHE_MAX 256u

struct node {
	sqfs_inode inode; /* mode sanitized: permission bits | the type's S_IFMT */
	uid_t uid;
	gid_t gid;
	uint64_t sparse; /* bytes of holes, for st_blocks */
};

struct icache_entry {
	bool valid;
	uint64_t id;
	struct node node;
};

struct lz_sqfs {
	/* Recursive so a readdir callback may call back into the same image. */
	pthread_mutex_t lock;
	sqfs fs;
	uint64_t bytes_used;
	char *namebuf;
	struct icache_entry *icache;
	unsigned icache_size; /* a power of two */
	bool owns_fd;	      /* lz_sqfs_open's, not lz_sqfs_open_fd's */
};

static const struct {
	const char *str;
	size_t len;
} xattr_prefix[] = {
	/* Indexed by SQUASHFS_XATTR_*; the library's own table swaps trusted and security. */
	{ "user.", 5 },
	{ "trusted.", 8 },
	{ "security.", 9 },
};

/*
 * Can the library read LEN bytes at POS? Position 0 must never reach its
 * caches, where 0 marks a free slot.
 */
static bool pos_ok(const struct lz_sqfs *img, uint64_t pos, uint64_t len)
{
	return pos >= LZ_SQFS_SB_SIZE && pos <= img->bytes_used && len <= img->bytes_used - pos;
}

/*
 * Whether a metadata cursor that came from the image can be followed. The
 * library copies from (block data + offset) without comparing the offset with
 * the block's size.
 */
static bool md_ok(struct lz_sqfs *img, uint64_t block, uint64_t offset)
{
	sqfs_off_t pos = (sqfs_off_t)block;
	sqfs_block *b;

	if (!pos_ok(img, block, 2) || offset >= MD_SIZE)
		return false;
	if (sqfs_md_cache(&img->fs, &pos, &b) != SQFS_OK)
		return false;
	return offset <= b->size;
}

/* Whether entry IDX of a lookup table exists: the library indexes its block array unchecked. */
static bool table_ok(struct lz_sqfs *img, sqfs_table *t, uint64_t count, uint64_t idx)
{
	sqfs_block *b;

	if (idx >= count || t->blocks == NULL)
		return false;
	uint64_t pos = idx * t->each;
	sqfs_off_t bpos = (sqfs_off_t)t->blocks[pos / MD_SIZE];
	if (sqfs_md_cache(&img->fs, &bpos, &b) != SQFS_OK)
		return false;
	return pos % MD_SIZE + t->each <= b->size;
}

/* Checked once at open, so table_ok can trust the block positions. */
static bool table_blocks_ok(struct lz_sqfs *img, sqfs_table *t, uint64_t count, size_t each)
{
	if (count == 0)
		return true;
	if (t->blocks == NULL)
		return false;
	uint64_t nblocks = (count * each + MD_SIZE - 1) / MD_SIZE;
	for (uint64_t i = 0; i < nblocks; i++)
		if (!pos_ok(img, t->blocks[i], 2))
			return false;
	return true;
}

static unsigned icache_slot(const struct lz_sqfs *img, uint64_t id)
{
	return (unsigned)((id * UINT64_C(0x9E3779B97F4A7C15)) >> 56) & (img->icache_size - 1);
}

/* A cache of at most ICACHE_MAX slots and no more than INODES needs. 0 or -ENOMEM. */
static int icache_init(struct lz_sqfs *img, uint32_t inodes)
{
	for (img->icache_size = 4; img->icache_size < ICACHE_MAX && img->icache_size < inodes;)
		img->icache_size *= 2;
	img->icache = calloc(img->icache_size, sizeof(*img->icache));
	return img->icache != NULL ? 0 : -ENOMEM;
}

/* Reads and checks inode ID (LZ_SQFS_ROOT: the root). 0 or -EIO. */
static int node_load(struct lz_sqfs *img, uint64_t id, struct node *out)
{
	sqfs *fs = &img->fs;

	if (id == LZ_SQFS_ROOT)
		id = sqfs_inode_root(fs);
	struct icache_entry *ce = &img->icache[icache_slot(img, id)];

	if (ce->valid && ce->id == id) {
		*out = ce->node;
		return 0;
	}

	uint64_t block = fs->sb.inode_table_start + (id >> 16);
	uint64_t offset = id & 0xffff;
	if ((id >> 48) != 0 || block >= fs->sb.directory_table_start || !md_ok(img, block, offset))
		return -EIO;

	/*
	 * Read the fixed part first: sqfs_inode_get would skip a symlink target
	 * of any length the image claims, and hides the sparse byte count.
	 */
	union {
		struct squashfs_base_inode base;
		struct squashfs_symlink_inode symlink;
		struct squashfs_lreg_inode lreg;
	} raw;
	sqfs_md_cursor cur = { .block = (sqfs_off_t)block, .offset = offset };
	if (sqfs_md_read(fs, &cur, &raw.base, sizeof(raw.base)) != SQFS_OK)
		return -EIO;
	unsigned type = le16toh(raw.base.inode_type);
	uint32_t number = le32toh(raw.base.inode_number);
	/* The library keys its block index cache by number + 1 in 32 bits, 0 meaning empty. */
	if (type < SQUASHFS_DIR_TYPE || type > SQUASHFS_LSOCKET_TYPE || number == 0 ||
	    number > fs->sb.inodes || number == UINT32_MAX)
		return -EIO;

	struct node n = { .sparse = 0 };
	if (type == SQUASHFS_SYMLINK_TYPE || type == SQUASHFS_LSYMLINK_TYPE) {
		cur = (sqfs_md_cursor){ .block = (sqfs_off_t)block, .offset = offset };
		if (sqfs_md_read(fs, &cur, &raw.symlink, sizeof(raw.symlink)) != SQFS_OK ||
		    le32toh(raw.symlink.symlink_size) > SYMLINK_MAX)
			return -EIO;
	} else if (type == SQUASHFS_LREG_TYPE) {
		cur = (sqfs_md_cursor){ .block = (sqfs_off_t)block, .offset = offset };
		if (sqfs_md_read(fs, &cur, &raw.lreg, sizeof(raw.lreg)) != SQFS_OK)
			return -EIO;
		n.sparse = le64toh(raw.lreg.sparse);
	}

	if (sqfs_inode_get(fs, &n.inode, id) != SQFS_OK)
		return -EIO;
	/* Type bits hidden in the on-disk mode would turn a file into something else. */
	n.inode.base.mode = (n.inode.base.mode & 07777) | sqfs_mode(type);

	if (S_ISREG(n.inode.base.mode) && n.inode.xtra.reg.frag_idx != SQUASHFS_INVALID_FRAG &&
	    n.inode.xtra.reg.frag_idx >= fs->sb.fragments)
		return -EIO;
	if (S_ISDIR(n.inode.base.mode) && n.inode.xtra.dir.offset >= MD_SIZE)
		return -EIO;

	sqfs_id_t uid, gid;
	if (!table_ok(img, &fs->id_table, fs->sb.no_ids, n.inode.base.uid) ||
	    !table_ok(img, &fs->id_table, fs->sb.no_ids, n.inode.base.guid) ||
	    sqfs_id_get(fs, n.inode.base.uid, &uid) != SQFS_OK ||
	    sqfs_id_get(fs, n.inode.base.guid, &gid) != SQFS_OK)
		return -EIO;
	n.uid = uid;
	n.gid = (gid_t)gid;

	ce->valid = true;
	ce->id = id;
	ce->node = n;
	*out = n;
	return 0;
}

static void node_stat(struct lz_sqfs *img, const struct node *n, struct stat *st)
{
	const sqfs_inode *in = &n->inode;

	memset(st, 0, sizeof(*st));
	st->st_ino = in->base.inode_number;
	st->st_mode = in->base.mode;
	st->st_nlink = (nlink_t)in->nlink;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_blksize = img->fs.sb.block_size;
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = in->base.mtime;
	/* Sizes and block counts as the kernel's squashfs reports them, so both backends agree. */
	switch (in->base.mode & S_IFMT) {
	case S_IFREG: {
		uint64_t size = in->xtra.reg.file_size;
		uint64_t stored = n->sparse < size ? size - n->sparse : 0;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((stored + 511) >> 9);
		break;
	}
	case S_IFDIR:
		st->st_size = in->xtra.dir.dir_size;
		break;
	case S_IFLNK:
		st->st_size = (off_t)in->xtra.symlink_size;
		break;
	case S_IFCHR:
	case S_IFBLK:
		st->st_rdev = makedev((unsigned)in->xtra.dev.major, (unsigned)in->xtra.dev.minor);
		break;
	}
}

/*
 * Opens the listing of directory INODE at the directory header its index says
 * comes last before the entry at OFFSET or, with NAME, before NAME. The index
 * is walked here rather than by the library, which trusts its name lengths and
 * offsets.
 */
static int dir_seek(struct lz_sqfs *img, sqfs_inode *inode, sqfs_dir *dir, uint64_t offset,
		    const char *name)
{
	sqfs *fs = &img->fs;

	if (!S_ISDIR(inode->base.mode))
		return -ENOTDIR;
	if (sqfs_dir_open(fs, inode, dir, 0) != SQFS_OK)
		return -EIO;
	if (dir->total == 0)
		return 0;
	if (!md_ok(img, (uint64_t)dir->cur.block, dir->cur.offset))
		return -EIO;

	sqfs_md_cursor cur = inode->next; /* the index follows the inode */
	bool found = false;
	uint32_t best_index = 0, best_block = 0;
	for (unsigned i = 0; i < inode->xtra.dir.idx_count; i++) {
		struct squashfs_dir_index idx;
		char iname[SQUASHFS_NAME_LEN + 1];

		if (sqfs_md_read(fs, &cur, &idx, sizeof(idx)) != SQFS_OK)
			return -EIO;
		uint32_t index = le32toh(idx.index);
		uint64_t name_size = (uint64_t)le32toh(idx.size) + 1;
		if (name_size > SQUASHFS_NAME_LEN || index > (uint64_t)dir->total)
			return -EIO;
		if (sqfs_md_read(fs, &cur, iname, name_size) != SQFS_OK)
			return -EIO;
		iname[name_size] = '\0';
		/* Each index entry names the first entry after its header. */
		if (name != NULL ? strcmp(iname, name) > 0 : index >= offset)
			break;
		found = true;
		best_index = index;
		best_block = le32toh(idx.start_block);
	}
	if (found) {
		dir->cur.block = (sqfs_off_t)(fs->sb.directory_table_start + best_block);
		dir->cur.offset = (inode->xtra.dir.offset + best_index) % MD_SIZE;
		dir->offset = best_index;
		if (!md_ok(img, (uint64_t)dir->cur.block, dir->cur.offset))
			return -EIO;
	}
	return 0;
}

/* The next entry: 1 with E filled and its name NUL-terminated, 0 at the end, -EIO. */
static int dir_next(struct lz_sqfs *img, sqfs_dir *dir, sqfs_dir_entry *e)
{
	sqfs_err err;

	sqfs_dentry_init(e, img->namebuf);
	if (!sqfs_dir_next(&img->fs, dir, e, &err))
		return err == SQFS_OK ? 0 : -EIO;
	/* A header may claim more entries than the listing holds. */
	if (e->name_size > SQUASHFS_NAME_LEN || dir->offset > dir->total)
		return -EIO;
	sqfs_dentry_name(e);
	return 1;
}

static bool name_valid(const char *name, size_t size)
{
	return strlen(name) == size && memchr(name, '/', size) == NULL && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static int lookup_locked(struct lz_sqfs *img, uint64_t dir_id, const char *name, uint64_t *child,
			 struct stat *st)
{
	struct node dn, cn;
	sqfs_dir dir;
	sqfs_dir_entry e;
	int r;

	if ((r = node_load(img, dir_id, &dn)) != 0)
		return r;
	if (!S_ISDIR(dn.inode.base.mode))
		return -ENOTDIR;
	if (name[0] == '\0' || strlen(name) > SQUASHFS_NAME_LEN)
		return -ENOENT;
	if ((r = dir_seek(img, &dn.inode, &dir, 0, name)) != 0)
		return r;
	/* Listings are sorted by strcmp. */
	while ((r = dir_next(img, &dir, &e)) > 0) {
		int order = strcmp(e.name, name);
		if (order > 0)
			break;
		/* A name with a NUL inside ("d\0x") must not answer for its prefix ("d"). */
		if (order < 0 || !name_valid(e.name, e.name_size))
			continue;
		uint64_t id = sqfs_dentry_inode(&e);
		if ((r = node_load(img, id, &cn)) != 0)
			return r;
		*child = id;
		if (st != NULL)
			node_stat(img, &cn, st);
		return 0;
	}
	return r < 0 ? r : -ENOENT;
}

static int readdir_locked(struct lz_sqfs *img, uint64_t dir_id, off_t offset, lz_sqfs_dir_fn fn,
			  void *ctx)
{
	struct node dn;
	sqfs_dir dir;
	sqfs_dir_entry e;
	int r;

	if (offset < 0)
		return -EINVAL;
	if ((r = node_load(img, dir_id, &dn)) != 0)
		return r;
	if ((r = dir_seek(img, &dn.inode, &dir, (uint64_t)offset, NULL)) != 0)
		return r;
	if (offset >= dir.total)
		return 0;
	while (dir.offset < offset) {
		if ((r = dir_next(img, &dir, &e)) < 0)
			return r;
		if (r == 0)
			break;
	}
	if (dir.offset != offset)
		return -EINVAL;

	while ((r = dir_next(img, &dir, &e)) > 0) {
		/* Copied: FN may call back and reuse the name buffer. */
		char name[SQUASHFS_NAME_LEN + 1];
		mode_t type = sqfs_dentry_mode(&e);

		if (!name_valid(e.name, e.name_size) || type == 0)
			continue;
		memcpy(name, e.name, e.name_size + 1);
		struct lz_sqfs_dirent de = { name, sqfs_dentry_inode(&e), sqfs_dentry_inode_num(&e),
					     type, sqfs_dentry_next_offset(&e) };
		if (fn(ctx, &de) != 0)
			return 0;
	}
	return r;
}

/*
 * Reads file data through the library's block list and caches, checking every
 * block's position and size: sqfs_read_range copies out of short blocks and
 * fragments without bounds checks, and its block index lookup overruns for a
 * read that starts in the tail fragment of some files.
 */
static ssize_t read_locked(struct lz_sqfs *img, sqfs_inode *inode, char *buf, size_t size,
			   uint64_t off)
{
	sqfs *fs = &img->fs;
	uint64_t file_size = inode->xtra.reg.file_size;
	uint64_t bs = fs->sb.block_size;
	uint32_t frag_idx = inode->xtra.reg.frag_idx;
	bool has_frag = frag_idx != SQUASHFS_INVALID_FRAG;
	uint64_t nblocks = has_frag ? file_size / bs : (file_size + bs - 1) / bs;
	uint64_t blocks_end = nblocks * bs < file_size ? nblocks * bs : file_size;
	size_t done = 0;
	sqfs_block *block;

	if (off >= file_size)
		return 0;
	if (size > file_size - off)
		size = (size_t)(file_size - off);
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;

	if (off < blocks_end) {
		sqfs_blocklist bl;

		/*
		 * The library allocates the block index of the whole file at once, from
		 * the size the inode claims (terabytes for a forged one). The block list
		 * lives in the inode table, whose metadata blocks hold at most 8 KiB in 3
		 * or more bytes each: a file with more blocks than that cannot be real.
		 */
		uint64_t table = fs->sb.directory_table_start - fs->sb.inode_table_start;
		if (nblocks > table / 3 * (MD_SIZE / sizeof(uint32_t)))
			return -EIO;
		if (sqfs_blockidx_blocklist(fs, inode, &bl, (sqfs_off_t)off) != SQFS_OK ||
		    !md_ok(img, (uint64_t)bl.cur.block, bl.cur.offset))
			return -EIO;
		while (done < size && off + done < blocks_end) {
			uint64_t at = off + done;

			if (sqfs_blocklist_next(&bl) != SQFS_OK)
				return -EIO;
			if (bl.pos + bs <= at)
				continue;
			if (bl.pos > at)
				return -EIO;
			uint64_t want = file_size - bl.pos < bs ? file_size - bl.pos : bs;
			size_t in = (size_t)(at - bl.pos);
			size_t take = want - in < size - done ? (size_t)(want - in) : size - done;
			if (bl.input_size == 0) { /* a hole */
				memset(buf + done, 0, take);
			} else {
				if (bl.input_size > bs || !pos_ok(img, bl.block, bl.input_size))
					return -EIO;
				if (sqfs_data_cache(fs, &fs->data_cache, (sqfs_off_t)bl.block,
						    bl.header, &block) != SQFS_OK ||
				    block->size != want)
					return -EIO;
				memcpy(buf + done, (char *)block->data + in, take);
			}
			done += take;
		}
	}

	if (done < size) {
		struct squashfs_fragment_entry fe;
		bool compressed;
		uint32_t fsize;
		size_t foff, flen;

		if (!has_frag || !table_ok(img, &fs->frag_table, fs->sb.fragments, frag_idx) ||
		    sqfs_frag_entry(fs, &fe, frag_idx) != SQFS_OK)
			return -EIO;
		sqfs_data_header(fe.size, &compressed, &fsize);
		if (fsize > bs || !pos_ok(img, fe.start_block, fsize))
			return -EIO;
		if (sqfs_frag_block(fs, inode, &foff, &flen, &block) != SQFS_OK ||
		    flen != file_size - blocks_end || foff > block->size ||
		    flen > block->size - foff)
			return -EIO;
		memcpy(buf + done, (char *)block->data + foff + (off + done - blocks_end),
		       size - done);
		done = size;
	}
	return (ssize_t)done;
}

/* Opens the attribute list of INODE: 1 when it has attributes, 0 when none, -EIO. */
static int xattr_open(struct lz_sqfs *img, sqfs_inode *inode, sqfs_xattr *x)
{
	sqfs *fs = &img->fs;

	if (inode->xattr == SQUASHFS_INVALID_XATTR || fs->xattr_info.xattr_ids == 0)
		return 0;
	if (!table_ok(img, &fs->xattr_table, fs->xattr_info.xattr_ids, inode->xattr) ||
	    sqfs_xattr_open(fs, inode, x) != SQFS_OK)
		return -EIO;
	if (x->remain == 0)
		return 0;
	return md_ok(img, (uint64_t)x->c_next.block, x->c_next.offset) ? 1 : -EIO;
}

/*
 * Reads the next attribute's full name into NAME (XATTR_NAME_MAX + 1 bytes)
 * and leaves X ready to read its value. The value size, or -EIO.
 */
static ssize_t xattr_next(struct lz_sqfs *img, sqfs_xattr *x, char *name)
{
	sqfs *fs = &img->fs;
	size_t vsize;

	if (sqfs_xattr_read(x) != SQFS_OK ||
	    x->type >= sizeof(xattr_prefix) / sizeof(xattr_prefix[0]))
		return -EIO;
	size_t plen = xattr_prefix[x->type].len;
	size_t len = x->entry.size;
	if (len == 0 || plen + len > XATTR_NAME_MAX)
		return -EIO;
	memcpy(name, xattr_prefix[x->type].str, plen);
	if (sqfs_xattr_name(x, name + plen, false) != SQFS_OK)
		return -EIO;
	name[plen + len] = '\0';
	if (strlen(name) != plen + len)
		return -EIO;
	if (x->ool) {
		/* A value stored once for several files: the library follows the reference
		 * unchecked. */
		sqfs_md_cursor c = x->c_vsize;
		struct squashfs_xattr_val val;
		uint64_t ref;
		if (sqfs_md_read(fs, &c, &val, sizeof(val)) != SQFS_OK ||
		    sqfs_md_read(fs, &c, &ref, sizeof(ref)) != SQFS_OK)
			return -EIO;
		ref = le64toh(ref);
		if (!md_ok(img, fs->xattr_info.xattr_table_start + (ref >> 16), ref & 0xffff))
			return -EIO;
	}
	if (sqfs_xattr_value_size(x, &vsize) != SQFS_OK || vsize > XATTR_SIZE_MAX)
		return -EIO;
	return (ssize_t)vsize;
}

static ssize_t getxattr_locked(struct lz_sqfs *img, sqfs_inode *inode, const char *want, char *buf,
			       size_t size)
{
	sqfs_xattr x;
	char name[XATTR_NAME_MAX + 1];
	int r = xattr_open(img, inode, &x);

	if (r <= 0)
		return r < 0 ? r : -ENODATA;
	while (x.remain > 0) {
		ssize_t vsize = xattr_next(img, &x, name);
		if (vsize < 0)
			return vsize;
		if (strcmp(name, want) != 0)
			continue;
		if (size == 0)
			return vsize;
		if ((size_t)vsize > size)
			return -ERANGE;
		if (sqfs_xattr_value(&x, buf) != SQFS_OK)
			return -EIO;
		return vsize;
	}
	return -ENODATA;
}

static ssize_t listxattr_locked(struct lz_sqfs *img, sqfs_inode *inode, char *buf, size_t size)
{
	sqfs_xattr x;
	char name[XATTR_NAME_MAX + 1];
	size_t total = 0;
	int r = xattr_open(img, inode, &x);

	if (r <= 0)
		return r;
	while (x.remain > 0) {
		ssize_t vsize = xattr_next(img, &x, name);
		if (vsize < 0)
			return vsize;
		size_t len = strlen(name) + 1;
		if (size != 0) {
			if (total + len > size)
				return -ERANGE;
			memcpy(buf + total, name, len);
		}
		total += len;
	}
	return (ssize_t)total;
}

static void fs_destroy(sqfs *fs)
{
	/* 0.1.104's sqfs_destroy forgets the xattr table; destroying it twice is harmless. */
	sqfs_table_destroy(&fs->xattr_table);
	sqfs_destroy(fs);
}

/*
 * Lets libsquashfuse read the tables of the image at FD (checked by
 * lz_sqfs_check_superblock) and checks what it read: 0, or -errno with ERR. On
 * failure nothing is left to destroy.
 */
static int load_tables(struct lz_sqfs *img, int fd, char *err, size_t errlen)
{
	if (sqfs_init(&img->fs, fd, 0) != SQFS_OK) {
		/* sqfs_init cleaned up after itself, except for the xattr table. */
		sqfs_table_destroy(&img->fs.xattr_table);
		lz_seterr(err, errlen, "corrupt: cannot read its tables");
		return -EIO;
	}
	sqfs *fs = &img->fs;
	if (!table_blocks_ok(img, &fs->id_table, fs->sb.no_ids, sizeof(uint32_t)) ||
	    !table_blocks_ok(img, &fs->frag_table, fs->sb.fragments,
			     sizeof(struct squashfs_fragment_entry)) ||
	    (fs->xattr_info.xattr_ids != 0 &&
	     (!pos_ok(img, fs->xattr_info.xattr_table_start, 2) ||
	      !table_blocks_ok(img, &fs->xattr_table, fs->xattr_info.xattr_ids,
			       sizeof(struct squashfs_xattr_id))))) {
		fs_destroy(fs);
		lz_seterr(err, errlen, "corrupt: bad table position");
		return -EIO;
	}
	if (icache_init(img, fs->sb.inodes) != 0) {
		fs_destroy(fs);
		lz_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	struct node root;
	if (node_load(img, sqfs_inode_root(fs), &root) != 0 || !S_ISDIR(root.inode.base.mode)) {
		fs_destroy(fs);
		lz_seterr(err, errlen, "corrupt: cannot read the root directory");
		return -EIO;
	}
	return 0;
}

struct lz_sqfs *lz_sqfs_open(const char *image_path, char *err, size_t errlen)
{
	int fd = open(image_path, O_RDONLY | O_CLOEXEC);
	struct lz_sqfs *img;

	if (fd < 0) {
		int e = errno;
		lz_seterr(err, errlen, "cannot open: %s", strerror(e));
		errno = e;
		return NULL;
	}
	img = lz_sqfs_open_fd(fd, err, errlen);
	if (img == NULL) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	img->owns_fd = true;
	return img;
}

struct lz_sqfs *lz_sqfs_open_fd(int fd, char *err, size_t errlen)
{
	struct lz_sqfs *img = NULL;
	uint64_t bytes_used = 0;
	int rc = lz_sqfs_check_superblock(fd, &bytes_used, err, errlen);

	if (rc == 0) {
		img = calloc(1, sizeof(*img));
		if (img == NULL || (img->namebuf = malloc(NAMEBUF_SIZE)) == NULL) {
			lz_seterr(err, errlen, "out of memory");
			rc = -ENOMEM;
		}
	}
	if (rc == 0) {
		img->bytes_used = bytes_used;
		rc = load_tables(img, fd, err, errlen);
	}
	if (rc != 0) {
		if (img != NULL) {
			free(img->namebuf);
			free(img->icache);
		}
		free(img);
		errno = -rc;
		return NULL;
	}
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&img->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return img;
}

void lz_sqfs_close(struct lz_sqfs *img)
{
	if (img == NULL)
		return;
	fs_destroy(&img->fs);
	if (img->owns_fd)
		close(img->fs.fd);
	pthread_mutex_destroy(&img->lock);
	free(img->namebuf);
	free(img->icache);
	free(img);
}

uint64_t lz_sqfs_root(struct lz_sqfs *img)
{
	return sqfs_inode_root(&img->fs);
}

int lz_sqfs_stat(struct lz_sqfs *img, uint64_t ino, struct stat *st)
{
	struct node n;

	pthread_mutex_lock(&img->lock);
	int r = node_load(img, ino, &n);
	if (r == 0)
		node_stat(img, &n, st);
	pthread_mutex_unlock(&img->lock);
	return r;
}

int lz_sqfs_lookup(struct lz_sqfs *img, uint64_t dir, const char *name, uint64_t *child,
		   struct stat *st)
{
	pthread_mutex_lock(&img->lock);
	int r = lookup_locked(img, dir, name, child, st);
	pthread_mutex_unlock(&img->lock);
	return r;
}

int lz_sqfs_readlink(struct lz_sqfs *img, uint64_t ino, char *buf, size_t size)
{
	struct node n;

	pthread_mutex_lock(&img->lock);
	int r = node_load(img, ino, &n);
	if (r == 0 && !S_ISLNK(n.inode.base.mode)) {
		r = -EINVAL;
	} else if (r == 0 && n.inode.xtra.symlink_size >= size) {
		r = -ENAMETOOLONG;
	} else if (r == 0) {
		size_t bufsize = n.inode.xtra.symlink_size + 1;
		if (sqfs_readlink(&img->fs, &n.inode, buf, &bufsize) != SQFS_OK ||
		    strlen(buf) != n.inode.xtra.symlink_size)
			r = -EIO;
	}
	pthread_mutex_unlock(&img->lock);
	return r;
}

int lz_sqfs_readdir(struct lz_sqfs *img, uint64_t dir, off_t offset, lz_sqfs_dir_fn fn, void *ctx)
{
	pthread_mutex_lock(&img->lock);
	int r = readdir_locked(img, dir, offset, fn, ctx);
	pthread_mutex_unlock(&img->lock);
	return r;
}

ssize_t lz_sqfs_read(struct lz_sqfs *img, uint64_t ino, char *buf, size_t size, off_t off)
{
	struct node n;
	ssize_t r;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&img->lock);
	r = node_load(img, ino, &n);
	if (r == 0 && S_ISDIR(n.inode.base.mode))
		r = -EISDIR;
	else if (r == 0 && !S_ISREG(n.inode.base.mode))
		r = -EINVAL;
	else if (r == 0)
		r = read_locked(img, &n.inode, buf, size, (uint64_t)off);
	pthread_mutex_unlock(&img->lock);
	return r;
}

ssize_t lz_sqfs_getxattr(struct lz_sqfs *img, uint64_t ino, const char *name, char *buf,
			 size_t size)
{
	struct node n;

	pthread_mutex_lock(&img->lock);
	ssize_t r = node_load(img, ino, &n);
	if (r == 0)
		r = getxattr_locked(img, &n.inode, name, buf, size);
	pthread_mutex_unlock(&img->lock);
	return r;
}

ssize_t lz_sqfs_listxattr(struct lz_sqfs *img, uint64_t ino, char *buf, size_t size)
{
	struct node n;

	pthread_mutex_lock(&img->lock);
	ssize_t r = node_load(img, ino, &n);
	if (r == 0)
		r = listxattr_locked(img, &n.inode, buf, size);
	pthread_mutex_unlock(&img->lock);
	return r;
}
