/*
 * What lazyfsctl shows: the daemon's state as JSON objects (status, stats,
 * images) and as Prometheus text (metrics). Numbers are read without
 * stopping anything; each is consistent on its own, not with the others.
 */
#include "config.h"
#include "control.h"
#include "core/fs.h"
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

	t->touched++;
	t->open_files += atomic_load(&image->open_files);
	t->pinned += atomic_load(&image->pins) > 0;
	pthread_mutex_lock(&image->lock);
	t->ready += image->state == LZ_IMAGE_READY;
	pthread_mutex_unlock(&image->lock);
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
	add_str(o, "remote", cfg->remote != NULL ? "set" : NULL); /* may hold secrets */
	add_str(o, "remote_mode",
		cfg->remote == NULL   ? NULL
		: cfg->remote_objects ? "objects"
				      : "images");
	add_str(o, "cache", cfg->cache);
	add_str(o, "bpf", atomic_load(&fs->track) != NULL ? "loaded" : "off");
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
	long long last = atomic_load(&image->last_use);

	add_str(o, "name", image->name);
	pthread_mutex_lock(&image->lock);
	add_str(o, "state", state_name(image->state));
	add_str(o, "backend",
		image->state == LZ_IMAGE_READY ? (image->sqfs != NULL ? "squashfuse" : "kernel")
					       : NULL);
	add_u64(o, "bytes", image->file_st.st_size > 0 ? (uint64_t)image->file_st.st_size : 0);
	pthread_mutex_unlock(&image->lock);
	add_str(o, "file", image->path);
	add_u64(o, "resolves", atomic_load(&image->resolves));
	add_u64(o, "open_files", atomic_load(&image->open_files));
	add_u64(o, "pins", atomic_load(&image->pins));
	json_object_object_add(o, "idle_s", last > 0 ? json_object_new_int64(c->now - last) : NULL);
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

struct json_object *lz_report_images(struct lz_fs *fs)
{
	struct images_ctx c = { json_object_new_array(), (long long)lz_clock_s(CLOCK_MONOTONIC) };

	if (fs->images != NULL)
		lz_images_foreach(fs->images, image_entry, &c);
	json_object_array_sort(c.list, by_name);
	return c.list;
}

struct json_object *lz_report_stats(struct lz_fs *fs)
{
	struct json_object *o = json_object_new_object(), *sub;

