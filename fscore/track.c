/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The eBPF open tracker as the daemon uses it: a miss under the mount starts
 * resolving that entry on a worker at once, while the opener's path walk is
 * still on its way to our LOOKUP; resolved and expired entries are written to
 * the tracker's map so warm opens never wake the daemon.
 */
#include "config.h"
#include "track.h"
#include "fs.h"
#include "lookup.h"
#include "opener.h"
#include "attr.h"
#include "bpf/tracker.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mountpoint.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX   1024
#define WORKERS	    2
#define STOP_WAIT_S 2.0 /* how long a stop waits for a worker's resolve */
/* Events whose LOOKUP we wait to see, for the event-to-LOOKUP delay. */
#define WATCHED_MAX 256

struct watched {
	char *key;
	uint64_t event_ns;
};

struct lz_track {
	struct lz_fs *fs;
	enum lz_bpf_mode mode;
	char prefix[PATH_MAX];	    /* the mountpoint, resolved */
	struct lz_tracker *tracker; /* once loaded */
	bool objects;		    /* keys are whole object paths */
	bool nested;		    /* a nested images tree: keys are whole paths, images below */
	/* Loaded and started: the rest of lazyfs uses it from now on. */
	atomic_bool live;
	/*
	 * Read-held by every call from the rest of lazyfs that uses the tracker,
	 * write-held by lz_track_close as it clears live: once that returns, no
	 * such call touches the tracker (checking live alone would race the close).
	 */
	pthread_rwlock_t gate;
	struct lz_track *retired_next; /* lz_track_retire */
	/* bpf=auto: loading takes tens of milliseconds; the mount does not wait for it. */
	pthread_t loader;
	bool loader_started;
	unsigned fuse_minor;

	dev_t dev; /* the mount's (an anonymous device, 0:fuse_minor): openers must see it */

	pthread_mutex_t lock;
	pthread_cond_t work;
	struct queued {
		char *key;
		pid_t tgid;
	} queue[QUEUE_MAX];
	unsigned head, count;
	bool stop;
	pthread_t workers[WORKERS];
	unsigned nworkers;

	struct watched watched[WATCHED_MAX]; /* under lock */
	unsigned watched_next;
	atomic_uint watching; /* keys in watched[]: most lookups find none and skip the lock */

	atomic_ullong early, absent, dropped, ignored;
	struct lz_track_delays delays; /* under lock */
};

/* Image registry names ("N", "/a/b") and object paths as tracker keys ("N", "a/b"). */
static const char *key_of(const char *name)
{
	while (*name == '/')
		name++;
	return name;
}

/* True with the gate read-held when T's tracker may be used: then call leave(). */
static bool enter(struct lz_track *t)
{
	if (t == NULL)
		return false;
	pthread_rwlock_rdlock(&t->gate);
	if (atomic_load(&t->live))
		return true;
	pthread_rwlock_unlock(&t->gate);
	return false;
}

static void leave(struct lz_track *t)
{
	pthread_rwlock_unlock(&t->gate);
}

static void watch(struct lz_track *t, const char *key, uint64_t event_ns)
{
	struct watched *w;

	pthread_mutex_lock(&t->lock);
	w = &t->watched[t->watched_next++ % WATCHED_MAX];
	if (w->key != NULL)
		atomic_fetch_sub(&t->watching, 1);
	free(w->key);
	w->key = strdup(key);
	if (w->key != NULL)
		atomic_fetch_add(&t->watching, 1);
	w->event_ns = event_ns;
	pthread_mutex_unlock(&t->lock);
}

