/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a client sends the metrics listener (http.h), judged: parsing only,
 * no socket is touched here. (Its ADDR:PORT is common/netaddr.h's.)
 */
#ifndef LAZYFS_HTTP_PARSE_H
#define LAZYFS_HTTP_PARSE_H

#include <stddef.h>

enum lz_http_verdict {
	LZ_HTTP_MORE,	   /* no line end yet, and room for more */
	LZ_HTTP_METRICS,   /* a line that asks GET /metrics: answer with them */
	LZ_HTTP_NOT_FOUND, /* any other line: 404 */
	LZ_HTTP_TOO_LONG,  /* no line end, and the buffer is full: drop the client */
};

/*
 * What to do with the LEN bytes IN holds (what a client sent so far), read
 * into a buffer of SIZE bytes that keeps one for a NUL: a request is judged
 * on its first line, once its line end is in.
 */
enum lz_http_verdict lz_http_judge(const char *in, size_t len, size_t size);

#endif
