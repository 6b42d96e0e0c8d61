/*
 * The map file: lines "relative/path  /abs/image.sqfs" placing images at
 * nested paths under the mount. Parsed into a tree of path components whose
 * leaves are images; intermediate nodes are directories that come from the
 * underlay or, where it lacks them, are synthesized.
 */
#ifndef LAZYFS_MAP_H
#define LAZYFS_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct lz_map_node {
	char *name;	/* one component; "" for the root */
	char *relpath;	/* from the mount root, e.g. "arm/gcc-12"; "" for the root */
	char *image;	/* absolute image path when this path is an image, else NULL */
	uint64_t index; /* unique among all nodes of all maps of this process, from 1 */
	struct lz_map_node **children; /* sorted by name */
	size_t nchildren;
	size_t cap;
};

struct lz_map {
	struct lz_map_node root;
	size_t images;
	size_t bad_lines;
};

/*
 * Parses a map from F. Each bad line is reported once through REPORT as
 * "FILE:LINE: reason" and skipped. NULL only when out of memory.
 */
struct lz_map *lz_map_parse(FILE *f, const char *filename,
			    void (*report)(void *ctx, const char *message), void *ctx);
/* Reads the map file PATH; NULL with errno when it cannot be opened. */
struct lz_map *lz_map_load(const char *path, void (*report)(void *ctx, const char *message),
			   void *ctx);
void lz_map_free(struct lz_map *map);

/* The child NAME of DIR, or NULL. */
const struct lz_map_node *lz_map_child(const struct lz_map_node *dir, const char *name);

#endif