void lz_track_lookup_seen(struct lz_track *t, const char *name)
{
	const char *key;
	uint64_t now;

	if (t == NULL || atomic_load_explicit(&t->watching, memory_order_relaxed) == 0)
		return;
	key = key_of(name);
	now = (uint64_t)lz_clock_ns(CLOCK_MONOTONIC);
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < WATCHED_MAX; i++) {
		struct watched *w = &t->watched[i];
		if (w->key == NULL || strcmp(w->key, key) != 0)
			continue;
		uint64_t delay = now > w->event_ns ? now - w->event_ns : 0;
		unsigned bucket = 0;
		while (bucket + 1 < LZ_TRACK_DELAY_BUCKETS && (delay >> (bucket + 1)) >= 1000)
			bucket++;
		t->delays.count[bucket]++;
		t->delays.total++;
		t->delays.sum_ns += delay;
		lz_debug("bpf: %s: LOOKUP %.1f us after the event", key, delay / 1e3);
		free(w->key);
		w->key = NULL;
		atomic_fetch_sub(&t->watching, 1);
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

/* Whether the tracker may act for process TGID (opener.h). */
static bool opener_ok(struct lz_track *t, pid_t tgid)
{
	struct stat root;

	/* The root's attributes as the kernel gets them, without a path through the mount. */
	return t->dev != 0 && lz_inode_getattr(t->fs, t->fs->root, &root) == 0 &&
	       lz_opener_may_use(tgid, t->prefix, t->dev, &root, t->fs->settings->allow_other);
}

static void *worker(void *arg)
{
	struct lz_track *t = arg;

	for (;;) {
		char *key;
		pid_t tgid;

		pthread_mutex_lock(&t->lock);
		while (t->count == 0 && !t->stop)
			pthread_cond_wait(&t->work, &t->lock);
		if (t->stop) {
			pthread_mutex_unlock(&t->lock);
			return NULL;
		}
		key = t->queue[t->head].key;
		tgid = t->queue[t->head].tgid;
		t->head = (t->head + 1) % QUEUE_MAX;
		t->count--;
		pthread_mutex_unlock(&t->lock);

		/* Nothing is started for a process that cannot reach the mount (opener.h). */
		if (!opener_ok(t, tgid)) {
			lz_debug("bpf: %s: pid %d does not see this mount or may not search it: "
				 "ignored",
				 key + 1, (int)tgid);
			atomic_fetch_add(&t->ignored, 1);
			/*
			 * Left pending, not forgotten: a process that exits at once
			 * (a stat of a missing name) would send the event again at every
			 * call. Later opens resolve through the kernel's LOOKUP.
			 */
			free(key);
			continue;
		}

		/*
		 * The queue holds "!KEY" for execs, "+KEY" for opens, "-KEY" for
		 * stats: a stat of a remote object must not fetch it (think `stat`
		 * over 150k clips); only an exec mounts a kernel-backend image ahead
		 * of its open (find and ls open directories too: a browse must not).
		 */
		unsigned how = key[0] == '!'   ? LZ_RESOLVE_FETCH | LZ_RESOLVE_MOUNT
			       : key[0] == '+' ? LZ_RESOLVE_FETCH
					       : 0;
		/* The open that follows joins a streamed fetch: only started here. */
		if (how != 0)
			how |= LZ_RESOLVE_STREAM;
		if (lz_resolve_entry(t->fs, key + 1, how)) {
			atomic_fetch_add(&t->early, 1);
			lz_tracker_set_state(t->tracker, key + 1, LZ_TRACKER_RESOLVED);
		} else {
			/* Nothing to resolve there: silence it until a reload. */
			atomic_fetch_add(&t->absent, 1);
			lz_tracker_set_state(t->tracker, key + 1, LZ_TRACKER_ABSENT);
		}
		free(key);
	}
}

/* Runs on the tracker's ring-buffer thread: hand over, never block. */
static void on_miss(void *ctx, const char *key, const struct lz_tracker_event *ev)
{
	struct lz_track *t = ctx;
	bool stat_only = ev->kind == LZ_TRACKER_FSTATAT || ev->kind == LZ_TRACKER_STATX;
	bool exec = ev->kind == LZ_TRACKER_EXECVE || ev->kind == LZ_TRACKER_EXECVEAT;
	char *copy = NULL;

	if (asprintf(&copy, "%c%s", exec ? '!' : stat_only ? '-' : '+', key) < 0)
		copy = NULL;
	lz_debug("bpf: %s: cold (pid %u)", key, ev->tgid);
	if (copy != NULL)
		watch(t, key, ev->ktime_ns);
	pthread_mutex_lock(&t->lock);
	if (copy != NULL && t->count < QUEUE_MAX && !t->stop) {
		t->queue[(t->head + t->count) % QUEUE_MAX] =
			(struct queued){ .key = copy, .tgid = (pid_t)ev->tgid };
		t->count++;
		pthread_cond_signal(&t->work);
		copy = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	if (copy != NULL || key[0] == '\0') {
		/* Dropped: let a later open send it again. */
		free(copy);
		atomic_fetch_add(&t->dropped, 1);
		lz_tracker_forget(t->tracker, key);
	}
}

static void add_mapped(struct lz_track *t, const struct lz_map_node *node)
{
	if (node->image != NULL && node->relpath[0] != '\0')
		lz_tracker_add_mapped(t->tracker, node->relpath);
	for (size_t i = 0; i < node->nchildren; i++)
		add_mapped(t, node->children[i]);
}

void lz_track_map_changed(struct lz_track *t)
{
	struct lz_map *map;

	if (!enter(t))
		return;
	map = lz_fs_map_hold(t->fs);
	lz_tracker_clear_mapped(t->tracker);
	if (map != NULL)
		add_mapped(t, &map->root);
	lz_map_release(map);
	leave(t);
}

/*
 * Where the maps are pinned: /sys/fs/bpf/lazyfs/ and the mountpoint escaped
 * like a systemd mount unit, so an operator or a test finds them from the
 * mountpoint alone.
 */
static void pin_dir_of(const char *prefix, char *out, size_t size)
{
	char name[256];

	lz_escape_mountpoint(prefix, name, sizeof(name));
	snprintf(out, size, "%s/%s", LZ_TRACK_PIN_ROOT, name);
}

/* Loads the BPF programs for T's prefix: 0, or -1 with a reason in ERR. */
static int load(struct lz_track *t, char *err, size_t errlen)
{
	char pin_dir[PATH_MAX];

	pin_dir_of(t->prefix, pin_dir, sizeof(pin_dir));
	/*
	 * An image below the top is resolved early only from a key that reaches
	 * it: whole paths, walked to the image (lz_resolve_entry). Decided as the
	 * tracker loads (bpf=auto: in the background, so a slow images directory
	 * holds no mount): a tree that nests only later is resolved at LOOKUP.
	 */
	t->nested = !t->objects && t->fs->images != NULL && lz_images_nested(t->fs->images);
	struct lz_tracker_config tc = {
		.prefix = t->prefix,
		.pin_dir = pin_dir,
		.mode = t->objects || t->nested ? LZ_TRACKER_WHOLE_PATH
						: LZ_TRACKER_FIRST_COMPONENT,
		.on_miss = on_miss,
		.ctx = t,
	};
	return lz_tracker_open(&tc, &t->tracker, err, errlen) < 0 ? -1 : 0;
}

/*
 * Lets the workers go (a stop, or a start that failed half way): true when
 * they all ended within WAIT_S seconds (0: no bound). A worker resolving an
 * image whose store stopped answering may not end; it is left to the exit.
 */
static bool stop_workers(struct lz_track *t, double wait_s)
{
	struct timespec until = lz_clock_after(CLOCK_REALTIME, wait_s);
	bool all = true;

	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->work);
	pthread_mutex_unlock(&t->lock);
	for (unsigned i = 0; i < t->nworkers; i++) {
		int rc = wait_s > 0 ? pthread_timedjoin_np(t->workers[i], NULL, &until)
				    : pthread_join(t->workers[i], NULL);
		if (rc != 0) {
			pthread_detach(t->workers[i]);
			all = false;
		}
	}
	t->nworkers = 0;
	return all;
}

/* Threads, FUSE statistics, then the tracker is published to the rest of lazyfs. */
static int start_loaded(struct lz_track *t)
{
	if (t->fuse_minor != 0)
		lz_tracker_set_fuse_connection(t->tracker, t->fuse_minor);
	for (; t->nworkers < WORKERS; t->nworkers++)
		if (pthread_create(&t->workers[t->nworkers], NULL, worker, t) != 0)
			break;
	if (t->nworkers < WORKERS || lz_tracker_start(t->tracker) < 0) {
		stop_workers(t, 0);
		return -1;
	}
	atomic_store(&t->live, true);
	lz_track_map_changed(t);
	lz_info("open tracker loaded: cold entries start resolving at open");
	return 0;
}

static void *load_later(void *arg)
{
	struct lz_track *t = arg;
	char err[256] = "";

	if (load(t, err, sizeof(err)) != 0)
		lz_info("open tracker off: %s", err);
	else if (start_loaded(t) != 0)
		lz_warn("open tracker off: its threads cannot start");
	return NULL;
}

static void free_track(struct lz_track *t)
{
	for (unsigned i = 0; i < t->count; i++)
		free(t->queue[(t->head + i) % QUEUE_MAX].key);
	for (unsigned i = 0; i < WATCHED_MAX; i++)
		free(t->watched[i].key);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->work);
	pthread_rwlock_destroy(&t->gate);
	free(t);
}

