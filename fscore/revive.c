/* Node ids of a crashed worker served again (revive.h). */
#include "config.h"
#include "revive.h"
#include "lookup.h"
#include "nodeid.h"
#include "images/sqfs.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The handle type of a squashfuse inode's id: negative, which no kernel handle is. */
#define SQFS_HANDLE_TYPE (-2)

const struct file_handle *lz_revive_handle(const struct lz_inode *inode,
					   union lz_revive_handle *buf)
{
	if (inode->kind == LZ_INODE_FD)
		return inode->path.handle;
	if (inode->kind != LZ_INODE_SQFS)
		return NULL;
	buf->fh.handle_type = SQFS_HANDLE_TYPE;
	buf->fh.handle_bytes = sizeof(inode->sqfs_id);
	memcpy(buf->fh.f_handle, &inode->sqfs_id, sizeof(inode->sqfs_id));
	return &buf->fh;
}

/* INIT as the inode NODEID, with the kernel's references only; NULL when out of memory. */
static struct lz_inode *take(struct lz_fs *fs, uint64_t nodeid, const struct lz_inode_init *init)
{
	bool created;
	struct lz_inode *inode = lz_inode_ref_init(fs->inodes, nodeid, init, &created);

	if (inode == NULL) {
		lz_sqfs_image_put(init->sqfs);
		return NULL;
	}
	if (!created)
		lz_sqfs_image_put(init->sqfs); /* a lookup made it meanwhile */
	else
		atomic_fetch_add(&fs->revived, 1);
	/* The reference taking it made is not the kernel's. */
	lz_inode_forget(fs->inodes, nodeid, 1);
	return lz_inode_find(fs->inodes, nodeid);
}

/* The file handle H names against directory DIR (O_PATH), on device DEV with NODEID's inode. */
static int open_handle(int dir, const struct file_handle *h, uint64_t nodeid, dev_t dev,
		       struct stat *st)
{
	int anchor = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = -1;

	if (h->handle_type != SQFS_HANDLE_TYPE && anchor >= 0)
		fd = open_by_handle_at(anchor, (struct file_handle *)h, O_PATH | O_CLOEXEC);
	if (anchor >= 0)
		close(anchor);
	/* The same file, not one that took its place. */
	if (fd >= 0 && (fstat(fd, st) != 0 || st->st_dev != dev ||
			(uint64_t)st->st_ino != lz_nodeid_backing_ino(nodeid))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

struct lz_inode *lz_revive_underlay(struct lz_fs *fs, int anchor, uint64_t nodeid,
				    const struct file_handle *h)
{
	struct lz_inode_init init = { .kind = LZ_INODE_FD };
	struct stat root, st;

	if (anchor < 0 || fstat(anchor, &root) != 0 ||
	    lz_nodeid_of(fs, root.st_dev, lz_nodeid_backing_ino(nodeid)) != nodeid)
		return NULL;
	init.path_fd = open_handle(anchor, h, nodeid, root.st_dev, &st);
	if (init.path_fd < 0)
		return NULL;
	init.type = st.st_mode;
	return take(fs, nodeid, &init);
}

static struct lz_inode *revive_in_sqfs(struct lz_fs *fs, uint64_t nodeid, struct lz_image *image,
				       struct lz_sqfs_image *handle, const struct file_handle *h)
{
	struct lz_inode_init init = {
		.kind = LZ_INODE_SQFS, .path_fd = -1, .image = image, .sqfs = handle
	};
	struct stat st;

	if (h->handle_type != SQFS_HANDLE_TYPE || h->handle_bytes != sizeof(init.sqfs_id)) {
		lz_sqfs_image_put(handle);
		return NULL;
	}
	memcpy(&init.sqfs_id, h->f_handle, sizeof(init.sqfs_id));
	if (lz_sqfs_stat(handle->sqfs, init.sqfs_id, &st) != 0 ||
	    (uint64_t)st.st_ino != lz_nodeid_backing_ino(nodeid)) {
		lz_sqfs_image_put(handle);
		return NULL;
	}
	init.type = st.st_mode;
	return take(fs, nodeid, &init);
}

struct lz_inode *lz_revive_image(struct lz_fs *fs, uint64_t nodeid, const char *name,
				 const struct file_handle *h)
{
	struct lz_image_ref ref = { .key = name, .parent = LZ_ROOT_ID, .entry = name };
	struct lz_inode_init init = { .kind = LZ_INODE_FD, .path_fd = -1 };
	struct lz_image_root root;
	struct stat root_st, st;

	if (fs->images == NULL || !lz_images_at_root(fs->images) ||
	    lz_images_resolve(fs->images, &ref, &init.image, &root) != 0)
		return NULL;
	lz_revive_settle_source(fs, init.image, &root);
	if (root.sqfs != NULL)
		return revive_in_sqfs(fs, nodeid, init.image, root.sqfs, h);
	if (fstat(root.fd, &root_st) == 0)
		init.path_fd = open_handle(root.fd, h, nodeid, root_st.st_dev, &st);
	close(root.fd);
	if (init.path_fd < 0)
		return NULL;
	init.type = st.st_mode;
	return take(fs, nodeid, &init);
}

void lz_revive_settle_source(struct lz_fs *fs, struct lz_image *image,
			     const struct lz_image_root *root)
{
	struct stat st;
	dev_t dev;

	if (fs->prior_source == NULL)
		return;
	if (root->sqfs != NULL)
		dev = root->sqfs->dev;
	else if (fstat(root->fd, &st) == 0)
		dev = st.st_dev;
	else
		return;
	unsigned prior = fs->prior_source(fs->prior_source_ctx, lz_image_name(image));
	lz_inode_source_for_image(fs->inodes, dev, image, prior);
}
