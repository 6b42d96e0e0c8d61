/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Streamed reads (cache/stream.c) against a fake remote in memory: bytes
 * equal the source, waits end when their bytes are there, a read far ahead
 * is fetched before the fill reaches it, concurrent opens share one fetch,
 * a fetch that dies fails the waiting reads with -EIO and publishes nothing,
 * a retry resumes where it stopped, a failed check fails later reads, and
 * freeing the set stops a slow fetch.
 */
#include "config.h"
#include "cache/stream.h"
#include "common/clock.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIZE  (5u * 1024 * 1024 + 1234)
#define PIECE (16u * 1024)

struct fake {
	unsigned char *data;
	atomic_uint piece_us;	 /* delay per piece: a slow remote */
	atomic_llong fail_after; /* bytes served in all before every read fails; -1 never */
	atomic_int fail_times;	 /* reads that still fail at fail_after; <0: all */
	atomic_llong served;	 /* bytes handed to sinks */
	atomic_ullong far_off;	 /* the highest offset a read started at */
	atomic_int finishes, finish_rc;
	atomic_int finish_ok; /* finish found the file equal to the source */
	atomic_int gone;      /* published_gone calls */
};

static int fake_read(void *ctx, const char *path, uint64_t off, uint64_t len,
		     lz_stream_sink_fn *sink, void *sink_ctx, char *err, size_t errlen)
{
	struct fake *f = ctx;
	uint64_t done = 0;

	(void)path;
	if (off > atomic_load(&f->far_off))
		atomic_store(&f->far_off, off);
	while (done < len) {
		size_t n = len - done < PIECE ? (size_t)(len - done) : PIECE;
		long long limit = atomic_load(&f->fail_after);

		if (limit >= 0 && atomic_load(&f->served) >= limit &&
		    atomic_load(&f->fail_times) != 0) {
			atomic_fetch_sub(&f->fail_times, 1);
			snprintf(err, errlen, "injected failure");
			return -EIO;
		}
		if (atomic_load(&f->piece_us) > 0) {
			usleep(atomic_load(&f->piece_us));
			if (!sink(sink_ctx, NULL, 0))
				return -ECANCELED;
		}
		if (!sink(sink_ctx, (const char *)f->data + off + done, n))
			return -ECANCELED;
		atomic_fetch_add(&f->served, (long long)n);
		done += n;
	}
	return 0;
}

static int fake_finish(void *ctx, const char *path, const struct lz_object_meta *meta, int fd,
		       char *err, size_t errlen)
{
	struct fake *f = ctx;
	unsigned char *buf = malloc(SIZE);
	bool same = buf != NULL && pread(fd, buf, SIZE, 0) == (ssize_t)SIZE &&
		    memcmp(buf, f->data, SIZE) == 0 && meta->size == SIZE;

	(void)path;
	free(buf);
	atomic_store(&f->finish_ok, same);
	atomic_fetch_add(&f->finishes, 1);
	if (atomic_load(&f->finish_rc) != 0) {
		snprintf(err, errlen, "hash mismatch (injected)");
		return atomic_load(&f->finish_rc);
	}
	return 0;
}

static void fake_gone(void *ctx, const char *path)
{
	struct fake *f = ctx;

	(void)path;
	atomic_fetch_add(&f->gone, 1);
}

static struct fake fake;
static int dir_fd;

static void reset(void)
{
	atomic_store(&fake.piece_us, 0);
	atomic_store(&fake.fail_after, -1);
	atomic_store(&fake.fail_times, 0);
	atomic_store(&fake.served, 0);
	atomic_store(&fake.far_off, 0);
	atomic_store(&fake.finishes, 0);
	atomic_store(&fake.finish_rc, 0);
	atomic_store(&fake.finish_ok, 0);
	atomic_store(&fake.gone, 0);
}

static struct lz_streams *new_set(void)
{
	struct lz_stream_io io = {
		.read = fake_read,
		.finish = fake_finish,
		.published_gone = fake_gone,
		.ctx = &fake,
		.dir_fd = dir_fd,
	};

	reset();
	return lz_streams_new(&io);
}

static const struct lz_object_meta meta = { .size = SIZE, .mtime = { 1700000000, 0 } };

/* Until finish ran (or 10 s). */
static void wait_finish(void)
{
	for (int i = 0; i < 10000 && atomic_load(&fake.finishes) == 0; i++)
		usleep(1000);
	usleep(20000); /* the worker leaves after finish */
}

