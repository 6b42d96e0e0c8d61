/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The state in a takeover record: its lines are snapline.h's.
 *
 * Version 2 added "remote" lines and an image's KEY (the cached object a
 * remote image keeps open); a record without remote= is still written as
 * version 1, which a binary from before reads (a downgrade). The cache's
 * references are not in the record: the store's directory is handed over
 * closed, and the new daemon takes them again (lz_objects_adopt).
 *
 * Node ids are deterministic from (source, backing inode): with the same
 * sources the new daemon's own lookups find the inodes restored here.
 */
#include "config.h"
#include "snapshot.h"
#include "fscore/fs.h"
#include "handover.h"
#include "snapline.h"
#include "fscore/nodeid.h"
#include "images/sqfs.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct capture {
	struct lz_fs *fs;
	struct lz_handover *h;
	int version;
	struct lz_sqfs_image **handles;
	size_t nhandles, cap;
	size_t omitted; /* inodes whose descriptor could not be had */
	bool failed;
};

static void note_handle(struct capture *c, struct lz_sqfs_image *handle)
{
	if (handle == NULL)
		return;
	for (size_t i = 0; i < c->nhandles; i++)
		if (c->handles[i] == handle)
			return;
	if (c->nhandles == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		void *p = realloc(c->handles, cap * sizeof(*c->handles));
		if (p == NULL) {
			c->failed = true;
			return;
		}
		c->handles = p;
		c->cap = cap;
	}
	c->handles[c->nhandles++] = handle;
}

static void note_inode_handle(void *ctx, struct lz_inode *inode)
{
	note_handle(ctx, inode->sqfs);
}

static void note_image_handle(void *ctx, struct lz_image *image)
{
	struct lz_image_adopt a;

	lz_image_export(image, &a);
	note_handle(ctx, a.sqfs);
}

/* Written as lz_images_adopt takes it back (restore_image). */
static void write_image(void *ctx, struct lz_image *image)
{
	struct capture *c = ctx;
	struct lz_handover *h = c->h;
	struct lz_image_adopt a;

	lz_image_export(image, &a);
	struct lz_snapline l = { .kind = LZ_SNAP_IMAGE,
				 .u.image = {
					 .name = a.name,
					 .path = a.path,
					 .entry = a.entry,
					 .parent = a.parent,
					 .generation = a.generation,
					 .pins = a.pins,
					 .root_fd = lz_handover_add_fd(h, a.root_fd),
					 .slot = a.sqfs != NULL ? (int)a.sqfs->slot : -1,
					 .dev = (uint64_t)a.file_st.st_dev,
					 .ino = (uint64_t)a.file_st.st_ino,
					 .size = (int64_t)a.file_st.st_size,
					 .sec = (int64_t)a.file_st.st_mtim.tv_sec,
					 .nsec = (long)a.file_st.st_mtim.tv_nsec,
					 .has_key = c->version >= 2,
					 .key = a.source_key,
				 } };
	lz_snapline_encode(h, &l);
}

static void write_remote(struct lz_handover *h, struct lz_inode *inode, uint64_t kernel_refs)
{
	struct lz_snapline l = { .kind = LZ_SNAP_REMOTE };
	struct lz_snap_remote *r = &l.u.remote;

	pthread_mutex_lock(&inode->lock);
	*r = (struct lz_snap_remote){
		.nodeid = inode->nodeid,
		.type = inode->type,
		.nlookup = kernel_refs,
		.read_fd = lz_handover_add_fd(h, inode->read_fd),
		.backing_id = inode->backing_id,
		.opens = inode->opens,
		.held = inode->object_held,
		.size = inode->remote_size,
		.sec = (int64_t)inode->remote_mtime.tv_sec,
		.nsec = inode->remote_mtime.tv_nsec,
		.path = inode->remote_path, /* set once, never changed */
	};
	pthread_mutex_unlock(&inode->lock);
	lz_snapline_encode(h, &l);
}

