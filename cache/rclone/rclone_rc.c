/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "rclone_rc.h"
#include "common/clock.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A listing of 150k objects is about 30 MB of JSON; anything near this is not rclone. */
#define REPLY_MAX (512u << 20)
/* How often a running copy is looked at, and when its file stops growing, how often rclone's stats
 * are. */
#define WATCH_POLL_MS  200
#define STATS_EVERY_S  0.5
#define PROBE_MAX_S    1.0
#define CONNECT_MAX_MS 5000L

struct lz_rc_slot {
	CURLM *multi; /* owns the kept-alive connection */
	CURL *easy;
	CURL *probe; /* small side calls while EASY is busy: stats, ping */
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	struct lz_rc_slot *next_free;
};

struct lz_rc_pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct lz_rc_slot *free;
	struct lz_rc_slot *slots;
	unsigned size;
};

struct buf {
	char *data;
	size_t len, cap;
	bool too_big, no_memory;
};

void lz_rc_logf(const struct lz_rc_log *log, enum lz_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (log->fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->ctx, level, msg);
}

void lz_rc_sanitize(char *dst, size_t len, const char *s)
{
	size_t i = 0;

	if (len == 0)
		return;
	for (; s[i] != '\0' && i + 1 < len; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	dst[i] = '\0';
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct lz_rc_pool *lz_rc_pool_new(unsigned size)
{
	struct lz_rc_pool *pool;

	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK)
		return NULL;
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return NULL;
	pool->slots = calloc(size, sizeof(*pool->slots));
	if (pool->slots == NULL) {
		free(pool);
		return NULL;
	}
	pool->size = size;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->freed, NULL);
	for (unsigned i = 0; i < size; i++) {
		struct lz_rc_slot *slot = &pool->slots[i];
		struct curl_slist *h;

		slot->multi = curl_multi_init();
		slot->easy = curl_easy_init();
		slot->probe = curl_easy_init();
		h = curl_slist_append(NULL, "Content-Type: application/json");
		/* No "Expect: 100-continue" round trip before larger bodies. */
		slot->headers = h ? curl_slist_append(h, "Expect:") : NULL;
		if (slot->multi == NULL || slot->easy == NULL || slot->probe == NULL ||
		    slot->headers == NULL) {
			if (slot->headers == NULL)
				curl_slist_free_all(h);
			lz_rc_pool_free(pool);
			return NULL;
		}
		slot->next_free = pool->free;
		pool->free = slot;
	}
	return pool;
}

void lz_rc_pool_free(struct lz_rc_pool *pool)
{
	if (pool == NULL)
		return;
	for (unsigned i = 0; i < pool->size; i++) {
		struct lz_rc_slot *slot = &pool->slots[i];

		if (slot->easy)
			curl_easy_cleanup(slot->easy);
		if (slot->probe)
			curl_easy_cleanup(slot->probe);
		if (slot->multi)
			curl_multi_cleanup(slot->multi);
		curl_slist_free_all(slot->headers);
	}
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->freed);
	free(pool->slots);
	free(pool);
}

struct lz_rc_slot *lz_rc_slot_get(struct lz_rc_pool *pool)
{
	struct lz_rc_slot *slot;

	pthread_mutex_lock(&pool->lock);
	while (pool->free == NULL)
		pthread_cond_wait(&pool->freed, &pool->lock);
	slot = pool->free;
	pool->free = slot->next_free;
	pthread_mutex_unlock(&pool->lock);
	return slot;
}

void lz_rc_slot_put(struct lz_rc_pool *pool, struct lz_rc_slot *slot)
{
	pthread_mutex_lock(&pool->lock);
	slot->next_free = pool->free;
	pool->free = slot;
	pthread_cond_signal(&pool->freed);
	pthread_mutex_unlock(&pool->lock);
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;

	if (len > REPLY_MAX - b->len) {
		b->too_big = true;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL) {
			b->no_memory = true;
			return 0;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* Called connected, before the request (with the password) goes out. */
static int prereq(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	const struct lz_rc_target *t = arg;

	(void)primary_ip;
	(void)local_ip;
	(void)local_port;
	if (primary_port < 0 || (unsigned)primary_port != t->port || !t->vouch(t->vouch_ctx))
		return CURL_PREREQFUNC_ABORT;
	return CURL_PREREQFUNC_OK;
}

void lz_rc_curl_loopback(void *curl, const struct lz_rc_target *t, const char *url, char *errbuf)
{
	CURL *h = curl;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(h, CURLOPT_USERNAME, t->user);
	curl_easy_setopt(h, CURLOPT_PASSWORD, t->pass);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MAX_MS);
	if (t->vouch != NULL) {
		curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, prereq);
		curl_easy_setopt(h, CURLOPT_PREREQDATA, (void *)t);
	}
	errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
}

