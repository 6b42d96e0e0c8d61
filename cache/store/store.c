/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

const char *lz_key_show(const char *key, char *buf, size_t size)
{
	size_t i, n = strlen(key), max = size > 4 ? size - 4 : 0;

	for (i = 0; i < n && i < max; i++)
		buf[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' : key[i];
	strcpy(buf + i, i < n ? "..." : "");
	return buf;
}

static int key_check(const char *key, size_t *keylen)
{
	size_t n;

	if (key == NULL)
		return -EINVAL;
	n = strnlen(key, LZ_STORE_KEY_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > LZ_STORE_KEY_MAX)
		return -ENAMETOOLONG;
	*keylen = n;
	return 0;
}

static void store_free(struct lz_store *s)
{
	if (s->tmp_fd >= 0)
		close(s->tmp_fd);
	if (s->objects_fd >= 0)
		close(s->objects_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd); /* and the flock with it */
	lz_table_free(&s->table);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->save_lock);
	pthread_cond_destroy(&s->changed);
	free(s->dir);
	free(s);
}

struct lz_store *lz_store_open(const char *dir, uint64_t quota_bytes, char *err, size_t errlen)
{
	struct lz_store *s = calloc(1, sizeof(*s));
	int rc;

	lz_seterr(err, errlen, "%s", "");
	if (s == NULL) {
		lz_seterr(err, errlen, "out of memory");
		return NULL;
	}
	s->dir_fd = s->objects_fd = s->tmp_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->save_lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	lz_table_init(&s->table);
	s->quota = UINT64_MAX; /* until known: loading must not evict */
	s->quota_asked = quota_bytes;
	/* The index is loaded later (load.c): a mount does not wait for it. */
	rc = lz_dir_open(s, dir, err, errlen);
	if (rc < 0) {
		if (err != NULL && errlen > 0 && err[0] == '\0')
			lz_seterr(err, errlen, "cache directory %s: %s", dir, strerror(-rc));
		store_free(s);
		errno = -rc;
		return NULL;
	}
	return s;
}

int lz_store_close(struct lz_store *s, char *err, size_t errlen)
{
	int rc;

	if (s == NULL)
		return 0;
	lz_store_join_loader(s);
	/* Never loaded: nothing changed on disk, and the marker still vouches for the index. */
	pthread_mutex_lock(&s->lock);
	bool loaded = s->loaded;
	rc = loaded ? s->load_rc : 0;
	pthread_mutex_unlock(&s->lock);
	if (rc < 0)
		lz_seterr(err, errlen, "%s", s->load_err);
	if (loaded && rc == 0) {
		lz_store_settle(s);
		rc = lz_index_save(s, true, err, errlen);
	}
	store_free(s);
	return rc;
}

void lz_store_settle(struct lz_store *s)
{
	pthread_mutex_lock(&s->lock);
	lz_store_ready(s);
	lz_settle_wait(s);
	pthread_mutex_unlock(&s->lock);
}

void lz_store_on_evict(struct lz_store *s, lz_store_evicted_fn *fn, void *ctx)
{
	pthread_mutex_lock(&s->lock);
	s->evicted = fn;
	s->evicted_ctx = ctx;
	pthread_mutex_unlock(&s->lock);
}

int lz_store_set_fetcher(struct lz_store *s, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	/*
	 * Search only: the others may reach tmp/ but list nothing here. tmp/ is
	 * made ours before its mode is set (a reopen finds it the fetcher's, and
	 * changing the mode of another's file takes CAP_FOWNER, which we lack).
	 */
	if (fchmod(s->dir_fd, 0711) < 0 || fchown(s->tmp_fd, geteuid(), getegid()) < 0 ||
	    fchmod(s->tmp_fd, 0700) < 0 || fchown(s->tmp_fd, uid, gid) < 0) {
		lz_seterr(err, errlen, "cache directory %s: giving tmp/ to uid %u: %s", s->dir,
			  (unsigned)uid, strerror(errno));
		return -errno;
	}
	s->foreign_fetcher = true;
	s->fetcher_uid = uid;
	s->fetcher_gid = gid;
	return 0;
}

