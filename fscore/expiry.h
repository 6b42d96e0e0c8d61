/*
 * What changes under a mount while it serves: idle images are closed after
 * idle_timeout, replaced images and the map on a reload (SIGHUP or lazyfsctl
 * reload), each time the kernel told to forget the entries, so the next
 * access resolves them again. One thread per mount does it.
 */
#ifndef LAZYFS_EXPIRY_H
#define LAZYFS_EXPIRY_H

struct lz_fs;
struct lz_expiry;

/* NULL when out of memory; nothing runs until lz_expiry_start. */
struct lz_expiry *lz_expiry_new(struct lz_fs *fs);
void lz_expiry_free(struct lz_expiry *expiry);
/* Starts the thread (not with no images); again after a stop. 0 or -errno. */
int lz_expiry_start(struct lz_expiry *expiry);
void lz_expiry_stop(struct lz_expiry *expiry);
/* Asks the thread to reload now. Async-signal-safe: a SIGHUP handler may call it. */
void lz_expiry_reload(struct lz_expiry *expiry);

/* Closes image NAME now, as expiry would: -ENOENT when not READY, -EBUSY while in use. */
int lz_evict_image(struct lz_fs *fs, const char *name);
/* (Re)reads the map file; bad lines are logged. 0, or -errno when it cannot be read. */
int lz_map_reload(struct lz_fs *fs);

#endif
