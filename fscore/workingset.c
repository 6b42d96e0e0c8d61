/* SPDX-License-Identifier: BSD-2-Clause */
/* The working-set file's format (workingset.h). */
#include "config.h"
#include "workingset.h"
#include "prefetch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAGIC "lazyfs-workingset 1\n"

bool lz_ws_path_ok(const char *rel)
{
	if (rel[0] == '\0' || rel[0] == '/' || strlen(rel) >= PATH_MAX)
		return false;
	for (const char *c = rel; *c != '\0';) {
		size_t len = strcspn(c, "/");
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += len;
		if (*c == '/' && *++c == '\0')
			return false; /* a trailing "/": an empty last component */
	}
	return strchr(rel, '\n') == NULL;
}

/* One line (its newline cut): true with its path (malloc'ed) and size, false if refused. */
static bool parse_line(char *line, ssize_t len, char **path, off_t *size)
{
	char *rel = NULL;
	long long n;

	if (line[len - 1] == '\n')
		line[len - 1] = '\0';
	n = strtoll(line, &rel, 10);
	if (rel == line || *rel != ' ' || n < 0 || !lz_ws_path_ok(rel + 1))
		return false;
	*path = strdup(rel + 1);
	*size = (off_t)n;
	return true;
}

int lz_ws_read(FILE *f, struct lz_ws *ws)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	memset(ws, 0, sizeof(*ws));
	if (getline(&line, &cap, f) <= 0 || strcmp(line, WS_MAGIC) != 0) {
		free(line);
		return -EINVAL;
	}
	ws->paths = calloc(LZ_WS_MAX_FILES, sizeof(*ws->paths));
	ws->sizes = calloc(LZ_WS_MAX_FILES, sizeof(*ws->sizes));
	if (ws->paths == NULL || ws->sizes == NULL) {
		lz_ws_free(ws);
		free(line);
		return 0;
	}
	while (ws->n < LZ_WS_MAX_FILES && (len = getline(&line, &cap, f)) > 0) {
		char *path = NULL;
		off_t size;
		if (!parse_line(line, len, &path, &size)) {
			ws->bad++;
		} else if (path != NULL) { /* else out of memory: left out, not counted as bad */
			ws->paths[ws->n] = path;
			ws->sizes[ws->n++] = size;
		}
	}
	free(line);
	return 0;
}

void lz_ws_free(struct lz_ws *ws)
{
	for (size_t i = 0; i < ws->n; i++)
		free(ws->paths[i]);
	free(ws->paths);
	free(ws->sizes);
	memset(ws, 0, sizeof(*ws));
}

void lz_ws_write_header(FILE *f)
{
	fputs(WS_MAGIC, f);
}

void lz_ws_write_line(FILE *f, off_t size, const char *rel)
{
	fprintf(f, "%lld %s\n", (long long)size, rel);
}
