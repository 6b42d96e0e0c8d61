/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "remote_int.h"
#include "listing_json.h"
#include "stream.h"
#include "cache/rclone/rclone.h"
#include "cache/store/store.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* After a failed listing, the remote is asked again after the TTL, or this. */
#define RETRY_AFTER_S 10.0
/* Listings at least this long give the memory their parsing took back (release_heap). */
#define BIG_LISTING 10000
/* A cache directory another process still holds (the daemon before, saving its index). */
#define LOCK_WAIT_S 30

/*
 * One listing as fetched: the shared, immutable lz_source_listing (first, so
 * the one converts to the other), its entries and their strings. The
 * directory's struct listing holds one reference, every list_get caller one
 * more; the last put frees it.
 */
struct snapshot {
	struct lz_source_listing pub;
	struct lz_source_item *items;
	char *strings; /* every name and hash, one after the other: two allocations in all */
	atomic_uint refs;
};

/* A directory: its newest listing (NULL: none yet, or gone) and when it was fetched. */
struct listing {
	char *dir;
	struct snapshot *snap;
	double fetched_at; /* CLOCK_MONOTONIC seconds; 0 = loaded from the cache */
	double failed_at;  /* last failed refresh: the remote is not asked again for a while */
	bool refreshing;
	bool stale_logged;
	struct listing *next;
};

