/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Range reads from the rcd child's rc-serve (lz_rc_get, rclone_rc.h): one
 * HTTP GET on a connection of its own, the body handed to the caller as it
 * arrives. Streamed reads and whole fetches of cold objects use it;
 * everything else goes through the rc API (rclone_rc.c). A read that ended
 * well leaves its handle, and the connection in it, for the next one: a
 * fresh connection (and curl's wakeup pair) cost a small object a sixth of
 * its fetch.
 */
#include "config.h"
#include "rclone_rc.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Idle handles kept: as many as reads run at once in the common case (streams, fetches). */
#define IDLE_MAX 16

struct lz_rc_idle {
	pthread_mutex_t lock;
	unsigned n;
	CURL *h[IDLE_MAX];
};

struct lz_rc_idle *lz_rc_idle_new(void)
{
	struct lz_rc_idle *idle = calloc(1, sizeof(*idle));

	if (idle != NULL)
		pthread_mutex_init(&idle->lock, NULL);
	return idle;
}

void lz_rc_idle_free(struct lz_rc_idle *idle)
{
	if (idle == NULL)
		return;
	while (idle->n > 0)
		curl_easy_cleanup(idle->h[--idle->n]);
	pthread_mutex_destroy(&idle->lock);
	free(idle);
}

static CURL *handle_take(struct lz_rc_idle *idle)
{
	CURL *h = NULL;

	if (idle != NULL) {
		pthread_mutex_lock(&idle->lock);
		if (idle->n > 0)
			h = idle->h[--idle->n];
		pthread_mutex_unlock(&idle->lock);
	}
	if (h == NULL)
		return curl_easy_init();
	/* Options go, the connection stays (the vouch check runs again on reuse). */
	curl_easy_reset(h);
	return h;
}

/* Only a read that ended as asked leaves a connection fit to reuse. */
static void handle_give(struct lz_rc_idle *idle, CURL *h, bool clean)
{
	if (idle != NULL && clean) {
		pthread_mutex_lock(&idle->lock);
		if (idle->n < IDLE_MAX) {
			idle->h[idle->n++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&idle->lock);
	}
	if (h != NULL)
		curl_easy_cleanup(h);
}

struct get {
	lz_rc_sink_fn *sink;
	void *ctx;
	uint64_t want, got;
	bool stopped, too_much;
	long status;
	CURL *h;
};

static size_t body(char *data, size_t size, size_t n, void *arg)
{
	struct get *g = arg;
	size_t len = size * n;

	/* An error page is not object bytes: keep it from the sink. */
	if (g->status == 0)
		curl_easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &g->status);
	if (g->status != 206)
		return len;
	if (len > g->want - g->got) {
		g->too_much = true;
		return 0;
	}
	if (!g->sink(g->ctx, data, len)) {
		g->stopped = true;
		return 0;
	}
	g->got += len;
	return len;
}

/* Also between the body's pieces: a sink told nothing (NULL, 0) may stop a stalled read. */
static int progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		    curl_off_t ulnow)
{
	struct get *g = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (g->sink(g->ctx, NULL, 0))
		return 0;
	g->stopped = true;
	return 1;
}

static void setup(struct get *g, const struct lz_rc_target *t, const char *url, const char *range,
		  double stall_s, char *errbuf)
{
	CURL *h = g->h;

	lz_rc_curl_loopback(h, t, url, errbuf);
	curl_easy_setopt(h, CURLOPT_RANGE, range);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, g);
	/* No byte for STALL_S fails the read; a slow but moving one goes on. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s < 1 ? 1L : (long)stall_s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, g);
}

static enum lz_rc_status judge(struct get *g, CURLcode res, const char *errbuf, char *err,
			       size_t errlen)
{
	if (g->stopped)
		return LZ_RC_OK; /* the caller knows why */
	if (res == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "no byte for a while (%s)", errbuf);
		return LZ_RC_TIMEOUT;
	}
	if (res == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(err, errlen, "rclone rcd: the child is gone");
		return LZ_RC_NO_SERVER;
	}
	if (g->too_much) {
		snprintf(err, errlen, "more bytes than the range asked for");
		return LZ_RC_BAD_REPLY;
	}
	if (res != CURLE_OK && g->status == 0) {
		snprintf(err, errlen, "rclone rcd: %s",
			 errbuf[0] ? errbuf : curl_easy_strerror(res));
		return LZ_RC_NO_SERVER;
	}
	if (g->status == 404) {
		snprintf(err, errlen, "object not found");
		return LZ_RC_NOT_FOUND;
	}
	if (g->status == 401 || g->status == 403) {
		snprintf(err, errlen, "rclone rcd refused our credentials (HTTP %ld)", g->status);
		return LZ_RC_NO_SERVER;
	}
	if (g->status != 206) {
		snprintf(err, errlen, "HTTP status %ld for a range read", g->status);
		return g->status >= 500 ? LZ_RC_REMOTE_ERROR : LZ_RC_REFUSED;
	}
	if (res != CURLE_OK || g->got != g->want) {
		/* The remote or rclone died midway: never short data. */
		snprintf(err, errlen, "cut short after %" PRIu64 " of %" PRIu64 " bytes (%s)",
			 g->got, g->want,
			 res != CURLE_OK ? curl_easy_strerror(res) : "end of reply");
		return LZ_RC_REMOTE_ERROR;
	}
	return LZ_RC_OK;
}

enum lz_rc_status lz_rc_get(struct lz_rc_idle *idle, const struct lz_rc_target *target,
			    const char *url_path, uint64_t off, uint64_t len, double stall_s,
			    lz_rc_sink_fn *sink, void *ctx, bool *stopped, char *err, size_t errlen)
{
	struct get g = { .sink = sink, .ctx = ctx, .want = len };
	char url[8300], range[48], errbuf[CURL_ERROR_SIZE];
	enum lz_rc_status st;
	CURLcode res;

	*stopped = false;
	if (len == 0)
		return LZ_RC_OK;
	if ((size_t)snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", target->port, url_path) >=
	    sizeof(url)) {
		snprintf(err, errlen, "path too long for a URL");
		return LZ_RC_REFUSED;
	}
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, off, off + len - 1);
	g.h = handle_take(idle);
	if (g.h == NULL) {
		snprintf(err, errlen, "out of memory");
		return LZ_RC_REFUSED;
	}
	setup(&g, target, url, range, stall_s, errbuf);
	res = curl_easy_perform(g.h);
	if (g.status == 0)
		curl_easy_getinfo(g.h, CURLINFO_RESPONSE_CODE, &g.status);
	st = judge(&g, res, errbuf, err, errlen);
	handle_give(idle, g.h, st == LZ_RC_OK && !g.stopped && res == CURLE_OK);
	*stopped = g.stopped;
	return st;
}
