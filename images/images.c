/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The image registry: a hash table of images by name, resolving them once
 * however many threads ask, and closing them when idle, replaced or evicted.
 *
 * A resolve drops the image's lock at two places only: while the backend
 * mounts (slow: other entries, and other threads' lookups of ready images,
 * go on) with the state RESOLVING, which makes every other resolver wait;
 * and while the on_ready callback runs, with `announcing` set, which makes
 * every lookup of the image wait.
 */
#include "config.h"
#include "images_int.h"
#include "cards.h"
#include "catalog.h"
#include "imagefile.h"
#include "trust.h"
#include "sqfs.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mountpoint.h"
#include "common/names.h"
#include "common/source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const image_suffixes[] = { ".sqfs", ".img", ".squashfs" };
#define N_SUFFIXES (sizeof(image_suffixes) / sizeof(image_suffixes[0]))

static long long now_s(void)
{
	return (long long)lz_clock_s(CLOCK_MONOTONIC);
}

static unsigned hash_name(const char *name)
{
	return lz_hash32(name) % LZ_IMAGES_BUCKETS;
}

/*
 * Whether FD is on a filesystem that answers from local storage, which a hung
 * server cannot stall. Found from mountinfo: asking the filesystem itself
 * (statfs) would wait on a server that does not answer.
 */
static bool on_local_disk(int fd)
{
	static const char *const local[] = { "ext2", "ext3",  "ext4", "xfs",	 "btrfs",
					     "f2fs", "tmpfs", "zfs",  "squashfs" };
	char type[64];
	struct statx stx;
	FILE *mountinfo;
	bool found;

	/* DONT_SYNC: the device number without asking a network filesystem's server. */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) != 0 ||
	    (mountinfo = fopen("/proc/self/mountinfo", "re")) == NULL)
		return false;
	found = lz_mountinfo_fstype(mountinfo, stx.stx_dev_major, stx.stx_dev_minor, type,
				    sizeof(type));
	fclose(mountinfo);
	for (size_t i = 0; found && i < sizeof(local) / sizeof(local[0]); i++)
		if (strcmp(type, local[i]) == 0)
			return true;
	return false;
}

struct lz_images *lz_images_new(int images_dir_fd, enum lz_image_backend backend)
{
	struct lz_images *images = calloc(1, sizeof(*images));

	if (images == NULL)
		return NULL;
	images->dir_fd = images_dir_fd;
	if (images_dir_fd >= 0 &&
	    (images->catalog = lz_catalog_new(images_dir_fd, "the images directory")) == NULL) {
		free(images);
		return NULL;
	}
	images->dir_local = images_dir_fd >= 0 && on_local_disk(images_dir_fd);
	images->backend = backend;
	pthread_mutex_init(&images->lock, NULL);
	pthread_mutex_init(&images->slot_lock, NULL);
	pthread_mutex_init(&images->pending_lock, NULL);
	pthread_mutex_init(&images->tree_lock, NULL);
	return images;
}

void lz_images_on_ready(struct lz_images *images, lz_image_ready_fn *fn, void *ctx)
{
	images->on_ready = fn;
	images->on_ready_ctx = ctx;
}

void lz_images_on_mounted(struct lz_images *images, lz_image_ready_fn *fn, void *ctx)
{
	images->on_mounted = fn;
	images->on_mounted_ctx = ctx;
}

void lz_images_set_deadline(struct lz_images *images, double seconds)
{
	images->deadline = seconds;
}

void lz_images_set_source(struct lz_images *images, const struct lz_source *source)
{
	images->source = source;
}

void lz_images_set_trust(struct lz_images *images, struct lz_trust *trust, bool trusted_only)
{
	lz_trust_free(images->trust);
	images->trust = trust;
	images->trusted_only = trusted_only;
}

