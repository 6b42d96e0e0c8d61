/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The rclone fetcher against a real `rclone serve http` on 127.0.0.1 over a
 * generated tree: listings, stat, copies byte for byte, missing objects,
 * hostile paths, the rcd child killed between and during copies, a remote
 * that stops answering, parallel copies, and what the child can see of us.
 * Skipped (77) without rclone. LAZYFS_TEST_VERBOSE=1 shows the fetcher's log.
 */
#include "config.h"
#include "cache/rclone/rclone.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 2.0
#define BIG	  10000000

static char tmp[] = "/tmp/lazyfs-rclone.XXXXXX";
static char src[64], out[64];
static volatile pid_t serve_pid;
static unsigned serve_port;

/* Credentials of the current child, read from its environment, to check no log line has them. */
static char child_user[64], child_pass[128];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool leaked;
static unsigned warnings;
static unsigned child_port; /* from the fetcher's debug line */

static void test_log(void *ctx, enum lz_log_level level, const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	if ((child_user[0] && strstr(msg, child_user)) ||
	    (child_pass[0] && strstr(msg, child_pass)))
		leaked = true;
	if (level <= 1)
		warnings++;
	const char *serves = strstr(msg, ") serves on 127.0.0.1:");
	if (serves)
		child_port = (unsigned)strtoul(serves + 22, NULL, 10);
	if (getenv("LAZYFS_TEST_VERBOSE"))
		fprintf(stderr, "  log[%d]: %s\n", level, msg);
	pthread_mutex_unlock(&log_lock);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static void mk_file(const char *rel, size_t size)
{
	char *path = xasprintf("%s/%s", src, rel);
	char *data = malloc(size + 1);
	FILE *f = fopen(path, "we");

	for (size_t i = 0; i < size; i++)
		data[i] = (char)(rnd() >> 56);
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	free(data);
	free(path);
}

static void mk_dir(const char *rel)
{
	char *path = xasprintf("%s/%s", src, rel);

	if (mkdir(path, 0755) != 0)
		abort();
	free(path);
}

static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "re"), *fb = fopen(b, "re");
	bool same = fa && fb;
	char ba[65536], bb[65536];

	while (same) {
		size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);

		same = na == nb && memcmp(ba, bb, na) == 0;
		if (na == 0)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/* Copies PATH of the remote to OUT/LOCAL and compares it with the source. */
static int copy_and_compare(struct lz_rclone *rc, const char *path, const char *local)
{
	char err[512];
	char *dst = xasprintf("%s/%s", out, local), *orig = xasprintf("%s/%s", src, path);
	int ret = lz_rclone_copy(rc, path, dst, err, sizeof(err));

	if (ret != 0)
		fprintf(stderr, "copy %s: %d %s\n", path, ret, err);
	else if (!same_file(orig, dst))
		ret = -EBADMSG;
	free(dst);
	free(orig);
	return ret;
}

/* Names starting with ".lzrc." left in OUT: a copy that did not clean up. */
static int leftovers(void)
{
	DIR *d = opendir(out);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) != NULL)
		n += strncmp(e->d_name, ".lzrc.", 6) == 0;
	if (d)
		closedir(d);
	return n;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

static void stop_serve(void)
{
	pid_t pid = serve_pid;

	if (pid > 0) {
		kill(pid, SIGCONT);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		serve_pid = 0;
	}
}

static void cleanup(void)
{
	stop_serve();
	nftw(tmp, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static void watchdog(int sig)
{
	(void)sig;
	static const char msg[] = "test_rclone: watchdog expired\n";

	if (serve_pid > 0)
		kill(serve_pid, SIGKILL);
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* exiting anyway */
	}
	_exit(1);
}

static unsigned free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool can_connect(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * `rclone serve http SRC` on a free loopback port. Another process can take
 * the port between our probe and rclone's bind: then rclone exits and we try
 * another.
 */
static bool start_serve(void)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		unsigned port = free_port();
		char addr[32], *log = xasprintf("%s/serve.log", tmp);
		pid_t pid;

		snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
		pid = fork();
		if (pid == 0) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fd >= 0)
				dup2(fd, 2);
			setenv("RCLONE_CONFIG", "/dev/null", 1);
			execlp("rclone", "rclone", "serve", "http", src, "--addr", addr,
			       (char *)NULL);
			_exit(127);
		}
		free(log);
		if (pid < 0)
			return false;
		serve_pid = pid;
		for (int i = 0; i < 200; i++) {
			if (can_connect(port)) {
				serve_port = port;
				return true;
			}
			if (waitpid(pid, NULL, WNOHANG) == pid)
				break;
			sleep_ms(50);
		}
		stop_serve();
	}
	return false;
}

