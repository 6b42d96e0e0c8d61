/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The images tree (images.h, "Nested trees"): its directories, opened beneath
 * the images directory without following a symlink, and their listings, each
 * read by its own catalog (catalog.h) so a directory on a store that stopped
 * answering holds nobody past the deadline. A catalog is made on the first
 * listing of its directory and kept for the registry's life: a tree has as
 * many as it has directories that were listed.
 */
#include "config.h"
#include "images_int.h"
#include "catalog.h"
#include "common/names.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A directory of the tree whose listing was asked for. */
struct lz_tree_dir {
	char *rel;
	struct lz_catalog *catalog;
	struct lz_tree_dir *next;
};

int lz_images_tree_depth(const char *rel)
{
	int depth = 0;
	const char *p = rel;

	if (*rel == '\0')
		return 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		char name[NAME_MAX + 1];
		if (len == 0 || len > NAME_MAX)
			return -1;
		memcpy(name, p, len);
		name[len] = '\0';
		if (lz_name_check(name) != 0 || ++depth > LZ_IMAGES_DEPTH + 1)
			return -1;
		if (slash == NULL)
			return depth;
		p = slash + 1;
	}
}

int lz_images_tree_open(struct lz_images *images, const char *rel)
{
	struct open_how how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int depth = lz_images_tree_depth(rel);

	if (images->dir_fd < 0 || images->source != NULL || depth < 0 || depth > LZ_IMAGES_DEPTH)
		return -ENOENT;
	if (depth == 0) {
		int dup = fcntl(images->dir_fd, F_DUPFD_CLOEXEC, 3);
		return dup < 0 ? -errno : dup;
	}
	long fd = syscall(SYS_openat2, images->dir_fd, rel, &how, sizeof(how));
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR || errno == EXDEV ? -ENOENT : -errno;
	return (int)fd;
}

bool lz_images_tree_dir(struct lz_images *images, const char *rel)
{
	int fd = *rel != '\0' ? lz_images_tree_open(images, rel) : -1;

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* The catalog of directory REL of the tree, made at the first call; NULL: none (errno). */
static struct lz_catalog *tree_catalog(struct lz_images *images, const char *rel)
{
	struct lz_tree_dir *d;

	if (*rel == '\0')
		return images->catalog;
	pthread_mutex_lock(&images->tree_lock);
	for (d = images->tree_dirs; d != NULL && strcmp(d->rel, rel) != 0; d = d->next)
		;
	pthread_mutex_unlock(&images->tree_lock);
	if (d != NULL)
		return d->catalog;
	/* Opened unlocked: it may wait on the store. Two first listings may race: one is kept. */
	int fd = lz_images_tree_open(images, rel);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	char what[PATH_MAX + 32];
	snprintf(what, sizeof(what), "images directory %s", rel);
	d = calloc(1, sizeof(*d));
	if (d != NULL &&
	    ((d->rel = strdup(rel)) == NULL || (d->catalog = lz_catalog_new(fd, what)) == NULL)) {
		free(d->rel);
		free(d);
		d = NULL;
	}
	close(fd);
	if (d == NULL)
		return NULL;
	pthread_mutex_lock(&images->tree_lock);
	struct lz_tree_dir *twin = images->tree_dirs;
	while (twin != NULL && strcmp(twin->rel, rel) != 0)
		twin = twin->next;
	if (twin == NULL) {
		d->next = images->tree_dirs;
		images->tree_dirs = d;
	}
	pthread_mutex_unlock(&images->tree_lock);
	if (twin == NULL)
		return d->catalog;
	lz_catalog_free(d->catalog);
	free(d->rel);
	free(d);
	return twin->catalog;
}

void lz_images_tree_free(struct lz_images *images)
{
	struct lz_tree_dir *d = images->tree_dirs;

	while (d != NULL) {
		struct lz_tree_dir *next = d->next;
		lz_catalog_free(d->catalog);
		free(d->rel);
		free(d);
		d = next;
	}
	images->tree_dirs = NULL;
}

struct tree_names {
	lz_images_list_fn *fn;
	void *ctx;
	bool dirs; /* subdirectories are listed: the directory is above the depth limit */
};

/* An entry that names an image (N.sqfs, N.img, N.squashfs) or a subdirectory. */
static void tree_name(void *ctx, const char *file, unsigned char type)
{
	struct tree_names *names = ctx;
	char entry_name[NAME_MAX + 1];

	if (type == DT_DIR) {
		if (names->dirs && lz_name_check(file) == 0)
			names->fn(names->ctx, file, true);
	} else if (lz_images_strip_suffix(file, entry_name, sizeof(entry_name)) &&
		   lz_name_check(entry_name) == 0) {
		names->fn(names->ctx, entry_name, false);
	}
}

int lz_images_list_dir(struct lz_images *images, const char *rel, lz_images_list_fn *fn, void *ctx)
{
	int depth = lz_images_tree_depth(rel);
	struct tree_names names = { fn, ctx, depth < LZ_IMAGES_DEPTH };
	struct lz_catalog *catalog;

	if (images->source != NULL)
		return *rel == '\0' ? lz_images_list_source(images, fn, ctx) : 0;
	if (images->dir_fd < 0 || depth < 0 || depth > LZ_IMAGES_DEPTH)
		return 0;
	if ((catalog = tree_catalog(images, rel)) == NULL)
		return errno == ENOENT ? 0 : -errno;
	return lz_catalog_list(catalog, images->deadline, tree_name, &names);
}

static void note_dir(void *ctx, const char *name, bool is_dir)
{
	(void)name;
	*(bool *)ctx |= is_dir;
}

bool lz_images_nested(struct lz_images *images)
{
	bool nested = false;

	if (images->source == NULL && images->dir_fd >= 0)
		lz_images_list_dir(images, "", note_dir, &nested);
	return nested;
}
