/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The libsquashfuse wrapper against the tree an image was built from.
 *
 *   test_sqfs IMAGE SOURCE_DIR   compare IMAGE with SOURCE_DIR
 *   test_sqfs                    build a tree and images with mksquashfs, compare,
 *                                then feed the wrapper truncated and corrupted copies
 */
#include "config.h"
#include "images/sqfs.h"
#include "unit.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 131072 /* mksquashfs's default block size */

static uint64_t rng_state = 0x243F6A8885A308D3u;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible runs from the seed printed at start. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static void fill_random(char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(rnd() >> 56);
}

/* Whole contents of PATH (malloc'd, *LEN set), NULL on error. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

static int write_bytes(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	return done == len ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Building the source tree                                            */

/* What an unprivileged run cannot create. */
static bool have_devices, have_chown, have_trusted;

static void mk_file(const char *dir, const char *name, size_t size, bool random)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *data = calloc(1, size + 1);
	if (random)
		fill_random(data, size);
	else
		for (size_t i = 0; i < size; i++)
			data[i] = (char)('a' + i % 23);
	if (write_bytes(path, data, size) != 0)
		abort();
	free(data);
	free(path);
}

static void build_tree(const char *src)
{
	char *p;

	mk_file(src, "empty", 0, false);
	mk_file(src, "one", 1, false);
	mk_file(src, "page", 4096, false);
	mk_file(src, "big", 1048576 + 3, true);
	mk_file(src, "block", BLOCK, true);
	mk_file(src, "block2plus1", 2 * BLOCK + 1, false);
	mk_file(src, "text", 300000, false);
	/* Files for the threads: random, so every block is stored uncompressed or in a fragment. */
	for (int i = 0; i < 8; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", i);
		mk_file(src, name, 200000 + (size_t)i * 77777, i % 2 == 0);
	}

	p = xasprintf("%s/setuid", src);
	mk_file(src, "setuid", 10, false);
	chmod(p, 04755);
	free(p);
	p = xasprintf("%s/owned", src);
	mk_file(src, "owned", 5, false);
	have_chown = chown(p, 1234, 5678) == 0;
	struct timespec times[2] = { { 1234567890, 0 }, { 1234567890, 0 } };
	utimensat(AT_FDCWD, p, times, 0);
	free(p);

	p = xasprintf("%s/sticky", src);
	mkdir(p, 01777);
	chmod(p, 01777);
	free(p);
	p = xasprintf("%s/setgid", src);
	mkdir(p, 02750);
	chmod(p, 02750);
	free(p);
	p = xasprintf("%s/emptydir", src);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/a", src);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/a/b", src);
	mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/a/b", src);
	mk_file(p, "deep", 77, false);
	free(p);

	/* Symlinks: short, dangling, long, absolute. */
	p = xasprintf("%s/link", src);
	symlink("big", p);
	free(p);
	p = xasprintf("%s/dangling", src);
	symlink("does/not/exist", p);
	free(p);
	char target[1001];
	for (int i = 0; i < 1000; i++)
		target[i] = i % 10 == 9 ? '/' : (char)('a' + i % 26);
	target[1000] = '\0';
	p = xasprintf("%s/longlink", src);
	symlink(target, p);
	free(p);
	p = xasprintf("%s/a/abslink", src);
	symlink("/etc/passwd", p);
	free(p);

	/* A hard link pair, one name in a subdirectory. */
	mk_file(src, "hl_a", 5000, true);
	char *a = xasprintf("%s/hl_a", src), *b = xasprintf("%s/a/hl_b", src);
	if (link(a, b) != 0)
		perror("link");
	free(b);

	/* Special files. */
	p = xasprintf("%s/fifo", src);
	mkfifo(p, 0640);
	free(p);
	p = xasprintf("%s/chardev", src);
	have_devices = mknod(p, S_IFCHR | 0600, makedev(1, 3)) == 0;
	free(p);
	if (have_devices) {
		p = xasprintf("%s/blockdev", src);
		mknod(p, S_IFBLK | 0660, makedev(259, 1048575));
		free(p);
	}
	p = xasprintf("%s/socket", src);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(p) < sizeof(addr.sun_path)) {
		strcpy(addr.sun_path, p);
		bind(s, (struct sockaddr *)&addr, sizeof(addr));
	}
	close(s);
	free(p);

	/* Extended attributes: several files share values (stored once, out of line). */
	char longval[3000];
	fill_random(longval, sizeof(longval));
	setxattr(a, "user.comment", "hello", 5, 0);
	setxattr(a, "user.empty", "", 0, 0);
	setxattr(a, "user.long", longval, sizeof(longval), 0);
	for (int i = 0; i < 8; i++) {
		char *f = xasprintf("%s/t%d", src, i);
		setxattr(f, "user.shared", "same value for all", 18, 0);
		setxattr(f, "user.which", f, strlen(f), 0);
		free(f);
	}
	p = xasprintf("%s/a", src);
	setxattr(p, "user.dir", "on a directory", 14, 0);
	have_trusted = setxattr(p, "trusted.t", "trusted value", 13, 0) == 0;
	free(p);
	p = xasprintf("%s/link", src);
	lsetxattr(p, "trusted.onlink", "x", 1, 0);
	free(p);
	free(a);

	/* A file with holes: whole zero blocks become sparse blocks. */
	p = xasprintf("%s/sparse", src);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char chunk[5000];
	fill_random(chunk, sizeof(chunk));
	pwrite(fd, chunk, sizeof(chunk), 1048576);
	pwrite(fd, chunk, sizeof(chunk), 4 * 1048576 + 100);
	ftruncate(fd, 5 * 1048576 + 17);
	close(fd);
	free(p);

	/* 1000 entries with long names: a listing over several metadata blocks, so it has an index.
	 */
	p = xasprintf("%s/many", src);
	mkdir(p, 0755);
	for (int i = 0; i < 1000; i++) {
		char name[64];
		snprintf(name, sizeof(name), "entry-%04d-%s", i,
			 i % 3 ? "padding-to-grow-the-listing" : "x");
		if (i % 100 == 7) {
			char *d = xasprintf("%s/%s", p, name);
			mkdir(d, 0755);
			free(d);
		} else {
			mk_file(p, name, (size_t)(i % 50), false);
		}
	}
	free(p);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static bool mksquashfs(const char *src, const char *img, const char *extra)
{
	char *cmd = xasprintf(
		"mksquashfs '%s' '%s' -noappend -quiet -no-progress -xattrs %s >/dev/null", src,
		img, extra);
	int r = system(cmd);
	free(cmd);
	return r == 0;
}

