/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The listing of a remote directory as the cache keeps it, for use while the
 * remote cannot be reached: a JSON array of {name, size, sec, nsec, dir,
 * hash}. What write writes, decode reads back the same. Writing streams the
 * entries one by one: a listing of 150,000 objects made into a tree of JSON
 * objects first took over a hundred MiB of the daemon's memory at its peak. Decode trusts
 * nothing (the file may be damaged): an entry with a name that cannot be
 * served (empty, ".", "..", with '/' or NUL), a negative size or nanoseconds
 * out of range is left out. Nothing here knows the store or rclone's calls.
 */
#ifndef LAZYFS_LISTING_JSON_H
#define LAZYFS_LISTING_JSON_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>

#include "cache/rclone/rclone.h"
#include "common/source.h"

/* ITEMS (N of them) as a JSON array to F: 0, or -EIO when a write failed. */
int lz_listing_json_write(FILE *f, const struct lz_source_item *items, size_t n);
/*
 * The entries of ARRAY into *OUT (malloc'ed, *N of them; free with
 * lz_listing_json_free). 0, -EIO when ARRAY is no array, -ENOMEM.
 */
int lz_listing_json_decode(json_object *array, struct lz_rclone_entry **out, size_t *n);
void lz_listing_json_free(struct lz_rclone_entry *entries, size_t n);

#endif
