/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The insides of the remote source, shared by remote.c (listings, whole
 * fetches, the store) and remote_stream.c (cold objects streamed). Nothing
 * outside cache/ includes this. The listings are guarded by lock, never held
 * during a request; the rest is set at start and read-only after, but store
 * (NULL while suspended for a live upgrade).
 */
#ifndef LAZYFS_REMOTE_INT_H
#define LAZYFS_REMOTE_INT_H

#include "remote.h"
#include "cache/store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct listing;
struct lz_rclone;
struct lz_streams;

struct lz_remote {
	struct lz_store *store; /* NULL while suspended for a live upgrade */
	char *cache_dir;
	uint64_t cache_size;
	bool run_as_user; /* fills are written by the rclone child's own user */
	uid_t run_uid;
	gid_t run_gid;
	struct lz_rclone *rclone;
	struct lz_streams *streams; /* stream=on: cold objects streamed; else NULL */
	int cache_fd;		    /* the cache directory, where streams make their files */
	struct lz_source source;
	double ttl;
	lz_log_fn *log;
	void *log_ctx;
	void (*evicted)(void *ctx, const char *path);
	void *evicted_ctx;
	atomic_ullong fetches, fetch_failures, fetch_bytes, fetch_ns;
	atomic_bool unreachable; /* the last call got no answer (I/O error, timeout) */
	pthread_mutex_t lock;	 /* the listings; never held during a request */
	pthread_cond_t refreshed;
	struct listing *listings;
};

/* remote.c */
__attribute__((format(printf, 3, 4))) void
lz_remote_say(struct lz_remote *r, enum lz_log_level level, const char *fmt, ...);
/* A call to the remote answered (RC 0) or not (an I/O error, a timeout): remote_up. */
void lz_remote_note_answer(struct lz_remote *r, int rc);
/* Objects are stored under "o:PATH"; listings ("l:DIR") tell nobody. */
void lz_remote_object_key(char *key, size_t len, const char *path);
/* The listing's metadata of object PATH and its store key: 0 or -errno. */
int lz_remote_object_meta(struct lz_remote *r, const char *path, char *key, size_t keylen,
			  struct lz_object_meta *meta);
/* The whole object PATH, fetched into the store and checked: a descriptor or -errno. */
int lz_remote_fill_object(struct lz_remote *r, const char *path, const char *key,
			  const struct lz_object_meta *meta);
/* The source's release: the open reference on object PATH goes. */
void lz_remote_release(void *ctx, const char *path);

/*
 * remote_stream.c: the source's streamed opens (common/source.h; STREAM NULL:
 * a cached object or one fetched whole, never streamed), and their start.
 */
int lz_remote_open_streamed(void *ctx, const char *path, void **stream);
int lz_remote_stream_wait(void *ctx, void *stream, uint64_t off, uint64_t len, bool block);
void lz_remote_stream_hold(void *ctx, void *stream);
void lz_remote_stream_close(void *ctx, void *stream);
/*
 * Object PATH of SIZE bytes read whole from the child's rc-serve into a new
 * file at TMP_PATH (a store fetch, lz_store_fetch_fn): 0, or -errno with ERR.
 */
int lz_remote_read_whole(struct lz_remote *r, const char *path, uint64_t size, const char *tmp_path,
			 char *err, size_t errlen);
/* Makes R's streams (stream=on) in its cache directory: 0, or -1 with a reason in ERR. */
int lz_remote_start_streams(struct lz_remote *r, char *err, size_t errlen);

#endif
