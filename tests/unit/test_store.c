/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "cache/store/store.h"
#include "cache/store/store_int.h"
#include "unit.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static char base[PATH_MAX];
static char mounted[PATH_MAX]; /* a tmpfs to unmount whatever happens */

/* Paths in the test are short; PATH_MAX buffers everywhere. */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
}

/* What a fake remote serves for one fetch. */
struct src {
	const char *data;
	size_t len;
	size_t write_len; /* bytes actually written: len unless set */
	int fail_rc;	  /* fail with this after writing */
	const char *fail_msg;
	unsigned delay_ms;
	int kill_at_half; /* SIGKILL ourselves halfway through */
	unsigned chunk_ms;
	atomic_int calls;
	char tmp_path[PATH_MAX];
};

static int fetch_cb(void *ctx, const char *tmp_path, char *err, size_t errlen)
{
	struct src *src = ctx;
	size_t want = src->write_len ? src->write_len : src->len, done = 0;
	int fd;

	atomic_fetch_add(&src->calls, 1);
	snprintf(src->tmp_path, sizeof(src->tmp_path), "%s", tmp_path);
	if (src->delay_ms)
		usleep(src->delay_ms * 1000);
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", tmp_path, strerror(errno));
		return -errno;
	}
	while (done < want) {
		size_t n = want - done > 65536 ? 65536 : want - done;
		ssize_t w;
		if (src->kill_at_half && done >= want / 2) {
			fsync(fd);
			raise(SIGKILL);
		}
		w = write(fd, src->data + done, n);
		if (w < 0) {
			int e = errno;
			snprintf(err, errlen, "write: %s", strerror(e));
			close(fd);
			return -e;
		}
		done += (size_t)w;
		if (src->chunk_ms)
			usleep(src->chunk_ms * 1000);
	}
	close(fd);
	if (src->fail_rc) {
		snprintf(err, errlen, "%s", src->fail_msg ? src->fail_msg : "failed");
		return src->fail_rc;
	}
	return 0;
}

static char *pattern(size_t len, unsigned seed)
{
	char *p = malloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (char)(seed >> 16);
	}
	p[len] = '\0';
	return p;
}

static struct lz_object_meta meta_of(int64_t size, time_t sec, const char *hash)
{
	struct lz_object_meta m = { .size = size, .mtime = { sec, 123 } };

	snprintf(m.hash, sizeof(m.hash), "%s", hash ? hash : "");
	return m;
}

static void digest_hex(const char *name, const char *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_get_digestbyname(name), NULL);
	for (unsigned int i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* FD holds exactly DATA. */
static bool fd_has(int fd, const char *data, size_t len)
{
	char *buf = malloc(len + 1);
	ssize_t n = pread(fd, buf, len + 1, 0);
	bool ok = n == (ssize_t)len && memcmp(buf, data, len) == 0;

	free(buf);
	return ok;
}

static int count_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		pathf(path, "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_in(path);
		else
			n++;
	}
	closedir(d);
	return n;
}

