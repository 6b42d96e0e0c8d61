/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The tracker's life cycle: load and attach the programs, run the thread that
 * hands ring buffer events to the daemon, and undo it all.
 */
#include "config.h"
#include "tracker_int.h"
#include "tracker_event.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <unistd.h>

#define TRACEFS		"/sys/kernel/tracing"
#define DEBUGFS_TRACING "/sys/kernel/debug/tracing"

_Static_assert(LZ_TRACKER_KEY_MAX == LZ_KEY_SIZE - 1, "key sizes");
_Static_assert(LZ_TRACKER_PREFIX_MAX + 2 <= LZ_PREFIX_MAX, "prefix and '/' fit the compare");
_Static_assert(LZ_TRACKER_FUSE_OPS == LZ_FUSE_OPS, "fuse slots");
_Static_assert(LZ_TRACKER_LAT_BUCKETS == LZ_LAT_BUCKETS, "histogram buckets");
_Static_assert((int)LZ_TRACKER_RESOLVED == LZ_STATE_RESOLVED &&
		       (int)LZ_TRACKER_ABSENT == LZ_STATE_ABSENT &&
		       (int)LZ_TRACKER_PENDING == LZ_STATE_PENDING,
	       "states");
_Static_assert((int)LZ_TRACKER_WHOLE_PATH == LZ_MODE_WHOLE_PATH &&
		       (int)LZ_TRACKER_FIRST_COMPONENT == LZ_MODE_FIRST_COMPONENT,
	       "modes");
_Static_assert((int)LZ_TRACKER_STATX == LZ_KIND_STATX && (int)LZ_TRACKER_OPENAT == LZ_KIND_OPENAT,
	       "kinds");

/* libbpf prints from the thread that calls it: keep its first complaint for err. */
static __thread char libbpf_msg[200];
static bool libbpf_debug;
static pthread_once_t print_once = PTHREAD_ONCE_INIT;

__attribute__((format(printf, 2, 0))) static int libbpf_print(enum libbpf_print_level level,
							      const char *fmt, va_list ap)
{
	size_t n;

	if (libbpf_debug)
		return vfprintf(stderr, fmt, ap);
	if (level != LIBBPF_WARN || libbpf_msg[0])
		return 0;
	vsnprintf(libbpf_msg, sizeof(libbpf_msg), fmt, ap);
	n = strcspn(libbpf_msg, "\n");
	libbpf_msg[n] = 0;
	return 0;
}

static void print_setup(void)
{
	const char *d = getenv("LAZYFS_BPF_DEBUG");

	libbpf_debug = d && *d && strcmp(d, "0") != 0;
	libbpf_set_print(libbpf_print);
}

int lz_tracker_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	n = strlen(err);
	if (libbpf_msg[0] && n + 4 < errlen)
		snprintf(err + n, errlen - n, " (%s)", libbpf_msg);
	return rc;
}

/* The word compare in under_prefix() wants PREFIX + '/' as masked words. */
static int set_prefix(struct lazyfs_bpf *skel, const char *prefix, char *err, size_t errlen)
{
	size_t len = prefix ? strlen(prefix) : 0;
	char bytes[LZ_PREFIX_MAX] = { 0 };
	__u32 nfull, tail, i;

	if (!prefix || prefix[0] != '/')
		return lz_tracker_fail(err, errlen, -EINVAL, "prefix must be an absolute path");
	if (len > 1 && prefix[len - 1] == '/')
		return lz_tracker_fail(err, errlen, -EINVAL, "prefix %s has a trailing slash",
				       prefix);
	if (len > LZ_TRACKER_PREFIX_MAX)
		return lz_tracker_fail(err, errlen, -ENAMETOOLONG, "prefix longer than %d bytes",
				       LZ_TRACKER_PREFIX_MAX);
	if (len == 1)
		len = 0; /* "/": every absolute path */
	memcpy(bytes, prefix, len);
	bytes[len++] = '/';
	nfull = len / 8;
	tail = len % 8;
	for (i = 0; i < LZ_PREFIX_WORDS; i++)
		memcpy((void *)&skel->rodata->pfx_words[i], bytes + i * 8, 8);
	skel->rodata->pfx_len = len;
	skel->rodata->pfx_nfull = nfull;
	/* Little-endian: the first `tail` bytes are the low ones. */
	skel->rodata->pfx_tailmask = tail ? (1ULL << (tail * 8)) - 1 : 0;
	return 0;
}

