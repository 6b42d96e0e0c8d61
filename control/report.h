/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What lazyfsctl shows: the daemon's state as JSON objects (status, stats,
 * images) and as Prometheus text (metrics). Numbers are read without
 * stopping anything; each is consistent on its own, not with the others.
 */
#ifndef LAZYFS_REPORT_H
#define LAZYFS_REPORT_H

#include <stdio.h>

struct json_object;
struct lz_fs;

struct json_object *lz_report_status(struct lz_fs *fs);
struct json_object *lz_report_stats(struct lz_fs *fs);
struct json_object *lz_report_images(struct lz_fs *fs);
void lz_report_metrics(struct lz_fs *fs, FILE *out);
/* An image resolve waiting longer than this (seconds) is shown as stalled. */
double lz_report_stall_s(const struct lz_fs *fs);

#endif