/* Files (not directories) under DIR/SUB, recursively. */
static int count_files(const char *dir, const char *sub)
{
	char path[PATH_MAX];

	pathf(path, "%s/%s", dir, sub);
	return count_in(path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* DIR: a new directory for test NAME, and the store's path inside it. */
static void fresh(char *dir, const char *name)
{
	pathf(dir, "%s/%s", base, name);
	mkdir(dir, 0755);
	pathf(dir, "%s/%s/cache", base, name);
}

static void path_in(char *out, const char *dir, const char *rel)
{
	pathf(out, "%s/%s", dir, rel);
}

static struct lz_store *open_ok(const char *dir, uint64_t quota)
{
	char err[512];
	struct lz_store *s = lz_store_open(dir, quota, err, sizeof(err));

	if (s == NULL)
		fprintf(stderr, "lz_store_open %s: %s\n", dir, err);
	CHECK(s != NULL);
	return s;
}

static void close_ok(struct lz_store *s)
{
	char err[512];
	int rc = lz_store_close(s, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "lz_store_close: %s\n", err);
	CHECK(rc == 0);
}

/*
 * A fill whose publication has finished, so the files, the index and the
 * stats can be looked at. The early answer itself is tested on its own.
 */
static int fill_settled(struct lz_store *s, const char *key, const struct lz_object_meta *m,
			lz_store_fetch_fn *fetch, void *ctx, int *fd, char *err, size_t errlen)
{
	int rc = lz_store_fill(s, key, m, fetch, ctx, fd, err, errlen);

	lz_store_settle(s);
	return rc;
}

/* Fills KEY with DATA; returns the fill's result and the descriptor in *FD (or -1). */
static int fill_data(struct lz_store *s, const char *key, const char *data, size_t len,
		     const struct lz_object_meta *m, int *fd, char *err, size_t errlen)
{
	struct src src = { .data = data, .len = len };
	int rc;

	*fd = -1;
	rc = fill_settled(s, key, m, fetch_cb, &src, fd, err, errlen);
	return rc;
}

/* Fills KEY, checks the bytes, releases. */
static void put(struct lz_store *s, const char *key, const char *data, size_t len,
		const struct lz_object_meta *m)
{
	char err[512] = "";
	int fd, rc = fill_data(s, key, data, len, m, &fd, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "fill %s: %s\n", key, err);
	CHECK(rc == 0);
	if (rc == 0) {
		CHECK(fd_has(fd, data, len));
		close(fd);
		CHECK(lz_store_release(s, key) == 0);
	}
}

/* KEY is cached (any metadata) and holds DATA. */
static bool has(struct lz_store *s, const char *key, const char *data, size_t len)
{
	int fd, rc = lz_store_lookup(s, key, NULL, &fd);
	bool ok = rc == 0 && fd_has(fd, data, len);

	if (rc == 0) {
		close(fd);
		lz_store_release(s, key);
	}
	return ok;
}

static void test_roundtrip(void)
{
	char dir[PATH_MAX], real[PATH_MAX], err[512], hex[64], hash[LZ_STORE_HASH_MAX], p[PATH_MAX];
	const char *data = "hello, cache\n";
	size_t len = strlen(data);
	struct lz_object_meta m = meta_of((int64_t)len, 1700000000, NULL), got;
	struct lz_store_stats st;
	struct src src = { .data = data, .len = len };
	struct stat sb;
	int fd = -1, fd2 = -1;

	fresh(dir, "roundtrip");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	CHECK(realpath(dir, real) != NULL);
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 07777) == 0700);
	lz_store_stats(s, &st);
	CHECK(st.quota > 0 && st.objects == 0 && st.rebuilt == 0);

	CHECK(lz_store_lookup(s, "clips/a/b.mp4", &m, &fd) == -ENOENT);
	CHECK(fill_settled(s, "clips/a/b.mp4", &m, fetch_cb, &src, &fd, err, sizeof(err)) == 0);
	CHECK(atomic_load(&src.calls) == 1);
	/* The fetcher writes inside the store, under tmp/. */
	pathf(p, "%s/tmp/", real);
	CHECK(strncmp(src.tmp_path, p, strlen(p)) == 0);
	CHECK(fd >= 0 && fd_has(fd, data, len));
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
	CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	CHECK(fstat(fd, &sb) == 0 && sb.st_uid == geteuid() && (sb.st_mode & 07777) == 0400);
	close(fd);
	lz_store_stats(s, &st);
	CHECK(st.objects == 1 && st.bytes == len && st.fills == 1 && st.open_objects == 1);
	CHECK(count_files(dir, "tmp") == 0 && count_files(dir, "objects") == 1);
	CHECK(lz_store_release(s, "clips/a/b.mp4") == 0);
	CHECK(lz_store_release(s, "clips/a/b.mp4") == -EINVAL);
	CHECK(lz_store_release(s, "never/seen") == -EINVAL);

	/* A second fill of a cached object fetches nothing. */
	CHECK(fill_settled(s, "clips/a/b.mp4", &m, fetch_cb, &src, &fd, err, sizeof(err)) == 0);
	CHECK(atomic_load(&src.calls) == 1 && fd_has(fd, data, len));
	close(fd);
	CHECK(lz_store_release(s, "clips/a/b.mp4") == 0);

	CHECK(lz_store_lookup(s, "clips/a/b.mp4", &m, &fd) == 0 && fd_has(fd, data, len));
	CHECK(lz_store_lookup(s, "clips/a/b.mp4", NULL, &fd2) == 0 && fd_has(fd2, data, len));
	CHECK(fd != fd2);
	close(fd);
	close(fd2);
	lz_store_stats(s, &st);
	CHECK(st.open_objects == 1 && st.hits == 3);
	CHECK(lz_store_release(s, "clips/a/b.mp4") == 0);
	CHECK(lz_store_release(s, "clips/a/b.mp4") == 0);
	CHECK(lz_store_meta(s, "clips/a/b.mp4", &got) == 0 && got.size == (int64_t)len &&
	      got.mtime.tv_sec == 1700000000 && got.mtime.tv_nsec == 123 && got.hash[0] == '\0');

	/* A hold (no descriptor) keeps the object like an open: no eviction until released. */
	CHECK(lz_store_lookup(s, "clips/a/b.mp4", &m, NULL) == 0);
	CHECK(lz_store_evict(s, "clips/a/b.mp4") == -EBUSY);
	CHECK(lz_store_release(s, "clips/a/b.mp4") == 0);

	/* The remote changed (mtime, then size): the stale copy goes. */
	struct lz_object_meta newer = m;
	newer.mtime.tv_nsec = 124;
	CHECK(lz_store_lookup(s, "clips/a/b.mp4", &newer, &fd) == -ENOENT);
	CHECK(lz_store_lookup(s, "clips/a/b.mp4", NULL, &fd) == -ENOENT);
	CHECK(count_files(dir, "objects") == 0);
	lz_store_stats(s, &st);
	CHECK(st.objects == 0 && st.bytes == 0 && st.dropped == 1 && st.misses == 3);
	put(s, "clips/a/b.mp4", data, len, &m);
	struct lz_object_meta bigger = m;
	bigger.size++;
	CHECK(lz_store_lookup(s, "clips/a/b.mp4", &bigger, &fd) == -ENOENT);
	CHECK(count_files(dir, "objects") == 0);

	/* md5 given in capitals: checked, stored normalized, compared by type. */
	digest_hex("md5", data, len, hex);
	snprintf(hash, sizeof(hash), "MD5:%s", hex);
	for (char *c = hash; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	struct lz_object_meta hm = meta_of((int64_t)len, 1700000001, hash);
	put(s, "h/md5", data, len, &hm);
	CHECK(lz_store_meta(s, "h/md5", &got) == 0 && strncmp(got.hash, "md5:", 4) == 0 &&
	      strcmp(got.hash + 4, hex) == 0);
	struct lz_object_meta other = hm;
	snprintf(other.hash, sizeof(other.hash), "sha1:%040d", 0);
	CHECK(lz_store_lookup(s, "h/md5", &other, &fd) == 0); /* another type: not comparable */
	close(fd);
	lz_store_release(s, "h/md5");
	CHECK(lz_store_lookup(s, "h/md5", &hm, &fd) == 0);
	close(fd);
	lz_store_release(s, "h/md5");
	snprintf(other.hash, sizeof(other.hash), "md5:%032d", 0);
	CHECK(lz_store_lookup(s, "h/md5", &other, &fd) == -ENOENT);

	/* A wrong md5 or sha1 publishes nothing. */
	src.calls = 0;
	CHECK(fill_settled(s, "h/bad", &other, fetch_cb, &src, &fd, err, sizeof(err)) == -EIO);
	CHECK(strstr(err, "md5 mismatch") != NULL && strchr(err, '\n') == NULL);
	CHECK(lz_store_lookup(s, "h/bad", NULL, &fd) == -ENOENT);
	digest_hex("sha1", data, len, hex);
	snprintf(hash, sizeof(hash), "sha1:%s", hex);
	struct lz_object_meta sm = meta_of((int64_t)len, 1, hash);
	put(s, "h/sha1", data, len, &sm);
	hex[0] = hex[0] == '0' ? '1' : '0';
	snprintf(sm.hash, sizeof(sm.hash), "sha1:%s", hex);
	CHECK(fill_settled(s, "h/sha1-bad", &sm, fetch_cb, &src, &fd, err, sizeof(err)) == -EIO);
	CHECK(strstr(err, "sha1 mismatch") != NULL);
	/* Other hash types are kept and compared, not computed. */
	struct lz_object_meta qm =
		meta_of((int64_t)len, 1, "quickxor:AAECAwQFBgcICQoLDA0ODxAREhM=");
	put(s, "h/quickxor", data, len, &qm);
	CHECK(lz_store_meta(s, "h/quickxor", &got) == 0 &&
	      strcmp(got.hash, "quickxor:AAECAwQFBgcICQoLDA0ODxAREhM=") == 0);
	CHECK(count_files(dir, "objects") == 2 && count_files(dir, "tmp") == 0);

	/* Bad arguments: refused before anything is fetched. */
	src.calls = 0;
	struct lz_object_meta badh = meta_of(1, 1, "md5:zz!");
	CHECK(fill_settled(s, "x", &badh, fetch_cb, &src, &fd, err, sizeof(err)) == -EINVAL);
	CHECK(lz_store_lookup(s, "x", &badh, &fd) == -EINVAL);
	const char *bad_hashes[] = { "md5:abc", "sha1:0123",	      "md5", ":abc", "md5:",
				     "m d5:00", "toolongtypename1:00" };
	for (size_t i = 0; i < sizeof(bad_hashes) / sizeof(bad_hashes[0]); i++) {
		badh = meta_of(1, 1, bad_hashes[i]);
		CHECK(fill_settled(s, "x", &badh, fetch_cb, &src, &fd, err, sizeof(err)) ==
		      -EINVAL);
	}
	CHECK(atomic_load(&src.calls) == 0);
	CHECK(fill_settled(s, "", &m, fetch_cb, &src, &fd, err, sizeof(err)) == -EINVAL);
	CHECK(lz_store_lookup(s, NULL, &m, &fd) == -EINVAL);

	/* Unknown size: whatever arrives, then recorded. */
	struct lz_object_meta um = meta_of(-1, 2, NULL);
	put(s, "unknown/size", data, len, &um);
	CHECK(lz_store_meta(s, "unknown/size", &got) == 0 && got.size == (int64_t)len);
	/* A callback that reports success but wrote nothing. */
	struct src none = { .data = "", .len = 0, .fail_rc = 0 };
	CHECK(fill_settled(s, "empty", &um, fetch_cb, &none, &fd, err, sizeof(err)) == 0);
	CHECK(fd_has(fd, "", 0));
	close(fd);
	lz_store_release(s, "empty");
	close_ok(s);
}

static void test_size_mismatch(void)
{
	char dir[PATH_MAX], err[512];
	char *data = pattern(100, 1);
	struct lz_object_meta m = meta_of(100, 5, NULL);
	struct src shorter = { .data = data, .len = 100, .write_len = 50 };
	struct src longer = { .data = data, .len = 100, .write_len = 100 };
	struct lz_store_stats st;
	int fd = -1;

	fresh(dir, "size");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	CHECK(fill_settled(s, "k", &m, fetch_cb, &shorter, &fd, err, sizeof(err)) == -EIO);
	CHECK(strstr(err, "size mismatch: fetched 50 bytes, expected 100") != NULL);
	CHECK(fd == -1);
	m.size = 99;
	CHECK(fill_settled(s, "k", &m, fetch_cb, &longer, &fd, err, sizeof(err)) == -EIO);
	CHECK(lz_store_lookup(s, "k", NULL, &fd) == -ENOENT);
	CHECK(count_files(dir, "objects") == 0 && count_files(dir, "tmp") == 0);
	lz_store_stats(s, &st);
	CHECK(st.fill_failures == 2 && st.fills == 0 && st.objects == 0 && st.bytes == 0);
	close_ok(s);
	free(data);
}

#define NKEEP 3
static const char *keep_keys[NKEEP] = { "a/one", "b/two.mp4", "three" };
#define KLEN(i) ((size_t)(1000 + (i)*777))

static void fill_three(struct lz_store *s, char **datas)
{
	for (int i = 0; i < NKEEP; i++) {
		char hex[64], hash[80];
		datas[i] = pattern(1000 + (size_t)i * 777, (unsigned)i + 10);
		digest_hex("md5", datas[i], KLEN(i), hex);
		snprintf(hash, sizeof(hash), "md5:%s", hex);
		struct lz_object_meta m =
			meta_of(1000 + i * 777, 1600000000 + i, i == 1 ? hash : NULL);
		m.mtime.tv_nsec = 999999999 - i;
		put(s, keep_keys[i], datas[i], KLEN(i), &m);
	}
}

static void check_three(struct lz_store *s, char **datas, const char *what)
{
	for (int i = 0; i < NKEEP; i++) {
		struct lz_object_meta m;
		bool ok = has(s, keep_keys[i], datas[i], KLEN(i)) &&
			  lz_store_meta(s, keep_keys[i], &m) == 0 && m.size == 1000 + i * 777 &&
			  m.mtime.tv_sec == 1600000000 + i && m.mtime.tv_nsec == 999999999 - i &&
			  (i == 1 ? strncmp(m.hash, "md5:", 4) == 0 : m.hash[0] == '\0') &&
			  lz_store_check(s, keep_keys[i], NULL, 0) == 0;
		if (!ok)
			fprintf(stderr, "%s: object %s lost or wrong\n", what, keep_keys[i]);
		CHECK(ok);
	}
}

/* Reopens DIR after DAMAGE and expects the objects back through a scan. */
static void reopen_rebuilt(const char *dir, char **datas, const char *what)
{
	struct lz_store_stats st;
	struct lz_store *s = open_ok(dir, 0);

	if (s == NULL)
		return;
	lz_store_stats(s, &st);
	if (st.rebuilt != 1 || st.objects != NKEEP)
		fprintf(stderr, "%s: rebuilt %d, %llu objects\n", what, st.rebuilt,
			(unsigned long long)st.objects);
	CHECK(st.rebuilt == 1 && st.objects == NKEEP);
	check_three(s, datas, what);
	close_ok(s);
}

static void write_bytes(const char *path, const void *buf, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	close(fd);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	char c = 0;

	CHECK(fd >= 0 && pread(fd, &c, 1, off) == 1);
	c ^= 0x20;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

static void test_restart_and_damage(void)
{
	char dir[PATH_MAX], p[PATH_MAX], q[PATH_MAX], *datas[NKEEP];
	struct lz_store_stats st;
	struct stat sb;

	fresh(dir, "restart");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	fill_three(s, datas);
	CHECK(lz_store_sync(s, NULL, 0) == 0);
	close_ok(s);

	/* A clean restart trusts the index. */
	s = open_ok(dir, 0);
	lz_store_stats(s, &st);
	CHECK(st.rebuilt == 0 && st.objects == NKEEP);
	check_three(s, datas, "restart");
	close_ok(s);

	/* Garbage, a truncation, a flipped byte, no index at all: rebuilt from the files. */
	path_in(p, dir, "index");
	CHECK(stat(p, &sb) == 0);
	char *garbage = pattern((size_t)sb.st_size, 99);
	write_bytes(p, garbage, (size_t)sb.st_size, O_TRUNC);
	free(garbage);
	reopen_rebuilt(dir, datas, "garbage index");

	CHECK(stat(p, &sb) == 0);
	CHECK(truncate(p, sb.st_size / 2) == 0);
	reopen_rebuilt(dir, datas, "truncated index");

	CHECK(stat(p, &sb) == 0);
	flip_byte(p, sb.st_size / 2);
	reopen_rebuilt(dir, datas, "flipped byte");

	CHECK(unlink(p) == 0);
	reopen_rebuilt(dir, datas, "no index");

	/* A marker that names another index. */
	path_in(q, dir, "clean");
	write_bytes(q, "lazyfs-store clean 00000000 3\n", 30, O_TRUNC);
	reopen_rebuilt(dir, datas, "wrong marker");

	/* An index cut right after its header. */
	write_bytes(p, "LZSTORE\n", 8, O_TRUNC);
	reopen_rebuilt(dir, datas, "short index");

	/* Junk among the objects goes; a file whose size disagrees goes. */
	char junk[PATH_MAX];
	pathf(junk, "%s/objects/ab/not-ours", dir);
	write_bytes(junk, "x", 1, O_TRUNC);
	pathf(junk, "%s/objects/ab/%032d-0", dir, 0);
	write_bytes(junk, "x", 1, O_TRUNC);
	s = open_ok(dir, 0); /* trusted: the junk is only found by a scan */
	close_ok(s);
	unlink(p);
	reopen_rebuilt(dir, datas, "junk");
	CHECK(access(junk, F_OK) == -1 && count_files(dir, "objects") == NKEEP);

	/* Truncated behind the store's back, index trusted: caught at lookup. */
	s = open_ok(dir, 0);
	char obj[LZ_OBJ_PATH];
	uint8_t name[LZ_NAME_BYTES];
	struct lz_entry fake = { .slot = 0 };
	lz_store_name_fn(keep_keys[0], strlen(keep_keys[0]), name);
	memcpy(fake.name, name, sizeof(name));
	lz_entry_path(&fake, obj);
	pathf(q, "%s/objects/%s", dir, obj);
	CHECK(truncate(q, 10) == 0);
	int fd;
	CHECK(lz_store_lookup(s, keep_keys[0], NULL, &fd) == -ENOENT);
	CHECK(access(q, F_OK) == -1);
	lz_store_stats(s, &st);
	CHECK(st.objects == NKEEP - 1 && st.dropped == 1);
	put(s, keep_keys[0], datas[0], KLEN(0),
	    &(struct lz_object_meta){ 1000, { 1600000000, 999999999 }, "" });

	/* A damaged copy of the same size: caught by lz_store_check. */
	char err[512];
	flip_byte(q, 500);
	CHECK(lz_store_check(s, keep_keys[0], err, sizeof(err)) == -EIO);
	CHECK(strstr(err, "damaged") != NULL);
	CHECK(lz_store_lookup(s, keep_keys[0], NULL, &fd) == -ENOENT);
	put(s, keep_keys[0], datas[0], KLEN(0),
	    &(struct lz_object_meta){ 1000, { 1600000000, 999999999 }, "" });
	close_ok(s);

	/* Scanning: a truncated file, and one without its record, are dropped. */
	CHECK(truncate(q, 10) == 0);
	lz_store_name_fn(keep_keys[2], strlen(keep_keys[2]), fake.name);
	lz_entry_path(&fake, obj);
	char r[PATH_MAX];
	pathf(r, "%s/objects/%s", dir, obj);
	CHECK(removexattr(r, LZ_XATTR) == 0);
	unlink(p);
	s = open_ok(dir, 0);
	lz_store_stats(s, &st);
	CHECK(st.rebuilt == 1 && st.objects == 1 && st.dropped == 2);
	CHECK(access(q, F_OK) == -1 && access(r, F_OK) == -1);
	CHECK(has(s, keep_keys[1], datas[1], KLEN(1)));
	close_ok(s);
	for (int i = 0; i < NKEEP; i++)
		free(datas[i]);
}

/* Lookups racing the preload thread: each waits for the index, none misses. */
struct lazy_reader {
	struct lz_store *s;
	char **datas;
	atomic_int *found;
};

static void *lazy_read(void *arg)
{
	struct lazy_reader *r = arg;

	for (int i = 0; i < NKEEP; i++)
		if (has(r->s, keep_keys[i], r->datas[i], KLEN(i)))
			atomic_fetch_add(r->found, 1);
	return NULL;
}

/*
 * The index is read at the first use or by the preload thread, not at open:
 * a store opened and closed unused leaves the directory as it found it (its
 * clean marker still vouches for the index), and lookups made while the
 * preload runs find every object.
 */
static void test_lazy_load(void)
{
	char dir[PATH_MAX], marker[PATH_MAX], *datas[NKEEP];
	struct lz_store_stats st;
	pthread_t t[4];
	atomic_int found = 0;

	fresh(dir, "lazy");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	fill_three(s, datas);
	close_ok(s);
	path_in(marker, dir, "clean");
	CHECK(access(marker, F_OK) == 0);

	/* Opened and closed unused: the marker stays, the index is trusted again. */
	s = open_ok(dir, 0);
	CHECK(access(marker, F_OK) == 0);
	close_ok(s);
	CHECK(access(marker, F_OK) == 0);
	s = open_ok(dir, 0);
	lz_store_stats(s, &st); /* the first use loads it, and takes the marker */
	CHECK(st.rebuilt == 0 && st.objects == NKEEP);
	CHECK(access(marker, F_OK) == -1);
	close_ok(s);

	/* Preloaded while four threads look up at once. */
	s = open_ok(dir, 0);
	lz_store_preload(s);
	struct lazy_reader r = { s, datas, &found };
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, lazy_read, &r) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&found) == 4 * NKEEP);
	lz_store_stats(s, &st);
	CHECK(st.rebuilt == 0 && st.objects == NKEEP);
	close_ok(s);

	/* Preloaded and closed at once: the close waits for the load, then saves. */
	s = open_ok(dir, 0);
	lz_store_preload(s);
	close_ok(s);
	CHECK(access(marker, F_OK) == 0);
	s = open_ok(dir, 0);
	check_three(s, datas, "preloaded then closed");
	close_ok(s);
	for (int i = 0; i < NKEEP; i++)
		free(datas[i]);
}

