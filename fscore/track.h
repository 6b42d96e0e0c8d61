/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The daemon's side of the eBPF open tracker (bpf/tracker.h): early
 * resolution of cold entries and the resolved map kept in step with images
 * and objects. Every call is a no-op when the tracker is off.
 */
#ifndef LAZYFS_TRACK_H
#define LAZYFS_TRACK_H

#include <stdbool.h>
#include <stdint.h>

#include "bpf/tracker.h"

struct lz_fs;
struct lz_track;

#define LZ_TRACK_DELAY_BUCKETS 24
#define LZ_TRACK_PIN_ROOT      "/sys/fs/bpf/lazyfs"

/* How long after the BPF event the kernel's LOOKUP of the same entry came. */
struct lz_track_delays {
	uint64_t count[LZ_TRACK_DELAY_BUCKETS]; /* bucket i: [2^i, 2^(i+1)) µs; 0 also < 1 µs */
	uint64_t total;
	uint64_t sum_ns;
};

struct lz_track_stats {
	struct lz_tracker_stats bpf;
	uint64_t early;	  /* entries resolved from an event */
	uint64_t absent;  /* events for entries with nothing to resolve */
	uint64_t dropped; /* events the queue had no room for */
	uint64_t ignored; /* events of processes that do not see the mount or may not search it */
	struct lz_track_delays delays;
};

/*
 * The tracker of FS's mount at MOUNTPOINT, as settings->bpf says: NULL for
 * bpf=off. bpf=on loads it now (before mounting and daemonizing): when it
 * cannot, NULL with *FAILED set, and the mount must fail. bpf=auto loads it
 * in the background once started, and goes without it (logged once) when
 * it cannot.
 */
struct lz_track *lz_track_open(struct lz_fs *fs, const char *mountpoint, bool *failed);
/* After daemonizing: workers, ring-buffer thread, FUSE statistics for FUSE_MINOR (0: none). */
int lz_track_start(struct lz_track *t, unsigned fuse_minor);
/*
 * Stops T (NULL is fine) and closes its tracker: true. From then on every
 * call below does nothing, also one already under way (lz_track_close waits
 * for it), but T stays allocated, for threads that may still hold it (the
 * control thread, work stuck on a store): lz_track_free it once none can.
 * False when a worker's resolve is stuck on a store that does not answer:
 * the maps are unpinned and T is left running, for the process's exit (the
 * caller must not free T or the core).
 */
bool lz_track_close(struct lz_track *t);
/* Frees T (closed) and the tracks retired on it; NULL is fine. */
void lz_track_free(struct lz_track *t);
/* Keeps closed T on the list *RETIRED, to be freed with it by lz_track_free. */
void lz_track_retire(struct lz_track **retired, struct lz_track *t);
/* Whether T is loaded and serving; every call below is a no-op until then. */
bool lz_track_loaded(struct lz_track *t);

/* NAME (an image's registry name or an object path) is resolved, or no longer. */
void lz_track_resolved(struct lz_track *t, const char *name);
void lz_track_forget(struct lz_track *t, const char *name);
/* The map file was (re)loaded: the tracker learns its nested entries. */
void lz_track_map_changed(struct lz_track *t);
/* The kernel looked image NAME up: closes its event-to-LOOKUP delay, if one is open. */
void lz_track_lookup_seen(struct lz_track *t, const char *name);

/* OUT is large (the FUSE latency histograms): allocate it. -ENOTSUP when not loaded. */
int lz_track_stats(struct lz_track *t, struct lz_track_stats *out);

/* "LOOKUP", "OPEN"... for a FUSE opcode; "OTHER" when unknown. */
const char *lz_fuse_opcode_name(unsigned op);

#endif
