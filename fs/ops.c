/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The namespace operations: lookup, forget, attributes, links, statfs, and
 * the session's init (extended attributes: xattr.c). What a name means is
 * the core's (fscore/lookup.c); here it becomes a reply.
 */
#include "config.h"
#include "ops.h"
#include "defer.h"
#include "upgrade/inflight.h"
#include "upgrade/nodes.h"
#include "fscore/attr.h"
#include "fscore/revive.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool lz_serve_begin(fuse_req_t req, enum lz_op op, fuse_ino_t ino, const char *name,
		    struct lz_served *s)
{
	s->inflight = lz_daemon_of(req)->inflight;
	s->slot = lz_inflight_enter(s->inflight, lz_inflight_sig(op, ino, name));
	if (s->slot != LZ_INFLIGHT_POISON)
		return true;
	LZ_LOG_LIMITED(LZ_LOG_ERR, "answering EIO to a request the worker crashed on before");
	atomic_fetch_add(&lz_fs_of(req)->poisoned, 1);
	fuse_reply_err(req, EIO);
	return false;
}

void lz_serve_end(const struct lz_served *s)
{
	lz_inflight_leave(s->inflight, s->slot);
}

/*
 * After a crash: node id NODEID that the kernel kept from the dead worker,
 * brought back from the keeper's record (upgrade/nodes.h), with the lookup
 * count the kernel holds; NULL when it cannot be.
 */
static struct lz_inode *revive(struct lz_daemon *d, uint64_t nodeid)
{
	union lz_revive_handle h;
	char image[LZ_NODES_NAME_MAX], path[LZ_NODES_PATH_MAX];
	struct lz_image_file file;
	struct lz_node_record r;
	unsigned source = lz_nodeid_source(nodeid);

	if (d->revive_anchor < 0 || !lz_nodes_get(d->nodes, nodeid, &r, &h.fh))
		return NULL;
	/* The path recorded apart: a remote object's, or a directory's in the images tree. */
	if (source == 1)
		return lz_revive_underlay(&d->fs, d->revive_anchor, nodeid, &h.fh, r.map_index,
					  lz_nodes_get_path(d->nodes, nodeid, path) ? path : NULL);
	if (source == LZ_NODEID_SYNTH_SOURCE)
		return lz_revive_synth(&d->fs, nodeid, r.map_index);
	if (source == LZ_NODEID_TREE_SOURCE)
		return lz_nodes_get_path(d->nodes, nodeid, path)
			       ? lz_revive_tree(&d->fs, nodeid, path)
			       : NULL;
	if (source == LZ_NODEID_REMOTE_SOURCE)
		return lz_nodes_get_path(d->nodes, nodeid, path)
			       ? lz_revive_remote(&d->fs, nodeid, path)
			       : NULL;
	if (lz_nodes_source_image(d->nodes, source, image, &file))
		return lz_revive_image(&d->fs, nodeid, image, &file, &h.fh);
	return NULL;
}

struct lz_inode *lz_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode;

	if (ino == FUSE_ROOT_ID)
		return fs->root;
	inode = lz_inode_find(fs->inodes, ino);
	return inode != NULL ? inode : revive(lz_daemon_of(req), ino);
}

/* The kernel drops COUNT references on node id INO (one the dead worker gave: its record). */
static void forget_one(struct lz_daemon *d, fuse_ino_t ino, uint64_t count)
{
	atomic_fetch_add_explicit(&d->fs.forgotten, count, memory_order_relaxed);
	if (ino == FUSE_ROOT_ID)
		return;
	if (lz_inode_find(d->fs.inodes, ino) == NULL)
		lz_nodes_set(d->nodes, ino, &(struct lz_node_record){ 0 }, NULL);
	else
		lz_inode_forget(d->fs.inodes, ino, count);
}

struct lz_inode *lz_inode_or_estale(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_of(req, ino);

	if (inode == NULL)
		fuse_reply_err(req, ESTALE);
	return inode;
}

void lz_fuse_entry(const struct lz_entry *e, struct fuse_entry_param *out)
{
	memset(out, 0, sizeof(*out));
	out->ino = e->ino;
	out->attr = e->attr;
	out->attr_timeout = e->attr_timeout;
	out->entry_timeout = e->entry_timeout;
}

/* Answers a lookup with what lz_lookup gave (ERR, E). */
static void reply_lookup(struct lz_fs *fs, fuse_req_t req, int err, const struct lz_entry *e)
{
	struct fuse_entry_param fe;

	lz_fuse_entry(e, &fe);
	if (err == -ENOENT) {
		fuse_reply_entry(req, &fe); /* negative: lz_lookup set its timeout */
	} else if (err != 0) {
		fuse_reply_err(req, -err);
	} else if (fuse_reply_entry(req, &fe) != 0) {
		lz_inode_forget(fs->inodes, e->ino, 1);
	}
}

