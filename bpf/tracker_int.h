/* SPDX-License-Identifier: BSD-2-Clause */
/* The tracker's state, shared by tracker.c (life cycle) and tracker_maps.c. */
#ifndef LAZYFS_TRACKER_INT_H
#define LAZYFS_TRACKER_INT_H

#include "tracker.h"

#include <linux/types.h>
#include <pthread.h>
#include <stdbool.h>

#include "lazyfs_bpf.h"
#include "lazyfs.skel.h"

#define LZ_PIN_MAPS  4	/* resolved, mapped, counters, fuse_ops */
#define LZ_PIN_DEPTH 16 /* directories lz_tracker_open may create for pin_dir */

struct lz_tracker {
	struct lazyfs_bpf *skel;
	struct ring_buffer *rb;
	int epoll_fd;
	int stop_fd; /* eventfd: the consumer thread returns when it is readable */
	pthread_t thread;
	bool thread_started;
	bool fuse_available;
	void (*on_miss)(void *ctx, const char *key, const struct lz_tracker_event *ev);
	void *ctx;
	char *pin_dir;
	bool pinned[LZ_PIN_MAPS];
	char *created[LZ_PIN_DEPTH]; /* parents of pin_dir this made, outermost first */
	int ncreated;
};

/* tracker_pin.c: mounts bpffs if needed, makes pin_dir and pins the maps. */
int lz_tracker_pin(struct lz_tracker *t, const char *pin_dir, char *err, size_t errlen);

/* Writes the reason to err and returns rc (a -errno). */
int lz_tracker_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
