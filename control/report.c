/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lazyfsctl status and images: what the mount is and what its images are
 * doing now. The numbers (stats, metrics) are metrics.c's.
 */
#include "config.h"
#include "report.h"
#include "fscore/fs.h"
#include "common/clock.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *backend_name(enum lz_image_backend b)
{
	return b == LZ_IMAGE_SQUASHFUSE ? "squashfuse" : "kernel";
}

static const char *state_name(enum lz_image_state s)
{
	switch (s) {
	case LZ_IMAGE_READY:
		return "ready";
	case LZ_IMAGE_RESOLVING:
		return "resolving";
	case LZ_IMAGE_FAILED:
		return "failed";
	default:
		return "closed";
	}
}

struct image_totals {
	unsigned touched, ready, open_files, pinned;
};

static void count_image(void *ctx, struct lz_image *image)
{
	struct image_totals *t = ctx;
	struct lz_image_info info;

	lz_image_info(image, &info);
	t->touched++;
	t->open_files += info.open_files;
	t->pinned += info.pins > 0;
	t->ready += info.state == LZ_IMAGE_READY;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v != NULL ? json_object_new_string(v) : NULL);
}

struct json_object *lz_report_status(struct lz_fs *fs)
{
	const struct lz_settings *cfg = fs->settings;
	struct json_object *o = json_object_new_object();
	struct image_totals t = { 0 };
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	add_str(o, "mountpoint", cfg->mountpoint);
	add_u64(o, "pid", (uint64_t)getpid());
	add_str(o, "version", PACKAGE_VERSION);
	add_u64(o, "uptime_s", (uint64_t)(now.tv_sec - fs->started.tv_sec));
	add_str(o, "open_mode", cfg->open_mode == LZ_OPEN_CACHED ? "cached" : "passthrough");
	add_str(o, "underlay", cfg->underlay != NULL ? cfg->underlay : cfg->mountpoint);
	add_str(o, "images_dir", cfg->images);
	add_str(o, "map", cfg->map);
	struct lz_map *map = lz_fs_map_hold(fs);
	if (map != NULL) {
		add_u64(o, "map_images", map->images);
		add_u64(o, "map_bad_lines", map->bad_lines);
		add_u64(o, "maps_live", lz_map_live());
	}
	lz_map_release(map);
	if (fs->pins != NULL) {
		struct lz_pins_stats ps;
		struct json_object *w = json_object_new_object();
		lz_pins_stats(fs->pins, &ps);
		add_u64(w, "listed", ps.listed);
		add_u64(w, "pinned", ps.pinned);
		add_u64(w, "failed", ps.failed);
		json_object_object_add(w, "running", json_object_new_boolean(ps.running));
		json_object_object_add(o, "warm", w);
	}
	add_str(o, "remote", cfg->remote != NULL ? "set" : NULL); /* may hold secrets */
	add_str(o, "remote_mode",
		cfg->remote == NULL   ? NULL
		: cfg->remote_objects ? "objects"
				      : "images");
	add_str(o, "cache", cfg->cache);
	add_str(o, "bpf", lz_track_loaded(fs->track) ? "loaded" : "off");
	add_str(o, "prefetch", fs->prefetch != NULL ? "on" : "off");
	json_object_object_add(o, "passthrough",
			       json_object_new_boolean(atomic_load(&fs->passthrough)));
	if (fs->images != NULL) {
		struct lz_images_stats st;
		lz_images_stats(fs->images, &st);
		lz_images_foreach(fs->images, count_image, &t);
		add_str(o, "backend", backend_name(st.backend));
		add_u64(o, "images_touched", t.touched);
		add_u64(o, "images_ready", t.ready);
		add_u64(o, "images_pinned", t.pinned);
		add_u64(o, "open_files", t.open_files);
	}
	add_u64(o, "inodes", lz_inode_count(fs->inodes));
	add_u64(o, "backing_files_kept", lz_linger_count(fs->linger));
	json_object_object_add(o, "keeper_pid",
			       fs->keeper_pid > 0 ? json_object_new_int(fs->keeper_pid) : NULL);
	add_u64(o, "restarts", fs->restarts);
	add_u64(o, "poisoned_requests", atomic_load(&fs->poisoned));
	add_u64(o, "revived_nodes", atomic_load(&fs->revived));
	add_u64(o, "forgotten", atomic_load(&fs->forgotten));
	return o;
}

struct images_ctx {
	struct json_object *list;
	long long now;
};

static void image_entry(void *ctx, struct lz_image *image)
{
	struct images_ctx *c = ctx;
	struct json_object *o = json_object_new_object();
	struct lz_image_info info;

	lz_image_info(image, &info);
	add_str(o, "name", info.name);
	add_str(o, "state", state_name(info.state));
	add_str(o, "backend", info.state == LZ_IMAGE_READY ? backend_name(info.backend) : NULL);
	add_u64(o, "bytes", (uint64_t)info.bytes);
	add_str(o, "file", info.path[0] != '\0' ? info.path : NULL);
	add_str(o, "trust", info.trust[0] != '\0' ? info.trust : NULL);
	add_u64(o, "resolves", info.resolves);
	add_u64(o, "open_files", info.open_files);
	add_u64(o, "pins", info.pins);
	json_object_object_add(o, "idle_s",
			       info.last_use > 0 ? json_object_new_int64(c->now - info.last_use)
						 : NULL);
	json_object_array_add(c->list, o);
}

static int by_name(const void *a, const void *b)
{
	const struct json_object *x = *(const struct json_object *const *)a;
	const struct json_object *y = *(const struct json_object *const *)b;
	struct json_object *nx, *ny;

	json_object_object_get_ex(x, "name", &nx);
	json_object_object_get_ex(y, "name", &ny);
	return strcmp(json_object_get_string(nx), json_object_get_string(ny));
}

double lz_report_stall_s(const struct lz_fs *fs)
{
	double bound = fs->settings->resolve_timeout;

	return bound > 0 ? bound : 60.0; /* unbounded waits are still worth showing */
}

struct stalled_ctx {
	struct json_object *list;
	double after;
};

/* The entry of image KEY in the list, or NULL. */
static struct json_object *entry_named(struct json_object *list, const char *key)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *o = json_object_array_get_idx(list, i), *name;
		if (json_object_object_get_ex(o, "name", &name) &&
		    strcmp(json_object_get_string(name), key) == 0)
			return o;
	}
	return NULL;
}

/*
 * A resolve waiting past the stall bound: its image shows as "stalled" (one
 * whose file could not even be opened yet is not in the registry: added).
 */
static void stalled_entry(void *ctx, const char *key, double seconds)
{
	struct stalled_ctx *c = ctx;
	struct json_object *o;

	if (seconds <= c->after)
		return;
	o = entry_named(c->list, key);
	if (o == NULL) {
		o = json_object_new_object();
		add_str(o, "name", key);
		json_object_array_add(c->list, o);
	}
	add_str(o, "state", "stalled");
	json_object_object_add(o, "stalled_s", json_object_new_int64((int64_t)seconds));
}

struct json_object *lz_report_images(struct lz_fs *fs)
{
	struct images_ctx c = { json_object_new_array(), (long long)lz_clock_s(CLOCK_MONOTONIC) };
	struct stalled_ctx stalled = { c.list, lz_report_stall_s(fs) };

	if (fs->images != NULL) {
		lz_images_foreach(fs->images, image_entry, &c);
		lz_images_foreach_pending(fs->images, stalled_entry, &stalled);
	}
	json_object_array_sort(c.list, by_name);
	return c.list;
}
