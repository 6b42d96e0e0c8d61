/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "rclone.h"
#include "rclone_entry.h"
#include "rclone_rc.h"
#include "rclone_rcd.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_S 30.0
#define DEFAULT_RETRIES	  3
#define DEFAULT_PARALLEL  4
#define MAX_PARALLEL	  64
#define BACKOFF_FIRST_MS  100
#define BACKOFF_MAX_MS	  3000
/* The child starts in well under a second; a loaded machine gets some slack. */
#define START_MIN_S 10.0
/* A timed-out call asks the child whether it is still alive, this briefly. */
#define PING_S	    1.0
#define LISTING_MAX (16u << 20)
/* Skipped entries are logged one by one up to this many per listing. */
#define SKIP_LOG_MAX 5

struct lz_rclone {
	char *remote; /* the rclone fs string */
	char *shown;  /* the same for messages, without inline options (they can hold secrets) */
	double timeout_s;
	unsigned retries;
	struct lz_rc_log log;
	struct lz_rcd *rcd;
	struct lz_rc_pool *pool;
	bool serve;		 /* rc-serve on: lz_rclone_read */
	struct lz_rc_idle *idle; /* its connections, kept between reads */
	_Atomic int hash_kind;
	atomic_uint seq;
};

/* What a call is, for its messages: "list of 'a/b'". */
struct call {
	const char *method;
	const char *verb;
	const char *path;
	struct json_object *params;
	struct lz_rc_watch *watch; /* copies: how progress shows */
	/* Copies: a fresh destination before each attempt, cleanup after a failed one. */
	int (*prepare)(void *ctx);
	void (*failed)(void *ctx);
	void *ctx;
};

