/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What changes under a mount while it serves: idle images are closed after
 * idle_timeout, replaced images and the map on a reload (SIGHUP or lazyfsctl
 * reload), each time the kernel told to forget the entries, so the next
 * access resolves them again. One thread per mount does it.
 */
#ifndef LAZYFS_EXPIRY_H
#define LAZYFS_EXPIRY_H

#include <stdbool.h>
#include <stddef.h>

struct lz_fs;
struct lz_expiry;

/* What one reload found. */
struct lz_reload_result {
	bool map;	     /* there is a map= */
	int map_error;	     /* -errno when the map file could not be read (the old one serves) */
	size_t images;	     /* mapped images */
	size_t bad_lines;    /* skipped lines */
	char first_bad[256]; /* "FILE:LINE: reason" of the first, or "" */
};

/* NULL when out of memory; nothing runs until lz_expiry_start. */
struct lz_expiry *lz_expiry_new(struct lz_fs *fs);
void lz_expiry_free(struct lz_expiry *expiry);
/* Starts the thread (not with no images); again after a stop. 0 or -errno. */
int lz_expiry_start(struct lz_expiry *expiry);
void lz_expiry_stop(struct lz_expiry *expiry);
/* Asks the thread to reload now. Async-signal-safe: a SIGHUP handler may call it. */
void lz_expiry_reload(struct lz_expiry *expiry);
/*
 * Asks for a reload and waits up to TIMEOUT_S for one that began after the
 * call: 0 with what it found in *OUT, -ETIMEDOUT, or -ENOTCONN when the
 * thread does not run (no images).
 */
int lz_expiry_reload_wait(struct lz_expiry *expiry, double timeout_s, struct lz_reload_result *out);

/* Closes image NAME now, as expiry would: -ENOENT when not READY, -EBUSY while in use. */
int lz_evict_image(struct lz_fs *fs, const char *name);
/*
 * (Re)reads the map file; bad lines are logged, counted in *OUT (may be NULL)
 * with the first. 0, or -errno when it cannot be read.
 */
int lz_map_reload(struct lz_fs *fs, struct lz_reload_result *out);

#endif
