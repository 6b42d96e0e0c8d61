/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The control socket's commands (status, stats, images, metrics, evict,
 * pin, unpin, prefetch, reload, upgrade), run on the control thread.
 */
#ifndef LAZYFS_COMMANDS_H
#define LAZYFS_COMMANDS_H

#include <stddef.h>
#include <stdio.h>

struct lz_fs;
struct lz_jobs;

/* What a command works on. */
struct lz_command_ctx {
	struct lz_fs *fs;
	struct lz_jobs *jobs; /* where pin and prefetch run */
	/* The daemon's upgrade (control.h's hook), or NULL. */
	int (*upgrade)(void *ctx, const char *binary, char *msg, size_t size);
	void *hooks_ctx;
};

/*
 * Runs the request LINE ("[json ]COMMAND [ARGUMENT]", changed in place); the
 * reply's body goes to OUT. 0, or -1 when it failed (the reason in OUT).
 */
int lz_command_run(const struct lz_command_ctx *c, char *line, FILE *out);

#endif