/* "rclone list of 'remote:dir/x': why (3 tries)" */
static void fail(char *err, size_t errlen, const struct lz_rclone *rc, const struct call *c,
		 const char *why, unsigned tries)
{
	size_t len = strlen(rc->shown);
	bool sep = c->path[0] != '\0' && len > 0 && rc->shown[len - 1] != ':' &&
		   rc->shown[len - 1] != '/';
	char where[384], *full;

	if (asprintf(&full, "%s%s%s", rc->shown, sep ? "/" : "", c->path) < 0)
		full = NULL;
	lz_rc_sanitize(where, sizeof(where), full ? full : c->path);
	free(full);
	if (tries > 1)
		snprintf(err, errlen, "rclone %s of '%s': %s (%u tries)", c->verb, where, why,
			 tries);
	else
		snprintf(err, errlen, "rclone %s of '%s': %s", c->verb, where, why);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * One attempt of an rc call; *AGAIN tells whether another may succeed.
 * Transient: the child gone or replaced (the next attempt starts a new one),
 * the remote failing (5xx). Final: not found, a refused request, a bad
 * reply, and a timeout while the child itself still answers (the remote is
 * stuck: waiting again would double the wait for nothing).
 */
struct child {
	struct lz_rcd *rcd;
	unsigned gen;
};

static bool vouch(void *ctx)
{
	const struct child *ch = ctx;

	return lz_rcd_vouch(ch->rcd, ch->gen);
}

static int attempt_as(struct lz_rclone *rc, struct call *c, struct lz_rc_slot *slot,
		      struct lz_rcd_creds *creds, struct json_object **reply, char *why,
		      size_t whylen, bool *again)
{
	struct child ch = { .rcd = rc->rcd };
	struct lz_rc_target target = {
		.user = creds->user, .pass = creds->pass, .vouch = vouch, .vouch_ctx = &ch
	};
	enum lz_rc_status st;
	unsigned gen;
	int ret;

	*again = false;
	ret = lz_rcd_get(rc->rcd, &target.port, &gen, creds, why, whylen);
	ch.gen = gen;
	if (ret < 0) {
		*again = ret != -ESHUTDOWN;
		return ret == -ETIMEDOUT || ret == -ESHUTDOWN ? ret : -EIO;
	}
	if (c->prepare != NULL && (ret = c->prepare(c->ctx)) < 0) {
		snprintf(why, whylen, "%s", strerror(-ret));
		return ret;
	}
	st = lz_rc_call(slot, &target, c->method, c->params, rc->timeout_s, c->watch, reply, why,
			whylen);
	if (st != LZ_RC_OK && c->failed != NULL)
		c->failed(c->ctx);
	switch (st) {
	case LZ_RC_OK:
		return 0;
	case LZ_RC_NOT_FOUND:
		return -ENOENT;
	case LZ_RC_REFUSED:
	case LZ_RC_BAD_REPLY:
		return -EIO;
	case LZ_RC_TIMEOUT:
		if (lz_rc_ping(slot, &target, PING_S))
			return -ETIMEDOUT;
		lz_rcd_discard(rc->rcd, gen, "it stopped answering");
		*again = true;
		return -ETIMEDOUT;
	case LZ_RC_NO_SERVER:
		lz_rcd_discard(rc->rcd, gen, why);
		*again = true;
		return -EIO;
	case LZ_RC_REMOTE_ERROR:
		/* A full local disk is ours to fix (the store evicts), not worth retrying. */
		if (strstr(why, "remaining disk space") || strstr(why, "no space left on device"))
			return -ENOSPC;
		*again = true;
		return -EIO;
	}
	return -EIO;
}

/* One attempt with the credentials of the child it reaches, wiped after. */
static int attempt(struct lz_rclone *rc, struct call *c, struct lz_rc_slot *slot,
		   struct json_object **reply, char *why, size_t whylen, bool *again)
{
	struct lz_rcd_creds creds;
	int ret = attempt_as(rc, c, slot, &creds, reply, why, whylen, again);

	lz_rcd_creds_wipe(&creds);
	return ret;
}

/* An rc call, retried with exponential backoff; on failure ERR names the call and why. */
static int call_rc(struct lz_rclone *rc, struct call *c, struct json_object **reply, char *err,
		   size_t errlen)
{
	struct lz_rc_slot *slot = lz_rc_slot_get(rc->pool);
	unsigned delay = BACKOFF_FIRST_MS, tries;
	char why[512];
	bool again;
	int ret;

	for (tries = 1;; tries++) {
		ret = attempt(rc, c, slot, reply, why, sizeof(why), &again);
		if (ret == 0 || !again || tries > rc->retries)
			break;
		sleep_ms(delay);
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	}
	lz_rc_slot_put(rc->pool, slot);
	if (ret < 0)
		fail(err, errlen, rc, c, why, tries);
	return ret;
}

/*
 * Whether listings should ask for a hash, learnt from operations/fsinfo once.
 * It sets up the same rclone Fs the listing needs, so its failure is the
 * listing's: reported as is rather than waited for twice.
 */
static int hash_kind(struct lz_rclone *rc, const struct call *outer, enum hash_kind *kind,
		     char *err, size_t errlen)
{
	struct json_object *reply = NULL;
	struct call c = { .method = "operations/fsinfo", .verb = outer->verb, .path = outer->path };
	int ret;

	*kind = atomic_load(&rc->hash_kind);
	if (*kind != HASH_UNKNOWN)
		return 0;
	c.params = json_object_new_object();
	if (c.params == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_object_object_add(c.params, "fs", json_object_new_string(rc->remote));
	ret = call_rc(rc, &c, &reply, err, errlen);
	if (ret == 0) {
		*kind = lz_rclone_cheap_hash(reply);
		atomic_store(&rc->hash_kind, *kind);
	}
	json_object_put(reply);
	json_object_put(c.params);
	return ret;
}

/* {"fs": REMOTE, "remote": PATH, "opt": {...}} for list and stat; NULL when out of memory. */
static struct json_object *list_params(struct lz_rclone *rc, const char *path, enum hash_kind kind)
{
	struct json_object *params = json_object_new_object(), *opt = json_object_new_object();

	if (params == NULL || opt == NULL) {
		json_object_put(params);
		json_object_put(opt);
		return NULL;
	}
	json_object_object_add(params, "fs", json_object_new_string(rc->remote));
	json_object_object_add(params, "remote", json_object_new_string(path));
	json_object_object_add(opt, "noMimeType", json_object_new_boolean(1));
	if (kind == HASH_MD5 || kind == HASH_SHA1) {
		struct json_object *types = json_object_new_array();

		json_object_array_add(types,
				      json_object_new_string(kind == HASH_MD5 ? "md5" : "sha1"));
		json_object_object_add(opt, "showHash", json_object_new_boolean(1));
		json_object_object_add(opt, "hashTypes", types);
	}
	json_object_object_add(params, "opt", opt);
	return params;
}

/* The parameters of a list or stat of PATH, or -errno with ERR. */
static int start_listing(struct lz_rclone *rc, struct call *c, char *err, size_t errlen)
{
	enum hash_kind kind;
	int ret;

	if (!lz_rclone_path_ok(c->path, true)) {
		fail(err, errlen, rc, c, "invalid path", 1);
		return -EINVAL;
	}
	if ((ret = hash_kind(rc, c, &kind, err, errlen)) < 0)
		return ret;
	if ((c->params = list_params(rc, c->path, kind)) == NULL) {
		fail(err, errlen, rc, c, "out of memory", 1);
		return -ENOMEM;
	}
	return 0;
}

/* Sends a list or stat call; 0 with *REPLY to free, or -errno. */
static int call_listing(struct lz_rclone *rc, struct call *c, struct json_object **reply, char *err,
			size_t errlen)
{
	int ret = start_listing(rc, c, err, errlen);

	if (ret < 0)
		return ret;
	ret = call_rc(rc, c, reply, err, errlen);
	json_object_put(c->params);
	return ret;
}

int lz_rclone_list_reply(struct json_object *reply, const char *dir, const struct lz_rc_log *log,
			 struct lz_rclone_entry **entries, size_t *count, char *why, size_t whylen)
{
	struct json_object *list;
	struct lz_rclone_entry *out;
	size_t n, kept = 0, skipped = 0;

	*entries = NULL;
	*count = 0;
	if (!json_object_object_get_ex(reply, "list", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		snprintf(why, whylen, "bad reply: no \"list\" array");
		return -EIO;
	}
	n = json_object_array_length(list);
	if (n > LISTING_MAX) {
		snprintf(why, whylen, "bad reply: absurdly many entries");
		return -EIO;
	}
	out = calloc(n ? n : 1, sizeof(*out));
	if (out == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		char skip_why[160];

		if (lz_rclone_parse_entry(json_object_array_get_idx(list, i), false, &out[kept],
					  skip_why, sizeof(skip_why)) == 0) {
			kept++;
			continue;
		}
		if (++skipped <= SKIP_LOG_MAX) {
			char path[256];

			lz_rc_sanitize(path, sizeof(path), dir);
			lz_rc_logf(log, LZ_LOG_WARN, "rclone list of '%s': entry %zu left out: %s",
				   path, i, skip_why);
		}
	}
	kept = lz_rclone_drop_duplicates(out, kept, log, dir);
	if (skipped > SKIP_LOG_MAX) {
		lz_rc_logf(log, LZ_LOG_WARN, "rclone list: %zu more entries left out",
			   skipped - SKIP_LOG_MAX);
	}
	if (kept == 0) {
		free(out);
		out = NULL;
	}
	*entries = out;
	*count = kept;
	return 0;
}

int lz_rclone_list(struct lz_rclone *rc, const char *dir, struct lz_rclone_entry **entries,
		   size_t *count, char *err, size_t errlen)
{
	struct call c = { .method = "operations/list", .verb = "list", .path = dir };
	struct json_object *reply = NULL;
	char why[160];
	int ret;

	*entries = NULL;
	*count = 0;
	if ((ret = call_listing(rc, &c, &reply, err, errlen)) < 0)
		return ret;
	ret = lz_rclone_list_reply(reply, dir, &rc->log, entries, count, why, sizeof(why));
	json_object_put(reply);
	if (ret < 0)
		fail(err, errlen, rc, &c, why, 1);
	return ret;
}

int lz_rclone_stat(struct lz_rclone *rc, const char *path, struct lz_rclone_entry *out, char *err,
		   size_t errlen)
{
	struct call c = { .method = "operations/stat", .verb = "stat", .path = path };
	struct json_object *reply = NULL, *item;
	char why[160];
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = call_listing(rc, &c, &reply, err, errlen)) < 0)
		return ret;
	if (!json_object_object_get_ex(reply, "item", &item)) {
		fail(err, errlen, rc, &c, "bad reply: no \"item\"", 1);
		ret = -EIO;
	} else if (item == NULL) {
		/* rclone answers a missing object with a null item, not a 404. */
		fail(err, errlen, rc, &c, "not found", 1);
		ret = -ENOENT;
	} else if (lz_rclone_parse_entry(item, path[0] == '\0', out, why, sizeof(why)) < 0) {
		fail(err, errlen, rc, &c, why, 1);
		ret = -EIO;
	}
	json_object_put(reply);
	return ret;
}

struct copy {
	struct lz_rclone *rc;
	const char *dir; /* of the local file, "" for "/" */
	char attempt[PATH_MAX];
	char group[32];
	struct json_object *params;
	struct lz_rc_watch watch;
};

/* Each attempt writes its own file: an abandoned one may still be cleaning up after itself. */
static int copy_prepare(void *ctx)
{
	struct copy *cp = ctx;
	unsigned n = atomic_fetch_add(&cp->rc->seq, 1);

	if (snprintf(cp->attempt, sizeof(cp->attempt), "%s/.lzrc.%d.%u", cp->dir, (int)getpid(),
		     n) >= (int)sizeof(cp->attempt))
		return -ENAMETOOLONG;
	snprintf(cp->group, sizeof(cp->group), "lazyfs/%d.%u", (int)getpid(), n);
	json_object_object_add(cp->params, "dstRemote", json_object_new_string(cp->attempt + 1));
	json_object_object_add(cp->params, "_group", json_object_new_string(cp->group));
	return 0;
}

static void copy_failed(void *ctx)
{
	struct copy *cp = ctx;

	unlink(cp->attempt);
}

int lz_rclone_copy(struct lz_rclone *rc, const char *path, const char *local_path, char *err,
		   size_t errlen)
{
	struct call c = { .method = "operations/copyfile", .verb = "copy", .path = path };
	struct copy cp = { .rc = rc };
	struct json_object *reply = NULL, *config;
	char dir[PATH_MAX], why[160];
	char *slash;
	int ret;

	if (!lz_rclone_path_ok(path, false)) {
		fail(err, errlen, rc, &c, "invalid path", 1);
		return -EINVAL;
	}
	if (!lz_rclone_local_path_ok(local_path, why, sizeof(why))) {
		fail(err, errlen, rc, &c, why, 1);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%s", local_path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	cp.dir = dir;
	cp.params = json_object_new_object();
	config = json_object_new_object();
	if (cp.params == NULL || config == NULL) {
		json_object_put(cp.params);
		json_object_put(config);
		fail(err, errlen, rc, &c, "out of memory", 1);
		return -ENOMEM;
	}
	json_object_object_add(cp.params, "srcFs", json_object_new_string(rc->remote));
	json_object_object_add(cp.params, "srcRemote", json_object_new_string(path));
	json_object_object_add(cp.params, "dstFs", json_object_new_string("/"));
	/* Our file is new: spare rclone looking for an existing one. */
	json_object_object_add(config, "NoCheckDest", json_object_new_boolean(1));
	json_object_object_add(cp.params, "_config", config);
	cp.watch = (struct lz_rc_watch){ .file = cp.attempt,
					 .group = cp.group,
					 .stall_s = rc->timeout_s };
	c.params = cp.params;
	c.watch = &cp.watch;
	c.prepare = copy_prepare;
	c.failed = copy_failed;
	c.ctx = &cp;
	ret = call_rc(rc, &c, &reply, err, errlen);
	json_object_put(reply);
	json_object_put(cp.params);
	if (ret < 0)
		return ret;
	/* Also catches rclone writing elsewhere than asked (a path it re-encoded, --dry-run). */
	if (rename(cp.attempt, local_path) != 0) {
		int e = errno;

		snprintf(why, sizeof(why), "rclone reported success, but its file: %s",
			 strerror(e));
		fail(err, errlen, rc, &c, why, 1);
		unlink(cp.attempt);
		return -EIO;
	}
	return 0;
}

/* "/[lazyfs_remote:]/a/b" with every byte but unreserved ones and '/' escaped. */
static bool serve_url(char *url, size_t size, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = (size_t)snprintf(url, size, "/%%5B%s%%3A%%5D/", LZ_RCD_SERVE_NAME);

	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
		if (n + 4 > size)
			return false;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p) != NULL) {
			url[n++] = (char)*p;
		} else {
			url[n++] = '%';
			url[n++] = hex[*p >> 4];
			url[n++] = hex[*p & 15];
		}
	}
	url[n] = '\0';
	return true;
}