void lz_images_free(struct lz_images *images)
{
	if (images == NULL)
		return;
	for (unsigned i = 0; i < LZ_IMAGES_BUCKETS; i++) {
		struct lz_image *image = images->buckets[i];
		while (image != NULL) {
			struct lz_image *next = image->next;
			lz_image_free(image);
			image = next;
		}
	}
	lz_catalog_free(images->catalog);
	lz_images_tree_free(images);
	lz_cards_free(images->cards);
	lz_trust_free(images->trust);
	if (images->dir_fd >= 0)
		close(images->dir_fd);
	pthread_mutex_destroy(&images->lock);
	pthread_mutex_destroy(&images->slot_lock);
	pthread_mutex_destroy(&images->pending_lock);
	pthread_mutex_destroy(&images->tree_lock);
	free(images);
}

/* An image file found for a resolve: an open local file, or a source object not fetched. */
struct image_file {
	int fd;	     /* -1 for a source object */
	bool in_dir; /* found in the images tree (not a map entry's path, not a source object) */
	struct stat dir_st;  /* in_dir: the directory of the tree holding it */
	struct stat st;	     /* a source object: its size and mtime as listed */
	char path[PATH_MAX]; /* what to call it in messages; a source object's name */
};

/* NAME as an object at the source's top (N.sqfs...), from the listing: nothing is fetched. */
static int find_source_object(struct lz_images *images, const char *name, struct image_file *f)
{
	for (size_t i = 0; i < N_SUFFIXES; i++) {
		struct lz_source_entry entry;
		snprintf(f->path, sizeof(f->path), "%s%s", name, image_suffixes[i]);
		int rc = images->source->lookup(images->source->ctx, "", f->path, &entry);
		if (rc == -ENOENT || (rc == 0 && entry.is_dir))
			continue;
		if (rc < 0)
			return rc;
		memset(&f->st, 0, sizeof(f->st));
		f->st.st_mode = S_IFREG | 0444;
		f->st.st_size = (off_t)entry.size;
		f->st.st_mtim = entry.mtime;
		return 0;
	}
	return -ENOENT;
}

/*
 * Opens image NAME ("N", or "R/N" in directory R of the tree) with each
 * suffix (imagefile.h): a descriptor, or -errno (WHY).
 */
static int open_in_dir(struct lz_images *images, const char *name, struct image_file *f, char *why,
		       size_t whylen)
{
	const char *slash = strrchr(name, '/');
	int fd = -ENOENT, dir_fd = images->dir_fd;

	if (slash != NULL) {
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "%.*s", (int)(slash - name), name);
		dir_fd = lz_images_tree_open(images, rel);
	}
	if (dir_fd < 0)
		return -ENOENT;
	if (fstat(dir_fd, &f->dir_st) != 0)
		fd = -errno;
	for (size_t i = 0; i < N_SUFFIXES && fd == -ENOENT; i++) {
		if ((size_t)snprintf(f->path, sizeof(f->path), "%s%s", name, image_suffixes[i]) >=
		    sizeof(f->path)) {
			fd = -ENAMETOOLONG;
			break;
		}
		/* One component of a directory opened beneath DIR: nothing outside is reachable. */
		fd = lz_open_image_file(dir_fd, f->path + (slash != NULL ? slash - name + 1 : 0),
					&f->st, why, whylen);
	}
	if (slash != NULL)
		close(dir_fd);
	return fd;
}

/*
 * Finds the image file: ABS_PATH for a map entry, else NAME with each suffix
 * in DIR, or at the source's top. 0 with F filled (its descriptor is the
 * caller's to close), or -errno, with a reason in WHY for a file refused.
 */
static int find_image_file(struct lz_images *images, const char *name, const char *abs_path,
			   struct image_file *f, char *why, size_t whylen)
{
	int fd;

	f->fd = -1;
	f->in_dir = false;
	why[0] = '\0';
	if (abs_path != NULL) {
		snprintf(f->path, sizeof(f->path), "%s", abs_path);
		fd = lz_open_image_file(AT_FDCWD, abs_path, &f->st, why, whylen);
	} else if (lz_images_tree_depth(name) < 1) {
		return -ENOENT;
	} else if (images->source != NULL) {
		if (strchr(name, '/') != NULL)
			return -ENOENT; /* a source's images are at its top */
		return find_source_object(images, name, f);
	} else {
		fd = open_in_dir(images, name, f, why, whylen);
		f->in_dir = true;
	}
	if (fd < 0)
		return fd;
	f->fd = fd;
	return 0;
}

