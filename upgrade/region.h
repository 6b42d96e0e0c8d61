/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Memory a worker shares with the keeper, which keeps it across a crash: a
 * memfd of fixed size whose layout opens with a magic number and a version,
 * so that a worker reads only a record of its own layout (inflight.h,
 * nodes.h). The keeper only holds the descriptor.
 */
#ifndef LAZYFS_REGION_H
#define LAZYFS_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lz_region {
	int fd;
	void *base; /* mapped shared, SIZE bytes */
	size_t size;
	bool kept; /* the keeper's, left by a worker before */
};

/*
 * The keeper's region KEPT_FD (consumed; -1 for none) when it has SIZE bytes
 * and opens with MAGIC and VERSION; else a new, zeroed one named NAME that
 * opens with them. 0, or -1 with errno (nothing stays open).
 */
int lz_region_open(struct lz_region *r, int kept_fd, const char *name, size_t size, uint32_t magic,
		   uint32_t version);
void lz_region_close(struct lz_region *r);

#endif
