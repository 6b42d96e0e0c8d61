/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The expiry thread: it closes images that have been idle for idle_timeout
 * and tells the kernel to forget their entries, so the next access resolves
 * them again (and sees a replaced image file). A reload wakes it to reread
 * the map and expire every image whose file was replaced, at once.
 */
#include "config.h"
#include "expiry.h"
#include "fs.h"
#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Inodes freed since the last trim that make trimming the heap worth it. */
#define TRIM_INODES 1024

struct lz_expiry {
	struct lz_fs *fs;
	size_t inodes_high; /* the most inodes seen since the last trim */
	pthread_t thread;
	sem_t wakeup;
	atomic_bool stopping, reload_requested, started;
	/* Reloads begun and finished (the numbers only grow), and what the last found. */
	pthread_mutex_t lock;
	pthread_cond_t reloaded;
	unsigned begun, done;
	struct lz_reload_result last;
};

/* An image was closed: the kernel, the tracker and prefetch are told. */
static void image_closed(void *ctx, struct lz_image *image, uint64_t parent, const char *entry)
{
	struct lz_fs *fs = ctx;

	if (entry != NULL)
		lz_fs_forget_entry(fs, parent, entry);
	/* Parked backing files would hold the image's mount. */
	lz_linger_revoke_owner(fs->linger, image);
	lz_track_forget(fs->track, lz_image_name(image));
	lz_prefetch_image_closed(fs->prefetch, image);
}

int lz_evict_image(struct lz_fs *fs, const char *name)
{
	return fs->images != NULL ? lz_images_evict(fs->images, name, image_closed, fs) : -ENOENT;
}

static void report_map_line(void *ctx, const char *message)
{
	struct lz_reload_result *r = ctx;

	lz_warn("%s", message);
	if (r != NULL && r->first_bad[0] == '\0')
		snprintf(r->first_bad, sizeof(r->first_bad), "%s", message);
}

int lz_map_reload(struct lz_fs *fs, struct lz_reload_result *out)
{
	struct lz_reload_result ignored;
	struct lz_reload_result *r = out != NULL ? out : &ignored;
	struct lz_map *map;
	struct stat st;

	*r = (struct lz_reload_result){ .map = true };
	map = lz_map_load(fs->settings->map, report_map_line, r);
	if (map == NULL) {
		int err = errno;
		lz_err("map %s: %s", fs->settings->map, strerror(err));
		r->map_error = -err;
		return -err;
	}
	r->images = map->images;
	r->bad_lines = map->bad_lines;
	/* In the map, not beside it: lookups read it while a reload publishes a new one. */
	if (stat(fs->settings->map, &st) == 0)
		map->mtime = st.st_mtim;
	struct lz_map *old = lz_fs_map_replace(fs, map);
	lz_track_map_changed(fs->track);
	if (fs->root != NULL) /* a live upgrade restores the root after loading the map */
		lz_inode_map_set(fs->root, &map->root);
	lz_info("map %s: %zu images, %zu bad lines", fs->settings->map, map->images,
		map->bad_lines);
	if (old == NULL)
		return 0;
	/*
	 * Make the kernel look every mapped top-level name up again; it drops
	 * what it cached below them, and the inodes holding the old map go as it
	 * forgets them (the last frees the map).
	 */
	for (size_t i = 0; i < old->root.nchildren; i++)
		lz_fs_forget_entry(fs, LZ_ROOT_ID, old->root.children[i]->name);
	for (size_t i = 0; i < map->root.nchildren; i++)
		lz_fs_forget_entry(fs, LZ_ROOT_ID, map->root.children[i]->name);
	lz_map_release(old);
	return 0;
}

/*
 * Gives the heap back to the system once many inodes (and the image handles
 * they held) were freed: the daemon keeps freed memory otherwise (main.c).
 */