struct lz_track *lz_track_open(struct lz_fs *fs, const char *mountpoint, bool *failed)
{
	enum lz_bpf_mode mode = fs->settings->bpf;
	char err[256] = "";
	struct lz_track *t;

	*failed = false;
	if (mode == LZ_BPF_OFF)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		*failed = mode == LZ_BPF_ON;
		return NULL;
	}
	t->fs = fs;
	t->mode = mode;
	t->objects = fs->objects != NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->work, NULL);
	pthread_rwlock_init(&t->gate, NULL);
	if (realpath(mountpoint, t->prefix) == NULL) {
		lz_err("bpf: %s: %s", mountpoint, strerror(errno));
		*failed = mode == LZ_BPF_ON;
		free_track(t);
		return NULL;
	}
	/* bpf=on: loaded before mounting, so a failure can still fail the mount. */
	if (mode == LZ_BPF_ON && load(t, err, sizeof(err)) != 0) {
		lz_err("bpf=on: the open tracker cannot load: %s", err);
		*failed = true;
		free_track(t);
		return NULL;
	}
	return t;
}

int lz_track_start(struct lz_track *t, unsigned fuse_minor)
{
	int rc;

	if (t == NULL)
		return 0;
	t->fuse_minor = fuse_minor;
	t->dev = makedev(0, fuse_minor);
	if (t->tracker != NULL)
		return start_loaded(t);
	rc = pthread_create(&t->loader, NULL, load_later, t);
	t->loader_started = rc == 0;
	return rc == 0 ? 0 : -rc;
}

