/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The node record's layout in its memfd (nodes.h): what nodes.c and the
 * fuzz target that damages a kept record share. Not for users of the record,
 * which go through nodes.h.
 */
#ifndef LAZYFS_NODES_INT_H
#define LAZYFS_NODES_INT_H

#include "nodes.h"
#include "slots.h"

#include <stdint.h>

#define LZ_NODES_MAGIC	 0x6c7a6e64u /* "lznd" */
#define LZ_NODES_VERSION 6u

struct lz_nodes_rec {
	uint64_t nodeid; /* the key (slots.h): node id 1 is the root, never recorded */
	uint64_t nlookup;
	uint64_t map_index;
	int32_t handle_type;
	uint32_t handle_bytes;
	unsigned char handle[LZ_NODES_HANDLE_MAX];
};

struct lz_nodes_path_rec {
	uint64_t nodeid;
	char path[LZ_NODES_PATH_MAX];
};

struct lz_nodes_region {
	uint32_t magic, version;
	struct lz_slots_head records_head, paths_head;
	uint32_t sources_high; /* no source above it is named */
	uint32_t map_noted;    /* map is set */
	struct lz_nodes_map map;
	struct lz_nodes_rec records[LZ_NODES_MAX];
	struct lz_nodes_path_rec paths[LZ_NODES_PATHS];
	/* Untouched pages of the memfd cost nothing: only named sources' are written. */
	struct lz_nodes_source_rec {
		char name[LZ_NODES_NAME_MAX];
		struct lz_image_file file;
	} source_image[LZ_NODES_SOURCES];
};

#endif
