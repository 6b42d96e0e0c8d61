/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Serving: the services that run once the process serves (expiry, the
 * tracker, the control plane, the supervisor's store), the FUSE loop and
 * live upgrades, then stopping everything in the order the parts need.
 */
#include "config.h"
#include "daemon.h"
#include "ops.h"
#include "cache/remote.h"
#include "common/log.h"
#include "common/mountpoint.h"
#include "common/privileges.h"
#include "control/control.h"
#include "defer.h"
#include "fscore/expiry.h"
#include "fscore/objects.h"
#include "upgrade/inflight.h"
#include "upgrade/nodes.h"
#include "upgrade/restart.h"
#include "upgrade/takeover.h"
#include "upgrade/upgrade.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a stop waits for deferred work (a resolve on a hung store) to end. */
#define DEFER_WAIT_S 2.0

/* What the signal handlers reach: signals know no context. */
static struct lz_daemon *signalled;

void lz_daemon_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static void exit_on_signal(int sig)
{
	(void)sig;
	fuse_session_exit(signalled->se);
}

/* SIGHUP rereads what can change under a mount: the map, replaced images. */
static void reload_on_signal(int sig)
{
	(void)sig;
	lz_expiry_reload(signalled->fs.expiry);
}

/*
 * libfuse leaves ignored signals ignored, but a shell starts background jobs
 * with SIGINT ignored: lazyfs must stop on SIGINT and SIGTERM regardless.
 */
int lz_daemon_set_signals(struct lz_daemon *d)
{
	static const int stop_signals[] = { SIGINT, SIGTERM };
	struct sigaction sa = { .sa_handler = exit_on_signal };
	struct sigaction hup = { .sa_handler = reload_on_signal };

	if (fuse_set_signal_handlers(d->se) != 0)
		return -1;
	d->handlers_set = true;
	signalled = d;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++) {
		struct sigaction old;
		if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			sigaction(stop_signals[i], &sa, NULL);
	}
	sigemptyset(&hup.sa_mask);
	sigaction(SIGHUP, &hup, NULL);
	return 0;
}

/* The device minor of our FUSE mount: the connection the FUSE tracepoints name. */
static unsigned fuse_minor_of(const char *mountpoint)
{
	char real[PATH_MAX];
	unsigned major = 0, minor = 0;
	FILE *f;

	/* stat() on the mountpoint would send us a GETATTR we cannot answer yet. */
	if (realpath(mountpoint, real) == NULL)
		return 0;
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return 0;
	if (!lz_mountinfo_find(f, real, "fuse.lazyfs", true, &major, &minor))
		minor = 0;
	fclose(f);
	return minor;
}

/* The control plane's "upgrade": the main thread does it (lz_upgrade_run). */
static int upgrade_request(void *ctx, const char *binary, char *msg, size_t size)
{
	struct lz_daemon *d = ctx;

	return lz_upgrade_request(d->upgrade, d->se, binary, msg, size);
}

static bool reply_sent(void *ctx)
{
	return lz_upgrade_replied(((struct lz_daemon *)ctx)->upgrade);
}

/* lazyfsctl's socket: the old daemon's listeners after a takeover, else new ones. */
static void start_control(struct lz_daemon *d)
{
	const struct lz_control_hooks hooks = {
		.upgrade = upgrade_request,
		.replied = reply_sent,
		.ctx = d,
	};
	int listen_fd = -1, http_fd = -1;
	const char *path = NULL;

	if (d->takeover != NULL)
		lz_takeover_control(d->takeover, &listen_fd, &http_fd, &path);
	d->control = listen_fd >= 0
			     ? lz_control_start_inherited(&d->fs, &hooks, listen_fd, http_fd, path)
			     : lz_control_start(&d->fs, &hooks);
	if (d->control == NULL)
		lz_warn("no control socket: lazyfsctl cannot reach this mount");
}