bool lz_track_loaded(struct lz_track *t)
{
	return t != NULL && atomic_load(&t->live);
}

void lz_track_resolved(struct lz_track *t, const char *name)
{
	if (!enter(t))
		return;
	lz_tracker_set_state(t->tracker, key_of(name), LZ_TRACKER_RESOLVED);
	leave(t);
}

void lz_track_forget(struct lz_track *t, const char *name)
{
	if (!enter(t))
		return;
	/* Whole paths: every file of the image was a key of its own. */
	if (t->nested)
		lz_tracker_forget_under(t->tracker, key_of(name));
	else
		lz_tracker_forget(t->tracker, key_of(name));
	leave(t);
}

/* Gate held: the counters and the tracker's. */
static int stats_locked(struct lz_track *t, struct lz_track_stats *out)
{
	out->early = atomic_load(&t->early);
	out->absent = atomic_load(&t->absent);
	out->dropped = atomic_load(&t->dropped);
	out->ignored = atomic_load(&t->ignored);
	pthread_mutex_lock(&t->lock);
	out->delays = t->delays;
	pthread_mutex_unlock(&t->lock);
	return lz_tracker_stats(t->tracker, &out->bpf);
}

int lz_track_stats(struct lz_track *t, struct lz_track_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!enter(t))
		return -ENOTSUP;
	int rc = stats_locked(t, out);
	leave(t);
	return rc;
}