/* RCLONE_RC_USER and RCLONE_RC_PASS of PID, as root can read them. */
static void read_credentials(pid_t pid)
{
	char path[64], buf[65536];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* The supervisor thread's log lines are checked against them meanwhile. */
	pthread_mutex_lock(&log_lock);
	for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
		if (strncmp(p, "RCLONE_RC_USER=", 15) == 0)
			snprintf(child_user, sizeof(child_user), "%s", p + 15);
		if (strncmp(p, "RCLONE_RC_PASS=", 15) == 0)
			snprintf(child_pass, sizeof(child_pass), "%s", p + 15);
	}
	pthread_mutex_unlock(&log_lock);
}

static const struct lz_rclone_entry *find(const struct lz_rclone_entry *e, size_t n,
					  const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	}
	return NULL;
}

static struct lz_rclone *new_fetcher(const char *remote, unsigned retries, unsigned parallel)
{
	struct lz_rclone_options opts = {
		.timeout_s = TIMEOUT_S,
		.retries = retries,
		.max_parallel = parallel,
		.log = test_log,
	};
	char err[256];
	struct lz_rclone *rc = lz_rclone_new(remote, &opts, err, sizeof(err));

	if (rc == NULL)
		fprintf(stderr, "lz_rclone_new: %s\n", err);
	return rc;
}

static void test_new_errors(void)
{
	struct lz_rclone_options opts = { .rclone_bin = "/nonexistent/rclone" };
	char err[256] = "";

	CHECK(lz_rclone_new("", NULL, err, sizeof(err)) == NULL && err[0] != '\0');
	CHECK(lz_rclone_new("a:\nb", NULL, err, sizeof(err)) == NULL);
	err[0] = '\0';
	CHECK(lz_rclone_new("x:", &opts, err, sizeof(err)) == NULL && strstr(err, "not found"));
	lz_rclone_free(NULL);
}

static void test_listing(struct lz_rclone *rc)
{
	struct lz_rclone_entry *e = NULL, st;
	const struct lz_rclone_entry *x;
	size_t n = 0;
	char err[512];

	CHECK(lz_rclone_list(rc, "", &e, &n, err, sizeof(err)) == 0);
	CHECK(n == 7);
	CHECK((x = find(e, n, "big file.bin")) && x->size == BIG && !x->is_dir && x->hash == NULL);
	CHECK((x = find(e, n, "small.txt")) && x->size == 13 && !x->is_dir);
	CHECK((x = find(e, n, "empty")) && x->size == 0 && !x->is_dir);
	CHECK((x = find(e, n, "é ü 日本.txt")) && x->size == 6);
	CHECK((x = find(e, n, "sub")) && x->is_dir && x->size == 0);
	CHECK((x = find(e, n, "sub dir with space")) && x->is_dir);
	CHECK((x = find(e, n, "mid.bin")) && x->size == 1048576 && x->mtime.tv_sec > 1600000000);
	lz_rclone_entries_free(e, n);

	CHECK(lz_rclone_list(rc, "sub", &e, &n, err, sizeof(err)) == 0);
	CHECK(n == 2 && find(e, n, "a") && find(e, n, "deeper") && find(e, n, "deeper")->is_dir);
	lz_rclone_entries_free(e, n);
	CHECK(lz_rclone_list(rc, "sub/deeper", &e, &n, err, sizeof(err)) == 0);
	CHECK(n == 1 && find(e, n, "b c") && find(e, n, "b c")->size == 3);
	lz_rclone_entries_free(e, n);

	CHECK(lz_rclone_list(rc, "nosuch", &e, &n, err, sizeof(err)) == -ENOENT);
	CHECK(e == NULL && n == 0);

	CHECK(lz_rclone_stat(rc, "big file.bin", &st, err, sizeof(err)) == 0);
	CHECK_STR(st.name, "big file.bin");
	CHECK(st.size == BIG && !st.is_dir);
	lz_rclone_entry_clear(&st);
	CHECK(lz_rclone_stat(rc, "sub/deeper", &st, err, sizeof(err)) == 0);
	CHECK(st.is_dir && st.name && strcmp(st.name, "deeper") == 0);
	lz_rclone_entry_clear(&st);
	CHECK(lz_rclone_stat(rc, "", &st, err, sizeof(err)) == 0);
	CHECK(st.is_dir && st.name && st.name[0] == '\0');
	lz_rclone_entry_clear(&st);
	CHECK(lz_rclone_stat(rc, "nosuch", &st, err, sizeof(err)) == -ENOENT);
	CHECK(lz_rclone_stat(rc, "sub/nosuch", &st, err, sizeof(err)) == -ENOENT);
}

