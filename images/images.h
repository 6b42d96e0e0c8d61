/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The image registry: entry N at the root of the mount is the squashfs image
 * DIR/N.sqfs, N.img or N.squashfs, entry R/N the image DIR/R/N.sqfs... (a
 * nested tree, below), or a map entry's image file, or the object N.sqfs
 * of a source; each resolved (mounted) on first access, exactly
 * once however many threads ask, and closed when idle or replaced.
 *
 * An image (struct lz_image) is opaque: it is read through the accessors
 * below, each taking the image's lock itself, so the lock discipline is all
 * in images/. Images are never freed before the registry: a pointer to one
 * stays valid for the life of the registry. Calls return 0 or -errno.
 * Nothing here knows FUSE, the cache or the tracker.
 */
#ifndef LAZYFS_IMAGES_H
#define LAZYFS_IMAGES_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

enum lz_image_state { LZ_IMAGE_UNRESOLVED, LZ_IMAGE_RESOLVING, LZ_IMAGE_READY, LZ_IMAGE_FAILED };
enum lz_image_backend { LZ_IMAGE_KERNEL, LZ_IMAGE_SQUASHFUSE };

struct lz_images;
struct lz_image;
struct lz_source;

/*
 * An image opened through libsquashfuse, shared by the image entry and every
 * inode of it: the last reference closes it, so files opened before an expiry
 * or a replacement keep reading the image they opened.
 *
 * Both backends read directories, names, attributes and links here, so
 * browsing an image mounts nothing. With the kernel backend (KERNEL) the
 * files are opened for reading in a detached kernel mount of the same image
 * file, made at the first open (kopen.c), and read through passthrough.
 */
struct lz_sqfs_image {
	/*
	 * The image file: the reader and the kernel mount read it. A remote
	 * image is listed before it is fetched: then -1 until
	 * lz_sqfs_image_fetch, and `fetched` says when it is there.
	 */
	int file_fd;
	atomic_bool fetched;
	char *fetch_name;    /* a remote image: its object at the source's top */
	uint64_t fetch_size; /* ...and its size and mtime when it was listed */
	struct timespec fetch_mtime;
	long long fetch_failed_at; /* under reader_lock: when a fetch last failed (monotonic s) */
	/*
	 * The root directory, read when the handle is made: a browse of the
	 * prefix (ls -l) gets the attributes of image roots without keeping a
	 * reader (tens of KiB of tables and caches) for each image it lists.
	 * A remote image not fetched yet has LZ_SQFS_ROOT and the attributes
	 * of its root card, or made-up ones (images.c, remote_root).
	 */
	uint64_t root_id;
	struct stat root_st;
	pthread_mutex_t reader_lock;
	struct lz_sqfs *_Atomic reader; /* NULL until first needed: lz_sqfs_image_reader */
	atomic_bool reader_failed;	/* logged once */
	atomic_uint refs;
	dev_t dev; /* made up, unique among live handles: the node id source of its inodes */
	unsigned slot;
	struct lz_images *images;
	/*
	 * Whether the kernel mounts it. A remote image learns it when fetched,
	 * before fetched is published, while lookups of it read it: atomic.
	 */
	atomic_bool kernel;
	/*
	 * When (CLOCK_MONOTONIC ns) a file, not a directory, of it was last
	 * looked up: while someone stats files (an ls -l), listings carry every
	 * entry's attributes; otherwise only directories' (a find, fs/dir.c).
	 */
	atomic_llong file_lookup_ns;
	struct lz_image *owner; /* the image it was opened for, and that resolve's generation */
	unsigned generation;
	pthread_mutex_t mount_lock;
	int mount_fd;		   /* under mount_lock: the kernel mount's root, -1 until made */
	long long mount_failed_at; /* under mount_lock: when it last failed (monotonic s), 0 */
	bool mount_refused;	   /* under mount_lock: never (no export table) */
};

void lz_sqfs_image_get(struct lz_sqfs_image *handle);

/*
 * The reader of HANDLE, opened at the first call and kept until the handle
 * goes. NULL with errno when it cannot be opened (no memory or descriptors;
 * logged once): the caller answers EIO.
 */
struct lz_sqfs *lz_sqfs_image_reader(struct lz_sqfs_image *handle);
/*
 * Whether HANDLE's image file is here: false for a remote image listed but
 * not walked into yet, whose reader is then NULL (EIO).
 */
