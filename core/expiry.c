/*
 * The one background thread of the daemon: it closes images that have been
 * idle for idle_timeout and tells the kernel to forget their entries, so the
 * next access resolves them again (and sees a replaced image file). SIGHUP
 * wakes it to expire every image whose file was replaced, at once.
 */
#include "config.h"
#include "fs.h"
#include "common/log.h"
#include "common/clock.h"

#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static pthread_t expiry_thread;
static sem_t wakeup;
static atomic_bool stopping, reload_requested, started;

static void forget_name(struct lz_fs *fs, uint64_t parent, const char *name)
{
	int rc = fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));

	if (rc != 0 && rc != -ENOENT)
		lz_debug("entry %s: kernel entry not invalidated: %s", name, strerror(-rc));
}

void lz_image_closed(void *ctx, const struct lz_image *image)
{
	if (image->entry != NULL)
		forget_name(ctx, image->parent, image->entry);
	/* Parked backing files would hold the image's mount. */
	lz_linger_revoke_owner(((struct lz_fs *)ctx)->linger, image);
	lz_track_forget(ctx, image->name);
	lz_prefetch_image_closed(((struct lz_fs *)ctx)->prefetch, image);
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
		lz_err("map %s: %s", fs->settings->map, strerror(errno));
		return -1;
	}
	if (stat(fs->settings->map, &st) == 0)
		fs->map_mtime = st.st_mtim;
	struct lz_map *old = atomic_exchange(&fs->map, map);
	lz_track_map_changed(fs);
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
		forget_name(fs, FUSE_ROOT_ID, old->root.children[i]->name);
	for (size_t i = 0; i < map->root.nchildren; i++)
		forget_name(fs, FUSE_ROOT_ID, map->root.children[i]->name);
	return 0;
}

static void *expiry_main(void *arg)
{
	struct lz_fs *fs = arg;
	double idle = fs->settings->idle_timeout;
	/* Checks often enough that an image lives at most 1.5x its idle time. */
	double period = idle > 0 ? idle / 2 : 3600;

	if (period < 0.2)
		period = 0.2;
	while (!atomic_load(&stopping)) {
		struct timespec until = lz_clock_after(CLOCK_REALTIME, period);
		while (sem_timedwait(&wakeup, &until) == -1 && errno == EINTR)
			;
		if (atomic_load(&stopping))
			break;
		if (atomic_exchange(&reload_requested, false)) {
			lz_info("reload: rereading the map, expiring replaced images");
			if (fs->settings->map != NULL)
				lz_map_reload(fs);
			lz_images_expire_replaced(fs->images, lz_image_closed, fs);
		}
		if (idle > 0)
			lz_images_expire(fs->images, (unsigned)idle, lz_image_closed, fs);
	}
	return NULL;
}

void lz_expiry_reload_signal(int sig)
{
	(void)sig;
	atomic_store(&reload_requested, true);
	sem_post(&wakeup); /* async-signal-safe */
}

int lz_expiry_start(struct lz_fs *fs)
{
	if (fs->images == NULL)
		return 0;
	sem_init(&wakeup, 0, 0);
	if (pthread_create(&expiry_thread, NULL, expiry_main, fs) != 0)
		return -1;
	atomic_store(&started, true);
	return 0;
}

void lz_expiry_stop(void)
{
	if (!atomic_load(&started))
		return;
	atomic_store(&stopping, true);
	sem_post(&wakeup);
	pthread_join(expiry_thread, NULL);
	sem_destroy(&wakeup);
	/* Startable again: a failed live upgrade resumes serving. */
	atomic_store(&started, false);
	atomic_store(&stopping, false);
}