static bool bytes_equal(int fd, uint64_t off, size_t len)
{
	unsigned char *buf = malloc(len);
	bool same = buf != NULL && pread(fd, buf, len, (off_t)off) == (ssize_t)len &&
		    memcmp(buf, fake.data + off, len) == 0;

	free(buf);
	return same;
}

static void test_whole(void)
{
	struct lz_streams *set = new_set();
	struct lz_stream *s, *s2, *s3;
	uint64_t started, failed;
	int fd, fd2, fd3;

	CHECK(lz_streams_open(set, "a/clip.mp4", &meta, true, &s, &fd) == 0);
	/* A second open of the same object joins the running fetch. */
	CHECK(lz_streams_open(set, "a/clip.mp4", &meta, false, &s2, &fd2) == 0);
	/* None to join, and none may start. */
	CHECK(lz_streams_open(set, "other", &meta, false, &s3, &fd3) == -EBUSY);
	CHECK(s == s2);
	CHECK(lz_stream_wait(s, 0, 65536, true) == 0);
	CHECK(bytes_equal(fd, 0, 65536));
	CHECK(lz_stream_wait(s, 0, SIZE, true) == 0);
	CHECK(bytes_equal(fd, 0, SIZE));
	/* Past the end: nothing to wait for. */
	CHECK(lz_stream_wait(s, SIZE, 4096, true) == 0);
	CHECK(lz_stream_wait(s, SIZE - 10, 4096, true) == 0);
	wait_finish();
	CHECK(atomic_load(&fake.finishes) == 1 && atomic_load(&fake.finish_ok));
	CHECK(atomic_load(&fake.served) == SIZE);
	lz_streams_counts(set, &started, &failed);
	CHECK(started == 1 && failed == 0);
	/* Published: a new open is told to take the published copy. */
	CHECK(lz_streams_open(set, "a/clip.mp4", &meta, true, &s3, &fd3) == -EAGAIN);
	lz_stream_close(s);
	CHECK(atomic_load(&fake.gone) == 0);
	lz_stream_close(s2);
	/* The last handle gone: what finish kept for them may go. */
	CHECK(atomic_load(&fake.gone) == 1);
	close(fd);
	close(fd2);
	lz_streams_free(set);
}

static void test_far_read(void)
{
	struct lz_streams *set = new_set();
	struct lz_stream *s;
	int fd;

	atomic_store(&fake.piece_us, 3000); /* 5 MiB in about a second */
	CHECK(lz_streams_open(set, "b.mp4", &meta, true, &s, &fd) == 0);
	double t0 = lz_clock_s(CLOCK_MONOTONIC);
	/* Not there yet: asked for all the same, without waiting. */
	CHECK(lz_stream_wait(s, SIZE - 65536, 65536, false) == -EAGAIN);
	lz_stream_hold(s); /* a read waiting elsewhere */
	CHECK(lz_stream_wait(s, SIZE - 65536, 65536, true) == 0);
	CHECK(lz_stream_wait(s, SIZE - 65536, 65536, false) == 0);
	lz_stream_close(s);
	double took = lz_clock_s(CLOCK_MONOTONIC) - t0;
	CHECK(bytes_equal(fd, SIZE - 65536, 65536));
	/* The jump window (1 MiB, 64 pieces) and not the 5 MiB before it. */
	CHECK(took < 0.6);
	CHECK(atomic_load(&fake.far_off) >= SIZE - 1024 * 1024);
	CHECK(lz_stream_wait(s, 0, SIZE, true) == 0);
	CHECK(bytes_equal(fd, 0, SIZE));
	wait_finish();
	CHECK(atomic_load(&fake.finishes) == 1 && atomic_load(&fake.finish_ok));
	/* Nothing fetched twice but what two runs met in one chunk. */
	CHECK(atomic_load(&fake.served) < SIZE + 2 * 256 * 1024);
	lz_stream_close(s);
	close(fd);
	lz_streams_free(set);
}

static void test_dies(void)
{
	struct lz_streams *set = new_set();
	struct lz_stream *s;
	uint64_t started, failed;
	int fd;

	atomic_store(&fake.fail_after, 1024 * 1024);
	atomic_store(&fake.fail_times, -1);
	CHECK(lz_streams_open(set, "c.mp4", &meta, true, &s, &fd) == 0);
	CHECK(lz_stream_wait(s, 0, 65536, true) == 0);
	CHECK(lz_stream_wait(s, 3u << 20, 65536, true) == -EIO);
	CHECK(lz_stream_wait(s, 0, 65536, true) == -EIO); /* failed for good */
	usleep(50000);
	CHECK(atomic_load(&fake.finishes) == 0);
	lz_streams_counts(set, &started, &failed);
	CHECK(failed == 1);
	/* A new open starts again rather than joining the failed one. */
	struct lz_stream *s2;
	int fd2;
	atomic_store(&fake.fail_after, -1);
	CHECK(lz_streams_open(set, "c.mp4", &meta, true, &s2, &fd2) == 0);
	CHECK(s2 != s);
	CHECK(lz_stream_wait(s2, 0, SIZE, true) == 0);
	CHECK(bytes_equal(fd2, 0, SIZE));
	lz_stream_close(s2);
	close(fd2);
	lz_stream_close(s);
	close(fd);
	lz_streams_free(set);
}