const char *lz_fuse_opcode_name(unsigned op)
{
	static const char *const names[] = {
		[1] = "LOOKUP",	       [2] = "FORGET",	       [3] = "GETATTR",
		[4] = "SETATTR",       [5] = "READLINK",       [6] = "SYMLINK",
		[8] = "MKNOD",	       [9] = "MKDIR",	       [10] = "UNLINK",
		[11] = "RMDIR",	       [12] = "RENAME",	       [13] = "LINK",
		[14] = "OPEN",	       [15] = "READ",	       [16] = "WRITE",
		[17] = "STATFS",       [18] = "RELEASE",       [20] = "FSYNC",
		[21] = "SETXATTR",     [22] = "GETXATTR",      [23] = "LISTXATTR",
		[24] = "REMOVEXATTR",  [25] = "FLUSH",	       [26] = "INIT",
		[27] = "OPENDIR",      [28] = "READDIR",       [29] = "RELEASEDIR",
		[30] = "FSYNCDIR",     [31] = "GETLK",	       [32] = "SETLK",
		[33] = "SETLKW",       [34] = "ACCESS",	       [35] = "CREATE",
		[36] = "INTERRUPT",    [37] = "BMAP",	       [38] = "DESTROY",
		[39] = "IOCTL",	       [40] = "POLL",	       [41] = "NOTIFY_REPLY",
		[42] = "BATCH_FORGET", [43] = "FALLOCATE",     [44] = "READDIRPLUS",
		[45] = "RENAME2",      [46] = "LSEEK",	       [47] = "COPY_FILE_RANGE",
		[48] = "SETUPMAPPING", [49] = "REMOVEMAPPING", [50] = "SYNCFS",
		[51] = "TMPFILE",      [52] = "STATX",
	};

	return op < sizeof(names) / sizeof(names[0]) && names[op] != NULL ? names[op] : "OTHER";
}

/* "LOOKUP 12, OPEN 30, ..." for the FUSE requests the tracker counted. */
static void fuse_counts(const struct lz_tracker_stats *st, char *out, size_t size)
{
	size_t o = 0;

	out[0] = '\0';
	for (unsigned op = 0; op <= LZ_TRACKER_FUSE_OPS && o + 32 < size; op++)
		if (st->fuse_ops[op].count > 0)
			o += (size_t)snprintf(out + o, size - o, "%s%s %llu", o ? ", " : "",
					      lz_fuse_opcode_name(op),
					      (unsigned long long)st->fuse_ops[op].count);
}

/* The tracker's last numbers, logged as it closes. */
static void log_totals(struct lz_track *t)
{
	struct lz_track_stats *st = malloc(sizeof(*st)); /* 22 KiB */
	char ops[1024];

	if (st != NULL && lz_track_stats(t, st) == 0) {
		lz_info("open tracker: %llu events, %llu hits, %llu lost; %llu resolved early, "
			"%llu with nothing to resolve",
			(unsigned long long)st->bpf.events, (unsigned long long)st->bpf.hits,
			(unsigned long long)st->bpf.lost, (unsigned long long)st->early,
			(unsigned long long)st->absent);
		fuse_counts(&st->bpf, ops, sizeof(ops));
		if (st->bpf.fuse_all.count > 0)
			lz_info("FUSE requests of this mount: %llu (%s), %.1f us on average",
				(unsigned long long)st->bpf.fuse_all.count, ops,
				st->bpf.fuse_all.ended ? st->bpf.fuse_all.total_ns / 1e3 /
								 (double)st->bpf.fuse_all.ended
						       : 0.0);
	}
	free(st);
}

bool lz_track_close(struct lz_track *t)
{
	if (t == NULL)
		return true;
	if (t->loader_started)
		pthread_join(t->loader, NULL);
	if (atomic_load(&t->live))
		log_totals(t);
	pthread_rwlock_wrlock(&t->gate);
	atomic_store(&t->live, false);
	pthread_rwlock_unlock(&t->gate);
	/* The workers first (the ring-buffer thread drops what it sees once they stop). */
	if (!stop_workers(t, STOP_WAIT_S)) {
		lz_warn("open tracker: a resolve waits on a store that does not answer; its "
			"maps are unpinned, the rest is left to the exit");
		lz_tracker_unpin(t->tracker);
		return false;
	}
	if (t->tracker != NULL)
		lz_tracker_close(t->tracker);
	t->tracker = NULL;
	return true;
}

void lz_track_retire(struct lz_track **retired, struct lz_track *t)
{
	if (t == NULL)
		return;
	t->retired_next = *retired;
	*retired = t;
}

void lz_track_free(struct lz_track *t)
{
	while (t != NULL) {
		struct lz_track *next = t->retired_next;
		free_track(t);
		t = next;
	}
}
