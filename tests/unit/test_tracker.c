/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The eBPF tracker against real syscalls: opens, stats and execs from this
 * process and from forked children, under a temporary prefix. Needs root and
 * a kernel that lets BPF load; otherwise it skips (77).
 *
 * "Nothing was reported" is checked without sleeping: after the syscalls under
 * test, a sentinel open of a fresh key is made; the ring buffer is one FIFO,
 * so once the sentinel's event arrives every earlier event has too.
 */
#include "config.h"
#include "bpf/tracker.h"
#include "unit.h"

#include <bpf/bpf.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECS  256
#define MAX_PROGS 32

struct rec {
	char key[LZ_TRACKER_KEY_MAX + 1];
	struct lz_tracker_event ev;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t arrived = PTHREAD_COND_INITIALIZER;
static struct rec recs[MAX_RECS];
static int nrecs, overflow;

static char prefix[PATH_MAX], other[PATH_MAX], pin_root[PATH_MAX], pin_dir[PATH_MAX];
static char fuse_mnt[PATH_MAX];
static pid_t fuse_pid;
static struct lz_tracker *tracker;

static void on_miss(void *ctx, const char *key, const struct lz_tracker_event *ev)
{
	pthread_mutex_lock(&lock);
	if (nrecs < MAX_RECS) {
		snprintf(recs[nrecs].key, sizeof(recs[nrecs].key), "%s", key);
		recs[nrecs].ev = *ev;
		nrecs++;
	} else {
		overflow++;
	}
	pthread_cond_broadcast(&arrived);
	pthread_mutex_unlock(&lock);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Runs on failure too: the tracker, a FUSE mount, the temporary trees. */
static void cleanup(void)
{
	lz_tracker_close(tracker);
	tracker = NULL;
	if (fuse_pid > 0) {
		umount2(fuse_mnt, MNT_DETACH);
		kill(fuse_pid, SIGTERM);
		waitpid(fuse_pid, NULL, 0);
		fuse_pid = 0;
	}
	if (prefix[0])
		nftw(prefix, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (other[0])
		nftw(other, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (pin_root[0])
		nftw(pin_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_signal(int sig)
{
	cleanup();
	_exit(128 + sig);
}

static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);

	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
}

static void open_close(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
}

/*
 * Waits for the sentinel key's event and moves the events before it to out.
 * Returns their number, or -1 if the sentinel never came.
 */
static int sync_events(struct rec *out, int max)
{
	static int seq;
	char key[64], path[PATH_MAX];
	struct timespec deadline;
	int i, n = -1;

	snprintf(key, sizeof(key), "zz-sentinel-%d", seq++);
	pathf(path, "%s/%s", prefix, key);
	open_close(path);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&lock);
	for (;;) {
		for (i = 0; i < nrecs && n < 0; i++)
			if (strcmp(recs[i].key, key) == 0)
				n = i;
		if (n >= 0 || pthread_cond_timedwait(&arrived, &lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (n >= 0) {
		if (n > max)
			n = max;
		memcpy(out, recs, n * sizeof(*out));
	}
	nrecs = 0;
	pthread_mutex_unlock(&lock);
	lz_tracker_forget(tracker, key);
	if (n < 0)
		fprintf(stderr, "sentinel %s never arrived\n", key);
	return n;
}

/* The one event since the last sync, if there was exactly one. */
static bool one_event(struct rec *r)
{
	struct rec got[8];
	int n = sync_events(got, 8);

	if (n != 1) {
		fprintf(stderr, "expected one event, got %d%s%s\n", n, n > 0 ? ", first " : "",
			n > 0 ? got[0].key : "");
		return false;
	}
	*r = got[0];
	return true;
}

static int no_events(void)
{
	struct rec got[8];
	int n = sync_events(got, 8), i;

	for (i = 0; i < n; i++)
		fprintf(stderr, "unexpected event %s (%s)\n", got[i].key,
			lz_tracker_kind_name(got[i].ev.kind));
	return n == 0;
}

/* Runs fn in a child process and returns its pid once it has exited. */
static pid_t in_child(void (*fn)(const char *), const char *arg)
{
	pid_t pid = fork();

	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	CHECK(pid > 0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return pid;
}

static void burst(const char *path)
{
	for (int i = 0; i < 100000; i++)
		open_close(path);
}

static void do_execve(const char *path)
{
	char *argv[] = { (char *)path, NULL }, *envp[] = { NULL };

	execve(path, argv, envp);
	_exit(127);
}

static void do_execveat(const char *path)
{
	char *argv[] = { (char *)path, NULL }, *envp[] = { NULL };

	syscall(SYS_execveat, AT_FDCWD, path, argv, envp, 0);
	_exit(127);
}

static void do_fstatat(const char *path)
{
	struct stat st;

	syscall(SYS_newfstatat, AT_FDCWD, path, &st, 0);
}

static void do_statx(const char *path)
{
	struct statx stx;

	syscall(SYS_statx, AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx);
}

static void do_openat2(const char *path)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC };
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));

	if (fd >= 0)
		close((int)fd);
}

/* Everything here is outside the prefix, or relative: none of it may report. */
static void outside(const char *unused)
{
	char path[PATH_MAX];
	struct stat st;

	open_close("/etc/hostname");
	stat("/tmp", &st);
	do_statx("/etc");
	open_close(other);
	pathf(path, "%s/a/f", other);
	open_close(path);
	do_fstatat(path);
	do_statx(path);
	do_openat2(path);
	open_close(prefix); /* the prefix itself has no key */
	pathf(path, "%s/", prefix);
	open_close(path);
	if (chdir(prefix) == 0) {
		open_close("a/f");
		do_fstatat("b/f");
	}
	if (fork() == 0)
		do_execve("/bin/true");
	wait(NULL);
	pathf(path, "%s/e/true", other);
	do_execve(path);
}

static void test_events(void)
{
	struct lz_tracker_stats *st0 = calloc(1, sizeof(*st0)), *st = calloc(1, sizeof(*st));
	char path[PATH_MAX];
	struct rec r;
	pid_t pid;

	/* A cold open from another process: one event, its key and pid. */
	pathf(path, "%s/a/f", prefix);
	pid = in_child(open_close, path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "a");
	CHECK(r.ev.tgid == (uint32_t)pid && r.ev.kind == LZ_TRACKER_OPENAT);
	/* PENDING until the daemon says otherwise: silent. */
	open_close(path);
	CHECK(no_events());

	/* RESOLVED: hits, no events. */
	CHECK(lz_tracker_set_state(tracker, "a", LZ_TRACKER_RESOLVED) == 0);
	CHECK(lz_tracker_stats(tracker, st0) == 0);
	for (int i = 0; i < 10; i++)
		open_close(path);
	in_child(open_close, path);
	CHECK(no_events());
	CHECK(lz_tracker_stats(tracker, st) == 0);
	CHECK(st->hits - st0->hits == 11);

	/* Forgotten: reported again, this time from this process. */
	CHECK(lz_tracker_forget(tracker, "a") == 0);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "a");
	CHECK(r.ev.tgid == (uint32_t)getpid());
	CHECK(lz_tracker_forget(tracker, "a") == 0);
	CHECK(lz_tracker_forget(tracker, "a") == -ENOENT);

	/* A burst on one cold entry: one event, the rest suppressed. */
	CHECK(lz_tracker_stats(tracker, st0) == 0);
	pathf(path, "%s/b/f", prefix);
	in_child(burst, path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "b");
	CHECK(lz_tracker_stats(tracker, st) == 0);
	CHECK(st->suppressed - st0->suppressed == 99999);
	CHECK(st->events - st0->events == 2); /* and the sentinel's */

	/* ABSENT: silent as well. */
	CHECK(lz_tracker_set_state(tracker, "h", LZ_TRACKER_ABSENT) == 0);
	pathf(path, "%s/h/x", prefix);
	open_close(path);
	CHECK(no_events());

	in_child(outside, NULL);
	CHECK(no_events());
	free(st0);
	free(st);
}

static void test_kinds(void)
{
	static const struct {
		void (*fn)(const char *);
		const char *rel;
		enum lz_tracker_kind kind;
	} cases[] = {
		{ do_execve, "e/true", LZ_TRACKER_EXECVE },
		{ do_execveat, "e/true", LZ_TRACKER_EXECVEAT },
		{ do_fstatat, "e/true", LZ_TRACKER_FSTATAT },
		{ do_statx, "e/true", LZ_TRACKER_STATX },
		{ do_openat2, "e/true", LZ_TRACKER_OPENAT2 },
		{ do_statx, "e", LZ_TRACKER_STATX },
		{ open_close, "/e//true", LZ_TRACKER_OPENAT }, /* extra slashes are fine here */
	};
	char path[PATH_MAX];
	struct rec r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pathf(path, "%s/%s", prefix, cases[i].rel);
		in_child(cases[i].fn, path);
		CHECK(one_event(&r));
		CHECK_STR(r.key, "e");
		CHECK(r.ev.kind == cases[i].kind);
		if (r.ev.kind != cases[i].kind)
			fprintf(stderr, "case %zu: kind %s\n", i, lz_tracker_kind_name(r.ev.kind));
		lz_tracker_forget(tracker, "e");
	}
}

static void test_first_component_edges(void)
{
	struct lz_tracker_stats *st0 = calloc(1, sizeof(*st0)), *st = calloc(1, sizeof(*st));
	char path[PATH_MAX], longname[300];

	CHECK(lz_tracker_stats(tracker, st0) == 0);
	pathf(path, "%s/./a/f", prefix);
	open_close(path);
	pathf(path, "%s/../a/f", prefix);
	open_close(path);
	memset(longname, 'k', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	pathf(path, "%s/%s", prefix, longname);
	open_close(path);
	CHECK(no_events());
	CHECK(lz_tracker_stats(tracker, st) == 0);
	CHECK(st->skipped - st0->skipped == 2);
	CHECK(st->too_long - st0->too_long == 1);

	CHECK(lz_tracker_set_state(tracker, longname, LZ_TRACKER_RESOLVED) == -ENAMETOOLONG);
	CHECK(lz_tracker_set_state(tracker, "a", 7) == -EINVAL);
	CHECK(lz_tracker_add_mapped(tracker, "/abs") == -EINVAL);
	CHECK(lz_tracker_add_mapped(tracker, "trailing/") == -EINVAL);
	free(st0);
	free(st);
}

static void test_mapped(void)
{
	char path[PATH_MAX];
	struct rec r;

	CHECK(lz_tracker_add_mapped(tracker, "c/x") == 0);
	CHECK(lz_tracker_add_mapped(tracker, "c/x/y/deeper") == 0);
	pathf(path, "%s/c/x/y/f", prefix);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "c/x");
	/* The longest mapped path wins. */
	pathf(path, "%s/c/x/y/deeper/f", prefix);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "c/x/y/deeper");
	/* The mapped path itself, and a sibling that only shares its bytes. */
	lz_tracker_forget(tracker, "c/x");
	pathf(path, "%s/c/x", prefix);
	do_fstatat(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "c/x");
	pathf(path, "%s/c/xy/f", prefix);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "c");

	/* Cleared: back to the first component. */
	CHECK(lz_tracker_clear_mapped(tracker) == 0);
	lz_tracker_forget(tracker, "c");
	pathf(path, "%s/c/x/y/f", prefix);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "c");
	lz_tracker_forget(tracker, "c");
	lz_tracker_forget(tracker, "c/x");
	lz_tracker_forget(tracker, "c/x/y/deeper");
}

