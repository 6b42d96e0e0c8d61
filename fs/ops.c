/* Namespace operations: lookup, attributes, links, directories, xattrs. */
#include "config.h"
#include "fs.h"
#include "log.h"
#include "names.h"
#include "nodeid.h"
#include "underlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

struct lz_inode *lz_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_fs *fs = lz_fs_of(req);

	if (ino == FUSE_ROOT_ID)
		return fs->root;
	return lz_inode_find(fs->inodes, ino);
}

static double entry_timeout(const struct lz_fs *fs)
{
	return fs->config->underlay_timeout;
}

/* The node id of a backing file, or 0 when it cannot have one. */
static uint64_t nodeid_of(struct lz_fs *fs, dev_t dev, ino_t ino)
{
	static atomic_bool warned;
	unsigned source = lz_inode_source_for_dev(fs->inodes, dev);

	if (source == 0 || !lz_nodeid_fits(ino)) {
		if (!atomic_exchange(&warned, true))
			lz_warn("inode %ju on device %u:%u cannot be given a node id; such files "
				"are hidden",
				(uintmax_t)ino, major(dev), minor(dev));
		return 0;
	}
	return lz_nodeid_make(source, ino);
}

/* Looks NAME up beneath PARENT, taking one lookup reference on the result. */
static int do_lookup(struct lz_fs *fs, struct lz_inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct stat st;
	int err, fd;

	err = lz_name_check(name);
	if (err != 0)
		return err;
	fd = lz_backing_open_path(parent->path_fd, name);
	if (fd < 0)
		return fd == -ELOOP || fd == -EXDEV ? ENOENT : -fd;
	err = lz_backing_stat(fd, &st);
	if (err != 0) {
		close(fd);
		return -err;
	}
	uint64_t nodeid = nodeid_of(fs, st.st_dev, st.st_ino);
	if (nodeid == 0) {
		close(fd);
		return EOVERFLOW;
	}
	if (lz_inode_ref(fs->inodes, nodeid, fd, st.st_mode) == NULL)
		return errno;
	memset(e, 0, sizeof(*e));
	e->ino = nodeid;
	e->attr = st;
	e->attr.st_ino = nodeid;
	e->attr_timeout = entry_timeout(fs);
	e->entry_timeout = entry_timeout(fs);
	return 0;
}

static void lz_op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *parent = lz_inode_of(req, parent_ino);
	struct fuse_entry_param e;
	int err;

	if (parent == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	err = do_lookup(fs, parent, name, &e);
	if (err == ENOENT) {
		/* A zero node id with a timeout is a negative entry the kernel caches. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = entry_timeout(fs);
		fuse_reply_entry(req, &e);
	} else if (err != 0) {
		fuse_reply_err(req, err);
	} else if (fuse_reply_entry(req, &e) != 0) {
		lz_inode_forget(fs->inodes, e.ino, 1);
	}
}

static void lz_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino != FUSE_ROOT_ID)
		lz_inode_forget(lz_fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void lz_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct lz_fs *fs = lz_fs_of(req);

	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino != FUSE_ROOT_ID)
			lz_inode_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void lz_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_inode *inode = lz_inode_of(req, ino);
	struct stat st;
	int err;

	if (inode == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	err = lz_backing_stat(inode->path_fd, &st);
	if (err != 0) {
		fuse_reply_err(req, -err);
		return;
	}
	st.st_ino = ino;
	fuse_reply_attr(req, &st, entry_timeout(lz_fs_of(req)));
}

static void lz_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_of(req, ino);
	char target[PATH_MAX + 1];
	ssize_t len;

	if (inode == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	len = readlinkat(inode->path_fd, "", target, sizeof(target));
	if (len < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)len >= sizeof(target)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	target[len] = '\0';
	fuse_reply_readlink(req, target);
}

struct lz_dir {
	DIR *stream;
	struct dirent *pending; /* read but not yet sent: it did not fit */
	off_t offset;
	unsigned source; /* node id source of the entries */
	uint64_t self_ino;
};

static struct lz_dir *dir_of(struct fuse_file_info *fi)
{
	return (struct lz_dir *)(uintptr_t)fi->fh;
}

static void lz_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode = lz_inode_of(req, ino);
	struct lz_dir *dir;
	struct stat st;
	int fd;

	if (inode == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	fd = openat(inode->path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	dir = calloc(1, sizeof(*dir));
	if (dir == NULL || fstat(fd, &st) == -1 || (dir->stream = fdopendir(fd)) == NULL) {
		int err = dir ? errno : ENOMEM;
		free(dir);
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	dir->source = lz_inode_source_for_dev(fs->inodes, st.st_dev);
	dir->self_ino = ino;
	fi->fh = (uintptr_t)dir;
	/* Listings stay in the kernel; it drops them itself when the directory's mtime changes. */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0) {
		closedir(dir->stream);
		free(dir);
	}
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static uint64_t listed_ino(const struct lz_dir *dir, const struct dirent *entry)
{
	if (strcmp(entry->d_name, ".") == 0)
		return dir->self_ino;
	if (dir->source == 0 || !lz_nodeid_fits(entry->d_ino))
		return 0;
	return lz_nodeid_make(dir->source, entry->d_ino);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, bool plus)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *parent = lz_inode_of(req, ino);
	struct lz_dir *dir = dir_of(fi);
	char *buf, *p;
	size_t rem = size;
	int err = 0;

	if (parent == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	buf = p = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (offset != dir->offset) {
		seekdir(dir->stream, offset);
		dir->pending = NULL;
		dir->offset = offset;
	}
	for (;;) {
		struct dirent *entry = dir->pending;
		size_t entsize;

		if (entry == NULL) {
			errno = 0;
			entry = readdir(dir->stream);
			if (entry == NULL) {
				err = errno;
				break;
			}
		}
		dir->pending = entry;
		if (plus) {
			struct fuse_entry_param e;
			if (is_dot_or_dotdot(entry->d_name)) {
				/* Node id 0: listed, but the kernel makes no inode of it. */
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = listed_ino(dir, entry);
				e.attr.st_mode = DTTOIF(entry->d_type);
			} else {
				err = do_lookup(fs, parent, entry->d_name, &e);
				if (err == ENOENT || err == EOVERFLOW) {
					/* Gone since it was listed, or hidden: skip it. */
					err = 0;
					dir->pending = NULL;
					dir->offset = entry->d_off;
					continue;
				}
				if (err != 0)
					break;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, entry->d_name, &e,
							 entry->d_off);
			if (entsize > rem) {
				if (e.ino != 0)
					lz_inode_forget(fs->inodes, e.ino, 1);
				break;
			}
		} else {
			struct stat st = {
				.st_ino = listed_ino(dir, entry),
				.st_mode = DTTOIF(entry->d_type),
			};
			entsize = fuse_add_direntry(req, p, rem, entry->d_name, &st, entry->d_off);
			if (entsize > rem)
				break;
		}
		p += entsize;
		rem -= entsize;
		dir->pending = NULL;
		dir->offset = entry->d_off;
	}
	if (err != 0 && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void lz_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			  struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, false);
}

static void lz_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			      struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, true);
}

static void lz_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_dir *dir = dir_of(fi);

	closedir(dir->stream);
	free(dir);
	fuse_reply_err(req, 0);
}