/* A lookup that may wait on a store, run by a deferral thread (defer.h). */
struct deferred_lookup {
	struct lz_fs *fs;
	struct lz_inode *parent; /* held: the kernel may forget it once answered */
	struct lz_inflight *inflight;
	uint64_t sig; /* recorded in flight while it runs */
	char name[];
};

static void run_lookup(struct lz_defer_job *job, fuse_req_t req, void *arg)
{
	struct deferred_lookup *l = arg;
	int slot = lz_inflight_enter(l->inflight, l->sig);
	struct lz_entry e;
	int err = slot == LZ_INFLIGHT_POISON ? -EIO : lz_lookup(l->fs, l->parent, l->name, &e);

	if (slot == LZ_INFLIGHT_POISON)
		atomic_fetch_add(&l->fs->poisoned, 1);

	if (lz_defer_claim(job))
		reply_lookup(l->fs, req, err, &e);
	else if (err == 0)
		lz_inode_forget(l->fs->inodes, e.ino, 1); /* answered EIO or EINTR meanwhile */
	lz_inflight_leave(l->inflight, slot);
	lz_inode_unhold(l->fs->inodes, l->parent);
	free(l);
}

static void drop_lookup(void *arg)
{
	struct deferred_lookup *l = arg;

	lz_inode_unhold(l->fs->inodes, l->parent);
	free(l);
}

/*
 * Hands the lookup to a deferral thread: 0, or -errno when it could not be
 * (it is then the caller's to answer).
 */
static int defer_lookup(fuse_req_t req, struct lz_inode *parent, const char *name, const char *key)
{
	struct lz_fs *fs = lz_fs_of(req);
	size_t len = strlen(name) + 1;
	struct deferred_lookup *l = malloc(sizeof(*l) + len);
	int err;

	if (l == NULL)
		return -ENOMEM;
	l->fs = fs;
	l->parent = parent;
	l->inflight = lz_daemon_of(req)->inflight;
	l->sig = lz_inflight_sig(LZ_OP_LOOKUP, parent->nodeid, name);
	memcpy(l->name, name, len);
	lz_inode_hold(fs->inodes, parent);
	err = lz_defer_submit(lz_daemon_of(req)->defer, key, req, run_lookup, drop_lookup, l);
	if (err != 0)
		drop_lookup(l);
	return err;
}

static void lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *parent = lz_inode_or_estale(req, parent_ino);
	char key[PATH_MAX + 1];
	struct lz_entry e;
	int err;

	if (parent == NULL)
		return;
	/* An image not mounted yet may wait on its store: never on a FUSE worker. */
	if (lz_lookup_may_block(fs, parent, name, key, sizeof(key))) {
		err = defer_lookup(req, parent, name, key);
		if (err != 0)
			fuse_reply_err(req, -err);
		return;
	}
	err = lz_lookup(fs, parent, name, &e);
	reply_lookup(fs, req, err, &e);
}

static void lz_op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_LOOKUP, parent_ino, name, &s))
		lookup(req, parent_ino, name);
	lz_serve_end(&s);
}

static void lz_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(lz_daemon_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void lz_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct lz_daemon *d = lz_daemon_of(req);

	for (size_t i = 0; i < count; i++)
		forget_one(d, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void lz_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_fs *fs = lz_fs_of(req);
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	struct stat st;
	int err;

	(void)fi;
	if (inode == NULL)
		return;
	err = lz_inode_getattr(fs, inode, &st);
	if (err != 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, lz_timeout_of(fs, inode));
}

static void lz_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_inode *inode = lz_inode_or_estale(req, ino);
	char target[PATH_MAX + 1];
	int err;

	if (inode == NULL)
		return;
	err = lz_inode_readlink(lz_fs_of(req), inode, target, sizeof(target));
	if (err != 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_readlink(req, target);
}

static void lz_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int err = lz_inode_statfs(lz_fs_of(req), lz_inode_of(req, ino), &sv);

	if (err != 0)
		fuse_reply_err(req, -err);
	else
		fuse_reply_statfs(req, &sv);
}