/* Program ids this process holds fds of, from /proc/self/fdinfo. */
static int our_progs(unsigned *ids, int max)
{
	DIR *d = opendir("/proc/self/fdinfo");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) != NULL && n < max) {
		char path[PATH_MAX], line[256];
		FILE *f;

		pathf(path, "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "prog_id: %u", &ids[n]) == 1 && n < max)
				n++;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* Whether a program of ours (named lz_*) still has this id, as `bpftool prog show` would. */
static bool prog_listed(unsigned id)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);
	bool ours;

	if (fd < 0)
		return false;
	memset(&info, 0, sizeof(info));
	ours = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && strncmp(info.name, "lz_", 3) == 0;
	close(fd);
	return ours;
}

static int open_tracker(enum lz_tracker_key_mode mode, char *err, size_t errlen)
{
	struct lz_tracker_config cfg = {
		.prefix = prefix,
		.mode = mode,
		.pin_dir = pin_dir,
		.on_miss = on_miss,
	};
	int rc = lz_tracker_open(&cfg, &tracker, err, errlen);

	if (rc == 0)
		rc = lz_tracker_start(tracker);
	return rc;
}

/* Closes the tracker and checks that it left nothing behind. */
static void close_tracker(unsigned *ids, int nids)
{
	struct stat st;

	lz_tracker_close(tracker);
	tracker = NULL;
	CHECK(stat(pin_dir, &st) != 0 && errno == ENOENT);
	CHECK(stat(pin_root, &st) != 0 && errno == ENOENT);
	for (int i = 0; i < nids; i++) {
		CHECK(!prog_listed(ids[i]));
		if (prog_listed(ids[i]))
			fprintf(stderr, "program %u still loaded\n", ids[i]);
	}
}

