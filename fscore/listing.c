#include "config.h"
#include "listing.h"
#include "objects.h"
#include "common/names.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct listed {
	char *name;
	unsigned char type;
	bool image; /* an image, mapped path or object: listed without a lookup */
	ino_t backing_ino;
};

struct lz_listing {
	DIR *stream;
	struct dirent *pending; /* read but not yet consumed */
	off_t offset;
	unsigned source; /* node id source of the entries */
	uint64_t self_ino;
	bool is_snapshot; /* a union, sorted: offsets are indexes */
	struct listed *snapshot;
	size_t count, cap;
};

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Never 0 for the dot entries: glibc's readdir skips entries with d_ino 0. */
static uint64_t listed_nodeid(const struct lz_listing *l, const char *name, ino_t backing_ino)
{
	bool dot = is_dot_or_dotdot(name);

	if (strcmp(name, ".") == 0)
		return l->self_ino;
	if (l->source == 0 || !lz_nodeid_fits(backing_ino))
		return dot ? l->self_ino : 0;
	return lz_nodeid_make(l->source, backing_ino);
}

/* Until an image is resolved its inode number is unknown; list a stable stand-in. */
static uint64_t unresolved_image_ino(const char *name)
{
	uint64_t h = lz_hash64(name, UINT64_C(1469598103934665603));
	return lz_nodeid_make(LZ_NODEID_LISTED_SOURCE, (h & LZ_NODEID_INO_MASK) | 2);
}

static int snapshot_add(struct lz_listing *l, const char *name, unsigned char type, bool image,
			ino_t backing_ino)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct listed *grown = realloc(l->snapshot, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->snapshot = grown;
		l->cap = cap;
	}
	char *copy = strdup(name);
	if (copy == NULL)
		return -ENOMEM;
	l->snapshot[l->count++] = (struct listed){
		.name = copy, .type = type, .image = image, .backing_ino = backing_ino
	};
	return 0;
}

struct image_names {
	struct lz_listing *l;
	int err;
};

static void add_image_name(void *ctx, const char *name)
{
	struct image_names *in = ctx;

	if (in->err == 0)
		in->err = snapshot_add(in->l, name, DT_DIR, true, 0);
}

/* By name; of equal names the image comes first and is the one kept. */
static int compare_listed(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c != 0 ? c : (int)y->image - (int)x->image;
}

/* The backing directory's entries, or "." and ".." for a directory without one. */
static int add_backing(struct lz_listing *l)
{
	struct dirent *entry;
	int err = 0;

	if (l->stream == NULL) {
		err = snapshot_add(l, ".", DT_DIR, false, 0);
		return err == 0 ? snapshot_add(l, "..", DT_DIR, false, 0) : err;
	}
	while (err == 0 && (errno = 0, entry = readdir(l->stream)) != NULL)
		err = snapshot_add(l, entry->d_name, entry->d_type, false, entry->d_ino);
	return err == 0 && errno != 0 ? -errno : err;
}

static int add_mapped(struct lz_listing *l, const struct lz_map_node *mapped)
{
	int err = 0;

	for (size_t i = 0; err == 0 && mapped != NULL && i < mapped->nchildren; i++) {
		const struct lz_map_node *child = mapped->children[i];
		/* A mapped image whose file is missing would list a name that cannot be looked up.
		 */
		if (child->image != NULL && access(child->image, R_OK) != 0)
			continue;
		err = snapshot_add(l, child->name, DT_DIR, true, 0);
	}
	return err;
}

/* Listed without a lookup: a remote directory can hold 150k objects. */
static int add_objects(struct lz_fs *fs, struct lz_listing *l, const char *remote_dir)
{
	struct lz_source_entry *entries;
	size_t count;
	int err = lz_objects_list(fs, remote_dir, &entries, &count);

	if (err != 0)
		return err;
	for (size_t i = 0; err == 0 && i < count; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s%s%s", remote_dir, *remote_dir ? "/" : "",
			 entries[i].name);
		err = snapshot_add(l, entries[i].name, entries[i].is_dir ? DT_DIR : DT_REG, true,
				   (ino_t)lz_objects_nodeid(path));
	}
	free(entries);
	return err;
}

/* Sorts the snapshot and keeps the first of equal names. */
static void sort_unique(struct lz_listing *l)
{
	size_t kept = 0;

	qsort(l->snapshot, l->count, sizeof(*l->snapshot), compare_listed);
	for (size_t i = 0; i < l->count; i++) {
		if (kept > 0 && strcmp(l->snapshot[kept - 1].name, l->snapshot[i].name) == 0) {
			free(l->snapshot[i].name);
			continue;
		}
		l->snapshot[kept++] = l->snapshot[i];
	}
	l->count = kept;
}