	if (fs->images != NULL) {
		struct lz_images_stats st;
		lz_images_stats(fs->images, &st);
		sub = json_object_new_object();
		add_str(sub, "backend", backend_name(st.backend));
		add_u64(sub, "resolved", st.resolved);
		add_u64(sub, "failed_served_underlay", st.failed);
		json_object_object_add(o, "images", sub);
	}
	if (fs->remote != NULL && fs->remote->stats != NULL) {
		struct lz_source_stats st;
		fs->remote->stats(fs->remote->ctx, &st);
		sub = json_object_new_object();
		add_u64(sub, "objects", st.objects);
		add_u64(sub, "bytes", st.bytes);
		add_u64(sub, "quota", st.quota);
		add_u64(sub, "open_objects", st.open_objects);
		add_u64(sub, "pinned", st.pinned);
		add_u64(sub, "hits", st.hits);
		add_u64(sub, "misses", st.misses);
		add_u64(sub, "fills", st.fills);
		add_u64(sub, "fill_failures", st.fill_failures);
		add_u64(sub, "evictions", st.evictions);
		add_u64(sub, "fetches", st.fetches);
		add_u64(sub, "fetch_failures", st.fetch_failures);
		add_u64(sub, "fetch_bytes", st.fetch_bytes);
		json_object_object_add(o, "fetch_seconds",
				       json_object_new_double((double)st.fetch_ns / 1e9));
		json_object_object_add(o, "cache", sub);
	}
	if (fs->prefetch != NULL) {
		struct lz_prefetch_stats st;
		lz_prefetch_stats(fs->prefetch, &st);
		sub = json_object_new_object();
		add_u64(sub, "working_sets_written", st.recorded);
		add_u64(sub, "started", st.started);
		add_u64(sub, "files", st.files);
		add_u64(sub, "bytes", st.bytes);
		add_u64(sub, "cancelled", st.cancelled);
		add_u64(sub, "bad_lines", st.bad_lines);
		json_object_object_add(o, "prefetch", sub);
	}
	struct lz_track_stats *ts = malloc(sizeof(*ts));
	if (ts != NULL && lz_track_stats(fs, ts) == 0) {
		sub = json_object_new_object();
		add_u64(sub, "events", ts->bpf.events);
		add_u64(sub, "hits", ts->bpf.hits);
		add_u64(sub, "suppressed", ts->bpf.suppressed);
		add_u64(sub, "lost", ts->bpf.lost);
		add_u64(sub, "too_long", ts->bpf.too_long);
		add_u64(sub, "resolved_early", ts->early);
		add_u64(sub, "nothing_to_resolve", ts->absent);
		add_u64(sub, "dropped", ts->dropped);
		if (ts->delays.total > 0)
			json_object_object_add(
				sub, "event_to_lookup_mean_us",
				json_object_new_double((double)ts->delays.sum_ns / 1e3 /
						       (double)ts->delays.total));
		json_object_object_add(o, "tracker", sub);
		if (ts->bpf.fuse_connection != 0) {
			sub = json_object_new_object();
			for (unsigned op = 0; op <= LZ_TRACKER_FUSE_OPS; op++) {
				const struct lz_tracker_fuse_op *f = &ts->bpf.fuse_ops[op];
				if (f->count == 0)
					continue;
				struct json_object *one = json_object_new_object();
				add_u64(one, "count", f->count);
				add_u64(one, "errors", f->errors);
				json_object_object_add(
					one, "mean_us",
					json_object_new_double(f->ended
								       ? (double)f->total_ns / 1e3 /
										 (double)f->ended
								       : 0.0));
				json_object_object_add(sub, lz_fuse_opcode_name(op), one);
			}
			json_object_object_add(o, "fuse_requests", sub);
		}
	}
	free(ts);
	return o;
}

/* One Prometheus sample; LABEL may be NULL. */
static void metric(FILE *f, const char *name, const char *label, double value)
{
	if (label != NULL)
		fprintf(f, "%s{%s} %.17g\n", name, label, value);
	else
		fprintf(f, "%s %.17g\n", name, value);
}

static void help(FILE *f, const char *name, const char *type, const char *text)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* One metric with its HELP and TYPE lines. */
static void put(FILE *f, const char *name, const char *type, const char *text, const char *label,
		double value)
{
	help(f, name, type, text);
	metric(f, name, label, value);
}