/* A JSON POST: the loopback rules above, its body, and the reply collected into OUT. */
static void setup(CURL *h, struct curl_slist *headers, const struct lz_rc_target *t,
		  const char *url, const char *body, struct buf *out, char *errbuf)
{
	curl_easy_reset(h);
	lz_rc_curl_loopback(h, t, url, errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
}

static long timeout_ms(double s)
{
	return s >= 1e6 ? 1000000000L : (long)(s * 1000) + 1;
}

struct json_object *lz_rc_parse_reply(const char *data, size_t len, char *why, size_t whylen)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t end;

	if (len == 0) {
		snprintf(why, whylen, "empty reply");
		return NULL;
	}
	if (memchr(data, '\0', len) != NULL) {
		snprintf(why, whylen, "NUL byte in the reply");
		return NULL;
	}
	tok = json_tokener_new();
	if (tok == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, data, (int)len);
	if (obj == NULL) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		snprintf(why, whylen, "invalid JSON: %s",
			 e == json_tokener_continue ? "truncated" : json_tokener_error_desc(e));
		json_tokener_free(tok);
		return NULL;
	}
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (; end < len; end++) {
		if (strchr(" \t\r\n", data[end]) == NULL) {
			snprintf(why, whylen, "invalid JSON: data after the object");
			json_object_put(obj);
			return NULL;
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(why, whylen, "the reply is not a JSON object");
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/* Parses a whole reply as one JSON object, strictly; NULL with WHY if it is not one. */
static struct json_object *parse_object(const struct buf *b, char *why, size_t whylen)
{
	return lz_rc_parse_reply(b->data, b->len, why, whylen);
}

/* rclone's "error" string of an error reply, else a stand-in. */
static void error_text(const struct buf *b, long status, char *err, size_t errlen)
{
	char why[128];
	struct json_object *obj = parse_object(b, why, sizeof(why));
	struct json_object *msg;

	if (obj != NULL && json_object_object_get_ex(obj, "error", &msg) &&
	    json_object_is_type(msg, json_type_string) && json_object_get_string_len(msg) > 0)
		lz_rc_sanitize(err, errlen, json_object_get_string(msg));
	else
		snprintf(err, errlen, "HTTP status %ld", status);
	json_object_put(obj);
}

/* A small call on the probe handle, outside the pool's count. */
static struct json_object *probe_call(struct lz_rc_slot *slot, const struct lz_rc_target *t,
				      const char *method, const char *body, double timeout_s)
{
	char url[96], errbuf[CURL_ERROR_SIZE], why[64];
	struct buf out = { 0 };
	struct json_object *obj = NULL;
	long status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/%s", t->port, method);
	setup(slot->probe, slot->headers, t, url, body, &out, errbuf);
	curl_easy_setopt(slot->probe, CURLOPT_TIMEOUT_MS, timeout_ms(timeout_s));
	if (curl_easy_perform(slot->probe) == CURLE_OK &&
	    curl_easy_getinfo(slot->probe, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status == 200)
		obj = parse_object(&out, why, sizeof(why));
	free(out.data);
	return obj;
}

bool lz_rc_ping(struct lz_rc_slot *slot, const struct lz_rc_target *target, double timeout_s)
{
	struct json_object *obj = probe_call(slot, target, "rc/noop", "{}", timeout_s);

	json_object_put(obj);
	return obj != NULL;
}

/* Bytes rclone has moved for stats group GROUP, or -1. */
static int64_t group_bytes(struct lz_rc_slot *slot, const struct lz_rc_target *t, const char *group,
			   double timeout_s)
{
	struct json_object *params = json_object_new_object(), *reply, *bytes;
	int64_t n = -1;

	if (params == NULL)
		return -1;
	json_object_object_add(params, "group", json_object_new_string(group));
	reply = probe_call(slot, t, "core/stats",
			   json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN),
			   timeout_s);
	if (reply != NULL && json_object_object_get_ex(reply, "bytes", &bytes) &&
	    json_object_is_type(bytes, json_type_int))
		n = json_object_get_int64(bytes);
	json_object_put(reply);
	json_object_put(params);
	return n;
}

struct progress {
	double last_move, last_look, last_stats;
	off_t size;
	int64_t bytes;
};

/* True when the copy has moved no byte for the watch's stall time. */
static bool stalled(struct lz_rc_slot *slot, const struct lz_rc_target *t,
		    const struct lz_rc_watch *w, struct progress *p)
{
	double now = lz_clock_s(CLOCK_MONOTONIC);
	struct stat st;

	if (now - p->last_look < WATCH_POLL_MS / 1000.0)
		return false;
	p->last_look = now;
	if (stat(w->file, &st) == 0 && st.st_size != p->size) {
		p->size = st.st_size;
		p->last_move = now;
		return false;
	}
	/* A multi-thread download fills the file out of order: its size can stand still. */
	if (w->group != NULL && now - p->last_move >= STATS_EVERY_S &&
	    now - p->last_stats >= STATS_EVERY_S) {
		double left = w->stall_s - (now - p->last_move);
		double wait = left < 0.1 ? 0.1 : left < PROBE_MAX_S ? left : PROBE_MAX_S;
		int64_t b = group_bytes(slot, t, w->group, wait);

		p->last_stats = now = lz_clock_s(CLOCK_MONOTONIC);
		if (b > p->bytes) {
			p->bytes = b;
			p->last_move = now;
			return false;
		}
	}
	return now - p->last_move >= w->stall_s;
}

/* Runs the prepared EASY to the end, or until a watched copy stalls (*STALLED). */
static CURLcode perform(struct lz_rc_slot *slot, const struct lz_rc_target *t,
			const struct lz_rc_watch *w, bool *stalled_out)
{
	struct progress p = { .last_move = lz_clock_s(CLOCK_MONOTONIC), .size = -1 };
	CURLcode result = CURLE_FAILED_INIT;
	CURLMsg *msg;
	int running = 1, left;

	*stalled_out = false;
	if (curl_multi_add_handle(slot->multi, slot->easy) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (running) {
		if (curl_multi_perform(slot->multi, &running) != CURLM_OK)
			break;
		if (!running)
			break;
		if (w != NULL && stalled(slot, t, w, &p)) {
			*stalled_out = true;
			break;
		}
		curl_multi_poll(slot->multi, NULL, 0, w ? WATCH_POLL_MS : 1000, NULL);
	}
	while ((msg = curl_multi_info_read(slot->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == slot->easy)
			result = msg->data.result;
	}
	/* Removing an unfinished transfer closes its connection: rclone cancels the call. */
	curl_multi_remove_handle(slot->multi, slot->easy);
	return result;
}

enum lz_rc_status lz_rc_call(struct lz_rc_slot *slot, const struct lz_rc_target *target,
			     const char *method, struct json_object *params, double timeout_s,
			     const struct lz_rc_watch *watch, struct json_object **reply, char *err,
			     size_t errlen)
{
	char url[128], why[128];
	const char *body = json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN);
	struct buf out = { 0 };
	enum lz_rc_status st;
	bool was_stalled;
	CURLcode res;
	long status = 0;

	*reply = NULL;
	if (body == NULL) {
		snprintf(err, errlen, "out of memory");
		return LZ_RC_REFUSED;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/%s", target->port, method);
	setup(slot->easy, slot->headers, target, url, body, &out, slot->errbuf);
	if (watch == NULL)
		curl_easy_setopt(slot->easy, CURLOPT_TIMEOUT_MS, timeout_ms(timeout_s));
	res = perform(slot, target, watch, &was_stalled);
	if (was_stalled) {
		snprintf(err, errlen, "no progress for %gs", watch->stall_s);
		st = LZ_RC_TIMEOUT;
	} else if (res == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "no reply within %gs", timeout_s);
		st = LZ_RC_TIMEOUT;
	} else if (res == CURLE_WRITE_ERROR && (out.too_big || out.no_memory)) {
		if (out.too_big)
			snprintf(err, errlen, "reply larger than %u MiB", REPLY_MAX >> 20);
		else
			snprintf(err, errlen, "out of memory for the reply");
		st = LZ_RC_BAD_REPLY;
	} else if (res == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(err, errlen, "rclone rcd: the child is gone: nothing sent to port %u",
			 target->port);
		st = LZ_RC_NO_SERVER;
	} else if (res != CURLE_OK) {
		snprintf(err, errlen, "rclone rcd: %s",
			 slot->errbuf[0] ? slot->errbuf : curl_easy_strerror(res));
		st = LZ_RC_NO_SERVER;
	} else {
		curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			*reply = parse_object(&out, why, sizeof(why));
			st = *reply ? LZ_RC_OK : LZ_RC_BAD_REPLY;
			if (*reply == NULL)
				snprintf(err, errlen, "bad reply from rclone rcd: %s", why);
		} else if (status == 401 || status == 403) {
			/* Our child knows the password: whoever answered is not it. */
			snprintf(err, errlen, "rclone rcd refused our credentials (HTTP %ld)",
				 status);
			st = LZ_RC_NO_SERVER;
		} else if (status == 404) {
			error_text(&out, status, err, errlen);
			st = LZ_RC_NOT_FOUND;
			/* Not a missing object: an rclone too old for the call. */
			if (strncmp(err, "couldn't find method", 20) == 0)
				st = LZ_RC_REFUSED;
		} else if (status >= 400 && status < 500) {
			error_text(&out, status, err, errlen);
			st = LZ_RC_REFUSED;
		} else if (status >= 500 && status < 600) {
			error_text(&out, status, err, errlen);
			st = LZ_RC_REMOTE_ERROR;
		} else {
			snprintf(err, errlen, "unexpected HTTP status %ld from rclone rcd", status);
			st = LZ_RC_BAD_REPLY;
		}
	}
	free(out.data);
	return st;
}
