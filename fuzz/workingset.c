/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A working-set file (fscore/workingset.c) as a damaged cache leaves it: a
 * file is taken exactly when it opens with the header line; every path kept
 * stays inside its root (not empty or absolute, no "." or ".." component, no
 * newline) with a size of at least 0; a line is either kept or counted as
 * refused, up to the cap; and what was kept, written again as the daemon
 * writes it, reads back the same with nothing refused.
 */
#include "config.h"
#include "check.h"
#include "fscore/prefetch.h"
#include "fscore/workingset.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER "lazyfs-workingset 1\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The rule, said again independently of lz_ws_path_ok. */
static void check_path(const char *rel)
{
	CHECK(rel[0] != '\0' && rel[0] != '/' && strlen(rel) < PATH_MAX);
	CHECK(strchr(rel, '\n') == NULL && strstr(rel, "//") == NULL);
	CHECK(strcmp(rel, ".") != 0 && strcmp(rel, "..") != 0);
	CHECK(strncmp(rel, "./", 2) != 0 && strncmp(rel, "../", 3) != 0);
	CHECK(strstr(rel, "/./") == NULL && strstr(rel, "/../") == NULL);
	size_t len = strlen(rel);
	CHECK(rel[len - 1] != '/');
	CHECK(len < 2 || strcmp(rel + len - 2, "/.") != 0);
	CHECK(len < 3 || strcmp(rel + len - 3, "/..") != 0);
}

/* Lines getline hands out after the header: each up to a newline, and a last one without. */
static size_t lines_after_header(const uint8_t *data, size_t size)
{
	size_t lines = 0, at = strlen(HEADER);

	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		lines++;
		at = nl != NULL ? (size_t)(nl - data) + 1 : size;
	}
	return lines;
}

static void round_trip(const struct lz_ws *ws)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct lz_ws again;

	CHECK(f != NULL);
	lz_ws_write_header(f);
	for (size_t i = 0; i < ws->n; i++)
		lz_ws_write_line(f, ws->sizes[i], ws->paths[i]);
	CHECK(fclose(f) == 0);
	f = fmemopen(text, len, "r");
	CHECK(f != NULL);
	CHECK(lz_ws_read(f, &again) == 0);
	fclose(f);
	CHECK(again.n == ws->n && again.bad == 0);
	for (size_t i = 0; i < ws->n; i++)
		CHECK(again.sizes[i] == ws->sizes[i] && strcmp(again.paths[i], ws->paths[i]) == 0);
	lz_ws_free(&again);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lz_ws ws;
	bool header = size >= strlen(HEADER) && memcmp(data, HEADER, strlen(HEADER)) == 0;

	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	FILE *f = fmemopen((void *)data, size, "r");
	CHECK(f != NULL);
	int rc = lz_ws_read(f, &ws);
	fclose(f);
	CHECK(rc == (header ? 0 : -EINVAL));
	CHECK(ws.n <= LZ_WS_MAX_FILES);
	CHECK(ws.n == 0 || (ws.paths != NULL && ws.sizes != NULL));
	for (size_t i = 0; i < ws.n; i++) {
		CHECK(lz_ws_path_ok(ws.paths[i]) && ws.sizes[i] >= 0);
		check_path(ws.paths[i]);
	}
	if (header) {
		size_t lines = lines_after_header(data, size);
		CHECK(ws.n + ws.bad <= lines);
		CHECK(ws.n == LZ_WS_MAX_FILES || ws.n + ws.bad == lines);
	}
	round_trip(&ws);
	lz_ws_free(&ws);
	return 0;
}
