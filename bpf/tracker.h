/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The eBPF warm-path tracker: tells the daemon which entries under its prefix
 * are being opened, exec'd or stat'ed, before the kernel's FUSE LOOKUP does,
 * and counts FUSE requests of one connection. Knows nothing of FUSE itself.
 *
 * Keys are the relative entry names without a leading slash: "gcc-13" (first
 * component), "dir/file.mp4" (whole path), "a/b/c" (a mapped sub-path). Once a
 * key is reported it stays PENDING (silent) until the daemon marks it RESOLVED
 * or ABSENT (still silent) or forgets it (reported again on the next open).
 * Only absolute paths are seen; relative ones (dirfd-based, or after a chdir
 * into the prefix) are ignored.
 *
 * Built with --disable-bpf, every call returns -ENOTSUP (lz_tracker_open says
 * why in err) and lz_tracker_close does nothing.
 */
#ifndef LAZYFS_TRACKER_H
#define LAZYFS_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#define LZ_TRACKER_KEY_MAX     255 /* bytes in a key, without the NUL */
#define LZ_TRACKER_PREFIX_MAX  126 /* bytes in the prefix */
#define LZ_TRACKER_FUSE_OPS    64  /* opcodes >= this share the slot fuse_ops[64] */
#define LZ_TRACKER_LAT_BUCKETS 40  /* bucket i: [2^i, 2^(i+1)) ns, 0 also holds 0 */

enum lz_tracker_key_mode {
	LZ_TRACKER_FIRST_COMPONENT = 0, /* images=: "gcc-13" of PREFIX/gcc-13/bin/gcc */
	LZ_TRACKER_WHOLE_PATH = 1, /* objects, nested images trees: "dir/f.mp4"; paths with "//",
				      "." or ".." components are skipped, not normalized */
};

enum lz_tracker_state {
	LZ_TRACKER_PENDING = 1,
	LZ_TRACKER_RESOLVED = 2, /* opens count as hits */
	LZ_TRACKER_ABSENT = 3,	 /* opens count as suppressed: no such entry */
};

enum lz_tracker_kind {
	LZ_TRACKER_OPENAT = 0,
	LZ_TRACKER_OPENAT2 = 1,
	LZ_TRACKER_EXECVE = 2,
	LZ_TRACKER_EXECVEAT = 3,
	LZ_TRACKER_FSTATAT = 4,
	LZ_TRACKER_STATX = 5,
};

struct lz_tracker_event {
	uint64_t ktime_ns; /* CLOCK_MONOTONIC */
	uint32_t pid;	   /* thread */
	uint32_t tgid;	   /* process */
	enum lz_tracker_kind kind;
};

struct lz_tracker_config {
	const char *prefix; /* absolute, no trailing slash: "/opt/ce" */
	enum lz_tracker_key_mode mode;
	/* Where the maps are pinned for inspection (a directory this creates, 0700,
	   on bpffs, mounted at /sys/fs/bpf if needed); NULL: no pinning. */
	const char *pin_dir;
	unsigned max_keys; /* size of the LRU of known keys; 0: 16384 */
	/* Called on the tracker's thread (see lz_tracker_start), once per newly seen key; may call
	   lz_tracker_set_state/forget. NULL: events are consumed and dropped. */
	void (*on_miss)(void *ctx, const char *key, const struct lz_tracker_event *ev);
	void *ctx;
};

struct lz_tracker_fuse_op {
	uint64_t count;	 /* sent */
	uint64_t ended;	 /* answered (or aborted), and timed */
	uint64_t errors; /* answered with an error */
	uint64_t total_ns;
	uint64_t hist[LZ_TRACKER_LAT_BUCKETS];
};

/* About 22 KiB: allocate it, do not put it on a small stack. */
struct lz_tracker_stats {
	uint64_t hits;	     /* opens of RESOLVED keys */
	uint64_t suppressed; /* opens of PENDING or ABSENT keys */
	uint64_t events;     /* keys reported */
	uint64_t lost;	     /* reports dropped, ring buffer full (retried on the next open) */
	uint64_t too_long;   /* keys longer than LZ_TRACKER_KEY_MAX */
	uint64_t skipped;    /* WHOLE_PATH paths not normalized, "." / ".." first components */
	int fuse_available;  /* the kernel has the fuse request tracepoints */
	unsigned fuse_connection;
	struct lz_tracker_fuse_op fuse_ops[LZ_TRACKER_FUSE_OPS + 1]; /* by opcode */
	struct lz_tracker_fuse_op fuse_all;			     /* their sum */
};

struct lz_tracker;

/*
 * Loads and attaches the programs and pins the maps. Needs root (CAP_BPF,
 * CAP_PERFMON, CAP_SYS_ADMIN to mount bpffs/tracefs) and a kernel with BTF.
 * Returns 0, or -errno with a one-line reason in err. libbpf's messages are
 * dropped (LAZYFS_BPF_DEBUG=1 prints them to stderr). Misses are reported and
 * marked PENDING from here on, but they wait in the ring buffer until:
 */
int lz_tracker_open(const struct lz_tracker_config *cfg, struct lz_tracker **out, char *err,
		    size_t errlen);
/*
 * Starts the thread that calls on_miss: separate from open so a daemon can
 * open before it forks into the background (threads do not survive a fork;
 * the tracker's fds and mappings do). Once is enough; returns 0 or -errno.
 */
int lz_tracker_start(struct lz_tracker *t);

/*
 * These may be called from any thread, the consumer's included. Keys longer
 * than LZ_TRACKER_KEY_MAX give -ENAMETOOLONG.
 */
int lz_tracker_set_state(struct lz_tracker *t, const char *key, enum lz_tracker_state st);
/* Expiry or eviction: the next open reports the key again. -ENOENT if unknown. */
int lz_tracker_forget(struct lz_tracker *t, const char *key);
/* lz_tracker_forget of KEY and of every key below it ("KEY/..."): a walk of the whole map. */
int lz_tracker_forget_under(struct lz_tracker *t, const char *key);

/*
 * map= entries: an open under "a/b/c" at a component boundary has the key
 * "a/b/c" (the longest match wins over the mode's key). A reload clears and
 * re-adds them from one thread; keys already reported are kept (forget them).
 */
int lz_tracker_add_mapped(struct lz_tracker *t, const char *relpath);
int lz_tracker_clear_mapped(struct lz_tracker *t);

/* FUSE statistics for the mount whose st_dev minor this is; 0 turns them off. */
int lz_tracker_set_fuse_connection(struct lz_tracker *t, unsigned minor);

int lz_tracker_stats(struct lz_tracker *t, struct lz_tracker_stats *out);

/* Stops the thread, detaches, unpins (the pin dir goes too) and frees. NULL is fine. */
void lz_tracker_close(struct lz_tracker *t);
/*
 * Removes the pinned maps and the pin dir now, however far pinning got, while
 * the programs keep running until close or the process's exit. NULL is fine.
 */
void lz_tracker_unpin(struct lz_tracker *t);

const char *lz_tracker_kind_name(enum lz_tracker_kind kind);

#endif
