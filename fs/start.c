/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Starting: the mountpoint and the core's parts, then the FUSE session
 * (mounted fresh, or attached to a connection taken over), then the
 * services that run while the process serves.
 */
#include "config.h"
#include "daemon.h"
#include "ops.h"
#include "child_user.h"
#include "cache/remote.h"
#include "common/log.h"
#include "common/mountpoint.h"
#include "common/privileges.h"
#include "control/control.h"
#include "defer.h"
#include "fscore/expiry.h"
#include "fscore/objects.h"
#include "fscore/revive.h"
#include "images/kmount.h"
#include "images/trust.h"
#include "upgrade/inflight.h"
#include "upgrade/keeper.h"
#include "upgrade/nodes.h"
#include "upgrade/restart.h"
#include "upgrade/takeover.h"
#include "upgrade/upgrade.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Open files, directory streams and the inodes' descriptors share one limit: take it all. */
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

/* Replaces the configured mountpoint by PATH (a copy); -1 when out of memory. */
static int set_mountpoint(struct lz_daemon *d, const char *path)
{
	char *mp = strdup(path);

	if (mp == NULL)
		return -1;
	free(d->opts.settings.mountpoint);
	d->opts.settings.mountpoint = mp;
	return 0;
}

/*
 * Where the mount is: taken over from a live upgrade's old daemon
 * (TAKEOVER_SOCK) or from the supervisor's store after a crash, or a fresh
 * one. Absolute from now on: the daemon's directory becomes /, a new
 * binary's too.
 */
static int choose_mount(struct lz_daemon *d, int takeover_sock)
{
	struct lz_settings *cfg = &d->opts.settings;
	char err[512], real[PATH_MAX];

	if (takeover_sock >= 0) {
		/* Nothing may touch the mount now: its daemon waits for us to serve it. */
		d->takeover = lz_takeover_receive(d->upgrade, takeover_sock, err, sizeof(err));
		if (d->takeover == NULL) {
			lz_err("upgrade: %s", err);
			return -1;
		}
		d->live_upgrade = true;
		return set_mountpoint(d, lz_takeover_mountpoint(d->takeover));
	}
	d->takeover = lz_restart_takeover(d->upgrade, cfg->map != NULL, err, sizeof(err));
	if (d->takeover != NULL) {
		/* The daemon before died; its supervisor kept the mount and gave it back. */
		return set_mountpoint(d, lz_takeover_mountpoint(d->takeover));
	}
	if (err[0] != '\0') {
		lz_err("restart: %s", err);
		return -1;
	}
	if (lz_mountpoint_check(cfg->mountpoint, err, sizeof(err)) != 0) {
		lz_err("%s", err);
		return -1;
	}
	if (realpath(cfg->mountpoint, real) != NULL && set_mountpoint(d, real) != 0)
		return -1;
	return 0;
}

/* The directory shown where nothing else is, opened before anything is mounted over it. */
static int open_root(struct lz_daemon *d)
{
	const struct lz_settings *cfg = &d->opts.settings;
	const char *dir = cfg->underlay ? cfg->underlay : cfg->mountpoint;
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC), err;

	if (fd < 0) {
		lz_err("underlay %s: %s", dir, strerror(errno));
		return -1;
	}
	err = lz_fs_make_root(&d->fs, fd);
	if (err != 0)
		lz_err("underlay: %s", strerror(-err));
	return err != 0 ? -1 : 0;
}

/* The backend images are read with: the kernel's where it can mount them. */
static int image_backend(const struct lz_settings *cfg, enum lz_image_backend *out)
{
	*out = LZ_IMAGE_KERNEL;
	if (cfg->backend == LZ_BACKEND_SQUASHFUSE) {
		*out = LZ_IMAGE_SQUASHFUSE;
	} else if (!lz_kmount_available()) {
		const char *why = strerror(errno); /* EMFILE is not "needs root" */
		if (cfg->backend == LZ_BACKEND_KERNEL) {
			lz_err("backend=kernel: loop devices or the mount API are not available "
			       "(%s; needs root)",
			       why);
			return -1;
		}
		lz_info("kernel squashfs unavailable (%s; needs root and loop devices): images "
			"are read with squashfuse",
			why);
		*out = LZ_IMAGE_SQUASHFUSE;
	}
	return 0;
}

