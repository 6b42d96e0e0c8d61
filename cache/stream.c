/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Streamed reads: the mechanism and why are in stream.h. Here: one lock for
 * the set (streams are few and every critical section is short: bitmap bits
 * and counters, never I/O), a condition per stream its readers and its jump
 * worker wait on, and a condition for the set's end.
 */
#include "config.h"
#include "stream.h"
#include "common/clock.h"
#include "common/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	    LZ_STREAM_CHUNK
#define JUMP_CHUNKS 4	       /* a jump fetches this many chunks (1 MiB) */
#define NEAR_BYTES  (4u << 20) /* a read this close past the fill's front waits for it */
#define RETRIES	    2	       /* a worker's failed read is retried, from where it stopped */
#define RETRY_MS    200
#define DEFAULT_MAX 16
#define NONE	    UINT64_MAX
#define ERR_MAX	    512

enum state { FETCHING, CHECKING, DONE, FAILED };

/*
 * What one worker's GET covers: [start, cur) is written (START on a chunk
 * boundary), [start, end) asked for. A jump claims all of it (WHOLE), the
 * fill only the chunk it is writing: the rest it reaches only if no one else
 * brought it first.
 */
struct run {
	bool on, whole;
	uint64_t start, cur, end;
};

struct lz_stream {
	struct lz_streams *set;
	char *path;
	struct lz_object_meta meta;
	uint64_t size, nchunks;
	int wfd; /* the workers write here; closed before the check (no writer left) */
	int rfd; /* read-only, what handles reopen */
	/* Guarded by set->lock. */
	uint64_t *bits;	  /* chunks there */
	uint64_t missing; /* chunks not there */
	struct run seq, jump;
	uint64_t want; /* a chunk a reader waits for far past the fill: the jump's next */
	enum state state;
	unsigned refs; /* handles and workers */
	unsigned workers;
	bool in_table; /* the stream new opens of PATH join */
	pthread_cond_t changed;
	struct lz_stream *next;
};

struct lz_streams {
	struct lz_stream_io io;
	pthread_mutex_t lock;
	pthread_cond_t idle; /* a worker ended */
	struct lz_stream *all;
	unsigned active;       /* streams FETCHING or CHECKING */
	uint64_t active_bytes; /* their sizes: written before the store reserves them */
	unsigned workers;
	bool stopping;
	uint64_t started, failed;
};