void lz_remote_say(struct lz_remote *r, enum lz_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (r->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->log(r->log_ctx, level, msg);
}

/* Objects are stored under "o:PATH"; listings ("l:DIR") tell nobody. */
static void store_evicted(void *ctx, const char *key)
{
	struct lz_remote *r = ctx;

	if (strncmp(key, "o:", 2) == 0)
		r->evicted(r->evicted_ctx, key + 2);
}

static void snapshot_put(struct snapshot *snap)
{
	if (snap == NULL || atomic_fetch_sub(&snap->refs, 1) != 1)
		return;
	free(snap->strings);
	free(snap->items);
	free(snap);
}

static void listing_clear(struct listing *l)
{
	snapshot_put(l->snap);
	l->snap = NULL;
}

static int compare_items(const void *a, const void *b)
{
	return strcmp(((const struct lz_source_item *)a)->name,
		      ((const struct lz_source_item *)b)->name);
}

/* Store keys: objects and listings live in different name spaces. */
void lz_remote_object_key(char *key, size_t len, const char *path)
{
	snprintf(key, len, "o:%s", path);
}

/* False when DIR's key would not fit: a cut key could name another directory's listing. */
static bool listing_key(char *key, size_t len, const char *dir)
{
	return (size_t)snprintf(key, len, "l:%s", dir) < len;
}

static bool same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_listing(const struct snapshot *a, const struct snapshot *b)
{
	if (a == NULL || a->pub.count != b->pub.count)
		return false;
	for (size_t i = 0; i < a->pub.count; i++) {
		const struct lz_source_item *x = &a->items[i], *y = &b->items[i];
		if (x->size != y->size || x->is_dir != y->is_dir ||
		    x->mtime.tv_sec != y->mtime.tv_sec || x->mtime.tv_nsec != y->mtime.tv_nsec ||
		    strcmp(x->name, y->name) != 0 || !same_string(x->hash, y->hash))
			return false;
	}
	return true;
}

/* S copied to *AT, which moves past it. */
static const char *put_string(char **at, const char *s)
{
	size_t n = strlen(s) + 1;
	char *out = memcpy(*at, s, n);

	*at += n;
	return out;
}

/*
 * The fetched ENTRIES as a listing (one reference), sorted, their strings
 * copied into one block (a name malloc'ed on its own took 32 bytes at least);
 * NULL when out of memory. Made without the lock: sorting 150,000 names takes
 * tens of ms, which no lookup of another directory should wait for.
 */
static struct snapshot *snapshot_new(const struct lz_rclone_entry *entries, size_t count)
{
	struct snapshot *snap = calloc(1, sizeof(*snap));
	size_t n = 0, bytes = 1;
	char *at;

	for (size_t i = 0; i < count; i++)
		bytes += strlen(entries[i].name) + 1 +
			 (entries[i].hash ? strlen(entries[i].hash) + 1 : 0);
	if (snap != NULL) {
		snap->items = calloc(count ? count : 1, sizeof(*snap->items));
		snap->strings = malloc(bytes);
	}
	if (snap == NULL || snap->items == NULL || snap->strings == NULL) {
		if (snap != NULL) {
			free(snap->items);
			free(snap->strings);
		}
		free(snap);
		return NULL;
	}
	at = snap->strings;
	for (size_t i = 0; i < count; i++) {
		if (strlen(entries[i].name) > NAME_MAX)
			continue; /* no name the kernel can look up */
		snap->items[n++] = (struct lz_source_item){
			.name = put_string(&at, entries[i].name),
			.size = entries[i].size,
			.mtime = entries[i].mtime,
			.is_dir = entries[i].is_dir,
			.hash = entries[i].hash ? put_string(&at, entries[i].hash) : NULL,
		};
	}
	qsort(snap->items, n, sizeof(*snap->items), compare_items);
	snap->pub = (struct lz_source_listing){ .count = n, .items = snap->items };
	atomic_init(&snap->refs, 1);
	return snap;
}

/*
 * Lock held: SNAP (its reference taken over) becomes L's listing: 1 when that
 * changed it, 0 when it is the same (the old one is kept, so its holders and L
 * share it).
 */
static int listing_set(struct listing *l, struct snapshot *snap)
{
	if (same_listing(l->snap, snap)) {
		snapshot_put(snap);
		return 0;
	}
	listing_clear(l);
	l->snap = snap;
	return 1;
}

/* Lock held: ENTRIES become L's listing: 1 changed, 0 the same, -errno. */
static int listing_fill(struct listing *l, const struct lz_rclone_entry *entries, size_t count)
{
	struct snapshot *snap = snapshot_new(entries, count);

	return snap != NULL ? listing_set(l, snap) : -ENOMEM;
}

/* Writes a listing (CTX, a snapshot) as JSON to PATH: what the cache keeps for offline use. */
static int save_listing_fetch(void *ctx, const char *tmp_path, char *err, size_t errlen)
{
	const struct snapshot *snap = ctx;
	FILE *f = fopen(tmp_path, "wxe");
	int rc = f != NULL ? lz_listing_json_write(f, snap->items, snap->pub.count) : -errno;

	if (f != NULL && fclose(f) != 0 && rc == 0)
		rc = -EIO;
	if (rc != 0) {
		snprintf(err, errlen, "cannot write listing: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

static void save_listing(struct lz_remote *r, struct listing *l)
{
	char key[LZ_STORE_KEY_MAX + 1], err[256];
	struct lz_object_meta meta = { .size = -1 };
	int fd;

	/* Not kept (no store, a key too long): the next process fetches it again. */
	if (r->store == NULL || !listing_key(key, sizeof(key), l->dir))
		return;
	lz_store_evict(r->store, key); /* replace the old copy */
	if (lz_store_fill(r->store, key, &meta, save_listing_fetch, l->snap, &fd, err,
			  sizeof(err)) == 0) {
		close(fd);
		lz_store_release(r->store, key);
	}
}

/* The listing the cache kept from an earlier run, into L. */
/* Whether the remote answered a call that ended with RC (ENOENT is an answer). */
void lz_remote_note_answer(struct lz_remote *r, int rc)
{
	atomic_store(&r->unreachable, rc == -EIO || rc == -ETIMEDOUT || rc == -ESHUTDOWN);
}

static int load_listing(struct lz_remote *r, struct listing *l)
{
	char key[LZ_STORE_KEY_MAX + 1], proc[64];
	struct lz_rclone_entry *entries;
	json_object *array;
	size_t n;
	int fd;

	if (r->store == NULL || !listing_key(key, sizeof(key), l->dir) ||
	    lz_store_lookup(r->store, key, NULL, &fd) != 0)
		return -ENOENT;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	array = json_object_from_file(proc);
	close(fd);
	lz_store_release(r->store, key);
	int rc = lz_listing_json_decode(array, &entries, &n);
	json_object_put(array);
	if (rc != 0)
		return rc;
	rc = listing_fill(l, entries, n);
	lz_listing_json_free(entries, n);
	return rc < 0 ? rc : 0;
}

static struct listing *listing_of(struct lz_remote *r, const char *dir)
{
	struct listing *l;

	for (l = r->listings; l != NULL; l = l->next)
		if (strcmp(l->dir, dir) == 0)
			return l;
	l = calloc(1, sizeof(*l));
	if (l == NULL || (l->dir = strdup(dir)) == NULL) {
		free(l);
		return NULL;
	}
	l->next = r->listings;
	r->listings = l;
	return l;
}

/*
 * After a big listing: rclone's JSON reply was parsed into a tree of small
 * allocations (hundreds of bytes per entry) that are free now but scattered
 * through the heap, where the allocator keeps them; give their pages back.
 */
static void release_heap(size_t entries)
{
	if (entries >= BIG_LISTING)
		malloc_trim(0);
}

/*
 * Refreshes DIR's listing if it is older than the TTL, once however many ask.
 * Returns with r->lock held and *OUT set, or an error (lock released).
 */
static int fresh_listing(struct lz_remote *r, const char *dir, struct listing **out)
{
	struct lz_rclone_entry *entries;
	size_t count;
	char err[512];
	struct listing *l;
	int rc;

	pthread_mutex_lock(&r->lock);
	l = listing_of(r, dir);
	if (l == NULL) {
		pthread_mutex_unlock(&r->lock);
		return -ENOMEM;
	}
	while (l->refreshing)
		pthread_cond_wait(&r->refreshed, &r->lock);
	if (l->snap != NULL && l->fetched_at > 0 &&
	    lz_clock_s(CLOCK_MONOTONIC) - l->fetched_at < r->ttl) {
		*out = l;
		return 0;
	}
	/*
	 * The remote failed lately: answer from what is known (or fail) at once,
	 * instead of making every lookup and open wait for the timeout again.
	 */
	if (l->failed_at > 0 && lz_clock_s(CLOCK_MONOTONIC) - l->failed_at <
					(r->ttl > RETRY_AFTER_S ? r->ttl : RETRY_AFTER_S)) {
		if (l->snap == NULL) {
			pthread_mutex_unlock(&r->lock);
			return -EIO;
		}
		*out = l;
		return 0;
	}
	l->refreshing = true;
	pthread_mutex_unlock(&r->lock);
	rc = lz_rclone_list(r->rclone, dir, &entries, &count, err, sizeof(err));
	lz_remote_note_answer(r, rc);
	struct snapshot *snap = NULL;
	if (rc == 0) {
		snap = snapshot_new(entries, count);
		lz_rclone_entries_free(entries, count);
		rc = snap != NULL ? 0 : -ENOMEM;
		if (snap == NULL)
			snprintf(err, sizeof(err), "out of memory");
	}
	pthread_mutex_lock(&r->lock);
	if (rc == 0) {
		rc = listing_set(l, snap);
		if (rc >= 0) {
			l->fetched_at = lz_clock_s(CLOCK_MONOTONIC);
			l->failed_at = 0;
			l->stale_logged = false;
			/*
			 * Kept for offline use only when it changed: the write
			 * fsyncs, and it sits in the LOOKUP or OPEN that refreshed.
			 * Still marked refreshing, so nobody replaces it meanwhile.
			 */
			if (rc == 1) {
				pthread_mutex_unlock(&r->lock);
				save_listing(r, l);
				release_heap(count);
				pthread_mutex_lock(&r->lock);
			}
			l->refreshing = false;
			pthread_cond_broadcast(&r->refreshed);
			*out = l;
			return 0;
		}
	}
	l->refreshing = false;
	pthread_cond_broadcast(&r->refreshed);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		listing_clear(l);
		pthread_mutex_unlock(&r->lock);
		return rc;
	}
	/* The remote cannot be reached: what is known keeps being served. */
	l->failed_at = lz_clock_s(CLOCK_MONOTONIC);
	if (l->snap == NULL && load_listing(r, l) != 0) {
		pthread_mutex_unlock(&r->lock);
		lz_remote_say(r, LZ_LOG_ERR, "remote listing of '%s' failed and none is cached: %s",
			      dir, err);
		return -EIO;
	}
	if (!l->stale_logged) {
		l->stale_logged = true;
		lz_remote_say(r, LZ_LOG_WARN,
			      "remote listing of '%s' failed (%s); serving the last known one", dir,
			      err);
	}
	*out = l;
	return 0;
}

static void fill_entry(struct lz_source_entry *out, const struct lz_source_item *item)
{
	memset(out, 0, sizeof(*out)); /* whole structs compare: zeros past the name */
	snprintf(out->name, sizeof(out->name), "%s", item->name);
	out->size = item->size;
	out->mtime = item->mtime;
	out->is_dir = item->is_dir;
}

/* A copy, for the callers that want one (a remote images' top: a few thousand entries). */
static int source_list(void *ctx, const char *dir, struct lz_source_entry **entries, size_t *count)
{
	struct lz_remote *r = ctx;
	struct listing *l;
	int rc = fresh_listing(r, dir, &l);

	if (rc != 0)
		return rc;
	*count = l->snap->pub.count;
	*entries = malloc((*count ? *count : 1) * sizeof(**entries));
	for (size_t i = 0; *entries != NULL && i < *count; i++)
		fill_entry(&(*entries)[i], &l->snap->items[i]);
	pthread_mutex_unlock(&r->lock);
	return *entries ? 0 : -ENOMEM;
}

static int source_list_get(void *ctx, const char *dir, const struct lz_source_listing **out)
{
	struct lz_remote *r = ctx;
	struct listing *l;
	int rc = fresh_listing(r, dir, &l);

	if (rc != 0)
		return rc;
	atomic_fetch_add(&l->snap->refs, 1);
	*out = &l->snap->pub;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static void source_list_put(void *ctx, const struct lz_source_listing *listing)
{
	(void)ctx;
	/* pub is the snapshot's first member. */
	snapshot_put((struct snapshot *)listing);
}

/* The entry and its hash (copied into HASH) under the lock. */
static int find_entry(struct lz_remote *r, const char *dir, const char *name,
		      struct lz_source_entry *out, char *hash, size_t hashlen)
{
	struct lz_source_item key = { .name = name };
	struct listing *l;
	int rc;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	rc = fresh_listing(r, dir, &l);
	if (rc != 0)
		return rc;
	const struct lz_source_item *hit =
		bsearch(&key, l->snap->items, l->snap->pub.count, sizeof(key), compare_items);
	if (hit != NULL) {
		fill_entry(out, hit);
		if (hash != NULL)
			snprintf(hash, hashlen, "%s", hit->hash ? hit->hash : "");
	}
	pthread_mutex_unlock(&r->lock);
	return hit ? 0 : -ENOENT;
}

static int source_lookup(void *ctx, const char *dir, const char *name, struct lz_source_entry *out)
{
	return find_entry(ctx, dir, name, out, NULL, 0);
}

struct copy_job {
	struct lz_remote *r;
	const char *path;
	int64_t size; /* the listing's; -1 when it gave none */
};

static int fetch_object(void *ctx, const char *tmp_path, char *err, size_t errlen)
{
	struct copy_job *job = ctx;
	struct lz_remote *r = job->r;
	int64_t t0 = lz_clock_ns(CLOCK_MONOTONIC);
	struct stat st;
	int rc;

	if (r->streams != NULL && job->size >= 0) {
		rc = lz_remote_read_whole(r, job->path, (uint64_t)job->size, tmp_path, err, errlen);
	} else {
		rc = lz_rclone_copy(r->rclone, job->path, tmp_path, err, errlen);
		lz_remote_note_answer(r, rc);
	}
	atomic_fetch_add(&r->fetch_ns, (unsigned long long)(lz_clock_ns(CLOCK_MONOTONIC) - t0));
	atomic_fetch_add(rc == 0 ? &r->fetches : &r->fetch_failures, 1);
	if (rc == 0 && stat(tmp_path, &st) == 0)
		atomic_fetch_add(&r->fetch_bytes, (unsigned long long)st.st_size);
	/* Once per fetch, not per waiter: tests count these lines. */
	if (rc == 0)
		lz_remote_say(r, LZ_LOG_DEBUG, "fetched '%s'", job->path);
	return rc;
}

/* The listing's metadata of object PATH and its store key: 0 or -errno. */
int lz_remote_object_meta(struct lz_remote *r, const char *path, char *key, size_t keylen,
			  struct lz_object_meta *meta)
{
	char dir[LZ_STORE_KEY_MAX];
	struct lz_source_entry entry;
	const char *slash = strrchr(path, '/');
	int rc;

	*meta = (struct lz_object_meta){ .size = -1 };
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
	rc = find_entry(r, dir, slash ? slash + 1 : path, &entry, meta->hash, sizeof(meta->hash));
	if (rc != 0)
		return rc;
	if (entry.is_dir)
		return -EISDIR;
	meta->size = (int64_t)entry.size;
	meta->mtime = entry.mtime;
	lz_remote_object_key(key, keylen, path);
	return 0;
}

/* The whole object PATH, fetched into the store and checked: a descriptor or -errno. */
int lz_remote_fill_object(struct lz_remote *r, const char *path, const char *key,
			  const struct lz_object_meta *meta)
{
	struct copy_job job = { r, path, meta->size };
	char err[512];
	int fd, rc = lz_store_fill(r->store, key, meta, fetch_object, &job, &fd, err, sizeof(err));

	if (rc != 0) {
		lz_remote_say(r, LZ_LOG_ERR, "fetch of '%s' failed: %s", path, err);
		return rc == -ETIMEDOUT ? -EIO : rc;
	}
	return fd;
}

/* A cached object, or one fetched whole: the streamed open that may not stream. */
static int source_open(void *ctx, const char *path)
{
	return lz_remote_open_streamed(ctx, path, NULL);
}

/* No listing lookup: an OPEN follows the kernel's lookup, which refreshed SIZE and MTIME. */
static int source_hold(void *ctx, const char *path, uint64_t size, struct timespec mtime)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];
	struct lz_object_meta meta = { .size = (int64_t)size, .mtime = mtime };

	if (r->store == NULL)
		return -ENOENT;
	lz_remote_object_key(key, sizeof(key), path);
	return lz_store_lookup(r->store, key, &meta, NULL);
}

static int source_adopt(void *ctx, const char *path)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];

	if (r->store == NULL)
		return -ENOENT;
	lz_remote_object_key(key, sizeof(key), path);
	return lz_store_lookup(r->store, key, NULL, NULL);
}

