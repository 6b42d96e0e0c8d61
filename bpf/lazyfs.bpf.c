/* SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only */
/*
 * The warm-path tracker: on every open, exec and stat of an absolute path
 * under the prefix, find the entry key and tell the daemon about keys it has
 * not seen, before the kernel's FUSE LOOKUP reaches it. Keys already known
 * (RESOLVED, or PENDING/ABSENT) cost a hash lookup and a per-CPU counter.
 *
 * Relative paths (dirfd-based, or after a chdir into the prefix) are ignored:
 * the program cannot resolve a dirfd or a cwd cheaply, and missing them only
 * costs the early start (FUSE LOOKUP still resolves the entry). So are paths
 * in user pages that are not present: the reads never fault.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "lazyfs_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Set by the loader before load: the prefix plus '/', as words with the last
 * partial word masked. Frozen .rodata is constant to the verifier, so the
 * compare loop below is verified for exactly the words it needs.
 */
const volatile __u64 pfx_words[LZ_PREFIX_WORDS] = { 0 };
const volatile __u64 pfx_tailmask = 0;
const volatile __u32 pfx_nfull = 0;
const volatile __u32 pfx_len = 0;
const volatile __u32 key_mode = LZ_MODE_FIRST_COMPONENT;

/* Written by the loader at any time through the mmapped .bss. */
__u32 fuse_dev = 0;    /* 0: no FUSE statistics */
__u32 have_mapped = 0; /* skip the LPM lookup while `mapped` is empty */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* the loader may change it */
	__type(key, struct lz_key);
	__type(value, __u32);
} resolved SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lz_lpm_key);
	__type(value, __u32);
} mapped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/*
	 * 4 MiB: ~15k events, 30 ms of a storm of distinct cold keys at 500k/s
	 * while the consumer waits for a CPU on a busy machine (1 MiB lost
	 * events under load).
	 */
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lz_counters);
} counters SEC(".maps");

struct scratch {
	char buf[LZ_PATH_BUF];
	struct lz_lpm_key lpm;
	struct lz_key key;
};

/* Too big for the 512-byte BPF stack; per-CPU is safe as programs do not nest. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LZ_FUSE_OPS + 1);
	__type(key, __u32);
	__type(value, struct lz_fuse_op);
} fuse_ops SEC(".maps");

/* Requests in flight by `unique`; a request whose end is never seen leaks one slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct lz_fuse_start);
} fuse_start SEC(".maps");

/*
 * The fast path, inlined into every program: read just the prefix and the next
 * byte and compare them as words. Everything else is in track().
 */
static __always_inline int under_prefix(const char *path)
{
	__u64 w[LZ_PREFIX_WORDS] = { 0 };
	__u32 i;

	if (bpf_probe_read_user(w, pfx_len, path))
		return 0;
	for (i = 0; i < LZ_PREFIX_WORDS; i++) {
		if (i >= pfx_nfull)
			break;
		if (w[i] != pfx_words[i])
			return 0;
	}
	if (pfx_tailmask) {
		i = pfx_nfull & (LZ_PREFIX_WORDS - 1);
		if ((w[i] & pfx_tailmask) != pfx_words[i])
			return 0;
	}
	return 1;
}

/* What one pass over the path after the prefix found (indices into buf). */
struct scan {
	struct scratch *s;
	__u32 mode;
	__s32 start;	 /* first byte after leading slashes */
	__s32 cstart;	 /* start of the current component */
	__s32 dots;	 /* leading dots of the current component */
	__s32 first_end; /* end of the first component, or -1 */
	__s32 end;	 /* the NUL, or -1 if the read was truncated */
	__u32 bad;	 /* an empty, "." or ".." component so far */
	__u32 first_bad; /* the first component is "." or ".." */
};