static void give_back(struct lz_expiry *e)
{
	size_t n = lz_inode_count(e->fs->inodes);

	if (n > e->inodes_high)
		e->inodes_high = n;
	if (n + TRIM_INODES > e->inodes_high)
		return;
	malloc_trim(0);
	e->inodes_high = n;
}

/* A reload asked for, its result kept for whoever waits on it. */
static void reload(struct lz_expiry *e)
{
	struct lz_reload_result r = { 0 };

	pthread_mutex_lock(&e->lock);
	unsigned n = ++e->begun;
	pthread_mutex_unlock(&e->lock);
	lz_info("reload: rereading the map, expiring replaced images");
	if (e->fs->settings->map != NULL)
		lz_map_reload(e->fs, &r);
	lz_images_expire_replaced(e->fs->images, image_closed, e->fs);
	pthread_mutex_lock(&e->lock);
	e->done = n;
	e->last = r;
	pthread_cond_broadcast(&e->reloaded);
	pthread_mutex_unlock(&e->lock);
}

static void *expiry_main(void *arg)
{
	struct lz_expiry *e = arg;
	struct lz_fs *fs = e->fs;
	double idle = fs->settings->idle_timeout;
	/* Checks often enough that an image lives at most 1.5x its idle time. */
	double period = idle > 0 ? idle / 2 : 3600;

	if (period < 0.2)
		period = 0.2;
	while (!atomic_load(&e->stopping)) {
		struct timespec until = lz_clock_after(CLOCK_REALTIME, period);
		while (sem_timedwait(&e->wakeup, &until) == -1 && errno == EINTR)
			;
		if (atomic_load(&e->stopping))
			break;
		if (atomic_exchange(&e->reload_requested, false))
			reload(e);
		if (idle > 0)
			lz_images_expire(fs->images, (unsigned)idle, image_closed, fs);
		give_back(e);
	}
	return NULL;
}

struct lz_expiry *lz_expiry_new(struct lz_fs *fs)
{
	struct lz_expiry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->fs = fs;
	sem_init(&e->wakeup, 0, 0);
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&e->reloaded, &attr);
	pthread_condattr_destroy(&attr);
	return e;
}

void lz_expiry_free(struct lz_expiry *e)
{
	if (e == NULL)
		return;
	lz_expiry_stop(e);
	sem_destroy(&e->wakeup);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->reloaded);
	free(e);
}

void lz_expiry_reload(struct lz_expiry *e)
{
	atomic_store(&e->reload_requested, true);
	sem_post(&e->wakeup); /* async-signal-safe */
}

int lz_expiry_reload_wait(struct lz_expiry *e, double timeout_s, struct lz_reload_result *out)
{
	struct timespec until = lz_clock_after(CLOCK_MONOTONIC, timeout_s);
	int rc = 0;

	if (!atomic_load(&e->started))
		return -ENOTCONN;
	pthread_mutex_lock(&e->lock);
	/* One that has begun may have read the map before this call: the next one. */
	unsigned want = e->begun + 1;
	lz_expiry_reload(e);
	while (e->done < want && rc == 0)
		rc = pthread_cond_timedwait(&e->reloaded, &e->lock, &until);
	if (e->done >= want) {
		*out = e->last;
		rc = 0;
	}
	pthread_mutex_unlock(&e->lock);
	return rc == 0 ? 0 : -ETIMEDOUT;
}

int lz_expiry_start(struct lz_expiry *e)
{
	int rc;

	if (e->fs->images == NULL)
		return 0;
	rc = pthread_create(&e->thread, NULL, expiry_main, e);
	if (rc != 0)
		return -rc;
	atomic_store(&e->started, true);
	return 0;
}

void lz_expiry_stop(struct lz_expiry *e)
{
	if (!atomic_load(&e->started))
		return;
	atomic_store(&e->stopping, true);
	sem_post(&e->wakeup);
	pthread_join(e->thread, NULL);
	/* Startable again: a failed live upgrade resumes serving. */
	atomic_store(&e->started, false);
	atomic_store(&e->stopping, false);
}
