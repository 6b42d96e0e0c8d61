/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What lazyfs.bpf.c and the loader must agree on: sizes, enum values and the
 * layouts of map values and ring buffer events. The includer provides __u32 and
 * __u64 (vmlinux.h in the BPF program, <linux/types.h> in user space), so this
 * header includes nothing.
 */
#ifndef LAZYFS_BPF_H
#define LAZYFS_BPF_H

/* A key is a NUL-terminated, zero-padded string: at most LZ_KEY_SIZE - 1 bytes. */
#define LZ_KEY_SIZE 256
/* The prefix and its trailing '/' are compared as words from a stack buffer. */
#define LZ_PREFIX_MAX	128
#define LZ_PREFIX_WORDS (LZ_PREFIX_MAX / 8)
/* What is read of the path after the prefix; a power of two (index masks). */
#define LZ_PATH_BUF 512
/* FUSE opcodes below this have their own slot; the rest share the last one. */
#define LZ_FUSE_OPS 64
/* log2 buckets of latency in ns: bucket i holds [2^i, 2^(i+1)), bucket 0 also 0. */
#define LZ_LAT_BUCKETS 40

enum lz_state {
	LZ_STATE_PENDING = 1,
	LZ_STATE_RESOLVED = 2,
	LZ_STATE_ABSENT = 3,
};

enum lz_mode {
	LZ_MODE_FIRST_COMPONENT = 0,
	LZ_MODE_WHOLE_PATH = 1,
};

enum lz_kind {
	LZ_KIND_OPENAT = 0,
	LZ_KIND_OPENAT2 = 1,
	LZ_KIND_EXECVE = 2,
	LZ_KIND_EXECVEAT = 3,
	LZ_KIND_FSTATAT = 4,
	LZ_KIND_STATX = 5,
};

struct lz_key {
	char s[LZ_KEY_SIZE];
};

/* Per-CPU counters, summed by the loader. */
struct lz_counters {
	__u64 hits;	  /* key found RESOLVED */
	__u64 suppressed; /* key found PENDING or ABSENT */
	__u64 events;	  /* ring buffer events submitted */
	__u64 lost;	  /* ring buffer full: the PENDING mark was taken back */
	__u64 too_long;	  /* under the prefix, but the key does not fit */
	__u64 skipped;	  /* under the prefix, but "." / ".." / "//" in the key part */
};

struct lz_event {
	__u64 ktime_ns;
	__u32 pid;
	__u32 tgid;
	__u32 kind; /* enum lz_kind */
	__u32 pad;
	char key[LZ_KEY_SIZE];
};

/*
 * The `mapped` LPM trie: an entry "a/b/c" is stored twice, as "a/b/c/" and as
 * "a/b/c\0", so a match is always at a component boundary; the value is the
 * length of "a/b/c".
 */
struct lz_lpm_key {
	__u32 prefixlen; /* in bits */
	char data[LZ_KEY_SIZE];
};

struct lz_fuse_op {
	__u64 count; /* requests sent */
	__u64 ended; /* requests whose end was matched to their send */
	__u64 errors;
	__u64 total_ns;
	__u64 hist[LZ_LAT_BUCKETS];
};

struct lz_fuse_start {
	__u64 ts;
	__u32 slot;
	__u32 pad;
};

#endif