/* ------------------------------------------------------------------ */
/* Comparing an image with its source                                  */

struct entry {
	char *name;
	uint64_t ino;
	mode_t type;
	off_t next;
};

struct listing {
	struct entry *e;
	size_t n, cap;
	size_t stop_after;   /* 0 = all */
	struct lz_sqfs *img; /* stat each entry from inside the callback */
	int nested_errors;
};

static int collect(void *ctx, const struct lz_sqfs_dirent *de)
{
	struct listing *l = ctx;
	const char *name = de->name;
	uint64_t ino = de->id;
	mode_t type = de->type;
	off_t next = de->next;
	struct stat st;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->e = realloc(l->e, l->cap * sizeof(*l->e));
	}
	l->e[l->n++] = (struct entry){ strdup(name), ino, type, next };
	if (l->img != NULL && (lz_sqfs_stat(l->img, ino, &st) != 0 ||
			       (st.st_mode & S_IFMT) != type || st.st_ino != de->number))
		l->nested_errors++;
	return l->stop_after != 0 && l->n >= l->stop_after;
}

static void listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files met during the walk, for the thread test. */
struct file_ref {
	uint64_t ino;
	char *path;
};
static struct file_ref files[64];
static size_t nfiles;

static bool xattr_name_stored(const char *name)
{
	/* mksquashfs keeps these namespaces only. */
	return strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	       strncmp(name, "security.", 9) == 0;
}

static void compare_xattrs(struct lz_sqfs *img, uint64_t ino, const char *path)
{
	char src_names[65536], img_names[65536];
	ssize_t sn = llistxattr(path, src_names, sizeof(src_names));
	ssize_t in = lz_sqfs_listxattr(img, ino, img_names, sizeof(img_names));
	CHECK(in >= 0);
	if (sn < 0 || in < 0)
		return;
	CHECK(lz_sqfs_listxattr(img, ino, NULL, 0) == in);
	if (in > 0)
		CHECK(lz_sqfs_listxattr(img, ino, img_names, (size_t)in - 1) == -ERANGE);

	/* Same set of names. */
	char *a[256], *b[256];
	size_t na = 0, nb = 0;
	for (char *s = src_names; s < src_names + sn; s += strlen(s) + 1)
		if (xattr_name_stored(s) && na < 256)
			a[na++] = s;
	for (char *s = img_names; s < img_names + in; s += strlen(s) + 1)
		if (nb < 256)
			b[nb++] = s;
	qsort(a, na, sizeof(*a), cmp_str);
	qsort(b, nb, sizeof(*b), cmp_str);
	CHECK(na == nb);
	for (size_t i = 0; i < na && i < nb; i++) {
		CHECK_STR(a[i], b[i]);
		char sv[65536], iv[65536];
		ssize_t sl = lgetxattr(path, a[i], sv, sizeof(sv));
		ssize_t il = lz_sqfs_getxattr(img, ino, a[i], iv, sizeof(iv));
		CHECK(sl == il && sl >= 0 && memcmp(sv, iv, (size_t)sl) == 0);
		CHECK(lz_sqfs_getxattr(img, ino, a[i], NULL, 0) == sl);
		if (sl > 1)
			CHECK(lz_sqfs_getxattr(img, ino, a[i], iv, (size_t)sl - 1) == -ERANGE);
	}
	CHECK(lz_sqfs_getxattr(img, ino, "user.no-such-attribute", NULL, 0) == -ENODATA);
	CHECK(lz_sqfs_getxattr(img, ino, "bogus.prefix", NULL, 0) == -ENODATA);
}