void lz_remote_release(void *ctx, const char *path)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];

	if (r->store == NULL)
		return; /* suspended: the next process took the reference over */
	lz_remote_object_key(key, sizeof(key), path);
	lz_store_release(r->store, key);
}

static void source_stats(void *ctx, struct lz_source_stats *out)
{
	struct lz_remote *r = ctx;
	struct lz_store_stats st = { 0 };
	uint64_t streams = 0, stream_failures = 0;

	if (r->store != NULL)
		lz_store_stats(r->store, &st);
	if (r->streams != NULL)
		lz_streams_counts(r->streams, &streams, &stream_failures);
	*out = (struct lz_source_stats){
		.objects = st.objects,
		.bytes = st.bytes,
		.quota = st.quota,
		.open_objects = st.open_objects,
		.pinned = st.pinned,
		.hits = st.hits,
		.misses = st.misses,
		.fills = st.fills,
		.fill_failures = st.fill_failures + st.publish_failures,
		.evictions = st.evictions,
		.fetches = atomic_load(&r->fetches),
		.fetch_failures = atomic_load(&r->fetch_failures),
		.fetch_bytes = atomic_load(&r->fetch_bytes),
		.fetch_ns = atomic_load(&r->fetch_ns),
		.streams = streams,
		.stream_failures = stream_failures,
		.reachable = !atomic_load(&r->unreachable),
	};
}

