/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The squashfuse backend (images/sqfs.c, our checks around libsquashfuse) on any
 * image: the input is written to a file, opened, and walked from the root
 * (bounded in depth, entries and bytes) with every call the FUSE layer makes:
 * stat, lookup, readdir from the start and resumed at an offset, read,
 * readlink, listxattr and getxattr. Nothing crashes, hangs or leaks, and the
 * answers are self-consistent: reads never return more than asked or past
 * the size, link targets are as long as stat says, attribute lists are whole.
 * (The kernel backend has no such entry point to fuzz: lazyfs hands the
 * kernel any regular file and lets its squashfs judge it.)
 */
#include "config.h"
#include "check.h"
#include "images/sqfs.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEPTH   8
#define MAX_ENTRIES 256		/* entries listed from all directories of one image */
#define READ_MAX    (256 << 10) /* bytes read from all files of one image */
#define CHUNK	    8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct listing {
	unsigned n;
	off_t second; /* where the listing resumes after its first entry */
	struct {
		char name[256];
		uint64_t ino;
	} kids[16];
};

static struct lz_sqfs *img;
static unsigned entries;
static size_t bytes_read;
static char path[PATH_MAX];

static void check_xattrs(uint64_t ino)
{
	static char names[65536], value[65536];
	ssize_t len = lz_sqfs_listxattr(img, ino, NULL, 0);

	if (len <= 0 || len > (ssize_t)sizeof(names))
		return;
	ssize_t got = lz_sqfs_listxattr(img, ino, names, sizeof(names));
	if (got < 0)
		return;
	CHECK(got == len && names[got - 1] == '\0');
	for (char *n = names; n < names + got; n += strlen(n) + 1) {
		ssize_t vlen = lz_sqfs_getxattr(img, ino, n, NULL, 0);
		if (vlen >= 0)
			CHECK(lz_sqfs_getxattr(img, ino, n, value, sizeof(value)) <= vlen);
	}
}

static void check_file(uint64_t ino, off_t size)
{
	static char buf[CHUNK];

	for (off_t off = 0; off < size && bytes_read < READ_MAX; off += CHUNK) {
		ssize_t n = lz_sqfs_read(img, ino, buf, CHUNK, off);
		if (n < 0)
			return;
		CHECK(n <= CHUNK && n <= size - off);
		bytes_read += CHUNK;
	}
	/* A read of the last byte, and one at the end. */
	if (size > 0)
		CHECK(lz_sqfs_read(img, ino, buf, CHUNK, size - 1) <= 1);
	CHECK(lz_sqfs_read(img, ino, buf, CHUNK, size) <= 0);
}

static int collect(void *ctx, const struct lz_sqfs_dirent *de)
{
	struct listing *l = ctx;
	const char *name = de->name;
	uint64_t ino = de->id;
	mode_t type = de->type;
	off_t next = de->next;

	CHECK(name[0] != '\0' && strlen(name) < sizeof(l->kids[0].name));
	CHECK(strchr(name, '/') == NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	CHECK(next > 2 && (type & S_IFMT) == type && type != 0);
	if (l->second == 0)
		l->second = next;
	if (l->n < sizeof(l->kids) / sizeof(l->kids[0])) {
		strcpy(l->kids[l->n].name, name);
		l->kids[l->n++].ino = ino;
	}
	return ++entries >= MAX_ENTRIES;
}

static void visit(uint64_t ino, int depth)
{
	struct listing l = { .n = 0 }, resumed = { .n = 0 };
	char target[4097];
	struct stat st;
	uint64_t child;

	if (depth > MAX_DEPTH || entries >= MAX_ENTRIES || lz_sqfs_stat(img, ino, &st) != 0)
		return;
	check_xattrs(ino);
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		check_file(ino, st.st_size);
		break;
	case S_IFLNK:
		if (lz_sqfs_readlink(img, ino, target, sizeof(target)) == 0)
			CHECK((off_t)strlen(target) == st.st_size);
		break;
	case S_IFDIR:
		lz_sqfs_readdir(img, ino, 0, collect, &l);
		if (l.second != 0)
			lz_sqfs_readdir(img, ino, l.second, collect, &resumed);
		lz_sqfs_lookup(img, ino, "~no such name~", &child, NULL);
		for (unsigned i = 0; i < l.n; i++) {
			/* Visits what a lookup finds, as the FUSE layer would. */
			if (lz_sqfs_lookup(img, ino, l.kids[i].name, &child, &st) == 0)
				visit(child, depth + 1);
		}
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	int fd;

	if (path[0] == '\0') {
		const char *base = getenv("LAZYFS_FUZZ_TMP");
		base = base ? base : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(path, sizeof(path), "%s/lazyfs-fuzz-sqfs.%d", base, (int)getpid());
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size);
	close(fd);
	err[0] = '\0';
	img = lz_sqfs_open(path, err, sizeof(err));
	unlink(path); /* the image keeps its descriptor */
	if (img == NULL) {
		CHECK(err[0] != '\0');
		return 0;
	}
	entries = 0;
	bytes_read = 0;
	visit(lz_sqfs_root(img), 0);
	lz_sqfs_close(img);
	img = NULL;
	return 0;
}