/* Serving from now on: the old daemon exits, systemd learns our pid. */
static void finish_takeover(struct lz_daemon *d)
{
	char state[64];

	/* Requests the old daemon read but did not answer are queued again for us. */
	lz_upgrade_resend(fuse_session_fd(d->se));
	/* The keeper first: the old worker's exit must not look like a crash to it. */
	lz_restart_ready();
	lz_takeover_ready(d->takeover);
	d->takeover = NULL;
	d->served = true;
	lz_info("upgrade: took %s over", d->opts.settings.mountpoint);
	snprintf(state, sizeof(state), "MAINPID=%d\nREADY=1", (int)getpid());
	lz_daemon_notify(state);
}

/* Threads start after fuse_daemonize: they would not survive its fork. */
static int start_services(struct lz_daemon *d)
{
	const struct lz_settings *cfg = &d->opts.settings;
	/* Before any thread starts: capabilities are per thread, new ones inherit these. */
	/* A root daemon's remote has a child of its own uid (fs/child_user.c). */
	struct lz_privilege_needs needs = { .child_uid = cfg->remote != NULL && geteuid() == 0 };
	int drop = lz_drop_privileges(&needs);

	if (drop != 0)
		lz_warn("could not drop unneeded capabilities: %s", strerror(-drop));
	lz_info("serving %s over %s (open_mode=%s)",
		cfg->underlay ? cfg->underlay : "its own contents", cfg->mountpoint,
		cfg->open_mode == LZ_OPEN_CACHED ? "cached" : "passthrough");
	/* The cache's index loads meanwhile: a big cache does not delay READY. */
	lz_remote_preload(d->remote);
	if (lz_expiry_start(d->fs.expiry) != 0) {
		lz_err("cannot start the expiry thread");
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &d->fs.started);
	if (d->takeover != NULL) {
		d->fuse_minor = lz_takeover_minor(d->takeover);
	} else {
		d->fuse_minor = fuse_minor_of(cfg->mountpoint);
		lz_upgrade_set_mount(d->upgrade, cfg->mountpoint, d->fuse_minor);
	}
	if (lz_track_start(d->fs.track, d->fuse_minor) != 0) {
		lz_err("cannot start the open tracker's threads");
		return -1;
	}
	/* Last: from here on nothing fails, and the socket path is ours to remove. */
	start_control(d);
	lz_restart_keep_record("inflight", lz_inflight_fd(d->inflight));
	lz_restart_keep_record("nodes", lz_nodes_fd(d->nodes));
	/* A live upgrade's images came over with their pins; a crashed worker's did not. */
	if (!d->live_upgrade && lz_pins_start(d->fs.pins) != 0)
		lz_warn("warm: the thread cannot start: nothing is pinned at start");
	if (d->takeover != NULL) {
		finish_takeover(d);
		return 0;
	}
	lz_daemon_notify("READY=1");
	/* The keeper holds them: a crash restarts a worker without unmounting. */
	if (!lz_upgrade_serves_uring(d->upgrade)) {
		int root = lz_inode_path_get(d->fs.inodes, d->fs.root); /* the root's stays open */
		lz_restart_store(d->upgrade, fuse_session_fd(d->se), root);
		lz_inode_path_put(d->fs.inodes, d->fs.root);
	}
	lz_restart_ready();
	return 0;
}

static int run_loop(struct fuse_session *se, const struct lz_settings *cfg)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int rc;

	if (loop == NULL)
		return -1;
	/*
	 * One /dev/fuse descriptor for all workers, not one cloned per worker: a
	 * stopped loop drops what its workers read after the stop, and only on
	 * the shared descriptor (which a live upgrade hands over) do those
	 * requests stay for FUSE_NOTIFY_RESEND to queue again; a closed clone
	 * would fail them with ECONNABORTED.
	 */
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, cfg->max_threads);
	fuse_loop_cfg_set_idle_threads(loop, cfg->max_idle_threads);
	rc = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	return rc;
}

