/* lazyfs: the command line, then start, serve and stop (daemon.h). */
#include "config.h"
#include "daemon.h"
#include "common/log.h"
#include "upgrade/takeover.h"
#include "upgrade/upgrade.h"

#define FUSE_USE_VERSION 317
#include <fuse_lowlevel.h>
#include <stdio.h>

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

int main(int argc, char **argv)
{
	struct lz_daemon d = { 0 };
	int exit_code = 1, takeover_sock;

	lz_log_init("lazyfs", false);
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
	} else {
		lz_log_init("lazyfs", d.opts.settings.debug);
		d.upgrade = lz_upgrade_new(argc, argv, &d.opts.settings);
		if (d.upgrade != NULL && lz_daemon_start(&d, takeover_sock) == 0)
			exit_code = lz_daemon_serve(&d);
		lz_daemon_stop(&d);
	}
	lz_upgrade_free(d.upgrade);
	lz_options_free(&d.opts);
	return exit_code;
}