static void test_stale_temp(void)
{
	char dir[PATH_MAX], p[PATH_MAX];
	struct stat sb;

	fresh(dir, "stale");
	struct lz_store *s = open_ok(dir, 0);
	close_ok(s);
	path_in(p, dir, "tmp/f1-1");
	mkdir(p, 0700);
	path_in(p, dir, "tmp/f1-1/data");
	write_bytes(p, "partial", 7, O_TRUNC);
	path_in(p, dir, "tmp/loose");
	write_bytes(p, "x", 1, O_TRUNC);
	path_in(p, dir, "tmp/d");
	mkdir(p, 0700);
	path_in(p, dir, "tmp/d/e");
	mkdir(p, 0700);
	path_in(p, dir, "tmp/d/e/f");
	write_bytes(p, "x", 1, O_TRUNC);
	path_in(p, dir, "tmp/link");
	CHECK(symlink("/etc/hostname", p) == 0);
	path_in(p, dir, "index.tmp");
	write_bytes(p, "half an index", 13, O_TRUNC);
	CHECK(count_files(dir, "tmp") == 4);
	s = open_ok(dir, 0);
	CHECK(count_files(dir, "tmp") == 0);
	CHECK(access(p, F_OK) == -1);
	CHECK(stat("/etc/hostname", &sb) == 0);
	close_ok(s);
}