int lz_rclone_read(struct lz_rclone *rc, const char *path, uint64_t off, uint64_t len,
		   lz_rclone_sink_fn *sink, void *ctx, char *err, size_t errlen)
{
	struct call c = { .verb = "read", .path = path };
	struct lz_rcd_creds creds;
	struct child ch = { .rcd = rc->rcd };
	struct lz_rc_target target = { .vouch = vouch, .vouch_ctx = &ch };
	char url[8192], why[256];
	enum lz_rc_status st;
	bool stopped;
	int ret;

	if (!rc->serve || !lz_rclone_path_ok(path, false) || !serve_url(url, sizeof(url), path)) {
		fail(err, errlen, rc, &c, rc->serve ? "invalid path" : "not served", 1);
		return -EINVAL;
	}
	ret = lz_rcd_get(rc->rcd, &target.port, &ch.gen, &creds, why, sizeof(why));
	if (ret < 0) {
		lz_rcd_creds_wipe(&creds);
		fail(err, errlen, rc, &c, why, 1);
		return ret == -ETIMEDOUT ? ret : -EIO;
	}
	target.user = creds.user;
	target.pass = creds.pass;
	st = lz_rc_get(rc->idle, &target, url, off, len, rc->timeout_s, sink, ctx, &stopped, why,
		       sizeof(why));
	/* A stall: a child that no longer answers is replaced, and the caller may go on. */
	if (!stopped && st == LZ_RC_TIMEOUT) {
		struct lz_rc_slot *slot = lz_rc_slot_get(rc->pool);
		bool alive = lz_rc_ping(slot, &target, PING_S);

		lz_rc_slot_put(rc->pool, slot);
		if (!alive) {
			lz_rcd_discard(rc->rcd, ch.gen, "it stopped answering");
			st = LZ_RC_NO_SERVER;
		}
	}
	lz_rcd_creds_wipe(&creds);
	if (stopped)
		return -ECANCELED;
	if (st == LZ_RC_OK)
		return 0;
	if (st == LZ_RC_NO_SERVER) /* once per child: a second call does nothing */
		lz_rcd_discard(rc->rcd, ch.gen, why);
	fail(err, errlen, rc, &c, why, 1);
	return st == LZ_RC_NOT_FOUND ? -ENOENT : st == LZ_RC_TIMEOUT ? -ETIMEDOUT : -EIO;
}

