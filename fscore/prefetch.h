/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Working sets: the files an image's users look up in its first seconds after
 * its first open are recorded in the cache directory; the next time a file of
 * it is first opened (also after a restart) they are read ahead in the background, so
 * a compiler finds its headers and binaries decompressed in the page cache.
 * Kernel-backend images only: squashfuse serves reads itself, without a page
 * cache of its own to warm. With remote_mode=objects the unit is a top
 * directory of the remote, and its recorded objects are fetched into the
 * cache.
 */
#ifndef LAZYFS_PREFETCH_H
#define LAZYFS_PREFETCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct lz_image;
struct lz_prefetch;

#define LZ_WS_WINDOW_S	20   /* seconds of use recorded after each resolve */
#define LZ_WS_MAX_FILES 4096 /* files recorded per image */
#define LZ_WS_WORKERS	2    /* images prefetched at once */

struct lz_prefetch_stats {
	uint64_t recorded;  /* working sets written */
	uint64_t started;   /* prefetches started from a working set */
	uint64_t files;	    /* files read ahead */
	uint64_t bytes;	    /* bytes read ahead */
	uint64_t cancelled; /* prefetches stopped by expiry or a new resolve */
	uint64_t bad_lines; /* working set lines refused */
};

/* Working sets live in DIR (created 0700 when first written). NULL: out of memory. */
struct lz_prefetch *lz_prefetch_new(const char *dir, uint64_t max_bytes);
/* Writes what is still being recorded, stops prefetching. */
void lz_prefetch_free(struct lz_prefetch *p);

/*
 * The kernel mounted IMAGE (resolve GENERATION) as a file of it was opened:
 * record its use, prefetch its last working set.
 */
void lz_prefetch_image_mounted(struct lz_prefetch *p, struct lz_image *image, unsigned generation);
/* Whether IMAGE's working set is being recorded (its first seconds after a resolve). */
bool lz_prefetch_recording(struct lz_prefetch *p, struct lz_image *image);
/* A regular file at RELPATH (from the image's root) of SIZE bytes was looked up. */
void lz_prefetch_record(struct lz_prefetch *p, struct lz_image *image, const char *relpath,
			off_t size);
/*
 * remote_mode=objects: the objects of one top directory of the remote are a
 * unit like an image. FETCH brings PATH into the cache (0 or -errno).
 */
typedef int lz_prefetch_fetch_fn(void *ctx, const char *path);
void lz_prefetch_set_fetch(struct lz_prefetch *p, lz_prefetch_fetch_fn *fetch, void *ctx);
/* Object PATH (SIZE bytes) was opened: a first use of its directory prefetches it. */
void lz_prefetch_object_opened(struct lz_prefetch *p, const char *path, off_t size);

/*
 * Prefetches the working set of IMAGE (READY), or of the objects directory
 * OBJECTS_DIR when IMAGE is NULL, now: the number of files queued, -ENOENT
 * without a working set, -ENOTSUP where prefetch does not apply.
 */
int lz_prefetch_now(struct lz_prefetch *p, struct lz_image *image, const char *objects_dir);

/* IMAGE was closed: its recording is written now. */
void lz_prefetch_image_closed(struct lz_prefetch *p, struct lz_image *image);

void lz_prefetch_stats(struct lz_prefetch *p, struct lz_prefetch_stats *out);

#endif
