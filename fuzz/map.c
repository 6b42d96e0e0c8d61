/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lz_map_parse on any map file (through fmemopen): it never crashes or leaks,
 * and the tree it returns is what map.h promises whatever lines were refused:
 * children sorted and unique, each relpath its parent's plus its name, names
 * valid components, images absolute and only at leaves, the image count right.
 */
#include "config.h"
#include "check.h"
#include "fscore/map.h"
#include "common/names.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void report(void *ctx, const char *message)
{
	size_t *reports = ctx;

	CHECK(strncmp(message, "fuzz.map:", 9) == 0);
	(*reports)++;
}

/* Returns how many images lie at or under NODE. */
static size_t check_node(const struct lz_map_node *node, const struct lz_map_node *parent)
{
	size_t images = node->image != NULL;

	if (parent != NULL) {
		size_t plen = strlen(parent->relpath);
		CHECK(lz_name_check(node->name) == 0 && strchr(node->name, '/') == NULL);
		CHECK(strncmp(node->relpath, parent->relpath, plen) == 0);
		CHECK(strcmp(node->relpath + plen + (plen > 0), node->name) == 0);
		CHECK(plen == 0 || node->relpath[plen] == '/');
		CHECK(strlen(node->relpath) < PATH_MAX);
		/* Directories exist only to lead to images. */
		CHECK(node->image != NULL || node->nchildren > 0);
	}
	CHECK(node->image == NULL || (node->image[0] == '/' && node->nchildren == 0));
	CHECK(node->nchildren <= node->cap);
	for (size_t i = 0; i < node->nchildren; i++) {
		const struct lz_map_node *child = node->children[i];
		CHECK(i == 0 || strcmp(node->children[i - 1]->name, child->name) < 0);
		CHECK(lz_map_child(node, child->name) == child);
		images += check_node(child, node);
	}
	return images;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t reports = 0;
	struct lz_map *map;
	FILE *f;

	if (size == 0)
		return 0; /* fmemopen wants a buffer */
	f = fmemopen((void *)data, size, "r");
	if (f == NULL)
		return 0;
	map = lz_map_parse(f, "fuzz.map", report, &reports);
	fclose(f);
	CHECK(map != NULL);
	CHECK(map->root.image == NULL && map->root.relpath[0] == '\0');
	CHECK(check_node(&map->root, NULL) == map->images);
	CHECK(reports == map->bad_lines);
	CHECK(lz_map_child(&map->root, "") == NULL);
	lz_map_free(map);
	return 0;
}
