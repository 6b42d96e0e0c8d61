/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The working-set file (prefetch.h), read and written here and nowhere else:
 * the line "lazyfs-workingset 1", then one line a file, "SIZE RELPATH" (the
 * size in decimal, the path from the image's root, or from the remote's root
 * for objects). No I/O beyond the stream given: the caller opens the file
 * and checks what it is.
 *
 * Reading forgives damage (a crash, a full disk, an edit): a line that is not
 * of that form, or whose path could leave its root, is refused and counted,
 * the others are kept, up to LZ_WS_MAX_FILES.
 */
#ifndef LAZYFS_WORKINGSET_H
#define LAZYFS_WORKINGSET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* A working set as read: N paths (malloc'ed) and their sizes, and the lines refused. */
struct lz_ws {
	char **paths;
	off_t *sizes;
	size_t n;
	uint64_t bad;
};

/*
 * Whether REL is a plain relative path inside its root: not empty, not
 * absolute, no empty (also no trailing "/"), "." or ".." component, no
 * newline, shorter than PATH_MAX.
 */
bool lz_ws_path_ok(const char *rel);

/*
 * Reads a working set from F, from its first line: 0 with WS filled (no
 * paths when out of memory), or -EINVAL when F is not a working set (its
 * first line is not the header). Free WS with lz_ws_free either way.
 */
int lz_ws_read(FILE *f, struct lz_ws *ws);
void lz_ws_free(struct lz_ws *ws);

/* Writes the header, then one line each; the caller checks ferror. */
void lz_ws_write_header(FILE *f);
void lz_ws_write_line(FILE *f, off_t size, const char *rel);

#endif
