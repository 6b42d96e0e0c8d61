/* lazyfs: mount, serve, and clean up. */
#include "config.h"
#include "core/fs.h"
#include "fs/options.h"
#include "control/control.h"
#include "images/kmount.h"
#include "cache/remote.h"
#include "common/log.h"
#include "common/mountpoint.h"
#include "common/privileges.h"
#include "core/nodeid.h"
#include "upgrade/restart.h"
#include "upgrade/takeover.h"
#include "upgrade/upgrade.h"
#include "core/underlay.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every looked-up inode holds an O_PATH descriptor: allow as many as the system does. */
static void raise_fd_limit(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

/*
 * libfuse cancels its worker threads at exit, and glibc's pthread_cancel loads
 * libgcc_s on first use: with every descriptor held by inodes (EMFILE) that
 * dlopen fails and glibc aborts. Loaded now, the later dlopen opens no file.
 */
static void preload_unwinder(void)
{
	if (dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE) == NULL)
		lz_debug("cannot preload libgcc_s.so.1: %s", dlerror());
}

static int open_underlay(const struct lz_settings *cfg)
{
	const char *dir = cfg->underlay ? cfg->underlay : cfg->mountpoint;
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		lz_err("underlay %s: %s", dir, strerror(errno));
	return fd;
}

static struct lz_images *open_images(const struct lz_settings *cfg)
{
	int fd;

	enum lz_image_backend backend = LZ_IMAGE_KERNEL;

	if (cfg->backend == LZ_BACKEND_SQUASHFUSE) {
		backend = LZ_IMAGE_SQUASHFUSE;
	} else if (!lz_kmount_available()) {
		const char *why = strerror(errno); /* EMFILE is not "needs root" */
		if (cfg->backend == LZ_BACKEND_KERNEL) {
			lz_err("backend=kernel: loop devices or the mount API are not available "
			       "(%s; needs root)",
			       why);
			return NULL;
		}
		lz_info("kernel squashfs unavailable (%s; needs root and loop devices): images "
			"are read with squashfuse",
			why);
		backend = LZ_IMAGE_SQUASHFUSE;
	}
	fd = cfg->images ? open(cfg->images, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (cfg->images != NULL && fd < 0) {
		lz_err("images %s: %s", cfg->images, strerror(errno));
		return NULL;
	}
	struct lz_images *images = lz_images_new(fd, backend);
	if (images == NULL)
		close(fd);
	return images;
}

static struct lz_fs *the_fs; /* for release_inode, which the inode table calls */

static void release_inode(struct lz_inode *inode)
{
	lz_sqfs_image_put(inode->sqfs);
	/* open_mode=cached keeps a remote object open until the kernel forgets it. */
	if (inode->kind == LZ_INODE_REMOTE && inode->read_fd >= 0)
		lz_objects_release(the_fs, inode);
	/* Its parked backing file (the connection drops those left at exit). */
	if (the_fs->linger != NULL)
		lz_linger_revoke(the_fs->linger, inode->nodeid);
}

static void log_from_cache(void *ctx, enum lz_log_level level, const char *msg)
{
	(void)ctx;
	/* Fetch failures repeat with every open of a missing or unreachable object. */
	if (level <= LZ_LOG_WARN)
		LZ_LOG_LIMITED(level, "%s", msg);
	else
		lz_log(level, "%s", msg);
}

/* An object left the cache: the tracker reports its next open again. */
static void object_evicted(void *ctx, const char *path)
{
	struct lz_fs *fs = ctx;

	/* Its file may be parked for passthrough: let the kernel drop it, and its disk space. */
	lz_linger_revoke(fs->linger, lz_objects_nodeid(path));
	lz_track_forget(ctx, path);
	LZ_LOG_LIMITED(LZ_LOG_INFO, "cache: evicted '%s'", path);
}

static struct lz_remote *open_remote(const struct lz_settings *cfg)
{
	char err[512];
	struct lz_remote_options opts = {
		.remote = cfg->remote,
		.cache_dir = cfg->cache,
		.cache_size = cfg->cache_size,
		.listing_ttl = cfg->listing_ttl,
		.timeout = cfg->fetch_timeout,
		.log = log_from_cache,
		.evicted = object_evicted,
		.evicted_ctx = the_fs,
	};
	struct lz_remote *remote = lz_remote_new(&opts, err, sizeof(err));