bool lz_sqfs_image_fetched(struct lz_sqfs_image *handle);
/*
 * Fetches HANDLE's image file from its source unless it is here, once
 * however many threads ask: 0, or -ESTALE when it cannot be (logged): the
 * image then fails as a resolve that fails, its entry falls through to the
 * underlay, and ESTALE makes the kernel walk the path again and find that.
 * Tried again after LZ_IMAGE_RETRY_S. Waits on the remote: never call it
 * on a FUSE worker.
 */
int lz_sqfs_image_fetch(struct lz_sqfs_image *handle);
/* lz_sqfs_stat of inode ID of HANDLE; the root's needs no reader. */
int lz_sqfs_image_stat(struct lz_sqfs_image *handle, uint64_t id, struct stat *st);
/* Drops a reference; NULL is fine. */
void lz_sqfs_image_put(struct lz_sqfs_image *handle);

/*
 * Kernel backend: a new read-only descriptor of the regular file ID (a
 * squashfs inode id) of HANDLE, opened by its inode number in the kernel
 * mount of the image, made at the first call (on_mounted is told). -EOPNOTSUPP
 * when the daemon reads the file itself instead: the squashfuse backend, an
 * image without an export table, a kernel mount that failed (logged, tried
 * again after LZ_IMAGE_RETRY_S). Other -errno.
 */
int lz_sqfs_image_open_file(struct lz_sqfs_image *handle, uint64_t id);
/* Kernel backend: a new O_PATH descriptor of the kernel mount's root, made if needed; -errno. */
int lz_sqfs_image_kernel_root(struct lz_sqfs_image *handle);

/* A resolved image's root: a directory descriptor (kernel) or a handle (squashfuse). */
struct lz_image_root {
	int fd;
	struct lz_sqfs_image *sqfs;
};

/* IMAGES_DIR_FD: the images= directory (consumed), or -1 (map entries only). */
struct lz_images *lz_images_new(int images_dir_fd, enum lz_image_backend backend);
void lz_images_free(struct lz_images *images);

/*
 * Images come from SOURCE (remote_mode=images) instead of DIR: N is the
 * object N.sqfs (.img, .squashfs) at the remote's top, fetched on first use.
 */
void lz_images_set_source(struct lz_images *images, const struct lz_source *source);
/*
 * The root cards of a source's images (cards.h) persist in file PATH: 0, or
 * -1 with a reason in ERR. Without one, cards last as long as the process.
 */
int lz_images_set_cards(struct lz_images *images, const char *path, char *err, size_t errlen);

/*
 * Which images the kernel backend mounts (images/trust.h): TRUST (taken
 * over; NULL: root's files only, no digests). TRUSTED_ONLY: backend=kernel
 * was asked for, so an untrusted image is refused (its name serves the
 * underlay) instead of being read with squashfuse.
 */
struct lz_trust;
void lz_images_set_trust(struct lz_images *images, struct lz_trust *trust, bool trusted_only);

/* Listings of DIR wait at most SECONDS (0, the default: no bound); see lz_images_list. */
void lz_images_set_deadline(struct lz_images *images, double seconds);

