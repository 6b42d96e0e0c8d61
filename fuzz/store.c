/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The cache index load path: the input is the "index" file of a store
 * directory, with a "clean" marker that vouches for it, and lz_store_open /
 * lz_store_close run on it. Whatever the index holds, opening never crashes
 * or leaks, and the store it gives keeps its promises: within its quota, and
 * the metadata of each key it took is what the index said; the index it
 * saves at close, the next open trusts and finds whole. Record and file
 * CRCs are made right first (except for one input in eight), so the fuzzer
 * reaches what lies behind them. One directory per process, emptied of the
 * index and marker each time, under $LAZYFS_FUZZ_TMP (else $TMPDIR or /tmp).
 */
#include "config.h"
#include "check.h"
#include "cache/store/store_int.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define HEAD  24 /* index.c's layout */
#define TAIL  20
#define QUOTA (64u << 20)
#define KEYS  8 /* keys looked up after the open */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void remove_dir(void)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_file(const char *name, const void *buf, size_t len)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *names[] = { "index", "clean", "index.tmp", "clean.tmp" };
	char err[LZ_ERR_MAX], marker[80], hashbuf[LZ_STORE_HASH_MAX], path[PATH_MAX + 16];
	bool fix = crc32(0, data, (uInt)size) % 8 != 0;
	struct lz_store_stats stats;
	struct lz_store *s;
	uint8_t *buf;

	if (dir[0] == '\0') {
		const char *base = getenv("LAZYFS_FUZZ_TMP");
		base = base ? base : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(dir, sizeof(dir), "%s/lazyfs-fuzz-store.XXXXXX", base);
		CHECK(mkdtemp(dir) != NULL);
		atexit(remove_dir);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	if (size >= HEAD + TAIL) {
		size_t off = HEAD;
		while (fix && off + 52 <= size - TAIL) {
			uint32_t reclen = get32(buf + off);
			if (reclen < 52 || reclen > size - TAIL - off)
				break;
			put32(buf + off + reclen - 4, (uint32_t)crc32(0, buf + off, reclen - 4));
			off += reclen;
		}
		if (fix)
			put32(buf + size - 4, (uint32_t)crc32(0, buf, (uInt)(size - 4)));
		unsigned long long count = 0;
		for (int i = 7; i >= 0; i--)
			count = count << 8 | buf[16 + i];
		int n = snprintf(marker, sizeof(marker), "lazyfs-store clean %08x %llu\n",
				 get32(buf + size - 4), count);
		write_file("clean", marker, (size_t)n);
	}
	write_file("index", buf, size);

	s = lz_store_open(dir, QUOTA, err, sizeof(err));
	if (s != NULL) {
		unsigned __int128 total = 0;
		size_t off = HEAD;

		lz_store_stats(s, &stats);
		CHECK(stats.bytes <= stats.quota && stats.quota == QUOTA);
		/* The first keys of the index: what the store says of them is what it read. */
		for (int k = 0; k < KEYS && size >= HEAD + TAIL && off < size - TAIL; k++) {
			struct lz_object_meta meta;
			struct lz_record r;
			char key[LZ_STORE_KEY_MAX + 1];
			size_t n = lz_record_decode(buf + off, size - TAIL - off, &r, hashbuf);
			int fd;

			if (n == 0)
				break;
			off += n;
			memcpy(key, r.key, r.keylen);
			key[r.keylen] = '\0';
			if (lz_store_meta(s, key, &meta) != 0)
				continue;
			total += (uint64_t)meta.size;
			CHECK(meta.size == r.size && (uint64_t)meta.size <= QUOTA);
			CHECK(meta.mtime.tv_sec == r.mtime.tv_sec &&
			      meta.mtime.tv_nsec == r.mtime.tv_nsec &&
			      strcmp(meta.hash, r.hash) == 0);
			/* No object file exists: a lookup finds the entry and drops it. Half
			 * of them stay for the index that close writes. */
			if (k % 2 == 1 && lz_store_lookup(s, key, NULL, &fd) == 0)
				close(fd);
		}
		CHECK(total <= QUOTA);
		lz_store_stats(s, &stats);
		CHECK(lz_store_close(s, err, sizeof(err)) == 0);
		/* What close saved, the next open trusts and finds whole. */
		if (stats.objects > 0) {
			struct lz_store_stats again;
			s = lz_store_open(dir, QUOTA, err, sizeof(err));
			CHECK(s != NULL);
			lz_store_stats(s, &again);
			CHECK(again.rebuilt == 0 && again.objects == stats.objects &&
			      again.bytes == stats.bytes && again.evictions == 0);
			CHECK(lz_store_close(s, err, sizeof(err)) == 0);
		}
	}
	free(buf);
	return 0;
}