static long scan_char(__u32 i, void *ctx)
{
	struct scan *sc = ctx;
	char c = sc->s->buf[i & (LZ_PATH_BUF - 1)];
	__s32 clen;

	if (c == '/' && (__s32)i == sc->start) {
		sc->start++;
		sc->cstart++;
		return 0;
	}
	if (c != '/' && c != 0) {
		if (c == '.' && sc->dots == (__s32)i - sc->cstart)
			sc->dots++;
		return 0;
	}
	clen = (__s32)i - sc->cstart;
	if (clen == 0 && !(c == 0 && (__s32)i == sc->start))
		sc->bad = 1;
	if (clen > 0 && clen <= 2 && sc->dots == clen)
		sc->bad = 1;
	if (sc->first_end < 0) {
		sc->first_end = i;
		sc->first_bad = sc->bad;
	}
	if (c == 0) {
		sc->end = i;
		return 1;
	}
	if (sc->mode == LZ_MODE_FIRST_COMPONENT)
		return 1;
	sc->cstart = i + 1;
	sc->dots = 0;
	return 0;
}

static __noinline int track(__u64 path, __u32 kind)
{
	struct scan sc = { .first_end = -1, .end = -1, .mode = key_mode };
	__u32 zero = 0, pending = LZ_STATE_PENDING, key_len = 0, start, *val;
	struct lz_counters *cnt;
	struct lz_event *ev;
	struct scratch *s;
	__u64 id;
	long n;

	s = bpf_map_lookup_elem(&scratch, &zero);
	cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!s || !cnt)
		return 0;
	/* Starts after the prefix's '/': the rest of the path, maybe truncated. */
	n = bpf_probe_read_user_str(s->buf, sizeof(s->buf), (const char *)path + pfx_len);
	if (n <= 0)
		return 0;
	sc.s = s;
	bpf_loop(LZ_PATH_BUF, scan_char, &sc, 0);
	if (sc.start >= LZ_KEY_SIZE) {
		cnt->too_long++;
		return 0;
	}
	/* Clang knows these bounds and drops the masks the verifier needs: hide them. */
	start = sc.start;
	barrier_var(start);
	start &= LZ_KEY_SIZE - 1;
	if (have_mapped) {
		/* Bytes after the NUL cannot match: every entry ends in '/' or NUL. */
		s->lpm.prefixlen = LZ_KEY_SIZE * 8;
		bpf_probe_read_kernel(s->lpm.data, LZ_KEY_SIZE,
				      s->buf + (sc.start & (LZ_KEY_SIZE - 1)));
		val = bpf_map_lookup_elem(&mapped, &s->lpm);
		if (val)
			key_len = *val;
	}
	if (!key_len) {
		__s32 end = sc.mode == LZ_MODE_FIRST_COMPONENT ? sc.first_end : sc.end;
		__u32 bad = sc.mode == LZ_MODE_FIRST_COMPONENT ? sc.first_bad : sc.bad;

		if (end < 0) {
			cnt->too_long++;
			return 0;
		}
		if (bad) {
			cnt->skipped++;
			return 0;
		}
		key_len = end - (__s32)start;
	}
	if (key_len == 0)
		return 0;
	if (key_len >= LZ_KEY_SIZE) {
		cnt->too_long++;
		return 0;
	}
	barrier_var(key_len);
	key_len &= LZ_KEY_SIZE - 1;
	__builtin_memset(s->key.s, 0, sizeof(s->key.s));
	bpf_probe_read_kernel(s->key.s, key_len, s->buf + start);

	val = bpf_map_lookup_elem(&resolved, &s->key);
	if (val) {
		if (*val == LZ_STATE_RESOLVED)
			cnt->hits++;
		else
			cnt->suppressed++;
		return 0;
	}
	/* Only the CPU whose insert wins reports the key. */
	if (bpf_map_update_elem(&resolved, &s->key, &pending, BPF_NOEXIST)) {
		cnt->suppressed++;
		return 0;
	}
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		/* Unmark, so a later open reports the key again. */
		cnt->lost++;
		bpf_map_delete_elem(&resolved, &s->key);
		return 0;
	}
	id = bpf_get_current_pid_tgid();
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->pid = (__u32)id;
	ev->tgid = id >> 32;
	ev->kind = kind;
	ev->pad = 0;
	__builtin_memcpy(ev->key, s->key.s, sizeof(ev->key));
	bpf_ringbuf_submit(ev, 0);
	cnt->events++;
	return 0;
}

