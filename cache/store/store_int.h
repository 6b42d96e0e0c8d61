/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the files of the store share: the entry table, the lock discipline and
 * the on-disk naming. Not for users of the store.
 *
 * On disk, under DIR (0700):
 *   objects/XX/NAME-SLOT  an object; NAME is 32 hex digits of SHA-256(key), XX its
 *                         first two, SLOT tells keys whose NAME collides apart.
 *                         Its xattr user.lazyfs holds its record (key included),
 *                         so the index can be rebuilt from the files alone.
 *   tmp/fN-M/data         a fill in progress; tmp/ is emptied at open.
 *   index                 every object's record; see index.c.
 *   clean                 present only while the index is exact (after close).
 */
#ifndef LAZYFS_STORE_INT_H
#define LAZYFS_STORE_INT_H

#include "store.h"
#include "common/error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define LZ_NAME_BYTES 16
/* "XX/" + 32 hex + "-" + slot (10 digits) + NUL */
#define LZ_OBJ_PATH 48
#define LZ_XATTR    "user.lazyfs"
#define LZ_ERR_MAX  512

enum lz_entry_state {
	LZ_ABSENT,   /* no file; kept while referenced */
	LZ_FILLING,  /* a fetch is running; fills wait for its flight */
	LZ_SETTLING, /* fetched and checked, served from the flight's file while it is made
			durable and published in the background */
	LZ_READY,    /* published */
	LZ_EVICTING, /* its file is being unlinked; fills wait */
};

/* The outcome of one fetch, shared with every fill that waited for it. */
struct lz_flight {
	bool done;
	int rc;
	unsigned waiters; /* fills waiting; each gets an open reference on success */
	unsigned refs;	  /* the filler, the settler and the waiters that have not read it yet */
	int fd;		  /* success: the checked file, which waiters reopen; -1 otherwise */
	uint64_t gen;	  /* success: the entry's gen for that file */
	char err[LZ_ERR_MAX];
};

/*
 * One key. Lives while it is published, filling, open, pinned or held by a
 * call that dropped the lock; counts survive a stale copy being replaced, so
 * an open reference taken on the old copy is released against the new one.
 * Fields are ordered for size (a cache holds 150,000 of them): pointers,
 * 64-bit numbers, then the small ones; the key lives in the same allocation.
 */
struct lz_entry {
	char *key; /* right after the entry (lz_entry_new) */
	size_t keylen;
	struct lz_entry *hnext;		      /* hash chain */
	struct lz_entry *lru_prev, *lru_next; /* evictable: READY, not open, not pinned */
	struct lz_entry *victim_next;
	struct lz_flight *flight; /* LZ_FILLING, LZ_SETTLING */
	char *hash;		  /* LZ_READY: normalized "type:value", or NULL */
	uint64_t gen;		  /* bumped whenever the file under the name changes */

	/* LZ_READY: what was published. */
	int64_t size;
	int64_t atime; /* last access, CLOCK_REALTIME nanoseconds */
	struct timespec mtime;
	uint8_t name[LZ_NAME_BYTES];
	uint32_t slot;
	enum lz_entry_state state;
	uint32_t crc;

	unsigned opens, pins, holds;
	bool in_lru;
};

struct lz_table {
	struct lz_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

struct lz_store {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a flight finished, or an eviction did */
	pthread_mutex_t save_lock;

	char *dir; /* absolute */
	int dir_fd, objects_fd, tmp_fd;
	/* Set before any fill: another user writes the fetches (lz_store_set_fetcher). */
	bool foreign_fetcher;
	uid_t fetcher_uid;
	gid_t fetcher_gid;

	/*
	 * The index is loaded on first use or by lz_store_preload's thread
	 * (load.c), not at open: guarded by lock, LOADED once it is in TABLE
	 * (LOAD_RC its outcome), LOADING while one thread reads it (the others
	 * wait on CHANGED).
	 */
	bool loaded, loading, loader_started;
	int load_rc;
	char load_err[LZ_ERR_MAX];
	uint64_t quota_asked; /* lz_store_open's QUOTA_BYTES: 0 is computed after the load */
	pthread_t loader;

