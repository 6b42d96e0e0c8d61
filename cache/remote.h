/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A remote tree served from the local cache: listings from rclone (trusted
 * for listing_ttl, kept in the cache so they outlive a restart and an
 * unreachable remote), objects fetched into the store on first open. It
 * implements the source interface fs/ reads remote entries through; it knows
 * nothing of FUSE.
 */
#ifndef LAZYFS_CACHE_REMOTE_H
#define LAZYFS_CACHE_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"
#include "common/source.h"

struct lz_remote_options {
	const char *remote;	   /* rclone REMOTE:PATH */
	const char *rclone_config; /* rclone's config file, or NULL: the environment's */
	const char *cache_dir;	   /* the store's directory */
	/* A root daemon's rclone child runs as this user, which owns its downloads. */
	bool run_as_user;
	uid_t run_uid;
	gid_t run_gid;
	uint64_t cache_size; /* bytes; 0 = 90 % of the free space */
	double listing_ttl;  /* seconds a listing is trusted */
	double timeout;	     /* seconds without progress before a request fails */
	/*
	 * Cold objects are streamed (cache/stream.h): open_streamed hands out
	 * their file while it is fetched. Else every open waits for the whole,
	 * checked object.
	 */
	bool stream;
	lz_log_fn *log;
	void *log_ctx;
	/* An object PATH left the cache (evicted): the next open fetches it again. */
	void (*evicted)(void *ctx, const char *path);
	void *evicted_ctx;
};

struct lz_remote;

/* Opens the store and prepares the fetcher (nothing is started yet). NULL + ERR. */
struct lz_remote *lz_remote_new(const struct lz_remote_options *opts, char *err, size_t errlen);
void lz_remote_free(struct lz_remote *remote);
/*
 * Live upgrade: closes the store (index saved, its directory's lock let go)
 * so the next process can open it; listings and the fetcher stay. Until
 * lz_remote_resume the source fails every call (release does nothing), and
 * nothing else may call it meanwhile. 0, or -errno with ERR.
 */
int lz_remote_suspend(struct lz_remote *remote, char *err, size_t errlen);
/* Opens the store again after lz_remote_suspend (the upgrade failed). 0, or -errno with ERR. */
int lz_remote_resume(struct lz_remote *remote, char *err, size_t errlen);
/*
 * Stops telling opts->evicted: when this returns, no call of it is running or
 * will be (the core it tells is being taken down).
 */
void lz_remote_stop_evicted(struct lz_remote *remote);
const struct lz_source *lz_remote_source(struct lz_remote *remote);
/*
 * Starts reading the cache's index and the rclone child in the background
 * (cache/store/load.c, rclone_rcd.c): the mount waits for neither, and the
 * first listing does not wait for rclone to start. Call once the process
 * will not fork.
 */
void lz_remote_preload(struct lz_remote *remote);

#endif