struct racer {
	struct lz_store *s;
	struct src *src;
	const char *key;
	const struct lz_object_meta *m;
	pthread_barrier_t *barrier;
	int rc, fd;
	char err[512];
};

static void *race_fill(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->barrier);
	r->rc = lz_store_fill(r->s, r->key, r->m, fetch_cb, r->src, &r->fd, r->err, sizeof(r->err));
	return NULL;
}

static void race(struct lz_store *s, struct src *src, const char *key,
		 const struct lz_object_meta *m, struct racer *r, int n)
{
	pthread_t t[64];
	pthread_barrier_t barrier;

	pthread_barrier_init(&barrier, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		r[i] = (struct racer){
			.s = s, .src = src, .key = key, .m = m, .barrier = &barrier, .fd = -1
		};
		pthread_create(&t[i], NULL, race_fill, &r[i]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
}

static void test_single_flight(void)
{
	char dir[PATH_MAX];
	size_t len = 3 << 20;
	char *data = pattern(len, 7);
	struct src src = { .data = data, .len = len, .delay_ms = 200 };
	struct lz_object_meta m = meta_of((int64_t)len, 42, NULL);
	struct racer r[32];
	struct lz_store_stats st;
	int ok = 0, same = 0;

	fresh(dir, "flight");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	race(s, &src, "gcc-15.sqfs", &m, r, 32);
	CHECK(atomic_load(&src.calls) == 1);
	for (int i = 0; i < 32; i++) {
		ok += r[i].rc == 0;
		same += r[i].rc == 0 && fd_has(r[i].fd, data, len);
		close(r[i].fd);
	}
	CHECK(ok == 32 && same == 32);
	lz_store_settle(s); /* the fill is counted once published, in the background */
	lz_store_stats(s, &st);
	CHECK(st.fills == 1 && st.objects == 1 && st.open_objects == 1 && st.fill_failures == 0);
	for (int i = 0; i < 32; i++)
		CHECK(lz_store_release(s, "gcc-15.sqfs") == 0);
	CHECK(lz_store_release(s, "gcc-15.sqfs") == -EINVAL);
	lz_store_stats(s, &st);
	CHECK(st.open_objects == 0);

	/* A failing fetch: everyone gets its error, once fetched, nothing published. */
	struct src bad = { .data = data,
			   .len = len,
			   .write_len = len / 3,
			   .delay_ms = 200,
			   .fail_rc = -EHOSTUNREACH,
			   .fail_msg = "remote unreachable: timed out after 30 s" };
	race(s, &bad, "clips/x.mp4", &m, r, 16);
	CHECK(atomic_load(&bad.calls) == 1);
	int same_err = 0;
	for (int i = 0; i < 16; i++)
		same_err += r[i].rc == -EHOSTUNREACH && r[i].fd == -1 &&
			    strstr(r[i].err, "remote unreachable: timed out after 30 s") != NULL;
	CHECK(same_err == 16);
	int fd;
	CHECK(lz_store_lookup(s, "clips/x.mp4", NULL, &fd) == -ENOENT);
	CHECK(count_files(dir, "objects") == 1 && count_files(dir, "tmp") == 0);
	lz_store_stats(s, &st);
	CHECK(st.fill_failures == 1 && st.fills == 1);
	/* The next fill tries again. */
	put(s, "clips/x.mp4", data, len, &m);
	close_ok(s);
	free(data);
}

static void *fill_in_background(void *arg)
{
	struct racer *r = arg;

	r->rc = lz_store_fill(r->s, r->key, r->m, fetch_cb, r->src, &r->fd, r->err, sizeof(r->err));
	return NULL;
}

/* While a fill runs: lookups miss, eviction is refused, a pin waits for the object. */
static void test_while_filling(void)
{
	char dir[PATH_MAX];
	struct src src = { .data = "slow object", .len = 11, .delay_ms = 300 };
	struct lz_object_meta m = meta_of(11, 1, NULL);
	struct racer r = { .key = "slow", .m = &m, .src = &src, .fd = -1 };
	struct lz_store_stats st;
	pthread_t t;
	int fd;

	fresh(dir, "filling");
	r.s = open_ok(dir, 0);
	if (r.s == NULL)
		return;
	pthread_create(&t, NULL, fill_in_background, &r);
	usleep(100 * 1000);
	CHECK(lz_store_lookup(r.s, "slow", NULL, &fd) == -ENOENT);
	CHECK(lz_store_evict(r.s, "slow") == -EBUSY);
	CHECK(lz_store_pin(r.s, "slow") == 0);
	pthread_join(t, NULL);
	CHECK(r.rc == 0 && fd_has(r.fd, "slow object", 11));
	close(r.fd);
	CHECK(lz_store_release(r.s, "slow") == 0);
	lz_store_stats(r.s, &st);
	CHECK(st.pinned == 1 && st.open_objects == 0);
	CHECK(lz_store_evict(r.s, "slow") == -EBUSY);
	lz_store_settle(r.s);
	CHECK(lz_store_unpin(r.s, "slow") == 0 && lz_store_evict(r.s, "slow") == 0);
	close_ok(r.s);
}

/* A stale copy still open is replaced: the old descriptor keeps the old bytes. */
static void test_replace_open(void)
{
	char dir[PATH_MAX], err[512];
	struct lz_object_meta v1 = meta_of(2, 1, NULL), v2 = meta_of(2, 2, NULL);
	struct lz_store_stats st;
	int old_fd, new_fd;

	fresh(dir, "replace");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	CHECK(fill_data(s, "k", "v1", 2, &v1, &old_fd, err, sizeof(err)) == 0);
	CHECK(fill_data(s, "k", "v2", 2, &v2, &new_fd, err, sizeof(err)) == 0);
	CHECK(fd_has(old_fd, "v1", 2) && fd_has(new_fd, "v2", 2));
	lz_store_stats(s, &st);
	CHECK(st.objects == 1 && st.bytes == 2 && st.dropped == 1 && st.fills == 2);
	/* Both opens are released against the one key; only then may it go. */
	CHECK(lz_store_release(s, "k") == 0);
	CHECK(lz_store_evict(s, "k") == -EBUSY);
	CHECK(lz_store_release(s, "k") == 0);
	CHECK(lz_store_release(s, "k") == -EINVAL);
	CHECK(has(s, "k", "v2", 2));
	close(old_fd);
	close(new_fd);
	close_ok(s);
}

static char evicted_keys[256];

static void on_evicted(void *ctx, const char *key)
{
	(void)ctx;
	strncat(evicted_keys, key, sizeof(evicted_keys) - strlen(evicted_keys) - 2);
	strcat(evicted_keys, " ");
}

static void test_lru(void)
{
	char dir[PATH_MAX], err[512];
	char *d[8];
	struct lz_store_stats st;
	int fd_a, fd;

	for (int i = 0; i < 8; i++)
		d[i] = pattern(3000, (unsigned)i + 100);
	struct lz_object_meta m = meta_of(3000, 7, NULL);
	fresh(dir, "lru");
	struct lz_store *s = open_ok(dir, 10000);
	if (s == NULL)
		return;
	lz_store_stats(s, &st);
	CHECK(st.quota == 10000);
	lz_store_on_evict(s, on_evicted, NULL);
	CHECK(fill_data(s, "A", d[0], 3000, &m, &fd_a, err, sizeof(err)) == 0); /* stays open */
	put(s, "B", d[1], 3000, &m);
	CHECK(lz_store_pin(s, "B") == 0);
	put(s, "C", d[2], 3000, &m);
	put(s, "D", d[3], 3000, &m); /* needs room: C is the only one that may go */
	CHECK(!has(s, "C", d[2], 3000));
	CHECK(has(s, "B", d[1], 3000) && has(s, "D", d[3], 3000));
	CHECK(fd_has(fd_a, d[0], 3000));
	put(s, "E", d[4], 3000, &m);
	CHECK(!has(s, "D", d[3], 3000) && has(s, "E", d[4], 3000));
	lz_store_stats(s, &st);
	CHECK(st.evictions == 2 && st.bytes == 9000 && st.objects == 3 && st.pinned == 1 &&
	      st.open_objects == 1);
	CHECK(strcmp(evicted_keys, "C D ") == 0);

	CHECK(lz_store_evict(s, "A") == -EBUSY);
	CHECK(lz_store_evict(s, "B") == -EBUSY);
	CHECK(lz_store_evict(s, "nope") == -ENOENT);
	CHECK(lz_store_pin(s, "nope") == -ENOENT);
	CHECK(lz_store_unpin(s, "E") == -EINVAL);

	/* Nothing evictable: a clear failure, nothing lost. */
	CHECK(lz_store_pin(s, "E") == 0);
	CHECK(fill_data(s, "F", d[5], 3000, &m, &fd, err, sizeof(err)) == -ENOSPC);
	CHECK(strstr(err, "cache quota of 10000 bytes is full") != NULL);
	CHECK(has(s, "B", d[1], 3000) && has(s, "E", d[4], 3000) && fd_has(fd_a, d[0], 3000));
	CHECK(lz_store_unpin(s, "E") == 0);

	/* Too big for the quota at all, known size or not. */
	char *big = pattern(20000, 5);
	struct lz_object_meta bm = meta_of(20000, 1, NULL);
	CHECK(fill_data(s, "big", big, 20000, &bm, &fd, err, sizeof(err)) == -EFBIG);
	CHECK(strstr(err, "exceeds the cache quota") != NULL);
	bm.size = -1;
	CHECK(fill_data(s, "big", big, 20000, &bm, &fd, err, sizeof(err)) == -EFBIG);
	CHECK(count_files(dir, "tmp") == 0 && count_files(dir, "objects") == 3);
	free(big);

	close(fd_a);
	CHECK(lz_store_release(s, "A") == 0);
	CHECK(lz_store_unpin(s, "B") == 0);
	CHECK(lz_store_unpin(s, "B") == -EINVAL);
	CHECK(lz_store_evict(s, "A") == 0 && lz_store_evict(s, "B") == 0 &&
	      lz_store_evict(s, "E") == 0);
	CHECK(count_files(dir, "objects") == 0);

	/* Least recently used goes first: P Q R, then P is used again. */
	put(s, "P", d[0], 3000, &m);
	put(s, "Q", d[1], 3000, &m);
	put(s, "R", d[2], 3000, &m);
	CHECK(has(s, "P", d[0], 3000));
	put(s, "S", d[3], 3000, &m);
	CHECK(!has(s, "Q", d[1], 3000) && has(s, "P", d[0], 3000) && has(s, "R", d[2], 3000));
	close_ok(s);

	/* The order survives a restart; a smaller quota trims at open. */
	s = open_ok(dir, 6000);
	lz_store_stats(s, &st);
	CHECK(st.objects == 2 && st.bytes == 6000);
	CHECK(!has(s, "S", d[3], 3000) && has(s, "P", d[0], 3000) && has(s, "R", d[2], 3000));
	close_ok(s);
	for (int i = 0; i < 8; i++)
		free(d[i]);
}

static void unmount_tmpfs(void)
{
	if (mounted[0] != '\0') {
		if (umount2(mounted, 0) < 0)
			umount2(mounted, MNT_DETACH);
		mounted[0] = '\0';
	}
}

static void test_full_disk(void)
{
	char mnt[PATH_MAX], dir[PATH_MAX], err[512], key[16], p[PATH_MAX];
	const size_t len = 200 * 1024;
	char *d[8];
	struct src srcs[8];
	struct lz_store_stats st;
	int fds[8];

	pathf(mnt, "%s/tmpfs", base);
	mkdir(mnt, 0755);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0755") < 0) {
		fprintf(stderr, "mount tmpfs: %s (full-disk test skipped)\n", strerror(errno));
		CHECK(!"tmpfs mount");
		return;
	}
	snprintf(mounted, sizeof(mounted), "%s", mnt);
	pathf(dir, "%s/cache", mnt);
	for (int i = 0; i < 8; i++) {
		d[i] = pattern(len, (unsigned)i + 1000);
		srcs[i] = (struct src){ .data = d[i], .len = len };
	}
	struct lz_object_meta m = meta_of((int64_t)len, 3, NULL);

	/* The default quota: 90 % of 1 MiB. */
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		goto out;
	lz_store_stats(s, &st);
	CHECK(st.quota > 900000 && st.quota <= 1024 * 1024 * 9 / 10);
	close_ok(s);

	/* A quota beyond the disk: the disk fills first. */
	s = open_ok(dir, 64 << 20);
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "o%d", i);
		CHECK(fill_settled(s, key, &m, fetch_cb, &srcs[i], &fds[i], err, sizeof(err)) == 0);
		close(fds[i]);
		lz_store_release(s, key);
	}
	lz_store_stats(s, &st);
	CHECK(st.objects == 5 && st.evictions == 0);
	/* The sixth hits ENOSPC while writing: the oldest goes, the fetch runs again. */
	CHECK(fill_settled(s, "o5", &m, fetch_cb, &srcs[5], &fds[5], err, sizeof(err)) == 0);
	CHECK(atomic_load(&srcs[5].calls) == 2);
	CHECK(fd_has(fds[5], d[5], len));
	close(fds[5]);
	lz_store_release(s, "o5");
	CHECK(!has(s, "o0", d[0], len) && has(s, "o1", d[1], len));
	lz_store_stats(s, &st);
	CHECK(st.objects == 5 && st.evictions >= 1 && st.fills == 6);

	/* Everything open: nothing to evict, a clean failure. */
	for (int i = 1; i <= 5; i++) {
		snprintf(key, sizeof(key), "o%d", i);
		CHECK(lz_store_lookup(s, key, &m, &fds[i]) == 0);
	}
	CHECK(fill_settled(s, "o6", &m, fetch_cb, &srcs[6], &fds[6], err, sizeof(err)) == -ENOSPC);
	CHECK(strstr(err, "cache disk full") != NULL &&
	      strstr(err, "nothing left to evict") != NULL);
	CHECK(count_files(dir, "tmp") == 0);
	for (int i = 1; i <= 5; i++) {
		snprintf(key, sizeof(key), "o%d", i);
		CHECK(fd_has(fds[i], d[i], len) && lz_store_check(s, key, NULL, 0) == 0);
		close(fds[i]);
		lz_store_release(s, key);
	}

	/* Larger than the disk: everything is evicted, the retry fails too, cleanly. */
	char *big = pattern(2 << 20, 3);
	struct src bigsrc = { .data = big, .len = 2 << 20 };
	struct lz_object_meta bm = meta_of(2 << 20, 3, NULL);
	int fd;
	CHECK(fill_settled(s, "big", &bm, fetch_cb, &bigsrc, &fd, err, sizeof(err)) == -ENOSPC);
	CHECK(strstr(err, "even after evicting") != NULL);
	CHECK(atomic_load(&bigsrc.calls) == 2);
	CHECK(count_files(dir, "tmp") == 0);
	/* Unknown size: the same. */
	bm.size = -1;
	CHECK(fill_settled(s, "big", &bm, fetch_cb, &bigsrc, &fd, err, sizeof(err)) == -ENOSPC);
	CHECK(count_files(dir, "tmp") == 0);
	free(big);
	lz_store_stats(s, &st);
	CHECK(count_files(dir, "objects") == (int)st.objects);
	put(s, "o7", d[7], len, &m);

	/* A full disk when the index is saved: close fails, nothing breaks. */
	path_in(p, mnt, "filler");
	{
		int ffd = open(p, O_WRONLY | O_CREAT, 0600);
		char *z = calloc(1, 4096);
		while (write(ffd, z, 4096) == 4096)
			;
		free(z);
		close(ffd);
	}
	CHECK(lz_store_close(s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "saving the cache index") != NULL);
	unlink(p);
	s = open_ok(dir, 64 << 20);
	if (s != NULL) {
		lz_store_stats(s, &st);
		CHECK(st.rebuilt == 1);
		CHECK(has(s, "o7", d[7], len));
		close_ok(s);
	}