void lz_store_set_log(struct lz_store *s, lz_log_fn *log, void *ctx)
{
	pthread_mutex_lock(&s->lock);
	s->log = log;
	s->log_ctx = ctx;
	pthread_mutex_unlock(&s->lock);
}

int lz_store_sync(struct lz_store *s, char *err, size_t errlen)
{
	pthread_mutex_lock(&s->lock);
	int rc = lz_store_ready(s);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		lz_seterr(err, errlen, "%s", s->load_err);
		return rc;
	}
	return lz_index_save(s, false, err, errlen);
}

/* Same type of hash on both sides: they must agree. Else there is nothing to compare. */
static bool hash_match(const char *have, const char *want)
{
	const char *hc, *wc;

	if (have == NULL || want[0] == '\0')
		return true;
	hc = strchr(have, ':');
	wc = strchr(want, ':');
	if (hc - have != wc - want || memcmp(have, want, (size_t)(hc - have)) != 0)
		return true;
	return strcmp(hc, wc) == 0;
}

/* EXPECT's hash is already normalized. */
static bool meta_match(const struct lz_entry *e, const struct lz_object_meta *expect)
{
	if (expect == NULL)
		return true;
	return (expect->size < 0 || expect->size == e->size) &&
	       expect->mtime.tv_sec == e->mtime.tv_sec &&
	       expect->mtime.tv_nsec == e->mtime.tv_nsec && hash_match(e->hash, expect->hash);
}

/* A copy of META with its hash normalized; -EINVAL for a hash that cannot be one. */
static int meta_prepare(const struct lz_object_meta *meta, struct lz_object_meta *out)
{
	if (meta == NULL)
		return 0;
	*out = *meta;
	if (memchr(meta->hash, '\0', sizeof(meta->hash)) == NULL ||
	    lz_hash_normalize(meta->hash, out->hash, sizeof(out->hash)) < 0 ||
	    meta->mtime.tv_nsec < 0 || meta->mtime.tv_nsec >= 1000000000L)
		return -EINVAL;
	return 0;
}

/*
 * E is READY and one open reference was taken for the caller. Opens its file
 * with the lock dropped, so a slow disk stalls no other lookup; the open
 * reference keeps it from eviction meanwhile, and the generation tells when a
 * stale drop replaced it anyway. On failure the reference is dropped:
 * -EAGAIN, look again; -ENOENT, the file was missing or damaged, now dropped.
 */
int lz_entry_open(struct lz_store *s, struct lz_entry *e, int *fd)
{
	uint64_t gen = e->gen;
	int64_t size = e->size;
	char path[LZ_OBJ_PATH];
	struct stat st;
	int f, rc = 0;

	lz_entry_path(e, path);
	pthread_mutex_unlock(&s->lock);
	f = lz_obj_open(s, path, O_RDONLY);
	if (f < 0)
		rc = f;
	else if (fstat(f, &st) < 0)
		rc = -errno;
	pthread_mutex_lock(&s->lock);
	if (rc == 0 && e->gen == gen && S_ISREG(st.st_mode) && st.st_size == size) {
		*fd = f;
		return 0;
	}
	if (f >= 0)
		close(f);
	lz_entry_put_open(s, e);
	if (e->gen != gen)
		return -EAGAIN;
	/* Never trust the index blindly: removed or truncated behind our back. */
	if (rc == 0 || rc == -ENOENT || rc == -ELOOP) {
		if (e->state == LZ_READY) {
			lz_entry_drop(s, e);
			s->stats.dropped++;
		}
		return -ENOENT;
	}
	return rc; /* EMFILE and the like say nothing about the object */
}