static void test_copies(struct lz_rclone *rc)
{
	char err[512], *dst;

	CHECK(copy_and_compare(rc, "small.txt", "small.txt") == 0);
	CHECK(copy_and_compare(rc, "empty", "empty") == 0);
	CHECK(copy_and_compare(rc, "big file.bin", "big file.bin") == 0);
	CHECK(copy_and_compare(rc, "é ü 日本.txt", "ünï cødé ／ 名前.txt") == 0);
	CHECK(copy_and_compare(rc, "sub/deeper/b c", "b c") == 0);
	CHECK(copy_and_compare(rc, "sub dir with space/x", "x") == 0);
	/* Replacing an existing file. */
	CHECK(copy_and_compare(rc, "mid.bin", "small.txt") == 0);

	dst = xasprintf("%s/missing", out);
	CHECK(lz_rclone_copy(rc, "nosuch", dst, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "nosuch") != NULL);
	CHECK(access(dst, F_OK) != 0);
	CHECK(lz_rclone_copy(rc, "sub", dst, err, sizeof(err)) == -ENOENT);
	CHECK(access(dst, F_OK) != 0);
	free(dst);
	CHECK(leftovers() == 0);
}

/* Range reads from the child's rc-serve (streamed objects), collected in memory. */
struct collect {
	char *buf;
	size_t len, cap, stop_after;
};

static bool collect(void *ctx, const char *data, size_t len)
{
	struct collect *c = ctx;

	if (data == NULL)
		return true;
	if (c->stop_after > 0 && c->len >= c->stop_after)
		return false;
	if (c->len + len > c->cap)
		return false;
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	return true;
}

/* Whether LEN bytes of REL at OFF are what the reader got. */
static bool same_range(const char *rel, uint64_t off, const struct collect *c, size_t len)
{
	char *path = xasprintf("%s/%s", src, rel), *want = malloc(len ? len : 1);
	int fd = open(path, O_RDONLY);
	bool same = fd >= 0 && want != NULL && c->len == len &&
		    pread(fd, want, len, (off_t)off) == (ssize_t)len &&
		    memcmp(want, c->buf, len) == 0;

	if (fd >= 0)
		close(fd);
	free(want);
	free(path);
	return same;
}

static void test_reads(const char *remote)
{
	struct lz_rclone_options opts = { .timeout_s = TIMEOUT_S, .log = test_log, .serve = true };
	struct collect c = { .cap = BIG };
	char err[512];
	struct lz_rclone *rc = lz_rclone_new(remote, &opts, err, sizeof(err));
	struct lz_rclone *plain = new_fetcher(remote, 1, 1);

	CHECK(rc != NULL && plain != NULL);
	if (rc == NULL || plain == NULL)
		return;
	c.buf = malloc(c.cap);
	CHECK(lz_rclone_read(rc, "big file.bin", 0, BIG, collect, &c, err, sizeof(err)) == 0);
	CHECK(same_range("big file.bin", 0, &c, BIG));
	c.len = 0;
	CHECK(lz_rclone_read(rc, "big file.bin", BIG - 70000, 70000, collect, &c, err,
			     sizeof(err)) == 0);
	CHECK(same_range("big file.bin", BIG - 70000, &c, 70000));
	c.len = 0;
	CHECK(lz_rclone_read(rc, "sub dir with space/x", 10, 90, collect, &c, err, sizeof(err)) ==
	      0);
	CHECK(same_range("sub dir with space/x", 10, &c, 90));
	c.len = 0;
	CHECK(lz_rclone_read(rc, "é ü 日本.txt", 0, 6, collect, &c, err, sizeof(err)) == 0);
	CHECK(same_range("é ü 日本.txt", 0, &c, 6));
	c.len = 0;
	CHECK(lz_rclone_read(rc, "nothing.bin", 0, 10, collect, &c, err, sizeof(err)) == -ENOENT);
	/* A sink that stops: the read ends there. */
	c.len = 0;
	c.stop_after = 65536;
	CHECK(lz_rclone_read(rc, "big file.bin", 0, BIG, collect, &c, err, sizeof(err)) ==
	      -ECANCELED);
	CHECK(c.len >= 65536 && c.len < BIG);
	/* More than the object holds: never short data reported as whole. */
	c.len = 0;
	c.stop_after = 0;
	CHECK(lz_rclone_read(rc, "mid.bin", 1048000, 4096, collect, &c, err, sizeof(err)) != 0);
	/* Without serve, the child serves nothing. */
	CHECK(lz_rclone_read(plain, "mid.bin", 0, 10, collect, &c, err, sizeof(err)) == -EINVAL);
	free(c.buf);
	lz_rclone_free(rc);
	lz_rclone_free(plain);
}

