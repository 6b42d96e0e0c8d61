/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Deferred requests: work that may wait on a slow store (an image whose file
 * sits on a hung NFS or FUSE mount, a remote that stopped answering) leaves
 * the FUSE worker threads at once and runs on threads of its own, so stuck
 * work never takes the threads that serve everything else.
 *
 * A deferred request is answered by whichever comes first: its work (which
 * claims it with lz_defer_claim and replies), its deadline (EIO), the
 * kernel's FUSE_INTERRUPT (EINTR: the caller was interrupted or killed), or
 * the stop of the daemon (EIO). Work whose request was answered without it
 * still runs to its end, so what it resolves is there for the next request.
 *
 * Requests with the same key (an image's name) queue behind one another and
 * are run by one thread: a stuck image holds one thread however many callers
 * want it. Up to LZ_DEFER_THREADS keys run at once and LZ_DEFER_PENDING
 * requests wait; past that, new requests are refused (the caller answers
 * EAGAIN). Threads start on demand and end when idle.
 */
#ifndef LAZYFS_DEFER_H
#define LAZYFS_DEFER_H

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "fscore/fs.h"

#define LZ_DEFER_THREADS 256
#define LZ_DEFER_PENDING 65536

struct lz_defer;
struct lz_defer_job;

/* Runs the work of JOB (ARG is what lz_defer_submit was given); frees ARG. */
typedef void lz_defer_run_fn(struct lz_defer_job *job, fuse_req_t req, void *arg);
/* Frees ARG of a job answered before its work started. */
typedef void lz_defer_drop_fn(void *arg);

/*
 * TIMEOUT: seconds a request waits before it is answered EIO; 0 waits for the
 * work. COUNTS are kept up to date for the statistics. NULL: out of memory or
 * threads.
 */
struct lz_defer *lz_defer_new(double timeout, struct lz_waits *counts);

/*
 * At most MAX (1 to LZ_DEFER_THREADS) keys run at once; the other lanes wait
 * for a thread to come free. Set before the first submit.
 */
void lz_defer_set_threads(struct lz_defer *d, unsigned max);

/*
 * D's threads do fetch-side work and run niced (common/sched.h), behind the
 * requests answered at once. Set before the first submit.
 */
void lz_defer_set_background(struct lz_defer *d);

/*
 * Runs RUN(job, REQ, ARG) on a deferral thread, after the requests queued
 * with the same KEY. 0, or -EAGAIN when too many wait (ARG is then still the
 * caller's, and so is REQ).
 */
int lz_defer_submit(struct lz_defer *d, const char *key, fuse_req_t req, lz_defer_run_fn *run,
		    lz_defer_drop_fn *drop, void *arg);

/*
 * Called by the work when it has its answer: true when the request is still
 * unanswered and is now the work's to reply to; false when it was answered
 * meanwhile (the work undoes what the reply would have handed over).
 * While the daemon is paused for a live upgrade this waits until it resumes.
 */
bool lz_defer_claim(struct lz_defer_job *job);

/*
 * A live upgrade: requests stay unanswered while paused (the kernel gives
 * them to the new process), and are answered on resume if it failed. Pausing
 * waits up to WAIT_S seconds for running work to reach its answer: true when
 * none runs any more; false when some is stuck on a store (it will find the
 * core's services gone, or paused, when it goes on).
 */
bool lz_defer_pause(struct lz_defer *d, double wait_s);
void lz_defer_resume(struct lz_defer *d);

/*
 * Answers every waiting request with EIO, refuses new ones and waits up to
 * WAIT_S seconds for running work to end. True when it ended and D is freed;
 * false when work is stuck (D stays, and so must what the work uses: the
 * process is about to exit).
 */
bool lz_defer_stop(struct lz_defer *d, double wait_s);

#endif
