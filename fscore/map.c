/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "map.h"
#include "common/names.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static atomic_uint_fast64_t next_index = 1;
static atomic_uint live_maps;

static int compare_node_name(const void *key, const void *member)
{
	return strcmp(key, (*(struct lz_map_node *const *)member)->name);
}

const struct lz_map_node *lz_map_child(const struct lz_map_node *dir, const char *name)
{
	struct lz_map_node **found;

	if (dir == NULL || dir->nchildren == 0)
		return NULL;
	found = bsearch(name, dir->children, dir->nchildren, sizeof(*dir->children),
			compare_node_name);
	return found ? *found : NULL;
}

static struct lz_map_node *new_node(const struct lz_map_node *parent, const char *name)
{
	struct lz_map_node *node = calloc(1, sizeof(*node));
	size_t plen = strlen(parent->relpath);

	if (node == NULL)
		return NULL;
	node->name = strdup(name);
	node->relpath = malloc(plen + strlen(name) + 2);
	if (node->name == NULL || node->relpath == NULL) {
		free(node->name);
		free(node->relpath);
		free(node);
		return NULL;
	}
	sprintf(node->relpath, "%s%s%s", parent->relpath, plen ? "/" : "", name);
	node->index = atomic_fetch_add(&next_index, 1);
	node->owner = parent->owner;
	return node;
}

/* The child NAME of DIR, created (in sorted position) if missing. */
static struct lz_map_node *child_or_new(struct lz_map_node *dir, const char *name)
{
	size_t lo = 0, hi = dir->nchildren;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, dir->children[mid]->name);
		if (c == 0)
			return dir->children[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (dir->nchildren == dir->cap) {
		size_t cap = dir->cap ? dir->cap * 2 : 4;
		struct lz_map_node **grown = realloc(dir->children, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		dir->children = grown;
		dir->cap = cap;
	}
	struct lz_map_node *node = new_node(dir, name);
	if (node == NULL)
		return NULL;
	memmove(dir->children + lo + 1, dir->children + lo,
		(dir->nchildren - lo) * sizeof(*dir->children));
	dir->children[lo] = node;
	dir->nchildren++;
	return node;
}

/* Why RELPATH cannot be a map path, or NULL when it can. */
static const char *bad_relpath(const char *relpath)
{
	if (relpath[0] == '/')
		return "the path must be relative to the mount";
	if (strlen(relpath) >= PATH_MAX)
		return "the path is too long";
	for (const char *p = relpath; *p;) {
		size_t len = strcspn(p, "/");
		char component[NAME_MAX + 2];
		if (len == 0)
			return "empty path component";
		if (len > NAME_MAX)
			return "a path component is longer than NAME_MAX";
		memcpy(component, p, len);
		component[len] = '\0';
		if (lz_name_check(component) != 0)
			return "'.' and '..' are not allowed in paths";
		p += len;
		if (*p == '/' && *++p == '\0')
			return "trailing '/'";
	}
	return NULL;
}

/* Adds RELPATH -> IMAGE; NULL, or why the line is refused. */
static const char *add_mapping(struct lz_map *map, char *relpath, const char *image)
{
	struct lz_map_node *node = &map->root;
	const char *why = bad_relpath(relpath);

	if (why != NULL)
		return why;
	if (image[0] != '/')
		return "the image path must be absolute";
	for (char *save = NULL, *c = strtok_r(relpath, "/", &save); c != NULL;
	     c = strtok_r(NULL, "/", &save)) {
		if (node->image != NULL)
			return "the path lies inside another mapped image";
		node = child_or_new(node, c);
		if (node == NULL)
			return "out of memory";
	}
	if (node->image != NULL)
		return "the path is mapped twice";
	if (node->nchildren > 0)
		return "other mapped paths lie inside this one";
	node->image = strdup(image);
	if (node->image == NULL)
		return "out of memory";
	map->images++;
	return NULL;
}

/* Removes what a refused line left behind: nodes with no image and no children. */
static void prune(struct lz_map_node *dir)
{
	size_t kept = 0;

	for (size_t i = 0; i < dir->nchildren; i++) {
		struct lz_map_node *child = dir->children[i];
		prune(child);
		if (child->image == NULL && child->nchildren == 0) {
			free(child->children);
			free(child->name);
			free(child->relpath);
			free(child);
		} else {
			dir->children[kept++] = child;
		}
	}
	dir->nchildren = kept;
}

struct lz_map *lz_map_parse(FILE *f, const char *filename,
			    void (*report)(void *ctx, const char *message), void *ctx)
{
	struct lz_map *map = calloc(1, sizeof(*map));
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;

	if (map == NULL || (map->root.name = strdup("")) == NULL ||
	    (map->root.relpath = strdup("")) == NULL) {
		lz_map_free(map);
		return NULL;
	}
	map->root.owner = map;
	atomic_init(&map->refs, 1);
	atomic_fetch_add(&live_maps, 1);
	map->first_index = atomic_load(&next_index);
	ssize_t got;
	while ((got = getline(&line, &cap, f)) != -1) {
		char *fields[3] = { NULL }, *save = NULL, *tok;
		int n = 0;
		const char *why = NULL;

		lineno++;
		map->crc = (uint32_t)crc32(map->crc, (const Bytef *)line, (uInt)got);
		for (tok = strtok_r(line, " \t\r\n", &save); tok != NULL && tok[0] != '#';
		     tok = strtok_r(NULL, " \t\r\n", &save))
			if (n < 3)
				fields[n++] = tok;
			else
				n = 4;
		if (n == 0)
			continue;
		if (n != 2)
			why = "expected 'relative/path /absolute/image.sqfs'";
		else
			why = add_mapping(map, fields[0], fields[1]);
		if (why != NULL) {
			char message[PATH_MAX + 128];
			snprintf(message, sizeof(message), "%s:%u: %s; line skipped", filename,
				 lineno, why);
			map->bad_lines++;
			if (report)
				report(ctx, message);
			prune(&map->root);
		}
	}
	free(line);
	map->end_index = atomic_load(&next_index);
	return map;
}

const struct lz_map_node *lz_map_find(const struct lz_map *map, const char *relpath)
{
	const struct lz_map_node *node = &map->root;
	char name[NAME_MAX + 1];

	while (node != NULL && *relpath != '\0') {
		size_t len = strcspn(relpath, "/");
		if (len > NAME_MAX)
			return NULL;
		memcpy(name, relpath, len);
		name[len] = '\0';
		node = lz_map_child(node, name);
		relpath += len + (relpath[len] == '/');
	}
	return node;
}

static const struct lz_map_node *by_index(const struct lz_map_node *dir, uint64_t index)
{
	for (size_t i = 0; i < dir->nchildren; i++) {
		const struct lz_map_node *child = dir->children[i], *found;
		if (child->index == index)
			return child;
		if ((found = by_index(child, index)) != NULL)
			return found;
	}
	return NULL;
}

const struct lz_map_node *lz_map_by_index(const struct lz_map *map, uint64_t index)
{
	if (index < map->first_index || index >= map->end_index)
		return NULL;
	return by_index(&map->root, index);
}

static void shift(struct lz_map_node *dir, uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < dir->nchildren; i++) {
		dir->children[i]->index = dir->children[i]->index - from + to;
		shift(dir->children[i], from, to);
	}
}

