/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A control socket request (control.h): the line "[json ]COMMAND [ARGUMENT]"
 * taken apart, and the entry name some commands take, checked. Parsing only:
 * nothing is run here (commands.c does).
 */
#ifndef LAZYFS_REQUEST_H
#define LAZYFS_REQUEST_H

#include <stdbool.h>

struct lz_request {
	bool json;	 /* "json " came first: answer one JSON document */
	const char *cmd; /* the command word; NULL: an empty request */
	const char *arg; /* the rest of the line after one space; NULL: none */
};

/*
 * Takes LINE apart in place: cut at its first CR or LF, words separated by
 * spaces; R points into LINE.
 */
void lz_request_parse(char *line, struct lz_request *r);

/*
 * The entry an evict, pin, unpin or prefetch names: ARG without its leading
 * "/"s, or NULL when there is none (no argument, nothing but "/"s, or "..").
 */
const char *lz_request_entry(const char *arg);

#endif
