/* SPDX-License-Identifier: BSD-2-Clause */
/* What a single name handed to lazyfs may be before it reaches any filesystem, and its hashes. */
#ifndef LAZYFS_NAMES_H
#define LAZYFS_NAMES_H

#include <stdint.h>

/* 0 when NAME is one path component lazyfs may look up, else -ENOENT or -ENAMETOOLONG. */
int lz_name_check(const char *name);

/*
 * FNV-1a of S, 32 bits, and 64 bits continuing from H. Node ids, socket names
 * and working-set file names are made from these: they must not change.
 */
uint32_t lz_hash32(const char *s);
uint64_t lz_hash64(const char *s, uint64_t h);

#endif
