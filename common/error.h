/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Error conventions. Below the FUSE reply every call returns 0 or -errno
 * (a negative errno value), never a positive one; the FUSE glue negates it
 * once, at the reply. Where a caller needs to say why, it passes ERR and
 * ERRLEN, and the callee writes one line there with lz_seterr.
 */
#ifndef LAZYFS_ERROR_H
#define LAZYFS_ERROR_H

#include <stddef.h>

/*
 * Writes one line into ERR (ERRLEN bytes, NULL or 0 for none): line breaks in
 * the formatted text (a key, a remote's message) become spaces.
 */
void lz_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