static __always_inline int on_path(unsigned long path, __u32 kind)
{
	if (under_prefix((const char *)path))
		track(path, kind);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int lz_openat(struct trace_event_raw_sys_enter *ctx)
{
	return on_path(ctx->args[1], LZ_KIND_OPENAT);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int lz_openat2(struct trace_event_raw_sys_enter *ctx)
{
	return on_path(ctx->args[1], LZ_KIND_OPENAT2);
}

SEC("tracepoint/syscalls/sys_enter_execve")
int lz_execve(struct trace_event_raw_sys_enter *ctx)
{
	return on_path(ctx->args[0], LZ_KIND_EXECVE);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int lz_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return on_path(ctx->args[1], LZ_KIND_EXECVEAT);
}

SEC("tracepoint/syscalls/sys_enter_newfstatat")
int lz_fstatat(struct trace_event_raw_sys_enter *ctx)
{
	return on_path(ctx->args[1], LZ_KIND_FSTATAT);
}

SEC("tracepoint/syscalls/sys_enter_statx")
int lz_statx(struct trace_event_raw_sys_enter *ctx)
{
	return on_path(ctx->args[1], LZ_KIND_STATX);
}

/*
 * The fuse tracepoints' records, relocated by CO-RE against the kernel's (or
 * the fuse module's) BTF, so vmlinux.h need not have them.
 */
enum fuse_opcode___lz { LZ_FUSE_OPCODE_ANY = 0x7fffffff };

struct trace_event_raw_fuse_request_send___lz {
	__u32 connection;
	__u64 unique;
	enum fuse_opcode___lz opcode;
} __attribute__((preserve_access_index));

struct trace_event_raw_fuse_request_end___lz {
	__u32 connection;
	__u64 unique;
	__s32 error;
} __attribute__((preserve_access_index));

static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r < LZ_LAT_BUCKETS ? r : LZ_LAT_BUCKETS - 1;
}

SEC("tracepoint/fuse/fuse_request_send")
int lz_fuse_send(struct trace_event_raw_fuse_request_send___lz *ctx)
{
	struct lz_fuse_start st = { 0 };
	__u32 dev = fuse_dev, op;
	struct lz_fuse_op *o;
	__u64 unique;

	if (!dev || ctx->connection != dev)
		return 0;
	op = ctx->opcode;
	unique = ctx->unique;
	st.slot = op < LZ_FUSE_OPS ? op : LZ_FUSE_OPS;
	st.ts = bpf_ktime_get_ns();
	o = bpf_map_lookup_elem(&fuse_ops, &st.slot);
	if (o)
		o->count++;
	bpf_map_update_elem(&fuse_start, &unique, &st, BPF_ANY);
	return 0;
}

SEC("tracepoint/fuse/fuse_request_end")
int lz_fuse_end(struct trace_event_raw_fuse_request_end___lz *ctx)
{
	__u32 dev = fuse_dev, slot;
	struct lz_fuse_start *st;
	struct lz_fuse_op *o;
	__u64 unique, ns;

	if (!dev || ctx->connection != dev)
		return 0;
	unique = ctx->unique;
	st = bpf_map_lookup_elem(&fuse_start, &unique);
	if (!st)
		return 0;
	ns = bpf_ktime_get_ns() - st->ts;
	slot = st->slot;
	bpf_map_delete_elem(&fuse_start, &unique);
	o = bpf_map_lookup_elem(&fuse_ops, &slot);
	if (!o)
		return 0;
	o->ended++;
	o->total_ns += ns;
	o->hist[log2_bucket(ns)]++;
	if (ctx->error)
		o->errors++;
	return 0;
}