/* libbpf attaches tracepoints through tracefs; it is not mounted everywhere. */
static int ensure_tracefs(char *err, size_t errlen, bool *fuse_available)
{
	/* The same choice as libbpf's: debugfs's tracing dir when it exists. */
	const char *base = access(DEBUGFS_TRACING, F_OK) == 0 ? DEBUGFS_TRACING : TRACEFS;
	char path[128];

	snprintf(path, sizeof(path), "%s/events", base);
	if (access(path, F_OK) != 0 &&
	    mount("tracefs", TRACEFS, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		return lz_tracker_fail(err, errlen, -errno, "cannot mount tracefs on %s: %s",
				       TRACEFS, strerror(errno));
	snprintf(path, sizeof(path), "%s/events/syscalls/sys_enter_openat", base);
	if (access(path, F_OK) != 0)
		return lz_tracker_fail(
			err, errlen, -ENOTSUP,
			"no syscall tracepoints in %s/events (CONFIG_FTRACE_SYSCALLS)", base);
	snprintf(path, sizeof(path), "%s/events/fuse/fuse_request_send", base);
	*fuse_available = access(path, F_OK) == 0;
	return 0;
}

static int on_ring_event(void *ctx, void *data, size_t size)
{
	struct lz_tracker *t = ctx;
	struct lz_tracker_event ev;
	char key[LZ_TRACKER_KEY_MAX + 1];

	if (t->on_miss && lz_tracker_decode_event(data, size, key, &ev) == 0)
		t->on_miss(t->ctx, key, &ev);
	return 0;
}

/* Sleeps in epoll until events or the stop eventfd: no timeouts, no polling. */
static void *consume(void *arg)
{
	struct lz_tracker *t = arg;
	struct epoll_event evs[2];
	int i, n;

	for (;;) {
		n = epoll_wait(t->epoll_fd, evs, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		for (i = 0; i < n; i++)
			if (evs[i].data.fd == t->stop_fd)
				return NULL;
		ring_buffer__consume(t->rb);
	}
}

/* The ring buffer and the two fds the consumer sleeps on: made at open, so start cannot fail on
 * them. */
static int setup_consumer(struct lz_tracker *t, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN };

	t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.events), on_ring_event, t, NULL);
	if (!t->rb)
		return lz_tracker_fail(err, errlen, -errno, "ring buffer: %s", strerror(errno));
	t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (t->stop_fd < 0 || t->epoll_fd < 0)
		return lz_tracker_fail(err, errlen, -errno, "eventfd/epoll: %s", strerror(errno));
	ev.data.fd = t->stop_fd;
	if (epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, t->stop_fd, &ev) != 0)
		return lz_tracker_fail(err, errlen, -errno, "epoll_ctl: %s", strerror(errno));
	ev.data.fd = ring_buffer__epoll_fd(t->rb);
	if (epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0)
		return lz_tracker_fail(err, errlen, -errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

int lz_tracker_start(struct lz_tracker *t)
{
	sigset_t all, old;
	int rc;

	if (t->thread_started)
		return 0;
	/* Signals are the daemon's business, not this thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t->thread, NULL, consume, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	pthread_setname_np(t->thread, "lazyfs-bpf");
	t->thread_started = true;
	return 0;
}

static int load(struct lz_tracker *t, const struct lz_tracker_config *cfg, char *err, size_t errlen)
{
	int rc;

	t->skel = lazyfs_bpf__open();
	if (!t->skel)
		return lz_tracker_fail(err, errlen, -errno, "open the BPF object: %s",
				       strerror(errno));
	rc = set_prefix(t->skel, cfg->prefix, err, errlen);
	if (rc)
		return rc;
	t->skel->rodata->key_mode =
		cfg->mode == LZ_TRACKER_WHOLE_PATH ? LZ_MODE_WHOLE_PATH : LZ_MODE_FIRST_COMPONENT;
	if (cfg->max_keys)
		bpf_map__set_max_entries(t->skel->maps.resolved, cfg->max_keys);
	if (!t->fuse_available) {
		bpf_program__set_autoload(t->skel->progs.lz_fuse_send, false);
		bpf_program__set_autoload(t->skel->progs.lz_fuse_end, false);
	}
	rc = lazyfs_bpf__load(t->skel);
	if (rc == -EPERM || rc == -EACCES)
		return lz_tracker_fail(err, errlen, rc,
				       "loading BPF programs refused: %s (root with CAP_BPF and "
				       "CAP_PERFMON needed; kernel lockdown?)",
				       strerror(-rc));
	if (rc)
		return lz_tracker_fail(err, errlen, rc, "load BPF programs: %s", strerror(-rc));
	rc = lazyfs_bpf__attach(t->skel);
	if (rc)
		return lz_tracker_fail(err, errlen, rc, "attach BPF programs: %s", strerror(-rc));
	return 0;
}

/*
 * Whether this process may load tracepoint programs: CAP_SYS_ADMIN, or
 * CAP_BPF with CAP_PERFMON, in its effective set (/proc/self/status, so no
 * libcap here). Asked first, so the error names what is missing rather than
 * the first step that trips over it (tracefs, a map).
 */
static bool may_load_bpf(void)
{
	unsigned long long eff = 0;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return true; /* cannot tell: let the load say */
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> 21 & 1) || ((eff >> 39 & 1) && (eff >> 38 & 1));
}

int lz_tracker_open(const struct lz_tracker_config *cfg, struct lz_tracker **out, char *err,
		    size_t errlen)
{
	struct lz_tracker *t;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = 0;
	pthread_once(&print_once, print_setup);
	libbpf_msg[0] = 0;
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		return lz_tracker_fail(err, errlen, -ENOTSUP,
				       "the kernel has no BTF (/sys/kernel/btf/vmlinux)");
	if (!may_load_bpf())
		return lz_tracker_fail(err, errlen, -EPERM,
				       "loading it needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN "
				       "(run lazyfs as root, or use bpf=auto or bpf=off)");
	t = calloc(1, sizeof(*t));
	if (!t)
		return lz_tracker_fail(err, errlen, -ENOMEM, "out of memory");
	t->epoll_fd = t->stop_fd = -1;
	t->on_miss = cfg->on_miss;
	t->ctx = cfg->ctx;
	rc = ensure_tracefs(err, errlen, &t->fuse_available);
	if (!rc)
		rc = load(t, cfg, err, errlen);
	if (!rc && cfg->pin_dir)
		rc = lz_tracker_pin(t, cfg->pin_dir, err, errlen);
	if (!rc)
		rc = setup_consumer(t, err, errlen);
	if (rc) {
		lz_tracker_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

static void *destroy_link(void *arg)
{
	bpf_link__destroy(arg);
	return NULL;
}

/*
 * Each tracepoint link takes ~70 ms to go (the kernel waits for an RCU grace
 * period per detach); detached together they share one wait instead of eight.
 */
static void detach(struct lz_tracker *t)
{
	struct bpf_object_skeleton *s = t->skel->skeleton;
	pthread_t threads[16];
	bool started[16] = { false };
	int i, n = s->prog_cnt < 16 ? s->prog_cnt : 16;

	for (i = 0; i < n; i++) {
		struct bpf_link **link = s->progs[i].link;
		if (!*link)
			continue;
		started[i] = pthread_create(&threads[i], NULL, destroy_link, *link) == 0;
		if (!started[i])
			bpf_link__destroy(*link);
		*link = NULL;
	}
	for (i = 0; i < n; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
}

void lz_tracker_close(struct lz_tracker *t)
{
	uint64_t one = 1;

	if (!t)
		return;
	if (t->thread_started) {
		if (write(t->stop_fd, &one, sizeof(one)) != sizeof(one))
			pthread_cancel(t->thread); /* cannot happen with a fresh eventfd */
		pthread_join(t->thread, NULL);
	}
	ring_buffer__free(t->rb);
	if (t->epoll_fd >= 0)
		close(t->epoll_fd);
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	lz_tracker_unpin(t);
	if (t->skel)
		detach(t);
	lazyfs_bpf__destroy(t->skel);
	free(t);
}