static void test_hostile(struct lz_rclone *rc)
{
	static const char *const bad[] = {
		"../x", "/etc/passwd", "a//b", "a/./b", "sub/..",
		"sub/", ".",	       "..",   "a\nb",	"x/../../y",
	};
	struct lz_rclone_entry *e = NULL, st;
	size_t n = 0;
	char err[512], *dst = xasprintf("%s/h", out);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(lz_rclone_list(rc, bad[i], &e, &n, err, sizeof(err)) == -EINVAL);
		CHECK(lz_rclone_stat(rc, bad[i], &st, err, sizeof(err)) == -EINVAL);
		CHECK(lz_rclone_copy(rc, bad[i], dst, err, sizeof(err)) == -EINVAL);
	}
	CHECK(lz_rclone_copy(rc, "", dst, err, sizeof(err)) == -EINVAL);
	CHECK(lz_rclone_copy(rc, "small.txt", "relative/file", err, sizeof(err)) == -EINVAL);
	CHECK(lz_rclone_copy(rc, "small.txt", "/tmp/../etc/x", err, sizeof(err)) == -EINVAL);
	CHECK(lz_rclone_copy(rc, "small.txt", "/tmp/dir/", err, sizeof(err)) == -EINVAL);
	CHECK(lz_rclone_copy(rc, "small.txt", "/tmp/bad\xff\xfe", err, sizeof(err)) == -EINVAL);
	CHECK(lz_rclone_copy(rc, "small.txt", "/tmp/quote\xe2\x80\x9bx", err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "U+201B") != NULL);
	CHECK(lz_rclone_copy(rc, "small.txt", "/tmp/nul\xe2\x90\x80x", err, sizeof(err)) ==
	      -EINVAL);
	CHECK(access(dst, F_OK) != 0);
	free(dst);
}

/* The child: a pipe for stdout and stderr, none of our descriptors, no secrets in argv. */
static void test_child(pid_t pid, const char *marker)
{
	char path[64], link[512], cmdline[4096];
	struct dirent *e;
	bool inherited = false;
	DIR *d;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	CHECK(d != NULL);
	while (d && (e = readdir(d)) != NULL) {
		char fdpath[600];

		snprintf(fdpath, sizeof(fdpath), "%s/%s", path, e->d_name);
		n = readlink(fdpath, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, marker) == 0)
			inherited = true;
		if (strcmp(e->d_name, "1") == 0 || strcmp(e->d_name, "2") == 0)
			CHECK(strncmp(link, "pipe:", 5) == 0);
	}
	if (d)
		closedir(d);
	CHECK(!inherited);

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;
	if (fd >= 0)
		close(fd);
	CHECK(n > 0);
	if (n > 0) {
		for (ssize_t i = 0; i < n; i++)
			cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
		cmdline[n] = '\0';
		CHECK(strstr(cmdline, "--rc-addr=127.0.0.1:0") != NULL);
		CHECK(strstr(cmdline, "rc-pass") == NULL && strstr(cmdline, "rc-user") == NULL);
		CHECK(strstr(cmdline, "rc-no-auth=false") != NULL);
	}
	read_credentials(pid);
	CHECK(strlen(child_user) == 32 && strlen(child_pass) == 64);
}

/* The status code the child answers a call with AUTH ("" for none), 0 if none. */
static int http_status(unsigned port, const char *auth)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = 0;
	char req[256], reply[256];
	ssize_t n;

	snprintf(req, sizeof(req),
		 "POST /operations/list HTTP/1.0\r\nContent-Type: application/json\r\n%s"
		 "Content-Length: 26\r\n\r\n{\"fs\":\"/\",\"remote\":\"etc\"}",
		 auth);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, strlen(req)) == (ssize_t)strlen(req) &&
	    (n = read(fd, reply, sizeof(reply) - 1)) > 12) {
		reply[n] = '\0';
		sscanf(reply, "HTTP/%*s %d", &status);
	}
	if (fd >= 0)
		close(fd);
	return status;
}

static void test_auth(void)
{
	CHECK(child_port > 0);
	CHECK(http_status(child_port, "") == 401);
	/* "x:y" */
	CHECK(http_status(child_port, "Authorization: Basic eDp5\r\n") == 401);
}

static void test_restart_between(struct lz_rclone *rc)
{
	pid_t pid = lz_rclone_child_pid(rc), pid2;

	CHECK(pid > 0);
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	CHECK(copy_and_compare(rc, "mid.bin", "after-kill.bin") == 0);
	pid2 = lz_rclone_child_pid(rc);
	CHECK(pid2 > 0 && pid2 != pid);
	/* Again, with a listing first. */
	kill(pid2, SIGKILL);
	struct lz_rclone_entry *e;
	size_t n;
	char err[512];
	CHECK(lz_rclone_list(rc, "sub", &e, &n, err, sizeof(err)) == 0 && n == 2);
	if (n)
		lz_rclone_entries_free(e, n);
	CHECK(lz_rclone_child_pid(rc) > 0 && lz_rclone_child_pid(rc) != pid2);

	/* Wedged: alive but silent. The timed-out call finds it so, replaces it and retries. */
	pid = lz_rclone_child_pid(rc);
	kill(pid, SIGSTOP);
	double t0 = now_s();
	CHECK(copy_and_compare(rc, "small.txt", "after-stop.txt") == 0);
	fprintf(stderr, "  copy through a stopped rcd: %.1fs\n", now_s() - t0);
	CHECK(lz_rclone_child_pid(rc) != pid);
	pid = lz_rclone_child_pid(rc);
	kill(pid, SIGSTOP);
	t0 = now_s();
	CHECK(lz_rclone_list(rc, "sub", &e, &n, err, sizeof(err)) == 0 && n == 2);
	fprintf(stderr, "  list through a stopped rcd: %.1fs\n", now_s() - t0);
	if (n)
		lz_rclone_entries_free(e, n);
	CHECK(kill(pid, 0) != 0); /* killed and reaped */
}

