/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Long control commands (a pin that fetches a remote image, a prefetch that
 * mounts one) run as jobs on threads of their own, so the control thread
 * never waits on the network or a mount: the command waits a moment for the
 * job, answers with its outcome when it was quick, and otherwise at once,
 * the job going on and `lazyfsctl status` showing it.
 */
#ifndef LAZYFS_JOBS_H
#define LAZYFS_JOBS_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;
struct lz_jobs;

#define LZ_JOBS_RUNNING 4 /* jobs at once; more are refused until one ends */
#define LZ_JOBS_KEPT	8 /* ended jobs shown in status */
#define LZ_JOB_MSG	512

/* A job's work: writes its one-line outcome into MSG; 0, or -1 when it failed. */
typedef int lz_job_fn(void *ctx, const char *arg, char *msg, size_t size);

struct lz_jobs *lz_jobs_new(void);
/* Waits for the running jobs (each a bounded resolve), then frees everything. */
void lz_jobs_free(struct lz_jobs *jobs);

/*
 * Runs FN(CTX, ARG) as job WHAT, waiting up to WAIT_MS for it: when it ended
 * by then, its outcome in MSG and its status (0 or -1); else 1, with MSG
 * saying it goes on in the background; -1 with the reason in MSG when it
 * cannot start (too many running).
 */
int lz_jobs_run(struct lz_jobs *jobs, const char *what, lz_job_fn *fn, void *ctx, const char *arg,
		unsigned wait_ms, char *msg, size_t size);

/* The running jobs and the last ended ones, for status: [{what, arg, state, seconds, message}]. */
struct json_object *lz_jobs_report(struct lz_jobs *jobs);

#endif