/* Where an image comes from and where its entry sits in the mount. */
struct lz_image_ref {
	const char *key;   /* N or R/N in DIR, or "/rel/path" for a map entry */
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
 * lz_images_resolve, waiting at most WAIT_S seconds when IMAGE is not READY
 * already: -ETIMEDOUT past them, while the resolve goes on (on a thread of
 * its own) for the next caller; -EAGAIN when too many such resolves run.
 */
int lz_images_resolve_within(struct lz_images *images, const struct lz_image_ref *ref,
			     double wait_s, struct lz_image **image, struct lz_image_root *root);

/* Whether names at the root may be images: an images directory or a source (not map= only). */
bool lz_images_at_root(const struct lz_images *images);

/*
 * Whether resolving a name of the images directory never waits on a remote
 * store: the directory is on a local disk filesystem (ext4, xfs, btrfs, f2fs,
 * tmpfs...; not NFS, CIFS or FUSE) and no source serves the images. It costs
 * tens of microseconds then (no reader, no mount), so a FUSE worker may do
 * it; anything else is resolved on a deferral thread.
 */
bool lz_images_local(const struct lz_images *images);

/*
 * Whether image KEY is READY now, so that resolving it takes no more than a
 * lock (nothing is opened): the others may wait on the images directory.
 */
bool lz_images_ready(struct lz_images *images, const char *key);

/*
 * Calls FN for each resolve under way (its key, and for how many seconds it
 * has waited), under a lock: FN must be quick and must not call in here.
 */
void lz_images_foreach_pending(struct lz_images *images,
			       void (*fn)(void *ctx, const char *key, double seconds), void *ctx);

/*
 * Told once per resolve, after IMAGE became READY (its GENERATION), from the
 * thread that resolved it, with no lock held. Lookups of the image wait until
 * it returns, so what it starts (a working-set recording) sees them all.
 */
typedef void lz_image_ready_fn(void *ctx, struct lz_image *image, unsigned generation);
void lz_images_on_ready(struct lz_images *images, lz_image_ready_fn *fn, void *ctx);

/*
 * Told, with the image and its resolve generation, when the kernel backend
 * mounts an image because a file of it is opened: its first real use (a
 * browse reads everything else in user space). From the opening thread, with
 * no lock held.
 */
void lz_images_on_mounted(struct lz_images *images, lz_image_ready_fn *fn, void *ctx);

/*
 * Told about each closed image, with where its entry was (PARENT's node id,
 * ENTRY, NULL when never looked up), so the caller can drop the kernel's caches.
 */
typedef void lz_image_closed_fn(void *ctx, struct lz_image *image, uint64_t parent,
				const char *entry);

/* Closes every READY image unused for IDLE seconds with no open files and no pin. */
void lz_images_expire(struct lz_images *images, unsigned idle, lz_image_closed_fn *closed,
		      void *ctx);
/* Closes every READY image whose file was replaced or removed (for reload). */
void lz_images_expire_replaced(struct lz_images *images, lz_image_closed_fn *closed, void *ctx);
/*
 * Closes image NAME now, as expiry would (CLOSED is told): -ENOENT when it
 * is not READY, -EBUSY while files are open on it or it is pinned.
 */
int lz_images_evict(struct lz_images *images, const char *name, lz_image_closed_fn *closed,
		    void *ctx);

/* The registry entry of NAME (an image touched since start), or NULL. */
struct lz_image *lz_images_find(struct lz_images *images, const char *name);
/* Calls FN for every image touched since start, in no order. */
void lz_images_foreach(struct lz_images *images, void (*fn)(void *ctx, struct lz_image *image),
		       void *ctx);
/*
 * Nested trees. Image N.sqfs in directory R of the images directory (R at
 * most LZ_IMAGES_DEPTH components, "" the images directory itself) has
 * the key "R/N" and sits at R/N under the mount; the directories of the
 * tree are directories of the mount. A symlink to a directory in the tree
 * is not followed (a symlink to an image file is, by imagefile.h's rule).
 * A source's images are at its top only.
 */
#define LZ_IMAGES_DEPTH 8

/*
 * The number of components of REL ("a/b" is 2, "" is 0), each a name
 * lz_name_check takes; -1 when one is not, or there are more than
 * LZ_IMAGES_DEPTH + 1 (no key or directory of the tree can be that deep).
 */
int lz_images_tree_depth(const char *rel);
/* An O_PATH descriptor of directory REL of the tree, or -ENOENT (none, too deep) or -errno. */
int lz_images_tree_open(struct lz_images *images, const char *rel);
/* Whether REL (not "") is a directory of the tree. May wait on the store. */
bool lz_images_tree_dir(struct lz_images *images, const char *rel);

/*
 * Calls FN for each image name (IS_DIR false) and each subdirectory above
 * the depth limit (IS_DIR true) of directory REL of the tree ("" the
 * images directory or the source's top). A listing that takes longer than
 * the deadline set (a store that stopped answering) gives the names of the
 * last one read. 0 or -errno.
 */
typedef void lz_images_list_fn(void *ctx, const char *name, bool is_dir);
int lz_images_list_dir(struct lz_images *images, const char *rel, lz_images_list_fn *fn, void *ctx);
/* Whether the images directory holds a subdirectory (lists it: may wait up to the deadline). */
bool lz_images_nested(struct lz_images *images);

/* Upper bounds (seconds) of the cold-resolve latency buckets; the last is +Inf. */
#define LZ_RESOLVE_BUCKETS 12
extern const double lz_resolve_bucket_s[LZ_RESOLVE_BUCKETS - 1];

/* Cold resolves that worked with one backend: how long each took to mount. */
struct lz_resolve_latency {
	unsigned long long buckets[LZ_RESOLVE_BUCKETS]; /* per bucket, not cumulative */
	unsigned long long count;
	double sum_s;
};

struct lz_images_stats {
	unsigned long long resolved; /* resolves that worked */
	unsigned long long failed;   /* resolves that failed: the underlay was served */
	enum lz_image_backend backend;
	struct lz_resolve_latency latency[2]; /* indexed by enum lz_image_backend */
};
void lz_images_stats(struct lz_images *images, struct lz_images_stats *out);

/* One image. */

/* Its registry key: N, R/N, or "/rel/path" for a map entry. Never changes. */
const char *lz_image_name(const struct lz_image *image);
/* The image file as it was when last resolved: a file replaced since differs. */
struct lz_image_file {
	uint64_t dev, ino;
	int64_t size, mtime_ns;
};
void lz_image_file_id(struct lz_image *image, struct lz_image_file *out);
/*
 * Whether IMAGE's superblock said, when it was resolved, that it holds no
 * extended attributes (an image taken over by a live upgrade says false).
 */
bool lz_image_no_xattrs(struct lz_image *image);
/* Records an access now (cheap: one atomic store). */
void lz_image_touch(struct lz_image *image);
/* N files were opened on the image, or closed: an image with open files is never closed. */
void lz_image_files_opened(struct lz_image *image, unsigned n);
void lz_image_files_closed(struct lz_image *image, unsigned n);
/* lazyfsctl pin: a pinned image is never expired. Unpin: -EINVAL when not pinned. */
void lz_image_pin(struct lz_image *image);
int lz_image_unpin(struct lz_image *image);

/* What an image is now: one consistent copy, taken under its lock. */
struct lz_image_info {
	const char *name; /* lz_image_name */
	enum lz_image_state state;
	enum lz_image_backend backend; /* READY only */
	unsigned generation;	       /* bumped by every resolve */
	unsigned pins, open_files;
	unsigned long long resolves;
	long long last_use;  /* CLOCK_MONOTONIC seconds of the last access, 0: none */
	off_t bytes;	     /* the image file's size when last resolved */
	char trust[96];	     /* READY: whether the kernel may mount it, and why */
	char path[PATH_MAX]; /* a map entry's image file; "" for DIR/N.sqfs and sources */
};
void lz_image_info(struct lz_image *image, struct lz_image_info *out);

/*
 * A new descriptor of the root of a kernel-backend image's kernel mount
 * (made now if it was not), while it is still the resolve GENERATION; -1
 * otherwise (squashfuse, closed, resolved again since, the mount failed).
 */
int lz_image_open_root(struct lz_image *image, unsigned generation);
/* Whether IMAGE is still READY from resolve GENERATION. */
bool lz_image_is_generation(struct lz_image *image, unsigned generation);

/*
 * Live upgrade: an image as the new daemon takes it over. lz_image_export
 * fills one from a live image, lz_images_adopt registers one; the two are
 * symmetric. Exported strings and descriptors are borrowed: valid while no
 * image resolves or expires (the upgrade has stopped both).
 */
struct lz_image_adopt {
	const char *name, *path, *entry;
	uint64_t parent;
	unsigned generation, pins;
	struct stat file_st;
	int root_fd;		    /* READY, kernel backend: consumed by adopt */
	struct lz_sqfs_image *sqfs; /* READY, squashfuse backend: a reference adopt takes over */
	const char *source_key;	    /* READY, from a source: the object it keeps open */
};
void lz_image_export(struct lz_image *image, struct lz_image_adopt *out);
/* Registers an image as the old daemon had it (READY when it has a root). NULL: ENOMEM. */
struct lz_image *lz_images_adopt(struct lz_images *images, const struct lz_image_adopt *a);
/*
 * Opens the squashfuse handle of image file FILE_FD in SLOT, the slot the old
 * daemon used, so its inodes keep their node ids. NULL with a reason in ERR.
 */
struct lz_sqfs_image *lz_images_adopt_sqfs(struct lz_images *images, int file_fd, unsigned slot,
					   bool kernel, char *err, size_t errlen);
/* The same for a remote image not fetched yet: its object NAME, as listed (SIZE, MTIME). */
struct lz_sqfs_image *lz_images_adopt_unfetched(struct lz_images *images, unsigned slot,
						const char *name, uint64_t size,
						struct timespec mtime, char *err, size_t errlen);
/*
 * After a live upgrade: takes again, in the source's cache opened anew, the
 * objects that READY images from the source keep open. 0, or -ENOENT with
 * the first object the cache no longer has in ERR (the others are taken).
 */
int lz_images_adopt_sources(struct lz_images *images, char *err, size_t errlen);

#endif