struct copy_job {
	struct lz_rclone *rc;
	const char *path;
	char local[256];
	int ret;
	double took;
	char err[512];
	bool done;
};

static void *copy_thread(void *arg)
{
	struct copy_job *job = arg;
	char *dst = xasprintf("%s/%s", out, job->local);
	double t0 = now_s();

	job->ret = lz_rclone_copy(job->rc, job->path, dst, job->err, sizeof(job->err));
	job->took = now_s() - t0;
	free(dst);
	__atomic_store_n(&job->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* With a bandwidth limit the 10 MB copy takes over a second: long enough to kill it midway. */
static void test_kill_during_copy(const char *remote)
{
	struct lz_rclone *rc;
	struct copy_job job = { .path = "big file.bin", .local = "killed-once.bin" };
	pthread_t t;
	pid_t first = 0;
	char *dst;

	setenv("RCLONE_BWLIMIT", "6M", 1);
	rc = new_fetcher(remote, 3, 2);
	unsetenv("RCLONE_BWLIMIT");
	CHECK(rc != NULL);
	if (rc == NULL)
		return;
	job.rc = rc;
	pthread_create(&t, NULL, copy_thread, &job);
	for (int i = 0; i < 100 && first <= 0; i++) {
		sleep_ms(20);
		first = lz_rclone_child_pid(rc);
	}
	sleep_ms(600); /* partway through */
	CHECK(!__atomic_load_n(&job.done, __ATOMIC_ACQUIRE));
	if (first > 0)
		kill(first, SIGKILL);
	pthread_join(t, NULL);
	if (job.ret != 0)
		fprintf(stderr, "copy after kill: %s\n", job.err);
	CHECK(job.ret == 0);
	{
		char *a = xasprintf("%s/big file.bin", src),
		     *b = xasprintf("%s/%s", out, job.local);
		CHECK(same_file(a, b));
		free(a);
		free(b);
	}
	CHECK(lz_rclone_child_pid(rc) != first);

	/* Killed again and again: the call must give up, with nothing at the destination. */
	struct copy_job job2 = { .rc = rc, .path = "big file.bin", .local = "killed-always.bin" };
	pthread_create(&t, NULL, copy_thread, &job2);
	while (!__atomic_load_n(&job2.done, __ATOMIC_ACQUIRE)) {
		pid_t pid = lz_rclone_child_pid(rc);

		sleep_ms(150);
		if (pid > 0)
			kill(pid, SIGKILL);
	}
	pthread_join(t, NULL);
	CHECK(job2.ret == -EIO);
	CHECK(strstr(job2.err, "tries") != NULL);
	fprintf(stderr, "  always killed: %d after %.1fs: %s\n", job2.ret, job2.took, job2.err);
	dst = xasprintf("%s/%s", out, job2.local);
	CHECK(access(dst, F_OK) != 0);
	free(dst);
	lz_rclone_free(rc);
	CHECK(leftovers() == 0);
}

static void test_stalled_remote(struct lz_rclone *rc)
{
	struct lz_rclone_entry *e = NULL;
	size_t n = 0;
	char err[512], *dst = xasprintf("%s/stalled.bin", out);
	double t0;
	int ret;

	kill(serve_pid, SIGSTOP);
	t0 = now_s();
	ret = lz_rclone_copy(rc, "mid.bin", dst, err, sizeof(err));
	fprintf(stderr, "  stalled copy: %d after %.1fs: %s\n", ret, now_s() - t0, err);
	CHECK(ret == -ETIMEDOUT);
	CHECK(now_s() - t0 < TIMEOUT_S + 2.5);
	CHECK(strstr(err, "no progress") != NULL && strstr(err, "mid.bin") != NULL);
	CHECK(access(dst, F_OK) != 0);

	t0 = now_s();
	ret = lz_rclone_list(rc, "sub dir with space", &e, &n, err, sizeof(err));
	fprintf(stderr, "  stalled list: %d after %.1fs: %s\n", ret, now_s() - t0, err);
	CHECK(ret == -ETIMEDOUT);
	CHECK(now_s() - t0 < TIMEOUT_S + 2.5);

	kill(serve_pid, SIGCONT);
	CHECK(copy_and_compare(rc, "mid.bin", "stalled.bin") == 0);
	free(dst);
	CHECK(leftovers() == 0);
}

static void test_parallel(struct lz_rclone *rc)
{
	static const char *const paths[] = { "small.txt", "mid.bin",	 "big file.bin",
					     "sub/a",	  "empty",	 "sub/deeper/b c",
					     "mid.bin",	  "é ü 日本.txt" };
	struct copy_job jobs[8];
	pthread_t t[8];

	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct copy_job){ .rc = rc, .path = paths[i] };
		snprintf(jobs[i].local, sizeof(jobs[i].local), "parallel-%d", i);
		pthread_create(&t[i], NULL, copy_thread, &jobs[i]);
	}
	for (int i = 0; i < 8; i++) {
		char *a = xasprintf("%s/%s", src, paths[i]),
		     *b = xasprintf("%s/%s", out, jobs[i].local);

		pthread_join(t[i], NULL);
		CHECK(jobs[i].ret == 0 && same_file(a, b));
		free(a);
		free(b);
	}
}