out:
	unmount_tmpfs();
	for (int i = 0; i < 8; i++)
		free(d[i]);
}

/* Runs FN in a child that dies by SIGKILL; true when it did. */
static bool killed_child(void (*fn)(const char *dir, void *arg), const char *dir, void *arg,
			 unsigned kill_after_ms)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		fn(dir, arg);
		raise(SIGKILL);
		_exit(0);
	}
	if (kill_after_ms) {
		usleep(kill_after_ms * 1000);
		kill(pid, SIGKILL);
	}
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void child_fill(const char *dir, void *arg)
{
	struct src *src = arg;
	char err[512];
	int fd;
	struct lz_store *s = lz_store_open(dir, 0, err, sizeof(err));
	struct lz_object_meta m = meta_of((int64_t)src->len, 9, NULL);

	if (s == NULL)
		_exit(1);
	/* Killed after the publication, so the copy must survive without an index. */
	if (lz_store_fill(s, "victim", &m, fetch_cb, src, &fd, err, sizeof(err)) == 0)
		lz_store_settle(s);
}

static void test_kill(void)
{
	char dir[PATH_MAX];
	size_t len = 1 << 20;
	char *data = pattern(len, 77), *keep = pattern(5000, 78);
	struct lz_object_meta km = meta_of(5000, 1, NULL);
	struct lz_store_stats st;
	int fd;

	fresh(dir, "kill");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	put(s, "keep", keep, 5000, &km);
	close_ok(s);

	/* Killed halfway through the fetch. */
	struct src half = { .data = data, .len = len, .kill_at_half = 1 };
	CHECK(killed_child(child_fill, dir, &half, 0));
	CHECK(count_files(dir, "tmp") == 1);	 /* the partial file, never published */
	CHECK(count_files(dir, "objects") == 1); /* keep */
	s = open_ok(dir, 0);
	lz_store_stats(s, &st);
	CHECK(st.rebuilt == 1 && st.objects == 1);
	CHECK(lz_store_lookup(s, "victim", NULL, &fd) == -ENOENT);
	CHECK(count_files(dir, "tmp") == 0);
	CHECK(has(s, "keep", keep, 5000));
	close_ok(s);

	/* Killed right after a fill was published, before any index was written: it stays. */
	struct src whole = { .data = data, .len = len };
	CHECK(killed_child(child_fill, dir, &whole, 0));
	s = open_ok(dir, 0);
	lz_store_stats(s, &st);
	CHECK(st.rebuilt == 1 && st.objects == 2);
	CHECK(has(s, "victim", data, len) && has(s, "keep", keep, 5000));
	CHECK(lz_store_evict(s, "victim") == 0);
	close_ok(s);

	/* Killed at any moment: the object is whole or absent, never partial. */
	int present = 0, absent = 0;
	for (int i = 0; i < 20; i++) {
		struct src slow = { .data = data, .len = len, .chunk_ms = 1 };
		killed_child(child_fill, dir, &slow, (unsigned)(5 + i * 2));
		s = open_ok(dir, 0);
		if (s == NULL)
			break;
		int rc = lz_store_lookup(s, "victim", NULL, &fd);
		if (rc == 0) {
			present++;
			CHECK(fd_has(fd, data, len));
			CHECK(lz_store_check(s, "victim", NULL, 0) == 0);
			close(fd);
			lz_store_release(s, "victim");
			lz_store_evict(s, "victim");
		} else {
			absent++;
			CHECK(rc == -ENOENT);
		}
		CHECK(count_files(dir, "tmp") == 0);
		CHECK(has(s, "keep", keep, 5000));
		lz_store_stats(s, &st);
		CHECK(count_files(dir, "objects") == (int)st.objects);
		close_ok(s);
	}
	CHECK(present + absent == 20);
	printf("test_store: kill at any moment: %d whole, %d absent\n", present, absent);
	free(data);
	free(keep);
}

