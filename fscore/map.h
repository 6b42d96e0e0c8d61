/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The map file: lines "relative/path  /abs/image.sqfs" placing images at
 * nested paths under the mount. Parsed into a tree of path components whose
 * leaves are images; intermediate nodes are directories that come from the
 * underlay or, where it lacks them, are synthesized.
 */
#ifndef LAZYFS_MAP_H
#define LAZYFS_MAP_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct lz_map_node {
	char *name;	      /* one component; "" for the root */
	char *relpath;	      /* from the mount root, e.g. "arm/gcc-12"; "" for the root */
	char *image;	      /* absolute image path when this path is an image, else NULL */
	uint64_t index;	      /* unique among all nodes of all maps of this process, from 1 */
	struct lz_map *owner; /* the map it belongs to, whose reference keeps it */
	struct lz_map_node **children; /* sorted by name */
	size_t nchildren;
	size_t cap;
};

struct lz_map {
	struct lz_map_node root;
	size_t images;
	size_t bad_lines;
	/*
	 * Its nodes' indices are first_index up to end_index (exclusive); the
	 * same lines read give the same numbering from first_index on, and the
	 * same crc (zlib's crc32 of the lines).
	 */
	uint64_t first_index, end_index;
	uint32_t crc;
	/*
	 * Who still points into it: the mount while it is current, each inode
	 * and open listing of its nodes, a request walking it. A reload drops
	 * the mount's; the last release frees it.
	 */
	atomic_uint refs;
	/* The file's mtime, set before the map is published: its synthesized directories' times. */
	struct timespec mtime;
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
/* One more reference to MAP (a map starts with one, the parser's caller's). */
void lz_map_hold(struct lz_map *map);
/* Drops a reference; the last one frees MAP. NULL is fine. */
void lz_map_release(struct lz_map *map);
/* Maps of this process not freed yet: the current one and old ones still referenced. */
unsigned lz_map_live(void);
/* Drops the reference NODE's map was held by (lz_inode_map_hold); NULL is fine. */
void lz_map_node_put(const struct lz_map_node *node);

/* The child NAME of DIR, or NULL. */
const struct lz_map_node *lz_map_child(const struct lz_map_node *dir, const char *name);
/* The node at RELPATH ("a/b"; "" is the root), or NULL. */
const struct lz_map_node *lz_map_find(const struct lz_map *map, const char *relpath);
/* The node numbered INDEX (not the root), or NULL. */
const struct lz_map_node *lz_map_by_index(const struct lz_map *map, uint64_t index);
/*
 * After a crash: numbers MAP's nodes from FIRST on, as the worker before
 * numbered the same map, and later maps of this process from NEXT at least
 * (above every index the worker before gave). Call before anything uses the
 * indices.
 */
void lz_map_renumber(struct lz_map *map, uint64_t first, uint64_t next);
/* The index the next map node of this process will take. */
uint64_t lz_map_next_index(void);

#endif
