/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "store_int.h"
#include "common/clock.h"
#include "common/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Beyond the data: the xattr, a directory entry, filesystem metadata. */
#define SLACK (16 * 1024)

/* One fill, run without the store's lock; then, once checked, its publication. */
struct fill {
	struct lz_store *s;
	struct lz_entry *e;	    /* held by the caller: its key and slot stay put */
	struct lz_object_meta meta; /* a copy: publication outlives the caller's */
	char *key_copy;		    /* for the log line after the entry may be gone */
	lz_store_fetch_fn *fetch;
	void *ctx;
	char tmpname[48];	 /* its directory under tmp/ */
	char tmp_path[PATH_MAX]; /* tmp/NAME/data, absolute, for the fetcher */
	char obj_path[LZ_OBJ_PATH];
	int tmpdir_fd, fd;
	int64_t size;
	uint32_t crc;
	bool crc_done;		  /* computed while checking the remote's hash */
	struct lz_flight *flight; /* publication: holds fd, and a reference for us */
	uint64_t reserved;	  /* quota bytes reserved for it */
	bool retried;		  /* the one retry after a full disk is spent */
	uint64_t freed;		  /* bytes that retry evicted */
	char *err;
	size_t errlen;
};

static bool no_space(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

static uint64_t disk_free(struct fill *f)
{
	struct statvfs vfs;

	if (fstatvfs(f->s->objects_fd, &vfs) < 0)
		return 0;
	return (uint64_t)vfs.f_bavail * vfs.f_frsize;
}

/*
 * The disk (or a disk quota) is full although the cache quota is not: other
 * files share the filesystem, or the quota was set too high. Evicts least
 * recently used objects worth what WANT bytes lack. False when nothing could go.
 */
static bool make_space(struct fill *f, int rc, uint64_t want)
{
	uint64_t avail = disk_free(f), need;

	f->retried = true;
	/* statvfs knows nothing of user quotas: then free all WANT. */
	if (rc == -EDQUOT || want + SLACK > avail)
		need = rc == -EDQUOT ? want + SLACK : want + SLACK - avail;
	else
		need = 1;
	pthread_mutex_lock(&f->s->lock);
	f->freed = lz_store_free_disk(f->s, need);
	pthread_mutex_unlock(&f->s->lock);
	return f->freed > 0;
}

static int no_space_error(struct fill *f, int rc, const char *doing, uint64_t want)
{
	char tail[160];

	if (f->freed > 0) {
		snprintf(tail, sizeof(tail), "even after evicting %llu bytes",
			 (unsigned long long)f->freed);
	} else {
		pthread_mutex_lock(&f->s->lock);
		snprintf(tail, sizeof(tail),
			 "and nothing left to evict (%llu objects open, %llu pinned)",
			 (unsigned long long)f->s->stats.open_objects,
			 (unsigned long long)f->s->stats.pinned);
		pthread_mutex_unlock(&f->s->lock);
	}
	lz_seterr(f->err, f->errlen,
		  "cache disk full while %s: %s: %llu bytes needed, %llu free in %s, %s", doing,
		  strerror(-rc), (unsigned long long)want, (unsigned long long)disk_free(f),
		  f->s->dir, tail);
	return rc;
}

/* Runs the fetch into an empty temporary directory of its own. */
static int run_fetch(struct fill *f)
{
	char ferr[LZ_ERR_MAX] = "";
	int rc;

	if (f->tmpdir_fd < 0) {
		if (mkdirat(f->s->tmp_fd, f->tmpname, 0700) < 0) {
			rc = -errno;
			lz_seterr(f->err, f->errlen, "creating a directory in %s/tmp: %s",
				  f->s->dir, strerror(errno));
			return rc;
		}
		f->tmpdir_fd = openat(f->s->tmp_fd, f->tmpname,
				      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (f->tmpdir_fd < 0 ||
		    (f->s->foreign_fetcher &&
		     fchown(f->tmpdir_fd, f->s->fetcher_uid, f->s->fetcher_gid) < 0)) {
			rc = -errno;
			lz_seterr(f->err, f->errlen, "preparing %s/tmp/%s: %s", f->s->dir,
				  f->tmpname, strerror(errno));
			return rc;
		}
	} else {
		lz_remove_tree(f->tmpdir_fd);
	}
	rc = f->fetch(f->ctx, f->tmp_path, ferr, sizeof(ferr));
	if (rc > 0)
		rc = -EIO; /* a callback that forgot the sign */
	if (rc < 0)
		lz_seterr(f->err, f->errlen, "fetch failed: %s", ferr[0] ? ferr : strerror(-rc));
	return rc;
}

/*
 * The fetcher's user wrote the file: make it ours and read-only, so that user
 * can no longer open it for writing nor link it (protected_hardlinks), then
 * make sure no one still has it open for writing: a read lease is refused
 * while any writer exists. Links made before are counted by the caller.
 */
static int take_back(struct fill *f)
{
	int rc = 0;

	if (fchown(f->fd, geteuid(), getegid()) < 0 || fchmod(f->fd, 0400) < 0) {
		rc = -errno;
		lz_seterr(f->err, f->errlen, "taking the fetched file back from uid %u: %s",
			  (unsigned)f->s->fetcher_uid, strerror(errno));
		return rc;
	}
	if (fcntl(f->fd, F_SETLEASE, F_RDLCK) < 0) {
		rc = -errno;
		lz_seterr(f->err, f->errlen, "the fetched file %s: refusing it",
			  errno == EAGAIN ? "is still open for writing" : strerror(errno));
		return rc == -EAGAIN ? -EIO : rc;
	}
	fcntl(f->fd, F_SETLEASE, F_UNLCK);
	return 0;
}

/* Opens what the fetch wrote and checks it is the object META describes. */
static int verify(struct fill *f)
{
	const struct lz_object_meta *meta = &f->meta;
	struct stat st;
	int rc;

	/* O_NONBLOCK: a fifo left there must not hang the fill. */
	f->fd = openat(f->tmpdir_fd, "data", O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (f->fd < 0) {
		rc = -errno;
		lz_seterr(f->err, f->errlen, "the fetch reported success but left %s: %s",
			  rc == -ENOENT ? "no file" : "no readable file", strerror(-rc));
		return -EIO;
	}
	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		lz_seterr(f->err, f->errlen, "the fetch left something other than a plain file");
		return -EIO;
	}
	if (f->s->foreign_fetcher && (rc = take_back(f)) < 0)
		return rc;
	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (st.st_nlink != 1) {
		lz_seterr(f->err, f->errlen, "the fetched file has %lu links: refusing it",
			  (unsigned long)st.st_nlink);
		return -EIO;
	}
	fcntl(f->fd, F_SETFL, 0);
	if (meta->size >= 0 && st.st_size != meta->size) {
		lz_seterr(f->err, f->errlen, "size mismatch: fetched %lld bytes, expected %lld",
			  (long long)st.st_size, (long long)meta->size);
		return -EIO;
	}
	f->size = st.st_size;
	/*
	 * A hash the remote gave is checked before anyone reads the data. Without
	 * one the CRC checks nothing yet (it is kept to check the copy later), so
	 * it is left to the publication, off the open's path.
	 */
	if (lz_digest_checkable(meta->hash)) {
		rc = lz_digest_fd(f->fd, meta->hash, &f->crc, f->err, f->errlen);
		if (rc < 0)
			return rc;
		f->crc_done = true;
	}
	if (meta->size >= 0)
		return 0;
	/* The size was unknown, so the room could only be made now. */
	pthread_mutex_lock(&f->s->lock);
	f->s->reserved -= f->reserved;
	f->reserved = 0;
	rc = lz_store_reserve(f->s, (uint64_t)f->size, f->err, f->errlen);
	if (rc == 0)
		f->reserved = (uint64_t)f->size;
	pthread_mutex_unlock(&f->s->lock);
	return rc;
}

/*
 * The record in the file itself lets a scan rebuild the index. Without it (no
 * user xattrs there, or a key too long for ext4's 4 KiB of xattrs) the object
 * is still published and indexed; only a rebuild would drop it.
 */
static void label(struct fill *f)
{
	uint8_t buf[LZ_RECORD_MAX];
	struct lz_record r = {
		.key = f->e->key,
		.keylen = f->e->keylen,
		.slot = f->e->slot,
		.size = f->size,
		.mtime = f->meta.mtime,
		.hash = f->meta.hash,
		.crc = f->crc,
		.atime = lz_clock_ns(CLOCK_REALTIME),
	};

	fsetxattr(f->fd, LZ_XATTR, buf, lz_record_encode(&r, buf), 0);
	fchmod(f->fd, 0400); /* after the xattr, which needs write access unless root */
}

/*
 * Links the very file checked (its descriptor, not a name in a directory the
 * fetcher may write) under NAME, replacing a stale file there. -errno.
 */
static int publish_fd(struct fill *f, int dfd, const char *name)
{
	char self[40];

	snprintf(self, sizeof(self), "/proc/self/fd/%d", f->fd);
	if (linkat(AT_FDCWD, self, dfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != EEXIST || unlinkat(dfd, name, 0) < 0)
		return -1;
	return linkat(AT_FDCWD, self, dfd, name, AT_SYMLINK_FOLLOW);
}

/* Links the checked, durable file into place and makes the link durable. */
static int publish(struct fill *f)
{
	const char *name = f->obj_path + 3; /* after "xx/" */
	int dfd, rc;

	/* Into objects/xx opened first: a symlink put in its place takes the file nowhere. */
	dfd = lz_obj_dir(f->s, f->obj_path);
	if (dfd < 0) {
		lz_seterr(f->err, f->errlen, "%s/objects/%.2s: %s", f->s->dir, f->obj_path,
			  dfd == -ELOOP || dfd == -ENOTDIR ? "not a directory (refusing it)"
							   : strerror(-dfd));
		return dfd;
	}
	while (publish_fd(f, dfd, name) < 0) {
		rc = -errno;
		if (no_space(rc) && !f->retried && make_space(f, rc, 0))
			continue;
		close(dfd);
		if (no_space(rc))
			return no_space_error(f, rc, "publishing", SLACK);
		lz_seterr(f->err, f->errlen, "renaming into %s/objects: %s", f->s->dir,
			  strerror(-rc));
		return rc;
	}
	if (fsync(dfd) < 0) {
		rc = -errno;
		/* A name a crash might lose or keep is not published: take it back. */
		unlinkat(dfd, name, 0);
		close(dfd);
		lz_seterr(f->err, f->errlen, "fsync of %s/objects/%.2s: %s", f->s->dir, f->obj_path,
			  strerror(-rc));
		return rc;
	}
	close(dfd);
	return 0;
}

static int fetch_and_check(struct fill *f)
{
	struct stat st;
	uint64_t want;
	int rc;

again:
	rc = run_fetch(f);
	if (rc < 0) {
		if (!no_space(rc))
			return rc;
		/* Unknown size: guess from what fit before the disk filled. */
		want = f->meta.size >= 0 ? (uint64_t)f->meta.size : 0;
		if (want == 0 && fstatat(f->tmpdir_fd, "data", &st, AT_SYMLINK_NOFOLLOW) == 0)
			want = (uint64_t)st.st_size + (uint64_t)st.st_size / 2;
		lz_remove_tree(f->tmpdir_fd);
		if (!f->retried && make_space(f, rc, want))
			goto again;
		return no_space_error(f, rc, "fetching", want);
	}
	return verify(f);
}

/* Makes the checked file durable and renames it into place (no lock held). */
static int make_durable(struct fill *f)
{
	int rc;

	if (!f->crc_done) {
		rc = lz_digest_fd(f->fd, NULL, &f->crc, f->err, f->errlen);
		if (rc < 0)
			return rc;
	}
	label(f);
	if (fsync(f->fd) < 0) {
		rc = -errno;
		/*
		 * Readers keep the pages they have; the copy is not published, so the
		 * next fill fetches the object again.
		 */
		if (no_space(rc))
			return no_space_error(f, rc, "writing", (uint64_t)f->size);
		lz_seterr(f->err, f->errlen, "fsync of the fetched file: %s", strerror(-rc));
		return rc;
	}
	return publish(f);
}

static void remove_tmpdir(struct fill *f)
{
	if (f->tmpdir_fd < 0)
		return;
	lz_remove_tree(f->tmpdir_fd);
	close(f->tmpdir_fd);
	f->tmpdir_fd = -1;
	unlinkat(f->s->tmp_fd, f->tmpname, AT_REMOVEDIR);
}

void lz_flight_put(struct lz_flight *flight)
{
	if (--flight->refs > 0)
		return;
	if (flight->fd >= 0)
		close(flight->fd);
	free(flight);
}

int lz_reopen_fd(int fd)
{
	char path[32];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_RDONLY | O_CLOEXEC);
	/* Without /proc a duplicate does: readers of the store use pread. */
	if (nfd < 0)
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return nfd < 0 ? -errno : nfd;
}

/* The publication of a SETTLING entry, from start to its outcome on the books. */
static void settle(struct fill *f)
{
	struct lz_store *s = f->s;
	struct lz_entry *e = f->e;
	char err[LZ_ERR_MAX] = "", key[96];
	int rc;

	f->err = err;
	f->errlen = sizeof(err);
	rc = make_durable(f);
	remove_tmpdir(f);
	pthread_mutex_lock(&s->lock);
	s->reserved -= f->reserved;
	e->flight = NULL;
	if (rc == 0) {
		e->crc = f->crc;
		e->atime = lz_clock_ns(CLOCK_REALTIME);
		e->state = LZ_READY;
		lz_entry_published(s, e);
		s->stats.fills++;
	} else {
		e->state = LZ_ABSENT;
		s->stats.publish_failures++;
	}
	lz_flight_put(f->flight);
	e->holds--;
	lz_entry_maybe_free(s, e);
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0 && s->log != NULL) {
		char line[LZ_ERR_MAX + 160];

		snprintf(line, sizeof(line), "cache: %s was served but not kept: %s",
			 lz_key_show(f->key_copy, key, sizeof(key)), err);
		s->log(s->log_ctx, LZ_LOG_WARN, line); /* nothing was lost but time */
	}
	free(f->key_copy);
	free(f);
	/* Last: lz_store_close may free the store as soon as this reaches 0. */
	pthread_mutex_lock(&s->lock);
	s->settling--;
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
}

static void *settle_thread(void *arg)
{
	lz_sched_background(getpid()); /* off every request's path: CRC, fsync, rename */
	settle(arg);
	return NULL;
}

void lz_settle_wait(struct lz_store *s)
{
	while (s->settling > 0)
		pthread_cond_wait(&s->changed, &s->lock);
}

int lz_fill_run(struct lz_store *s, struct lz_entry *e, const struct lz_object_meta *meta,
		lz_store_fetch_fn *fetch, void *ctx, int *fd, char *err, size_t errlen)
{
	struct fill *f = calloc(1, sizeof(*f));
	char *hash = NULL;
	pthread_attr_t attr;
	pthread_t thread;
	int rc = 0;

	if (f == NULL) {
		lz_seterr(err, errlen, "out of memory");
		e->state = LZ_ABSENT;
		return -ENOMEM;
	}
	*f = (struct fill){
		.s = s,
		.e = e,
		.meta = *meta,
		.fetch = fetch,
		.ctx = ctx,
		.tmpdir_fd = -1,
		.fd = -1,
		.err = err,
		.errlen = errlen,
	};
	if (meta->size >= 0) {
		/* Known size: room first, so the download does not fill the disk itself. */
		rc = lz_store_reserve(s, (uint64_t)meta->size, err, errlen);
		f->reserved = rc == 0 ? (uint64_t)meta->size : 0;
	}
	snprintf(f->tmpname, sizeof(f->tmpname), "f%ld-%llu", (long)getpid(),
		 (unsigned long long)++s->tmp_seq);
	if (rc == 0 && (size_t)snprintf(f->tmp_path, sizeof(f->tmp_path), "%s/tmp/%s/data", s->dir,
					f->tmpname) >= sizeof(f->tmp_path)) {
		lz_seterr(err, errlen, "cache directory path too long");
		rc = -ENAMETOOLONG;
	}
	if (rc == 0 && meta->hash[0] != '\0' && (hash = strdup(meta->hash)) == NULL) {
		lz_seterr(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	if (rc == 0 && (f->key_copy = strdup(e->key)) == NULL) {
		lz_seterr(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	lz_entry_path(e, f->obj_path);
	if (rc == 0) {
		pthread_mutex_unlock(&s->lock);
		rc = fetch_and_check(f);
		if (rc == 0) {
			*fd = lz_reopen_fd(f->fd);
			if (*fd < 0) {
				rc = *fd;
				lz_seterr(err, errlen, "reopening the fetched file: %s",
					  strerror(-rc));
			}
		}
		if (rc < 0) {
			remove_tmpdir(f);
			if (f->fd >= 0)
				close(f->fd);
		}
		pthread_mutex_lock(&s->lock);
	}
	if (rc < 0) {
		s->reserved -= f->reserved;
		free(hash);
		free(f->key_copy);
		free(f);
		e->state = LZ_ABSENT;
		s->stats.fill_failures++;
		return rc;
	}
	free(e->hash);
	e->hash = hash;
	e->size = f->size;
	e->mtime = meta->mtime;
	e->gen++;
	e->state = LZ_SETTLING;
	/* The flight owns the file now: waiters reopen it, the publication uses it. */
	f->flight = e->flight;
	f->flight->fd = f->fd;
	f->flight->gen = e->gen;
	f->flight->refs++;
	e->holds++;
	s->settling++;
	/* The filler and every waiter each leave with an open reference. */
	for (unsigned i = 0; i <= e->flight->waiters; i++)
		lz_entry_get_open(s, e);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, settle_thread, f) != 0) {
		/* No thread to spare: publish now, as the caller would have waited for anyway. */
		pthread_mutex_unlock(&s->lock);
		settle(f);
		pthread_mutex_lock(&s->lock);
	}
	pthread_attr_destroy(&attr);
	return 0;
}