void lz_report_metrics(struct lz_fs *fs, FILE *f)
{
	char label[96];

	put(f, "lazyfs_start_time_seconds", "gauge", "When the daemon started (Unix time).", NULL,
	    (double)fs->started.tv_sec);
	put(f, "lazyfs_backing_files_kept", "gauge",
	    "Passthrough backing files kept registered for files nobody has open.", NULL,
	    lz_linger_count(fs->linger));
	if (fs->images != NULL) {
		struct lz_images_stats st;
		struct image_totals t = { 0 };
		lz_images_stats(fs->images, &st);
		lz_images_foreach(fs->images, count_image, &t);
		snprintf(label, sizeof(label), "backend=\"%s\"", backend_name(st.backend));
		put(f, "lazyfs_image_resolutions_total", "counter", "Images mounted, by backend.",
		    label, (double)st.resolved);
		put(f, "lazyfs_image_failures_total", "counter",
		    "Image resolves that failed; the underlay was served instead (fail open).",
		    label, (double)st.failed);
		put(f, "lazyfs_images_ready", "gauge", "Images mounted now.", NULL, t.ready);
		put(f, "lazyfs_images_open_files", "gauge", "Files open on images now.", NULL,
		    t.open_files);
	}
	if (fs->remote != NULL && fs->remote->stats != NULL) {
		struct lz_source_stats st;
		fs->remote->stats(fs->remote->ctx, &st);
		put(f, "lazyfs_cache_bytes", "gauge", "Bytes of objects in the cache.", NULL,
		    (double)st.bytes);
		put(f, "lazyfs_cache_quota_bytes", "gauge", "The cache quota.", NULL,
		    (double)st.quota);
		put(f, "lazyfs_cache_objects", "gauge", "Objects in the cache.", NULL,
		    (double)st.objects);
		put(f, "lazyfs_cache_evictions_total", "counter", "Objects evicted.", NULL,
		    (double)st.evictions);
		put(f, "lazyfs_cache_hits_total", "counter", "Opens answered from the cache.", NULL,
		    (double)st.hits);
		put(f, "lazyfs_cache_misses_total", "counter", "Opens that had to fetch.", NULL,
		    (double)st.misses);
		put(f, "lazyfs_fetches_total", "counter", "Objects fetched through rclone.", NULL,
		    (double)st.fetches);
		put(f, "lazyfs_fetch_failures_total", "counter", "Fetches that failed.", NULL,
		    (double)st.fetch_failures);
		put(f, "lazyfs_fetch_bytes_total", "counter", "Bytes fetched.", NULL,
		    (double)st.fetch_bytes);
		put(f, "lazyfs_fetch_seconds_total", "counter", "Time spent fetching.", NULL,
		    (double)st.fetch_ns / 1e9);
	}
	if (fs->prefetch != NULL) {
		struct lz_prefetch_stats st;
		lz_prefetch_stats(fs->prefetch, &st);
		put(f, "lazyfs_prefetch_files_total", "counter", "Files prefetched.", NULL,
		    (double)st.files);
		put(f, "lazyfs_prefetch_bytes_total", "counter", "Bytes prefetched.", NULL,
		    (double)st.bytes);
	}
	struct lz_track_stats *ts = malloc(sizeof(*ts));
	if (ts != NULL && lz_track_stats(fs, ts) == 0) {
		put(f, "lazyfs_bpf_events_total", "counter",
		    "Cold entries reported by the tracker.", NULL, (double)ts->bpf.events);
		put(f, "lazyfs_bpf_hits_total", "counter",
		    "Opens of resolved entries, in the kernel.", NULL, (double)ts->bpf.hits);
		put(f, "lazyfs_bpf_lost_total", "counter", "Events lost (ring buffer full).", NULL,
		    (double)ts->bpf.lost);
		put(f, "lazyfs_early_resolves_total", "counter", "Entries resolved from an event.",
		    NULL, (double)ts->early);
		if (ts->bpf.fuse_connection != 0) {
			help(f, "lazyfs_fuse_requests_total", "counter",
			     "FUSE requests, by opcode.");
			for (unsigned op = 0; op <= LZ_TRACKER_FUSE_OPS; op++)
				if (ts->bpf.fuse_ops[op].count > 0) {
					snprintf(label, sizeof(label), "op=\"%s\"",
						 lz_fuse_opcode_name(op));
					metric(f, "lazyfs_fuse_requests_total", label,
					       (double)ts->bpf.fuse_ops[op].count);
				}
			help(f, "lazyfs_fuse_request_duration_seconds", "histogram",
			     "Time from sending a FUSE request to its answer.");
			uint64_t cum = 0;
			for (unsigned b = 0; b < LZ_TRACKER_LAT_BUCKETS; b++) {
				cum += ts->bpf.fuse_all.hist[b];
				if (b < 9)
					continue; /* under 1 µs: counted in the first bucket shown
						   */
				snprintf(label, sizeof(label), "le=\"%.9g\"",
					 (double)(2ull << b) / 1e9);
				metric(f, "lazyfs_fuse_request_duration_seconds_bucket", label,
				       (double)cum);
			}
			metric(f, "lazyfs_fuse_request_duration_seconds_bucket", "le=\"+Inf\"",
			       (double)ts->bpf.fuse_all.ended);
			metric(f, "lazyfs_fuse_request_duration_seconds_sum", NULL,
			       (double)ts->bpf.fuse_all.total_ns / 1e9);
			metric(f, "lazyfs_fuse_request_duration_seconds_count", NULL,
			       (double)ts->bpf.fuse_all.ended);
		}
	}
	free(ts);
}
