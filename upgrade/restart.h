/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Restart after a crash without unmounting, the worker's side of the keeper
 * (keeper.h). Once mounted, the worker leaves four descriptors with the
 * keeper: the /dev/fuse connection, the underlay directory (the mount hides
 * it), a sealed memfd with what a takeover needs besides (the mount's path,
 * its FUSE connection number, the kernel's FUSE_INIT), and the records of
 * requests in flight (inflight.h) and of the node ids the kernel holds
 * (nodes.h). When the worker
 * dies the keeper's copies keep the connection, so the mount stays and
 * requests wait; the worker it starts next gets them back and takes the
 * mount over as a live upgrade does, from a record holding only the root:
 * node ids of the underlay are revived from the node record (nodes.h), the
 * others are answered ESTALE, upon which the kernel looks their paths up
 * again.
 */
#ifndef LAZYFS_RESTART_H
#define LAZYFS_RESTART_H

#include <stdbool.h>
#include <stddef.h>

struct lz_takeover;
struct lz_upgrade;

/* At start: the channel to the keeper from LAZYFS_KEEPER_FD. 1 (kept), 0 (none), -1 (bad). */
int lz_restart_keeper_init(void);
/* The channel to the keeper, or -1 (a live upgrade passes it on). */
int lz_restart_keeper_fd(void);
/* After mounting: gives the keeper the connection, the underlay and the state. */
void lz_restart_store(const struct lz_upgrade *up, int fuse_fd, int underlay_fd);
/* Gives the keeper record NAME (inflight.h, nodes.h: a memfd) to keep across a crash. */
void lz_restart_keep_record(const char *name, int fd);
/* After lz_restart_takeover: the record NAME the keeper kept (the caller's), or -1. */
int lz_restart_kept_record(const char *name);
/* Whether the worker before this one was ended by SIGKILL (not by a fault of its own). */
bool lz_restart_after_sigkill(void);
/* This process serves the mount now (after a fresh start or a takeover). */
void lz_restart_ready(void);
/* After a clean unmount: nothing left to restart. */
void lz_restart_unstore(void);
/*
 * At start: the takeover of the mount the keeper passed back after a crash,
 * its root the map's root when MAPPED. NULL when there is none: ERR empty,
 * or, when the kept mount cannot be served, a one-line reason.
 */
struct lz_takeover *lz_restart_takeover(struct lz_upgrade *up, bool mapped, char *err,
					size_t errlen);

#endif
