#include "config.h"
#include "images.h"
#include "kmount.h"
#include "common/log.h"
#include "common/names.h"
#include "common/source.h"
#include "sqfs.h"
#include "common/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *const image_suffixes[] = { ".sqfs", ".img", ".squashfs" };
#define N_SUFFIXES (sizeof(image_suffixes) / sizeof(image_suffixes[0]))
#define BUCKETS	   4096u

/* Made-up device numbers of squashfuse handles: a major no real device has. */
#define SQFS_DEV_MAJOR 0xfffff000u
#define SQFS_SLOTS     65536u

struct lz_images {
	int dir_fd;
	const struct lz_source *source;
	enum lz_image_backend backend;
	pthread_mutex_t slot_lock;
	unsigned char slot_used[SQFS_SLOTS];
	pthread_mutex_t lock; /* the hash table only: never held while mounting */
	struct lz_image *buckets[BUCKETS];
	lz_image_ready_fn *on_ready;
	void *on_ready_ctx;
	atomic_ullong resolved, failed; /* resolves that worked, that failed (fell back) */
};

static unsigned hash_name(const char *name)
{
	return lz_hash32(name) % BUCKETS;
}

struct lz_images *lz_images_new(int images_dir_fd, enum lz_image_backend backend)
{
	struct lz_images *images = calloc(1, sizeof(*images));

	if (images == NULL)
		return NULL;
	images->dir_fd = images_dir_fd;
	images->backend = backend;
	pthread_mutex_init(&images->lock, NULL);
	pthread_mutex_init(&images->slot_lock, NULL);
	return images;
}

void lz_images_on_ready(struct lz_images *images, lz_image_ready_fn *fn, void *ctx)
{
	images->on_ready = fn;
	images->on_ready_ctx = ctx;
}

void lz_images_set_source(struct lz_images *images, const struct lz_source *source)
{
	images->source = source;
}

void lz_sqfs_image_get(struct lz_sqfs_image *handle)
{
	atomic_fetch_add(&handle->refs, 1);
}

void lz_sqfs_image_put(struct lz_sqfs_image *handle)
{
	if (handle == NULL || atomic_fetch_sub(&handle->refs, 1) != 1)
		return;
	/* No inode uses it any more, so its device number (node id source) may be reused. */
	lz_sqfs_close(handle->sqfs);
	pthread_mutex_lock(&handle->images->slot_lock);
	handle->images->slot_used[handle->slot] = 0;
	pthread_mutex_unlock(&handle->images->slot_lock);
	free(handle);
}

/* Takes slot WANT (a takeover), or the first free one for -1. SQFS_SLOTS if none. */
static unsigned claim_slot(struct lz_images *images, long want)
{
	unsigned slot;

	pthread_mutex_lock(&images->slot_lock);
	if (want >= 0)
		slot = want < SQFS_SLOTS && !images->slot_used[want] ? (unsigned)want : SQFS_SLOTS;
	else
		for (slot = 0; slot < SQFS_SLOTS && images->slot_used[slot]; slot++)
			;
	if (slot < SQFS_SLOTS)
		images->slot_used[slot] = 1;
	pthread_mutex_unlock(&images->slot_lock);
	return slot;
}

