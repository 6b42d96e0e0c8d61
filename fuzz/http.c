/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the metrics listener reads from outside. A client's bytes
 * (control/http_parse.c), fed in the pieces the input's first byte picks as
 * reads would bring them: nothing is judged before a line end arrives or the
 * buffer is full; the verdict then depends on the first line alone (what
 * follows changes nothing); metrics are served exactly for "GET /metrics"
 * followed by a space or a query. The same bytes as a metrics= address
 * (common/netaddr.c): one let through is IPv4 with a port from 1 to 65535,
 * loopback exactly when in 127.0.0.0/8, and written back as ADDR:PORT it
 * parses to the same.
 */
#include "config.h"
#include "check.h"
#include "common/netaddr.h"
#include "control/http_parse.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define REQUEST_MAX 4096 /* http.c's buffer per client */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool asks_metrics(const char *in, size_t len)
{
	return len > 12 && memcmp(in, "GET /metrics", 12) == 0 && (in[12] == ' ' || in[12] == '?');
}

/* As the listener reads: pieces of STEP bytes at most, judged after each. */
static void judge_in_pieces(const char *in, size_t size, size_t step)
{
	const char *lf = memchr(in, '\n', size);
	size_t len = 0;
	enum lz_http_verdict v = LZ_HTTP_MORE;

	while (v == LZ_HTTP_MORE && len < size) {
		size_t room = REQUEST_MAX - 1 - len, n = size - len < step ? size - len : step;
		len += n < room ? n : room;
		v = lz_http_judge(in, len, REQUEST_MAX);
		bool has_lf = lf != NULL && (size_t)(lf - in) < len;
		CHECK((v == LZ_HTTP_MORE) == (!has_lf && len + 1 < REQUEST_MAX));
		CHECK(v != LZ_HTTP_TOO_LONG || (!has_lf && len == REQUEST_MAX - 1));
		if (has_lf) {
			CHECK(v == (asks_metrics(in, len) ? LZ_HTTP_METRICS : LZ_HTTP_NOT_FOUND));
			/* Decided at the line end: whatever else arrived with it or after. */
			size_t line = (size_t)(lf - in) + 1;
			CHECK(lz_http_judge(in, line, REQUEST_MAX) == v);
			size_t all = size < REQUEST_MAX - 1 ? size : REQUEST_MAX - 1;
			CHECK(lz_http_judge(in, all, REQUEST_MAX) == v);
		}
	}
}

static void check_listen(const uint8_t *data, size_t size)
{
	char spec[128], again[64], addr[INET_ADDRSTRLEN];
	struct sockaddr_in sa, sa2;

	snprintf(spec, sizeof(spec), "%.*s", (int)(size < sizeof(spec) ? size : sizeof(spec) - 1),
		 (const char *)data);
	if (lz_netaddr_parse(spec, &sa) != 0)
		return;
	CHECK(sa.sin_family == AF_INET && ntohs(sa.sin_port) >= 1);
	CHECK(lz_netaddr_is_loopback(&sa) == ((ntohl(sa.sin_addr.s_addr) >> 24) == 127));
	CHECK(inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof(addr)) != NULL);
	snprintf(again, sizeof(again), "%s:%u", addr, ntohs(sa.sin_port));
	CHECK(lz_netaddr_parse(again, &sa2) == 0);
	CHECK(sa2.sin_addr.s_addr == sa.sin_addr.s_addr && sa2.sin_port == sa.sin_port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[REQUEST_MAX + 64];

	if (size == 0)
		return 0;
	check_listen(data + 1, size - 1);
	size_t step = data[0] == 0 ? 1 : data[0];
	size--;
	if (size > sizeof(in))
		size = sizeof(in);
	memcpy(in, data + 1, size);
	judge_in_pieces(in, size, step);
	return 0;
}