static void close_image_file(struct image_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static struct lz_image *find_locked(struct lz_images *images, const char *name, unsigned b)
{
	struct lz_image *image;

	for (image = images->buckets[b]; image != NULL; image = image->next)
		if (strcmp(image->name, name) == 0)
			break;
	return image;
}

struct lz_image *lz_images_find(struct lz_images *images, const char *name)
{
	struct lz_image *image;

	pthread_mutex_lock(&images->lock);
	image = find_locked(images, name, hash_name(name));
	pthread_mutex_unlock(&images->lock);
	return image;
}

static struct lz_image *find_or_add(struct lz_images *images, const char *name)
{
	unsigned b = hash_name(name);
	struct lz_image *image;

	pthread_mutex_lock(&images->lock);
	image = find_locked(images, name, b);
	if (image == NULL && (image = lz_image_new(images, name)) != NULL) {
		image->next = images->buckets[b];
		images->buckets[b] = image;
	}
	pthread_mutex_unlock(&images->lock);
	return image;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Hands out a new reference on a READY image's root; releases image->lock. */
static int hand_out(struct lz_image *image, struct lz_image **out, struct lz_image_root *root)
{
	int fd = 0;

	root->fd = -1;
	root->sqfs = image->sqfs;
	if (image->sqfs != NULL) {
		lz_sqfs_image_get(image->sqfs);
	} else {
		fd = openat(image->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
		root->fd = fd;
	}
	pthread_mutex_unlock(&image->lock);
	if (fd < 0)
		return fd;
	lz_image_touch(image);
	*out = image;
	return 0;
}

/*
 * A ready image is served as it is until it expires or a reload finds its
 * file replaced: its file is not opened again on every lookup. 0 as
 * hand_out, or -EAGAIN when IMAGE must be resolved (again).
 */
static int serve_ready(struct lz_image *image, const struct lz_image_ref *ref,
		       struct lz_image **out, struct lz_image_root *root)
{
	pthread_mutex_lock(&image->lock);
	while (image->announcing)
		pthread_cond_wait(&image->changed, &image->lock);
	if (image->state == LZ_IMAGE_READY &&
	    (ref->path == NULL || (image->path && strcmp(ref->path, image->path) == 0)) &&
	    lz_image_remember_locked(image, ref) == 0)
		return hand_out(image, out, root);
	pthread_mutex_unlock(&image->lock);
	return -EAGAIN;
}

/*
 * Whether the kernel may mount the image file F (trust.h), with why in TRUST;
 * -EPERM when it may not and only the kernel backend was asked for (logged).
 */
static int file_trust(struct lz_images *images, const struct image_file *f, bool *kernel,
		      char *trust, size_t len)
{
	*kernel = lz_trust_file(images->trust, &f->st, f->in_dir ? &f->dir_st : NULL, trust, len);
	if (*kernel || !images->trusted_only || images->backend != LZ_IMAGE_KERNEL)
		return 0;
	lz_warn("image %s: %s; backend=kernel mounts only trusted images: serving the underlay",
		f->path, trust);
	return -EPERM;
}

/* Opens F with the backend: 0 with its root in OPENED, or -errno (logged). */
static int backend_open(struct lz_images *images, const struct image_file *f,
			struct lz_image_root *opened, bool *no_xattrs, char *trust, size_t len)
{
	struct lz_sqfs_features features;
	char err[256];
	bool kernel;

	if (f->fd >= 0) {
		int rc = file_trust(images, f, &kernel, trust, len);
		if (rc == 0)
			rc = lz_backend_open(images, f->fd, f->path, &f->st, kernel, opened);
		*no_xattrs = rc == 0 && lz_sqfs_features(f->fd, &features) == 0 && !features.xattrs;
		return rc;
	}
	snprintf(trust, len, "not fetched yet");
	/* A source object is fetched when the image is walked into. */
	opened->fd = -1;
	opened->sqfs = lz_backend_open_remote(images, f->path, (uint64_t)f->st.st_size,
					      f->st.st_mtim, -1, no_xattrs, err, sizeof(err));
	if (opened->sqfs != NULL)
		return 0;
	lz_warn("image %s: %s; serving the underlay", f->path, err);
	return -EIO;
}

const double lz_resolve_bucket_s[LZ_RESOLVE_BUCKETS - 1] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5,
};

/* A cold resolve that worked took SECONDS with the backend OPENED has. */
static void note_latency(struct lz_images *images, const struct lz_image_root *opened,
			 double seconds)
{
	int b = opened->sqfs != NULL && !opened->sqfs->kernel ? LZ_IMAGE_SQUASHFUSE
							      : LZ_IMAGE_KERNEL;
	size_t k = 0;

	while (k < LZ_RESOLVE_BUCKETS - 1 && seconds > lz_resolve_bucket_s[k])
		k++;
	atomic_fetch_add(&images->latency_buckets[b][k], 1);
	atomic_fetch_add(&images->latency_count[b], 1);
	atomic_fetch_add(&images->latency_ns[b], (unsigned long long)(seconds * 1e9));
}

/*
 * Opens IMAGE from F, under image->lock, which is dropped while the backend
 * works (the state RESOLVING keeps other resolvers waiting). True when it
 * became READY.
 */
static bool mount_locked(struct lz_images *images, struct lz_image *image,
			 const struct image_file *f)
{
	struct lz_image_root opened;
	bool no_xattrs = false;
	char trust[sizeof(image->trust)];
	int rc;

	image->state = LZ_IMAGE_RESOLVING;
	pthread_mutex_unlock(&image->lock);
	double started = now_s();
	rc = backend_open(images, f, &opened, &no_xattrs, trust, sizeof(trust));
	if (rc == 0)
		note_latency(images, &opened, now_s() - started);
	pthread_mutex_lock(&image->lock);
	snprintf(image->trust, sizeof(image->trust), "%s", trust);
	image->file_st = f->st;
	image->generation++;
	atomic_fetch_add(&image->resolves, 1);
	atomic_fetch_add(rc == 0 ? &images->resolved : &images->failed, 1);
	if (rc != 0) {
		image->state = LZ_IMAGE_FAILED;
		image->failed_at = now_s();
		pthread_cond_broadcast(&image->changed);
		return false;
	}
	image->root_fd = opened.fd;
	image->sqfs = opened.sqfs;
	if (opened.sqfs != NULL) {
		opened.sqfs->owner = image;
		opened.sqfs->generation = image->generation;
	}
	image->no_xattrs = no_xattrs;
	image->state = LZ_IMAGE_READY;
	/* A remote image is announced once fetched: listing it is no use of it. */
	image->announcing = images->on_ready != NULL &&
			    (opened.sqfs == NULL || lz_sqfs_image_fetched(opened.sqfs));
	lz_image_touch(image); /* not idle: expiry must not take it back at once */
	lz_debug("image %s: resolved", f->path);
	pthread_cond_broadcast(&image->changed);
	return true;
}

/* Tells on_ready, under image->lock, which is dropped while it runs. */
static void announce_locked(struct lz_images *images, struct lz_image *image)
{
	unsigned generation = image->generation;

	pthread_mutex_unlock(&image->lock);
	images->on_ready(images->on_ready_ctx, image, generation);
	pthread_mutex_lock(&image->lock);
	image->announcing = false;
	pthread_cond_broadcast(&image->changed);
}

/*
 * Resolves IMAGE from F (closed here) under image->lock, unless another
 * thread did meanwhile or it failed recently with the same file. Returns
 * with the lock held: 0 when READY, else -errno.
 */
static int resolve_locked(struct lz_images *images, struct lz_image *image,
			  const struct lz_image_ref *ref, struct image_file *f)
{
	bool mounted = false;

	/* A reloaded map may point the entry at another file: serve that one from now on. */
	if (image->state == LZ_IMAGE_READY && ref->path != NULL && image->path != NULL &&
	    strcmp(ref->path, image->path) != 0) {
		lz_image_close_locked(image);
		image->state = LZ_IMAGE_UNRESOLVED;
	}
	if (lz_image_remember_locked(image, ref) != 0) {
		close_image_file(f);
		return -ENOMEM;
	}
	while (image->state == LZ_IMAGE_RESOLVING || image->announcing)
		pthread_cond_wait(&image->changed, &image->lock);
	if (image->state == LZ_IMAGE_FAILED && same_file(&f->st, &image->file_st) &&
	    now_s() - image->failed_at < LZ_IMAGE_RETRY_S) {
		/* Logged when it failed; tried again once the file changes, or later. */
		close_image_file(f);
		return -EIO;
	}
	if (image->state != LZ_IMAGE_READY)
		mounted = mount_locked(images, image, f);
	close_image_file(f); /* a handle keeps a copy of its own */
	if (mounted && image->announcing)
		announce_locked(images, image);
	return image->state == LZ_IMAGE_READY ? 0 : -EIO;
}

bool lz_images_at_root(const struct lz_images *images)
{
	return images->dir_fd >= 0 || images->source != NULL;
}

bool lz_images_local(const struct lz_images *images)
{
	return images->dir_local && images->source == NULL;
}

bool lz_images_ready(struct lz_images *images, const char *key)
{
	struct lz_image *image = lz_images_find(images, key);
	bool ready;

	if (image == NULL)
		return false;
	pthread_mutex_lock(&image->lock);
	ready = image->state == LZ_IMAGE_READY && !image->announcing;
	pthread_mutex_unlock(&image->lock);
	return ready;
}

static void pending_add(struct lz_images *images, struct lz_pending *p, const char *key)
{
	*p = (struct lz_pending){ .key = key, .since = lz_clock_s(CLOCK_MONOTONIC) };
	pthread_mutex_lock(&images->pending_lock);
	p->next = images->pending;
	if (p->next != NULL)
		p->next->prev = p;
	images->pending = p;
	pthread_mutex_unlock(&images->pending_lock);
}

static void pending_remove(struct lz_images *images, struct lz_pending *p)
{
	pthread_mutex_lock(&images->pending_lock);
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		images->pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	pthread_mutex_unlock(&images->pending_lock);
}

void lz_images_foreach_pending(struct lz_images *images,
			       void (*fn)(void *ctx, const char *key, double seconds), void *ctx)
{
	double now = lz_clock_s(CLOCK_MONOTONIC);

	pthread_mutex_lock(&images->pending_lock);
	for (struct lz_pending *p = images->pending; p != NULL; p = p->next)
		fn(ctx, p->key, now - p->since);
	pthread_mutex_unlock(&images->pending_lock);
}

/* Finds the image file and resolves it: the part of a resolve that may wait. */
static int resolve_slow(struct lz_images *images, const struct lz_image_ref *ref,
			struct lz_image **out, struct lz_image_root *root)
{
	struct image_file f;
	struct lz_image *image;
	char why[256];
	int found, rc;

	found = find_image_file(images, ref->key, ref->path, &f, why, sizeof(why));
	if (found == -ENOENT && ref->path == NULL)
		return found; /* most names are simply not images: keep no record of them */
	image = find_or_add(images, ref->key);
	if (image == NULL) {
		close_image_file(&f);
		return -ENOMEM;
	}
	if (found < 0) {
		/* A map entry whose file is missing, or a file refused: say so once. */
		if (!atomic_exchange(&image->missing_logged, true))
			lz_warn("image %s: %s; serving the underlay", f.path,
				why[0] != '\0' ? why : strerror(-found));
		return found;
	}
	atomic_store(&image->missing_logged, false);
	pthread_mutex_lock(&image->lock);
	rc = resolve_locked(images, image, ref, &f);
	if (rc != 0) {
		pthread_mutex_unlock(&image->lock);
		return rc;
	}
	return hand_out(image, out, root);
}

int lz_images_resolve(struct lz_images *images, const struct lz_image_ref *ref,
		      struct lz_image **out, struct lz_image_root *root)
{
	struct lz_image *image = lz_images_find(images, ref->key);
	struct lz_pending pending;
	int rc;

	if (image != NULL && serve_ready(image, ref, out, root) == 0)
		return 0;
	pending_add(images, &pending, ref->key);
	rc = resolve_slow(images, ref, out, root);
	pending_remove(images, &pending);
	return rc;
}

/* Whether an image should be closed now; called with image->lock held. */
typedef bool expire_test(struct lz_images *images, struct lz_image *image, const void *arg);

static void expire_where(struct lz_images *images, expire_test *test, const void *arg,
			 lz_image_closed_fn *closed, void *ctx)
{
	char entry[NAME_MAX + 1];

	for (unsigned b = 0; b < LZ_IMAGES_BUCKETS; b++) {
		pthread_mutex_lock(&images->lock);
		struct lz_image *image = images->buckets[b];
		pthread_mutex_unlock(&images->lock);
		/* Images are never removed from the table, so walking unlocked is safe. */
		for (; image != NULL; image = image->next) {
			bool was_ready = false, named = false;
			uint64_t parent = 0;
			pthread_mutex_lock(&image->lock);
			if (image->state == LZ_IMAGE_READY && test(images, image, arg)) {
				lz_image_close_locked(image);
				image->state = LZ_IMAGE_UNRESOLVED;
				was_ready = true;
				named = image->entry != NULL;
				parent = image->parent;
				snprintf(entry, sizeof(entry), "%s", named ? image->entry : "");
			}
			pthread_mutex_unlock(&image->lock);
			if (was_ready) {
				lz_debug("image %s: closed", image->name);
				closed(ctx, image, parent, named ? entry : NULL);
			}
		}
	}
}

/*
 * last_use holds whole seconds: "> idle" makes sure a full IDLE seconds have
 * passed (">=" expired an image used a millisecond ago with idle_timeout=1,
 * and under load every image churned through mounts and node ids).
 */
static bool is_idle(struct lz_images *images, struct lz_image *image, const void *idle)
{
	(void)images;
	return atomic_load(&image->open_files) == 0 && atomic_load(&image->pins) == 0 &&
	       now_s() - atomic_load(&image->last_use) > *(const long long *)idle;
}

void lz_images_expire(struct lz_images *images, unsigned idle, lz_image_closed_fn *closed,
		      void *ctx)
{
	long long seconds = idle;

	expire_where(images, is_idle, &seconds, closed, ctx);
}

/* Files open on the old image keep it: their descriptors hold its mount. */
static bool is_replaced(struct lz_images *images, struct lz_image *image, const void *unused)
{
	struct image_file f;
	char why[256];
	bool replaced =
		find_image_file(images, image->name, image->path, &f, why, sizeof(why)) != 0 ||
		!same_file(&f.st, &image->file_st);

	(void)unused;
	close_image_file(&f);
	return replaced;
}

void lz_images_expire_replaced(struct lz_images *images, lz_image_closed_fn *closed, void *ctx)
{
	expire_where(images, is_replaced, NULL, closed, ctx);
}

static bool is_named(struct lz_images *images, struct lz_image *image, const void *name)
{
	(void)images;
	return atomic_load(&image->open_files) == 0 && atomic_load(&image->pins) == 0 &&
	       strcmp(image->name, name) == 0;
}

int lz_images_evict(struct lz_images *images, const char *name, lz_image_closed_fn *closed,
		    void *ctx)
{
	struct lz_image *image = lz_images_find(images, name);
	bool ready;

	if (image == NULL)
		return -ENOENT;
	pthread_mutex_lock(&image->lock);
	ready = image->state == LZ_IMAGE_READY;
	pthread_mutex_unlock(&image->lock);
	if (!ready)
		return -ENOENT;
	if (atomic_load(&image->open_files) > 0 || atomic_load(&image->pins) > 0)
		return -EBUSY;
	expire_where(images, is_named, name, closed, ctx);
	return 0;
}

void lz_images_foreach(struct lz_images *images, void (*fn)(void *ctx, struct lz_image *image),
		       void *ctx)
{
	for (unsigned b = 0; b < LZ_IMAGES_BUCKETS; b++) {
		pthread_mutex_lock(&images->lock);
		struct lz_image *image = images->buckets[b];
		pthread_mutex_unlock(&images->lock);
		/* Never removed from the table: walking unlocked is safe. */
		for (; image != NULL; image = image->next)
			fn(ctx, image);
	}
}

void lz_images_stats(struct lz_images *images, struct lz_images_stats *out)
{
	out->resolved = atomic_load(&images->resolved);
	out->failed = atomic_load(&images->failed);
	out->backend = images->backend;
	for (int b = 0; b < 2; b++) {
		struct lz_resolve_latency *l = &out->latency[b];
		for (size_t k = 0; k < LZ_RESOLVE_BUCKETS; k++)
			l->buckets[k] = atomic_load(&images->latency_buckets[b][k]);
		l->count = atomic_load(&images->latency_count[b]);
		l->sum_s = (double)atomic_load(&images->latency_ns[b]) / 1e9;
	}
}

bool lz_images_strip_suffix(const char *name, char *out, size_t outlen)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < N_SUFFIXES; i++) {
		size_t slen = strlen(image_suffixes[i]);
		if (len > slen && strcmp(name + len - slen, image_suffixes[i]) == 0 &&
		    len - slen < outlen) {
			memcpy(out, name, len - slen);
			out[len - slen] = '\0';
			return true;
		}
	}
	return false;
}

