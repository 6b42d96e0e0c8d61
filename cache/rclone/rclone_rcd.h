/*
 * Internal to the rclone fetcher: the `rclone rcd` child. A supervisor thread
 * spawns it when asked, learns its port from its log, forwards its stderr to
 * the log, reaps it when it dies, and stops it at the end.
 */
#ifndef LAZYFS_CACHE_RCLONE_RCD_H
#define LAZYFS_CACHE_RCLONE_RCD_H

#include <stddef.h>
#include <sys/types.h>

#include "rclone_rc.h"

struct lz_rcd;

/*
 * BIN: the rclone program (a path). USER and PASS go into its environment,
 * and CONFIG (or NULL) as its RCLONE_CONFIG. A child that has not said where
 * it serves after START_TIMEOUT_S is killed.
 */
struct lz_rcd *lz_rcd_new(const char *bin, const char *user, const char *pass, const char *config,
			  double start_timeout_s, const struct lz_rc_log *log, char *err,
			  size_t errlen);
/* Stops the child (SIGTERM, then SIGKILL) and the supervisor. */
void lz_rcd_free(struct lz_rcd *rcd);

/*
 * Waits for a serving child, starting one if there is none: 0 with its *PORT
 * and *GEN (which names this child in lz_rcd_discard), or -errno and a reason.
 * A start that failed less than a second ago is not retried at once.
 */
int lz_rcd_get(struct lz_rcd *rcd, unsigned *port, unsigned *gen, char *err, size_t errlen);

/* Child GEN failed a request as only a dead or wedged one does: kill it (once). */
void lz_rcd_discard(struct lz_rcd *rcd, unsigned gen, const char *why);

pid_t lz_rcd_pid(struct lz_rcd *rcd);

/* The port of rclone's "Serving remote control on http://127.0.0.1:PORT/" log line, or 0. */
unsigned lz_rcd_serving_port(const char *line);

#endif