/* With the table unlocked (lz_inode_foreach_held): the inode's lock is taken before it. */
static void write_inode(void *ctx, struct lz_inode *inode, uint64_t kernel_refs)
{
	struct capture *c = ctx;
	struct lz_handover *h = c->h;
	const struct lz_map_node *mapped = atomic_load(&inode->map_node);

	int path = -1;

	/* Held only by a deferred lookup (its request goes to the new process): not the kernel's.
	 */
	if (kernel_refs == 0 && inode->nodeid != LZ_ROOT_ID)
		return;
	if (inode->kind == LZ_INODE_REMOTE) {
		write_remote(h, inode, kernel_refs);
		return;
	}
	/* A copy: the inode's own may be closed for room before the record is sent. */
	if (inode->kind == LZ_INODE_FD && (path = lz_inode_path_dup(c->fs->inodes, inode)) < 0) {
		c->omitted++; /* gone, or out of descriptors: the new daemon answers ESTALE */
		return;
	}
	struct lz_snapline l = { .kind = LZ_SNAP_INODE };
	struct lz_snap_inode *i = &l.u.inode;
	pthread_mutex_lock(&inode->lock);
	int path_fd = lz_handover_add_made_fd(h, path);
	*i = (struct lz_snap_inode){
		.nodeid = inode->nodeid,
		.kind = (int)inode->kind,
		.type = inode->type,
		.nlookup = kernel_refs,
		.path_fd = path_fd,
		.read_fd = lz_handover_add_fd(h, inode->read_fd),
		.backing_id = inode->backing_id,
		.opens = inode->opens,
	};
	pthread_mutex_unlock(&inode->lock);
	i->image = inode->image != NULL ? lz_image_name(inode->image) : NULL;
	i->slot = inode->sqfs != NULL ? (int)inode->sqfs->slot : -1;
	i->sqfs_id = inode->sqfs_id;
	i->maprel = mapped != NULL ? mapped->relpath : NULL;
	i->tree = atomic_load(&inode->tree); /* set once, never changed */
	lz_snapline_encode(h, &l);
}

int lz_snapshot_version(const struct lz_fs *fs)
{
	return fs->remote != NULL ? 2 : LZ_RECORD_VERSION_OLDEST;
}

/* A remote image listed but not fetched has no file yet: its object, as listed, instead. */
static void write_handle(struct lz_handover *h, struct lz_sqfs_image *handle)
{
	struct lz_snapline l = { .kind = LZ_SNAP_SQFS, .u.sqfs = { .slot = handle->slot } };

	if (lz_sqfs_image_fetched(handle)) {
		l.u.sqfs.fd = lz_handover_add_fd(h, handle->file_fd);
		l.u.sqfs.kernel = handle->kernel ? 1 : 0;
	} else {
		l.u.sqfs = (struct lz_snap_sqfs){ .slot = handle->slot,
						  .fd = -1,
						  .unfetched = true,
						  .name = handle->fetch_name,
						  .size = handle->fetch_size,
						  .sec = (int64_t)handle->fetch_mtime.tv_sec,
						  .nsec = handle->fetch_mtime.tv_nsec };
	}
	lz_snapline_encode(h, &l);
}

int lz_snapshot_capture(struct lz_fs *fs, struct lz_handover *h, char *err, size_t errlen)
{
	static dev_t devs[LZ_NODEID_MAX_SOURCE + 1];
	struct capture c = { .fs = fs, .h = h, .version = lz_snapshot_version(fs) };
	unsigned n = lz_inode_sources(fs->inodes, devs, LZ_NODEID_MAX_SOURCE);

	for (unsigned i = 1; i <= n; i++)
		lz_snapline_encode(h,
				   &(struct lz_snapline){ .kind = LZ_SNAP_SOURCE,
							  .u.source = { i, (uint64_t)devs[i] } });
	lz_inode_foreach(fs->inodes, note_inode_handle, &c);
	if (fs->images != NULL)
		lz_images_foreach(fs->images, note_image_handle, &c);
	for (size_t i = 0; i < c.nhandles; i++)
		write_handle(h, c.handles[i]);
	free(c.handles);
	if (fs->images != NULL)
		lz_images_foreach(fs->images, write_image, &c);
	if (lz_inode_foreach_held(fs->inodes, write_inode, &c) != 0)
		c.failed = true;
	if (c.omitted > 0)
		lz_warn("upgrade: %zu inodes left out of the record (no descriptor): the kernel "
			"looks them up again",
			c.omitted);
	if (c.failed || h->failed) {
		snprintf(err, errlen, "out of memory capturing the inode table");
		return -1;
	}
	return 0;
}