static void check_tree(const char *dir, const char *rel, int *bad)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;

	pathf(path, "%s%s%s", dir, rel[0] ? "/" : "", rel);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX], full[PATH_MAX];
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		pathf(sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		pathf(full, "%s/%s", dir, sub);
		lstat(full, &st);
		if (S_ISDIR(st.st_mode)) {
			check_tree(dir, sub, bad);
			continue;
		}
		/* Only the index, its marker and objects/XX/<32 hex>-N. */
		bool ok = strcmp(sub, "index") == 0 || strcmp(sub, "clean") == 0;
		if (strncmp(sub, "objects/", 8) == 0 && strlen(sub) >= 8 + 3 + 34 &&
		    strspn(sub + 8, "0123456789abcdef") == 2 && sub[10] == '/' &&
		    strspn(sub + 11, "0123456789abcdef") == 32 && sub[43] == '-' &&
		    strspn(sub + 44, "0123456789") == strlen(sub + 44))
			ok = true;
		if (!ok) {
			fprintf(stderr, "unexpected file in the store: %s\n", sub);
			(*bad)++;
		}
	}
	closedir(d);
}

static void test_hostile_keys(void)
{
	char dir[PATH_MAX], top[PATH_MAX], real[PATH_MAX], err[512], prefix[PATH_MAX];
	char longest[LZ_STORE_KEY_MAX + 2], dots[LZ_STORE_KEY_MAX + 1];
	const char *keys[] = { "../../etc/passwd",
			       "/abs",
			       "a/../../b",
			       "with\nnewline\n",
			       ".",
			       "..",
			       "a//b/",
			       "\x01\x7f\xff binary",
			       "x/./y",
			       dots,
			       longest };
	const int n = (int)(sizeof(keys) / sizeof(keys[0]));
	char data[16][32];
	struct lz_object_meta m = meta_of(-1, 1, NULL);
	int fd, bad = 0;

	memset(dots, 0, sizeof(dots));
	for (size_t i = 0; i + 3 <= LZ_STORE_KEY_MAX; i += 3)
		memcpy(dots + i, "../", 3);
	memset(longest, 'k', LZ_STORE_KEY_MAX + 1);
	longest[LZ_STORE_KEY_MAX + 1] = '\0';
	fresh(dir, "hostile");
	pathf(top, "%s/hostile", base);
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		return;
	CHECK(realpath(dir, real) != NULL);
	pathf(prefix, "%s/tmp/", real);
	/* One byte too long, then exactly the limit. */
	CHECK(fill_data(s, longest, "x", 1, &m, &fd, err, sizeof(err)) == -ENAMETOOLONG);
	CHECK(lz_store_lookup(s, longest, NULL, &fd) == -ENAMETOOLONG);
	longest[LZ_STORE_KEY_MAX] = '\0';
	for (int i = 0; i < n; i++) {
		struct src src;
		snprintf(data[i], sizeof(data[i]), "content %d", i);
		src = (struct src){ .data = data[i], .len = strlen(data[i]) };
		CHECK(fill_settled(s, keys[i], &m, fetch_cb, &src, &fd, err, sizeof(err)) == 0);
		CHECK(strncmp(src.tmp_path, prefix, strlen(prefix)) == 0);
		CHECK(fd_has(fd, data[i], strlen(data[i])));
		close(fd);
		lz_store_release(s, keys[i]);
	}
	for (int i = 0; i < n; i++)
		CHECK(has(s, keys[i], data[i], strlen(data[i])));
	close_ok(s);
	check_tree(dir, "", &bad);
	CHECK(bad == 0);
	CHECK(count_in(top) == count_files(dir, ""));
	CHECK(count_files(dir, "objects") == n);

	s = open_ok(dir, 0);
	for (int i = 0; i < n; i++)
		CHECK(has(s, keys[i], data[i], strlen(data[i])));
	close_ok(s);
	/* After a rebuild: all back, but keys too long for the filesystem's xattrs (ext4: ~4000
	 * bytes). */
	char p[PATH_MAX];
	path_in(p, dir, "index");
	unlink(p);
	s = open_ok(dir, 0);
	for (int i = 0; i < n; i++) {
		int rc = lz_store_lookup(s, keys[i], NULL, &fd);
		CHECK(rc == 0 || (rc == -ENOENT && strlen(keys[i]) > 3900));
		if (rc == 0) {
			CHECK(fd_has(fd, data[i], strlen(data[i])));
			close(fd);
			lz_store_release(s, keys[i]);
		}
	}
	close_ok(s);
	check_tree(dir, "", &bad);
	CHECK(bad == 0);
}