/* What one 10 MB copy costs through the running child (DESIGN.md: 11-28 ms). */
static void measure(struct lz_rclone *rc)
{
	double best = 1e9, total = 0;
	char err[512], *dst = xasprintf("%s/measure.bin", out);
	const int runs = 10;

	for (int i = 0; i < runs; i++) {
		double t0 = now_s(), dt;

		CHECK(lz_rclone_copy(rc, "big file.bin", dst, err, sizeof(err)) == 0);
		dt = now_s() - t0;
		total += dt;
		best = dt < best ? dt : best;
	}
	printf("test_rclone: 10 MB copy through rcd: best %.1f ms, mean %.1f ms\n", best * 1e3,
	       total / runs * 1e3);
	free(dst);
}

/* ------------------------------------------------------------------ */
/* A fake rcd: this program run as "rclone rcd", answering every call   */
/* with the status and body in the file $LZ_FAKE_RCD (first line: the   */
/* status), reread for each request.                                    */

static int fake_rcd(const char *reply_file)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
		return 1;
	fprintf(stderr,
		"2024/01/02 03:04:05 NOTICE: Serving remote control on http://127.0.0.1:%u/\n",
		ntohs(sa.sin_port));
	fflush(stderr);
	for (;;) {
		char req[65536], head[256], *body = NULL, *cl;
		size_t got = 0, blen = 0;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), status = 500;
		FILE *f;

		if (fd < 0)
			continue;
		/* Headers, then as many body bytes as Content-Length says. */
		while (got < sizeof(req) - 1) {
			ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
			char *end;

			if (n <= 0)
				break;
			got += (size_t)n;
			req[got] = '\0';
			end = strstr(req, "\r\n\r\n");
			cl = strcasestr(req, "Content-Length:");
			if (end &&
			    (!cl || got >= (size_t)(end + 4 - req) + strtoul(cl + 15, NULL, 10)))
				break;
		}
		f = fopen(reply_file, "re");
		if (f && fscanf(f, "%d\n", &status) == 1) {
			body = malloc(1 << 20);
			blen = fread(body, 1, 1 << 20, f);
		}
		if (f)
			fclose(f);
		snprintf(
			head, sizeof(head),
			"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			"Connection: close\r\n\r\n",
			status, blen);
		if (write(fd, head, strlen(head)) < 0 || (blen && write(fd, body, blen) < 0)) {
			/* the client went away */
		}
		free(body);
		close(fd);
	}
}

static char fake_reply[128];

static void set_reply(int status, const char *body)
{
	FILE *f = fopen(fake_reply, "we");

	if (f == NULL)
		abort();
	fprintf(f, "%d\n%s", status, body);
	fclose(f);
}

#define ITEM(name, rest) "{\"Name\":" name ",\"Path\":\"p\"," rest "}"
#define OK_FIELDS	 "\"IsDir\":false,\"Size\":5,\"ModTime\":\"2021-02-03T04:05:06.5+01:00\""

