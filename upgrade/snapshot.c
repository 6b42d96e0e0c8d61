/*
 * Record lines (fields after the first word; strings escaped by
 * lz_handover_string, descriptors as indexes into the record, -1 for none):
 *
 *   source N DEV                     node id source N is device DEV
 *   sqfs SLOT FD [KERNEL]            a squashfuse handle: its slot, the image file, and
 *                                    1 when the kernel may mount it (trusted)
 *   sqfs SLOT -1 NAME SIZE SEC NSEC  ...of a remote image not fetched: its object as listed
 *   image NAME PATH PARENT ENTRY GENERATION PINS ROOT_FD SLOT DEV INO SIZE SEC NSEC [KEY]
 *   inode NODEID KIND TYPE NLOOKUP PATH_FD READ_FD BACKING_ID OPENS IMAGE SLOT SQFS_ID MAPREL
 *   remote NODEID TYPE NLOOKUP READ_FD BACKING_ID OPENS HELD SIZE SEC NSEC PATH
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
	lz_handover_printf(h, "image");
	lz_handover_string(h, a.name);
	lz_handover_string(h, a.path);
	lz_handover_printf(h, " %" PRIu64, a.parent);
	lz_handover_string(h, a.entry);
	lz_handover_printf(h, " %u %u %d %ld %ju %ju %jd %jd %ld", a.generation, a.pins,
			   lz_handover_add_fd(h, a.root_fd),
			   a.sqfs != NULL ? (long)a.sqfs->slot : -1L, (uintmax_t)a.file_st.st_dev,
			   (uintmax_t)a.file_st.st_ino, (intmax_t)a.file_st.st_size,
			   (intmax_t)a.file_st.st_mtim.tv_sec, (long)a.file_st.st_mtim.tv_nsec);
	if (c->version >= 2)
		lz_handover_string(h, a.source_key);
	lz_handover_printf(h, "\n");
}

static void write_remote(struct lz_handover *h, struct lz_inode *inode, uint64_t kernel_refs)
{
	pthread_mutex_lock(&inode->lock);
	lz_handover_printf(h, "remote %" PRIu64 " %u %" PRIu64 " %d %d %u %d %" PRIu64 " %jd %ld",
			   inode->nodeid, (unsigned)inode->type, kernel_refs,
			   lz_handover_add_fd(h, inode->read_fd), inode->backing_id, inode->opens,
			   inode->object_held, inode->remote_size,
			   (intmax_t)inode->remote_mtime.tv_sec, inode->remote_mtime.tv_nsec);
	pthread_mutex_unlock(&inode->lock);
	lz_handover_string(h, inode->remote_path);
	lz_handover_printf(h, "\n");
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
	pthread_mutex_lock(&inode->lock);
	lz_handover_printf(h, "inode %" PRIu64 " %d %u %" PRIu64 " %d %d %d %u", inode->nodeid,
			   (int)inode->kind, (unsigned)inode->type, kernel_refs,
			   lz_handover_add_made_fd(h, path), lz_handover_add_fd(h, inode->read_fd),
			   inode->backing_id, inode->opens);
	pthread_mutex_unlock(&inode->lock);
	lz_handover_string(h, inode->image != NULL ? lz_image_name(inode->image) : NULL);
	lz_handover_printf(h, " %ld %" PRIu64, inode->sqfs != NULL ? (long)inode->sqfs->slot : -1L,
			   inode->sqfs_id);
	lz_handover_string(h, mapped != NULL ? mapped->relpath : NULL);
	lz_handover_printf(h, "\n");
}

int lz_snapshot_version(const struct lz_fs *fs)
{
	return fs->remote != NULL ? 2 : LZ_RECORD_VERSION_OLDEST;
}

/* A remote image listed but not fetched has no file yet: its object, as listed, instead. */
static void write_handle(struct lz_handover *h, struct lz_sqfs_image *handle)
{
	if (lz_sqfs_image_fetched(handle)) {
		lz_handover_printf(h, "sqfs %u %d %d\n", handle->slot,
				   lz_handover_add_fd(h, handle->file_fd), handle->kernel ? 1 : 0);
		return;
	}
	lz_handover_printf(h, "sqfs %u -1", handle->slot);
	lz_handover_string(h, handle->fetch_name);
	lz_handover_printf(h, " %" PRIu64 " %lld %ld\n", handle->fetch_size,
			   (long long)handle->fetch_mtime.tv_sec, handle->fetch_mtime.tv_nsec);
}