/* The longest a root listing waits for the images directory (resolve_timeout bounds it too). */
#define LIST_DEADLINE_S 5.0

static double list_deadline(double resolve_timeout)
{
	if (resolve_timeout <= 0)
		return 0; /* no bound */
	return resolve_timeout < LIST_DEADLINE_S ? resolve_timeout : LIST_DEADLINE_S;
}

/* Which images the kernel mounts: root's files, the trusted owner's, copies with a trusted digest.
 */
static int set_trust(struct lz_images *images, const struct lz_settings *cfg)
{
	char err[PATH_MAX + 128];
	uid_t owner = cfg->trusted_owner >= 0 ? (uid_t)cfg->trusted_owner : LZ_TRUST_NO_OWNER;
	struct lz_trust *trust = lz_trust_new(owner, cfg->trusted_digests, err, sizeof(err));

	if (trust == NULL) {
		lz_err("trusted_digests: %s", err);
		return -1;
	}
	lz_images_set_trust(images, trust, cfg->backend == LZ_BACKEND_KERNEL);
	return 0;
}

static struct lz_images *open_images(const struct lz_settings *cfg)
{
	enum lz_image_backend backend;
	struct lz_images *images;
	int fd;

	if (image_backend(cfg, &backend) != 0)
		return NULL;
	fd = cfg->images ? open(cfg->images, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (cfg->images != NULL && fd < 0) {
		lz_err("images %s: %s", cfg->images, strerror(errno));
		return NULL;
	}
	images = lz_images_new(fd, backend);
	if (images == NULL && fd >= 0)
		close(fd);
	if (images != NULL && set_trust(images, cfg) != 0) {
		lz_images_free(images);
		return NULL;
	}
	/*
	 * A root listing holds a FUSE worker while it waits: a few seconds, then
	 * it shows the images of the last listing read (resolve_timeout=0: wait).
	 */
	if (images != NULL)
		lz_images_set_deadline(images, list_deadline(cfg->resolve_timeout));
	return images;
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

static struct lz_remote *open_remote(const struct lz_settings *cfg, struct lz_fs *fs)
{
	char err[512];
	struct lz_remote_options ro = {
		.remote = cfg->remote,
		.rclone_config = cfg->rclone_config,
		.cache_dir = cfg->cache,
		.cache_size = cfg->cache_size,
		.listing_ttl = cfg->listing_ttl,
		.timeout = cfg->fetch_timeout,
		/* Objects only: an image is read by its reader once fetched and checked whole. */
		.stream = cfg->stream && cfg->remote_objects,
		.log = log_from_cache,
		.evicted = lz_fs_object_evicted,
		.evicted_ctx = fs,
	};
	struct lz_child_user child;
	struct lz_remote *remote;

	/* rclone would start and fail at the first request: say it now. */
	if (cfg->rclone_config != NULL && access(cfg->rclone_config, R_OK) != 0) {
		lz_err("rclone_config %s: %s", cfg->rclone_config, strerror(errno));
		return NULL;
	}
	if (lz_child_user_resolve(cfg, &child, err, sizeof(err)) != 0) {
		lz_err("%s", err);
		return NULL;
	}
	ro.run_as_user = child.as_user;
	ro.run_uid = child.uid;
	ro.run_gid = child.gid;
	remote = lz_remote_new(&ro, err, sizeof(err));
	if (remote == NULL)
		lz_err("remote %s (cache %s): %s", cfg->remote, cfg->cache, err);
	return remote;
}

/*
 * Images from the remote: listed from their root cards, kept in the cache
 * directory beside the objects, so a restart lists them without fetching.
 */
static int set_image_source(struct lz_images *images, const struct lz_settings *cfg,
			    const struct lz_source *source)
{
	char path[PATH_MAX], err[PATH_MAX + 64];

	lz_images_set_source(images, source);
	if (snprintf(path, sizeof(path), "%s/image-roots", cfg->cache) >= (int)sizeof(path))
		snprintf(err, sizeof(err), "cache directory %s: path too long", cfg->cache);
	else if (lz_images_set_cards(images, path, err, sizeof(err)) == 0)
		return 0;
	lz_err("image root cards: %s", err);
	return -1;
}

/* Pins kept across restarts and the warm= list: only where there is something to pin. */
static int open_pins(const struct lz_settings *cfg, struct lz_fs *fs)
{
	char err[PATH_MAX + 128];

	if (fs->images == NULL && fs->objects == NULL) {
		if (cfg->warm == NULL)
			return 0;
		lz_err("warm=%s: this mount has no images, map or remote to keep warm", cfg->warm);
		return -1;
	}
	fs->pins = lz_pins_open(fs, cfg->warm, err, sizeof(err));
	if (fs->pins == NULL) {
		lz_err("warm: %s", err);
		return -1;
	}
	return 0;
}

/* The images, the map and the remote tree: what names mean beyond the underlay. */
static int open_sources(struct lz_daemon *d)
{
	const struct lz_settings *cfg = &d->opts.settings;
	struct lz_fs *fs = &d->fs;
	bool remote_images = cfg->remote != NULL && !cfg->remote_objects;

	if (cfg->remote != NULL) {
		d->remote = open_remote(cfg, fs);
		if (d->remote == NULL)
			return -1;
		fs->remote = lz_remote_source(d->remote);
		if (cfg->remote_objects)
			fs->objects = fs->remote;
	}
	if (cfg->images != NULL || cfg->map != NULL || remote_images) {
		struct lz_images *images = open_images(cfg);
		if (images == NULL)
			return -1;
		if (remote_images && set_image_source(images, cfg, fs->remote) != 0) {
			lz_images_free(images);
			return -1;
		}
		lz_fs_set_images(fs, images);
	}
	if (cfg->map != NULL && lz_map_reload(fs, NULL) != 0)
		return -1;
	return lz_fs_open_prefetch(fs) == 0 && open_pins(cfg, fs) == 0 ? 0 : -1;
}

/* The core: its parts, its root (fresh) or the old daemon's state (takeover). */
static int open_core(struct lz_daemon *d)
{
	struct lz_fs *fs = &d->fs;

	if (lz_fs_init(fs, &d->opts.settings) != 0)
		return -1;
	d->defer = lz_defer_new(d->opts.settings.resolve_timeout, &fs->waits);
	if (d->defer == NULL) {
		lz_err("cannot start the thread answering stalled lookups");
		return -1;
	}
	/* No deadline: a fetch fails on its own after fetch_timeout without progress. */
	if (d->opts.settings.remote_objects) {
		d->fetches = lz_defer_new(0, &d->fetch_waits);
		if (d->fetches == NULL) {
			lz_err("cannot start the thread fetching remote objects");
			return -1;
		}
		lz_defer_set_threads(d->fetches, d->opts.settings.fetch_max);
		lz_defer_set_background(d->fetches);
	}
	/* Opened before mounting: afterwards the path leads into lazyfs itself. */
	if (d->takeover == NULL && open_root(d) != 0)
		return -1;
	if (open_sources(d) != 0)
		return -1;
	if (d->takeover != NULL &&
	    (lz_takeover_restore(d->takeover, fs, d->why, sizeof(d->why)) != 0 ||
	     lz_objects_adopt(fs, d->why, sizeof(d->why)) != 0)) {
		lz_err("upgrade: %s", d->why);
		return -1;
	}
	if (!S_ISDIR(fs->root->type)) {
		lz_err("underlay %s is not a directory", d->opts.settings.underlay
								 ? d->opts.settings.underlay
								 : d->opts.settings.mountpoint);
		return -1;
	}
	return 0;
}

static void forget_entry(void *ctx, uint64_t parent, const char *name)
{
	int rc = fuse_lowlevel_notify_inval_entry(ctx, parent, name, strlen(name));

	if (rc != 0 && rc != -ENOENT)
		lz_debug("entry %s: kernel entry not invalidated: %s", name, strerror(-rc));
}

/* As fuse_daemonize does, without its fork: the directory and stdio let go. */
static int leave_terminal(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0 || chdir("/") != 0)
		return -1;
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	close(null);
	return 0;
}

/* A fresh mount, or the taken-over connection, then out of the terminal. */
static int connect_session(struct lz_daemon *d)
{
	const struct lz_settings *cfg = &d->opts.settings;

	if (d->takeover != NULL) {
		if (lz_takeover_attach(d->takeover, d->se, d->why, sizeof(d->why)) != 0) {
			lz_err("upgrade: %s", d->why);
			return -1;
		}
		d->taken_over = true;
		lz_linger_set_device(d->fs.linger, fuse_session_fd(d->se));
		/* The old daemon already left the terminal; a second fork would change our pid. */
		return cfg->foreground || chdir("/") == 0 ? 0 : -1;
	}
	if (fuse_session_mount(d->se, cfg->mountpoint) != 0)
		return -1;
	d->mounted = true;
	lz_linger_set_device(d->fs.linger, fuse_session_fd(d->se));
	/* Kept for a live upgrade, whose new process replays it into its session. */
	if (lz_upgrade_first_init(d->upgrade, d->se) != 0)
		return -1;
	/* The keeper left the terminal already; this process is its child and stays one. */
	if (lz_restart_keeper_fd() >= 0)
		return cfg->foreground ? 0 : leave_terminal();
	return fuse_daemonize(cfg->foreground) == 0 ? 0 : -1;
}

/* The session with the mount's connection; the tracker loaded before daemonizing. */
static int open_session(struct lz_daemon *d)
{
	bool failed;

	d->se = fuse_session_new(&d->opts.fuse_args, &lz_ops, sizeof(lz_ops), d);
	if (d->se == NULL)
		return -1; /* libfuse said why (e.g. an unknown option) */
	/* Before the mount exists, so a stop signal never finds the inherited disposition. */
	if (lz_daemon_set_signals(d) != 0)
		return -1;
	d->fs.forget_entry = forget_entry;
	d->fs.forget_ctx = d->se;
	/* Loaded before daemonizing, so bpf=on can still fail the mount command. */
	d->fs.track = lz_track_open(&d->fs, d->opts.settings.mountpoint, &failed);
	if (failed)
		return -1;
	return connect_session(d);
}

static void note_sources(void *ctx, unsigned sources)
{
	lz_inflight_note_sources(ctx, sources);
}

/*
 * Under a keeper: the source numbers the dead worker took stay taken (node
 * ids the kernel still holds must not come back meaning other files), and
 * ours are noted for the next worker.
 */
static void keep_sources(struct lz_daemon *d)
{
	unsigned kept = lz_inflight_sources(d->inflight);

	if (d->inflight == NULL)
		return;
	if (kept > 0 && lz_inode_reserve_sources(d->fs.inodes, kept) != 0) {
		lz_warn("restart: the workers before took %u node id sources; they are used again, "
			"so a node id the kernel kept may name another image's file",
			kept);
		lz_nodes_clear_sources(d->nodes); /* nor are images' node ids revived */
	}
	lz_inode_table_on_sources(d->fs.inodes, note_sources, d->inflight);
}

/* What the keeper said of itself, for status and the metrics. */
static void keeper_numbers(struct lz_fs *fs)
{
	const char *pid = getenv(LZ_KEEPER_PID_ENV), *restarts = getenv(LZ_RESTARTS_ENV);

	if (lz_restart_keeper_fd() < 0)
		return;
	fs->keeper_pid = pid != NULL ? atoi(pid) : 0;
	fs->restarts = restarts != NULL ? (unsigned)strtoul(restarts, NULL, 10) : 0;
}

/* Under a keeper, the records it keeps: what the worker before left in them is read now. */
static void open_records(struct lz_daemon *d)
{
	if (lz_restart_keeper_fd() < 0)
		return;
	d->inflight =
		lz_inflight_open(lz_restart_kept_record("inflight"), lz_restart_after_sigkill());
	int kept = lz_restart_kept_record("nodes");
	/* A fresh mount (the kept one had ended): the kernel holds none of those node ids. */
	if (kept >= 0 && d->takeover == NULL) {
		close(kept);
		kept = -1;
	}
	d->nodes = lz_nodes_open(kept);
}

/* The map now, as the record notes it: what its map indices number. */
static void note_map(struct lz_daemon *d)
{
	struct lz_map *map = lz_fs_map_hold(&d->fs);

	if (map != NULL)
		lz_nodes_note_map(d->nodes, &(struct lz_nodes_map){ .crc = map->crc,
								    .first = map->first_index,
								    .next = lz_map_next_index() });
	lz_map_release(map);
}

/*
 * Records the count of every node id of the underlay's root device, of an
 * image or of the map, what finds its file again, its map node, and which
 * image its source holds, for the next worker (nodes.h).
 */
static void record_node(void *ctx, const struct lz_inode *inode, uint64_t nlookup)
{
	struct lz_daemon *d = ctx;
	union lz_revive_handle h;
	unsigned source = lz_nodeid_source(inode->nodeid);
	struct lz_node_record r = { .nlookup = nlookup };

	if (source != 1 && inode->image == NULL && inode->kind != LZ_INODE_SYNTH &&
	    inode->kind != LZ_INODE_REMOTE)
		return;
	if (inode->image != NULL && nlookup > 0 &&
	    !lz_nodes_source_is(d->nodes, source, lz_image_name(inode->image))) {
		struct lz_image_file file;
		lz_image_file_id(inode->image, &file);
		lz_nodes_set_source(d->nodes, source, lz_image_name(inode->image), &file);
	}
	/* Under the table's lock: the index, not the node, which a reload may free. */
	uint64_t map_index = atomic_load(&inode->map_index);
	if (map_index != 0 && nlookup > 0) {
		r.map_index = map_index;
		note_map(d);
	}
	lz_nodes_set(d->nodes, inode->nodeid, &r, lz_revive_handle(inode, &h));
	const char *tree = atomic_load(&inode->tree); /* set once: set before, or not at all */
	if (inode->kind == LZ_INODE_REMOTE && nlookup > 0)
		lz_nodes_set_path(d->nodes, inode->nodeid, inode->remote_path);
	else if (tree != NULL && nlookup > 0)
		lz_nodes_set_path(d->nodes, inode->nodeid, tree);
}

/* What the kernel holds on NODEID from the workers before, as recorded (not yet an inode here). */
static uint64_t held_before(void *ctx, uint64_t nodeid)
{
	struct lz_node_record r;

	if (!lz_nodes_get(ctx, nodeid, &r, NULL))
		return 0;
	return r.nlookup;
}

static unsigned prior_source(void *ctx, struct lz_image *image)
{
	unsigned source = lz_nodes_image_source(ctx, lz_image_name(image));
	struct lz_image_file was, now;
	char name[LZ_NODES_NAME_MAX];

	if (source == 0 || !lz_nodes_source_image(ctx, source, name, &was))
		return 0;
	lz_image_file_id(image, &now);
	return memcmp(&was, &now, sizeof(now)) == 0 ? source : 0;
}

static void record_existing(void *ctx, struct lz_inode *inode)
{
	record_node(ctx, inode, inode->nlookup - inode->holds);
}

/*
 * The map as the worker before numbered it when it is the same one, else
 * above every index that worker gave: its node ids of mapped directories
 * then name the same directories, or none.
 */
static void number_map_as_before(struct lz_daemon *d)
{
	struct lz_map *map = atomic_load(&d->fs.map);
	struct lz_nodes_map before;

	if (map == NULL || !lz_nodes_noted_map(d->nodes, &before))
		return;
	if (before.crc == map->crc)
		lz_map_renumber(map, before.first, before.next);
	else
		lz_map_renumber(map, before.next, before.next);
}

/*
 * Node ids are recorded from now on (those a live upgrade handed over too);
 * after a crash, they are revived (lz_inode_of): the underlay's against its
 * root, an image's in the image resolved again, with the source it had.
 */
static void keep_nodes(struct lz_daemon *d)
{
	if (d->nodes == NULL)
		return;
	if (lz_nodes_kept(d->nodes))
		number_map_as_before(d);
	lz_inode_foreach(d->fs.inodes, record_existing, d);
	lz_inode_table_on_count(d->fs.inodes, record_node, d);
	if (!lz_nodes_kept(d->nodes))
		return;
	lz_inode_table_held_by(d->fs.inodes, held_before, d->nodes);
	d->fs.prior_source = prior_source;
	d->fs.prior_source_ctx = d->nodes;
	int root = lz_inode_path_get(d->fs.inodes, d->fs.root);
	if (root >= 0)
		d->revive_anchor = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lz_inode_path_put(d->fs.inodes, d->fs.root);
}

int lz_daemon_start(struct lz_daemon *d, int takeover_sock)
{
	d->revive_anchor = -1;
	if (choose_mount(d, takeover_sock) != 0)
		return -1;
	open_records(d);
	raise_fd_limit();
	preload_unwinder();
	if (open_core(d) != 0)
		return -1;
	keep_sources(d);
	keep_nodes(d);
	if (open_session(d) != 0)
		return -1;
	keeper_numbers(&d->fs);
	if (!d->opts.settings.foreground)
		lz_log_to_syslog();
	return 0;
}
