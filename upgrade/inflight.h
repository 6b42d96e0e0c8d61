/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Requests in flight, recorded in memory the keeper keeps across a worker's
 * crash (a memfd it stores like the connection), so that the worker it starts
 * next knows what was being served when the last one died. The kernel resends
 * those requests to it; one that was in flight at two crashes in a row (of
 * the worker's own: a SIGKILL is an operator's or the OOM killer's) is
 * poison: the next worker answers it EIO instead of serving it a third time,
 * so one request that crashes the worker cannot crash-loop the mount into
 * failing open. Answered once, it is forgiven, with one strike: should it be
 * in flight at a crash again, it is answered EIO after that single crash.
 *
 * A request is known by a signature of what the kernel resends unchanged:
 * its operation, node id and name. Recording costs one atomic exchange at
 * the start of a request and one store at its end.
 */
#ifndef LAZYFS_INFLIGHT_H
#define LAZYFS_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

struct lz_inflight;

/*
 * The record: the keeper's after a crash (KEPT_FD, consumed: what it holds is
 * judged now, poison logged), else a new one (KEPT_FD -1). KILLED: the worker
 * before was ended by SIGKILL, which is no request's doing (an operator, the
 * OOM killer): what was in flight is not held against it. NULL: out of memory
 * (recording is then off, every call below a no-op).
 */
struct lz_inflight *lz_inflight_open(int kept_fd, bool killed);
void lz_inflight_close(struct lz_inflight *f);
/* The memfd the keeper keeps (borrowed), or -1. */
int lz_inflight_fd(const struct lz_inflight *f);

/* The signature of operation OP (FUSE's opcode) on node NODEID with NAME (NULL: none). */
uint64_t lz_inflight_sig(unsigned op, uint64_t nodeid, const char *name);

#define LZ_INFLIGHT_POISON (-2) /* lz_inflight_enter: answer EIO, do not serve */
#define LZ_INFLIGHT_NONE   (-1) /* no slot was free: served, unrecorded */

/* Records SIG in flight: a slot for lz_inflight_leave, or one of the two above. */
int lz_inflight_enter(struct lz_inflight *f, uint64_t sig);
/* Its answer was sent. SLOT may be LZ_INFLIGHT_NONE. */
void lz_inflight_leave(struct lz_inflight *f, int slot);
/*
 * Source numbers (fscore/nodeid.h) the worker has taken: N is noted, and the
 * next worker after a crash reads what the dead one took (0 for a new record).
 */
void lz_inflight_note_sources(struct lz_inflight *f, unsigned n);
unsigned lz_inflight_sources(const struct lz_inflight *f);
/* Requests answered EIO as poison since start. */
unsigned long long lz_inflight_poisoned(const struct lz_inflight *f);

#endif
