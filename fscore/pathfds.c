/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Bounded O_PATH descriptors: a clock over the entries with a descriptor
 * open, striped locks for each entry's own state (so the warm path takes no
 * global lock), and one anchor descriptor per node id source to open file
 * handles against.
 *
 * Locks: an entry's stripe, then the set's lock; the sweep holds the set's
 * lock and only tries stripes, skipping entries whose stripe is busy.
 */
#include "config.h"
#include "pathfds.h"
#include "nodeid.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define STRIPES 64

struct anchor {
	int fd; /* -1: none yet */
	unsigned refs;
};

struct lz_pathfds {
	pthread_mutex_t lock; /* the clock, the anchors and the counters */
	pthread_mutex_t stripes[STRIPES];
	struct lz_pathfd *hand; /* the clock: a ring of the entries with a descriptor open */
	struct anchor *anchors; /* by node id source */
	struct lz_pathfds_stats stats;
};

static pthread_mutex_t *stripe_of(struct lz_pathfds *p, const struct lz_pathfd *e)
{
	return &p->stripes[((uintptr_t)e / sizeof(void *)) % STRIPES];
}

struct lz_pathfds *lz_pathfds_new(unsigned cap)
{
	struct lz_pathfds *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->anchors = malloc((LZ_NODEID_MAX_SOURCE + 1) * sizeof(*p->anchors));
	if (p->anchors == NULL) {
		free(p);
		return NULL;
	}
	for (unsigned i = 0; i <= LZ_NODEID_MAX_SOURCE; i++)
		p->anchors[i] = (struct anchor){ .fd = -1 };
	pthread_mutex_init(&p->lock, NULL);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&p->stripes[i], NULL);
	p->stats.cap = cap;
	return p;
}

void lz_pathfds_free(struct lz_pathfds *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i <= LZ_NODEID_MAX_SOURCE; i++)
		if (p->anchors[i].fd >= 0)
			close(p->anchors[i].fd);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&p->stripes[i]);
	pthread_mutex_destroy(&p->lock);
	free(p->anchors);
	free(p);
}

/* Under the set's lock: E joins the clock just behind the hand (the last it reaches). */
static void ring_add(struct lz_pathfds *p, struct lz_pathfd *e)
{
	if (p->hand == NULL) {
		e->prev = e->next = e;
		p->hand = e;
	} else {
		e->next = p->hand;
		e->prev = p->hand->prev;
		e->prev->next = e;
		p->hand->prev = e;
	}
	e->listed = true;
	p->stats.open++;
}

static void ring_del(struct lz_pathfds *p, struct lz_pathfd *e)
{
	if (e->next == e) {
		p->hand = NULL;
	} else {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		if (p->hand == e)
			p->hand = e->next;
	}
	e->prev = e->next = NULL;
	e->listed = false;
	p->stats.open--;
}

/*
 * Closes unused descriptors until a sixteenth of the cap is free: a burst of
 * new files then costs one sweep, not one each. The referenced bit gives a
 * recently used descriptor one more turn.
 */
static void sweep(struct lz_pathfds *p)
{
	uint64_t target = p->stats.cap - p->stats.cap / 16;
	uint64_t budget;

	pthread_mutex_lock(&p->lock);
	budget = 2 * p->stats.open + 1;
	while (p->stats.open > target && p->hand != NULL && budget-- > 0) {
		struct lz_pathfd *e = p->hand;
		pthread_mutex_t *s = stripe_of(p, e);
		p->hand = e->next;
		if (pthread_mutex_trylock(s) != 0)
			continue;
		if (e->users == 0 && !e->referenced) {
			close(e->fd);
			e->fd = -1;
			ring_del(p, e);
			p->stats.closed++;
		} else {
			e->referenced = false;
		}
		pthread_mutex_unlock(s);
	}
	pthread_mutex_unlock(&p->lock);
}

/* Under E's stripe: E's new descriptor FD joins the clock; whether a sweep is due. */
static bool adopt(struct lz_pathfds *p, struct lz_pathfd *e, int fd)
{
	bool over;

	e->fd = fd;
	e->referenced = true;
	pthread_mutex_lock(&p->lock);
	ring_add(p, e);
	over = p->stats.open > p->stats.cap;
	pthread_mutex_unlock(&p->lock);
	return over;
}

/* FD's file handle, or NULL when its filesystem has none. */
static struct file_handle *handle_of(int fd)
{
	struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ), *shrunk;
	int mount_id;

	if (fh == NULL)
		return NULL;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) != 0) {
		free(fh);
		return NULL;
	}
	shrunk = realloc(fh, sizeof(*fh) + fh->handle_bytes);
	return shrunk != NULL ? shrunk : fh;
}

/*
 * A descriptor to open handles against, from FD (a file of type TYPE):
 * open_by_handle_at refuses O_PATH ones. Only a directory or a regular file
 * is opened for it (opening a device or a fifo could do something); -1.
 */
static int anchor_from(int fd, mode_t type)
{
	char proc[64];

	if (S_ISDIR(type))
		return openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!S_ISREG(type))
		return -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return open(proc, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
}

