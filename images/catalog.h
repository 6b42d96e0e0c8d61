/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The entries of a directory of the images tree, for the listing of its
 * directory in the mount (the images directory's for the root), read by
 * a helper thread: a directory on a store that stopped answering (an NFS or
 * EFS hiccup, a stopped FUSE daemon) must not hold the caller. A read that
 * takes longer than the caller's deadline is answered from the last listing
 * read (logged); the helper's listing, when it comes, is kept for the next.
 * One helper reads at a time however many callers wait.
 *
 * Nothing here knows images: entries are the directory's, unfiltered.
 */
#ifndef LAZYFS_CATALOG_H
#define LAZYFS_CATALOG_H

struct lz_catalog;

/*
 * A catalog of directory DIR_FD (borrowed: the catalog opens its own), called
 * WHAT in messages ("the images directory"). NULL: errno.
 */
struct lz_catalog *lz_catalog_new(int dir_fd, const char *what);
/* Frees it; a helper still reading frees what it needs when it ends. NULL is fine. */
void lz_catalog_free(struct lz_catalog *c);

/* Told each entry's NAME and type (DT_*; DT_UNKNOWN when it could not be learnt). */
typedef void lz_catalog_fn(void *ctx, const char *name, unsigned char type);

/*
 * Calls FN for each entry of the directory, from a listing read now, or, when
 * that takes longer than DEADLINE_S seconds (0: no bound), from the last one.
 * 0; -ETIMEDOUT when there was none to fall back on; -errno when the
 * directory could not be read.
 */
int lz_catalog_list(struct lz_catalog *c, double deadline_s, lz_catalog_fn *fn, void *ctx);

#endif