int lz_snapshot_capture(struct lz_fs *fs, struct lz_handover *h, char *err, size_t errlen)
{
	static dev_t devs[LZ_NODEID_MAX_SOURCE + 1];
	struct capture c = { .fs = fs, .h = h, .version = lz_snapshot_version(fs) };
	unsigned n = lz_inode_sources(fs->inodes, devs, LZ_NODEID_MAX_SOURCE);

	for (unsigned i = 1; i <= n; i++)
		lz_handover_printf(h, "source %u %ju\n", i, (uintmax_t)devs[i]);
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

/* Splits the line's fields after its first word into F; their number. */
static int split(char *rest, char **f, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(rest, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = t;
	}
	return n;
}

static bool num(const char *s, long long min, long long max, long long *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool unum(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	if (*s == '-')
		return false;
	*out = strtoull(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
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

/* "sqfs SLOT -1 NAME SIZE SEC NSEC": a remote image listed and not fetched. */
static int restore_unfetched(struct restore *r, char **f, long long slot)
{
	bool ok = true;
	char *name = lz_handover_unescape(f[2], &ok), why[256];
	long long sec, nsec;
	uint64_t size;

	if (!ok || name == NULL || !unum(f[3], &size) || !num(f[4], LLONG_MIN, LLONG_MAX, &sec) ||
	    !num(f[5], 0, 999999999, &nsec))
		return bad(r, "malformed sqfs line");
	if (!grow_slots(r, slot))
		return bad(r, "out of memory");
	if (r->slots[slot] != NULL)
		return bad(r, "squashfuse slot named twice");
	struct timespec mtime = { .tv_sec = sec, .tv_nsec = nsec };
	r->slots[slot] = lz_images_adopt_unfetched(r->fs->images, (unsigned)slot, name, size, mtime,
						   why, sizeof(why));
	return r->slots[slot] != NULL ? 0 : bad(r, why);
}

static int restore_sqfs(struct restore *r, char **f, int n)
{
	long long slot, fdi;
	char why[256];

	if ((n != 2 && n != 3 && n != 6) || !num(f[0], 0, 65535, &slot) ||
	    !num(f[1], -1, INT32_MAX, &fdi))
		return bad(r, "malformed sqfs line");
	if (r->fs->images == NULL)
		return bad(r, "a squashfuse image, but this daemon has no images");
	if (n == 6)
		return restore_unfetched(r, f, slot);
	int fd = lz_handover_take_fd(r->h, (long)fdi);
	if (fd < 0)
		return bad(r, "the squashfuse image file descriptor is missing");
	if (!grow_slots(r, slot)) {
		close(fd);
		return bad(r, "out of memory");
	}
	if (r->slots[slot] != NULL) {
		close(fd);
		return bad(r, "squashfuse slot named twice");
	}
	/* Without the field (an older daemon's record), as that daemon read it. */
	bool kernel = n < 3 || strcmp(f[2], "1") == 0;
	r->slots[slot] =
		lz_images_adopt_sqfs(r->fs->images, fd, (unsigned)slot, kernel, why, sizeof(why));
	close(fd);
	if (r->slots[slot] == NULL)
		return bad(r, why);
	return 0;
}

static int restore_image(struct restore *r, char **f, int n)
{
	long long gen, pins, fdi, slot, size, sec, nsec;
	uint64_t parent, dev, ino;
	struct lz_image_adopt a = { .root_fd = -1 };
	bool ok1, ok2, ok3;

	if (n != 13 && n != 14)
		return bad(r, "malformed image line");
	if (n == 14) {
		bool ok;
		a.source_key = lz_handover_unescape(f[13], &ok);
		if (!ok)
			return bad(r, "malformed image line");
		if (a.source_key != NULL && r->fs->remote == NULL)
			return bad(r, "an image from a remote, but this daemon has no remote=");
	}
	a.name = lz_handover_unescape(f[0], &ok1);
	a.path = lz_handover_unescape(f[1], &ok2);
	a.entry = lz_handover_unescape(f[3], &ok3);
	if (!ok1 || !ok2 || !ok3 || a.name == NULL || !unum(f[2], &parent) ||
	    !num(f[4], 0, UINT32_MAX, &gen) || !num(f[5], 0, UINT32_MAX, &pins) ||
	    !num(f[6], -1, INT32_MAX, &fdi) || !num(f[7], -1, 65535, &slot) || !unum(f[8], &dev) ||
	    !unum(f[9], &ino) || !num(f[10], 0, INT64_MAX, &size) ||
	    !num(f[11], INT64_MIN, INT64_MAX, &sec) || !num(f[12], 0, 999999999, &nsec))
		return bad(r, "malformed image line");
	if (r->fs->images == NULL)
		return bad(r, "an image, but this daemon has no images= or map=");
	a.parent = parent;
	a.generation = (unsigned)gen;
	a.pins = (unsigned)pins;
	a.file_st.st_dev = (dev_t)dev;
	a.file_st.st_ino = (ino_t)ino;
	a.file_st.st_size = (off_t)size;
	a.file_st.st_mtim.tv_sec = (time_t)sec;
	a.file_st.st_mtim.tv_nsec = (long)nsec;
	if (fdi >= 0 && (a.root_fd = lz_handover_take_fd(r->h, (long)fdi)) < 0)
		return bad(r, "the image's mount descriptor is missing");
	if (slot >= 0) {
		if ((a.sqfs = slot_handle(r, slot)) == NULL) {
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

static int restore_inode(struct restore *r, char **f, int n)
{
	long long kind, type, pfdi, rfdi, backing, opens, slot;
	uint64_t nodeid, nlookup, sqfs_id;
	struct lz_inode_init init = { .path_fd = -1 };
	const char *image_name, *maprel;
	bool ok1, ok2;

	if (n != 12)
		return bad(r, "malformed inode line");
	image_name = lz_handover_unescape(f[8], &ok1);
	maprel = lz_handover_unescape(f[11], &ok2);
	if (!ok1 || !ok2 || !unum(f[0], &nodeid) || nodeid == 0 ||
	    !num(f[1], LZ_INODE_FD, LZ_INODE_SQFS, &kind) || !num(f[2], 0, 0177777, &type) ||
	    !unum(f[3], &nlookup) || !num(f[4], -1, INT32_MAX, &pfdi) ||
	    !num(f[5], -1, INT32_MAX, &rfdi) || !num(f[6], 0, INT32_MAX, &backing) ||
	    !num(f[7], 0, UINT32_MAX, &opens) || !num(f[9], -1, 65535, &slot) ||
	    !unum(f[10], &sqfs_id))
		return bad(r, "malformed inode line");
	init.kind = (enum lz_inode_kind)kind;
	init.type = (mode_t)type;
	init.sqfs_id = sqfs_id;
	if (image_name != NULL &&
	    (r->fs->images == NULL ||
	     (init.image = lz_images_find(r->fs->images, image_name)) == NULL))
		return bad(r, "an inode names an image with no image line");
	if (maprel != NULL && (init.map_node = map_node_at(r->fs, maprel)) == NULL)
		return bad(r, "an inode names a map path the map no longer has");
	if (kind == LZ_INODE_SQFS) {
		if ((init.sqfs = slot_handle(r, slot)) == NULL)
			return bad(r, "a squashfuse inode names a slot with no sqfs line");
		lz_sqfs_image_get(init.sqfs);
	} else if (kind == LZ_INODE_FD &&
		   (init.path_fd = lz_handover_take_fd(r->h, (long)pfdi)) < 0) {
		return bad(r, "an inode's descriptor is missing");
	}
	int read_fd = rfdi >= 0 ? lz_handover_take_fd(r->h, (long)rfdi) : -1;
	if (rfdi >= 0 && read_fd < 0) {
		if (init.path_fd >= 0)
			close(init.path_fd);
		lz_sqfs_image_put(init.sqfs);
		return bad(r, "an open inode's read descriptor is missing");
	}
	struct lz_inode *inode = make_inode(r, nodeid, &init, nlookup, read_fd, backing, opens);
	if (inode == NULL)
		return -1;
	if (inode->image != NULL && opens > 0)
		lz_image_files_opened(inode->image, (unsigned)opens);
	return 0;
}

static int restore_remote(struct restore *r, char **f, int n)
{
	long long type, rfdi, backing, opens, held, sec, nsec;
	uint64_t nodeid, nlookup, size;
	bool ok;

	if (n != 11)
		return bad(r, "malformed remote line");
	const char *path = lz_handover_unescape(f[10], &ok);
	if (!ok || path == NULL || !unum(f[0], &nodeid) ||
	    lz_nodeid_source(nodeid) != LZ_NODEID_REMOTE_SOURCE || !num(f[1], 0, 0177777, &type) ||
	    (!S_ISREG(type) && !S_ISDIR(type)) || !unum(f[2], &nlookup) ||
	    !num(f[3], -1, INT32_MAX, &rfdi) || !num(f[4], 0, INT32_MAX, &backing) ||
	    !num(f[5], 0, UINT32_MAX, &opens) || !num(f[6], 0, 1, &held) || !unum(f[7], &size) ||
	    !num(f[8], INT64_MIN, INT64_MAX, &sec) || !num(f[9], 0, 999999999, &nsec))
		return bad(r, "malformed remote line");
	if (r->fs->objects == NULL)
		return bad(r, "a remote object, but this daemon has no remote_mode=objects");
	int read_fd = rfdi >= 0 ? lz_handover_take_fd(r->h, (long)rfdi) : -1;
	if (rfdi >= 0 && read_fd < 0)
		return bad(r, "an open remote object's descriptor is missing");
	struct lz_inode_init init = {
		.kind = LZ_INODE_REMOTE,
		.path_fd = -1,
		.type = (mode_t)type,
		.remote_path = path,
	};
	struct lz_inode *inode = make_inode(r, nodeid, &init, nlookup, read_fd, backing, opens);
	if (inode == NULL)
		return -1;
	inode->object_held = held != 0;
	inode->remote_size = size;
	inode->remote_mtime = (struct timespec){ .tv_sec = (time_t)sec, .tv_nsec = (long)nsec };
	return 0;
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
		char *f[16], *rest = strchr(line, ' ');
		int n;
		r->line++;
		if (rest == NULL)
			continue;
		*rest++ = '\0';
		if (strcmp(line, "source") == 0) {
			long long i;
			uint64_t dev;
			n = split(rest, f, 16);
			if (n != 2 || !num(f[0], 1, LZ_NODEID_REMOTE_SOURCE - 1, &i) ||
			    (unsigned)i != r->nsources + 1 || !unum(f[1], &dev) || r->sources_set)
				rc = bad(r, "malformed source line");
			else
				r->devs[++r->nsources] = (dev_t)dev;
		} else if (strcmp(line, "sqfs") == 0 || strcmp(line, "image") == 0 ||
			   strcmp(line, "inode") == 0 || strcmp(line, "remote") == 0) {
			/* The sources are complete before anything can look a node id up. */
			if (!r->sources_set &&
			    lz_inode_set_sources(fs->inodes, r->devs, r->nsources) != 0) {
				rc = bad(r, "too many sources");
				break;
			}
			r->sources_set = true;
			n = split(rest, f, 16);
			if (line[1] == 'q')
				rc = restore_sqfs(r, f, n);
			else if (line[1] == 'm')
				rc = restore_image(r, f, n);
			else if (line[1] == 'e')
				rc = restore_remote(r, f, n);
			else
				rc = restore_inode(r, f, n);
		}
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