static void test_hostile_replies(const char *self)
{
	struct lz_rclone_options opts = {
		.timeout_s = 2, .retries = 1, .log = test_log, .rclone_bin = self
	};
	struct lz_rclone_entry *e = NULL, st;
	size_t n = 0;
	char err[512], *dst = xasprintf("%s/fake", out);
	struct lz_rclone *rc;
	const struct lz_rclone_entry *x;

	snprintf(fake_reply, sizeof(fake_reply), "%s/fake-reply", tmp);
	set_reply(200, "{\"Hashes\":[\"md5\"],\"Features\":{\"SlowHash\":false}}");
	setenv("LZ_FAKE_RCD", fake_reply, 1);
	rc = lz_rclone_new("fake:", &opts, err, sizeof(err));
	unsetenv("LZ_FAKE_RCD");
	CHECK(rc != NULL);
	if (rc == NULL)
		return;
	/* The first list learns the hash kind from this fsinfo answer. */
	CHECK(lz_rclone_list(rc, "", &e, &n, err, sizeof(err)) == -EIO && strstr(err, "list"));

	set_reply(200, "{\"list\":[" ITEM(
			       "\"ok\"", OK_FIELDS
			       ",\"Hashes\":{\"md5\":"
			       "\"0123456789ABCDEF0123456789abcdef\""
			       "}") "," ITEM("\"../x\"",
					     OK_FIELDS) "," ITEM("\"a/b\"",
								 OK_FIELDS) "," ITEM("\"\"", OK_FIELDS) "," ITEM("\"..\"", OK_FIELDS) "," ITEM("\"nul\\u0000x\"",
																	       OK_FIELDS) "," ITEM("\"ctl\\"
																				   "nx\"",
																				   OK_FIELDS) "," ITEM("5",
																						       OK_FIELDS) "," ITEM("\"neg\"", "\"IsDir\":false,\"Size\":-5,\"ModTime\":\"2021-02-03T04:05:06Z\"") "," ITEM("\"dbl\"", "\"IsDir\":false,\"Size\":1.5,\"ModTime\":\"2021-02-03T04:05:06Z\"") "," ITEM("\"huge\"", "\"IsDir\":false,\"Size\":99999999999999999999,\"ModTime\":\"2021-02-03T04:05:06Z\"") "," ITEM("\"strsize\"", "\"IsDir\":false,\"Size\":\"5\",\"ModTime\":\"2021-02-03T04:05:06Z\"") "," ITEM("\"time\"",
																																																																								      "\"IsDir\":false,\"Size\":5,\"ModTime\":\"yesterday\"") "," ITEM("\"time2\"",
																																																																																       "\"IsDir\":false,\"Size\":5,\"ModTime\":\"2021-13-03T04:05:06Z\"") "," ITEM("\"nodir\"",
																																																																																										   "\"Size\":5,\"ModTime\":\"2021-02-03T04:05:06Z\"") "," ITEM("\"hash\"",
																																																																																																	       OK_FIELDS
																																																																																																	       ",\"Hashes\":{\"md5\":\"xyz\"}") "," ITEM("\"ok\"",
																																																																																																							 OK_FIELDS) "," ITEM("\"dir\"",
																																																																																																									     "\"IsDir\":true,\"Size\":-1,\"ModTime\":\"0001-01-01T00:00:00Z\"") ","
																																																																																																																		"42,null,[],\"s\"]}");
	CHECK(lz_rclone_list(rc, "", &e, &n, err, sizeof(err)) == 0);
	CHECK(n == 2);
	CHECK((x = find(e, n, "ok")) && x->size == 5 && !x->is_dir && x->hash &&
	      strcmp(x->hash, "md5:0123456789abcdef0123456789abcdef") == 0);
	CHECK(x && x->mtime.tv_sec == 1612321506 && x->mtime.tv_nsec == 500000000);
	CHECK((x = find(e, n, "dir")) && x->is_dir && x->size == 0);
	lz_rclone_entries_free(e, n);

	static const char *const broken[] = {
		"not json", "[1,2]",	      "{\"list\":5}", "{\"list\":[",	      "{} {}",
		"",	    "{\"list\":[]}x", "\"str\"",      "{\"li\\u0000st\":[]}",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		set_reply(200, broken[i]);
		CHECK(lz_rclone_list(rc, "d", &e, &n, err, sizeof(err)) == -EIO && e == NULL);
		CHECK(lz_rclone_stat(rc, "d", &st, err, sizeof(err)) == -EIO);
	}
	set_reply(200, "{\"item\":\"str\"}");
	CHECK(lz_rclone_stat(rc, "d", &st, err, sizeof(err)) == -EIO);
	set_reply(200, "{\"item\":" ITEM("\"other/x\"", OK_FIELDS) "}");
	CHECK(lz_rclone_stat(rc, "d", &st, err, sizeof(err)) == -EIO);
	set_reply(200, "{\"item\":null}");
	CHECK(lz_rclone_stat(rc, "d", &st, err, sizeof(err)) == -ENOENT);

	set_reply(404, "{\"error\":\"object not found\",\"status\":404}");
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -ENOENT &&
	      strstr(err, "object not found"));
	set_reply(404, "{\"error\":\"couldn't find method \\\"operations/copyfile\\\"\"}");
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO && strstr(err, "find method"));
	set_reply(500, "garbage");
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO &&
	      strstr(err, "HTTP status 500") && strstr(err, "2 tries"));
	set_reply(500, "{\"error\":\"line one\\nline two\"}");
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO && strchr(err, '\n') == NULL);
	set_reply(401, "Unauthorized");
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO && strstr(err, "credentials"));
	set_reply(400, "{\"error\":\"bad\"}");
	/* The first call may meet the child just discarded; the second is not retried. */
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO && strstr(err, ": bad"));
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO && !strstr(err, "tries"));
	/* "Success" without a file written: never reported as a copy. */
	set_reply(200, "{}");
	CHECK(lz_rclone_copy(rc, "d", dst, err, sizeof(err)) == -EIO && strstr(err, "success"));
	CHECK(access(dst, F_OK) != 0);
	lz_rclone_free(rc);
	free(dst);

	/* A program that exits at once: a clear start error, and no start storm. */
	opts.rclone_bin = "/bin/false";
	rc = lz_rclone_new("x:", &opts, err, sizeof(err));
	CHECK(rc != NULL);
	if (rc != NULL) {
		CHECK(lz_rclone_list(rc, "", &e, &n, err, sizeof(err)) == -EIO);
		CHECK(strstr(err, "exited with status 1 before serving") != NULL);
		lz_rclone_free(rc);
	}
}

