/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

/*
 * The index file: "LZSTORE\n", u32 version, u32 zero, u64 count; COUNT
 * records (record.c); then "LZSTEND\n", u64 count, u32 CRC32 of every byte
 * before it. Rewritten whole (tmp, fsync, rename) at close and sync, never
 * appended to.
 *
 * The index is trusted only when the "clean" marker names it: close writes
 * the marker after the index, open removes it before changing anything. So
 * after a crash, a kill, or a damaged or missing index, open scans the object
 * files instead, reading each one's record from its xattr; the old index then
 * only lends its access times.
 */
#define HEAD	      24
#define TAIL	      20
#define MAGIC	      "LZSTORE\n"
#define MAGIC_END     "LZSTEND\n"
#define INDEX_VERSION 1
#define INDEX_LIMIT   ((size_t)1 << 32) /* far beyond any real cache: a damaged length */

static int write_file(int dir_fd, const char *name, const void *buf, size_t len)
{
	char tmp[32];
	const char *p = buf;
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dir_fd, tmp, 0);
		return rc;
	}
	return fsync(dir_fd) < 0 ? -errno : 0;
}

int lz_index_save(struct lz_store *s, bool clean, char *err, size_t errlen)
{
	size_t cap = HEAD + TAIL, len = HEAD;
	uint64_t count = 0, v64;
	uint32_t v32, crc;
	uint8_t *buf;
	char marker[80];
	int rc;

	pthread_mutex_lock(&s->save_lock);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->table.nbuckets; i++)
		for (struct lz_entry *e = s->table.buckets[i]; e != NULL; e = e->hnext)
			if (e->state == LZ_READY)
				cap += 52 + (e->hash ? strlen(e->hash) : 0) + e->keylen;
	buf = malloc(cap);
	for (size_t i = 0; buf != NULL && i < s->table.nbuckets; i++) {
		for (struct lz_entry *e = s->table.buckets[i]; e != NULL; e = e->hnext) {
			struct lz_record r = {
				.key = e->key,
				.keylen = e->keylen,
				.slot = e->slot,
				.size = e->size,
				.mtime = e->mtime,
				.hash = e->hash ? e->hash : "",
				.crc = e->crc,
				.atime = e->atime,
			};
			if (e->state != LZ_READY)
				continue;
			len += lz_record_encode(&r, buf + len);
			count++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (buf == NULL) {
		pthread_mutex_unlock(&s->save_lock);
		lz_seterr(err, errlen, "saving the cache index: out of memory");
		return -ENOMEM;
	}
	memcpy(buf, MAGIC, 8);
	v32 = htole32(INDEX_VERSION);
	memcpy(buf + 8, &v32, 4);
	memset(buf + 12, 0, 4);
	v64 = htole64(count);
	memcpy(buf + 16, &v64, 8);
	memcpy(buf + len, MAGIC_END, 8);
	memcpy(buf + len + 8, &v64, 8);
	crc = (uint32_t)crc32(0, buf, (uInt)(len + 16));
	v32 = htole32(crc);
	memcpy(buf + len + 16, &v32, 4);
	rc = write_file(s->dir_fd, "index", buf, len + TAIL);
	free(buf);
	if (rc == 0 && clean) {
		int n = snprintf(marker, sizeof(marker), "lazyfs-store clean %08x %llu\n", crc,
				 (unsigned long long)count);
		rc = write_file(s->dir_fd, "clean", marker, (size_t)n);
	}
	pthread_mutex_unlock(&s->save_lock);
	if (rc < 0)
		lz_seterr(err, errlen, "saving the cache index in %s: %s", s->dir, strerror(-rc));
	return rc;
}

/* The clean marker, removed (durably) as it is read: from now on the index may go stale. */
static int take_marker(struct lz_store *s, bool *found, uint32_t *crc, unsigned long long *count,
		       char *err, size_t errlen)
{
	char buf[80];
	ssize_t n = -1;
	int fd = openat(s->dir_fd, "clean", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	*found = false;
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n > 0) {
		buf[n] = '\0';
		*found = sscanf(buf, "lazyfs-store clean %8x %llu\n", crc, count) == 2;
	}
	if (unlinkat(s->dir_fd, "clean", 0) < 0 ? errno != ENOENT : fsync(s->dir_fd) < 0) {
		lz_seterr(err, errlen, "cache directory %s: removing its clean marker: %s", s->dir,
			  strerror(errno));
		return -errno;
	}
	return 0;
}

static struct lz_entry *entry_from(const struct lz_record *r)
{
	struct lz_entry *e = lz_entry_new(r->key, r->keylen);

	if (e == NULL)
		return NULL;
	e->hash = r->hash[0] ? strdup(r->hash) : NULL;
	if (r->hash[0] && e->hash == NULL) {
		lz_entry_free(e);
		return NULL;
	}
	lz_store_name_fn(e->key, e->keylen, e->name);
	e->slot = r->slot;
	e->size = r->size;
	e->mtime = r->mtime;
	e->crc = r->crc;
	e->atime = r->atime;
	e->state = LZ_READY;
	return e;
}

static int read_all(int fd, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size >= INDEX_LIMIT)
		return -EBADMSG;
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		return -ENOMEM;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EBADMSG;
		}
		done += (size_t)n;
	}
	*out = buf;
	*len = done;
	return 0;
}