static void test_whole_path(void)
{
	unsigned ids[MAX_PROGS];
	char path[PATH_MAX], err[256];
	struct rec r;
	int nids;

	CHECK(open_tracker(LZ_TRACKER_WHOLE_PATH, err, sizeof(err)) == 0);
	if (!tracker) {
		fprintf(stderr, "whole-path tracker: %s\n", err);
		return;
	}
	nids = our_progs(ids, MAX_PROGS);
	pathf(path, "%s/b/file", prefix);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "b/file");
	lz_tracker_forget(tracker, "b/file");
	pathf(path, "%s//b/file", prefix); /* leading slashes are stripped */
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "b/file");
	/* Not normalized: skipped. */
	lz_tracker_forget(tracker, "b/file");
	pathf(path, "%s/b//file", prefix);
	open_close(path);
	pathf(path, "%s/b/./file", prefix);
	open_close(path);
	pathf(path, "%s/b/../b/file", prefix);
	open_close(path);
	pathf(path, "%s/b/", prefix);
	open_close(path);
	pathf(path, "%s/b/..", prefix);
	open_close(path);
	CHECK(no_events());
	/* Mapped paths win here too. */
	CHECK(lz_tracker_add_mapped(tracker, "c/x") == 0);
	pathf(path, "%s/c/x/y/f", prefix);
	open_close(path);
	CHECK(one_event(&r));
	CHECK_STR(r.key, "c/x");
	close_tracker(ids, nids);
}