/* Restoring: the line being read and the handles and images made so far. */
struct restore {
	struct lz_fs *fs;
	struct lz_handover *h;
	struct lz_sqfs_image **slots; /* by slot, taken from "sqfs" lines */
	size_t nslots;
	dev_t devs[LZ_NODEID_MAX_SOURCE + 1];
	unsigned nsources;
	char *err;
	size_t errlen;
	unsigned line;
	bool sources_set;
};

static int bad(struct restore *r, const char *what)
{
	snprintf(r->err, r->errlen, "state record line %u: %s", r->line, what);
	return -1;
}

static struct lz_sqfs_image *slot_handle(struct restore *r, long long slot)
{
	return slot >= 0 && (size_t)slot < r->nslots ? r->slots[slot] : NULL;
}

/* Makes room in r->slots for SLOT; false when out of memory. */
static bool grow_slots(struct restore *r, long long slot)
{
	if ((size_t)slot < r->nslots)
		return true;
	size_t cap = (size_t)slot + 1;
	void *p = realloc(r->slots, cap * sizeof(*r->slots));
	if (p == NULL)
		return false;
	r->slots = p;
	memset(r->slots + r->nslots, 0, (cap - r->nslots) * sizeof(*r->slots));
	r->nslots = cap;
	return true;
}

/* A remote image listed and not fetched. */
static int restore_unfetched(struct restore *r, const struct lz_snap_sqfs *s)
{
	char why[256];

	if (!grow_slots(r, s->slot))
		return bad(r, "out of memory");
	if (r->slots[s->slot] != NULL)
		return bad(r, "squashfuse slot named twice");
	struct timespec mtime = { .tv_sec = (time_t)s->sec, .tv_nsec = s->nsec };
	r->slots[s->slot] = lz_images_adopt_unfetched(r->fs->images, s->slot, s->name, s->size,
						      mtime, why, sizeof(why));
	return r->slots[s->slot] != NULL ? 0 : bad(r, why);
}

static int restore_sqfs(struct restore *r, const struct lz_snap_sqfs *s)
{
	char why[256];

	if (r->fs->images == NULL)
		return bad(r, "a squashfuse image, but this daemon has no images");
	if (s->unfetched)
		return restore_unfetched(r, s);
	int fd = lz_handover_take_fd(r->h, s->fd);
	if (fd < 0)
		return bad(r, "the squashfuse image file descriptor is missing");
	if (!grow_slots(r, s->slot)) {
		close(fd);
		return bad(r, "out of memory");
	}
	if (r->slots[s->slot] != NULL) {
		close(fd);
		return bad(r, "squashfuse slot named twice");
	}
	/* Without the field (an older daemon's record), as that daemon read it: trusted. */
	r->slots[s->slot] =
		lz_images_adopt_sqfs(r->fs->images, fd, s->slot, s->kernel != 0, why, sizeof(why));
	close(fd);
	if (r->slots[s->slot] == NULL)
		return bad(r, why);
	return 0;
}

