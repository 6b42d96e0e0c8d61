/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Open directory handles as the kernel names them (fi->fh). A handle is a
 * number, not a pointer: after a live upgrade the kernel keeps sending the
 * handles an earlier process gave out, and this process must recognise them
 * as foreign (and open the directory again) instead of dereferencing them.
 * Handles start with a random 32-bit prefix per process, so a new process's
 * handles do not collide with those still open from an earlier one.
 */
#ifndef LAZYFS_HANDLES_H
#define LAZYFS_HANDLES_H

#include <stdint.h>

struct lz_handles;

/* An empty table with this process's prefix; NULL when out of memory. */
struct lz_handles *lz_handles_new(void);
/* Frees the table; the objects still registered are the caller's. */
void lz_handles_free(struct lz_handles *handles);

/* Registers OBJ under a new handle; 0 when out of memory. */
uint64_t lz_handle_add(struct lz_handles *handles, void *obj);
/* The object registered under FH, or NULL (a foreign or closed handle). */
void *lz_handle_find(struct lz_handles *handles, uint64_t fh);
/*
 * Registers OBJ under FH, a handle an earlier process gave out. When FH is
 * already registered (a concurrent adoption), returns that object instead and
 * OBJ is not registered; NULL when out of memory.
 */
void *lz_handle_adopt(struct lz_handles *handles, uint64_t fh, void *obj);
/* Unregisters FH: its object, or NULL if it was not registered. */
void *lz_handle_remove(struct lz_handles *handles, uint64_t fh);

#endif
