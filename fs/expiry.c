/*
 * The one background thread of the daemon: it closes images that have been
 * idle for idle_timeout and tells the kernel to forget their entries, so the
 * next access resolves them again (and sees a replaced image file). SIGHUP
 * wakes it to expire every image whose file was replaced, at once.
 */
#include "config.h"
#include "fs.h"
#include "log.h"

#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

static pthread_t expiry_thread;
static sem_t wakeup;
static atomic_bool stopping, reload_requested, started;

static void forget_entry(void *ctx, const char *name)
{
	struct lz_fs *fs = ctx;
	int rc = fuse_lowlevel_notify_inval_entry(fs->se, FUSE_ROOT_ID, name, strlen(name));

	if (rc != 0 && rc != -ENOENT)
		lz_debug("image %s: kernel entry not invalidated: %s", name, strerror(-rc));
}

static void *expiry_main(void *arg)
{
	struct lz_fs *fs = arg;
	double idle = fs->config->idle_timeout;
	/* Checks often enough that an image lives at most 1.5x its idle time. */
	double period = idle > 0 ? idle / 2 : 3600;

	if (period < 0.2)
		period = 0.2;
	while (!atomic_load(&stopping)) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)period;
		until.tv_nsec += (long)((period - (time_t)period) * 1e9);
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (sem_timedwait(&wakeup, &until) == -1 && errno == EINTR)
			;
		if (atomic_load(&stopping))
			break;
		if (atomic_exchange(&reload_requested, false)) {
			lz_info("reload: expiring replaced images");
			lz_images_expire_replaced(fs->images, forget_entry, fs);
		}
		if (idle > 0)
			lz_images_expire(fs->images, (unsigned)idle, forget_entry, fs);
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
}