	if (remote == NULL)
		lz_err("remote %s (cache %s): %s", cfg->remote, cfg->cache, err);
	return remote;
}

static struct lz_inode *make_root(struct lz_fs *fs, int underlay_fd)
{
	struct stat st;
	int err = lz_backing_stat(underlay_fd, &st);

	if (err != 0) {
		lz_err("underlay: %s", strerror(-err));
		close(underlay_fd);
		return NULL;
	}
	/* Registers the underlay's device as the first node id source. */
	lz_inode_source_for_dev(fs->inodes, st.st_dev);
	return lz_inode_ref(fs->inodes, FUSE_ROOT_ID, underlay_fd, st.st_mode);
}

/* A resolved image: the tracker counts its opens as warm, its working set is prefetched. */
static void image_ready(void *ctx, struct lz_image *image, unsigned generation)
{
	struct lz_fs *fs = ctx;

	lz_track_resolved(fs, image->name);
	lz_prefetch_image_ready(fs->prefetch, image, generation);
}

/* Prefetch fills the cache through the source directly: its opens are not recorded. */
static int prefetch_object(void *ctx, const char *path)
{
	const struct lz_source *objects = ctx;
	int fd = objects->open(objects->ctx, path);

	if (fd < 0)
		return fd;
	close(fd);
	objects->release(objects->ctx, path);
	return 0;
}

static int open_prefetch(struct lz_fs *fs, const struct lz_settings *cfg)
{
	char dir[PATH_MAX];

	if (!cfg->prefetch || (fs->images == NULL && fs->objects == NULL))
		return 0;
	snprintf(dir, sizeof(dir), "%s/workingset%s", cfg->cache,
		 fs->objects != NULL ? "/objects" : "");
	fs->prefetch = lz_prefetch_new(dir, cfg->prefetch_max);
	if (fs->prefetch != NULL && fs->objects != NULL)
		lz_prefetch_set_fetch(fs->prefetch, prefetch_object, (void *)fs->objects);
	return fs->prefetch != NULL ? 0 : -1;
}

#ifdef HAVE_BPF
#define LZ_BUILT_WITH_BPF 1
#else
#define LZ_BUILT_WITH_BPF 0
#endif

/* Type=notify units: systemd starts what is ordered after us only now. */
static void notify_systemd(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static struct fuse_session *signalled_session;

static void exit_on_signal(int sig)
{
	(void)sig;
	fuse_session_exit(signalled_session);
}

/*
 * libfuse leaves ignored signals ignored, but a shell starts background jobs
 * with SIGINT ignored: lazyfs must stop on SIGINT and SIGTERM regardless.
 */
static int set_signal_handlers(struct fuse_session *se)
{
	static const int stop_signals[] = { SIGINT, SIGTERM };
	struct sigaction sa = { .sa_handler = exit_on_signal };

	if (fuse_set_signal_handlers(se) != 0)
		return -1;
	signalled_session = se;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++) {
		struct sigaction old;
		if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			sigaction(stop_signals[i], &sa, NULL);
	}
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

static int serve(struct fuse_session *se, const struct lz_settings *cfg)
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

static unsigned fuse_minor;	     /* the connection the FUSE tracepoints name */
static struct lz_remote *the_remote; /* remote=: the cache store and fetcher */

/*
 * A live upgrade stops what would change the state while it is captured. The
 * cache store is closed last, once nothing fetches: the next process opens
 * the directory (one process at a time) and takes the open objects over.
 */
static void pause_services(struct lz_fs *fs)
{
	char err[256];

	lz_expiry_stop();
	lz_track_close(fs);
	lz_prefetch_free(fs->prefetch);
	fs->prefetch = NULL;
	if (the_remote != NULL && lz_remote_suspend(the_remote, err, sizeof(err)) != 0)
		lz_warn("upgrade: the cache index was not saved (%s); it will be rebuilt", err);
}

/* Reopens the cache store a pause closed and takes its objects' references again. */
static void resume_cache(struct lz_fs *fs)
{
	char err[256];

	if (the_remote == NULL)
		return;
	if (lz_remote_resume(the_remote, err, sizeof(err)) != 0)
		lz_err("upgrade: cannot reopen the cache (%s): remote opens fail until restart",
		       err);
	else if (lz_objects_adopt(fs, err, sizeof(err)) != 0)
		lz_warn("upgrade: %s; it is fetched again at its next open", err);
}

/* ... and restarts it when the upgrade failed and this daemon serves on. */
static void resume_services(struct lz_fs *fs)
{
	const struct lz_settings *cfg = fs->settings;

	resume_cache(fs);
	if (open_prefetch(fs, cfg) != 0)
		lz_warn("upgrade: prefetch could not be restarted");
	if (lz_expiry_start(fs) != 0)
		lz_warn("upgrade: the expiry thread could not be restarted");
	if (lz_track_open(fs, cfg->mountpoint) != 0 || lz_track_start(fs, fuse_minor) != 0)
		lz_warn("upgrade: the open tracker could not be restarted");
}

static const struct lz_upgrade_hooks upgrade_hooks = {
	.pause = pause_services,
	.resume = resume_services,
};

int main(int argc, char **argv)
{
	struct lz_options opts;
	struct lz_fs fs = { .settings = &opts.settings };
	struct fuse_session *se = NULL;
	char err[512];
	int exit_code = 1, underlay_fd;
	bool mounted = false, handlers_set = false, taken_over = false, served = false;
	struct lz_takeover *takeover = NULL;
	char why[512] = "the new process failed to start (see its log)";

	the_fs = &fs;

	lz_log_init("lazyfs", false);
	lz_upgrade_init(argc, argv);
	/* Started by lazyfsctl upgrade: the running daemon hands its mount over. */
	int takeover_sock = lz_takeover_sock_from_env();
	if (takeover_sock == -2)
		goto out;
	if (lz_options_parse(argc, argv, &opts) != 0) {
		lz_err("%s", opts.error);
		goto out;
	}
	lz_log_init("lazyfs", opts.settings.debug);
	if (opts.show_help) {
		lz_options_usage(argv[0]);
		exit_code = 0;
		goto out;
	}
	if (opts.show_version) {
		printf("lazyfs %s (libfuse %s; %s, %s)\n", PACKAGE_VERSION, fuse_pkgversion(),
		       LZ_BUILT_WITH_BPF ? "bpf" : "no bpf",
#ifdef HAVE_LIBSYSTEMD
		       "systemd notify"
#else
		       "no systemd notify"
#endif
		);
		exit_code = 0;
		goto out;
	}
	if (takeover_sock >= 0) {
		/* Nothing may touch the mount now: its daemon waits for us to serve it. */
		takeover = lz_takeover_receive(takeover_sock, err, sizeof(err));
		if (takeover == NULL) {
			lz_err("upgrade: %s", err);
			goto out;
		}
		char *mp = strdup(lz_takeover_mountpoint(takeover));
		if (mp == NULL)
			goto out;
		free(opts.settings
			     .mountpoint); /* the absolute path: this process may run elsewhere */
		opts.settings.mountpoint = mp;
	} else if ((takeover = lz_restart_takeover(opts.settings.map != NULL, err, sizeof(err))) !=
		   NULL) {
		/* The daemon before died; its supervisor kept the mount and gave it back. */
		char *mp = strdup(lz_takeover_mountpoint(takeover));
		if (mp == NULL)
			goto out;
		free(opts.settings.mountpoint);
		opts.settings.mountpoint = mp;
	} else if (err[0] != '\0') {
		lz_err("restart: %s", err);
		goto out;
	} else {
		char real[PATH_MAX];
		if (lz_mountpoint_check(opts.settings.mountpoint, err, sizeof(err)) != 0) {
			lz_err("%s", err);
			goto out;
		}
		/* Absolute from now on: the daemon's directory becomes /, a new binary's too. */
		char *mp = realpath(opts.settings.mountpoint, real) != NULL ? strdup(real) : NULL;
		if (mp != NULL) {
			free(opts.settings.mountpoint);
			opts.settings.mountpoint = mp;
		}
	}
	raise_fd_limit();
	preload_unwinder();
	fs.inodes = lz_inode_table_new();
	if (fs.inodes != NULL)
		lz_inode_table_on_free(fs.inodes, release_inode);
	fs.linger = lz_linger_new(
		opts.settings.open_mode == LZ_OPEN_PASSTHROUGH ? opts.settings.backing_keep : 0);
	atomic_store(&fs.passthrough, true);
	if (fs.inodes == NULL || fs.linger == NULL)
		goto out;
	if (takeover == NULL) {
		/* Opened before mounting: afterwards the path leads into lazyfs itself. */
		underlay_fd = open_underlay(&opts.settings);
		if (underlay_fd < 0 || (fs.root = make_root(&fs, underlay_fd)) == NULL)
			goto out;
	}

	if (opts.settings.remote != NULL && (the_remote = open_remote(&opts.settings)) == NULL)
		goto out;
	if (the_remote != NULL && opts.settings.remote_objects)
		fs.objects = lz_remote_source(the_remote);
	bool remote_images = the_remote != NULL && !opts.settings.remote_objects;
	if ((opts.settings.images != NULL || opts.settings.map != NULL || remote_images) &&
	    (fs.images = open_images(&opts.settings)) == NULL)
		goto out;
	if (remote_images)
		lz_images_set_source(fs.images, lz_remote_source(the_remote));
	if (the_remote != NULL)
		fs.remote = lz_remote_source(the_remote);
	if (opts.settings.map != NULL && lz_map_reload(&fs) != 0)
		goto out;
	if (open_prefetch(&fs, &opts.settings) != 0)
		goto out;
	if (fs.images != NULL)
		lz_images_on_ready(fs.images, image_ready, &fs);
	if (takeover != NULL && (lz_takeover_restore(takeover, &fs, why, sizeof(why)) != 0 ||
				 lz_objects_adopt(&fs, why, sizeof(why)) != 0)) {
		lz_err("upgrade: %s", why);
		goto out;
	}
	if (!S_ISDIR(fs.root->type)) {
		lz_err("underlay %s is not a directory",
		       opts.settings.underlay ? opts.settings.underlay : opts.settings.mountpoint);
		goto out;
	}

	se = fuse_session_new(&opts.fuse_args, &lz_ops, sizeof(lz_ops), &fs);
	if (se == NULL)
		goto out; /* libfuse said why (e.g. an unknown option) */
	/* Before the mount exists, so a stop signal never finds the inherited disposition. */
	if (set_signal_handlers(se) != 0)
		goto out;
	handlers_set = true;
	fs.se = se;
	{
		/* SIGHUP rereads what can change under a mount: replaced images. */
		struct sigaction hup = { .sa_handler = lz_expiry_reload_signal };
		sigemptyset(&hup.sa_mask);
		sigaction(SIGHUP, &hup, NULL);
	}
	/* Loaded before daemonizing, so bpf=on can still fail the mount command. */
	if (lz_track_open(&fs, opts.settings.mountpoint) != 0)
		goto out;
	if (takeover != NULL) {
		if (lz_takeover_attach(takeover, se, why, sizeof(why)) != 0) {
			lz_err("upgrade: %s", why);
			goto out;
		}
		taken_over = true;
		lz_linger_set_device(fs.linger, fuse_session_fd(se));
		/* The old daemon already left the terminal; a second fork would change our pid. */
		if (!opts.settings.foreground && chdir("/") != 0)
			goto out;
	} else {
		if (fuse_session_mount(se, opts.settings.mountpoint) != 0)
			goto out;
		mounted = true;
		lz_linger_set_device(fs.linger, fuse_session_fd(se));
		/* Kept for a live upgrade, whose new process replays it into its session. */
		if (lz_upgrade_first_init(&fs) != 0)
			goto out;
		if (fuse_daemonize(opts.settings.foreground) != 0)
			goto out;
	}
	if (!opts.settings.foreground)
		lz_log_to_syslog();
	/* Before any thread starts: capabilities are per thread, new ones inherit these. */
	int drop = lz_drop_privileges();
	if (drop != 0)
		lz_warn("could not drop unneeded capabilities: %s", strerror(-drop));
	lz_info("serving %s over %s (open_mode=%s)",
		opts.settings.underlay ? opts.settings.underlay : "its own contents",
		opts.settings.mountpoint,
		opts.settings.open_mode == LZ_OPEN_CACHED ? "cached" : "passthrough");
	/* Threads start after fuse_daemonize: they would not survive its fork. */
	if (lz_expiry_start(&fs) != 0) {
		lz_err("cannot start the expiry thread");
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &fs.started);
	fuse_minor = takeover != NULL ? lz_takeover_minor(takeover)
				      : fuse_minor_of(opts.settings.mountpoint);
	if (takeover == NULL)
		lz_upgrade_set_mount(opts.settings.mountpoint, fuse_minor);
	if (lz_track_start(&fs, fuse_minor) != 0) {
		lz_err("cannot start the open tracker's threads");
		goto out;
	}
	if (takeover != NULL) {
		int listen_fd, http_fd;
		const char *path;
		lz_takeover_control(takeover, &listen_fd, &http_fd, &path);
		/* Last: from here on nothing fails, and the socket path is ours to remove. */
		if ((listen_fd >= 0 ? lz_control_start_inherited(&fs, listen_fd, http_fd, path)
				    : lz_control_start(&fs)) != 0)
			lz_warn("no control socket: lazyfsctl cannot reach this mount");
		/* Requests the old daemon read but did not answer are queued again for us. */
		lz_upgrade_resend(fuse_session_fd(se));
		lz_takeover_ready(takeover);
		takeover = NULL;
		served = true;
		lz_info("upgrade: took %s over", opts.settings.mountpoint);
		char state[64];
		snprintf(state, sizeof(state), "MAINPID=%d\nREADY=1", (int)getpid());
		notify_systemd(state);
	} else {
		if (lz_control_start(&fs) != 0)
			lz_warn("no control socket: lazyfsctl cannot reach this mount");
		notify_systemd("READY=1");
		/* A supervisor that keeps them can restart us after a crash without unmounting. */
		if (!lz_upgrade_serves_uring(&opts.settings))
			lz_restart_store(fuse_session_fd(se), fs.root->path_fd);
	}
	/* The loop returns the signal number after SIGTERM/SIGINT: a clean exit too. */
	for (;;) {
		int rc = serve(se, &opts.settings);
		exit_code = rc >= 0 ? 0 : 1;
		if (!lz_upgrade_requested())
			break;
		lz_upgrade_run(&fs, &upgrade_hooks); /* returns only when it failed */
	}
	notify_systemd("STOPPING=1");
out:
	if (takeover != NULL) {
		/* The old daemon serves on: with its cache directory, which only one may hold. */
		if (the_remote != NULL)
			lz_remote_suspend(the_remote, err, sizeof(err));
		lz_takeover_fail(takeover, why);
	}
	/* Both use the inode table: stopped while it exists; expiry tells the tracker. */
	lz_control_stop(&fs); /* first: its commands use everything below */
	lz_expiry_stop();
	lz_track_close(&fs);
	lz_prefetch_free(fs.prefetch); /* before the images its jobs read */
	if (handlers_set)
		fuse_remove_signal_handlers(se);
	if (fs.linger != NULL)
		lz_linger_set_device(fs.linger, -1); /* the descriptor closes below */
	if (se != NULL) {
		if (mounted)
			fuse_session_unmount(se);
		else if (taken_over && served)
			lz_takeover_unmount(fuse_session_fd(se), opts.settings.mountpoint);
		if (mounted || served)
			lz_restart_unstore(); /* nothing left to restart */
		fuse_session_destroy(se);
	}
	lz_inode_table_free(fs.inodes);
	lz_linger_free(fs.linger); /* after the inodes, which revoke their ids as they go */
	lz_images_free(fs.images);
	lz_remote_free(the_remote);
	lz_map_free(atomic_load(&fs.map)); /* maps replaced by reloads are not tracked */
	lz_options_free(&opts);
	return exit_code;
}