static void test_pins(void)
{
	char path[PATH_MAX];
	struct stat st;

	pathf(path, "%s/resolved", pin_dir);
	CHECK(stat(path, &st) == 0);
	CHECK(stat(pin_dir, &st) == 0 && (st.st_mode & 0777) == 0700);
}

/*
 * FUSE statistics against a real mount: the lazyfs binary of this build
 * (LAZYFS_BIN), if the test environment names one.
 */
static void test_fuse_stats(void)
{
	struct lz_tracker_stats *st = calloc(1, sizeof(*st));
	const char *bin = getenv("LAZYFS_BIN");
	char under[PATH_MAX], path[PATH_MAX], log[PATH_MAX];
	struct stat mst, pst;
	uint64_t hist = 0;
	int i;

	CHECK(lz_tracker_stats(tracker, st) == 0);
	CHECK(st->fuse_connection == 0 && st->fuse_all.count == 0 && st->fuse_all.ended == 0);
	if (!st->fuse_available || !bin || access(bin, X_OK) != 0 || access("/dev/fuse", F_OK)) {
		printf("fuse statistics: not tested (no fuse tracepoints, LAZYFS_BIN or "
		       "/dev/fuse)\n");
		free(st);
		return;
	}
	pathf(under, "%s/fuse-under", other);
	pathf(fuse_mnt, "%s/fuse-mnt", other);
	pathf(log, "%s/fuse.log", other);
	CHECK(mkdir(under, 0755) == 0 && mkdir(fuse_mnt, 0755) == 0);
	pathf(path, "%s/f", under);
	touch(path);
	pathf(path, "%s/g", under);
	touch(path);
	CHECK(stat(fuse_mnt, &pst) == 0);
	fuse_pid = fork();
	if (fuse_pid == 0) {
		char opt[PATH_MAX + 16];
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd >= 0)
			dup2(fd, 2);
		snprintf(opt, sizeof(opt), "underlay=%s", under);
		execl(bin, bin, "-f", "-o", opt, fuse_mnt, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 500; i++) {
		if (stat(fuse_mnt, &mst) == 0 && mst.st_dev != pst.st_dev)
			break;
		usleep(10000);
	}
	CHECK(mst.st_dev != pst.st_dev && major(mst.st_dev) == 0);
	if (mst.st_dev == pst.st_dev) {
		fprintf(stderr, "lazyfs did not mount %s (see %s)\n", fuse_mnt, log);
		free(st);
		return;
	}
	/* Traffic before the connection is set is not counted. */
	pathf(path, "%s/f", fuse_mnt);
	open_close(path);
	CHECK(lz_tracker_stats(tracker, st) == 0);
	CHECK(st->fuse_all.count == 0);
	CHECK(lz_tracker_set_fuse_connection(tracker, minor(mst.st_dev)) == 0);
	pathf(path, "%s/missing", fuse_mnt);
	open_close(path); /* a negative LOOKUP */
	pathf(path, "%s/g", fuse_mnt);
	open_close(path);
	CHECK(lz_tracker_stats(tracker, st) == 0);
	CHECK(st->fuse_connection == minor(mst.st_dev));
	CHECK(st->fuse_ops[1].count >= 2); /* FUSE_LOOKUP: g, missing */
	CHECK(st->fuse_all.ended <= st->fuse_all.count && st->fuse_all.ended >= 2);
	for (i = 0; i < LZ_TRACKER_LAT_BUCKETS; i++)
		hist += st->fuse_all.hist[i];
	CHECK(hist == st->fuse_all.ended);
	CHECK(st->fuse_all.total_ns > 0);
	CHECK(lz_tracker_set_fuse_connection(tracker, 0) == 0);
	umount2(fuse_mnt, MNT_DETACH);
	waitpid(fuse_pid, NULL, 0);
	fuse_pid = 0;
	free(st);
}