static void compare_file(struct lz_sqfs *img, uint64_t ino, const char *path, off_t size)
{
	size_t len;
	char *want = slurp(path, &len);
	CHECK(want != NULL && (off_t)len == size);
	if (want == NULL)
		return;
	char *got = malloc(len + 4096);

	/* All at once, asking for more than there is. */
	memset(got, 0x5a, len + 4096);
	CHECK(lz_sqfs_read(img, ino, got, len + 4096, 0) == (ssize_t)len);
	CHECK(memcmp(got, want, len) == 0);
	/* At the end and beyond. */
	CHECK(lz_sqfs_read(img, ino, got, 100, (off_t)len) == 0);
	CHECK(lz_sqfs_read(img, ino, got, 100, (off_t)len + 12345) == 0);
	CHECK(lz_sqfs_read(img, ino, got, 0, 0) == 0);
	CHECK(lz_sqfs_read(img, ino, got, 10, -1) == -EINVAL);
	if (len == 0) {
		free(got);
		free(want);
		return;
	}
	/* Sequential odd-sized chunks. */
	size_t chunk = 4093 + (size_t)(rnd() % 70000);
	bool same = true;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t r = lz_sqfs_read(img, ino, got, chunk, (off_t)off);
		same = same && r == (ssize_t)n && memcmp(got, want + off, n) == 0;
	}
	CHECK(same);
	/* Random odd offsets and sizes, including ones that straddle blocks and the end. */
	for (int i = 0; i < 40; i++) {
		size_t off = (size_t)(rnd() % len) | 1;
		size_t n = (size_t)(rnd() % (len < 300000 ? len + 7 : 300000)) | 1;
		if (off >= len)
			off = len - 1;
		size_t expect = len - off < n ? len - off : n;
		ssize_t r = lz_sqfs_read(img, ino, got, n, (off_t)off);
		same = same && r == (ssize_t)expect && memcmp(got, want + off, expect) == 0;
	}
	/* Block boundaries. */
	for (size_t b = BLOCK; b < len; b += BLOCK) {
		ssize_t r = lz_sqfs_read(img, ino, got, 2, (off_t)b - 1);
		same = same && r == 2 && memcmp(got, want + b - 1, 2) == 0;
	}
	CHECK(same);
	free(got);
	free(want);
}

static void compare_tree(struct lz_sqfs *img, uint64_t ino, const char *path, int depth);

