/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internal to the rclone fetcher: what goes to rclone (paths checked before
 * they are sent) and what comes back (entries of its JSON replies, each field
 * checked: the remote, and whatever answers on the port, are not trusted).
 */
#ifndef LAZYFS_CACHE_RCLONE_ENTRY_H
#define LAZYFS_CACHE_RCLONE_ENTRY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "rclone.h"
#include "rclone_rc.h"

enum hash_kind { HASH_UNKNOWN, HASH_NONE, HASH_MD5, HASH_SHA1 };

/* An rclone fs string: not empty, not too long, no control characters. */
bool lz_rclone_remote_ok(const char *remote);

/*
 * REMOTE for messages: a connection string's options, which can hold keys
 * (":s3,secret_access_key=...:bucket/dir"), become "...":
 * ":s3,...:bucket/dir". NULL when out of memory.
 */
char *lz_rclone_shown_remote(const char *remote);

/*
 * A path relative to the remote: components separated by single '/', none
 * empty, "." or "..", no leading or trailing '/', no control characters.
 * EMPTY_OK: "" (the top) is allowed.
 */
bool lz_rclone_path_ok(const char *path, bool empty_ok);

/*
 * A local destination rclone's local backend writes exactly where asked:
 * absolute, no "." or ".." components, valid UTF-8, none of the characters it
 * translates (control characters, U+201B, U+2400-U+2421, a "．" or "．．" name).
 */
bool lz_rclone_local_path_ok(const char *path, char *why, size_t whylen);

/*
 * Fills E from one lsjson item (Name, IsDir, Size, ModTime, optional Hashes).
 * ROOT: the item is the top directory, whose name is "". 0, or -1 with WHY.
 */
int lz_rclone_parse_entry(struct json_object *item, bool root, struct lz_rclone_entry *e, char *why,
			  size_t whylen);

/* The hash a listing can carry for free, from an operations/fsinfo reply. */
enum hash_kind lz_rclone_cheap_hash(struct json_object *fsinfo);

/*
 * The entries of an operations/list REPLY of directory DIR, as lz_rclone_list
 * returns them: unusable entries left out and logged, duplicates dropped. 0,
 * or -EIO (not a listing) / -ENOMEM with WHY.
 */
int lz_rclone_list_reply(struct json_object *reply, const char *dir, const struct lz_rc_log *log,
			 struct lz_rclone_entry **entries, size_t *count, char *why, size_t whylen);

/* Leaves one entry per name (the first rclone gave; S3 can list "a" and "a/"), in order. */
size_t lz_rclone_drop_duplicates(struct lz_rclone_entry *entries, size_t count,
				 const struct lz_rc_log *log, const char *dir);

#endif
