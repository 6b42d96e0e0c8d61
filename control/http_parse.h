/*
 * What the metrics listener (http.h) reads from outside: the loopback
 * ADDR:PORT of -o metrics=, and what a client sent, judged. Parsing only: no
 * socket is touched here.
 */
#ifndef LAZYFS_HTTP_PARSE_H
#define LAZYFS_HTTP_PARSE_H

#include <netinet/in.h>
#include <stddef.h>

/*
 * SPEC ("127.0.0.1:9100"): 0 with SA set (AF_INET, network byte order), or
 * -1 when it is not a dotted IPv4 address in 127.0.0.0/8, a ':' and a port
 * from 1 to 65535.
 */
int lz_http_parse_listen(const char *spec, struct sockaddr_in *sa);

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