static void test_named_remote(void)
{
	char url[64], err[512];
	struct lz_rclone *rc;
	struct lz_rclone_entry *e = NULL;
	size_t n = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", serve_port);
	setenv("RCLONE_CONFIG_LZTEST_TYPE", "http", 1);
	setenv("RCLONE_CONFIG_LZTEST_URL", url, 1);
	/* The daemon's supervisor is not rclone's: rcd exits when it cannot notify it. */
	setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
	rc = new_fetcher("lztest:sub", 1, 1);
	unsetenv("NOTIFY_SOCKET");
	CHECK(rc != NULL);
	if (rc != NULL) {
		CHECK(lz_rclone_list(rc, "", &e, &n, err, sizeof(err)) == 0);
		CHECK(n == 2 && find(e, n, "a") && find(e, n, "deeper"));
		lz_rclone_entries_free(e, n);
		char *dst = xasprintf("%s/named b c", out),
		     *orig = xasprintf("%s/sub/deeper/b c", src);

		CHECK(lz_rclone_copy(rc, "deeper/b c", dst, err, sizeof(err)) == 0);
		CHECK(same_file(orig, dst));
		free(dst);
		free(orig);
		lz_rclone_free(rc);
	}
	unsetenv("RCLONE_CONFIG_LZTEST_TYPE");
	unsetenv("RCLONE_CONFIG_LZTEST_URL");

	/* A remote that does not exist: a clear error, not a hang. */
	rc = new_fetcher("nosuchremote:", 1, 1);
	if (rc != NULL) {
		CHECK(lz_rclone_list(rc, "", &e, &n, err, sizeof(err)) == -EIO);
		CHECK(strstr(err, "nosuchremote") != NULL || strstr(err, "section") != NULL);
		lz_rclone_free(rc);
	}
}

int main(int argc, char **argv)
{
	struct lz_rclone *rc;
	char *remote, *marker, self[PATH_MAX];
	pid_t child;
	int marker_fd;
	ssize_t len;

	if (argc > 1 && strcmp(argv[1], "rcd") == 0 && getenv("LZ_FAKE_RCD") != NULL)
		return fake_rcd(getenv("LZ_FAKE_RCD"));

	if (system("command -v rclone >/dev/null 2>&1") != 0) {
		printf("test_rclone: rclone not installed, skipped\n");
		return 77;
	}
	setenv("RCLONE_CONFIG", "/dev/null", 1);
	signal(SIGALRM, watchdog);
	alarm(240);
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	snprintf(src, sizeof(src), "%s/src", tmp);
	snprintf(out, sizeof(out), "%s/out ü", tmp);
	if (mkdir(src, 0755) != 0 || mkdir(out, 0755) != 0)
		return 1;
	mk_file("big file.bin", BIG);
	mk_file("mid.bin", 1048576);
	mk_file("small.txt", 13);
	mk_file("empty", 0);
	mk_file("é ü 日本.txt", 6);
	mk_dir("sub");
	mk_file("sub/a", 2);
	mk_dir("sub/deeper");
	mk_file("sub/deeper/b c", 3);
	mk_dir("sub dir with space");
	mk_file("sub dir with space/x", 100);
	if (!start_serve()) {
		fprintf(stderr, "cannot start rclone serve http\n");
		return 1;
	}

	test_new_errors();
	/* A descriptor without O_CLOEXEC that the child must not get. */
	marker = xasprintf("%s/marker", tmp);
	marker_fd = open(marker, O_WRONLY | O_CREAT, 0600);
	remote = xasprintf(":http,url='http://127.0.0.1:%u/':", serve_port);
	rc = new_fetcher(remote, 3, 4);
	CHECK(rc != NULL);
	if (rc == NULL)
		return unit_finish("test_rclone");
	CHECK(lz_rclone_child_pid(rc) == 0); /* lazily started */

	test_listing(rc);
	child = lz_rclone_child_pid(rc);
	test_child(child, marker);
	test_auth();
	close(marker_fd);
	test_copies(rc);
	test_reads(remote);
	test_hostile(rc);
	measure(rc);
	test_restart_between(rc);
	test_parallel(rc);
	test_stalled_remote(rc);
	test_kill_during_copy(remote);

	child = lz_rclone_child_pid(rc);
	lz_rclone_free(rc);
	/* Terminated and reaped: the pid is gone, not a zombie. */
	CHECK(child > 0 && kill(child, 0) != 0 && errno == ESRCH);

	test_named_remote();
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		self[len] = '\0';
		test_hostile_replies(self);
	}
	CHECK(!leaked);
	free(remote);
	free(marker);
	return unit_finish("test_rclone");
}
