/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Cold objects of the remote streamed (cache/stream.h) rather than fetched
 * whole: the source's streamed open, the range reads a stream makes through
 * the rclone child, and the store's check and publication of a complete one.
 */
#include "config.h"
#include "remote_int.h"
#include "stream.h"
#include "cache/rclone/rclone.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A cut whole read goes on from where it stopped this many times more, as a stream's does. */
#define WHOLE_RETRIES  2
#define WHOLE_RETRY_MS 200

/*
 * A cached object as open gives it; a cold one streamed when streams are on
 * and not all busy (then, as without them, fetched whole first).
 */
int lz_remote_open_streamed(void *ctx, const char *path, void **stream)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];
	struct lz_object_meta meta;
	struct lz_stream *s;
	int fd, rc = lz_remote_object_meta(r, path, key, sizeof(key), &meta);

	if (stream != NULL)
		*stream = NULL;
	if (rc != 0)
		return rc;
	if (r->store == NULL)
		return -EIO;
	if (lz_store_lookup(r->store, key, &meta, &fd) == 0)
		return fd;
	/*
	 * A running stream of it is joined. A new one starts only when nothing
	 * else fetches it (a fill being published is joined instead) and it fits
	 * without evicting: a stream writes before the store reserves its room,
	 * while a whole fill evicts first.
	 */
	if (stream != NULL && r->streams != NULL && meta.size > LZ_STREAM_CHUNK) {
		bool start =
			!lz_store_filling(r->store, key) &&
			lz_store_has_room(r->store, (uint64_t)meta.size +
							    lz_streams_active_bytes(r->streams));
		rc = lz_streams_open(r->streams, path, &meta, start, &s, &fd);
		if (rc == 0) {
			*stream = s;
			return fd;
		}
		/*
		 * -EAGAIN: just published; -EBUSY: none to join, and none may start
		 * (no room, another fill, or streams all busy). Else no stream
		 * could start (a cache filesystem without O_TMPFILE...): the whole
		 * object is fetched as with stream=off.
		 */
		if (rc != -EBUSY && rc != -EAGAIN)
			lz_remote_say(r, LZ_LOG_WARN,
				      "'%s' cannot be streamed (%s): fetching it whole", path,
				      strerror(-rc));
	}
	return lz_remote_fill_object(r, path, key, &meta);
}

int lz_remote_stream_wait(void *ctx, void *stream, uint64_t off, uint64_t len, bool block)
{
	(void)ctx;
	return lz_stream_wait(stream, off, len, block);
}

void lz_remote_stream_hold(void *ctx, void *stream)
{
	(void)ctx;
	lz_stream_hold(stream);
}

void lz_remote_stream_close(void *ctx, void *stream)
{
	(void)ctx;
	lz_stream_close(stream);
}

/* The bytes of a whole read, written in order; ERRNO_ once a write failed. */
struct file_sink {
	int fd;
	uint64_t at;
	int errno_;
};

static bool write_sink(void *ctx, const char *data, size_t len)
{
	struct file_sink *f = ctx;

	while (len > 0) {
		ssize_t n = pwrite(f->fd, data, len, (off_t)f->at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			f->errno_ = n < 0 ? errno : EIO;
			return false;
		}
		data += n;
		len -= (size_t)n;
		f->at += (uint64_t)n;
	}
	return true;
}

/*
 * With rc-serve on, a whole fetch is a range read like a stream's: no file of
 * the child's to take back, no rc reply to parse, and the connection to the
 * child kept from one object to the next (lz_rc_get). It is what makes a
 * small cold object cost little more than the remote's own round trips.
 */
int lz_remote_read_whole(struct lz_remote *r, const char *path, uint64_t size, const char *tmp_path,
			 char *err, size_t errlen)
{
	struct file_sink f = {
		.fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)
	};
	int rc = -EIO;

	if (f.fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", tmp_path, strerror(-rc));
		return rc;
	}
	for (unsigned tries = 0; tries <= WHOLE_RETRIES; tries++) {
		uint64_t before = f.at;

		if (tries > 0)
			nanosleep(&(struct timespec){ .tv_nsec = WHOLE_RETRY_MS * 1000000L }, NULL);
		rc = lz_rclone_read(r->rclone, path, f.at, size - f.at, write_sink, &f, err,
				    errlen);
		if (rc != -ECANCELED)
			lz_remote_note_answer(r, rc);
		if (rc != -EIO)
			break;
		if (f.at > before)
			tries = 0; /* it moved: as a stream's fill, a stop counts from there */
	}
	if (rc == -ECANCELED) {
		snprintf(err, errlen, "writing %s: %s", tmp_path, strerror(f.errno_));
		rc = -f.errno_;
	}
	if (close(f.fd) < 0 && rc == 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", tmp_path, strerror(-rc));
	}
	return rc;
}

static int stream_read(void *ctx, const char *path, uint64_t off, uint64_t len,
		       lz_stream_sink_fn *sink, void *sink_ctx, char *err, size_t errlen)
{
	struct lz_remote *r = ctx;
	int rc = lz_rclone_read(r->rclone, path, off, len, sink, sink_ctx, err, errlen);

	if (rc != -ECANCELED)
		lz_remote_note_answer(r, rc);
	return rc;
}

/* The store's fetch of a streamed object: the file is there already, linked into place. */
static int link_fetched(void *ctx, const char *tmp_path, char *err, size_t errlen)
{
	char self[32];

	snprintf(self, sizeof(self), "/proc/self/fd/%d", *(const int *)ctx);
	if (linkat(AT_FDCWD, self, AT_FDCWD, tmp_path, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	snprintf(err, errlen, "linking the streamed file: %s", strerror(errno));
	return -errno;
}

/*
 * A streamed object is complete: the store checks it (size, listed hash) as
 * it checks a copy, and publishes it. -EIO when it is not the object.
 */
static int stream_finish(void *ctx, const char *path, const struct lz_object_meta *meta, int fd,
			 char *err, size_t errlen)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];
	int out, rc;

	if (r->store == NULL) {
		snprintf(err, errlen, "the cache is closed (a live upgrade)");
		return -EIO;
	}
	lz_remote_object_key(key, sizeof(key), path);
	rc = lz_store_fill(r->store, key, meta, link_fetched, &fd, &out, err, errlen);
	atomic_fetch_add(rc == 0 ? &r->fetches : &r->fetch_failures, 1);
	if (rc != 0)
		return rc;
	atomic_fetch_add(&r->fetch_bytes, (unsigned long long)meta->size);
	close(out);
	/* Once per fetch, as fetch_object says it: tests count these lines. */
	lz_remote_say(r, LZ_LOG_DEBUG, "fetched '%s'", path);
	/* The open reference stays while the stream's handles do (stream_published_gone). */
	return 0;
}

static void stream_published_gone(void *ctx, const char *path)
{
	lz_remote_release(ctx, path);
}

int lz_remote_start_streams(struct lz_remote *r, char *err, size_t errlen)
{
	struct lz_stream_io io = {
		.read = stream_read,
		.finish = stream_finish,
		.published_gone = stream_published_gone,
		.ctx = r,
		.log = r->log,
		.log_ctx = r->log_ctx,
	};

	/* The store made and checked it (ours, no symlink): its files are linked from here. */
	r->cache_fd = open(r->cache_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->cache_fd < 0) {
		snprintf(err, errlen, "cache %s: %s", r->cache_dir, strerror(errno));
		return -1;
	}
	io.dir_fd = r->cache_fd;
	r->streams = lz_streams_new(&io);
	if (r->streams == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