__attribute__((format(printf, 3, 4))) static void say(struct lz_streams *set,
						      enum lz_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (set->io.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set->io.log(set->io.log_ctx, level, msg);
}

static bool bit(const struct lz_stream *s, uint64_t c)
{
	return (s->bits[c / 64] >> (c % 64)) & 1;
}

static void set_bit(struct lz_stream *s, uint64_t c)
{
	if (bit(s, c))
		return;
	s->bits[c / 64] |= UINT64_C(1) << (c % 64);
	s->missing--;
}

static uint64_t chunk_end(const struct lz_stream *s, uint64_t c)
{
	uint64_t end = (c + 1) * CHUNK;
	return end < s->size ? end : s->size;
}

/* Whether a running GET claims chunk C: it brings it next, or already brought part of it. */
static bool run_covers(const struct run *r, uint64_t c)
{
	uint64_t last = r->whole ? r->end : r->cur + 1;

	return r->on && c >= r->start / CHUNK && c * CHUNK < last;
}

/* Whether bytes [OFF, END) are all in the file: whole chunks, or a run's written part. */
static bool covered(const struct lz_stream *s, uint64_t off, uint64_t end)
{
	uint64_t pos = off;

	while (pos < end) {
		uint64_t c = pos / CHUNK;
		if (bit(s, c)) {
			pos = chunk_end(s, c);
		} else if (s->seq.on && pos >= s->seq.start && pos < s->seq.cur) {
			pos = s->seq.cur;
		} else if (s->jump.on && pos >= s->jump.start && pos < s->jump.cur) {
			pos = s->jump.cur;
		} else {
			return false;
		}
	}
	return true;
}

static void fail_stream(struct lz_stream *s, const char *why)
{
	if (s->state == FAILED || s->state == DONE)
		return;
	s->state = FAILED;
	s->set->failed++;
	pthread_cond_broadcast(&s->changed);
	say(s->set, LZ_LOG_ERR, "streamed fetch of '%s' failed: %s", s->path, why);
}

static void stream_free(struct lz_stream *s)
{
	struct lz_stream **p;

	for (p = &s->set->all; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	if (s->wfd >= 0)
		close(s->wfd);
	if (s->rfd >= 0)
		close(s->rfd);
	if (s->state == DONE && s->set->io.published_gone != NULL)
		s->set->io.published_gone(s->set->io.ctx, s->path);
	pthread_cond_destroy(&s->changed);
	free(s->bits);
	free(s->path);
	free(s);
}

/* Lock held. */
static void stream_put(struct lz_stream *s)
{
	if (--s->refs == 0)
		stream_free(s);
}

/* What a worker's sink writes into. */
struct sink {
	struct lz_stream *s;
	struct run *run, *other;
	char err[ERR_MAX];
	bool stop_here; /* it reached chunks already there (or the other's): not a failure */
};

/* Lock held: marks the chunks RUN completed, wakes readers, and says whether to go on. */
static bool advance(struct sink *k, uint64_t len)
{
	struct lz_stream *s = k->s;
	struct run *r = k->run;
	uint64_t c;

	r->cur += len;
	for (c = r->start / CHUNK; c * CHUNK < r->cur; c++)
		if (chunk_end(s, c) <= r->cur && c * CHUNK >= r->start)
			set_bit(s, c);
	/* Chunks already there are not fetched twice: move past them. */
	r->start = r->cur - r->cur % CHUNK;
	pthread_cond_broadcast(&s->changed);
	return s->state == FETCHING && !s->set->stopping;
}

/* Lock held: at a chunk boundary, whether the next chunk is there or the other run's. */
static bool next_taken(struct sink *k)
{
	uint64_t c = k->run->cur / CHUNK;

	return k->run->cur < k->s->size && (bit(k->s, c) || run_covers(k->other, c));
}

static bool sink_write(void *ctx, const char *data, size_t len)
{
	struct sink *k = ctx;
	struct lz_stream *s = k->s;
	bool go = true;

	pthread_mutex_lock(&s->set->lock);
	go = s->state == FETCHING && !s->set->stopping;
	pthread_mutex_unlock(&s->set->lock);
	/* Pieces end at chunk boundaries, where the run stops if the rest is there. */
	while (go && len > 0) {
		uint64_t pos = k->run->cur, room = CHUNK - pos % CHUNK;
		size_t piece = len < room ? len : (size_t)room;

		if (pos % CHUNK == 0) {
			pthread_mutex_lock(&s->set->lock);
			k->stop_here = next_taken(k);
			pthread_mutex_unlock(&s->set->lock);
			if (k->stop_here)
				return false;
		}
		ssize_t n = pwrite(s->wfd, data, piece, (off_t)pos);
		if (n != (ssize_t)piece) {
			snprintf(k->err, sizeof(k->err), "writing the cache file: %s",
				 n < 0 ? strerror(errno) : "short write");
			return false;
		}
		pthread_mutex_lock(&s->set->lock);
		go = advance(k, piece);
		pthread_mutex_unlock(&s->set->lock);
		data += piece;
		len -= piece;
	}
	return go;
}

/*
 * One GET of RUN (set up, lock held) to its end or until it meets chunks
 * already there; the lock is dropped meanwhile. 0, or -errno with ERR.
 */
static int fetch_run(struct lz_stream *s, struct run *run, struct run *other, char *err,
		     size_t errlen)
{
	struct sink k = { .s = s, .run = run, .other = other };
	int rc;

	pthread_mutex_unlock(&s->set->lock);
	rc = s->set->io.read(s->set->io.ctx, s->path, run->start, run->end - run->start, sink_write,
			     &k, err, errlen);
	pthread_mutex_lock(&s->set->lock);
	run->on = false;
	if (rc == -ECANCELED && k.err[0] != '\0') {
		snprintf(err, errlen, "%s", k.err);
		return -EIO;
	}
	if (rc == -ECANCELED || (rc == 0 && run->cur != run->end))
		return 0; /* stopped at chunks already there, or for the stream's end */
	return rc;
}

static uint64_t first_missing(const struct lz_stream *s, uint64_t from)
{
	for (uint64_t c = from; c < s->nchunks; c++)
		if (!bit(s, c) && !run_covers(&s->jump, c))
			return c;
	return NONE;
}

/* Lock held: waits a little before a retry (woken early by the stream's end). */
static void pause_retry(struct lz_stream *s)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += RETRY_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&s->changed, &s->set->lock, &until);
}

