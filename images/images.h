/*
 * Image entries at the root of the mount: entry N is the squashfs image
 * DIR/N.sqfs, N.img or N.squashfs, resolved (mounted) on first access,
 * exactly once however many threads ask, and expired when idle.
 */
#ifndef LAZYFS_IMAGES_H
#define LAZYFS_IMAGES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

enum lz_image_state { LZ_IMAGE_UNRESOLVED, LZ_IMAGE_RESOLVING, LZ_IMAGE_READY, LZ_IMAGE_FAILED };
enum lz_image_backend { LZ_IMAGE_KERNEL, LZ_IMAGE_SQUASHFUSE };

struct lz_images;
struct lz_ws_recording;

/*
 * An image opened through libsquashfuse, shared by the image entry and every
 * inode of it: the last reference closes it, so files opened before an expiry
 * or a replacement keep reading the image they opened.
 */
struct lz_sqfs_image {
	struct lz_sqfs *sqfs;
	atomic_uint refs;
	dev_t dev; /* made up, unique among live handles: the node id source of its inodes */
	unsigned slot;
	struct lz_images *images;
};

void lz_sqfs_image_get(struct lz_sqfs_image *handle);
void lz_sqfs_image_put(struct lz_sqfs_image *handle);

/* A resolved image's root: a directory descriptor (kernel) or a handle (squashfuse). */
struct lz_image_root {
	int fd;
	struct lz_sqfs_image *sqfs;
};

struct lz_image {
	char *name;	 /* registry key: N for DIR/N.sqfs, "/rel/path" for map entries */
	char *path;	 /* map entries: the absolute image file; NULL for DIR */
	uint64_t parent; /* node id of the directory holding the entry */
	char *entry;	 /* the entry's name in that directory */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	enum lz_image_state state;
	int root_fd;		    /* READY, kernel backend: root of the detached mount */
	struct lz_sqfs_image *sqfs; /* READY, squashfuse backend */
	struct stat file_st;	    /* the image file as it was when last resolved or failed */
	long long failed_at;	    /* FAILED: when (CLOCK_MONOTONIC seconds) */
	unsigned generation;	    /* bumped by every resolve */
	atomic_llong last_use;	    /* CLOCK_MONOTONIC seconds */
	atomic_uint open_files;
	atomic_uint pins; /* lazyfsctl pin: never expired while pinned */
	atomic_ullong resolves;
	atomic_bool missing_logged;
	/*
	 * READY, and the on_ready callback still running: lookups wait, so the
	 * files looked up first are recorded in the working set it starts.
	 */
	bool announcing;
	char *source_key;		    /* the source object held open while READY, or NULL */
	struct lz_ws_recording *_Atomic ws; /* its working set being recorded (prefetch.c) */
	struct lz_images *images;
	struct lz_image *next;
};

/* IMAGES_DIR_FD: the images= directory, or -1 (map entries only). */
struct lz_images *lz_images_new(int images_dir_fd, enum lz_image_backend backend);
void lz_images_free(struct lz_images *images);

struct lz_source;
/*
 * Images come from SOURCE (remote_mode=images) instead of DIR: N is the
 * object N.sqfs (.img, .squashfs) at the remote's top, fetched on first use.
 */
void lz_images_set_source(struct lz_images *images, const struct lz_source *source);

/* True when DIR holds an image file for NAME (a cheap check, mounts nothing). */
bool lz_images_has(struct lz_images *images, const char *name);

/* Where an image comes from and where its entry sits in the mount. */
struct lz_image_ref {
	const char *key;   /* N, or "/rel/path" for a map entry */
	const char *path;  /* absolute image file for a map entry, NULL: DIR/N.sqfs... */
	uint64_t parent;   /* node id of the directory holding the entry */
	const char *entry; /* the entry's name there */
};

/*
 * A failed image is tried again after this many seconds even when its file is
 * unchanged: the cause may have passed (no free loop device, descriptors or
 * memory, a remote that did not answer).
 */
#define LZ_IMAGE_RETRY_S 10

/*
 * Resolves an image. On success returns 0, the image in *IMAGE and its root in
 * *ROOT: a new O_PATH descriptor, or a new reference on the squashfuse handle.
 * -ENOENT: there is no image file. Other -errno: the image is there but
 * unusable (logged at each try, at most every LZ_IMAGE_RETRY_S seconds); the
 * caller falls back to the underlay.
 */
int lz_images_resolve(struct lz_images *images, const struct lz_image_ref *ref,
		      struct lz_image **image, struct lz_image_root *root);

/*
 * Told once per resolve, after IMAGE became READY (its GENERATION), from the
 * thread that resolved it, with no lock held.
 */
typedef void lz_image_ready_fn(void *ctx, struct lz_image *image, unsigned generation);
void lz_images_on_ready(struct lz_images *images, lz_image_ready_fn *fn, void *ctx);

/* Records an access now (cheap: one atomic store). */
void lz_image_touch(struct lz_image *image);

/* Told about each closed image, so the caller can drop the kernel's caches. */
typedef void lz_image_expired_fn(void *ctx, const struct lz_image *image);

/* Closes every READY image unused for IDLE seconds with no open files. */
void lz_images_expire(struct lz_images *images, unsigned idle, lz_image_expired_fn *expired,
		      void *ctx);

/* Closes every READY image whose file was replaced or removed (for reload). */
void lz_images_expire_replaced(struct lz_images *images, lz_image_expired_fn *expired, void *ctx);

/*
 * Closes image NAME now, as expiry would (EXPIRED is told): -ENOENT when it
 * is not READY, -EBUSY while files are open on it.
 */
int lz_images_evict(struct lz_images *images, const char *name, lz_image_expired_fn *expired,
		    void *ctx);
/* The registry entry of NAME (an image touched since start), or NULL. */
struct lz_image *lz_images_find(struct lz_images *images, const char *name);
/* Calls FN for every image touched since start, in no order. */
void lz_images_foreach(struct lz_images *images, void (*fn)(void *ctx, struct lz_image *image),
		       void *ctx);

struct lz_images_stats {
	unsigned long long resolved; /* resolves that worked */
	unsigned long long failed;   /* resolves that failed: the underlay was served */
	enum lz_image_backend backend;
};
void lz_images_stats(struct lz_images *images, struct lz_images_stats *out);

/* Live upgrade (snapshot.c): what the new daemon takes over from the old one. */
struct lz_image_adopt {
	const char *name, *path, *entry;
	uint64_t parent;
	unsigned generation, pins;
	struct stat file_st;
	int root_fd;		    /* READY, kernel backend: consumed */
	struct lz_sqfs_image *sqfs; /* READY, squashfuse backend: a reference taken over */
	const char *source_key;	    /* READY, from a remote: the cached object it keeps open */
};
/* Registers an image as the old daemon had it (READY when it has a root). NULL: ENOMEM. */
struct lz_image *lz_images_adopt(struct lz_images *images, const struct lz_image_adopt *a);
/*
 * Opens the squashfuse handle of image file FILE_FD in SLOT, the slot the old
 * daemon used, so its inodes keep their node ids. NULL with a reason in ERR.
 */
struct lz_sqfs_image *lz_images_adopt_sqfs(struct lz_images *images, int file_fd, unsigned slot,
					   char *err, size_t errlen);

/* Calls FN for each image name in DIR (for the root listing). */
int lz_images_list(struct lz_images *images, void (*fn)(void *ctx, const char *name), void *ctx);

#endif