void lz_rclone_start(struct lz_rclone *rc)
{
	lz_rcd_start(rc->rcd);
}

pid_t lz_rclone_child_pid(struct lz_rclone *rc)
{
	return lz_rcd_pid(rc->rcd);
}

/* A name without '/' in PATH, or NAME itself if it has one; NULL if not executable. */
static char *find_program(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(name, '/') != NULL)
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		size_t len = strcspn(path, ":");
		struct stat st;

		if (len > 0 &&
		    snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, name) <
			    (int)sizeof(buf) &&
		    stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
			return strdup(buf);
		path += len;
		if (*path == ':')
			path++;
	}
	return NULL;
}

struct lz_rclone *lz_rclone_new(const char *remote, const struct lz_rclone_options *opts, char *err,
				size_t errlen)
{
	static const struct lz_rclone_options defaults = { 0 };
	struct lz_rclone *rc;
	char *bin;

	if (opts == NULL)
		opts = &defaults;
	if (!lz_rclone_remote_ok(remote)) {
		snprintf(err, errlen,
			 "invalid rclone remote (empty, too long or with control characters)");
		return NULL;
	}
	bin = find_program(opts->rclone_bin ? opts->rclone_bin : "rclone");
	if (bin == NULL) {
		snprintf(err, errlen, "%s not found%s",
			 opts->rclone_bin ? opts->rclone_bin : "rclone",
			 opts->rclone_bin && strchr(opts->rclone_bin, '/') ? "" : " in PATH");
		return NULL;
	}
	rc = calloc(1, sizeof(*rc));
	if (rc == NULL || (rc->remote = strdup(remote)) == NULL ||
	    (rc->shown = lz_rclone_shown_remote(remote)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : DEFAULT_TIMEOUT_S;
	rc->retries = opts->retries ? opts->retries : DEFAULT_RETRIES;
	rc->log = (struct lz_rc_log){ .fn = opts->log, .ctx = opts->log_ctx };
	rc->pool = lz_rc_pool_new(opts->max_parallel == 0	      ? DEFAULT_PARALLEL
				  : opts->max_parallel > MAX_PARALLEL ? MAX_PARALLEL
								      : opts->max_parallel);
	if (rc->pool == NULL) {
		snprintf(err, errlen, "cannot set up libcurl");
		goto fail;
	}
	struct lz_rcd_how how = {
		.config = opts->config,
		.as_user = opts->run_as_user,
		.uid = opts->run_uid,
		.gid = opts->run_gid,
		.serve_remote = opts->serve ? remote : NULL,
	};
	rc->serve = opts->serve;
	if (rc->serve && (rc->idle = lz_rc_idle_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc->rcd = lz_rcd_new(bin, &how, rc->timeout_s > START_MIN_S ? rc->timeout_s : START_MIN_S,
			     &rc->log, err, errlen);
	if (rc->rcd == NULL)
		goto fail;
	free(bin);
	return rc;
fail:
	free(bin);
	lz_rclone_free(rc);
	return NULL;
}

void lz_rclone_free(struct lz_rclone *rc)
{
	if (rc == NULL)
		return;
	lz_rcd_free(rc->rcd);
	lz_rc_pool_free(rc->pool);
	lz_rc_idle_free(rc->idle);
	free(rc->remote);
	free(rc->shown);
	free(rc);
}
