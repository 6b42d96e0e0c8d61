/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Passthrough backing ids of files nobody has open. Registering a backing file
 * with the kernel (open the file, FUSE_DEV_IOC_BACKING_OPEN, and at the end
 * BACKING_CLOSE and close) was most of the daemon's work per open+close; a
 * parked id lets the next OPEN of the inode be answered from memory. A parked
 * id holds the kernel's reference on the file, not a descriptor of ours.
 *
 * Ids leave the table when it is full (the least recently parked first), when
 * their inode is forgotten, when the cache evicts the object behind one (its
 * disk space comes back only then) and when their image is closed (a parked
 * file holds the image's mount).
 */
#ifndef LAZYFS_LINGER_H
#define LAZYFS_LINGER_H

#include <stdint.h>

struct lz_linger;

/* Keeps at most MAX ids; 0 parks nothing (every last release closes its id). */
struct lz_linger *lz_linger_new(unsigned max);
/* At exit: the kernel drops what is left with the connection. */
void lz_linger_free(struct lz_linger *linger);
/* The mount's /dev/fuse descriptor, once mounted: ids are closed through it. */
void lz_linger_set_device(struct lz_linger *linger, int fuse_fd);

/*
 * The last open of NODEID (of image OWNER, or NULL) was released: keeps
 * BACKING_ID, or closes it when there is no room.
 */
void lz_linger_park(struct lz_linger *linger, uint64_t nodeid, int backing_id, const void *owner);
/* The parked id of NODEID, taken out of the table, or 0. */
int lz_linger_take(struct lz_linger *linger, uint64_t nodeid);
/* Closes ID (one taken that cannot be used). */
void lz_linger_close(struct lz_linger *linger, int backing_id);
/* Closes NODEID's parked id, or every one of OWNER. */
void lz_linger_revoke(struct lz_linger *linger, uint64_t nodeid);
void lz_linger_revoke_owner(struct lz_linger *linger, const void *owner);
/* Closes every parked id (before a live upgrade: the new process would not know them). */
void lz_linger_clear(struct lz_linger *linger);

/* How many ids are parked now. */
unsigned lz_linger_count(struct lz_linger *linger);

#endif
