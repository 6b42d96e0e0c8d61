/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Streamed reads of cold remote objects (stream=on): an open returns once
 * the fetch has begun, and each read waits only for the bytes it asks for.
 *
 * Why this mechanism. The daemon fetches the object itself, by HTTP Range
 * requests to the rclone child's rc-serve (lz_rclone_read), into a file of
 * its own: an unnamed O_TMPFILE in the cache directory, as large as the
 * object and sparse until filled. Following the child's growing copy in
 * tmp/ was the other way, and it breaks: past rclone's multi-thread cutoff
 * (250 MiB) the copy is written out of order, so its size says nothing about
 * which bytes are there; and the file is the child's (another user's) until
 * it is taken back. Here a bitmap of 256 KiB chunks says exactly what is
 * there, no byte passes through a file the child can write, and reads far
 * ahead of the fill (an MP4's index at its end) are fetched at once by a
 * second worker instead of waiting for everything before them.
 *
 * Each stream has two workers: a sequential fill from the first missing
 * chunk to the end (one GET, stopped where chunks are already there), and a
 * jump worker that fetches a small window (1 MiB) where a reader waits past
 * the fill's front (more than 4 MiB ahead). Concurrent opens of one object
 * share one stream. When every chunk is there, the file is handed to FINISH,
 * which checks it (size, and the MD5 or SHA-1 the remote lists) and
 * publishes it in the store; from then on opens find it cached. A check
 * that fails, or a fetch that dies (after two retries from where it
 * stopped), fails every read of the stream with -EIO, waiting ones
 * included: a reader never gets short or unchecked-as-failed data. Bytes
 * read before the end-of-fetch check are the trade-off (stream=off waits for
 * the check before the first byte).
 *
 * Knows nothing of FUSE. Thread-safe. Calls return 0 or -errno.
 */
#ifndef LAZYFS_CACHE_STREAM_H
#define LAZYFS_CACHE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/store/store.h"
#include "common/log.h"

/*
 * The unit of a stream's bitmap. An object no larger is not streamed: one
 * range read brings all of it, so its first byte would come no sooner.
 */
#define LZ_STREAM_CHUNK (256u * 1024)

typedef bool lz_stream_sink_fn(void *ctx, const char *data, size_t len);

struct lz_stream_io {
	/*
	 * Reads bytes [OFF, OFF+LEN) of object PATH into SINK, in order; the
	 * contract of lz_rclone_read (rclone.h): 0, -ECANCELED when SINK stopped
	 * it, -errno with ERR.
	 */
	int (*read)(void *ctx, const char *path, uint64_t off, uint64_t len,
		    lz_stream_sink_fn *sink, void *sink_ctx, char *err, size_t errlen);
	/*
	 * FD (read-only, no writer left) holds all of object PATH as fetched:
	 * check it against META and publish it. 0, or -errno with ERR.
	 */
	int (*finish)(void *ctx, const char *path, const struct lz_object_meta *meta, int fd,
		      char *err, size_t errlen);
	/*
	 * The stream of PATH that FINISH published is gone (its last handle
	 * closed): what FINISH kept for its handles (the store's open reference)
	 * may go. NULL: nothing to do.
	 */
	void (*published_gone)(void *ctx, const char *path);
	void *ctx;
	/* Where the files are made (O_TMPFILE): on the store's filesystem, to be linked there. */
	int dir_fd;
	/* Streams fetching at once; more opens get -EBUSY (0: 16). */
	unsigned max_active;
	lz_log_fn *log;
	void *log_ctx;
};

struct lz_streams;
struct lz_stream;

/* A set of streams; IO is copied (dir_fd stays the caller's). NULL: ENOMEM. */
struct lz_streams *lz_streams_new(const struct lz_stream_io *io);
/*
 * Stops every fetch (a read in progress ends within about a second) and
 * frees every stream, open ones too: no call may follow for any of them.
 */
void lz_streams_free(struct lz_streams *set);

/*
 * A handle on the stream of object PATH as META describes it (size known):
 * the running one if it is the same object, else a new one (a stream of an
 * older version goes on for its own handles). 0 with *OUT and *FD, a new
 * read-only descriptor of its file (the caller's to close); -EAGAIN when
 * that object's stream is complete and published (waited for while it is
 * checked): open the published copy; -EBUSY when max_active streams fetch
 * already; -errno.
 */
int lz_streams_open(struct lz_streams *set, const char *path, const struct lz_object_meta *meta,
		    bool start, struct lz_stream **out, int *fd);
/*
 * Waits until bytes [OFF, OFF+LEN) (cut at the object's end) are in the
 * file: 0, or -EIO when the fetch failed or the object did not check out.
 * Without BLOCK, -EAGAIN instead of waiting (the bytes are asked for all
 * the same: a read far ahead starts its jump).
 */
int lz_stream_wait(struct lz_stream *stream, uint64_t off, uint64_t len, bool block);
/* Another handle on STREAM (for a read that waits elsewhere), dropped by lz_stream_close. */
void lz_stream_hold(struct lz_stream *stream);
/* Drops a handle; the fetch goes on without handles, to publish the object. */
void lz_stream_close(struct lz_stream *stream);

/* The sizes of the streams fetching or being checked: disk the store has not reserved. */
uint64_t lz_streams_active_bytes(struct lz_streams *set);

/* Streams started, and those that failed (fetch or check), since the set was made. */
void lz_streams_counts(struct lz_streams *set, uint64_t *started, uint64_t *failed);

#endif
