/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The Prometheus listener (-o metrics=ADDR:PORT: loopback, or any address
 * with metrics_remote), on a thread of its own. Every local user (and with
 * metrics_remote every host that reaches it) can connect, so no client can
 * hold it: a
 * request (read and answer) has HTTP_DEADLINE_S in all, at most HTTP_CLIENTS
 * are served at once (more are closed as they come), and stopping closes
 * them without waiting for any.
 */
#ifndef LAZYFS_HTTP_H
#define LAZYFS_HTTP_H

#include <stdbool.h>

struct lz_fs;
struct lz_http;

#define HTTP_CLIENTS	8
#define HTTP_DEADLINE_S 2

/*
 * A listener on SPEC ("127.0.0.1:9100"; a non-loopback address only with
 * ANY_ADDRESS): its descriptor, or -1 (logged).
 */
int lz_http_listen(const char *spec, bool any_address);
/* Serves LISTEN_FD (consumed) with FS's metrics; NULL when the thread cannot start. */
struct lz_http *lz_http_start(struct lz_fs *fs, int listen_fd);
/* Stops the thread, closes every client and the listener. NULL is fine. */
void lz_http_stop(struct lz_http *h);
/* The listener, to hand over in a live upgrade (still owned by the thread); -1 if none. */
int lz_http_fd(const struct lz_http *h);

#endif
