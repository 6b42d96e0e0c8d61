/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A control socket request (control/request.c) as any local root process
 * may send it: the line is cut at its first CR or LF; the command is one
 * word without spaces, after an optional "json"; the argument is the rest
 * of the line after one space, never empty and never holding a line break;
 * and an entry name let through for evict, pin, unpin or prefetch names
 * something: not empty, no leading "/", no "..".
 */
#include "config.h"
#include "check.h"
#include "control/request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_MAX 4096 /* control.c reads at most this, less one, as one request */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool only_spaces(const char *s)
{
	return s[strspn(s, " ")] == '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[REQUEST_MAX], copy[REQUEST_MAX];
	struct lz_request r;

	if (size >= REQUEST_MAX)
		size = REQUEST_MAX - 1;
	memcpy(line, data, size);
	line[size] = '\0';
	/* What the parser may look at: the line up to its first NUL, CR or LF. */
	size_t len = strcspn(line, "\r\n");
	memcpy(copy, line, len);
	copy[len] = '\0';
	lz_request_parse(line, &r);

	const char *first = copy + strspn(copy, " ");
	size_t first_len = strcspn(first, " ");
	if (r.cmd == NULL) {
		/* Nothing but spaces, or "json" and spaces. */
		CHECK(*first == '\0' ||
		      (first_len == 4 && strncmp(first, "json", 4) == 0 && only_spaces(first + 4)));
		CHECK(r.arg == NULL);
		return 0;
	}
	CHECK(r.cmd >= line && r.cmd < line + len && r.cmd[0] != '\0');
	CHECK(strpbrk(r.cmd, " \r\n") == NULL);
	CHECK(r.json == (first_len == 4 && strncmp(first, "json", 4) == 0));
	/* The command is the word as it stood in the line. */
	CHECK(strncmp(copy + (r.cmd - line), r.cmd, strlen(r.cmd)) == 0);
	const char *after = copy + (r.cmd - line) + strlen(r.cmd);
	CHECK(*after == '\0' || *after == ' ');
	if (r.arg == NULL) {
		CHECK(only_spaces(after));
		CHECK(lz_request_entry(r.arg) == NULL);
		return 0;
	}
	CHECK(r.arg == r.cmd + strlen(r.cmd) + 1 && r.arg[0] != '\0');
	CHECK(strpbrk(r.arg, "\r\n") == NULL && strcmp(r.arg, after + 1) == 0);

	const char *entry = lz_request_entry(r.arg);
	if (entry != NULL) {
		CHECK(entry >= r.arg && strcmp(entry, r.arg + (entry - r.arg)) == 0);
		CHECK(entry[0] != '\0' && entry[0] != '/' && strstr(entry, "..") == NULL);
		CHECK(strspn(r.arg, "/") == (size_t)(entry - r.arg));
	}
	return 0;
}
