/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The local cache store: objects kept by key (a remote path such as
 * "clips/a/b.mp4") in a private directory, filled through a caller's fetch
 * callback, published only once complete, verified and on disk, and evicted
 * least recently used first under a quota. It knows nothing of FUSE or rclone.
 *
 * Thread-safe. Calls return 0 or -errno unless said otherwise; ERR, where a
 * call takes one, receives a single line saying why.
 */
#ifndef LAZYFS_STORE_H
#define LAZYFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/log.h"

#define LZ_STORE_KEY_MAX  4096 /* bytes in a key, without the NUL */
#define LZ_STORE_HASH_MAX 144  /* "type:value" with its NUL */

struct lz_store;

/* What the remote says about an object. */
struct lz_object_meta {
	int64_t size;		      /* bytes; -1 when unknown */
	struct timespec mtime;	      /* the remote's modification time */
	char hash[LZ_STORE_HASH_MAX]; /* "md5:<hex>", "sha1:<hex>", ...; "" when unknown */
};

struct lz_store_stats {
	uint64_t objects;	   /* published objects */
	uint64_t bytes;		   /* their total size */
	uint64_t quota;		   /* bytes */
	uint64_t open_objects;	   /* objects with at least one open reference */
	uint64_t pinned;	   /* objects pinned */
	uint64_t hits;		   /* lookups (and fills) answered from the cache */
	uint64_t misses;	   /* lookups that found no usable copy */
	uint64_t fills;		   /* objects fetched, verified and published */
	uint64_t fill_failures;	   /* fills that failed (once per fetch, not per waiter) */
	uint64_t publish_failures; /* fetched, served, but could not be made durable */
	uint64_t evictions;	   /* objects removed for room or by lz_store_evict */
	uint64_t dropped;	   /* stale or damaged copies removed, including at open */
	int rebuilt;		   /* 1 when open rebuilt the index by scanning the objects */
};

/*
 * Writes the object to TMP_PATH (a file that does not exist yet, inside the
 * store's directory). Returns 0, or -errno with one line in ERR. A partial
 * file left behind is removed by the store.
 */
typedef int lz_store_fetch_fn(void *ctx, const char *tmp_path, char *err, size_t errlen);

/*
 * Opens the store in DIR, creating it (mode 0700) if needed. DIR must not be a
 * symlink and must be owned by the caller; looser modes are tightened to 0700.
 * QUOTA_BYTES 0 means 90 % of what DIR's filesystem has free, counting the
 * store's own objects as free. One process at a time may open a DIR. Returns
 * NULL with errno set and ERR filled on failure. The index is read later
 * (lz_store_preload); a failure to read it fails the calls that need it.
 */
struct lz_store *lz_store_open(const char *dir, uint64_t quota_bytes, char *err, size_t errlen);

/*
 * Starts loading the index on a thread of its own, so it is in memory by the
 * time the first call needs it (which otherwise loads it, and the calls made
 * meanwhile wait for it). lz_store_open reads no index: a mount with 150,000
 * cached objects is ready as fast as an empty one. Call it once the process
 * will not fork any more.
 */
void lz_store_preload(struct lz_store *store);

/*
 * Fetches are written by another user, UID:GID (not ours): the directory's
 * tmp/ and each fill's directory in it become theirs, the store's directory
 * 0711 so they can reach tmp/ (objects/ and the index stay ours alone). Each
 * fetched file is taken back before it is checked: made ours and read-only,
 * refused if it has another link or is still open for writing anywhere, and
 * published by its descriptor, so the other user can change neither what is
 * checked nor what is published. 0, or -errno with ERR.
 */
int lz_store_set_fetcher(struct lz_store *store, uid_t uid, gid_t gid, char *err, size_t errlen);

/*
 * Where the store tells what goes wrong in the background (publishing after a
 * fill has answered). Without it nothing is said.
 */
void lz_store_set_log(struct lz_store *store, lz_log_fn *log, void *ctx);

/*
 * Told the key of each object evicted (for room or by lz_store_evict), with
 * the store's lock held: FN must not call the store.
 */
typedef void lz_store_evicted_fn(void *ctx, const char *key);
void lz_store_on_evict(struct lz_store *store, lz_store_evicted_fn *fn, void *ctx);

/*
 * Waits until every fill has been published (or failed to be): objects become
 * visible to lz_store_lookup, the index and stats only then.
 */
void lz_store_settle(struct lz_store *store);

/*
 * Saves the index and frees the store; no other call may be in progress.
 * Descriptors handed out stay valid. The store is freed even on error (the
 * next open then rebuilds the index by scanning).
 */
int lz_store_close(struct lz_store *store, char *err, size_t errlen);

/* Saves the index now (it is saved at close anyway; this bounds what a crash loses). */
int lz_store_sync(struct lz_store *store, char *err, size_t errlen);

/*
 * When KEY is cached and its metadata matches EXPECT (size and mtime, and the
 * hash when both know one of the same type; EXPECT NULL accepts any copy),
 * returns 0 with a new O_RDONLY|O_CLOEXEC descriptor in *FD and takes one open
 * reference on the object, which keeps it from eviction until
 * lz_store_release. Else -ENOENT, and a stale copy is dropped. FD NULL takes
 * the reference only (the caller still has the file open from before).
 */
int lz_store_lookup(struct lz_store *store, const char *key, const struct lz_object_meta *expect,
		    int *fd);

/*
 * Like lz_store_lookup, but on a miss fetches the object through FETCH,
 * verifies it against META (size; md5 or sha1 when given) and returns it open.
 * Concurrent fills of one key run FETCH once: the others wait and get the
 * same outcome, error line included. The fetched file is then made durable
 * (CRC32 recorded, fsync) and renamed into place by a background thread, so
 * the caller does not wait for the disk; a crash before that leaves nothing
 * visible. A failure there is logged and the next fill fetches again.
 */
int lz_store_fill(struct lz_store *store, const char *key, const struct lz_object_meta *meta,
		  lz_store_fetch_fn *fetch, void *ctx, int *fd, char *err, size_t errlen);

/* Drops one open reference taken by lookup or fill; -EINVAL if there is none. */
int lz_store_release(struct lz_store *store, const char *key);

/* Keeps a cached (or filling) object from eviction; pins nest. Not saved across restarts. */
int lz_store_pin(struct lz_store *store, const char *key);
int lz_store_unpin(struct lz_store *store, const char *key);

/* Removes a cached object: -ENOENT if not cached, -EBUSY if open, pinned or being filled. */
int lz_store_evict(struct lz_store *store, const char *key);

/* Whether a fill of KEY is running or being published (a fill would join it). */
bool lz_store_filling(struct lz_store *store, const char *key);

/*
 * Whether BYTES more fit under the quota and on the disk without evicting
 * anything (streamed objects are written before a fill reserves their room).
 */
bool lz_store_has_room(struct lz_store *store, uint64_t bytes);

/*
 * Rereads a cached object and compares it with the CRC32 recorded when it was
 * filled: -EIO (and the copy is dropped) when it differs, -ENOENT if not cached.
 */
int lz_store_check(struct lz_store *store, const char *key, char *err, size_t errlen);

/* The metadata of a cached object, or -ENOENT. */
int lz_store_meta(struct lz_store *store, const char *key, struct lz_object_meta *meta);

void lz_store_stats(struct lz_store *store, struct lz_store_stats *stats);

#endif