static void compare_node(struct lz_sqfs *img, uint64_t ino, const char *path, int depth)
{
	struct stat want, got;

	CHECK(lstat(path, &want) == 0);
	CHECK(lz_sqfs_stat(img, ino, &got) == 0);
	CHECK(got.st_mode == want.st_mode);
	CHECK(got.st_uid == want.st_uid && got.st_gid == want.st_gid);
	CHECK(got.st_nlink == want.st_nlink);
	CHECK(got.st_mtime == want.st_mtime);
	if (got.st_mode != want.st_mode || got.st_nlink != want.st_nlink)
		fprintf(stderr, "  at %s: mode %o/%o nlink %ju/%ju\n", path, got.st_mode,
			want.st_mode, (uintmax_t)got.st_nlink, (uintmax_t)want.st_nlink);
	CHECK(got.st_ino != 0);
	compare_xattrs(img, ino, path);

	char buf[8192];
	switch (want.st_mode & S_IFMT) {
	case S_IFREG:
		CHECK(got.st_size == want.st_size);
		/* Holes are not counted, like the kernel's squashfs does. */
		if (strstr(path, "/sparse") == NULL)
			CHECK(got.st_blocks == (want.st_size + 511) / 512);
		else
			CHECK(got.st_blocks < want.st_size / 512 && got.st_blocks >= 10000 / 512);
		compare_file(img, ino, path, want.st_size);
		CHECK(lz_sqfs_readlink(img, ino, buf, sizeof(buf)) == -EINVAL);
		if (nfiles < sizeof(files) / sizeof(files[0]) && want.st_size > 100000)
			files[nfiles++] = (struct file_ref){ ino, strdup(path) };
		break;
	case S_IFLNK: {
		char target[8192];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		CHECK(n >= 0);
		target[n < 0 ? 0 : n] = '\0';
		CHECK(got.st_size == n);
		CHECK(lz_sqfs_readlink(img, ino, buf, sizeof(buf)) == 0);
		CHECK_STR(buf, target);
		CHECK(lz_sqfs_readlink(img, ino, buf, (size_t)n + 1) == 0);
		CHECK_STR(buf, target);
		CHECK(lz_sqfs_readlink(img, ino, buf, (size_t)n) == -ENAMETOOLONG);
		CHECK(lz_sqfs_read(img, ino, buf, 10, 0) == -EINVAL);
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
		CHECK(got.st_rdev == want.st_rdev);
		break;
	case S_IFDIR:
		CHECK(lz_sqfs_read(img, ino, buf, 10, 0) == -EISDIR);
		compare_tree(img, ino, path, depth + 1);
		break;
	}
}

static void compare_tree(struct lz_sqfs *img, uint64_t dir, const char *path, int depth)
{
	struct listing l = { .img = img };
	CHECK(lz_sqfs_readdir(img, dir, 0, collect, &l) == 0);
	CHECK(l.nested_errors == 0);

	/* The source's names, sorted: squashfs listings are sorted by strcmp. */
	struct dirent **src;
	int n = scandir(path, &src, NULL, alphasort);
	CHECK(n >= 2);
	char **names = calloc((size_t)(n > 0 ? n : 1), sizeof(*names));
	size_t nn = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(src[i]->d_name, ".") != 0 && strcmp(src[i]->d_name, "..") != 0)
			names[nn++] = strdup(src[i]->d_name);
		free(src[i]);
	}
	free(src);
	qsort(names, nn, sizeof(*names), cmp_str);
	CHECK(l.n == nn);

	off_t prev = 0;
	for (size_t i = 0; i < l.n && i < nn; i++) {
		struct entry *e = &l.e[i];
		struct stat st, lst;
		uint64_t child = UINT64_MAX;

		CHECK_STR(e->name, names[i]);
		CHECK(e->next > prev && e->next > 2);
		prev = e->next;
		char *p = xasprintf("%s/%s", path, e->name);
		CHECK(lstat(p, &lst) == 0 && (lst.st_mode & S_IFMT) == e->type);
		/* Lookup agrees with the listing. */
		CHECK(lz_sqfs_lookup(img, dir, e->name, &child, &st) == 0);
		CHECK(child == e->ino);
		struct stat st2;
		CHECK(lz_sqfs_stat(img, child, &st2) == 0 && st2.st_ino == st.st_ino &&
		      st2.st_mode == st.st_mode && st2.st_size == st.st_size);
		compare_node(img, e->ino, p, depth);
		free(p);
	}

	/* Missing names: before, between and after every entry. */
	uint64_t child = 12345;
	CHECK(lz_sqfs_lookup(img, dir, "", &child, NULL) == -ENOENT);
	CHECK(lz_sqfs_lookup(img, dir, "!", &child, NULL) == -ENOENT);
	CHECK(lz_sqfs_lookup(img, dir, "~~~~", &child, NULL) == -ENOENT);
	for (size_t i = 0; i < nn; i++) {
		char *miss = xasprintf("%s~", names[i]);
		CHECK(lz_sqfs_lookup(img, dir, miss, &child, NULL) == -ENOENT);
		free(miss);
	}
	CHECK(child == 12345);

	/* Resuming from every offset gives the rest of the listing. */
	if (l.n > 0) {
		size_t step = l.n > 50 ? 37 : 1;
		for (size_t i = 0; i < l.n; i += step) {
			struct listing rest = { 0 };
			CHECK(lz_sqfs_readdir(img, dir, l.e[i].next, collect, &rest) == 0);
			CHECK(rest.n == l.n - i - 1);
			for (size_t j = 0; j < rest.n && i + 1 + j < l.n; j++)
				CHECK(strcmp(rest.e[j].name, l.e[i + 1 + j].name) == 0 &&
				      rest.e[j].next == l.e[i + 1 + j].next);
			listing_free(&rest);
		}
		/* Stopping early, in pieces. */
		struct listing part = { .stop_after = 1 };
		off_t off = 0;
		size_t seen = 0;
		while (true) {
			part.stop_after = part.n + 7;
			size_t before = part.n;
			CHECK(lz_sqfs_readdir(img, dir, off, collect, &part) == 0);
			if (part.n == before)
				break;
			seen = part.n;
			off = part.e[part.n - 1].next;
		}
		CHECK(seen == l.n);
		for (size_t i = 0; i < seen && i < l.n; i++)
			CHECK(strcmp(part.e[i].name, l.e[i].name) == 0);
		listing_free(&part);
		/* An offset inside a header or an entry is refused; one past the end lists nothing.
		 */
		struct listing none = { 0 };
		CHECK(lz_sqfs_readdir(img, dir, 5, collect, &none) == -EINVAL);
		CHECK(lz_sqfs_readdir(img, dir, l.e[l.n - 1].next + 1000000, collect, &none) == 0);
		CHECK(lz_sqfs_readdir(img, dir, -1, collect, &none) == -EINVAL);
		CHECK(none.n == 0);
	}

	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	listing_free(&l);
}