static void colliding_name(const char *key, size_t keylen, uint8_t name[LZ_NAME_BYTES])
{
	(void)key;
	(void)keylen;
	memset(name, 0, LZ_NAME_BYTES);
}

static void test_collisions(void)
{
	void (*saved)(const char *, size_t, uint8_t *) = lz_store_name_fn;
	char dir[PATH_MAX], p[PATH_MAX];
	struct lz_object_meta m = meta_of(-1, 1, NULL);
	struct stat sb;

	lz_store_name_fn = colliding_name;
	fresh(dir, "collide");
	struct lz_store *s = open_ok(dir, 0);
	if (s == NULL)
		goto out;
	put(s, "a", "AAA", 3, &m);
	put(s, "b", "BBBB", 4, &m);
	put(s, "c", "CCCCC", 5, &m);
	pathf(p, "%s/objects/00/%032d-2", dir, 0);
	CHECK(stat(p, &sb) == 0 && sb.st_size == 5);
	CHECK(has(s, "a", "AAA", 3) && has(s, "b", "BBBB", 4) && has(s, "c", "CCCCC", 5));
	CHECK(lz_store_evict(s, "b") == 0);
	put(s, "d", "DDDDDD", 6, &m); /* takes b's slot */
	pathf(p, "%s/objects/00/%032d-1", dir, 0);
	CHECK(stat(p, &sb) == 0 && sb.st_size == 6);
	CHECK(count_files(dir, "objects") == 3);
	close_ok(s);
	path_in(p, dir, "index");
	unlink(p);
	s = open_ok(dir, 0);
	CHECK(has(s, "a", "AAA", 3) && has(s, "c", "CCCCC", 5) && has(s, "d", "DDDDDD", 6));
	CHECK(!has(s, "b", "BBBB", 4));
	close_ok(s);
out:
	lz_store_name_fn = saved;
}

/* What a fetch written by another user may leave: a link, a writer still open. */
enum foreign_trick { FOREIGN_PLAIN, FOREIGN_LINK, FOREIGN_WRITER };

struct foreign {
	struct src src;
	enum foreign_trick trick;
	int writer;
	uid_t dir_owner;
};

/* Writes as fetch_cb does, then acts as the fetcher's user would. */
static int foreign_cb(void *ctx, const char *tmp_path, char *err, size_t errlen)
{
	struct foreign *f = ctx;
	char dir[PATH_MAX], other[PATH_MAX + 8];
	struct stat st;
	int rc = fetch_cb(&f->src, tmp_path, err, errlen);

	if (rc < 0)
		return rc;
	snprintf(dir, sizeof(dir), "%s", tmp_path);
	*strrchr(dir, '/') = '\0';
	f->dir_owner = stat(dir, &st) == 0 ? st.st_uid : (uid_t)-1;
	CHECK(chown(tmp_path, 65534, 65534) == 0);
	if (f->trick == FOREIGN_LINK) {
		snprintf(other, sizeof(other), "%s.keep", tmp_path);
		CHECK(link(tmp_path, other) == 0);
	}
	if (f->trick == FOREIGN_WRITER)
		CHECK((f->writer = open(tmp_path, O_WRONLY | O_CLOEXEC)) >= 0);
	return 0;
}

/*
 * lz_store_set_fetcher: tmp/ and each fill's directory are the fetcher's; what
 * it wrote is published root's and read-only, unless it kept a link or a
 * writer, which fails the fill.
 */
static void test_foreign_fetcher(void)
{
	char dir[PATH_MAX], err[512], path[PATH_MAX];
	struct lz_object_meta m = meta_of(5, 1700000000, NULL);
	struct stat st;
	struct lz_store *s;
	int fd = -1;

	pathf(dir, "%s/foreign", base);
	s = open_ok(dir, 0);
	CHECK(lz_store_set_fetcher(s, 65534, 65534, err, sizeof(err)) == 0);
	pathf(path, "%s/tmp", dir);
	CHECK(stat(path, &st) == 0 && st.st_uid == 65534 && (st.st_mode & 07777) == 0700);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0711);

	struct foreign plain = { .src = { .data = "hello", .len = 5 }, .writer = -1 };
	CHECK(fill_settled(s, "plain", &m, foreign_cb, &plain, &fd, err, sizeof(err)) == 0);
	CHECK(plain.dir_owner == 65534);
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
	      (st.st_mode & 07777) == 0400 && st.st_nlink == 1);
	lz_store_release(s, "plain");
	close(fd);

	struct foreign linked = { .src = { .data = "hello", .len = 5 },
				  .trick = FOREIGN_LINK,
				  .writer = -1 };
	CHECK(fill_settled(s, "linked", &m, foreign_cb, &linked, &fd, err, sizeof(err)) < 0);
	CHECK(strstr(err, "2 links") != NULL);

	struct foreign writer = { .src = { .data = "hello", .len = 5 }, .trick = FOREIGN_WRITER };
	CHECK(fill_settled(s, "writer", &m, foreign_cb, &writer, &fd, err, sizeof(err)) < 0);
	CHECK(strstr(err, "still open for writing") != NULL);
	close(writer.writer);
	close_ok(s);
}