/* Loads the index into T. -EBADMSG when damaged (T is then emptied), -ENOENT when missing. */
static int load_index(struct lz_store *s, struct lz_table *t, uint32_t *crc, uint64_t *count)
{
	char hashbuf[LZ_STORE_HASH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0, off = HEAD;
	uint64_t v64, total = 0;
	uint32_t v32;
	int rc, fd = openat(s->dir_fd, "index", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EBADMSG;
	rc = read_all(fd, &buf, &len);
	close(fd);
	if (rc < 0)
		return rc == -ENOMEM ? rc : -EBADMSG;
	rc = -EBADMSG;
	if (len < HEAD + TAIL || memcmp(buf, MAGIC, 8) != 0 ||
	    memcmp(buf + len - TAIL, MAGIC_END, 8) != 0)
		goto out;
	memcpy(&v32, buf + 8, 4);
	memcpy(&v64, buf + 16, 8);
	if (le32toh(v32) != INDEX_VERSION || memcmp(&v64, buf + len - TAIL + 8, 8) != 0)
		goto out;
	*count = le64toh(v64);
	memcpy(&v32, buf + len - 4, 4);
	*crc = le32toh(v32);
	if (crc32(0, buf, (uInt)(len - 4)) != *crc)
		goto out;
	for (uint64_t i = 0; i < *count; i++) {
		struct lz_record r;
		struct lz_entry *e;
		size_t n = lz_record_decode(buf + off, len - TAIL - off, &r, hashbuf);

		/* Sizes no disk can hold in sum would wrap the store's byte count. */
		if (n == 0 || __builtin_add_overflow(total, (uint64_t)r.size, &total))
			goto out;
		off += n;
		e = entry_from(&r);
		if (e == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		if (!lz_table_insert(t, e)) {
			lz_entry_free(e);
			goto out;
		}
	}
	rc = off == len - TAIL ? 0 : -EBADMSG;
out:
	if (rc < 0)
		lz_table_free(t);
	free(buf);
	return rc;
}

/* "0123...ef-SLOT": the name bytes and slot, when NAME is one of ours in SUB. */
static bool parse_name(const char *name, const char *sub, uint8_t out[LZ_NAME_BYTES],
		       uint32_t *slot)
{
	unsigned long long v = 0;
	size_t i;

	if (strncmp(name, sub, 2) != 0)
		return false;
	for (i = 0; i < 2 * LZ_NAME_BYTES; i++) {
		const char *hex = "0123456789abcdef", *c = strchr(hex, name[i]);
		if (name[i] == '\0' || c == NULL)
			return false;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)((c - hex) << 4);
		else
			out[i / 2] |= (uint8_t)(c - hex);
	}
	if (name[i++] != '-' || name[i] < '0' || name[i] > '9' || (name[i] == '0' && name[i + 1]))
		return false;
	for (; name[i] >= '0' && name[i] <= '9' && v <= UINT32_MAX; i++)
		v = v * 10 + (unsigned)(name[i] - '0');
	if (name[i] != '\0' || v > UINT32_MAX)
		return false;
	*slot = (uint32_t)v;
	return true;
}

static int64_t ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Adopts the file NAME in objects/SUB when its own record vouches for it, else removes it. */
static void scan_file(struct lz_store *s, struct lz_table *hints, int dfd, const char *sub,
		      const char *name)
{
	uint8_t want[LZ_NAME_BYTES], buf[LZ_RECORD_MAX];
	char hashbuf[LZ_STORE_HASH_MAX];
	struct lz_record r;
	struct lz_entry *e = NULL, *hint;
	struct stat st;
	uint32_t slot;
	ssize_t n = -1;
	int fd = -1;

	if (!parse_name(name, sub, want, &slot))
		goto drop;
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto drop;
	n = fgetxattr(fd, LZ_XATTR, buf, sizeof(buf));
	if (n <= 0 || lz_record_decode(buf, (size_t)n, &r, hashbuf) != (size_t)n ||
	    r.slot != slot || r.size != st.st_size)
		goto drop;
	e = entry_from(&r);
	if (e == NULL || memcmp(e->name, want, LZ_NAME_BYTES) != 0)
		goto drop;
	hint = hints ? lz_table_find(hints, e->key, e->keylen, e->name) : NULL;
	if (hint != NULL && hint->slot == e->slot && hint->size == e->size && hint->crc == e->crc)
		e->atime = hint->atime;
	else
		e->atime = ns(st.st_atim) > ns(st.st_mtim) ? ns(st.st_atim) : ns(st.st_mtim);
	if (!lz_table_insert(&s->table, e))
		goto drop; /* a second copy of one key */
	lz_entry_published(s, e);
	close(fd);
	return;
drop:
	lz_entry_free(e);
	if (fd >= 0)
		close(fd);
	if (unlinkat(dfd, name, 0) == 0)
		s->stats.dropped++;
}

/* Returns how many files it found. */
static size_t scan(struct lz_store *s, struct lz_table *hints)
{
	size_t files = 0;

	for (int i = 0; i < 256; i++) {
		char sub[3];
		struct dirent *de;
		DIR *d;
		int dfd;

		snprintf(sub, sizeof(sub), "%02x", i);
		dfd = openat(s->objects_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			continue;
		d = fdopendir(dfd);
		if (d == NULL) {
			close(dfd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			scan_file(s, hints, dirfd(d), sub, de->d_name);
			files++;
		}
		closedir(d);
	}
	return files;
}

int lz_index_load(struct lz_store *s, char *err, size_t errlen)
{
	struct lz_table loaded;
	unsigned long long mcount = 0;
	uint64_t count = 0;
	uint32_t crc = 0, mcrc = 0;
	bool clean;
	int rc;

	rc = take_marker(s, &clean, &mcrc, &mcount, err, errlen);
	if (rc < 0)
		return rc;
	lz_table_init(&loaded);
	rc = load_index(s, &loaded, &crc, &count);
	if (rc == -ENOMEM) {
		lz_seterr(err, errlen, "loading the cache index: out of memory");
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	if (rc == 0 && clean && crc == mcrc && count == mcount) {
		s->table = loaded;
		for (size_t i = 0; i < s->table.nbuckets; i++)
			for (struct lz_entry *e = s->table.buckets[i]; e != NULL; e = e->hnext)
				lz_entry_published(s, e);
	} else {
		/* A new, empty store has nothing to rebuild: only say so when there was something.
		 */
		s->stats.rebuilt = scan(s, rc == 0 ? &loaded : NULL) > 0 || rc != -ENOENT;
		lz_table_free(&loaded);
	}
	lz_lru_sort(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
