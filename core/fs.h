/* State of one mounted lazyfs, shared by the FUSE operations. */
#ifndef LAZYFS_FS_H
#define LAZYFS_FS_H

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "images/images.h"
#include "inode.h"
#include "linger.h"
#include "map.h"
#include "core/settings.h"
#include "prefetch.h"
#include "common/source.h"
#include "track.h"

struct lz_fs {
	const struct lz_settings *settings;
	struct lz_inode_table *inodes;
	struct lz_inode *root;
	/* Cleared when the kernel or libfuse turn passthrough down; reads then come to us. */
	atomic_bool passthrough;
	atomic_bool passthrough_warned;
	/* open_mode=cached and the kernel can skip OPEN: answer the first one ENOSYS. */
	atomic_bool no_open;
	struct lz_images *images; /* NULL without images= */
	struct fuse_session *se;  /* for cache invalidations outside requests */
	/* map= entries; replaced whole on reload, old maps are kept (inodes point into them). */
	struct lz_map *_Atomic map;
	struct timespec map_mtime; /* times of synthesized directories */
	/* remote_mode=objects: the remote tree over the underlay's root. */
	const struct lz_source *objects;
	struct lz_track *_Atomic track; /* the eBPF open tracker, or NULL */
	const struct lz_source *remote; /* the remote behind images or objects, or NULL */
	struct lz_control *control;	/* lazyfsctl's socket, or NULL */
	struct timespec started;	/* CLOCK_REALTIME at start */
	struct lz_prefetch *prefetch;	/* working sets, or NULL */
	struct lz_linger *linger;	/* backing ids of files nobody has open */
};

/* The fuse_lowlevel_ops of lazyfs. */
extern const struct fuse_lowlevel_ops lz_ops;

static inline struct lz_fs *lz_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct lz_inode *lz_inode_of(fuse_req_t req, fuse_ino_t ino);
/* lz_inode_of, answering ESTALE itself when the node id is unknown. */
struct lz_inode *lz_inode_or_estale(fuse_req_t req, fuse_ino_t ino);

/* How long the kernel may cache what it learns about INODE (NULL: the underlay). */
double lz_timeout_of(const struct lz_fs *fs, const struct lz_inode *inode);

/*
 * Looks NAME up beneath PARENT, taking one lookup reference on the result. At
 * the root an image of that name wins over the underlay. 0 or an errno value.
 */
int lz_lookup(struct lz_fs *fs, struct lz_inode *parent, const char *name,
	      struct fuse_entry_param *e);
/*
 * Takes a lookup reference on squashfuse inode ID of HANDLE (whose reference
 * the call consumes) and fills E. KNOWN: its stat if the caller has it.
 */
int lz_enter_sqfs(struct lz_fs *fs, struct lz_image *image, struct lz_sqfs_image *handle,
		  uint64_t id, const struct stat *known, struct fuse_entry_param *e);
/*
 * Resolves entry KEY ("N", "a/b/c", or an object path) now, walking to it
 * through lazyfs's own lookups as the kernel would: the image is mounted, the
 * object fetched when FETCH (a stat needs only the listings along the path).
 * True when there was something to resolve and it worked.
 */
bool lz_resolve_entry(struct lz_fs *fs, const char *key, bool fetch);
/* The node id of a backing file, or 0 when it cannot have one. */
uint64_t lz_nodeid_of(struct lz_fs *fs, dev_t dev, ino_t ino);

/* objects.c: remote_mode=objects entries. */
/* Looks NAME up in the remote directory DIR_PATH: 0, ENOENT, or an errno value. */
int lz_objects_lookup(struct lz_fs *fs, const char *dir_path, const char *name,
		      struct fuse_entry_param *e);
void lz_objects_stat(const struct lz_inode *inode, struct stat *st);
/* The node id PATH gets unless its hash collides (for listings, which look nothing up). */
uint64_t lz_objects_nodeid(const char *path);
/* The remote listing of DIR_PATH in *ENTRIES (free it): 0 or -errno. */
int lz_objects_list(struct lz_fs *fs, const char *dir_path, struct lz_source_entry **entries,
		    size_t *count);
/* Opens the local copy for reading (fetching it): a descriptor or -errno. */
int lz_objects_open(struct lz_fs *fs, struct lz_inode *inode);
void lz_objects_release(struct lz_fs *fs, struct lz_inode *inode);
/*
 * Live upgrade: takes again, in a cache opened anew, the references the open
 * remote objects and the images from a remote hold. 0, or -1 with the first
 * object the cache no longer has in ERR (all the others are taken).
 */
int lz_objects_adopt(struct lz_fs *fs, char *err, size_t errlen);

/* dir.c */
void lz_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void lz_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		   struct fuse_file_info *fi);
void lz_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi);
void lz_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* expiry.c: closes idle images and rereads configuration on SIGHUP. */
/* An image was closed (CTX: the lz_fs): the kernel, the tracker and prefetch are told. */
void lz_image_closed(void *ctx, const struct lz_image *image);
int lz_expiry_start(struct lz_fs *fs);
void lz_expiry_stop(void);
void lz_expiry_reload_signal(int sig);
/* (Re)reads the map file; bad lines are logged. 0, or -1 when it cannot be read. */
int lz_map_reload(struct lz_fs *fs);

/* open.c */
void lz_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void lz_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void lz_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
