/* SPDX-License-Identifier: BSD-2-Clause */
/* Command line and -o options of lazyfs, parsed into the mount's settings (fscore/settings.h). */
#ifndef LAZYFS_OPTIONS_H
#define LAZYFS_OPTIONS_H

#define FUSE_USE_VERSION 317
#include <fuse_opt.h>
#include <stdbool.h>
#include <stdint.h>

#include "fscore/settings.h"

/* What the command line says: the mount's settings, and what goes to libfuse. */
struct lz_options {
	struct lz_settings settings;
	bool show_help;
	bool show_version;
	/* What libfuse gets: its own options plus those lazyfs adds (ro, fsname, ...). */
	struct fuse_args fuse_args;
	/* Raw strings while parsing; validated into the fields above. */
	char *open_mode_arg;
	char *underlay_timeout_arg;
	char *image_timeout_arg;
	char *idle_timeout_arg;
	char *backend_arg;
	char *bpf_arg;
	char *prefetch_arg;
	char *stream_arg;
	char *acl_arg;
	char *prefetch_max_arg;
	char *listing_max_arg;
	char *remote_mode_arg;
	char *cache_size_arg;
	char *listing_ttl_arg;
	char *fetch_timeout_arg;
	char *restart_window_arg;
	char *resolve_timeout_arg;
	char *trusted_owner_arg;
	int metrics_remote_flag;
	unsigned positional_count;
	char error[256];
};

/*
 * Parses ARGV into OPTS. Returns 0, or -1 with a one-line reason in
 * opts->error. lz_options_free must be called either way.
 */
int lz_options_parse(int argc, char **argv, struct lz_options *opts);
void lz_options_free(struct lz_options *opts);
void lz_options_usage(const char *progname);
/* "10G", "512M", "4096": bytes into *OUT; -1 when malformed or too large. */
int lz_parse_size(const char *text, uint64_t *out);

#endif