int lz_images_list_source(struct lz_images *images, lz_images_list_fn *fn, void *ctx)
{
	char entry_name[NAME_MAX + 1];
	struct lz_source_entry *entries;
	size_t count;
	int rc = images->source->list(images->source->ctx, "", &entries, &count);

	if (rc < 0)
		return rc;
	for (size_t i = 0; i < count; i++)
		if (!entries[i].is_dir &&
		    lz_images_strip_suffix(entries[i].name, entry_name, sizeof(entry_name)) &&
		    lz_name_check(entry_name) == 0)
			fn(ctx, entry_name, false);
	free(entries);
	return 0;
}

struct lz_image *lz_images_adopt(struct lz_images *images, const struct lz_image_adopt *a)
{
	struct lz_image_ref ref = { .key = a->name, .path = a->path, .parent = a->parent };
	bool ready = a->root_fd >= 0 || a->sqfs != NULL;
	/* Its reference is taken again by lz_images_adopt_sources. */
	char *source_key = ready && a->source_key != NULL ? strdup(a->source_key) : NULL;

	if (ready && a->source_key != NULL && source_key == NULL)
		return NULL;
	struct lz_image *image = find_or_add(images, a->name);
	if (image == NULL) {
		free(source_key);
		return NULL;
	}
	pthread_mutex_lock(&image->lock);
	if (a->entry != NULL) {
		ref.entry = a->entry;
		lz_image_remember_locked(image, &ref);
	}
	image->generation = a->generation;
	image->file_st = a->file_st;
	atomic_store(&image->pins, a->pins);
	if (ready) {
		image->root_fd = a->root_fd;
		image->sqfs = a->sqfs;
		if (a->sqfs != NULL) {
			a->sqfs->owner = image;
			a->sqfs->generation = a->generation;
		}
		image->source_key = source_key;
		image->state = LZ_IMAGE_READY;
	}
	pthread_mutex_unlock(&image->lock);
	lz_image_touch(image);
	return image;
}

struct adoption {
	char *err;
	size_t errlen;
	int failed;
};

static void adopt_source(void *ctx, struct lz_image *image)
{
	struct adoption *a = ctx;
	const struct lz_source *source = image->images->source;

	pthread_mutex_lock(&image->lock);
	if (image->source_key != NULL && source->adopt(source->ctx, image->source_key) != 0 &&
	    a->failed++ == 0 && a->errlen > 0)
		snprintf(a->err, a->errlen, "'%s' is no longer in the cache", image->source_key);
	pthread_mutex_unlock(&image->lock);
}

int lz_images_adopt_sources(struct lz_images *images, char *err, size_t errlen)
{
	struct adoption a = { .err = err, .errlen = errlen };

	if (images->source != NULL)
		lz_images_foreach(images, adopt_source, &a);
	return a.failed > 0 ? -ENOENT : 0;
}
