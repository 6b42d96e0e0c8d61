/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Live upgrade, the new process's side: started by the running daemon with
 * LAZYFS_TAKEOVER_FD in its environment, it receives the handover record,
 * attaches the /dev/fuse connection it names to a libfuse session without
 * mounting anything, rebuilds the inode table and images, and reports ready.
 * Until then the old daemon can resume: nothing here touches the mount.
 */
#ifndef LAZYFS_TAKEOVER_H
#define LAZYFS_TAKEOVER_H

#include <stddef.h>

struct fuse_session;
struct lz_handover;
struct lz_fs;
struct lz_takeover;
struct lz_upgrade;

/* The socket named by LAZYFS_TAKEOVER_FD (removed from the environment), or -1. */
int lz_takeover_sock_from_env(void);
/*
 * Receives and checks the record; UP learns the mount's FUSE_INIT, path and
 * connection from it. NULL with a one-line reason in ERR (also told to the
 * old daemon).
 */
struct lz_takeover *lz_takeover_receive(struct lz_upgrade *up, int sock, char *err, size_t errlen);

/*
 * The same from a record built here (a restart after a crash: restart.h),
 * taking H's text and descriptors over. NULL with a one-line reason in ERR.
 */
struct lz_takeover *lz_takeover_from_record(struct lz_upgrade *up, struct lz_handover *h, char *err,
					    size_t errlen);

/* The mount's absolute path and FUSE connection (device minor) as the old daemon knew them. */
const char *lz_takeover_mountpoint(const struct lz_takeover *t);
unsigned lz_takeover_minor(const struct lz_takeover *t);
/* The control socket's listeners (taken: the caller owns them) and path. */
void lz_takeover_control(struct lz_takeover *t, int *listen_fd, int *http_fd, const char **path);

/* Rebuilds the inode table (sources, root too) and images in FS. 0, or -1 with ERR. */
int lz_takeover_restore(struct lz_takeover *t, struct lz_fs *fs, char *err, size_t errlen);
/*
 * Gives SE the connection and replays the kernel's FUSE_INIT into it, so
 * libfuse is initialized as the old daemon's was; the reply goes nowhere.
 * 0, or -1 with ERR.
 */
int lz_takeover_attach(struct lz_takeover *t, struct fuse_session *se, char *err, size_t errlen);

/*
 * Tells the old daemon: "ready" (it exits, handing systemd's MAINPID over),
 * or the reason this process gives up (it serves on). Frees T.
 */
void lz_takeover_ready(struct lz_takeover *t);
void lz_takeover_fail(struct lz_takeover *t, const char *reason);

/* At exit after a takeover: unmounts unless the kernel already ended the connection. */
void lz_takeover_unmount(int fuse_fd, const char *mountpoint);

#endif
