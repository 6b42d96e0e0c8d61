/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One mounted lazyfs as the core sees it: the inode table and its root, the
 * image registry, the map, the remote tree, and the services around them
 * (the open tracker, prefetch, parked backing ids, expiry, directory
 * handles). The FUSE glue owns one and hands it to every operation; the core
 * knows nothing of FUSE requests, of the control plane or of upgrades.
 *
 * Lifetime: lz_fs_init, lz_fs_make_root (or a live upgrade's restore), the
 * glue sets images, map, objects, remote and prefetch; services start once
 * the process serves; lz_fs_destroy after every service stopped.
 */
#ifndef LAZYFS_FS_H
#define LAZYFS_FS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "expiry.h"
#include "handles.h"
#include "inode.h"
#include "linger.h"
#include "listing.h"
#include "map.h"
#include "nodeid.h"
#include "prefetch.h"
#include "pins.h"
#include "settings.h"
#include "track.h"
#include "common/source.h"
#include "images/images.h"

/* Tells the kernel to drop NAME in directory PARENT from its caches. */
typedef void lz_forget_entry_fn(void *ctx, uint64_t parent, const char *name);

/*
 * Requests that may wait on a slow store run off the FUSE threads (the glue's
 * deferral); what they cost, for the statistics.
 */
struct lz_waits {
	atomic_uint waiting;	   /* requests not answered yet */
	atomic_uint threads;	   /* threads running such work or idle for more */
	atomic_ullong deferred;	   /* requests deferred since start */
	atomic_ullong timed_out;   /* answered EIO at resolve_timeout */
	atomic_ullong interrupted; /* answered EINTR: the caller was interrupted */
	atomic_ullong refused;	   /* answered EAGAIN: too many waiting */
};

struct lz_fs {
	const struct lz_settings *settings;
	struct lz_inode_table *inodes;
	struct lz_inode *root;
	/* Cleared when the kernel or libfuse turn passthrough down; reads then come to us. */
	atomic_bool passthrough;
	atomic_bool passthrough_warned;
	/* open_mode=cached and the kernel can skip OPEN: answer the first one ENOSYS. */
	atomic_bool no_open;
	/* acl=on and the kernel took FUSE_POSIX_ACL: it enforces the ACLs we serve (xattr.h). */
	atomic_bool acl;
	struct lz_images *images; /* NULL without images=, map= or remote images */
	/*
	 * map= entries; replaced whole on reload (under map_lock). The mount holds
	 * one reference to the current map; inodes and listings of an old one
	 * keep it until they go (map.h).
	 */
	struct lz_map *_Atomic map;
	pthread_mutex_t map_lock;
	/* remote_mode=objects: the remote tree over the underlay's root. */
	const struct lz_source *objects;
	const struct lz_source *remote; /* the remote behind images or objects, or NULL */
	struct lz_prefetch *prefetch;	/* working sets, or NULL */
	struct lz_pins *pins;		/* pins kept across restarts, warm=; or NULL */
	struct lz_linger *linger;	/* backing ids of files nobody has open */
	struct lz_expiry *expiry;	/* the thread closing idle images */
	struct lz_handles *handles;	/* open directories by the handle the kernel holds */
	struct lz_listings *listings;	/* open directories: streams and shared unions */
	struct timespec started;	/* CLOCK_REALTIME at start */
	int keeper_pid;			/* the process holding the mount, or 0 */
	unsigned restarts;		/* workers the keeper started after a crash */
	atomic_ullong poisoned;		/* requests answered EIO: in flight at repeated crashes */
	atomic_ullong revived;		/* node ids of a crashed worker served again */
	atomic_ullong forgotten;	/* lookup references the kernel gave back (FORGET) */
	/*
	 * The eBPF open tracker, or NULL (bpf=off). Atomic: a live upgrade
	 * replaces it while the control thread and work stuck on a store may
	 * read it; a track is freed only once none can (lz_track_close).
	 */
	struct lz_track *_Atomic track;
	/*
	 * After a crash: the node id source IMAGE had in the worker before, when
	 * from the same file; 0: none.
	 */
	unsigned (*prior_source)(void *ctx, struct lz_image *image);
	void *prior_source_ctx;
	struct lz_waits waits;		  /* requests waiting on a slow store */
	lz_forget_entry_fn *forget_entry; /* NULL until the connection is up */
	void *forget_ctx;
};

/* Everything but the root and what the glue opens; 0 or -ENOMEM (destroy it either way). */
int lz_fs_init(struct lz_fs *fs, const struct lz_settings *settings);
/* The root inode on the underlay directory UNDERLAY_FD (consumed): 0 or -errno. */
int lz_fs_make_root(struct lz_fs *fs, int underlay_fd);
/* Images come from IMAGES (consumed): a ready image is told to the tracker and prefetch. */
void lz_fs_set_images(struct lz_fs *fs, struct lz_images *images);
/* Prefetch as the settings say (working sets in the cache directory): 0 or -ENOMEM. */
int lz_fs_open_prefetch(struct lz_fs *fs);
/* The cache's eviction callback (CTX: the lz_fs): object PATH left the cache. */
void lz_fs_object_evicted(void *ctx, const char *path);
/* Tells the kernel to drop NAME in PARENT, once it can be told. */
void lz_fs_forget_entry(struct lz_fs *fs, uint64_t parent, const char *name);
/* The current map with a reference (lz_map_release it), or NULL. */
struct lz_map *lz_fs_map_hold(struct lz_fs *fs);
/* Makes MAP (the caller's reference) current; returns the old one, whose reference is the caller's.
 */
struct lz_map *lz_fs_map_replace(struct lz_fs *fs, struct lz_map *map);
/* Frees what lz_fs_init made and what the glue set; every service must be stopped. */
void lz_fs_destroy(struct lz_fs *fs);

#endif
