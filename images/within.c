/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A resolve the caller waits for only so long (images.h,
 * lz_images_resolve_within): it runs on a detached thread of its own, which
 * the caller stops waiting for at its deadline; the thread then finishes the
 * resolve (the registry keeps the image for the next caller) and frees what
 * it shares with the caller. At most BACKGROUND_MAX such threads run at once.
 */
#include "config.h"
#include "images.h"
#include "common/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKGROUND_MAX 64

/* An image resolved by a thread of its own, which the request may stop waiting for. */
struct background {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done, abandoned;
	int err;
	struct lz_images *images;
	struct lz_image_ref ref; /* its strings are copies */
	struct lz_image *image;
	struct lz_image_root root;
};

static atomic_uint backgrounds;

static void background_free(struct background *b)
{
	if (b->err == 0 && b->root.sqfs != NULL)
		lz_sqfs_image_put(b->root.sqfs);
	else if (b->err == 0)
		close(b->root.fd);
	free((char *)b->ref.key);
	free((char *)b->ref.path);
	free((char *)b->ref.entry);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->done_cond);
	free(b);
	atomic_fetch_sub(&backgrounds, 1);
}

static void *background_main(void *arg)
{
	struct background *b = arg;
	int err = lz_images_resolve(b->images, &b->ref, &b->image, &b->root);

	pthread_mutex_lock(&b->lock);
	b->err = err;
	b->done = true;
	bool abandoned = b->abandoned;
	pthread_cond_signal(&b->done_cond);
	pthread_mutex_unlock(&b->lock);
	if (abandoned)
		background_free(b); /* what it resolved stays for the next lookup */
	return NULL;
}

static struct background *background_new(struct lz_images *images, const struct lz_image_ref *ref)
{
	struct background *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	atomic_fetch_add(&backgrounds, 1);
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&b->done_cond, &attr);
	pthread_condattr_destroy(&attr);
	b->images = images;
	b->ref = (struct lz_image_ref){ .key = strdup(ref->key), .parent = ref->parent };
	b->ref.path = ref->path != NULL ? strdup(ref->path) : NULL;
	b->ref.entry = strdup(ref->entry);
	b->err = -ENOMEM;
	if (b->ref.key == NULL || b->ref.entry == NULL ||
	    (ref->path != NULL && b->ref.path == NULL)) {
		background_free(b);
		return NULL;
	}
	return b;
}

int lz_images_resolve_within(struct lz_images *images, const struct lz_image_ref *ref,
			     double wait_s, struct lz_image **image, struct lz_image_root *root)
{
	struct background *b;
	pthread_t thread;
	pthread_attr_t attr;

	if (lz_images_ready(images, ref->key))
		return lz_images_resolve(images, ref, image, root);
	if (atomic_load(&backgrounds) >= BACKGROUND_MAX ||
	    (b = background_new(images, ref)) == NULL)
		return -EAGAIN;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&thread, &attr, background_main, b);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		background_free(b);
		return -rc;
	}
	struct timespec until = lz_clock_after(CLOCK_MONOTONIC, wait_s);
	pthread_mutex_lock(&b->lock);
	while (!b->done && pthread_cond_timedwait(&b->done_cond, &b->lock, &until) != ETIMEDOUT)
		;
	bool done = b->done;
	int err = b->err;
	b->abandoned = !done;
	pthread_mutex_unlock(&b->lock);
	if (!done)
		return -ETIMEDOUT; /* the thread frees it */
	*image = b->image;
	*root = b->root;
	b->err = -1; /* handed over: not released */
	background_free(b);
	return err;
}