/*
 * Under the set's lock: E uses SOURCE's anchor, made from FD if it is the
 * first. The anchor is opened with the lock held: once per filesystem.
 */
static bool anchor_ref(struct lz_pathfds *p, unsigned source, int fd, mode_t type)
{
	struct anchor *a = &p->anchors[source];

	if (a->fd < 0) {
		a->fd = anchor_from(fd, type);
		if (a->fd < 0)
			return false;
		p->stats.anchors++;
	}
	a->refs++;
	return true;
}

static void anchor_unref(struct lz_pathfds *p, unsigned source)
{
	struct anchor *a = &p->anchors[source];

	if (--a->refs == 0) {
		close(a->fd);
		a->fd = -1;
		p->stats.anchors--;
	}
}

void lz_pathfd_init(struct lz_pathfds *p, struct lz_pathfd *e, int fd, unsigned source, mode_t type)
{
	bool over = false;

	*e = (struct lz_pathfd){ .fd = fd };
	if (fd < 0)
		return;
	e->handle = source != 0 && source <= LZ_NODEID_MAX_SOURCE ? handle_of(fd) : NULL;
	pthread_mutex_lock(&p->lock);
	if (e->handle != NULL && anchor_ref(p, source, fd, type)) {
		e->anchor = source;
		e->referenced = true;
		ring_add(p, e);
		over = p->stats.open > p->stats.cap;
	} else {
		free(e->handle);
		e->handle = NULL;
		p->stats.pinned++;
	}
	pthread_mutex_unlock(&p->lock);
	if (over)
		sweep(p);
}

void lz_pathfd_fini(struct lz_pathfds *p, struct lz_pathfd *e)
{
	pthread_mutex_lock(&p->lock);
	if (e->listed)
		ring_del(p, e);
	if (e->handle != NULL)
		anchor_unref(p, e->anchor);
	else if (e->fd >= 0)
		p->stats.pinned--;
	pthread_mutex_unlock(&p->lock);
	if (e->fd >= 0)
		close(e->fd);
	free(e->handle);
	*e = (struct lz_pathfd){ .fd = -1 };
}

/* E's file opened again by its handle; -errno. */
static int reopen(struct lz_pathfds *p, struct lz_pathfd *e)
{
	int anchor, fd, err;

	pthread_mutex_lock(&p->lock);
	anchor = p->anchors[e->anchor].fd; /* E's reference keeps it open */
	pthread_mutex_unlock(&p->lock);
	fd = open_by_handle_at(anchor, e->handle, O_PATH | O_CLOEXEC);
	err = fd < 0 ? errno : 0;
	pthread_mutex_lock(&p->lock);
	if (fd >= 0)
		p->stats.reopened++;
	else if (err == ESTALE || err == ENOENT)
		p->stats.stale++;
	pthread_mutex_unlock(&p->lock);
	if (fd >= 0)
		return fd;
	return err == ENOENT ? -ESTALE : -err;
}

int lz_pathfd_get(struct lz_pathfds *p, struct lz_pathfd *e)
{
	pthread_mutex_t *s = stripe_of(p, e);
	bool over = false;
	int fd;

	pthread_mutex_lock(s);
	if (e->fd >= 0 || e->handle == NULL) {
		fd = e->fd >= 0 ? e->fd : -EBADF;
		if (fd >= 0) {
			e->users++;
			e->referenced = true;
		}
		pthread_mutex_unlock(s);
		return fd;
	}
	pthread_mutex_unlock(s);
	/* Opened outside the stripe: other entries of the stripe go on meanwhile. */
	fd = reopen(p, e);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(s);
	if (e->fd >= 0)
		close(fd); /* another thread opened it first */
	else
		over = adopt(p, e, fd);
	e->users++;
	fd = e->fd;
	pthread_mutex_unlock(s);
	if (over)
		sweep(p);
	return fd;
}

void lz_pathfd_put(struct lz_pathfds *p, struct lz_pathfd *e)
{
	pthread_mutex_t *s = stripe_of(p, e);

	pthread_mutex_lock(s);
	e->users--;
	pthread_mutex_unlock(s);
}

int lz_pathfd_dup(struct lz_pathfds *p, struct lz_pathfd *e)
{
	int fd = lz_pathfd_get(p, e), copy;

	if (fd < 0)
		return fd;
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	copy = copy >= 0 ? copy : -errno;
	lz_pathfd_put(p, e);
	return copy;
}

void lz_pathfd_offer(struct lz_pathfds *p, struct lz_pathfd *e, int fd)
{
	pthread_mutex_t *s = stripe_of(p, e);
	bool kept = false, over = false;

	pthread_mutex_lock(s);
	if (e->fd < 0 && e->handle != NULL) {
		over = adopt(p, e, fd);
		kept = true;
	}
	pthread_mutex_unlock(s);
	if (!kept)
		close(fd);
	if (over)
		sweep(p);
}

void lz_pathfds_stats(struct lz_pathfds *p, struct lz_pathfds_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}
