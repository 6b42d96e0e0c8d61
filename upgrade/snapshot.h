/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The inode table and the images of a live upgrade: written by the old daemon
 * into a handover record while no request is being served, rebuilt by the
 * new one with the same node ids, so every node id the kernel holds stays
 * valid. Lines: "source", "sqfs", "image", "inode" (see snapshot.c).
 */
#ifndef LAZYFS_SNAPSHOT_H
#define LAZYFS_SNAPSHOT_H

#include <stddef.h>

struct lz_fs;
struct lz_handover;

/* The record version the state of FS needs (2 with remote=, else 1). */
int lz_snapshot_version(const struct lz_fs *fs);
/* Appends the table and images to H. 0, or -1 with a reason in ERR (nothing that can be handed
 * over). */
int lz_snapshot_capture(struct lz_fs *fs, struct lz_handover *h, char *err, size_t errlen);
/*
 * Rebuilds them in FS (an empty table, images and map opened): takes the
 * descriptors it uses out of H. 0, or -1 with a reason naming the bad line.
 */
int lz_snapshot_restore(struct lz_fs *fs, struct lz_handover *h, char *err, size_t errlen);

#endif