static void lz_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct lz_fs *fs = &((struct lz_daemon *)userdata)->fs;

	fuse_set_feature_flag(conn, FUSE_CAP_CACHE_SYMLINKS);
	/*
	 * Lookups in one directory run in parallel (libfuse leaves it off, and
	 * the kernel then sends one LOOKUP per directory at a time): one image
	 * waiting on its store must not hold the cold lookups of all the others
	 * at the root. Nothing here is written, so nothing needs them serial.
	 */
	fuse_set_feature_flag(conn, FUSE_CAP_PARALLEL_DIROPS);
	fuse_unset_feature_flag(conn, FUSE_CAP_WRITEBACK_CACHE);
	/*
	 * RELEASE and RELEASEDIR are background requests, 12 in flight by
	 * default: under 64 busy clients they queued by the thousand behind the
	 * OPENs, and each waiting RELEASEDIR keeps a directory stream open here.
	 */
	conn->max_background = 128;
	conn->congestion_threshold = 96;
	if (fs->settings->open_mode == LZ_OPEN_CACHED) {
		if (fuse_set_feature_flag(conn, FUSE_CAP_NO_OPEN_SUPPORT)) {
			atomic_store(&fs->no_open, true);
			atomic_store(&fs->passthrough, false);
		} else {
			lz_warn("kernel cannot skip OPEN; open_mode=cached serves opens as "
				"passthrough");
		}
	}
	/*
	 * The kernel enforces the ACLs GETXATTR gives it (and caches them with
	 * the attributes); default_permissions alone checks mode bits only.
	 */
	if (!fs->settings->acl)
		fuse_unset_feature_flag(conn, FUSE_CAP_POSIX_ACL);
	else if (!fuse_set_feature_flag(conn, FUSE_CAP_POSIX_ACL))
		lz_warn("kernel cannot enforce POSIX ACLs (no FUSE_POSIX_ACL); mode bits only");
	/* What we ask for (fuse_get_feature_flag tells what the kernel offers). */
	atomic_store(&fs->acl, (conn->want_ext & FUSE_CAP_POSIX_ACL) != 0);
	if (atomic_load(&fs->passthrough) && !fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		lz_warn("kernel has no FUSE passthrough; serving reads in the daemon");
		atomic_store(&fs->passthrough, false);
		atomic_store(&fs->passthrough_warned, true);
	}
	if (fs->settings->io_uring && (conn->capable_ext & FUSE_CAP_OVER_IO_URING))
		lz_info("FUSE-over-io_uring enabled");
	else if (fs->settings->io_uring)
		lz_warn("io_uring requested, but the kernel does not offer it "
			"(/sys/module/fuse/parameters/enable_uring); using /dev/fuse");
}

/*
 * The operations that do work which could crash the worker, recorded in
 * flight for the keeper (upgrade/inflight.h): one the kernel resends after
 * repeated crashes is answered EIO by lz_serve_begin instead.
 */
static void served_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_GETATTR, ino, NULL, &s))
		lz_op_getattr(req, ino, fi);
	lz_serve_end(&s);
}

static void served_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_READLINK, ino, NULL, &s))
		lz_op_readlink(req, ino);
	lz_serve_end(&s);
}

static void served_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_GETXATTR, ino, name, &s))
		lz_op_getxattr(req, ino, name, size);
	lz_serve_end(&s);
}

static void served_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_LISTXATTR, ino, NULL, &s))
		lz_op_listxattr(req, ino, size);
	lz_serve_end(&s);
}

static void served_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_OPENDIR, ino, NULL, &s))
		lz_op_opendir(req, ino, fi);
	lz_serve_end(&s);
}

static void served_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			   struct fuse_file_info *fi)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_READDIR, ino, NULL, &s))
		lz_op_readdir(req, ino, size, offset, fi);
	lz_serve_end(&s);
}

static void served_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
			       struct fuse_file_info *fi)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_READDIRPLUS, ino, NULL, &s))
		lz_op_readdirplus(req, ino, size, offset, fi);
	lz_serve_end(&s);
}

static void served_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_OPEN, ino, NULL, &s))
		lz_op_open(req, ino, fi);
	lz_serve_end(&s);
}

static void served_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct lz_served s;

	if (lz_serve_begin(req, LZ_OP_READ, ino, NULL, &s))
		lz_op_read(req, ino, size, off, fi);
	lz_serve_end(&s);
}

const struct fuse_lowlevel_ops lz_ops = {
	.init = lz_op_init,
	.lookup = lz_op_lookup,
	.forget = lz_op_forget,
	.forget_multi = lz_op_forget_multi,
	.getattr = served_getattr,
	.readlink = served_readlink,
	.opendir = served_opendir,
	.readdir = served_readdir,
	.readdirplus = served_readdirplus,
	.releasedir = lz_op_releasedir,
	.open = served_open,
	.read = served_read,
	.release = lz_op_release,
	.statfs = lz_op_statfs,
	.getxattr = served_getxattr,
	.listxattr = served_listxattr,
};