int lz_store_lookup(struct lz_store *s, const char *key, const struct lz_object_meta *expect,
		    int *fd)
{
	struct lz_object_meta want;
	uint8_t name[LZ_NAME_BYTES];
	struct lz_entry *e;
	size_t keylen;
	int rc = key_check(key, &keylen);

	if (rc == 0)
		rc = meta_prepare(expect, &want);
	if (rc < 0)
		return rc;
	lz_store_name_fn(key, keylen, name);
	pthread_mutex_lock(&s->lock);
	rc = lz_store_ready(s);
	if (rc < 0) {
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	do {
		e = lz_table_find(&s->table, key, keylen, name);
		if (e == NULL || e->state != LZ_READY) {
			rc = -ENOENT;
			break;
		}
		if (!meta_match(e, expect ? &want : NULL)) {
			lz_entry_drop(s, e);
			s->stats.dropped++;
			rc = -ENOENT;
		} else {
			lz_entry_get_open(s, e);
			rc = fd != NULL ? lz_entry_open(s, e, fd) : 0;
			if (rc == 0)
				e->atime = lz_clock_ns(CLOCK_REALTIME);
		}
		lz_entry_maybe_free(s, e);
	} while (rc == -EAGAIN);
	if (rc == 0)
		s->stats.hits++;
	else
		s->stats.misses++;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/*
 * Waits for the fill running on E. 0: it succeeded, and *FD is a descriptor of
 * what it fetched (E's generation *GEN), with an open reference on E for the
 * caller.
 */
static int wait_flight(struct lz_store *s, struct lz_entry *e, int *fd, uint64_t *gen, char *err,
		       size_t errlen)
{
	struct lz_flight *f = e->flight;
	bool late = f->done; /* the filler handed out open references before we came */
	int rc;

	if (!late)
		f->waiters++;
	f->refs++;
	while (!f->done)
		pthread_cond_wait(&s->changed, &s->lock);
	rc = f->rc;
	if (rc < 0) {
		lz_seterr(err, errlen, "%s", f->err);
	} else {
		if (late)
			lz_entry_get_open(s, e);
		rc = lz_reopen_fd(f->fd);
		*gen = f->gen;
		if (rc >= 0) {
			*fd = rc;
			rc = 0;
		} else {
			lz_seterr(err, errlen, "reopening the fetched file: %s", strerror(-rc));
			lz_entry_put_open(s, e);
		}
	}
	lz_flight_put(f);
	return rc;
}

/* Runs the fetch for E as the one filler; the others wait on its flight. */
static int lead_flight(struct lz_store *s, struct lz_entry *e, const struct lz_object_meta *meta,
		       lz_store_fetch_fn *fetch, void *ctx, int *fd, char *err, size_t errlen)
{
	struct lz_flight *f = calloc(1, sizeof(*f));
	int rc;

	if (f == NULL) {
		lz_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->refs = 1;
	f->fd = -1;
	e->flight = f;
	e->state = LZ_FILLING;
	rc = lz_fill_run(s, e, meta, fetch, ctx, fd, f->err, sizeof(f->err));
	f->rc = rc;
	f->done = true;
	if (rc < 0)
		e->flight = NULL; /* on success the publication lets go of it */
	pthread_cond_broadcast(&s->changed);
	if (rc < 0)
		lz_seterr(err, errlen, "%s", f->err);
	lz_flight_put(f);
	return rc;
}

int lz_store_fill(struct lz_store *s, const char *key, const struct lz_object_meta *meta,
		  lz_store_fetch_fn *fetch, void *ctx, int *fd, char *err, size_t errlen)
{
	struct lz_object_meta m;
	uint64_t gen;
	uint8_t name[LZ_NAME_BYTES];
	struct lz_entry *e;
	size_t keylen;
	int rc = key_check(key, &keylen);

	lz_seterr(err, errlen, "%s", "");
	if (rc == 0 && (meta == NULL || fetch == NULL || fd == NULL))
		rc = -EINVAL;
	if (rc == 0 && meta_prepare(meta, &m) < 0) {
		lz_seterr(err, errlen, "bad object metadata: hash \"%.40s\", mtime nanoseconds %ld",
			  meta->hash, (long)meta->mtime.tv_nsec);
		rc = -EINVAL;
	}
	if (rc < 0)
		return rc;
	lz_store_name_fn(key, keylen, name);
	pthread_mutex_lock(&s->lock);
	rc = lz_store_ready(s);
	if (rc < 0) {
		lz_seterr(err, errlen, "%s", s->load_err);
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	e = lz_table_find(&s->table, key, keylen, name);
	if (e == NULL)
		e = lz_table_add(&s->table, key, keylen, name);
	if (e == NULL) {
		pthread_mutex_unlock(&s->lock);
		lz_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->holds++;
	for (;;) {
		if (e->state == LZ_READY && !meta_match(e, &m)) {
			lz_entry_drop(s, e);
			s->stats.dropped++;
		} else if (e->state == LZ_READY) {
			lz_entry_get_open(s, e);
			rc = fd != NULL ? lz_entry_open(s, e, fd) : 0;
			if (rc == 0)
				s->stats.hits++;
			if (rc != -EAGAIN && rc != -ENOENT)
				break;
		} else if (e->state == LZ_EVICTING ||
			   (e->state == LZ_SETTLING && !meta_match(e, &m))) {
			pthread_cond_wait(&s->changed, &s->lock);
		} else if (e->state == LZ_FILLING || e->state == LZ_SETTLING) {
			rc = wait_flight(s, e, fd, &gen, err, errlen);
			if (rc < 0)
				break;
			/*
			 * Its outcome is ours, unless the object changed since it was
			 * fetched, or another fill replaced it before we woke up.
			 */
			if (e->gen == gen && meta_match(e, &m))
				break;
			close(*fd);
			lz_entry_put_open(s, e);
		} else {
			rc = lead_flight(s, e, &m, fetch, ctx, fd, err, errlen);
			break;
		}
	}
	if (rc == 0)
		e->atime = lz_clock_ns(CLOCK_REALTIME);
	e->holds--;
	lz_entry_maybe_free(s, e);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* The entry of KEY (lock held), or NULL with *RC set. */
static struct lz_entry *find(struct lz_store *s, const char *key, int *rc)
{
	uint8_t name[LZ_NAME_BYTES];
	size_t keylen;
	struct lz_entry *e;

	*rc = key_check(key, &keylen);
	if (*rc == 0)
		*rc = lz_store_ready(s);
	if (*rc < 0)
		return NULL;
	lz_store_name_fn(key, keylen, name);
	e = lz_table_find(&s->table, key, keylen, name);
	if (e == NULL)
		*rc = -ENOENT;
	return e;
}

int lz_store_release(struct lz_store *s, const char *key)
{
	struct lz_entry *e;
	int rc;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, &rc);
	if (e != NULL && e->opens > 0) {
		lz_entry_put_open(s, e);
		lz_entry_maybe_free(s, e);
	} else if (rc == 0 || rc == -ENOENT) {
		rc = -EINVAL; /* a release without its open */
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int lz_store_pin(struct lz_store *s, const char *key)
{
	struct lz_entry *e;
	int rc;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, &rc);
	if (e != NULL && e->state != LZ_READY && e->state != LZ_FILLING && e->state != LZ_SETTLING)
		rc = -ENOENT;
	else if (e != NULL)
		lz_entry_pin(s, e, +1);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int lz_store_unpin(struct lz_store *s, const char *key)
{
	struct lz_entry *e;
	int rc;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, &rc);
	if (e != NULL && e->pins == 0)
		rc = -EINVAL;
	else if (e != NULL) {
		lz_entry_pin(s, e, -1);
		lz_entry_maybe_free(s, e);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int lz_store_evict(struct lz_store *s, const char *key)
{
	struct lz_entry *e;
	int rc;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, &rc);
	if (e != NULL && e->state != LZ_READY)
		rc = e->state == LZ_FILLING || e->state == LZ_SETTLING ? -EBUSY : -ENOENT;
	else if (e != NULL && (e->opens || e->pins))
		rc = -EBUSY;
	else if (e != NULL) {
		lz_entry_drop(s, e);
		s->stats.evictions++;
		if (s->evicted != NULL)
			s->evicted(s->evicted_ctx, e->key);
		lz_entry_maybe_free(s, e);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

bool lz_store_filling(struct lz_store *s, const char *key)
{
	struct lz_entry *e;
	bool filling;
	int rc;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, &rc);
	filling = e != NULL && (e->state == LZ_FILLING || e->state == LZ_SETTLING);
	pthread_mutex_unlock(&s->lock);
	return filling;
}

bool lz_store_has_room(struct lz_store *s, uint64_t bytes)
{
	struct statvfs vfs;
	bool room;

	pthread_mutex_lock(&s->lock);
	room = s->used + s->reserved + bytes <= s->quota;
	pthread_mutex_unlock(&s->lock);
	/* The disk too: other files share it, and the quota may be set too high. */
	if (room && fstatvfs(s->objects_fd, &vfs) == 0)
		room = (uint64_t)vfs.f_bavail * vfs.f_frsize >= bytes + (1u << 20);
	return room;
}

int lz_store_check(struct lz_store *s, const char *key, char *err, size_t errlen)
{
	char shown[96];
	struct lz_entry *e;
	uint32_t crc = 0;
	uint64_t gen;
	int rc, fd = -1;

	lz_seterr(err, errlen, "%s", "");
	pthread_mutex_lock(&s->lock);
	do {
		e = find(s, key, &rc);
		if (e == NULL || e->state != LZ_READY) {
			pthread_mutex_unlock(&s->lock);
			return e ? -ENOENT : rc;
		}
		lz_entry_get_open(s, e);
		rc = lz_entry_open(s, e, &fd);
		if (rc == -EAGAIN)
			lz_entry_maybe_free(s, e);
	} while (rc == -EAGAIN);
	if (rc < 0) {
		lz_entry_maybe_free(s, e);
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	gen = e->gen;
	pthread_mutex_unlock(&s->lock);
	rc = lz_digest_fd(fd, NULL, &crc, err, errlen);
	close(fd);
	pthread_mutex_lock(&s->lock);
	lz_entry_put_open(s, e);
	if (rc == 0 && e->gen == gen && e->state == LZ_READY && crc != e->crc) {
		lz_seterr(err, errlen,
			  "cached copy of %s is damaged (CRC32 %08x, recorded %08x): dropped",
			  lz_key_show(key, shown, sizeof(shown)), crc, e->crc);
		lz_entry_drop(s, e);
		s->stats.dropped++;
		rc = -EIO;
	}
	lz_entry_maybe_free(s, e);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int lz_store_meta(struct lz_store *s, const char *key, struct lz_object_meta *meta)
{
	struct lz_entry *e;
	int rc;

	pthread_mutex_lock(&s->lock);
	e = find(s, key, &rc);
	if (e != NULL && e->state != LZ_READY)
		rc = -ENOENT;
	else if (e != NULL) {
		meta->size = e->size;
		meta->mtime = e->mtime;
		snprintf(meta->hash, sizeof(meta->hash), "%s", e->hash ? e->hash : "");
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void lz_store_stats(struct lz_store *s, struct lz_store_stats *stats)
{
	pthread_mutex_lock(&s->lock);
	lz_store_ready(s);
	*stats = s->stats;
	stats->bytes = s->used;
	stats->quota = s->quota;
	pthread_mutex_unlock(&s->lock);
}
