/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The node ids the kernel holds, with their lookup counts and what finds
 * their file again (a file handle; fscore/revive.h), and which image each
 * node id source held, recorded in memory the keeper keeps across a worker's
 * crash (a memfd, like the in-flight record). The worker it starts next
 * brings such a node id back to life when the kernel uses it (a working
 * directory inside the mount, a relative path, a directory being listed, a
 * file it reads for the kernel), instead of answering ESTALE.
 *
 * Fixed size: past three quarters of LZ_NODES_MAX records, further node
 * ids are not recorded (those answer ESTALE after a crash, as all did
 * before). Thread-safe.
 */
#ifndef LAZYFS_NODES_H
#define LAZYFS_NODES_H

#include <stdbool.h>
#include <stdint.h>

#include "images/images.h"

#define LZ_NODES_MAX	    (1u << 17)
#define LZ_NODES_HANDLE_MAX 40 /* bytes of a file handle recorded (ext4 8, xfs 24, btrfs 40) */
#define LZ_NODES_SOURCES    (1u << 16) /* node id sources (fscore/nodeid.h) */
#define LZ_NODES_NAME_MAX   256	       /* bytes of an image's name recorded, with its NUL */
#define LZ_NODES_PATHS	    (1u << 15) /* remote objects' paths recorded, at most 3/4 of it */
#define LZ_NODES_PATH_MAX   512	       /* bytes of such a path, with its NUL */

struct lz_nodes;
struct file_handle;

/* The keeper's record after a crash (KEPT_FD, consumed), else a new one (-1). NULL: none. */
struct lz_nodes *lz_nodes_open(int kept_fd);
void lz_nodes_close(struct lz_nodes *n);
/* The memfd the keeper keeps (borrowed), or -1. */
int lz_nodes_fd(const struct lz_nodes *n);
/* Whether it is the keeper's, left by a worker before (node ids may be revived). */
bool lz_nodes_kept(const struct lz_nodes *n);

/* What is recorded of a node id. */
struct lz_node_record {
	uint64_t nlookup;   /* the kernel's references */
	uint64_t map_index; /* the map node of a directory on a mapped path; 0: none */
};

/*
 * NODEID is held R->nlookup times (0: no longer), its file known by HANDLE
 * (NULL: not recorded).
 */
void lz_nodes_set(struct lz_nodes *n, uint64_t nodeid, const struct lz_node_record *r,
		  const struct file_handle *handle);
/*
 * The record of NODEID: true with it in R, and its handle in HANDLE unless
 * NULL (HANDLE holds LZ_NODES_HANDLE_MAX bytes after the header).
 */
bool lz_nodes_get(struct lz_nodes *n, uint64_t nodeid, struct lz_node_record *r,
		  struct file_handle *handle);

/*
 * The path of remote object NODEID (remote_mode=objects), or of a directory
 * of the images tree (images.h; its underlay directory or its own), recorded with its
 * record (after lz_nodes_set; cheap when recorded already: a node id's path
 * never changes), and dropped with it; a longer path than
 * LZ_NODES_PATH_MAX - 1 bytes is not recorded. lz_nodes_get_path copies it
 * into PATH (LZ_NODES_PATH_MAX bytes).
 */
void lz_nodes_set_path(struct lz_nodes *n, uint64_t nodeid, const char *path);
bool lz_nodes_get_path(struct lz_nodes *n, uint64_t nodeid, char *path);

/*
 * The map the recorded map indices number (map.h: its lines' crc and its
 * first index), and the next index the worker would give. Cheap when so
 * already. A worker after a crash numbers the same map alike, and any
 * other above NEXT.
 */
struct lz_nodes_map {
	uint32_t crc;
	uint64_t first, next;
};
void lz_nodes_note_map(struct lz_nodes *n, const struct lz_nodes_map *m);
/* The map the workers before noted; false: none. */
bool lz_nodes_noted_map(struct lz_nodes *n, struct lz_nodes_map *m);

/*
 * Node id source SOURCE holds files of image NAME (its registry key), from
 * its file FILE; a longer name than LZ_NODES_NAME_MAX - 1 bytes is not
 * recorded. lz_nodes_source_is tells (cheaply) whether it is recorded so: a
 * source's file does not change while its name stays.
 */
void lz_nodes_set_source(struct lz_nodes *n, unsigned source, const char *name,
			 const struct lz_image_file *file);
bool lz_nodes_source_is(struct lz_nodes *n, unsigned source, const char *name);
/*
 * The image SOURCE held, copied into NAME (LZ_NODES_NAME_MAX bytes), and its
 * file into FILE; false: none recorded.
 */
bool lz_nodes_source_image(struct lz_nodes *n, unsigned source, char *name,
			   struct lz_image_file *file);
/* The last source the workers before gave image NAME, as kept when opened; 0: none. */
unsigned lz_nodes_image_source(const struct lz_nodes *n, const char *name);
/* Forgets which image every source held: no node id of an image is revived then. */
void lz_nodes_clear_sources(struct lz_nodes *n);

#endif
