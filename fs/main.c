/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lazyfs: the command line, then the keeper (which holds the mount and
 * restarts a crashed worker: upgrade/keeper.h) or, in the process the keeper
 * starts, the worker: start, serve and stop (daemon.h).
 */
#include "config.h"
#include "daemon.h"
#include "common/log.h"
#include "upgrade/keeper.h"
#include "upgrade/restart.h"
#include "upgrade/takeover.h"
#include "upgrade/upgrade.h"

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef HAVE_BPF
#define LZ_BUILT_WITH_BPF "bpf"
#else
#define LZ_BUILT_WITH_BPF "no bpf"
#endif
#ifdef HAVE_LIBSYSTEMD
#define LZ_BUILT_WITH_SYSTEMD "systemd notify"
#else
#define LZ_BUILT_WITH_SYSTEMD "no systemd notify"
#endif

/* The keeper's part: this command's options, the mountpoint made absolute. */
static int run_keeper(const struct lz_settings *cfg, char **argv)
{
	char real[PATH_MAX];
	struct lz_keeper_config kc = {
		.argv = argv,
		.mountpoint = realpath(cfg->mountpoint, real) != NULL ? real : cfg->mountpoint,
		.foreground = cfg->foreground,
		.restart_limit = cfg->restart_limit,
		.restart_window = cfg->restart_window,
	};

	return lz_keeper_run(&kc);
}

/* The worker's part: it mounts (or takes the mount over) and serves. */
static int run_worker(struct lz_daemon *d, int argc, char **argv, int takeover_sock)
{
	int exit_code = 1;

	d->upgrade = lz_upgrade_new(argc, argv, &d->opts.settings);
	if (d->upgrade != NULL && lz_daemon_start(d, takeover_sock) == 0)
		exit_code = lz_daemon_serve(d);
	/*
	 * Work stuck on a store: no exit handlers either. One that stops every
	 * thread (a leak checker) would wait for a thread that cannot stop.
	 */
	if (!lz_daemon_stop(d))
		_exit(exit_code);
	lz_upgrade_free(d->upgrade);
	return exit_code;
}

/*
 * Whether libfuse takes its options (an unknown -o, a bad value): asked now,
 * before the map, the images, the cache or the remote are opened, with a
 * session made for it alone (no mount). libfuse says what it refuses.
 */
static bool fuse_options_ok(const struct fuse_args *args)
{
	static const struct fuse_lowlevel_ops none;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	bool ok;

	for (int i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]) != 0) {
			fuse_opt_free_args(&copy);
			return true; /* out of memory: the real session will say */
		}
	se = fuse_session_new(&copy, &none, sizeof(none), NULL);
	ok = se != NULL;
	if (se != NULL)
		fuse_session_destroy(se);
	fuse_opt_free_args(&copy);
	return ok;
}

int main(int argc, char **argv)
{
	struct lz_daemon d = { 0 };
	int exit_code = 1, takeover_sock;

	lz_log_init("lazyfs", false);
	/*
	 * libsquashfuse allocates a decompression context of about 100 KiB per
	 * block it reads: with glibc's defaults each one grows and trims the heap
	 * again (or maps and unmaps it). Freed memory stays in the heap instead;
	 * the expiry thread gives it back when images close (fscore/expiry.c).
	 */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	/* Started by lazyfsctl upgrade: the running daemon hands its mount over. */
	takeover_sock = lz_takeover_sock_from_env();
	if (takeover_sock == -2)
		return 1;
	if (lz_options_parse(argc, argv, &d.opts) != 0) {
		lz_err("%s", d.opts.error);
	} else if (d.opts.show_help) {
		lz_options_usage(argv[0]);
		exit_code = 0;
	} else if (d.opts.show_version) {
		printf("lazyfs %s (libfuse %s; %s, %s)\n", PACKAGE_VERSION, fuse_pkgversion(),
		       LZ_BUILT_WITH_BPF, LZ_BUILT_WITH_SYSTEMD);
		exit_code = 0;
	} else if (!fuse_options_ok(&d.opts.fuse_args)) {
		/* libfuse said why, on one line */
	} else {
		lz_log_init("lazyfs", d.opts.settings.debug);
		/* A worker: started by a keeper, or by a live upgrade (which passes the keeper on).
		 */
		int keeper = lz_restart_keeper_init();
		if (keeper == 0 && takeover_sock < 0)
			exit_code = run_keeper(&d.opts.settings, argv);
		else if (keeper >= 0)
			exit_code = run_worker(&d, argc, argv, takeover_sock);
	}
	lz_options_free(&d.opts);
	return exit_code;
}