static int source_evict(void *ctx, const char *path)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];

	if (r->store == NULL)
		return -EAGAIN;
	lz_remote_object_key(key, sizeof(key), path);
	return lz_store_evict(r->store, key);
}

static int source_pin(void *ctx, const char *path, bool pin)
{
	struct lz_remote *r = ctx;
	char key[LZ_STORE_KEY_MAX + 8];

	if (r->store == NULL)
		return -EAGAIN;
	lz_remote_object_key(key, sizeof(key), path);
	return pin ? lz_store_pin(r->store, key) : lz_store_unpin(r->store, key);
}

/* Creates the parents of DIR (the store creates DIR itself, root-only). */
static void make_parents(const char *dir)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return;
	for (char *p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0755); /* EEXIST is the common case; the store reports real failures */
		*p = '/';
	}
}

struct lz_remote *lz_remote_new(const struct lz_remote_options *opts, char *err, size_t errlen)
{
	struct lz_remote *r = calloc(1, sizeof(*r));
	struct lz_rclone_options ro = {
		.timeout_s = opts->timeout,
		.config = opts->rclone_config,
		.run_as_user = opts->run_as_user,
		.run_uid = opts->run_uid,
		.run_gid = opts->run_gid,
		.serve = opts->stream,
		.log = opts->log,
		.log_ctx = opts->log_ctx,
	};

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->ttl = opts->listing_ttl;
	r->log = opts->log;
	r->log_ctx = opts->log_ctx;
	r->cache_fd = -1;
	r->evicted = opts->evicted;
	r->evicted_ctx = opts->evicted_ctx;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->refreshed, NULL);
	r->cache_size = opts->cache_size;
	r->run_as_user = opts->run_as_user;
	r->run_uid = opts->run_uid;
	r->run_gid = opts->run_gid;
	make_parents(opts->cache_dir);
	if ((r->cache_dir = strdup(opts->cache_dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		lz_remote_free(r);
		return NULL;
	}
	if (lz_remote_resume(r, err, errlen) != 0) {
		lz_remote_free(r);
		return NULL;
	}
	r->rclone = lz_rclone_new(opts->remote, &ro, err, errlen);
	if (r->rclone == NULL || (opts->stream && lz_remote_start_streams(r, err, errlen) != 0)) {
		lz_remote_free(r);
		return NULL;
	}
	r->source = (struct lz_source){
		.list = source_list,
		.list_get = source_list_get,
		.list_put = source_list_put,
		.lookup = source_lookup,
		.open = source_open,
		.open_streamed = lz_remote_open_streamed,
		.stream_wait = lz_remote_stream_wait,
		.stream_hold = lz_remote_stream_hold,
		.stream_close = lz_remote_stream_close,
		.release = lz_remote_release,
		.hold = source_hold,
		.adopt = source_adopt,
		.stats = source_stats,
		.evict = source_evict,
		.pin = source_pin,
		.ctx = r,
	};
	return r;
}

void lz_remote_free(struct lz_remote *r)
{
	char err[256];

	if (r == NULL)
		return;
	lz_streams_free(r->streams); /* first: its workers read through rclone into the store */
	if (r->cache_fd >= 0)
		close(r->cache_fd);
	lz_rclone_free(r->rclone);
	if (r->store != NULL)
		lz_store_close(r->store, err, sizeof(err));
	while (r->listings != NULL) {
		struct listing *next = r->listings->next;
		listing_clear(r->listings);
		free(r->listings->dir);
		free(r->listings);
		r->listings = next;
	}
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->refreshed);
	free(r->cache_dir);
	free(r);
}

