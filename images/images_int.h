/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The insides of the image registry, shared by images.c (the registry and
 * resolving), image.c (one image's accessors) and backend.c (opening an
 * image file with a backend). Nothing outside images/ includes this.
 *
 * Locks: images->lock guards the hash table only and is never held while
 * anything is mounted; image->lock guards the fields marked so, and is
 * dropped only where images.c says (while mounting, while on_ready runs).
 */
#ifndef LAZYFS_IMAGES_INT_H
#define LAZYFS_IMAGES_INT_H

#include "images.h"

#include <pthread.h>
#include <stdatomic.h>

#define LZ_SQFS_SLOTS	  65536u
#define LZ_IMAGES_BUCKETS 4096u

struct lz_image {
	char *name; /* registry key: N for DIR/N.sqfs, R/N, "/rel/path" for map entries; immutable
		     */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	/* Under lock: */
	char *path;	 /* map entries: the absolute image file; NULL for DIR */
	uint64_t parent; /* node id of the directory holding the entry */
	char *entry;	 /* the entry's name in that directory */
	enum lz_image_state state;
	int root_fd;		    /* READY, kernel backend: root of the detached mount */
	struct lz_sqfs_image *sqfs; /* READY, squashfuse backend */
	struct stat file_st;	    /* the image file as it was when last resolved or failed */
	bool no_xattrs;		    /* READY: its superblock says it holds no extended attributes */
	char trust[96];		    /* READY: whether the kernel may mount it, and why (trust.h) */
	long long failed_at;	    /* FAILED: when (CLOCK_MONOTONIC seconds) */
	unsigned generation;	    /* bumped by every resolve */
	/*
	 * READY, and the on_ready callback still running: lookups wait, so the
	 * files looked up first are seen by what it starts.
	 */
	bool announcing;
	char *source_key; /* the source object held open while READY, or NULL */
	/* Atomics, read without the lock: */
	atomic_llong last_use; /* CLOCK_MONOTONIC seconds */
	atomic_uint open_files;
	atomic_uint pins; /* lazyfsctl pin: never expired while pinned */
	atomic_ullong resolves;
	atomic_bool missing_logged;
	struct lz_images *images;
	struct lz_image *next; /* hash chain, under images->lock */
};

/* A resolve under way (on its caller's stack), for lz_images_foreach_pending. */
struct lz_pending {
	const char *key;
	double since; /* CLOCK_MONOTONIC seconds */
	struct lz_pending *prev, *next;
};

struct lz_images {
	int dir_fd;
	bool dir_local;		    /* on a local disk filesystem: lz_images_local */
	struct lz_catalog *catalog; /* the names in DIR, read with a deadline */
	double deadline;	    /* seconds a listing of DIR may take; 0: no bound */
	const struct lz_source *source;
	struct lz_cards *cards; /* the source's images' root cards; NULL: none */
	enum lz_image_backend backend;
	struct lz_trust *trust; /* which images the kernel mounts (trust.h); NULL: root's */
	bool trusted_only;	/* backend=kernel asked for: an untrusted image is refused */
	pthread_mutex_t slot_lock;
	unsigned char slot_used[LZ_SQFS_SLOTS];
	pthread_mutex_t lock; /* the hash table only: never held while mounting */
	struct lz_image *buckets[LZ_IMAGES_BUCKETS];
	lz_image_ready_fn *on_ready, *on_mounted;
	void *on_ready_ctx, *on_mounted_ctx;
	atomic_ullong resolved, failed; /* resolves that worked, that failed (fell back) */
	/* Cold resolves that worked, by backend: latency buckets, count, nanoseconds. */
	atomic_ullong latency_buckets[2][LZ_RESOLVE_BUCKETS], latency_count[2], latency_ns[2];
	pthread_mutex_t pending_lock;
	struct lz_pending *pending;
	pthread_mutex_t tree_lock;     /* tree_dirs only */
	struct lz_tree_dir *tree_dirs; /* directories of the tree listed so far (tree.c) */
};

/* backend.c */
/*
 * Opens the image file FILE_FD (PATH in messages, ST its stat) with the
 * registry's backend: 0 with its root in ROOT, or -errno (logged). Slow:
 * called without any lock.
 */
int lz_backend_open(struct lz_images *images, int file_fd, const char *path, const struct stat *st,
		    bool kernel, struct lz_image_root *root);
/*
 * The squashfuse handle of FILE_FD in slot WANT, or the first free slot for
 * -1; KERNEL: its files may be opened in a kernel mount (a trusted image).
 */
struct lz_sqfs_image *lz_backend_open_sqfs(struct lz_images *images, int file_fd, long want,
					   bool kernel, char *err, size_t errlen);
/*
 * The handle of remote image object NAME, as listed (SIZE, MTIME), not
 * fetched: its root as its card says (*NO_XATTRS too), or made up.
 */
struct lz_sqfs_image *lz_backend_open_remote(struct lz_images *images, const char *name,
					     uint64_t size, struct timespec mtime, long want,
					     bool *no_xattrs, char *err, size_t errlen);

/* fetch.c */
/* Gives an unfetched HANDLE its root: from its card, or made up. *NO_XATTRS: the card's. */
void lz_remote_root(struct lz_sqfs_image *handle, bool *no_xattrs);
/* Fetches HANDLE's image file; under handle->reader_lock. 0 or -ESTALE (logged). */
int lz_fetch_locked(struct lz_sqfs_image *handle);

/* images.c */
/* NAME without an image suffix into OUT; false if it has none. */
bool lz_images_strip_suffix(const char *name, char *out, size_t outlen);
/* The image names at the source's top. */
int lz_images_list_source(struct lz_images *images, lz_images_list_fn *fn, void *ctx);

/* tree.c */
void lz_images_tree_free(struct lz_images *images);

/* image.c */
struct lz_image *lz_image_new(struct lz_images *images, const char *name);
void lz_image_free(struct lz_image *image);
/* Closes a READY image's root and releases its source object; under image->lock. */
void lz_image_close_locked(struct lz_image *image);
/* Records where the image's entry is now (REF); under image->lock. 0 or -ENOMEM. */
int lz_image_remember_locked(struct lz_image *image, const struct lz_image_ref *ref);

#endif