static void lz_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_of(req, ino);
	struct statvfs sv;

	if (inode == NULL)
		inode = lz_fs_of(req)->root;
	if (fstatvfs(inode->path_fd, &sv) == -1) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_statfs(req, &sv);
}

/* Symlinks answer from the link itself: their proc path would lead to the target. */
static ssize_t inode_xattr(struct lz_inode *inode, const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t len;

	if (S_ISLNK(inode->type)) {
		errno = name ? ENODATA : 0;
		return name ? -1 : 0;
	}
	lz_backing_proc_path(inode->path_fd, path, sizeof(path));
	len = name ? getxattr(path, name, buf, size) : listxattr(path, buf, size);
	return len;
}

static void reply_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct lz_inode *inode = lz_inode_of(req, ino);
	char *buf = NULL;
	ssize_t len;

	if (inode == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (size > 0 && (buf = malloc(size)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = inode_xattr(inode, name, buf, size);
	if (len < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else
		fuse_reply_buf(req, buf, (size_t)len);
	free(buf);
}

static void lz_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	reply_xattr(req, ino, name, size);
}

static void lz_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, ino, NULL, size);
}

static void lz_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct lz_inode *inode = lz_inode_of(req, ino);
	struct stat st;
	int err;

	if (inode == NULL) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (mask & W_OK) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* Only the mounting user gets here (allow_other implies default_permissions). */
	err = lz_backing_stat(inode->path_fd, &st);
	if (err == 0 && (mask & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111))
		err = -EACCES;
	fuse_reply_err(req, -err);
}

static void lz_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lz_fs *fs = userdata;

	fuse_set_feature_flag(conn, FUSE_CAP_CACHE_SYMLINKS);
	fuse_unset_feature_flag(conn, FUSE_CAP_WRITEBACK_CACHE);
	if (fs->config->open_mode == LZ_OPEN_CACHED) {
		if (fuse_set_feature_flag(conn, FUSE_CAP_NO_OPEN_SUPPORT)) {
			atomic_store(&fs->no_open, true);
			atomic_store(&fs->passthrough, false);
		} else {
			lz_warn("kernel cannot skip OPEN; open_mode=cached serves opens as "
				"passthrough");
		}
	}
	if (atomic_load(&fs->passthrough) && !fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		lz_warn("kernel has no FUSE passthrough; serving reads in the daemon");
		atomic_store(&fs->passthrough, false);
		atomic_store(&fs->passthrough_warned, true);
	}
	if (fs->config->io_uring && (conn->capable_ext & FUSE_CAP_OVER_IO_URING))
		lz_info("FUSE-over-io_uring enabled");
	else if (fs->config->io_uring)
		lz_warn("io_uring requested, but the kernel does not offer it "
			"(/sys/module/fuse/parameters/enable_uring); using /dev/fuse");
}

const struct fuse_lowlevel_ops lz_ops = {
	.init = lz_op_init,
	.lookup = lz_op_lookup,
	.forget = lz_op_forget,
	.forget_multi = lz_op_forget_multi,
	.getattr = lz_op_getattr,
	.readlink = lz_op_readlink,
	.opendir = lz_op_opendir,
	.readdir = lz_op_readdir,
	.readdirplus = lz_op_readdirplus,
	.releasedir = lz_op_releasedir,
	.open = lz_op_open,
	.read = lz_op_read,
	.release = lz_op_release,
	.statfs = lz_op_statfs,
	.getxattr = lz_op_getxattr,
	.listxattr = lz_op_listxattr,
	.access = lz_op_access,
};
