/*
 * The daemon's side of the eBPF open tracker (bpf/tracker.h): early
 * resolution of cold entries and the resolved map kept in step with images
 * and objects. Every call is a no-op when the tracker is off.
 */
#ifndef LAZYFS_TRACK_H
#define LAZYFS_TRACK_H

#include <stdint.h>

#include "bpf/tracker.h"

struct lz_fs;

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
	struct lz_track_delays delays;
};

/*
 * Loads the tracker for MOUNTPOINT (before mounting and daemonizing) as
 * config->bpf says. 0 also when bpf=auto could not load it (logged once);
 * -1 when bpf=on could not, and the mount must fail.
 */
int lz_track_open(struct lz_fs *fs, const char *mountpoint);
/* After daemonizing: workers, ring-buffer thread, FUSE statistics for FUSE_MINOR (0: none). */
int lz_track_start(struct lz_fs *fs, unsigned fuse_minor);
void lz_track_close(struct lz_fs *fs);

/* NAME (an image's registry name or an object path) is resolved, or no longer. */
void lz_track_resolved(struct lz_fs *fs, const char *name);
void lz_track_forget(struct lz_fs *fs, const char *name);
/* The map file was (re)loaded: the tracker learns its nested entries. */
void lz_track_map_changed(struct lz_fs *fs);
/* The kernel looked image NAME up: closes its event-to-LOOKUP delay, if one is open. */
void lz_track_lookup_seen(struct lz_fs *fs, const char *name);

/* OUT is large (the FUSE latency histograms): allocate it. */
int lz_track_stats(struct lz_fs *fs, struct lz_track_stats *out);

/* "LOOKUP", "OPEN"... for a FUSE opcode; "OTHER" when unknown. */
const char *lz_fuse_opcode_name(unsigned op);

#endif
