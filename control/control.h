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

struct lz_fs;
struct json_object;

/* After daemonizing. 0, or -1 (logged): the mount goes on without it. */
int lz_control_start(struct lz_fs *fs);
void lz_control_stop(struct lz_fs *fs);
/* A live upgrade: the listeners the old daemon had (consumed) and its socket's PATH. */
int lz_control_start_inherited(struct lz_fs *fs, int listen_fd, int http_fd, const char *path);
/* The listeners and socket path to hand over (still owned by the control thread). */
void lz_control_fds(struct lz_fs *fs, int *listen_fd, int *http_fd, const char **path);

/* report.c */
struct json_object *lz_report_status(struct lz_fs *fs);
struct json_object *lz_report_stats(struct lz_fs *fs);
struct json_object *lz_report_images(struct lz_fs *fs);
void lz_report_metrics(struct lz_fs *fs, FILE *out);

#endif