int main(void)
{
	char path[PATH_MAX], err[256], tmpl[] = "/tmp/lztrk.XXXXXX";
	unsigned ids[MAX_PROGS];
	struct sigaction sa = { .sa_handler = on_signal };
	int rc, nids;

	if (geteuid() != 0) {
		printf("SKIP: the tracker test needs root\n");
		return 77;
	}
	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(prefix, sizeof(prefix), "%s", tmpl);
	pathf(other, "%s-other", prefix);
	pathf(pin_root, "/sys/fs/bpf/lztrk-test-%d", (int)getpid());
	pathf(pin_dir, "%s/maps", pin_root);
	atexit(cleanup);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (const char *const *d = (const char *const[]){ "a", "b", "c", "c/x", "c/x/y",
							   "c/x/y/deeper", "c/xy", "e", NULL };
	     *d; d++) {
		pathf(path, "%s/%s", prefix, *d);
		CHECK(mkdir(path, 0755) == 0);
	}
	CHECK(mkdir(other, 0755) == 0);
	pathf(path, "%s/a", other);
	CHECK(mkdir(path, 0755) == 0);
	pathf(path, "%s/e", other);
	CHECK(mkdir(path, 0755) == 0);
	for (const char *const *f =
		     (const char *const[]){ "a/f", "b/f", "b/file", "c/x/y/f", "c/xy/f", NULL };
	     *f; f++) {
		pathf(path, "%s/%s", prefix, *f);
		touch(path);
	}
	pathf(path, "%s/a/f", other);
	touch(path);
	pathf(path, "cp /bin/true %s/e/true && cp /bin/true %s/e/true", prefix, other);
	CHECK(system(path) == 0);

	struct lz_tracker_config bad = { .prefix = "relative" };
	CHECK(lz_tracker_open(&bad, &tracker, err, sizeof(err)) == -EINVAL && err[0]);
	bad.prefix = "/trailing/";
	CHECK(lz_tracker_open(&bad, &tracker, err, sizeof(err)) == -EINVAL && !tracker);

	rc = open_tracker(LZ_TRACKER_FIRST_COMPONENT, err, sizeof(err));
	if (rc == -EPERM || rc == -ENOTSUP) {
		printf("SKIP: BPF cannot load here: %s\n", err);
		return 77;
	}
	CHECK(rc == 0);
	if (rc != 0) {
		fprintf(stderr, "lz_tracker_open: %s\n", err);
		return unit_finish("test_tracker");
	}
	nids = our_progs(ids, MAX_PROGS);
	CHECK(nids >= 6);
	test_pins();
	test_events();
	test_kinds();
	test_first_component_edges();
	test_mapped();
	test_fuse_stats();

	struct lz_tracker_stats *st = calloc(1, sizeof(*st));
	CHECK(lz_tracker_stats(tracker, st) == 0 && st->lost == 0);
	free(st);
	CHECK(overflow == 0);
	close_tracker(ids, nids);

	test_whole_path();
	return unit_finish("test_tracker");
}
