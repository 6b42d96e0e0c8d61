/*
 * Live upgrade, the running daemon's side (lazyfsctl MP upgrade [BINARY]):
 * the control thread asks, the main thread stops the FUSE loop, hands the
 * connection and the state to a new process (takeover.c) and exits without
 * unmounting, or resumes serving when anything failed.
 */
#ifndef LAZYFS_UPGRADE_H
#define LAZYFS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

struct lz_settings;
struct lz_fs;
struct lz_handover;

/* What the main thread stops while the state is captured, and restarts on failure. */
struct lz_upgrade_hooks {
	void (*pause)(struct lz_fs *fs);
	void (*resume)(struct lz_fs *fs);
};

/* At start: the command line the new process gets too. */
void lz_upgrade_init(int argc, char **argv);
/* The kernel's FUSE_INIT request, which the new process replays into its libfuse session. */
int lz_upgrade_set_init(const void *request, size_t len);
/* Reads the kernel's FUSE_INIT from a fresh mount, remembers it and lets libfuse answer it. */
int lz_upgrade_first_init(struct lz_fs *fs);
/* The mount as the record names it: its absolute path and FUSE connection (device minor). */
void lz_upgrade_set_mount(const char *mountpoint, unsigned minor);
/*
 * Whether libfuse serves the connection through FUSE-over-io_uring rings,
 * whose requests cannot be handed over (upgrade.c says why): no live
 * upgrade, no restart after a crash.
 */
bool lz_upgrade_serves_uring(const struct lz_settings *cfg);
/* Appends the record's "mountpoint", "minor" and "init" lines to H; -1 if they are not known. */
int lz_upgrade_mount_lines(struct lz_handover *h);

/*
 * Control thread: upgrade to BINARY (NULL: the running binary's path). Blocks
 * until the new process serves (0, "pid N" in MSG) or the attempt failed and
 * this daemon serves again (-1, the reason in MSG).
 */
int lz_upgrade_request(struct lz_fs *fs, const char *binary, char *msg, size_t size);
/* Control thread: a reply went out; after a successful upgrade the process may end now. */
void lz_upgrade_replied(void);

/* Main thread, when the FUSE loop returned: was it stopped for an upgrade? */
bool lz_upgrade_requested(void);
/* Main thread: performs it. Exits the process on success; returns to serve again. */
void lz_upgrade_run(struct lz_fs *fs, const struct lz_upgrade_hooks *hooks);

/*
 * Asks the kernel to queue again every request read from FUSE_FD but not
 * answered (FUSE_NOTIFY_RESEND, Linux 6.9): a stopped libfuse loop drops the
 * requests its workers read after the stop. Call before serving again.
 */
void lz_upgrade_resend(int fuse_fd);

#endif