/*
 * Lock held: after a run, a failure is retried (from where it stopped)
 * RETRIES times in a row before it fails the stream. False: stop working.
 */
static bool after_run(struct lz_stream *s, int rc, uint64_t before, const struct run *run,
		      unsigned *tries, const char *err)
{
	if (rc == 0 || run->cur > before)
		*tries = 0;
	if (rc == 0)
		return true;
	/* A remote that stalled while the child answers stays stalled: once is enough. */
	if (rc == -ENOENT || rc == -ETIMEDOUT || ++*tries > RETRIES || s->set->stopping) {
		fail_stream(s, err);
		return false;
	}
	pause_retry(s);
	return s->state == FETCHING && !s->set->stopping;
}

/* The sequential fill: from the first missing chunk on, until none is missing. */
static void seq_work(struct lz_stream *s)
{
	char err[ERR_MAX];
	unsigned tries = 0;

	while (s->state == FETCHING && !s->set->stopping && s->missing > 0) {
		uint64_t c = first_missing(s, 0);
		if (c == NONE) {
			/* What is left is the jump's: wait for it. */
			pthread_cond_wait(&s->changed, &s->set->lock);
			continue;
		}
		s->seq = (struct run){
			.on = true, .start = c * CHUNK, .cur = c * CHUNK, .end = s->size
		};
		uint64_t before = s->seq.cur;
		int rc = fetch_run(s, &s->seq, &s->jump, err, sizeof(err));
		if (!after_run(s, rc, before, &s->seq, &tries, err))
			break;
	}
}

/* The jump worker: a window where a reader waits far past the fill. */
static void jump_work(struct lz_stream *s)
{
	char err[ERR_MAX];
	unsigned tries = 0;

	while (s->state == FETCHING && !s->set->stopping && s->missing > 0) {
		uint64_t c = s->want, n = 0;
		if (c == NONE || bit(s, c) || run_covers(&s->seq, c)) {
			s->want = NONE;
			pthread_cond_wait(&s->changed, &s->set->lock);
			continue;
		}
		while (c + n < s->nchunks && n < JUMP_CHUNKS && !bit(s, c + n))
			n++;
		s->jump = (struct run){ .on = true,
					.whole = true,
					.start = c * CHUNK,
					.cur = c * CHUNK,
					.end = chunk_end(s, c + n - 1) };
		uint64_t before = s->jump.cur;
		say(s->set, LZ_LOG_DEBUG,
		    "stream of '%s': bytes %llu-%llu for a reader ahead of %llu", s->path,
		    (unsigned long long)s->jump.start, (unsigned long long)s->jump.end,
		    (unsigned long long)(s->seq.on ? s->seq.cur : 0));
		int rc = fetch_run(s, &s->jump, &s->seq, err, sizeof(err));
		if (s->want == c && (bit(s, c) || rc != 0))
			s->want = NONE;
		if (!after_run(s, rc, before, &s->jump, &tries, err))
			break;
	}
}

/* The last worker out: every chunk is there, the file is checked and published. */
static void finish(struct lz_stream *s)
{
	char err[ERR_MAX] = "";
	int rc;

	if (s->set->stopping && s->state == FETCHING) {
		s->state = FAILED; /* the mount ends: nothing to say */
		pthread_cond_broadcast(&s->changed);
		return;
	}
	if (s->state != FETCHING || s->missing > 0) {
		fail_stream(s, "the fetch ended with chunks missing");
		return;
	}
	s->state = CHECKING;
	pthread_mutex_unlock(&s->set->lock);
	/* No writer may be left: the store refuses a file someone could still change. */
	close(s->wfd);
	s->wfd = -1;
	rc = s->set->io.finish(s->set->io.ctx, s->path, &s->meta, s->rfd, err, sizeof(err));
	pthread_mutex_lock(&s->set->lock);
	if (rc < 0) {
		fail_stream(s, err);
		return;
	}
	s->state = DONE;
	pthread_cond_broadcast(&s->changed);
	say(s->set, LZ_LOG_DEBUG, "streamed '%s'", s->path);
}

