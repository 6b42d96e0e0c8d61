/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Live upgrade, the running daemon's side (lazyfsctl MP upgrade [BINARY]):
 * the control thread asks, the main thread stops the FUSE loop, hands the
 * connection and the state to a new process (takeover.c) and exits without
 * unmounting, or resumes serving when anything failed.
 *
 * One struct lz_upgrade per process holds what a handover needs besides the
 * state (the command line, the kernel's FUSE_INIT, the mount's path and
 * connection) and the request passed from the control thread to the main
 * thread. What is handed over beyond the core's state (the control plane's
 * listeners) comes through the hooks, so nothing here knows the control
 * plane.
 */
#ifndef LAZYFS_UPGRADE_H
#define LAZYFS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

struct fuse_session;
struct lz_fs;
struct lz_handover;
struct lz_settings;
struct lz_upgrade;

/* What the main thread stops while the state is captured, and restarts on failure. */
struct lz_upgrade_hooks {
	void (*pause)(void *ctx);
	void (*resume)(void *ctx);
	/* The control plane's listeners and socket path to hand over (-1, NULL: none). */
	void (*control_fds)(void *ctx, int *listen_fd, int *http_fd, const char **path);
	void *ctx;
};

/* At start: the command line the new process gets too; NULL when out of memory. */
struct lz_upgrade *lz_upgrade_new(int argc, char **argv, const struct lz_settings *settings);
void lz_upgrade_free(struct lz_upgrade *up);

/* The kernel's FUSE_INIT request, which the new process replays into its libfuse session. */
int lz_upgrade_set_init(struct lz_upgrade *up, const void *request, size_t len);
/* Reads the kernel's FUSE_INIT from a fresh mount, remembers it and lets libfuse answer it. */
int lz_upgrade_first_init(struct lz_upgrade *up, struct fuse_session *se);
/* The mount as the record names it: its absolute path and FUSE connection (device minor). */
void lz_upgrade_set_mount(struct lz_upgrade *up, const char *mountpoint, unsigned minor);
/*
 * Whether libfuse serves the connection through FUSE-over-io_uring rings,
 * whose requests cannot be handed over (upgrade.c says why): no live
 * upgrade, no restart after a crash.
 */
bool lz_upgrade_serves_uring(const struct lz_upgrade *up);
/* Appends the record's "mountpoint", "minor" and "init" lines to H; -1 if they are not known. */
int lz_upgrade_mount_lines(const struct lz_upgrade *up, struct lz_handover *h);

/*
 * Control thread: upgrade to BINARY (NULL: the running binary's path), the
 * loop of SE stopping for it. Blocks until the new process serves (0, "pid
 * N" in MSG) or the attempt failed and this daemon serves again (-1, the
 * reason in MSG).
 */
int lz_upgrade_request(struct lz_upgrade *up, struct fuse_session *se, const char *binary,
		       char *msg, size_t size);
/*
 * Control thread: a reply went out; after a successful upgrade the process
 * may end now, and then this returns true (the control thread stops).
 */
bool lz_upgrade_replied(struct lz_upgrade *up);

/* Main thread, when the FUSE loop returned: was it stopped for an upgrade? */
bool lz_upgrade_requested(struct lz_upgrade *up);
/* Main thread: performs it. Exits the process on success; returns to serve again. */
void lz_upgrade_run(struct lz_upgrade *up, struct lz_fs *fs, struct fuse_session *se,
		    const struct lz_upgrade_hooks *hooks);

/*
 * Asks the kernel to queue again every request read from FUSE_FD but not
 * answered (FUSE_NOTIFY_RESEND, Linux 6.9): a stopped libfuse loop drops the
 * requests its workers read after the stop. Call before serving again.
 */
void lz_upgrade_resend(int fuse_fd);

#endif
