/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internal to the rclone fetcher: one HTTP call to the rc API of the rcd
 * child (libcurl, JSON through json-c), and the pool of connections that
 * bounds how many run at once.
 */
#ifndef LAZYFS_CACHE_RCLONE_RC_H
#define LAZYFS_CACHE_RCLONE_RC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

struct lz_rc_log {
	lz_log_fn *fn;
	void *ctx;
};

void lz_rc_logf(const struct lz_rc_log *log, enum lz_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies S into a message: control characters become '?', the rest is cut at LEN. */
void lz_rc_sanitize(char *dst, size_t len, const char *s);

/*
 * Parses a whole reply (LEN bytes at DATA) as one JSON object, strictly: no
 * NUL, valid UTF-8, nothing but white space after it. NULL with WHY if it is
 * not one.
 */
struct json_object *lz_rc_parse_reply(const char *data, size_t len, char *why, size_t whylen);

/*
 * Where the child listens and how to get in. VOUCH (if set) is asked once a
 * connection is made and before anything is sent on it: false aborts the
 * call (LZ_RC_NO_SERVER) with nothing sent.
 */
struct lz_rc_target {
	unsigned port;
	const char *user;
	const char *pass;
	bool (*vouch)(void *ctx);
	void *vouch_ctx;
};

/*
 * The rules every call to the child follows, set on libcurl handle CURL:
 * plain HTTP to URL on loopback only, no proxy from http_proxy and friends
 * (it would see the password), no redirects, no signals, T's Basic
 * credentials; with T's vouch, nothing sent to a listener it does not vouch
 * for. Errors are written to ERRBUF (CURL_ERROR_SIZE).
 */
void lz_rc_curl_loopback(void *curl, const struct lz_rc_target *t, const char *url, char *errbuf);

enum lz_rc_status {
	LZ_RC_OK,	    /* 200 and a JSON object */
	LZ_RC_NOT_FOUND,    /* 404: rclone found no such object or directory */
	LZ_RC_REMOTE_ERROR, /* 5xx: the operation failed, perhaps for now */
	LZ_RC_REFUSED,	    /* another 4xx: asking again will not help */
	LZ_RC_NO_SERVER,    /* no reply, or not from our child: it died or was replaced */
	LZ_RC_TIMEOUT,	    /* no reply in time, or a copy that stopped moving */
	LZ_RC_BAD_REPLY,    /* a reply that is not what rclone sends */
};

/*
 * How a copy shows it is alive: the bytes of FILE, or else the byte count of
 * rclone's stats GROUP. The call fails with LZ_RC_TIMEOUT when neither moved
 * for STALL_S seconds.
 */
struct lz_rc_watch {
	const char *file;
	const char *group;
	double stall_s;
};

struct lz_rc_pool;
struct lz_rc_slot;

struct lz_rc_pool *lz_rc_pool_new(unsigned size);
void lz_rc_pool_free(struct lz_rc_pool *pool);
/* Waits for a free slot. */
struct lz_rc_slot *lz_rc_slot_get(struct lz_rc_pool *pool);
void lz_rc_slot_put(struct lz_rc_pool *pool, struct lz_rc_slot *slot);

/*
 * POSTs PARAMS to METHOD ("operations/list"). Without WATCH the whole call
 * may take TIMEOUT_S. On LZ_RC_OK, *REPLY is the parsed object (the caller's
 * reference); otherwise ERR says why, with rclone's own message if it gave one.
 */
enum lz_rc_status lz_rc_call(struct lz_rc_slot *slot, const struct lz_rc_target *target,
			     const char *method, struct json_object *params, double timeout_s,
			     const struct lz_rc_watch *watch, struct json_object **reply, char *err,
			     size_t errlen);

/* Bytes of a GET, handed on in order; false stops the transfer. Also
 * called with (NULL, 0) now and then while none come: false stops it too. */
typedef bool lz_rc_sink_fn(void *ctx, const char *data, size_t len);

/* Idle handles for lz_rc_get, each keeping its connection to the child. NULL: ENOMEM. */
struct lz_rc_idle;
struct lz_rc_idle *lz_rc_idle_new(void);
void lz_rc_idle_free(struct lz_rc_idle *idle);

/*
 * GETs URL_PATH (escaped, from "/") with "Range: bytes=OFF-(OFF+LEN-1)" from
 * the child's rc-serve, handing the body to SINK. LZ_RC_OK only when exactly
 * LEN bytes came in a 206 reply; a stall of STALL_S without a byte is
 * LZ_RC_TIMEOUT; *STOPPED is set when SINK stopped it. Its own connection,
 * outside the pool (a long sequential read must not hold a listing back):
 * one left idle in IDLE by an earlier read, else a new one (IDLE NULL:
 * always new, and closed after).
 */
enum lz_rc_status lz_rc_get(struct lz_rc_idle *idle, const struct lz_rc_target *target,
			    const char *url_path, uint64_t off, uint64_t len, double stall_s,
			    lz_rc_sink_fn *sink, void *ctx, bool *stopped, char *err,
			    size_t errlen);

/* True when the child answers rc/noop within TIMEOUT_S: alive, not wedged. */
bool lz_rc_ping(struct lz_rc_slot *slot, const struct lz_rc_target *target, double timeout_s);

#endif
