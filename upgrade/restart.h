/*
 * Restart after a crash without unmounting, through the supervisor's file
 * descriptor store (systemd: FDSTORE=1 with FileDescriptorStoreMax=). Once
 * mounted, the daemon leaves three descriptors there: the /dev/fuse
 * connection, the underlay directory (the mount hides it) and a sealed
 * memfd with what a takeover needs besides (the mount's path, its FUSE
 * connection number, the kernel's FUSE_INIT). When the daemon dies, the
 * supervisor's copy keeps the connection, so the mount stays and requests
 * wait. The daemon it starts next gets them back (LISTEN_FDS) and takes the
 * mount over as a live upgrade does, from a record holding only the root:
 * node ids the kernel still holds are answered ESTALE, upon which the kernel
 * looks their paths up again.
 */
#ifndef LAZYFS_RESTART_H
#define LAZYFS_RESTART_H

#include <stdbool.h>
#include <stddef.h>

struct lz_takeover;
struct lz_upgrade;

/* After mounting: stores the connection, the underlay and the state, when supervised. */
void lz_restart_store(const struct lz_upgrade *up, int fuse_fd, int underlay_fd);
/* After a clean unmount: takes them out of the store again. */
void lz_restart_unstore(void);
/*
 * At start: the takeover of a stored mount the supervisor passed back, its
 * root the map's root when MAPPED. NULL when there is none to take over: ERR
 * empty, or, when the stored mount cannot be served, a one-line reason.
 */
struct lz_takeover *lz_restart_takeover(struct lz_upgrade *up, bool mapped, char *err,
					size_t errlen);

#endif
