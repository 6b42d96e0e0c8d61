/* The metrics listener's parsing (http_parse.h). */
#include "config.h"
#include "http_parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lz_http_parse_listen(const char *spec, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;

	*sa = (struct sockaddr_in){ .sin_family = AF_INET };
	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa->sin_addr) != 1 ||
	    (ntohl(sa->sin_addr.s_addr) >> 24) != 127)
		return -1;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

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