	/* Guarded by lock. */
	struct lz_table table;
	struct lz_entry *lru_head, *lru_tail; /* head: least recently used */
	uint64_t quota, used, reserved;
	uint64_t tmp_seq;
	unsigned settling; /* fills being published in the background */
	struct lz_store_stats stats;
	lz_log_fn *log;
	void *log_ctx;
	lz_store_evicted_fn *evicted;
	void *evicted_ctx;
};

/* SHA-256 of the key, truncated: the file name. Tests may point it elsewhere. */
extern void (*lz_store_name_fn)(const char *key, size_t keylen, uint8_t name[LZ_NAME_BYTES]);

/* KEY for a log line: control bytes as '?', long keys shortened. */
const char *lz_key_show(const char *key, char *buf, size_t size);

/* Hash strings: "" or "type:value", lowercased where hex. 0 or -EINVAL. */
int lz_hash_normalize(const char *in, char *out, size_t size);

/* The metadata record of an object: in the index and in its xattr. */
struct lz_record {
	const char *key; /* not NUL-terminated when decoded */
	size_t keylen;
	uint32_t slot;
	int64_t size;
	struct timespec mtime;
	const char *hash; /* NUL-terminated, "" when none */
	uint32_t crc;
	int64_t atime;
};
#define LZ_RECORD_MAX (52 + LZ_STORE_HASH_MAX + LZ_STORE_KEY_MAX)
/* Encodes R into BUF (LZ_RECORD_MAX bytes suffice); returns its length. */
size_t lz_record_encode(const struct lz_record *r, uint8_t *buf);
/*
 * Decodes one record at BUF; returns its length, or 0 when it is damaged.
 * HASHBUF (LZ_STORE_HASH_MAX) receives the hash.
 */
size_t lz_record_decode(const uint8_t *buf, size_t len, struct lz_record *r, char *hashbuf);

/* Entries and the table; lock held for all of these. */
void lz_table_init(struct lz_table *t);
void lz_table_free(struct lz_table *t);
struct lz_entry *lz_table_find(struct lz_table *t, const char *key, size_t keylen,
			       const uint8_t name[LZ_NAME_BYTES]);
/* A new ABSENT entry for KEY, with the lowest free slot for its name; NULL: ENOMEM. */
struct lz_entry *lz_table_add(struct lz_table *t, const char *key, size_t keylen,
			      const uint8_t name[LZ_NAME_BYTES]);
/* A new zeroed entry holding a copy of KEY (one allocation); NULL: ENOMEM. */
struct lz_entry *lz_entry_new(const char *key, size_t keylen);
/* Adds an entry whose slot is fixed (loading); false when the key or name-slot is taken. */
bool lz_table_insert(struct lz_table *t, struct lz_entry *e);
void lz_entry_free(struct lz_entry *e);
void lz_entry_path(const struct lz_entry *e, char path[LZ_OBJ_PATH]);
/* Accounts a READY entry: used, objects, LRU. */
void lz_entry_published(struct lz_store *s, struct lz_entry *e);
void lz_entry_maybe_free(struct lz_store *s, struct lz_entry *e);
void lz_entry_get_open(struct lz_store *s, struct lz_entry *e);
void lz_entry_put_open(struct lz_store *s, struct lz_entry *e);
/* DELTA +1 or -1. */
void lz_entry_pin(struct lz_store *s, struct lz_entry *e, int delta);
/* Opens a READY entry holding an open reference for the caller; see store.c. */
int lz_entry_open(struct lz_store *s, struct lz_entry *e, int *fd);
/* Unlinks a READY entry's file, leaving it ABSENT (drops the lock meanwhile; E stays). */
void lz_entry_drop(struct lz_store *s, struct lz_entry *e);
/* Puts the LRU list in order after the load: oldest first. */
void lz_lru_sort(struct lz_store *s);
/*
 * Evicts least recently used objects: until BYTES fit under the quota and
 * reserves them (reserve), or until at least BYTES are freed on disk (free).
 * Both drop the lock while unlinking.
 */
int lz_store_reserve(struct lz_store *s, uint64_t bytes, char *err, size_t errlen);
uint64_t lz_store_free_disk(struct lz_store *s, uint64_t bytes);
/* Evicts down to the quota (it may have shrunk since the last run). */
void lz_store_trim(struct lz_store *s);

/* True when lz_digest_fd can check HASH (md5, sha1), not only compare its value. */
bool lz_digest_checkable(const char *hash);
/* Reads FD from its start: CRC32 and, for md5 and sha1 hashes, checks HASH. -EIO: mismatch. */
int lz_digest_fd(int fd, const char *hash, uint32_t *crc, char *err, size_t errlen);

/* dir.c: DIR created or checked (owner, mode, no symlink), locked, laid out, tmp/ emptied. */
int lz_dir_open(struct lz_store *s, const char *dir, char *err, size_t errlen);
/*
 * Object PATH ("xx/NAME") through objects/xx opened without following a
 * symlink, so one put in its place since the start leads nowhere: its
 * directory (a descriptor), the object opened with FLAGS, unlinked. -errno.
 */
int lz_obj_dir(struct lz_store *s, const char *path);
int lz_obj_open(struct lz_store *s, const char *path, int flags);
int lz_obj_unlink(struct lz_store *s, const char *path);

/*
 * load.c: lock held; loads the index first if nobody has (dropping the lock
 * meanwhile), or waits for the thread loading it. 0, or the load's -errno
 * (the store is then unusable; lz_store_open used to fail for it).
 */
int lz_store_ready(struct lz_store *s);
/* Lock not held: waits for the preload thread, if one was started. */
void lz_store_join_loader(struct lz_store *s);

/* index.c: at the first use, the index or a scan; at close and sync, saving it. */
int lz_index_load(struct lz_store *s, char *err, size_t errlen);
int lz_index_save(struct lz_store *s, bool clean, char *err, size_t errlen);
/* Removes everything under the directory FD (not FD itself); never follows symlinks. */
int lz_remove_tree(int fd);

/*
 * fill.c: the fetch and its checks, entered and left with the lock held. On
 * success E is SETTLING and a background thread makes the file durable and
 * publishes it; the flight's fd is the checked file until then.
 */
int lz_fill_run(struct lz_store *s, struct lz_entry *e, const struct lz_object_meta *meta,
		lz_store_fetch_fn *fetch, void *ctx, int *fd, char *err, size_t errlen);

/* Drops a reference on a flight; the last one closes its file and frees it. */
void lz_flight_put(struct lz_flight *flight);
/* A new descriptor of FD's file with an offset of its own. */
int lz_reopen_fd(int fd);
/* Lock held: waits until no fill is being published in the background. */
void lz_settle_wait(struct lz_store *s);

#endif
