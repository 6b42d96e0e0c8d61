/* SPDX-License-Identifier: BSD-2-Clause */
/* What a client sends the metrics listener, judged (http_parse.h). */
#include "config.h"
#include "http_parse.h"

#include <string.h>

enum lz_http_verdict lz_http_judge(const char *in, size_t len, size_t size)
{
	static const char get[] = "GET /metrics";
	const size_t n = sizeof(get) - 1;

	if (memchr(in, '\n', len) == NULL)
		return len + 1 < size ? LZ_HTTP_MORE : LZ_HTTP_TOO_LONG;
	/* The path alone, or with a query: "GET /metricsfoo" is another path. */
	if (len > n && memcmp(in, get, n) == 0 && (in[n] == ' ' || in[n] == '?'))
		return LZ_HTTP_METRICS;
	return LZ_HTTP_NOT_FOUND;
}