static void compare_image(struct lz_sqfs *img, const char *src)
{
	uint64_t root = lz_sqfs_root(img);
	compare_node(img, root, src, 0);
}

/* Checks the fixture's own special cases (only for the tree built here). */
static void check_fixture(struct lz_sqfs *img)
{
	uint64_t root = lz_sqfs_root(img), a, hl_a, hl_b, file, dummy;
	struct stat sa, sb, st;

	/* Hard links: one inode, one id, the right link count. */
	CHECK(lz_sqfs_lookup(img, root, "hl_a", &hl_a, &sa) == 0);
	CHECK(lz_sqfs_lookup(img, root, "a", &a, NULL) == 0);
	CHECK(lz_sqfs_lookup(img, a, "hl_b", &hl_b, &sb) == 0);
	CHECK(hl_a == hl_b && sa.st_ino == sb.st_ino && sa.st_nlink == 2 && sb.st_nlink == 2);

	/* Not a directory. */
	CHECK(lz_sqfs_lookup(img, root, "big", &file, NULL) == 0);
	CHECK(lz_sqfs_lookup(img, file, "x", &dummy, NULL) == -ENOTDIR);
	struct listing l = { 0 };
	CHECK(lz_sqfs_readdir(img, file, 0, collect, &l) == -ENOTDIR);

	/* Setuid, sticky, setgid. */
	CHECK(lz_sqfs_lookup(img, root, "setuid", &dummy, &st) == 0 &&
	      st.st_mode == (S_IFREG | 04755));
	CHECK(lz_sqfs_lookup(img, root, "sticky", &dummy, &st) == 0 &&
	      st.st_mode == (S_IFDIR | 01777));
	CHECK(lz_sqfs_lookup(img, root, "setgid", &dummy, &st) == 0 &&
	      st.st_mode == (S_IFDIR | 02750));
	CHECK(lz_sqfs_lookup(img, root, "owned", &dummy, &st) == 0 && st.st_mtime == 1234567890);
	if (have_chown)
		CHECK(st.st_uid == 1234 && st.st_gid == 5678);
	if (have_devices) {
		CHECK(lz_sqfs_lookup(img, root, "chardev", &dummy, &st) == 0 &&
		      S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
		CHECK(lz_sqfs_lookup(img, root, "blockdev", &dummy, &st) == 0 &&
		      S_ISBLK(st.st_mode) && st.st_rdev == makedev(259, 1048575));
	}
	/* trusted.* comes back as trusted.* (libsquashfuse 0.1.104 alone would call it security.*).
	 */
	char v[64];
	if (have_trusted)
		CHECK(lz_sqfs_getxattr(img, a, "trusted.t", v, sizeof(v)) == 13 &&
		      memcmp(v, "trusted value", 13) == 0);
	CHECK(lz_sqfs_getxattr(img, a, "security.t", v, sizeof(v)) == -ENODATA);
	/* A directory with 1000 entries: every name is found. */
	uint64_t many;
	CHECK(lz_sqfs_lookup(img, root, "many", &many, &st) == 0 && st.st_nlink == 12);
	int found = 0;
	for (int i = 0; i < 1000; i++) {
		char name[64];
		snprintf(name, sizeof(name), "entry-%04d-%s", i,
			 i % 3 ? "padding-to-grow-the-listing" : "x");
		found += lz_sqfs_lookup(img, many, name, &dummy, NULL) == 0;
	}
	CHECK(found == 1000);
	listing_free(&l);
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */

struct reader {
	struct lz_sqfs *img;
	struct file_ref *file;
	char *want;
	size_t len;
	uint64_t seed;
	int errors;
	int reads;
};

static void *reader_loop(void *arg)
{
	struct reader *r = arg;
	char *buf = malloc(300000);
	uint64_t s = r->seed;

	for (int i = 0; i < 300; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		size_t off = (size_t)(s % r->len);
		size_t n = 1 + (size_t)((s >> 20) % 300000);
		size_t expect = r->len - off < n ? r->len - off : n;
		ssize_t got = lz_sqfs_read(r->img, r->file->ino, buf, n, (off_t)off);
		if (got != (ssize_t)expect || memcmp(buf, r->want + off, expect) != 0)
			r->errors++;
		struct stat st;
		if (lz_sqfs_stat(r->img, r->file->ino, &st) != 0 || (size_t)st.st_size != r->len)
			r->errors++;
		r->reads++;
	}
	free(buf);
	return NULL;
}

static void test_threads(struct lz_sqfs *img)
{
	struct reader r[8];
	pthread_t t[8];

	if (nfiles == 0)
		return;
	for (int i = 0; i < 8; i++) {
		r[i] = (struct reader){ .img = img,
					.file = &files[(size_t)i % nfiles],
					.seed = rnd() | 1 };
		r[i].want = slurp(r[i].file->path, &r[i].len);
		CHECK(r[i].want != NULL && r[i].len > 0);
		pthread_create(&t[i], NULL, reader_loop, &r[i]);
	}
	int errors = 0, reads = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		errors += r[i].errors;
		reads += r[i].reads;
		free(r[i].want);
	}
	CHECK(errors == 0 && reads == 8 * 300);
}

/* ------------------------------------------------------------------ */
/* Broken images                                                       */

static bool open_fails(const char *path, const char *reason_part)
{
	char err[256] = "";
	struct lz_sqfs *img = lz_sqfs_open(path, err, sizeof(err));
	if (img != NULL) {
		lz_sqfs_close(img);
		fprintf(stderr, "  %s: opened, expected \"%s\"\n", path, reason_part);
		return false;
	}
	if (strstr(err, reason_part) == NULL || strchr(err, '\n') != NULL) {
		fprintf(stderr, "  %s: \"%s\", expected \"%s\"\n", path, err, reason_part);
		return false;
	}
	return true;
}

/* Everything reachable, with a bound on the work; the results only must not crash. */
static void exercise(struct lz_sqfs *img, uint64_t dir, int depth, int *budget, int *eio)
{
	struct listing l = { 0 };
	char buf[65536];
	struct stat st;

	if (depth > 6 || *budget <= 0)
		return;
	int r = lz_sqfs_readdir(img, dir, 0, collect, &l);
	*eio += r == -EIO;
	lz_sqfs_listxattr(img, dir, buf, sizeof(buf));
	for (size_t i = 0; i<l.n && * budget> 0; i++, (*budget)--) {
		uint64_t child;
		uint64_t ino = l.e[i].ino;
		lz_sqfs_lookup(img, dir, l.e[i].name, &child, &st);
		if (lz_sqfs_stat(img, ino, &st) != 0) {
			(*eio)++;
			continue;
		}
		ssize_t n = lz_sqfs_listxattr(img, ino, buf, sizeof(buf));
		for (char *s = buf; n > 0 && s < buf + n; s += strlen(s) + 1)
			lz_sqfs_getxattr(img, ino, s, buf + 40000, 25000);
		struct listing one = { .stop_after = 1 };
		lz_sqfs_readdir(img, dir, l.e[i].next, collect, &one);
		listing_free(&one);
		if (S_ISDIR(st.st_mode)) {
			exercise(img, ino, depth + 1, budget, eio);
		} else if (S_ISLNK(st.st_mode)) {
			lz_sqfs_readlink(img, ino, buf, sizeof(buf));
		} else if (S_ISREG(st.st_mode)) {
			for (off_t off = 0; off < st.st_size && off < 2 * 1048576;
			     off += (off_t)sizeof(buf)) {
				ssize_t got = lz_sqfs_read(img, ino, buf, sizeof(buf), off);
				*eio += got == -EIO;
				if (got <= 0)
					break;
			}
			lz_sqfs_read(img, ino, buf, 100, st.st_size > 50 ? st.st_size - 50 : 0);
		}
	}
	listing_free(&l);
}

/* EXPECT_EIO: the image's data blocks are compressed, so garbage in them must be noticed. */
static void test_broken(const char *img_path, const char *tmp, bool expect_eio)
{
	size_t len;
	char *image = slurp(img_path, &len);
	char *path = xasprintf("%s/broken.sqfs", tmp);
	CHECK(image != NULL && len > 4096);
	if (image == NULL)
		return;

	/* Random bytes, an empty file, a directory, a missing file. */
	char *junk = malloc(65536);
	fill_random(junk, 65536);
	CHECK(write_bytes(path, junk, 65536) == 0 && open_fails(path, "not a squashfs image"));
	CHECK(write_bytes(path, junk, 0) == 0 && open_fails(path, "not a squashfs image"));
	free(junk);
	CHECK(open_fails(tmp, "not a regular file"));
	char *missing = xasprintf("%s/missing.sqfs", tmp);
	CHECK(open_fails(missing, "cannot open: No such file"));
	free(missing);

	/* Truncated copies: inside the superblock, and anywhere before the end of the data. */
	uint64_t bytes_used;
	memcpy(&bytes_used, image + 40, sizeof(bytes_used));
	bytes_used = le64toh(bytes_used);
	CHECK(bytes_used <= len);
	CHECK(write_bytes(path, image, 50) == 0 && open_fails(path, "truncated"));
	size_t cuts[] = {
		96, 4096, bytes_used / 3, bytes_used / 2, bytes_used - 100, bytes_used - 1
	};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		CHECK(write_bytes(path, image, cuts[i]) == 0 && open_fails(path, "truncated"));
	/* The padding after the data may go. */
	CHECK(write_bytes(path, image, bytes_used) == 0);
	char err[256];
	struct lz_sqfs *img = lz_sqfs_open(path, err, sizeof(err));
	CHECK(img != NULL);
	lz_sqfs_close(img);

	/* A wrong version, an unknown compressor, a bad block size. */
	char *copy = malloc(len);
	memcpy(copy, image, len);
	copy[28] = 3; /* s_major */
	CHECK(write_bytes(path, copy, len) == 0 &&
	      open_fails(path, "squashfs 3.0 is not supported"));
	memcpy(copy, image, len);
	copy[20] = 42; /* compression */
	CHECK(write_bytes(path, copy, len) == 0 && open_fails(path, "unknown compression"));
	memcpy(copy, image, len);
	copy[12] = 1; /* block_size */
	CHECK(write_bytes(path, copy, len) == 0 && open_fails(path, "corrupt superblock"));

	/* Garbage over the data: metadata still reads, compressed blocks give -EIO. */
	memcpy(copy, image, len);
	uint64_t inode_table;
	memcpy(&inode_table, image + 64, sizeof(inode_table));
	inode_table = le64toh(inode_table);
	for (uint64_t i = 96 + 1000; i + 1000 < inode_table; i += 3000)
		fill_random(copy + i, 200);
	CHECK(write_bytes(path, copy, len) == 0);
	img = lz_sqfs_open(path, err, sizeof(err));
	CHECK(img != NULL);
	if (img != NULL) {
		int budget = 100000, eio = 0;
		exercise(img, lz_sqfs_root(img), 0, &budget, &eio);
		CHECK(eio > 0 || !expect_eio);
		lz_sqfs_close(img);
	}
	free(copy);
	free(image);
	free(path);
}

/* Random byte changes all over an image; with uncompressed metadata they reach every parser. */
static void test_fuzz(const char *img_path, const char *tmp, int rounds)
{
	size_t len;
	char *image = slurp(img_path, &len);
	char *path = xasprintf("%s/fuzz.sqfs", tmp);
	char *copy = malloc(len);
	uint64_t inode_table;
	int opened = 0, eio_total = 0;

	CHECK(image != NULL);
	if (image == NULL)
		return;
	memcpy(&inode_table, image + 64, sizeof(inode_table));
	inode_table = le64toh(inode_table);
	for (int round = 0; round < rounds; round++) {
		memcpy(copy, image, len);
		int changes = 1 + (int)(rnd() % 8);
		for (int c = 0; c < changes; c++) {
			size_t at;
			switch (rnd() % 4) {
			case 0: /* anywhere */
				at = (size_t)(rnd() % len);
				break;
			case 1: /* the superblock */
				at = (size_t)(rnd() % 96);
				break;
			default: /* the metadata */
				at = (size_t)(inode_table + rnd() % (len - inode_table));
			}
			if (rnd() % 2)
				copy[at] = (char)rnd();
			else
				copy[at] ^= (char)(1u << (rnd() % 8));
		}
		if (write_bytes(path, copy, len) != 0)
			abort();
		char err[256];
		struct lz_sqfs *img = lz_sqfs_open(path, err, sizeof(err));
		if (img == NULL)
			continue;
		opened++;
		int budget = 3000, eio = 0;
		exercise(img, lz_sqfs_root(img), 0, &budget, &eio);
		eio_total += eio;
		lz_sqfs_close(img);
	}
	printf("fuzz %s: %d rounds, %d opened, %d -EIO seen\n", strrchr(img_path, '/') + 1, rounds,
	       opened, eio_total);
	CHECK(opened > 0);
	free(copy);
	free(image);
	free(path);
}

/* ------------------------------------------------------------------ */

static void files_reset(void)
{
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	nfiles = 0;
}

static int run_on(const char *image, const char *src)
{
	char err[256] = "";

	files_reset();
	struct lz_sqfs *img = lz_sqfs_open(image, err, sizeof(err));
	CHECK(img != NULL);
	if (img == NULL) {
		fprintf(stderr, "%s: %s\n", image, err);
		return -1;
	}
	compare_image(img, src);
	test_threads(img);
	lz_sqfs_close(img);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *seed_env = getenv("TEST_SQFS_SEED");
	rng_state = seed_env ? strtoull(seed_env, NULL, 0) | 1 : (uint64_t)time(NULL) | 1;
	printf("test_sqfs: seed %ju\n", (uintmax_t)rng_state);

	if (argc == 3) {
		run_on(argv[1], argv[2]);
		const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		char *tmp = xasprintf("%s/test_sqfs.XXXXXX", tmpdir);
		if (mkdtemp(tmp) != NULL) {
			test_broken(argv[1], tmp, false);
			rm_tree(tmp);
		}
		free(tmp);
		return unit_finish("test_sqfs");
	}
	if (argc != 1) {
		fprintf(stderr, "usage: %s [IMAGE SOURCE_DIR]\n", argv[0]);
		return 2;
	}
	if (system("command -v mksquashfs >/dev/null 2>&1") != 0) {
		printf("test_sqfs: mksquashfs not found, skipped\n");
		return 77;
	}

	const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *tmp = xasprintf("%s/test_sqfs.XXXXXX", tmpdir);
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	char *src = xasprintf("%s/src", tmp), *img = xasprintf("%s/img.sqfs", tmp);
	char *plain = xasprintf("%s/plain.sqfs", tmp);
	mkdir(src, 0755);
	build_tree(src);

	CHECK(mksquashfs(src, img, "-comp gzip"));
	if (run_on(img, src) == 0) {
		char err[256];
		struct lz_sqfs *h = lz_sqfs_open(img, err, sizeof(err));
		check_fixture(h);
		lz_sqfs_close(h);
	}

	/* Every other compressor libsquashfuse knows. */
	const char *comps[] = { "-comp xz", "-comp zstd", "-comp lz4", "-comp lzo" };
	for (size_t i = 0; i < sizeof(comps) / sizeof(comps[0]); i++) {
		char *other = xasprintf("%s/other.sqfs", tmp);
		CHECK(mksquashfs(src, other, comps[i]));
		printf("test_sqfs: %s\n", comps[i]);
		run_on(other, src);
		unlink(other);
		free(other);
	}

	/* An empty image: the root is the only inode, and its id is 0. */
	char *esrc = xasprintf("%s/esrc", tmp), *eimg = xasprintf("%s/empty.sqfs", tmp);
	mkdir(esrc, 0755);
	CHECK(mksquashfs(esrc, eimg, ""));
	if (run_on(eimg, esrc) == 0) {
		char err[256];
		struct lz_sqfs *h = lz_sqfs_open(eimg, err, sizeof(err));
		struct stat st;
		CHECK(lz_sqfs_root(h) == 0 && lz_sqfs_stat(h, 0, &st) == 0 && S_ISDIR(st.st_mode) &&
		      st.st_size == 3);
		lz_sqfs_close(h);
	}
	free(esrc);
	free(eimg);

	/* No compression, no fragments: other code paths, same answers. */
	CHECK(mksquashfs(src, plain, "-noI -noD -noF -noX -no-fragments"));
	run_on(plain, src);
	test_broken(img, tmp, true);

	/* A small uncompressed image with fragments for the fuzzer. */
	char *fsrc = xasprintf("%s/fsrc", tmp), *fimg = xasprintf("%s/fuzz-plain.sqfs", tmp);
	char *fimgz = xasprintf("%s/fuzz-gzip.sqfs", tmp);
	mkdir(fsrc, 0755);
	char *cmd = xasprintf("cp -a '%s/a' '%s/hl_a' '%s/link' '%s/longlink' '%s/t1' '%s/sparse' "
			      "'%s/one' '%s/setuid' '%s/fifo' '%s/'",
			      src, src, src, src, src, src, src, src, src, fsrc);
	CHECK(system(cmd) == 0);
	free(cmd);
	char *fmany = xasprintf("%s/many", fsrc);
	mkdir(fmany, 0755);
	for (int i = 0; i < 400; i++) {
		char name[64];
		snprintf(name, sizeof(name), "file-with-a-long-name-%04d", i);
		mk_file(fmany, name, (size_t)(i * 7 % 3000), false);
		if (i % 40 == 0) {
			char *f = xasprintf("%s/%s", fmany, name);
			setxattr(f, "user.shared", "shared value", 12, 0);
			free(f);
		}
	}
	free(fmany);
	CHECK(mksquashfs(fsrc, fimg, "-noI -noD -noF -noX"));
	CHECK(mksquashfs(fsrc, fimgz, "-comp gzip"));
	run_on(fimg, fsrc);
	const char *rounds_env = getenv("TEST_SQFS_FUZZ_ROUNDS");
	int rounds = rounds_env ? atoi(rounds_env) : 300;
	test_fuzz(fimg, tmp, rounds);
	test_fuzz(fimgz, tmp, rounds / 3);

	files_reset();
	rm_tree(tmp);
	free(fsrc);
	free(fimg);
	free(fimgz);
	free(src);
	free(img);
	free(plain);
	free(tmp);
	return unit_finish("test_sqfs");
}
