/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The control socket lazyfsctl talks to (root only, one per mount, under
 * /run/lazyfs/), and the optional loopback HTTP listener for Prometheus.
 *
 * Protocol: the client sends one line, "[json ]COMMAND [ARGUMENT]"; the
 * daemon answers "ok" or "error: REASON" on the first line, then the body
 * (human text, or one JSON document), and closes the connection.
 */
#ifndef LAZYFS_CONTROL_H
#define LAZYFS_CONTROL_H

#include <stdbool.h>
#include <stdio.h>

struct lz_control;
struct lz_fs;

/*
 * What the control plane asks of the daemon beyond the core: a live upgrade
 * (the daemon knows how; the control plane only carries the request).
 */
struct lz_control_hooks {
	/*
	 * "upgrade [BINARY]": blocks until it is done; 0 with what to say in MSG,
	 * or -1 with the reason there.
	 */
	int (*upgrade)(void *ctx, const char *binary, char *msg, size_t size);
	/*
	 * A reply went out (after an upgrade, the process may end now): true when
	 * it ends, and the control thread accepts no more (the new process answers).
	 */
	bool (*replied)(void *ctx);
	void *ctx;
};

/*
 * After daemonizing: the control socket of FS's mount and, with metrics=,
 * the HTTP listener, served by a thread of their own. NULL (logged): the
 * mount goes on without them.
 */
struct lz_control *lz_control_start(struct lz_fs *fs, const struct lz_control_hooks *hooks);
/* A live upgrade: the listeners the old daemon had (consumed) and its socket's PATH. */
struct lz_control *lz_control_start_inherited(struct lz_fs *fs,
					      const struct lz_control_hooks *hooks, int listen_fd,
					      int http_fd, const char *path);
/* Stops the thread and closes the listeners (NULL is fine). */
void lz_control_stop(struct lz_control *c);
/* The listeners and socket path to hand over (still owned by the control thread). */
void lz_control_fds(struct lz_control *c, int *listen_fd, int *http_fd, const char **path);

#endif