static void test_resume(void)
{
	struct lz_streams *set = new_set();
	struct lz_stream *s;
	int fd;

	atomic_store(&fake.fail_after, 2 * 1024 * 1024);
	atomic_store(&fake.fail_times, 1);
	CHECK(lz_streams_open(set, "d.mp4", &meta, true, &s, &fd) == 0);
	CHECK(lz_stream_wait(s, 0, SIZE, true) == 0);
	CHECK(bytes_equal(fd, 0, SIZE));
	wait_finish();
	CHECK(atomic_load(&fake.finishes) == 1 && atomic_load(&fake.finish_ok));
	/* Resumed from the chunk it stopped in, not from the start. */
	CHECK(atomic_load(&fake.served) < SIZE + 256 * 1024 + PIECE);
	lz_stream_close(s);
	close(fd);
	lz_streams_free(set);
}

static void test_mismatch(void)
{
	struct lz_streams *set = new_set();
	struct lz_stream *s;
	int fd;

	atomic_store(&fake.finish_rc, -EIO);
	CHECK(lz_streams_open(set, "e.mp4", &meta, true, &s, &fd) == 0);
	CHECK(lz_stream_wait(s, 0, 65536, true) == 0); /* served before the check: the trade-off */
	wait_finish();
	CHECK(atomic_load(&fake.finishes) == 1);
	CHECK(lz_stream_wait(s, 0, 65536, true) == -EIO);
	CHECK(lz_stream_wait(s, SIZE - 1, 1, true) == -EIO);
	lz_stream_close(s);
	close(fd);
	lz_streams_free(set);
}

static void test_stop(void)
{
	struct lz_streams *set = new_set();
	struct lz_stream *s;
	int fd;

	atomic_store(&fake.piece_us, 20000); /* 5 MiB in 7 s */
	CHECK(lz_streams_open(set, "f.mp4", &meta, true, &s, &fd) == 0);
	CHECK(lz_stream_wait(s, 0, 4096, true) == 0);
	double t0 = lz_clock_s(CLOCK_MONOTONIC);
	close(fd);
	lz_streams_free(set); /* frees the open handle too */
	CHECK(lz_clock_s(CLOCK_MONOTONIC) - t0 < 1.0);
	CHECK(atomic_load(&fake.finishes) == 0);
}

static void test_busy(void)
{
	struct lz_stream_io io = { .read = fake_read,
				   .finish = fake_finish,
				   .ctx = &fake,
				   .dir_fd = dir_fd,
				   .max_active = 1 };
	struct lz_streams *set;
	struct lz_stream *s, *t;
	int fd, fd2;

	reset();
	set = lz_streams_new(&io);
	atomic_store(&fake.piece_us, 2000);
	CHECK(lz_streams_open(set, "g.mp4", &meta, true, &s, &fd) == 0);
	CHECK(lz_streams_open(set, "h.mp4", &meta, true, &t, &fd2) == -EBUSY);
	CHECK(lz_streams_active_bytes(set) == SIZE);
	struct lz_object_meta empty = { .size = 0 };
	lz_stream_close(s);
	close(fd);
	lz_streams_free(set);
	set = new_set();
	CHECK(lz_streams_open(set, "empty", &empty, true, &s, &fd) == 0);
	CHECK(lz_stream_wait(s, 0, 4096, true) == 0);
	lz_stream_close(s);
	close(fd);
	lz_streams_free(set);
}

int main(void)
{
	char dir[] = "/tmp/test_stream.XXXXXX";

	fake.data = malloc(SIZE);
	if (fake.data == NULL || mkdtemp(dir) == NULL)
		return 1;
	srand(18);
	for (size_t i = 0; i < SIZE; i++)
		fake.data[i] = (unsigned char)rand();
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	test_whole();
	test_far_read();
	test_dies();
	test_resume();
	test_mismatch();
	test_stop();
	test_busy();
	close(dir_fd);
	rmdir(dir);
	free(fake.data);
	return unit_finish("test_stream");
}
