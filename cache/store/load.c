/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Loading the index, off the mount's critical path. lz_store_open only locks
 * and lays out the directory: reading the index of 150,000 objects (a SHA-256
 * and two allocations each, then the LRU sort) took longer than the whole
 * rest of a mount. The index is loaded instead by the first call that needs
 * it, or ahead of that by lz_store_preload's thread once the daemon serves;
 * calls made meanwhile wait for it, once, and then never again.
 *
 * Until it is loaded nothing on disk has changed (the clean marker is taken
 * by the load itself), so a store closed unloaded is left exactly as found.
 */
#include "config.h"
#include "store_int.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

/* Lock not held, LOADING set by the caller: the index, then the quota it bounds. */
static void load(struct lz_store *s)
{
	char err[LZ_ERR_MAX] = "";
	struct statvfs vfs;
	int rc = lz_index_load(s, err, sizeof(err));

	pthread_mutex_lock(&s->lock);
	if (rc == 0 && s->quota_asked == 0) {
		if (fstatvfs(s->dir_fd, &vfs) < 0) {
			rc = -errno;
			lz_seterr(err, sizeof(err), "statvfs %s: %s", s->dir, strerror(errno));
		} else {
			/* Our objects count as free, else each restart would shrink the quota. */
			s->quota = ((uint64_t)vfs.f_bavail * vfs.f_frsize + s->used) / 10 * 9;
		}
	} else if (rc == 0) {
		s->quota = s->quota_asked;
	}
	if (rc == 0)
		lz_store_trim(s); /* drops the lock while unlinking; the others still wait */
	if (rc < 0 && err[0] == '\0')
		lz_seterr(err, sizeof(err), "cache directory %s: %s", s->dir, strerror(-rc));
	s->load_rc = rc;
	snprintf(s->load_err, sizeof(s->load_err), "%s", err);
	s->loading = false;
	s->loaded = true;
	pthread_cond_broadcast(&s->changed);
	if (rc < 0 && s->log != NULL)
		s->log(s->log_ctx, LZ_LOG_ERR, s->load_err);
	pthread_mutex_unlock(&s->lock);
}

int lz_store_ready(struct lz_store *s)
{
	if (!s->loaded && !s->loading) {
		s->loading = true;
		pthread_mutex_unlock(&s->lock);
		load(s);
		pthread_mutex_lock(&s->lock);
	}
	while (!s->loaded)
		pthread_cond_wait(&s->changed, &s->lock);
	return s->load_rc;
}

static void *loader_main(void *arg)
{
	struct lz_store *s = arg;

	pthread_mutex_lock(&s->lock);
	lz_store_ready(s);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void lz_store_preload(struct lz_store *s)
{
	pthread_mutex_lock(&s->lock);
	if (!s->loaded && !s->loading && !s->loader_started)
		s->loader_started = pthread_create(&s->loader, NULL, loader_main, s) == 0;
	pthread_mutex_unlock(&s->lock);
}

void lz_store_join_loader(struct lz_store *s)
{
	bool started;

	pthread_mutex_lock(&s->lock);
	started = s->loader_started;
	s->loader_started = false;
	pthread_mutex_unlock(&s->lock);
	if (started)
		pthread_join(s->loader, NULL);
}