static int restore_image(struct restore *r, const struct lz_snap_image *m)
{
	struct lz_image_adopt a = {
		.name = m->name,
		.path = m->path,
		.entry = m->entry,
		.parent = m->parent,
		.generation = m->generation,
		.pins = m->pins,
		.root_fd = -1,
		.source_key = m->key,
	};

	if (m->key != NULL && r->fs->remote == NULL)
		return bad(r, "an image from a remote, but this daemon has no remote=");
	if (r->fs->images == NULL)
		return bad(r, "an image, but this daemon has no images= or map=");
	a.file_st.st_dev = (dev_t)m->dev;
	a.file_st.st_ino = (ino_t)m->ino;
	a.file_st.st_size = (off_t)m->size;
	a.file_st.st_mtim.tv_sec = (time_t)m->sec;
	a.file_st.st_mtim.tv_nsec = m->nsec;
	if (m->root_fd >= 0 && (a.root_fd = lz_handover_take_fd(r->h, m->root_fd)) < 0)
		return bad(r, "the image's mount descriptor is missing");
	if (m->slot >= 0) {
		if ((a.sqfs = slot_handle(r, m->slot)) == NULL) {
			if (a.root_fd >= 0)
				close(a.root_fd);
			return bad(r, "an image names a squashfuse slot with no sqfs line");
		}
		lz_sqfs_image_get(a.sqfs);
	}
	if (lz_images_adopt(r->fs->images, &a) == NULL) {
		if (a.root_fd >= 0)
			close(a.root_fd);
		lz_sqfs_image_put(a.sqfs);
		return bad(r, "out of memory");
	}
	return 0;
}

static const struct lz_map_node *map_node_at(struct lz_fs *fs, const char *relpath)
{
	struct lz_map *map = atomic_load(&fs->map);
	const struct lz_map_node *node;
	char copy[4096], *save = NULL;

	if (map == NULL || strlen(relpath) >= sizeof(copy))
		return NULL;
	node = &map->root;
	snprintf(copy, sizeof(copy), "%s", relpath);
	for (char *c = strtok_r(copy, "/", &save); c != NULL && node != NULL;
	     c = strtok_r(NULL, "/", &save))
		node = lz_map_child(node, c);
	return node;
}

/*
 * The inode of a line, with the kernel's references and its open state; NULL
 * (READ_FD closed, INIT's handle reference dropped) with the reason said.
 */
static struct lz_inode *make_inode(struct restore *r, uint64_t nodeid, struct lz_inode_init *init,
				   uint64_t nlookup, int read_fd, long long backing,
				   long long opens)
{
	bool created;
	struct lz_inode *inode = lz_inode_ref_init(r->fs->inodes, nodeid, init, &created);

	if (inode == NULL || !created) {
		lz_sqfs_image_put(init->sqfs); /* not taken over by an inode */
		if (read_fd >= 0)
			close(read_fd);
		bad(r, inode == NULL ? "out of memory" : "a node id named twice");
		return NULL;
	}
	/* No request is served yet: nothing else sees the inode. */
	inode->nlookup = nlookup;
	inode->read_fd = read_fd;
	inode->backing_id = (int)backing;
	inode->opens = (unsigned)opens;
	return inode;
}

static int restore_inode(struct restore *r, const struct lz_snap_inode *i)
{
	struct lz_inode_init init = {
		.kind = (enum lz_inode_kind)i->kind,
		.type = i->type,
		.sqfs_id = i->sqfs_id,
		.path_fd = -1,
		.tree = i->tree,
	};

	if (i->image != NULL && (r->fs->images == NULL ||
				 (init.image = lz_images_find(r->fs->images, i->image)) == NULL))
		return bad(r, "an inode names an image with no image line");
	if (i->maprel != NULL && (init.map_node = map_node_at(r->fs, i->maprel)) == NULL)
		return bad(r, "an inode names a map path the map no longer has");
	if (i->kind == LZ_INODE_SQFS) {
		if ((init.sqfs = slot_handle(r, i->slot)) == NULL)
			return bad(r, "a squashfuse inode names a slot with no sqfs line");
		lz_sqfs_image_get(init.sqfs);
	} else if (i->kind == LZ_INODE_FD &&
		   (init.path_fd = lz_handover_take_fd(r->h, i->path_fd)) < 0) {
		return bad(r, "an inode's descriptor is missing");
	}
	int read_fd = i->read_fd >= 0 ? lz_handover_take_fd(r->h, i->read_fd) : -1;
	if (i->read_fd >= 0 && read_fd < 0) {
		if (init.path_fd >= 0)
			close(init.path_fd);
		lz_sqfs_image_put(init.sqfs);
		return bad(r, "an open inode's read descriptor is missing");
	}
	struct lz_inode *inode =
		make_inode(r, i->nodeid, &init, i->nlookup, read_fd, i->backing_id, i->opens);
	if (inode == NULL)
		return -1;
	if (inode->image != NULL && i->opens > 0)
		lz_image_files_opened(inode->image, i->opens);
	return 0;
}

