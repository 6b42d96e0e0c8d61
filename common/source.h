/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Remote entries as fs/ sees them: a tree it can list, and objects it can
 * open as local files. cache/ implements this with the local store and
 * rclone; fs/ knows nothing of either.
 */
#ifndef LAZYFS_SOURCE_H
#define LAZYFS_SOURCE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct lz_source_entry {
	char name[NAME_MAX + 1];
	uint64_t size;
	struct timespec mtime;
	bool is_dir;
};

/*
 * One entry of a shared listing (list_get). Its strings live as long as the
 * listing; a name is one path component of at most NAME_MAX bytes.
 */
struct lz_source_item {
	const char *name;
	uint64_t size;
	struct timespec mtime;
	bool is_dir;
	const char *hash; /* "md5:<hex>", "sha1:<hex>", or NULL */
};

/*
 * A directory's listing as the source keeps it: sorted by name, never changed
 * once made (a newer listing is a new one), and shared: every holder has a
 * reference, so a directory of 150,000 objects is in memory once however
 * many directory handles list it.
 */
struct lz_source_listing {
	size_t count;
	const struct lz_source_item *items;
};

/* What the cache behind a source holds and has done; zero where it does not apply. */
struct lz_source_stats {
	uint64_t objects, bytes, quota, open_objects, pinned;
	uint64_t hits, misses, fills, fill_failures, evictions;
	uint64_t fetches, fetch_failures, fetch_bytes, fetch_ns;
	/* stream=on: cold objects read while fetched, and those streams that failed. */
	uint64_t streams, stream_failures;
	/* 1 when the last call to the remote got an answer (a missing object included), else 0. */
	uint64_t reachable;
};

struct lz_source {
	/*
	 * The entries of directory DIR ("" is the top) in *ENTRIES (malloc'ed,
	 * the caller frees it). When the remote cannot be reached, the last
	 * known listing. 0 or -errno (-ENOENT, -ENOTDIR, -EIO).
	 */
	int (*list)(void *ctx, const char *dir, struct lz_source_entry **entries, size_t *count);
	/*
	 * The same listing, shared instead of copied: a reference in *OUT,
	 * given back with list_put. 0 or -errno as list.
	 */
	int (*list_get)(void *ctx, const char *dir, const struct lz_source_listing **out);
	void (*list_put)(void *ctx, const struct lz_source_listing *listing);
	/* One entry NAME of directory DIR, from the same listing: 0, -ENOENT, -errno. */
	int (*lookup)(void *ctx, const char *dir, const char *name, struct lz_source_entry *out);
	/*
	 * A readable descriptor of the local copy of object PATH, fetched first
	 * if needed (concurrent opens of one object fetch it once). Each
	 * successful open must be matched by one release. -errno (-ENOENT,
	 * -EIO, -ETIMEDOUT, -ENOSPC).
	 */
	int (*open)(void *ctx, const char *path);
	/*
	 * Like open, but a cold object may be streamed (NULL: it never is).
	 * Returns a descriptor with *STREAM NULL: the checked copy, as open gives
	 * it, matched by a release. Or a descriptor with *STREAM set: the
	 * object's file while it is fetched, whose bytes may be read only once
	 * stream_wait said they are there; matched by one stream_close (no
	 * release). -errno as open.
	 */
	int (*open_streamed)(void *ctx, const char *path, void **stream);
	/*
	 * Waits until bytes [OFF, OFF+LEN) of STREAM (cut at its end) are in its
	 * file: 0, or -EIO when the fetch failed or the object did not check out
	 * (then every later call fails too). Without BLOCK, -EAGAIN rather than
	 * waiting.
	 */
	int (*stream_wait)(void *ctx, void *stream, uint64_t off, uint64_t len, bool block);
	/* Another reference on STREAM, dropped by one more stream_close. */
	void (*stream_hold)(void *ctx, void *stream);
	void (*stream_close)(void *ctx, void *stream);
	void (*release)(void *ctx, const char *path);
	/*
	 * Keeps object PATH in the cache as open does, without a descriptor (the
	 * caller kept the file from an earlier open), when the cached copy is the
	 * one of SIZE and MTIME (from the caller's last lookup): 0, else -ENOENT
	 * (open it then). Matched by a release.
	 */
	int (*hold)(void *ctx, const char *path, uint64_t size, struct timespec mtime);
	/*
	 * Live upgrade: takes over the reference an earlier process held on
	 * object PATH, whatever copy is cached (that process had it open): 0, or
	 * -ENOENT when the cache no longer has it. Matched by a release.
	 */
	int (*adopt)(void *ctx, const char *path);
	/* The cache: its numbers; removing an object from it; keeping one (PIN) or not. */
	void (*stats)(void *ctx, struct lz_source_stats *out);
	int (*evict)(void *ctx, const char *path);
	int (*pin)(void *ctx, const char *path, bool pin);
	void *ctx;
};

#endif