struct worker {
	struct lz_stream *s;
	bool jump;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct lz_stream *s = w->s;
	struct lz_streams *set = s->set;

	lz_sched_background(getpid());
	pthread_mutex_lock(&set->lock);
	if (w->jump)
		jump_work(s);
	else
		seq_work(s);
	free(w);
	pthread_cond_broadcast(&s->changed); /* the other worker may wait for this one */
	if (--s->workers == 0) {
		finish(s);
		set->active--;
		set->active_bytes -= s->size;
	}
	stream_put(s);
	set->workers--;
	pthread_cond_broadcast(&set->idle);
	pthread_mutex_unlock(&set->lock);
	return NULL;
}

/* Lock held: starts a worker holding a reference. False when no thread could start. */
static bool start_worker(struct lz_stream *s, bool jump)
{
	struct worker *w = malloc(sizeof(*w));
	pthread_attr_t attr;
	pthread_t thread;
	int rc;

	if (w == NULL)
		return false;
	*w = (struct worker){ .s = s, .jump = jump };
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(w);
		return false;
	}
	s->refs++;
	s->workers++;
	s->set->workers++;
	return true;
}

/* A new stream of PATH, its file made and its workers started; lock held. -errno. */
static int stream_new(struct lz_streams *set, const char *path, const struct lz_object_meta *meta,
		      struct lz_stream **out)
{
	struct lz_stream *s = calloc(1, sizeof(*s));
	char self[32];