/*
 * A live upgrade stops what would change the state while it is captured. The
 * cache store is closed last, once nothing fetches: the next process opens
 * the directory (one process at a time) and takes the open objects over.
 */
static void pause_services(void *ctx)
{
	struct lz_daemon *d = ctx;
	char err[256];

	lz_expiry_stop(d->fs.expiry);
	/* Deferred lookups stay unanswered: the kernel gives them to the new process. */
	bool quiet = lz_defer_pause(d->defer, DEFER_WAIT_S);
	/*
	 * Cold opens too; the cache is closed below, so their fetches are given
	 * as long as one may take without progress to end (on a worker, the
	 * upgrade waited for them just as long).
	 */
	bool fetched = d->fetches == NULL ||
		       lz_defer_pause(d->fetches, d->opts.settings.fetch_timeout + DEFER_WAIT_S);
	/*
	 * Closed, not freed: the control thread, a prefetch job's eviction and
	 * work stuck on a store may still hold it (their calls now do nothing).
	 * A resolve of its own stuck on a store leaves it running, to our exit.
	 */
	if (lz_track_close(d->fs.track))
		lz_track_retire(&d->retired, d->fs.track);
	d->fs.track = NULL;
	quiet = lz_pins_stop(d->fs.pins, DEFER_WAIT_S) && quiet; /* not restarted: start-up work */
	/* A lookup stuck on a store may still record into it: kept (leaked) then. */
	if (quiet)
		lz_prefetch_free(d->fs.prefetch);
	d->fs.prefetch = NULL;
	/* A fetch still running writes into the store: it is not closed under it. */
	if (!fetched)
		lz_warn("upgrade: a fetch is still running; the cache stays with this process");
	else if (d->remote != NULL && lz_remote_suspend(d->remote, err, sizeof(err)) != 0)
		lz_warn("upgrade: the cache index was not saved (%s); it will be rebuilt", err);
}

/* Reopens the cache store a pause closed and takes its objects' references again. */
static void resume_cache(struct lz_daemon *d)
{
	char err[256];

	if (d->remote == NULL)
		return;
	if (lz_remote_resume(d->remote, err, sizeof(err)) != 0)
		lz_err("upgrade: cannot reopen the cache (%s): remote opens fail until restart",
		       err);
	else if (lz_objects_adopt(&d->fs, err, sizeof(err)) != 0)
		lz_warn("upgrade: %s; it is fetched again at its next open", err);
}

/* ... and restarts it when the upgrade failed and this daemon serves on. */
static void resume_services(void *ctx)
{
	struct lz_daemon *d = ctx;
	bool failed;

	resume_cache(d);
	if (lz_fs_open_prefetch(&d->fs) != 0)
		lz_warn("upgrade: prefetch could not be restarted");
	if (lz_expiry_start(d->fs.expiry) != 0)
		lz_warn("upgrade: the expiry thread could not be restarted");
	d->fs.track = lz_track_open(&d->fs, d->opts.settings.mountpoint, &failed);
	if (failed || lz_track_start(d->fs.track, d->fuse_minor) != 0)
		lz_warn("upgrade: the open tracker could not be restarted");
	/* Last: the deferred work that waited runs on the services just restarted. */
	lz_defer_resume(d->defer);
	if (d->fetches != NULL)
		lz_defer_resume(d->fetches);
}

static void control_fds(void *ctx, int *listen_fd, int *http_fd, const char **path)
{
	lz_control_fds(((struct lz_daemon *)ctx)->control, listen_fd, http_fd, path);
}

int lz_daemon_serve(struct lz_daemon *d)
{
	const struct lz_upgrade_hooks hooks = {
		.pause = pause_services,
		.resume = resume_services,
		.control_fds = control_fds,
		.ctx = d,
	};
	int exit_code = 1;

	if (start_services(d) != 0)
		return 1;
	/* The loop returns the signal number after SIGTERM/SIGINT: a clean exit too. */
	for (;;) {
		int rc = run_loop(d->se, &d->opts.settings);
		exit_code = rc >= 0 ? 0 : 1;
		if (!lz_upgrade_requested(d->upgrade))
			break;
		lz_upgrade_run(d->upgrade, &d->fs, d->se, &hooks); /* returns only when it failed */
	}
	lz_daemon_notify("STOPPING=1");
	return exit_code;
}