static void test_dir_checks(void)
{
	char dir[PATH_MAX], link[PATH_MAX], err[512];
	struct stat sb;
	struct lz_store *s;

	fresh(dir, "dirs");
	CHECK(mkdir(dir, 0755) == 0);
	s = open_ok(dir, 0);
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 07777) == 0700);
	/* One process (one store) at a time. */
	CHECK(lz_store_open(dir, 0, err, sizeof(err)) == NULL && errno == EBUSY);
	CHECK(strstr(err, "in use") != NULL);
	close_ok(s);

	pathf(link, "%s/dirs/link", base);
	CHECK(symlink(dir, link) == 0);
	CHECK(lz_store_open(link, 0, err, sizeof(err)) == NULL && errno == ELOOP);
	CHECK(strstr(err, "symlink") != NULL);

	CHECK(chown(dir, 65534, 65534) == 0);
	CHECK(lz_store_open(dir, 0, err, sizeof(err)) == NULL && errno == EPERM);
	CHECK(strstr(err, "owned by uid 65534") != NULL);
	CHECK(chown(dir, geteuid(), getegid()) == 0);

	pathf(link, "%s/dirs/missing/cache", base);
	CHECK(lz_store_open(link, 0, err, sizeof(err)) == NULL && errno == ENOENT);
	CHECK(strstr(err, "cannot create cache directory") != NULL);

	/* A subdirectory replaced by a symlink is refused, not followed. */
	char sub[PATH_MAX];
	pathf(sub, "%s/objects/7f", dir);
	CHECK(rmdir(sub) == 0 && symlink("/tmp", sub) == 0);
	CHECK(lz_store_open(dir, 0, err, sizeof(err)) == NULL && errno == ENOTDIR);
	CHECK(strstr(err, "objects/7f is not a directory") != NULL);
	unlink(sub);
	s = open_ok(dir, 0);
	close_ok(s);
}

/* Many threads, few keys, a small quota: the books must balance afterwards. */
struct stress {
	struct lz_store *s;
	unsigned seed;
	int bad;
};

static char *stress_data[8];

static void *stress_run(void *arg)
{
	struct stress *t = arg;

	for (int i = 0; i < 1500; i++) {
		unsigned r = rand_r(&t->seed);
		int k = (int)(r % 24), v = (int)((r >> 8) % 2), fd = -1, rc;
		char key[16], err[512] = "";
		size_t len = 1000 + (size_t)k * 100;
		struct lz_object_meta m = meta_of((int64_t)len, 1000 + v, NULL);
		struct src src = { .data = stress_data[k % 4 + 4 * v], .len = len };

		snprintf(key, sizeof(key), "k%d", k);
		switch ((r >> 12) % 6) {
		case 0:
		case 1:
			rc = lz_store_fill(t->s, key, &m, fetch_cb, &src, &fd, err, sizeof(err));
			break;
		case 2:
		case 3:
			rc = lz_store_lookup(t->s, key, &m, &fd);
			break;
		case 4:
			if (lz_store_pin(t->s, key) == 0) {
				usleep(100);
				t->bad += lz_store_unpin(t->s, key) != 0;
			}
			continue;
		default:
			rc = lz_store_evict(t->s, key);
			t->bad += rc != 0 && rc != -ENOENT && rc != -EBUSY;
			continue;
		}
		if (rc == 0) {
			bool same = fd_has(fd, src.data, len);
			int rel;

			close(fd);
			rel = lz_store_release(t->s, key);
			if (!same || rel != 0) {
				fprintf(stderr, "stress: %s: %s, release %d\n", key,
					same ? "same bytes" : "other bytes", rel);
				t->bad++;
			}
		} else if (rc != -ENOENT && rc != -ENOSPC) {
			fprintf(stderr, "stress: %s: %s (%s)\n", key, strerror(-rc), err);
			t->bad++;
		}
	}
	return NULL;
}

static void test_stress(void)
{
	char dir[PATH_MAX];
	pthread_t th[8];
	struct stress t[8];
	struct lz_store_stats st;
	int bad = 0;

	for (int i = 0; i < 8; i++)
		stress_data[i] = pattern(4000, (unsigned)i + 500);
	fresh(dir, "stress");
	struct lz_store *s = open_ok(dir, 20000);
	if (s == NULL)
		return;
	for (int i = 0; i < 8; i++) {
		t[i] = (struct stress){ .s = s, .seed = (unsigned)i * 7919 + 1 };
		pthread_create(&th[i], NULL, stress_run, &t[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
	}
	CHECK(bad == 0);
	lz_store_settle(s);
	lz_store_stats(s, &st);
	CHECK(st.open_objects == 0 && st.pinned == 0 && st.bytes <= 20000);
	CHECK(count_files(dir, "objects") == (int)st.objects && count_files(dir, "tmp") == 0);
	printf("test_store: stress: %llu fills, %llu hits, %llu misses, %llu evictions, %llu "
	       "dropped\n",
	       (unsigned long long)st.fills, (unsigned long long)st.hits,
	       (unsigned long long)st.misses, (unsigned long long)st.evictions,
	       (unsigned long long)st.dropped);
	close_ok(s);
	s = open_ok(dir, 20000);
	struct lz_store_stats st2;
	lz_store_stats(s, &st2);
	CHECK(st2.rebuilt == 0 && st2.objects == st.objects && st2.bytes == st.bytes);
	close_ok(s);
	for (int i = 0; i < 8; i++)
		free(stress_data[i]);
}

static void on_signal(int sig)
{
	unmount_tmpfs();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * A fill answers once the data is checked; making it durable and publishing
 * it follow in the background. Opens meanwhile share the fetch, and a close
 * right away still keeps the object.
 */
static void test_early_answer(void)
{
	char dir[PATH_MAX], err[512];
	size_t len = 4 << 20;
	char *data = malloc(len);
	struct lz_object_meta m = meta_of((int64_t)len, 42, NULL);
	struct src src = { .len = len };
	struct lz_store_stats st;
	int fds[8];

	CHECK(data != NULL);
	if (data == NULL)
		return;
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + 3);
	src.data = data;
	fresh(dir, "early");
	struct lz_store *s = open_ok(dir, 0);
	for (int i = 0; i < 8; i++) {
		CHECK(lz_store_fill(s, "early/obj", &m, fetch_cb, &src, &fds[i], err,
				    sizeof(err)) == 0);
		CHECK(fds[i] >= 0 && fd_has(fds[i], data, len));
	}
	CHECK(atomic_load(&src.calls) == 1);
	for (int i = 0; i < 8; i++) {
		close(fds[i]);
		CHECK(lz_store_release(s, "early/obj") == 0);
	}
	lz_store_settle(s);
	lz_store_stats(s, &st);
	CHECK(st.fills == 1 && st.objects == 1 && st.bytes == len && st.publish_failures == 0);
	CHECK(count_files(dir, "tmp") == 0 && count_files(dir, "objects") == 1);
	CHECK(lz_store_check(s, "early/obj", err, sizeof(err)) == 0);

	/* Closed before its publication could finish: close waits, nothing is lost. */
	CHECK(lz_store_fill(s, "early/second", &m, fetch_cb, &src, &fds[0], err, sizeof(err)) == 0);
	close(fds[0]);
	CHECK(lz_store_release(s, "early/second") == 0);
	close_ok(s);
	s = open_ok(dir, 0);
	lz_store_stats(s, &st);
	CHECK(st.objects == 2 && st.rebuilt == 0);
	CHECK(lz_store_lookup(s, "early/second", &m, &fds[0]) == 0 && fd_has(fds[0], data, len));
	close(fds[0]);
	CHECK(lz_store_release(s, "early/second") == 0);
	CHECK(count_files(dir, "tmp") == 0);
	close_ok(s);
	free(data);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/test_store.XXXXXX");
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	atexit(unmount_tmpfs);
	signal(SIGSEGV, on_signal);
	signal(SIGABRT, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	test_roundtrip();
	test_early_answer();
	test_size_mismatch();
	test_restart_and_damage();
	test_lazy_load();
	test_stale_temp();
	test_single_flight();
	test_while_filling();
	test_replace_open();
	test_lru();
	if (geteuid() == 0)
		test_full_disk();
	else
		printf("test_store: not root, full-disk test skipped\n");
	test_kill();
	test_hostile_keys();
	test_collisions();
	if (geteuid() == 0) {
		test_dir_checks();
		test_foreign_fetcher();
	}
	test_stress();

	unmount_tmpfs();
	rm_rf(base);
	return unit_finish("test_store");
}