	if (s == NULL)
		return -ENOMEM;
	*s = (struct lz_stream){ .set = set,
				 .meta = *meta,
				 .size = (uint64_t)meta->size,
				 .wfd = -1,
				 .rfd = -1,
				 .want = NONE,
				 .refs = 1,
				 .in_table = true };
	s->nchunks = (s->size + CHUNK - 1) / CHUNK;
	s->missing = s->nchunks;
	pthread_cond_init(&s->changed, NULL);
	s->next = set->all;
	set->all = s;
	s->path = strdup(path);
	s->bits = calloc(s->nchunks / 64 + 1, sizeof(*s->bits));
	if (s->path == NULL || s->bits == NULL)
		goto fail;
	/* Unnamed until published: nothing else can open it, a crash leaves nothing. */
	s->wfd = openat(set->io.dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (s->wfd < 0 || ftruncate(s->wfd, (off_t)s->size) < 0)
		goto fail;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", s->wfd);
	s->rfd = open(self, O_RDONLY | O_CLOEXEC);
	if (s->rfd < 0)
		goto fail;
	if (!start_worker(s, false))
		goto fail;
	set->active++;
	set->active_bytes += s->size;
	if (s->nchunks > JUMP_CHUNKS)
		start_worker(s, true); /* without it, reads far ahead wait for the fill */
	set->started++;
	*out = s;
	return 0;
fail:;
	int rc = errno ? -errno : -ENOMEM;
	s->in_table = false;
	stream_put(s);
	return rc;
}

static bool stream_same(const struct lz_stream *s, const struct lz_object_meta *meta)
{
	return s->meta.size == meta->size && s->meta.mtime.tv_sec == meta->mtime.tv_sec &&
	       s->meta.mtime.tv_nsec == meta->mtime.tv_nsec &&
	       strcmp(s->meta.hash, meta->hash) == 0;
}

int lz_streams_open(struct lz_streams *set, const char *path, const struct lz_object_meta *meta,
		    bool start, struct lz_stream **out, int *fd)
{
	struct lz_stream *s;
	char self[32];
	int rc = 0;

	if (meta->size < 0)
		return -EINVAL;
	pthread_mutex_lock(&set->lock);
	for (s = set->all; s != NULL; s = s->next)
		if (s->in_table && strcmp(s->path, path) == 0)
			break;
	/*
	 * Complete, or being checked: soon published (open that), or failed
	 * (fetched anew). Joining it would make a reader the daemon's for nothing.
	 */
	while (s != NULL && (s->state == CHECKING || (s->state == FETCHING && s->missing == 0)) &&
	       stream_same(s, meta)) {
		s->refs++;
		pthread_cond_wait(&s->changed, &set->lock);
		enum state now = s->state;
		stream_put(s); /* a worker holds it until it is checked: freed only past that */
		if (now == DONE) {
			pthread_mutex_unlock(&set->lock);
			return -EAGAIN;
		}
		if (now == FAILED)
			s = NULL;
	}
	if (s != NULL && s->state == DONE && stream_same(s, meta)) {
		pthread_mutex_unlock(&set->lock);
		return -EAGAIN;
	}
	if (s != NULL && (s->state != FETCHING || !stream_same(s, meta))) {
		s->in_table = false; /* another version: its handles keep it */
		s = NULL;
	}
	if (s != NULL)
		s->refs++;
	else if (set->stopping)
		rc = -ESHUTDOWN;
	else if (!start || set->active >= set->io.max_active)
		rc = -EBUSY;
	else
		rc = stream_new(set, path, meta, &s);
	if (rc == 0) {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", s->rfd);
		*fd = open(self, O_RDONLY | O_CLOEXEC);
		if (*fd < 0) {
			rc = -errno;
			stream_put(s);
		}
	}
	pthread_mutex_unlock(&set->lock);
	if (rc == 0)
		*out = s;
	return rc;
}

int lz_stream_wait(struct lz_stream *s, uint64_t off, uint64_t len, bool block)
{
	uint64_t end = off + len < off || off + len > s->size ? s->size : off + len;
	int rc = 0;

	pthread_mutex_lock(&s->set->lock);
	for (;;) {
		if (s->state == FAILED) {
			rc = -EIO;
			break;
		}
		if (off >= end || covered(s, off, end))
			break;
		/* Far past the fill's front, and no run bringing it: ask the jump worker. */
		uint64_t pos = off;
		while (pos < end && (bit(s, pos / CHUNK) || run_covers(&s->jump, pos / CHUNK)))
			pos = chunk_end(s, pos / CHUNK);
		uint64_t front = s->seq.on ? s->seq.cur : 0;
		if (pos < end && !run_covers(&s->jump, pos / CHUNK) &&
		    (pos < front || pos >= front + NEAR_BYTES || !s->seq.on)) {
			s->want = pos / CHUNK;
			pthread_cond_broadcast(&s->changed); /* the jump worker waits for it */
		}
		if (!block) {
			rc = -EAGAIN;
			break;
		}
		pthread_cond_wait(&s->changed, &s->set->lock);
	}
	pthread_mutex_unlock(&s->set->lock);
	return rc;
}

void lz_stream_hold(struct lz_stream *s)
{
	pthread_mutex_lock(&s->set->lock);
	s->refs++;
	pthread_mutex_unlock(&s->set->lock);
}

void lz_stream_close(struct lz_stream *s)
{
	struct lz_streams *set = s->set;

	pthread_mutex_lock(&set->lock);
	stream_put(s);
	pthread_mutex_unlock(&set->lock);
}

struct lz_streams *lz_streams_new(const struct lz_stream_io *io)
{
	struct lz_streams *set = calloc(1, sizeof(*set));

	if (set == NULL)
		return NULL;
	set->io = *io;
	if (set->io.max_active == 0)
		set->io.max_active = DEFAULT_MAX;
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->idle, NULL);
	return set;
}

void lz_streams_free(struct lz_streams *set)
{
	if (set == NULL)
		return;
	pthread_mutex_lock(&set->lock);
	set->stopping = true;
	for (struct lz_stream *s = set->all; s != NULL; s = s->next)
		pthread_cond_broadcast(&s->changed);
	while (set->workers > 0)
		pthread_cond_wait(&set->idle, &set->lock);
	while (set->all != NULL)
		stream_free(set->all);
	pthread_mutex_unlock(&set->lock);
	pthread_mutex_destroy(&set->lock);
	pthread_cond_destroy(&set->idle);
	free(set);
}

uint64_t lz_streams_active_bytes(struct lz_streams *set)
{
	uint64_t bytes;

	pthread_mutex_lock(&set->lock);
	bytes = set->active_bytes;
	pthread_mutex_unlock(&set->lock);
	return bytes;
}

void lz_streams_counts(struct lz_streams *set, uint64_t *started, uint64_t *failed)
{
	pthread_mutex_lock(&set->lock);
	*started = set->started;
	*failed = set->failed;
	pthread_mutex_unlock(&set->lock);
}
