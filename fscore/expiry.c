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
	(void)ctx;
	lz_warn("%s", message);
}

int lz_map_reload(struct lz_fs *fs)
{
	struct lz_map *map = lz_map_load(fs->settings->map, report_map_line, NULL);
	struct stat st;

	if (map == NULL) {
		int err = errno;
		lz_err("map %s: %s", fs->settings->map, strerror(err));
		return -err;
	}
	/* In the map, not beside it: lookups read it while a reload publishes a new one. */
	if (stat(fs->settings->map, &st) == 0)
		map->mtime = st.st_mtim;
	struct lz_map *old = atomic_exchange(&fs->map, map);
	lz_track_map_changed(fs->track);
	if (fs->root != NULL) /* a live upgrade restores the root after loading the map */
		fs->root->map_node = &map->root;
	lz_info("map %s: %zu images, %zu bad lines", fs->settings->map, map->images,
		map->bad_lines);
	if (old == NULL)
		return 0;
	/*
	 * Make the kernel look every mapped top-level name up again; it drops
	 * what it cached below them. Inodes may still point into the old map,
	 * so it is kept: one small allocation per reload.
	 */
	for (size_t i = 0; i < old->root.nchildren; i++)
		lz_fs_forget_entry(fs, LZ_ROOT_ID, old->root.children[i]->name);
	for (size_t i = 0; i < map->root.nchildren; i++)
		lz_fs_forget_entry(fs, LZ_ROOT_ID, map->root.children[i]->name);
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
		if (atomic_exchange(&e->reload_requested, false)) {
			lz_info("reload: rereading the map, expiring replaced images");
			if (fs->settings->map != NULL)
				lz_map_reload(fs);
			lz_images_expire_replaced(fs->images, image_closed, fs);
		}
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
	return e;
}

void lz_expiry_free(struct lz_expiry *e)
{
	if (e == NULL)
		return;
	lz_expiry_stop(e);
	sem_destroy(&e->wakeup);
	free(e);
}

void lz_expiry_reload(struct lz_expiry *e)
{
	atomic_store(&e->reload_requested, true);
	sem_post(&e->wakeup); /* async-signal-safe */
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