int lz_remote_suspend(struct lz_remote *r, char *err, size_t errlen)
{
	int rc =
		lz_store_close(r->store, err, errlen); /* freed even when the index was not saved */

	r->store = NULL;
	return rc;
}

/*
 * Opens the store, waiting up to LOCK_WAIT_S while another process holds its
 * directory: a daemon just unmounted (or killed) may still be saving its
 * index, and a remount right after must not fail for it.
 */
static struct lz_store *open_store(struct lz_remote *r, char *err, size_t errlen)
{
	double deadline = lz_clock_s(CLOCK_MONOTONIC) + LOCK_WAIT_S;
	bool said = false;
	struct lz_store *store;

	while ((store = lz_store_open(r->cache_dir, r->cache_size, err, errlen)) == NULL &&
	       errno == EBUSY && lz_clock_s(CLOCK_MONOTONIC) < deadline) {
		if (!said)
			lz_remote_say(r, LZ_LOG_INFO,
				      "cache %s is locked by another process (the daemon "
				      "before?): waiting up to %d s for it",
				      r->cache_dir, LOCK_WAIT_S);
		said = true;
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
	}
	if (store != NULL && said)
		lz_remote_say(r, LZ_LOG_INFO, "cache %s: the other process let go of it",
			      r->cache_dir);
	return store;
}