/* The union of the underlay listing, the map's children, the remote and (at the root) images. */
static int build_snapshot(struct lz_fs *fs, struct lz_listing *l, const struct lz_map_node *mapped,
			  bool root, const char *remote_dir)
{
	struct image_names in = { .l = l };
	int err;

	l->is_snapshot = true;
	err = add_backing(l);
	if (err == 0)
		err = add_mapped(l, mapped);
	if (err == 0 && remote_dir != NULL)
		err = add_objects(fs, l, remote_dir);
	if (err == 0 && root && fs->images != NULL)
		lz_images_list(fs->images, add_image_name, &in);
	if (err == 0)
		err = in.err;
	if (err == 0)
		sort_unique(l);
	return err;
}

void lz_listing_free(struct lz_listing *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		free(l->snapshot[i].name);
	free(l->snapshot);
	if (l->stream != NULL)
		closedir(l->stream);
	free(l);
}

/* The backing directory of INODE, for reading. */
static int open_stream(struct lz_fs *fs, struct lz_inode *inode, struct lz_listing *l)
{
	struct stat st;
	int fd = openat(inode->path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) == -1 || (l->stream = fdopendir(fd)) == NULL) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	l->source = lz_inode_source_for_dev(fs->inodes, st.st_dev);
	return 0;
}

int lz_listing_open(struct lz_fs *fs, struct lz_inode *inode, uint64_t ino, bool *cache,
		    struct lz_listing **out)
{
	struct lz_listing *l = calloc(1, sizeof(*l));
	int err = 0;

	*out = NULL;
	*cache = false;
	if (l == NULL)
		return -ENOMEM;
	l->self_ino = ino;
	if (inode->kind == LZ_INODE_SQFS) {
		/* Listed by the glue straight from the image, with its own stable offsets. */
		l->is_snapshot = true;
		*cache = true;
	} else if (inode->kind == LZ_INODE_REMOTE) {
		err = build_snapshot(fs, l, NULL, false, inode->remote_path);
	} else {
		if (inode->kind == LZ_INODE_FD)
			err = open_stream(fs, inode, l);
		const struct lz_map_node *mapped = inode->image == NULL ? inode->map_node : NULL;
		bool root = ino == LZ_ROOT_ID;
		bool objects = root && fs->objects != NULL;
		if (err == 0 && ((mapped != NULL && mapped->nchildren > 0) ||
				 (root && fs->images != NULL) || objects || l->stream == NULL))
			err = build_snapshot(fs, l, mapped, root, objects ? "" : NULL);
		else
			*cache = err == 0;
	}
	if (err != 0) {
		lz_listing_free(l);
		return err;
	}
	*out = l;
	return 0;
}

void lz_listing_seek(struct lz_listing *l, off_t offset)
{
	if (offset == l->offset)
		return;
	if (!l->is_snapshot)
		seekdir(l->stream, offset);
	l->pending = NULL;
	l->offset = offset;
}

static int peek_snapshot(struct lz_listing *l, struct lz_listed *out)
{
	size_t i = (size_t)l->offset;

	if (i >= l->count)
		return 0;
	const struct listed *e = &l->snapshot[i];
	out->name = e->name;
	out->type = e->type;
	/* Entries listed without a lookup carry their node id (remote) or get a stand-in. */
	if (e->image)
		out->ino = e->backing_ino ? e->backing_ino : unresolved_image_ino(e->name);
	else
		out->ino = listed_nodeid(l, e->name, e->backing_ino);
	out->lookup = !e->image && !is_dot_or_dotdot(e->name);
	out->next = (off_t)(i + 1);
	return 1;
}

int lz_listing_peek(struct lz_listing *l, struct lz_listed *out)
{
	if (l->is_snapshot)
		return peek_snapshot(l, out);
	if (l->pending == NULL) {
		errno = 0;
		l->pending = readdir(l->stream);
		if (l->pending == NULL)
			return -errno;
	}
	out->name = l->pending->d_name;
	out->type = l->pending->d_type;
	out->ino = listed_nodeid(l, l->pending->d_name, l->pending->d_ino);
	out->lookup = !is_dot_or_dotdot(l->pending->d_name);
	out->next = l->pending->d_off;
	return 1;
}

void lz_listing_advance(struct lz_listing *l)
{
	if (l->is_snapshot) {
		l->offset++;
		return;
	}
	if (l->pending != NULL)
		l->offset = l->pending->d_off;
	l->pending = NULL;
}