static struct lz_sqfs_image *open_sqfs_slot(struct lz_images *images, int file_fd, long want,
					    char *err, size_t errlen)
{
	char proc_path[64];
	struct lz_sqfs_image *handle = calloc(1, sizeof(*handle));
	unsigned slot;

	if (handle == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	slot = claim_slot(images, want);
	if (slot == SQFS_SLOTS) {
		snprintf(err, errlen,
			 want < 0 ? "too many squashfuse images open"
				  : "squashfuse slot taken twice");
		free(handle);
		return NULL;
	}
	/* The very file that was checked, even if the name was replaced since. */
	snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", file_fd);
	handle->sqfs = lz_sqfs_open(proc_path, err, errlen);
	if (handle->sqfs == NULL) {
		pthread_mutex_lock(&images->slot_lock);
		images->slot_used[slot] = 0;
		pthread_mutex_unlock(&images->slot_lock);
		free(handle);
		return NULL;
	}
	handle->slot = slot;
	handle->dev = makedev(SQFS_DEV_MAJOR, slot);
	handle->images = images;
	atomic_store(&handle->refs, 1);
	return handle;
}

static struct lz_sqfs_image *open_sqfs(struct lz_images *images, int file_fd, char *err,
				       size_t errlen)
{
	return open_sqfs_slot(images, file_fd, -1, err, errlen);
}

struct lz_sqfs_image *lz_images_adopt_sqfs(struct lz_images *images, int file_fd, unsigned slot,
					   char *err, size_t errlen)
{
	return open_sqfs_slot(images, file_fd, slot, err, errlen);
}

static void close_image(struct lz_image *image)
{
	if (image->root_fd >= 0)
		close(image->root_fd);
	image->root_fd = -1;
	lz_sqfs_image_put(image->sqfs);
	image->sqfs = NULL;
	if (image->source_key != NULL) {
		const struct lz_source *source = image->images->source;
		source->release(source->ctx, image->source_key);
		free(image->source_key);
		image->source_key = NULL;
	}
}

void lz_images_free(struct lz_images *images)
{
	if (images == NULL)
		return;
	for (unsigned i = 0; i < BUCKETS; i++) {
		struct lz_image *image = images->buckets[i];
		while (image != NULL) {
			struct lz_image *next = image->next;
			close_image(image);
			pthread_mutex_destroy(&image->lock);
			pthread_cond_destroy(&image->changed);
			free(image->name);
			free(image->path);
			free(image->entry);
			free(image);
			image = next;
		}
	}
	if (images->dir_fd >= 0)
		close(images->dir_fd);
	pthread_mutex_destroy(&images->lock);
	pthread_mutex_destroy(&images->slot_lock);
	free(images);
}

/*
 * Opens the image file (readable): ABS_PATH for a map entry, else NAME with
 * each suffix in DIR. PATH gets what to call it in messages. -errno.
 */
static int open_image_file(struct lz_images *images, const char *name, const char *abs_path,
			   char *path, size_t pathlen)
{
	int last = -ENOENT;

	if (abs_path != NULL) {
		snprintf(path, pathlen, "%s", abs_path);
		int fd = open(abs_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		return fd < 0 ? -errno : fd;
	}
	if (lz_name_check(name) != 0)
		return -ENOENT;
	if (images->source != NULL) {
		for (size_t i = 0; i < N_SUFFIXES; i++) {
			struct lz_source_entry entry;
			snprintf(path, pathlen, "%s%s", name, image_suffixes[i]);
			/* The listing answers "no such image" without fetching anything. */
			int rc = images->source->lookup(images->source->ctx, "", path, &entry);
			if (rc == -ENOENT)
				continue;
			if (rc < 0)
				return rc;
			return images->source->open(images->source->ctx, path);
		}
		return -ENOENT;
	}
	if (images->dir_fd < 0)
		return -ENOENT;
	for (size_t i = 0; i < N_SUFFIXES; i++) {
		if ((size_t)snprintf(path, pathlen, "%s%s", name, image_suffixes[i]) >= pathlen)
			return -ENAMETOOLONG;
		/*
		 * One component, so nothing outside DIR is reachable by name; the
		 * file itself may be a symlink an administrator placed in DIR.
		 */
		int fd = openat(images->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			last = -errno;
	}
	return last;
}

/* Closes an image file from open_image_file; a source object is released too. */
static void close_image_file(struct lz_images *images, int fd, const char *path)
{
	close(fd);
	if (images->source != NULL)
		images->source->release(images->source->ctx, path);
}

bool lz_images_has(struct lz_images *images, const char *name)
{
	char path[NAME_MAX + 16];
	int fd = open_image_file(images, name, NULL, path, sizeof(path));

	if (fd == -ENOENT)
		return false;
	if (fd >= 0)
		close_image_file(images, fd, path);
	return true;
}

static struct lz_image *find_locked(struct lz_images *images, const char *name, unsigned b)
{
	struct lz_image *image;

	for (image = images->buckets[b]; image != NULL; image = image->next)
		if (strcmp(image->name, name) == 0)
			break;
	return image;
}

static struct lz_image *find(struct lz_images *images, const char *name)
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
	if (image == NULL && (image = calloc(1, sizeof(*image))) != NULL) {
		image->name = strdup(name);
		if (image->name == NULL) {
			free(image);
			image = NULL;
		} else {
			pthread_mutex_init(&image->lock, NULL);
			pthread_cond_init(&image->changed, NULL);
			image->images = images;
			image->root_fd = -1;
			image->next = images->buckets[b];
			images->buckets[b] = image;
		}
	}
	pthread_mutex_unlock(&images->lock);
	return image;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Opens the image with the backend; called without image->lock. 0 or -errno. */
static int open_backend(struct lz_images *images, int file_fd, const char *path, struct stat *st,
			struct lz_image_root *root)
{
	char err[256];

	root->fd = -1;
	root->sqfs = NULL;
	if (fstat(file_fd, st) == -1)
		return -errno;
	if (!S_ISREG(st->st_mode)) {
		lz_warn("image %s: not a regular file; serving the underlay", path);
		return -EINVAL;
	}
	if (images->backend == LZ_IMAGE_SQUASHFUSE) {
		root->sqfs = open_sqfs(images, file_fd, err, sizeof(err));
		if (root->sqfs != NULL)
			return 0;
	} else {
		root->fd = lz_kmount_squashfs(file_fd, err, sizeof(err));
		if (root->fd >= 0)
			return 0;
	}
	lz_warn("image %s: %s; serving the underlay", path, err);
	return -EIO;
}

/* Records where the image is now; called with image->lock held. */
static int remember_ref(struct lz_image *image, const struct lz_image_ref *ref)
{
	if (image->entry == NULL || strcmp(image->entry, ref->entry) != 0) {
		char *entry = strdup(ref->entry);
		if (entry == NULL)
			return -ENOMEM;
		free(image->entry);
		image->entry = entry;
	}
	if (ref->path != NULL && (image->path == NULL || strcmp(image->path, ref->path) != 0)) {
		char *path = strdup(ref->path);
		if (path == NULL)
			return -ENOMEM;
		free(image->path);
		image->path = path;
	}
	image->parent = ref->parent;
	return 0;
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

int lz_images_resolve(struct lz_images *images, const struct lz_image_ref *ref,
		      struct lz_image **out, struct lz_image_root *root)
{
	char path[PATH_MAX];
	struct lz_image *image;
	struct lz_image_root opened;
	struct stat st;
	bool keep_source_ref = false, just_resolved = false;
	unsigned generation = 0;
	int file_fd, rc;

	/*
	 * A ready image is served as it is until it expires or a reload finds
	 * its file replaced: its file is not opened again on every lookup.
	 */
	image = find(images, ref->key);
	if (image != NULL) {
		pthread_mutex_lock(&image->lock);
		while (image->announcing)
			pthread_cond_wait(&image->changed, &image->lock);
		if (image->state == LZ_IMAGE_READY &&
		    (ref->path == NULL || (image->path && strcmp(ref->path, image->path) == 0)) &&
		    remember_ref(image, ref) == 0)
			return hand_out(image, out, root);
		pthread_mutex_unlock(&image->lock);
	}
	file_fd = open_image_file(images, ref->key, ref->path, path, sizeof(path));
	if (file_fd < 0 && ref->path == NULL)
		return file_fd; /* most names are simply not images: keep no record of them */
	image = find_or_add(images, ref->key);
	if (image == NULL) {
		if (file_fd >= 0)
			close_image_file(images, file_fd, path);
		return -ENOMEM;
	}
	if (file_fd < 0) {
		/* A map entry whose file is missing or unreadable: say so once. */
		if (!atomic_exchange(&image->missing_logged, true))
			lz_warn("image %s: %s; serving the underlay", path, strerror(-file_fd));
		return file_fd;
	}
	atomic_store(&image->missing_logged, false);
	pthread_mutex_lock(&image->lock);
	/* A reloaded map may point the entry at another file: serve that one from now on. */
	if (image->state == LZ_IMAGE_READY && ref->path != NULL && image->path != NULL &&
	    strcmp(ref->path, image->path) != 0) {
		close_image(image);
		image->state = LZ_IMAGE_UNRESOLVED;
	}
	if (remember_ref(image, ref) != 0) {
		pthread_mutex_unlock(&image->lock);
		close_image_file(images, file_fd, path);
		return -ENOMEM;
	}
	while (image->state == LZ_IMAGE_RESOLVING || image->announcing)
		pthread_cond_wait(&image->changed, &image->lock);
	if (image->state == LZ_IMAGE_FAILED && fstat(file_fd, &st) == 0 &&
	    same_file(&st, &image->file_st) &&
	    (long long)lz_clock_s(CLOCK_MONOTONIC) - image->failed_at < LZ_IMAGE_RETRY_S) {
		/* Logged when it failed; tried again once the file changes, or later. */
		pthread_mutex_unlock(&image->lock);
		close_image_file(images, file_fd, path);
		return -EIO;
	}
	if (image->state != LZ_IMAGE_READY) {
		image->state = LZ_IMAGE_RESOLVING;
		pthread_mutex_unlock(&image->lock);
		/* Slow (a loop device and a mount): other entries resolve meanwhile. */
		rc = open_backend(images, file_fd, path, &st, &opened);
		pthread_mutex_lock(&image->lock);
		image->file_st = st;
		image->generation++;
		atomic_fetch_add(&image->resolves, 1);
		if (rc == 0) {
			image->root_fd = opened.fd;
			image->sqfs = opened.sqfs;
			image->state = LZ_IMAGE_READY;
			image->announcing = images->on_ready != NULL;
			just_resolved = true;
			lz_image_touch(image); /* not idle: expiry must not take it back at once */
			generation = image->generation;
			/* A cached remote image stays open in the store while mounted. */
			if (images->source != NULL && (image->source_key = strdup(path)) != NULL)
				keep_source_ref = true;
			lz_debug("image %s: resolved", path);
		} else {
			image->state = LZ_IMAGE_FAILED;
			image->failed_at = (long long)lz_clock_s(CLOCK_MONOTONIC);
		}
		atomic_fetch_add(rc == 0 ? &images->resolved : &images->failed, 1);
		pthread_cond_broadcast(&image->changed);
	}
	if (keep_source_ref)
		close(file_fd);
	else
		close_image_file(images, file_fd, path);
	if (just_resolved && image->announcing) {
		/* Outside the image's lock: the callback may look at the image itself. */
		pthread_mutex_unlock(&image->lock);
		images->on_ready(images->on_ready_ctx, image, generation);
		pthread_mutex_lock(&image->lock);
		image->announcing = false;
		pthread_cond_broadcast(&image->changed);
	}
	if (image->state != LZ_IMAGE_READY) {
		pthread_mutex_unlock(&image->lock);
		return -EIO;
	}
	return hand_out(image, out, root);
}

void lz_image_touch(struct lz_image *image)
{
	long long now = (long long)lz_clock_s(CLOCK_MONOTONIC);

	/* Most touches find the second unchanged: skip the cache-line write. */
	if (atomic_load_explicit(&image->last_use, memory_order_relaxed) != now)
		atomic_store_explicit(&image->last_use, now, memory_order_relaxed);
}

/* Whether an image should be closed now; called with image->lock held. */
typedef bool expire_test(struct lz_images *images, struct lz_image *image, long long arg);

static void expire_where(struct lz_images *images, expire_test *test, long long arg,
			 lz_image_expired_fn *expired, void *ctx)
{
	for (unsigned b = 0; b < BUCKETS; b++) {
		pthread_mutex_lock(&images->lock);
		struct lz_image *image = images->buckets[b];
		pthread_mutex_unlock(&images->lock);
		/* Images are never removed from the table, so walking unlocked is safe. */
		for (; image != NULL; image = image->next) {
			bool closed = false;
			pthread_mutex_lock(&image->lock);
			if (image->state == LZ_IMAGE_READY && test(images, image, arg)) {
				close_image(image);
				image->state = LZ_IMAGE_UNRESOLVED;
				closed = true;
			}
			pthread_mutex_unlock(&image->lock);
			if (closed) {
				lz_debug("image %s: closed", image->name);
				expired(ctx, image);
			}
		}
	}
}

/*
 * last_use holds whole seconds: "> idle" makes sure a full IDLE seconds have
 * passed (">=" expired an image used a millisecond ago with idle_timeout=1,
 * and under load every image churned through mounts and node ids).
 */
static bool is_idle(struct lz_images *images, struct lz_image *image, long long idle)
{
	(void)images;
	return atomic_load(&image->open_files) == 0 && atomic_load(&image->pins) == 0 &&
	       (long long)lz_clock_s(CLOCK_MONOTONIC) - atomic_load(&image->last_use) > idle;
}

void lz_images_expire(struct lz_images *images, unsigned idle, lz_image_expired_fn *expired,
		      void *ctx)
{
	expire_where(images, is_idle, idle, expired, ctx);
}

/* Files open on the old image keep it: their descriptors hold its mount. */
static bool is_replaced(struct lz_images *images, struct lz_image *image, long long unused)
{
	char path[PATH_MAX];
	struct stat st;
	int fd = open_image_file(images, image->name, image->path, path, sizeof(path));
	bool replaced = fd < 0 || fstat(fd, &st) == -1 || !same_file(&st, &image->file_st);

	(void)unused;
	if (fd >= 0)
		close_image_file(images, fd, path);
	return replaced;
}

void lz_images_expire_replaced(struct lz_images *images, lz_image_expired_fn *expired, void *ctx)
{
	expire_where(images, is_replaced, 0, expired, ctx);
}

static bool is_named(struct lz_images *images, struct lz_image *image, long long name)
{
	(void)images;
	return atomic_load(&image->open_files) == 0 &&
	       strcmp(image->name, (const char *)(intptr_t)name) == 0;
}

int lz_images_evict(struct lz_images *images, const char *name, lz_image_expired_fn *expired,
		    void *ctx)
{
	struct lz_image *image = find(images, name);
	bool ready;

	if (image == NULL)
		return -ENOENT;
	pthread_mutex_lock(&image->lock);
	ready = image->state == LZ_IMAGE_READY;
	pthread_mutex_unlock(&image->lock);
	if (!ready)
		return -ENOENT;
	if (atomic_load(&image->open_files) > 0)
		return -EBUSY;
	expire_where(images, is_named, (long long)(intptr_t)name, expired, ctx);
	return 0;
}

struct lz_image *lz_images_find(struct lz_images *images, const char *name)
{
	return find(images, name);
}

void lz_images_foreach(struct lz_images *images, void (*fn)(void *ctx, struct lz_image *image),
		       void *ctx)
{
	for (unsigned b = 0; b < BUCKETS; b++) {
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
}

/* NAME without an image suffix into OUT; false if it has none. */
static bool strip_suffix(const char *name, char *out, size_t outlen)
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

int lz_images_list(struct lz_images *images, void (*fn)(void *ctx, const char *name), void *ctx)
{
	char entry_name[NAME_MAX + 1];
	int fd = images->dir_fd < 0
			 ? -1
			 : openat(images->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *entry;

	if (images->source != NULL) {
		struct lz_source_entry *entries;
		size_t count;
		int rc = images->source->list(images->source->ctx, "", &entries, &count);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < count; i++)
			if (!entries[i].is_dir &&
			    strip_suffix(entries[i].name, entry_name, sizeof(entry_name)) &&
			    lz_name_check(entry_name) == 0)
				fn(ctx, entry_name);
		free(entries);
		return 0;
	}
	if (images->dir_fd < 0)
		return 0;
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -errno;
	}
	while ((entry = readdir(dir)) != NULL)
		if (strip_suffix(entry->d_name, entry_name, sizeof(entry_name)) &&
		    lz_name_check(entry_name) == 0)
			fn(ctx, entry_name);
	closedir(dir);
	return 0;
}

struct lz_image *lz_images_adopt(struct lz_images *images, const struct lz_image_adopt *a)
{
	struct lz_image_ref ref = { .key = a->name, .path = a->path, .parent = a->parent };
	bool ready = a->root_fd >= 0 || a->sqfs != NULL;
	/* Its reference is taken again by lz_objects_adopt. */
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
		remember_ref(image, &ref);
	}
	image->generation = a->generation;
	image->file_st = a->file_st;
	atomic_store(&image->pins, a->pins);
	if (ready) {
		image->root_fd = a->root_fd;
		image->sqfs = a->sqfs;
		image->source_key = source_key;
		image->state = LZ_IMAGE_READY;
	}
	pthread_mutex_unlock(&image->lock);
	lz_image_touch(image);
	return image;
}