int lz_remote_resume(struct lz_remote *r, char *err, size_t errlen)
{
	if (r->store != NULL)
		return 0;
	r->store = open_store(r, err, errlen);
	if (r->store == NULL)
		return errno != 0 ? -errno : -EIO;
	lz_store_set_log(r->store, r->log, r->log_ctx);
	if (r->run_as_user) {
		int rc = lz_store_set_fetcher(r->store, r->run_uid, r->run_gid, err, errlen);
		if (rc < 0) {
			char ignored[64];
			lz_store_close(r->store, ignored, sizeof(ignored));
			r->store = NULL;
			return rc;
		}
	}
	if (r->evicted != NULL)
		lz_store_on_evict(r->store, store_evicted, r);
	return 0;
}

void lz_remote_stop_evicted(struct lz_remote *r)
{
	if (r == NULL)
		return;
	/* The store calls it under its lock: once this returns none runs or will. */
	if (r->store != NULL)
		lz_store_on_evict(r->store, NULL, NULL);
	r->evicted = NULL;
}

void lz_remote_preload(struct lz_remote *r)
{
	if (r == NULL)
		return;
	if (r->store != NULL)
		lz_store_preload(r->store);
	/* rclone takes a few hundred milliseconds to start: not in the first listing's time. */
	lz_rclone_start(r->rclone);
}

const struct lz_source *lz_remote_source(struct lz_remote *r)
{
	return &r->source;
}