/*
 * The session last but for the core: unmounted by whoever mounted or served
 * it, and freed unless work stuck on a store may still reply through it.
 */
static void end_session(struct lz_daemon *d, bool free_it)
{
	if (d->handlers_set)
		fuse_remove_signal_handlers(d->se);
	if (d->mounted)
		fuse_session_unmount(d->se);
	else if (d->taken_over && d->served)
		lz_takeover_unmount(fuse_session_fd(d->se), d->opts.settings.mountpoint);
	if (d->mounted || d->served)
		lz_restart_unstore(); /* nothing left to restart */
	if (free_it)
		fuse_session_destroy(d->se);
}

bool lz_daemon_stop(struct lz_daemon *d)
{
	char err[256];

	if (d->takeover != NULL) {
		/* The old daemon serves on: with its cache directory, which only one may hold. */
		if (d->remote != NULL)
			lz_remote_suspend(d->remote, err, sizeof(err));
		lz_takeover_fail(d->takeover,
				 d->why[0] ? d->why
					   : "the new process failed to start (see its log)");
		d->takeover = NULL;
	}
	/* Both use the inode table: stopped while it exists; expiry tells the tracker. */
	lz_control_stop(d->control); /* first: its commands use everything below */
	d->control = NULL;
	/*
	 * Work stuck on a store that stopped answering cannot be stopped: what it
	 * uses (the session, the core) is then left to the process's exit.
	 */
	bool quiet = lz_defer_stop(d->defer, DEFER_WAIT_S);
	d->defer = NULL;
	/*
	 * Cold opens waiting for a fetch are answered EIO; fetches running are
	 * given as long as one may take without progress, as a FUSE worker
	 * fetching was: past that the cache is left unsaved (rebuilt at the
	 * next start) rather than closed under a fetch.
	 */
	if (d->fetches != NULL)
		quiet = lz_defer_stop(d->fetches, d->opts.settings.fetch_timeout + DEFER_WAIT_S) &&
			quiet;
	d->fetches = NULL;
	/*
	 * A fill still running (a prefetch job, work stuck above) may evict, and
	 * evictions tell the tracker and linger: stop that before they go.
	 */
	lz_remote_stop_evicted(d->remote);
	if (d->fs.expiry != NULL)
		lz_expiry_stop(d->fs.expiry);
	/* Closed now, freed below with the core: work stuck on a store may still hold it. */
	quiet = lz_track_close(d->fs.track) && quiet;
	quiet = lz_pins_stop(d->fs.pins, DEFER_WAIT_S) && quiet;
	if (quiet) {
		lz_prefetch_free(d->fs.prefetch); /* before the images its jobs read */
		d->fs.prefetch = NULL;
	}
	if (d->fs.linger != NULL)
		lz_linger_set_device(d->fs.linger, -1); /* the descriptor closes below */
	if (d->se != NULL)
		end_session(d, quiet);
	d->se = NULL;
	if (!quiet) {
		lz_warn("work is stuck on a store that does not answer: exiting without freeing");
		return false;
	}
	/* After the core (closing images tells it, a no-op now), which lz_fs_destroy clears. */
	struct lz_track *track = d->fs.track;
	lz_fs_destroy(&d->fs);
	lz_track_free(track);
	lz_track_free(d->retired);
	d->retired = NULL;
	lz_remote_free(d->remote);
	d->remote = NULL;
	lz_inflight_close(d->inflight);
	d->inflight = NULL;
	lz_nodes_close(d->nodes);
	d->nodes = NULL;
	if (d->revive_anchor >= 0)
		close(d->revive_anchor);
	d->revive_anchor = -1;
	return true;
}
