/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The rclone fetcher: lists, stats and copies objects of one rclone remote
 * through a long-lived `rclone rcd` child, spoken to over its HTTP rc API.
 * Knows nothing of FUSE or of the cache store.
 *
 * The child is started on first need, bound to 127.0.0.1 on a port the
 * kernel picks (read back from rclone's own "Serving remote control on" line,
 * so no other process can take it in between), with a random user and
 * password from getrandom(2) passed through the environment (RCLONE_RC_USER,
 * RCLONE_RC_PASS), never through argv, never logged. Any local user can reach
 * loopback; the password is what keeps them out. The child is restarted when
 * it dies or stops answering, and terminated (SIGTERM, then SIGKILL) and
 * reaped by lz_rclone_free. It gets SIGTERM if this process dies. Its stderr
 * goes to the log callback.
 *
 * The child is spawned by a supervisor thread of the fetcher, created on the
 * first request: lz_rclone_new may run before the process daemonizes, but no
 * request may (threads and the child would not survive the fork).
 *
 * The remote is any rclone fs string: "name:", "name:path", a local path, or
 * an inline remote ":http,url='http://host:8080/dir/':" (rclone requires
 * quotes around option values containing ':' or ','). The rclone config is
 * the user's: the child gets the environment as it is at lz_rclone_new
 * (RCLONE_CONFIG, RCLONE_CONFIG_<NAME>_*, RCLONE_BWLIMIT, ...) minus the
 * variables that would change its rc server or logging (RCLONE_RC_*,
 * RCLONE_LOG_*, ...). Messages show an inline remote's options as "...":
 * they can hold keys.
 *
 * All functions but lz_rclone_new and lz_rclone_free may be called from any
 * number of threads; at most max_parallel requests run at once, the others
 * wait. Errors are -errno with a one-line reason in ERR.
 */
#ifndef LAZYFS_CACHE_RCLONE_H
#define LAZYFS_CACHE_RCLONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/log.h"

struct lz_rclone_options {
	/*
	 * List and stat: the longest wait for a reply. Copy: the longest time
	 * without progress (bytes arriving), so a large object is never cut
	 * short while it flows. <= 0: 30 s.
	 */
	double timeout_s;
	/* Attempts after the first, on transient failures (0: 3). */
	unsigned retries;
	/* Requests running at once (0: 4). */
	unsigned max_parallel;
	/* NULL: discard. */
	lz_log_fn *log;
	void *log_ctx;
	/* The rclone program: a path, or a name looked up in PATH (NULL: "rclone"). */
	const char *rclone_bin;
	/* rclone's config file (the child's RCLONE_CONFIG); NULL: the environment's. */
	const char *config;
	/*
	 * A root daemon's child runs as RUN_UID:RUN_GID (never 0), which owns the
	 * directories it downloads into; it reads the config from a copy made now.
	 */
	bool run_as_user;
	uid_t run_uid;
	gid_t run_gid;
	/* lz_rclone_read is wanted: the child serves objects over HTTP (rc-serve). */
	bool serve;
};

struct lz_rclone;

/*
 * A fetcher for REMOTE. OPTS may be NULL for the defaults. Starts nothing yet;
 * fails only when REMOTE is malformed or the rclone program is not found.
 */
struct lz_rclone *lz_rclone_new(const char *remote, const struct lz_rclone_options *opts, char *err,
				size_t errlen);
/* Stops the child and frees everything; no call may be running. NULL is fine. */
void lz_rclone_free(struct lz_rclone *rc);

struct lz_rclone_entry {
	char *name;    /* one path component: never empty, ".", ".." or containing '/' */
	uint64_t size; /* 0 for directories */
	struct timespec mtime;
	bool is_dir;
	char *hash; /* "md5:<32 hex>" / "sha1:<40 hex>" if the remote has it cheaply, or NULL */
};

/*
 * Paths below are relative to the remote: "" is its top, "a/b" a file or
 * directory under it. A path starting with '/', with an empty, "." or ".."
 * component, or a trailing '/', is refused with -EINVAL before anything is
 * sent.
 */

/*
 * The entries of directory DIR, not recursive, in the remote's order. Entries
 * with names no filesystem can hold (see above), or with missing or absurd
 * fields, are left out and logged, as are repeated names after the first.
 * -ENOENT when DIR does not exist. *ENTRIES is NULL when *COUNT is 0.
 * Paths are rclone's names as listed (its encoding of odd characters
 * included): pass them back unchanged.
 */
int lz_rclone_list(struct lz_rclone *rc, const char *dir, struct lz_rclone_entry **entries,
		   size_t *count, char *err, size_t errlen);
void lz_rclone_entries_free(struct lz_rclone_entry *entries, size_t count);
/* Frees the strings of one entry (filled by lz_rclone_stat). */
void lz_rclone_entry_clear(struct lz_rclone_entry *entry);

/*
 * One file or directory ("" is the top, a directory named ""). -ENOENT when
 * missing. Free OUT's strings with lz_rclone_entry_clear.
 */
int lz_rclone_stat(struct lz_rclone *rc, const char *path, struct lz_rclone_entry *out, char *err,
		   size_t errlen);

/*
 * Copies object PATH to the local file LOCAL_PATH (absolute, its directory
 * must exist; an existing file is replaced). rclone checks the size, and the
 * hash when the remote and local disk share one. The bytes are written to a
 * sibling ".lzrc.*" name first and renamed to LOCAL_PATH only on success:
 * LOCAL_PATH never holds a partial object. A sibling can outlive a crash of
 * this process; callers that clean a temporary directory at start remove it.
 *
 * 0; -ENOENT when the object is missing (or a directory); -ETIMEDOUT when no
 * byte arrived for timeout_s; -EINVAL for a bad PATH or a LOCAL_PATH rclone
 * would rewrite (not valid UTF-8, or holding characters its local backend
 * translates: control characters, U+201B, U+2400-U+2421, "．" names); -EIO
 * otherwise. Transient failures (the child dying or being replaced, errors
 * from the remote) are retried with exponential backoff first. A timeout is
 * retried only if the child itself stopped answering (it is replaced): a
 * stuck remote fails once, after timeout_s, not after every retry.
 */
int lz_rclone_copy(struct lz_rclone *rc, const char *path, const char *local_path, char *err,
		   size_t errlen);

/*
 * Bytes read, handed on in order; false stops the read. Also called with
 * (NULL, 0) now and then while none come: false stops it too.
 */
typedef bool lz_rclone_sink_fn(void *ctx, const char *data, size_t len);

/*
 * Reads bytes [OFF, OFF+LEN) of object PATH (a range inside it) from the
 * child's rc-serve, straight into SINK: no file of the child's, so the bytes
 * come in order whatever the object's size (a copy past rclone's
 * multi-thread cutoff writes its file out of order). Needs opts->serve.
 * One attempt: 0 when exactly LEN bytes went to SINK; -ECANCELED when SINK
 * stopped it; -ENOENT; -ETIMEDOUT when no byte came for timeout_s; -EIO when
 * cut short (the remote or the child died: a dead child is replaced for the
 * next call, and the caller goes on from what SINK got).
 */
int lz_rclone_read(struct lz_rclone *rc, const char *path, uint64_t off, uint64_t len,
		   lz_rclone_sink_fn *sink, void *ctx, char *err, size_t errlen);

/* Starts the rcd child in the background, if none runs: the first call then finds it up. */
void lz_rclone_start(struct lz_rclone *rc);

/* The pid of the running rcd child, or 0 (for tests and status output). */
pid_t lz_rclone_child_pid(struct lz_rclone *rc);

#endif