void lz_map_renumber(struct lz_map *map, uint64_t first, uint64_t next)
{
	uint64_t now, end;

	shift(&map->root, map->first_index, first);
	map->end_index = map->end_index - map->first_index + first;
	map->first_index = first;
	end = map->end_index > next ? map->end_index : next;
	now = atomic_load(&next_index);
	while (now < end && !atomic_compare_exchange_weak(&next_index, &now, end))
		;
}

uint64_t lz_map_next_index(void)
{
	return atomic_load(&next_index);
}

struct lz_map *lz_map_load(const char *path, void (*report)(void *ctx, const char *message),
			   void *ctx)
{
	FILE *f = fopen(path, "re");
	struct lz_map *map;

	if (f == NULL)
		return NULL;
	map = lz_map_parse(f, path, report, ctx);
	fclose(f);
	if (map == NULL)
		errno = ENOMEM;
	return map;
}

static void free_children(struct lz_map_node *node)
{
	for (size_t i = 0; i < node->nchildren; i++) {
		free_children(node->children[i]);
		free(node->children[i]->name);
		free(node->children[i]->relpath);
		free(node->children[i]->image);
		free(node->children[i]);
	}
	free(node->children);
}

void lz_map_hold(struct lz_map *map)
{
	atomic_fetch_add_explicit(&map->refs, 1, memory_order_relaxed);
}

void lz_map_release(struct lz_map *map)
{
	/* acq_rel: everything done through the map happens before its free. */
	if (map != NULL && atomic_fetch_sub_explicit(&map->refs, 1, memory_order_acq_rel) == 1)
		lz_map_free(map);
}

void lz_map_node_put(const struct lz_map_node *node)
{
	if (node != NULL)
		lz_map_release(node->owner);
}

unsigned lz_map_live(void)
{
	return atomic_load(&live_maps);
}

void lz_map_free(struct lz_map *map)
{
	if (map == NULL)
		return;
	if (map->root.owner == map) /* counted once parsing began */
		atomic_fetch_sub(&live_maps, 1);
	free_children(&map->root);
	free(map->root.name);
	free(map->root.relpath);
	free(map);
}