static int restore_remote(struct restore *r, const struct lz_snap_remote *m)
{
	if (r->fs->objects == NULL)
		return bad(r, "a remote object, but this daemon has no remote_mode=objects");
	int read_fd = m->read_fd >= 0 ? lz_handover_take_fd(r->h, m->read_fd) : -1;
	if (m->read_fd >= 0 && read_fd < 0)
		return bad(r, "an open remote object's descriptor is missing");
	struct lz_inode_init init = {
		.kind = LZ_INODE_REMOTE,
		.path_fd = -1,
		.type = m->type,
		.remote_path = m->path,
	};
	struct lz_inode *inode =
		make_inode(r, m->nodeid, &init, m->nlookup, read_fd, m->backing_id, m->opens);
	if (inode == NULL)
		return -1;
	inode->object_held = m->held;
	inode->remote_size = m->size;
	inode->remote_mtime = (struct timespec){ .tv_sec = (time_t)m->sec, .tv_nsec = m->nsec };
	return 0;
}

/* "source N DEV": the sources come first, numbered from 1. */
static int restore_source(struct restore *r, const struct lz_snap_source *s)
{
	if (s->index != r->nsources + 1 || r->sources_set)
		return bad(r, "malformed source line");
	r->devs[++r->nsources] = (dev_t)s->dev;
	return 0;
}

/* One decoded line. */
static int restore_line(struct restore *r, const struct lz_snapline *l)
{
	if (l->kind == LZ_SNAP_SOURCE)
		return restore_source(r, &l->u.source);
	/* The sources are complete before anything can look a node id up. */
	if (!r->sources_set && lz_inode_set_sources(r->fs->inodes, r->devs, r->nsources) != 0)
		return bad(r, "too many sources");
	r->sources_set = true;
	switch (l->kind) {
	case LZ_SNAP_SQFS:
		return restore_sqfs(r, &l->u.sqfs);
	case LZ_SNAP_IMAGE:
		return restore_image(r, &l->u.image);
	case LZ_SNAP_REMOTE:
		return restore_remote(r, &l->u.remote);
	default:
		return restore_inode(r, &l->u.inode);
	}
}

int lz_snapshot_restore(struct lz_fs *fs, struct lz_handover *h, char *err, size_t errlen)
{
	struct restore *r = calloc(1, sizeof(*r));
	char *save = NULL;
	int rc = 0;

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->fs = fs;
	r->h = h;
	r->err = err;
	r->errlen = errlen;
	/* strtok_r on a copy: the caller reads the other lines of the same text. */
	char *text = strdup(h->text);
	if (text == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (char *line = strtok_r(text, "\n", &save); line != NULL && rc == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		struct lz_snapline l;
		const char *why;
		r->line++;
		int got = lz_snapline_decode(line, &l, &why);
		if (got < 0)
			rc = bad(r, why);
		else if (got > 0)
			rc = restore_line(r, &l);
	}
	if (rc == 0 && lz_inode_find(fs->inodes, LZ_ROOT_ID) == NULL)
		rc = bad(r, "no root inode");
	/* Each inode and image took its own reference on a handle; the slot's is dropped. */
	for (size_t i = 0; i < r->nslots; i++)
		lz_sqfs_image_put(r->slots[i]);
	free(r->slots);
	free(text);
	free(r);
	return rc;
}
