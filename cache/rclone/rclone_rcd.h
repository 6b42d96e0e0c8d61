/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internal to the rclone fetcher: the `rclone rcd` child. A supervisor thread
 * spawns it when asked, learns its port from its log, forwards its stderr to
 * the log, reaps it when it dies, and stops it at the end.
 */
#ifndef LAZYFS_CACHE_RCLONE_RCD_H
#define LAZYFS_CACHE_RCLONE_RCD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rclone_rc.h"
#include "rclone_spawn.h"

struct lz_rcd;

/*
 * BIN: the rclone program (a path), run as HOW says (rclone_spawn.h).
 * Every child gets credentials of its own (random, in its environment, never
 * logged): a process that takes a dead child's port learns nothing that works
 * with the next. A child that has not said where it serves after
 * START_TIMEOUT_S is killed.
 */
struct lz_rcd *lz_rcd_new(const char *bin, const struct lz_rcd_how *how, double start_timeout_s,
			  const struct lz_rc_log *log, char *err, size_t errlen);

/* The credentials of one child: hex of random bytes. */
struct lz_rcd_creds {
	char user[33], pass[65];
};
/* Wipes CREDS (a copy of a child's credentials, done with). */
void lz_rcd_creds_wipe(struct lz_rcd_creds *creds);
/* Stops the child (SIGTERM, then SIGKILL) and the supervisor. */
void lz_rcd_free(struct lz_rcd *rcd);

/*
 * Waits for a serving child, starting one if there is none: 0 with its *PORT,
 * its *CREDS (the caller wipes them after use) and *GEN (which names this
 * child in lz_rcd_discard), or -errno and a reason. A start that failed less
 * than a second ago is not retried at once.
 */
int lz_rcd_get(struct lz_rcd *rcd, unsigned *port, unsigned *gen, struct lz_rcd_creds *creds,
	       char *err, size_t errlen);

/*
 * Starts a child in the background when none runs (nor failed to start less
 * than a second ago), and returns at once: the first call then finds it up.
 */
void lz_rcd_start(struct lz_rcd *rcd);

/* Child GEN failed a request as only a dead or wedged one does: kill it (once). */
void lz_rcd_discard(struct lz_rcd *rcd, unsigned gen, const char *why);

pid_t lz_rcd_pid(struct lz_rcd *rcd);
/*
 * True while child GEN is the current one, serving and alive (its pidfd not
 * yet readable). Asked after a connection to its port is made: a child alive
 * then still held its listening socket, so the connection reached it and no
 * process that took the port after the child died.
 */
bool lz_rcd_vouch(struct lz_rcd *rcd, unsigned gen);

/* The port of rclone's "Serving remote control on http://127.0.0.1:PORT/" log line, or 0. */
unsigned lz_rcd_serving_port(const char *line);

#endif
