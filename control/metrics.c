/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The daemon's numbers, from one list: each section (images, cache,
 * prefetch, inodes, directories, deferred lookups, tracker) is a table of its numbers, and the same
 * table writes `lazyfsctl stats` (a JSON object per section) and the Prometheus text, so the two
 * cannot drift. A row names its key in the stats, its Prometheus metric, or both.
 */
#include "config.h"
#include "report.h"
#include "fscore/fs.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One number of a section: a uint64_t at OFFSET in the section's numbers. */
struct metric {
	const char *key;  /* in the section's stats object, or NULL */
	const char *name; /* the Prometheus metric, or NULL */
	const char *type; /* "counter" or "gauge" */
	const char *help;
	size_t offset;
	bool seconds;  /* nanoseconds, shown as seconds */
	bool labelled; /* Prometheus: with the section's label (the image backend) */
};

struct section {
	const char *key; /* the stats object; the Prometheus names stand alone */
	const struct metric *metrics;
	size_t count;
};

#define N(t) (sizeof(t) / sizeof((t)[0]))

/* A row: in the stats as KEY, in Prometheus as NAME (either may be NULL). */
#define ROW(T, KEY, NAME, TYPE, HELP, FIELD, ...)                                                  \
	{                                                                                          \
		.key = KEY, .name = NAME, .type = TYPE, .help = HELP,                              \
		.offset = offsetof(T, FIELD), __VA_ARGS__                                          \
	}
/* Only in the stats. */
#define STAT(T, KEY, FIELD) ROW(T, KEY, NULL, NULL, NULL, FIELD)

/* images= and map=: the registry's numbers and those of its images now. */
struct image_numbers {
	uint64_t resolved, failed, ready, open_files;
};
#define IMG(...) ROW(struct image_numbers, __VA_ARGS__)
static const struct metric image_metrics[] = {
	IMG("resolved", "lazyfs_image_resolutions_total", "counter", "Images mounted, by backend.",
	    resolved, .labelled = true),
	IMG("failed_served_underlay", "lazyfs_image_failures_total", "counter",
	    "Image resolves that failed; the underlay was served instead (fail open).", failed,
	    .labelled = true),
	IMG(NULL, "lazyfs_images_ready", "gauge", "Images mounted now.", ready),
	IMG(NULL, "lazyfs_images_open_files", "gauge", "Files open on images now.", open_files),
};

/* remote=: the cache behind the source, and its fetches. */
#define CACHE(...) ROW(struct lz_source_stats, __VA_ARGS__)
static const struct metric cache_metrics[] = {
	CACHE("objects", "lazyfs_cache_objects", "gauge", "Objects in the cache.", objects),
	CACHE("bytes", "lazyfs_cache_bytes", "gauge", "Bytes of objects in the cache.", bytes),
	CACHE("quota", "lazyfs_cache_quota_bytes", "gauge", "The cache quota.", quota),
	STAT(struct lz_source_stats, "open_objects", open_objects),
	STAT(struct lz_source_stats, "pinned", pinned),
	CACHE("hits", "lazyfs_cache_hits_total", "counter", "Opens answered from the cache.", hits),
	CACHE("misses", "lazyfs_cache_misses_total", "counter", "Opens that had to fetch.", misses),
	STAT(struct lz_source_stats, "fills", fills),
	STAT(struct lz_source_stats, "fill_failures", fill_failures),
	CACHE("evictions", "lazyfs_cache_evictions_total", "counter", "Objects evicted.",
	      evictions),
	CACHE("fetches", "lazyfs_fetches_total", "counter", "Objects fetched through rclone.",
	      fetches),
	CACHE("fetch_failures", "lazyfs_fetch_failures_total", "counter", "Fetches that failed.",
	      fetch_failures),
	CACHE("fetch_bytes", "lazyfs_fetch_bytes_total", "counter", "Bytes fetched.", fetch_bytes),
	CACHE("streams", "lazyfs_streams_total", "counter",
	      "Cold objects streamed: read while they were fetched (stream=on).", streams),
	CACHE("stream_failures", "lazyfs_stream_failures_total", "counter",
	      "Streamed fetches that failed (the fetch died or the object failed its check).",
	      stream_failures),
	CACHE("fetch_seconds", "lazyfs_fetch_seconds_total", "counter", "Time spent fetching.",
	      fetch_ns, .seconds = true),
	CACHE("remote_reachable", "lazyfs_remote_up", "gauge",
	      "1 when the last call to the remote got an answer, 0 when it failed or timed out.",
	      reachable),
};

/* prefetch=: working sets recorded and read ahead. */
#define PRE(...) ROW(struct lz_prefetch_stats, __VA_ARGS__)
static const struct metric prefetch_metrics[] = {
	STAT(struct lz_prefetch_stats, "working_sets_written", recorded),
	STAT(struct lz_prefetch_stats, "started", started),
	PRE("files", "lazyfs_prefetch_files_total", "counter", "Files prefetched.", files),
	PRE("bytes", "lazyfs_prefetch_bytes_total", "counter", "Bytes prefetched.", bytes),
	STAT(struct lz_prefetch_stats, "cancelled", cancelled),
	STAT(struct lz_prefetch_stats, "bad_lines", bad_lines),
};

/* bpf=: the open tracker's events and what the daemon did with them. */
struct tracker_numbers {
	uint64_t events, hits, suppressed, lost, too_long, early, absent, dropped, ignored;
};
#define TRK(...) ROW(struct tracker_numbers, __VA_ARGS__)
static const struct metric tracker_metrics[] = {
	TRK("events", "lazyfs_bpf_events_total", "counter", "Cold entries reported by the tracker.",
	    events),
	TRK("hits", "lazyfs_bpf_hits_total", "counter", "Opens of resolved entries, in the kernel.",
	    hits),
	STAT(struct tracker_numbers, "suppressed", suppressed),
	TRK("lost", "lazyfs_bpf_lost_total", "counter", "Events lost (ring buffer full).", lost),
	STAT(struct tracker_numbers, "too_long", too_long),
	TRK("resolved_early", "lazyfs_early_resolves_total", "counter",
	    "Entries resolved from an event.", early),
	STAT(struct tracker_numbers, "nothing_to_resolve", absent),
	STAT(struct tracker_numbers, "dropped", dropped),
	TRK("ignored", "lazyfs_bpf_ignored_total", "counter",
	    "Events of processes that do not see the mount or may not search it.", ignored),
};

/* Inodes the kernel holds, and the backing descriptors they keep open (bounded). */
struct inode_numbers {
	uint64_t inodes;
	struct lz_pathfds_stats fds;
};
#define INO(...) ROW(struct inode_numbers, __VA_ARGS__)
static const struct metric inode_metrics[] = {
	INO("count", "lazyfs_inodes", "gauge", "Inodes the kernel holds.", inodes),
	INO("path_fds", "lazyfs_path_fds", "gauge",
	    "Backing descriptors open for inodes (bounded; pinned ones aside).", fds.open),
	STAT(struct inode_numbers, "path_fds_max", fds.cap),
	INO("pinned", "lazyfs_path_fds_pinned", "gauge",
	    "Backing descriptors never closed (no file handle on their filesystem).", fds.pinned),
	STAT(struct inode_numbers, "anchors", fds.anchors),
	STAT(struct inode_numbers, "closed_for_room", fds.closed),
	INO("reopened", "lazyfs_path_fd_reopens_total", "counter",
	    "Backing files opened again by their file handle.", fds.reopened),
	INO("stale", "lazyfs_path_fd_stale_total", "counter",
	    "File handles that no longer opened (the file was gone): answered ESTALE.", fds.stale),
};

/* Open directories: what holding directory handles costs the daemon. */
#define DIRS(...) ROW(struct lz_listings_stats, __VA_ARGS__)
static const struct metric dir_metrics[] = {
	DIRS("open", "lazyfs_dirs_open", "gauge", "Directories open now.", open),
	DIRS("streams", "lazyfs_dir_streams", "gauge",
	     "Backing directory streams open now (bounded, whatever the directories open).",
	     streams),
	STAT(struct lz_listings_stats, "unions", unions),
	STAT(struct lz_listings_stats, "union_entries", union_entries),
	DIRS("union_bytes", "lazyfs_dir_listing_bytes", "gauge",
	     "Memory kept for the listings of open directories (listing_max caps it).",
	     union_bytes),
	DIRS("union_evictions", "lazyfs_dir_listing_evictions_total", "counter",
	     "Listings of open directories evicted past listing_max (taken again when read).",
	     union_evictions),
};

/* Lookups of images not mounted yet: off the FUSE threads, bounded by resolve_timeout. */
struct deferred_numbers {
	uint64_t waiting, threads, stalled, deferred, timed_out, interrupted, refused;
};
#define DEF(...) ROW(struct deferred_numbers, __VA_ARGS__)
static const struct metric deferred_metrics[] = {
	DEF("waiting", "lazyfs_lookups_waiting", "gauge",
	    "Lookups waiting for an image to resolve, off the FUSE threads.", waiting),
	DEF("threads", "lazyfs_resolve_threads", "gauge",
	    "Threads resolving images for waiting lookups (at most 256).", threads),
	DEF("stalled", "lazyfs_images_stalled", "gauge",
	    "Image resolves waiting longer than resolve_timeout (a store that does not answer).",
	    stalled),
	DEF("total", "lazyfs_lookups_deferred_total", "counter",
	    "Lookups that waited for an image, and reads for a streamed object's bytes, off the "
	    "FUSE threads.",
	    deferred),
	DEF("timed_out", "lazyfs_resolve_timeouts_total", "counter",
	    "Lookups answered EIO because their image did not resolve within resolve_timeout.",
	    timed_out),
	DEF("interrupted", "lazyfs_lookups_interrupted_total", "counter",
	    "Waiting lookups answered EINTR: the caller was interrupted or killed.", interrupted),
	DEF("refused", "lazyfs_lookups_refused_total", "counter",
	    "Lookups answered EAGAIN: 65536 were waiting already.", refused),
};

static const struct section images_section = { "images", image_metrics, N(image_metrics) };
static const struct section cache_section = { "cache", cache_metrics, N(cache_metrics) };
static const struct section prefetch_section = { "prefetch", prefetch_metrics,
						 N(prefetch_metrics) };
static const struct section tracker_section = { "tracker", tracker_metrics, N(tracker_metrics) };
static const struct section dir_section = { "directories", dir_metrics, N(dir_metrics) };
static const struct section inode_section = { "inodes", inode_metrics, N(inode_metrics) };
static const struct section deferred_section = { "deferred", deferred_metrics,
						 N(deferred_metrics) };

static double value_of(const struct metric *m, const void *numbers)
{
	uint64_t v;

	memcpy(&v, (const char *)numbers + m->offset, sizeof(v));
	return m->seconds ? (double)v / 1e9 : (double)v;
}

/* The section's stats object, its numbers added to O (made when NULL). */
static struct json_object *section_json(const struct section *s, const void *numbers,
					struct json_object *o)
{
	if (o == NULL)
		o = json_object_new_object();
	for (size_t i = 0; i < s->count; i++) {
		const struct metric *m = &s->metrics[i];
		if (m->key == NULL)
			continue;
		json_object_object_add(
			o, m->key,
			m->seconds ? json_object_new_double(value_of(m, numbers))
				   : json_object_new_uint64((uint64_t)value_of(m, numbers)));
	}
	return o;
}

/* One Prometheus sample; LABEL may be NULL. */
static void sample(FILE *f, const char *name, const char *label, double value)
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

/* The section's Prometheus metrics; LABEL goes on the labelled ones. */
static void section_text(FILE *f, const struct section *s, const void *numbers, const char *label)
{
	for (size_t i = 0; i < s->count; i++) {
		const struct metric *m = &s->metrics[i];
		if (m->name == NULL)
			continue;
		help(f, m->name, m->type, m->help);
		sample(f, m->name, m->labelled ? label : NULL, value_of(m, numbers));
	}
}

static const char *backend_name(enum lz_image_backend b)
{
	return b == LZ_IMAGE_SQUASHFUSE ? "squashfuse" : "kernel";
}

static void count_image(void *ctx, struct lz_image *image)
{
	struct image_numbers *n = ctx;
	struct lz_image_info info;

	lz_image_info(image, &info);
	n->open_files += info.open_files;
	n->ready += info.state == LZ_IMAGE_READY;
}

static void image_numbers(struct lz_fs *fs, struct image_numbers *n, enum lz_image_backend *backend)
{
	struct lz_images_stats st;

	memset(n, 0, sizeof(*n));
	lz_images_stats(fs->images, &st);
	lz_images_foreach(fs->images, count_image, n);
	n->resolved = st.resolved;
	n->failed = st.failed;
	*backend = st.backend;
}

struct stall_count {
	double after;
	uint64_t stalled;
};

static void count_stalled(void *ctx, const char *key, double seconds)
{
	struct stall_count *c = ctx;

	(void)key;
	c->stalled += seconds > c->after;
}

static void deferred_numbers(struct lz_fs *fs, struct deferred_numbers *n)
{
	struct stall_count c = { lz_report_stall_s(fs), 0 };

	lz_images_foreach_pending(fs->images, count_stalled, &c);
	*n = (struct deferred_numbers){
		.waiting = atomic_load(&fs->waits.waiting),
		.threads = atomic_load(&fs->waits.threads),
		.stalled = c.stalled,
		.deferred = atomic_load(&fs->waits.deferred),
		.timed_out = atomic_load(&fs->waits.timed_out),
		.interrupted = atomic_load(&fs->waits.interrupted),
		.refused = atomic_load(&fs->waits.refused),
	};
}

static void tracker_numbers(const struct lz_track_stats *ts, struct tracker_numbers *n)
{
	*n = (struct tracker_numbers){
		.events = ts->bpf.events,
		.hits = ts->bpf.hits,
		.suppressed = ts->bpf.suppressed,
		.lost = ts->bpf.lost,
		.too_long = ts->bpf.too_long,
		.early = ts->early,
		.absent = ts->absent,
		.dropped = ts->dropped,
		.ignored = ts->ignored,
	};
}

static double mean_us(uint64_t total_ns, uint64_t n)
{
	return n > 0 ? (double)total_ns / 1e3 / (double)n : 0.0;
}

/* The FUSE requests the tracker counted, by opcode (stats). */
static struct json_object *fuse_requests_json(const struct lz_tracker_stats *bpf)
{
	struct json_object *o = json_object_new_object();

	for (unsigned op = 0; op <= LZ_TRACKER_FUSE_OPS; op++) {
		const struct lz_tracker_fuse_op *f = &bpf->fuse_ops[op];
		if (f->count == 0)
			continue;
		struct json_object *one = json_object_new_object();
		json_object_object_add(one, "count", json_object_new_uint64(f->count));
		json_object_object_add(one, "errors", json_object_new_uint64(f->errors));
		json_object_object_add(one, "mean_us",
				       json_object_new_double(mean_us(f->total_ns, f->ended)));
		json_object_object_add(o, lz_fuse_opcode_name(op), one);
	}
	return o;
}

/* The same as Prometheus: counts by opcode, and one latency histogram. */
static void fuse_requests_text(FILE *f, const struct lz_tracker_stats *bpf)
{
	char label[96];
	uint64_t cum = 0;

	help(f, "lazyfs_fuse_requests_total", "counter", "FUSE requests, by opcode.");
	for (unsigned op = 0; op <= LZ_TRACKER_FUSE_OPS; op++)
		if (bpf->fuse_ops[op].count > 0) {
			snprintf(label, sizeof(label), "op=\"%s\"", lz_fuse_opcode_name(op));
			sample(f, "lazyfs_fuse_requests_total", label,
			       (double)bpf->fuse_ops[op].count);
		}
	help(f, "lazyfs_fuse_request_duration_seconds", "histogram",
	     "Time from sending a FUSE request to its answer.");
	for (unsigned b = 0; b < LZ_TRACKER_LAT_BUCKETS; b++) {
		cum += bpf->fuse_all.hist[b];
		if (b < 9)
			continue; /* under 1 µs: counted in the first bucket shown */
		snprintf(label, sizeof(label), "le=\"%.9g\"", (double)(2ull << b) / 1e9);
		sample(f, "lazyfs_fuse_request_duration_seconds_bucket", label, (double)cum);
	}
	sample(f, "lazyfs_fuse_request_duration_seconds_bucket", "le=\"+Inf\"",
	       (double)bpf->fuse_all.ended);
	sample(f, "lazyfs_fuse_request_duration_seconds_sum", NULL,
	       (double)bpf->fuse_all.total_ns / 1e9);
	sample(f, "lazyfs_fuse_request_duration_seconds_count", NULL, (double)bpf->fuse_all.ended);
}

/* The tracker's section and FUSE requests in stats; TS is loaded. */
static void tracker_json(struct json_object *o, const struct lz_track_stats *ts)
{
	struct tracker_numbers n;
	struct json_object *sub;

	tracker_numbers(ts, &n);
	sub = section_json(&tracker_section, &n, NULL);
	if (ts->delays.total > 0)
		json_object_object_add(
			sub, "event_to_lookup_mean_us",
			json_object_new_double(mean_us(ts->delays.sum_ns, ts->delays.total)));
	json_object_object_add(o, tracker_section.key, sub);
	if (ts->bpf.fuse_connection != 0)
		json_object_object_add(o, "fuse_requests", fuse_requests_json(&ts->bpf));
}

/* Per backend: count, mean and the bucket counts of cold resolves that worked. */
static struct json_object *resolve_latency_json(struct lz_fs *fs)
{
	static const char *const names[] = { "kernel", "squashfuse" };
	struct json_object *o = json_object_new_object();
	struct lz_images_stats st;

	lz_images_stats(fs->images, &st);
	for (int b = 0; b < 2; b++) {
		const struct lz_resolve_latency *l = &st.latency[b];
		struct json_object *one = json_object_new_object(),
				   *buckets = json_object_new_array();
		for (size_t k = 0; k < LZ_RESOLVE_BUCKETS; k++)
			json_object_array_add(buckets, json_object_new_uint64(l->buckets[k]));
		json_object_object_add(one, "count", json_object_new_uint64(l->count));
		json_object_object_add(
			one, "mean_ms",
			json_object_new_double(l->count ? l->sum_s * 1e3 / (double)l->count : 0));
		json_object_object_add(one, "buckets", buckets);
		json_object_object_add(o, names[b], one);
	}
	return o;
}

struct json_object *lz_report_stats(struct lz_fs *fs)
{
	struct json_object *o = json_object_new_object();

	if (fs->images != NULL) {
		struct image_numbers n;
		enum lz_image_backend backend;
		struct json_object *sub = json_object_new_object();
		image_numbers(fs, &n, &backend);
		json_object_object_add(sub, "backend",
				       json_object_new_string(backend_name(backend)));
		json_object_object_add(sub, "resolve_latency", resolve_latency_json(fs));
		json_object_object_add(o, images_section.key,
				       section_json(&images_section, &n, sub));
		struct deferred_numbers dn;
		deferred_numbers(fs, &dn);
		json_object_object_add(o, deferred_section.key,
				       section_json(&deferred_section, &dn, NULL));
	}
	if (fs->remote != NULL && fs->remote->stats != NULL) {
		struct lz_source_stats st;
		fs->remote->stats(fs->remote->ctx, &st);
		json_object_object_add(o, cache_section.key,
				       section_json(&cache_section, &st, NULL));
	}
	if (fs->prefetch != NULL) {
		struct lz_prefetch_stats st;
		lz_prefetch_stats(fs->prefetch, &st);
		json_object_object_add(o, prefetch_section.key,
				       section_json(&prefetch_section, &st, NULL));
	}
	struct lz_listings_stats dirs;
	lz_listings_stats(fs->listings, &dirs);
	json_object_object_add(o, dir_section.key, section_json(&dir_section, &dirs, NULL));
	struct inode_numbers in;
	lz_inode_table_stats(fs->inodes, &in.inodes, &in.fds);
	json_object_object_add(o, inode_section.key, section_json(&inode_section, &in, NULL));
	struct lz_track_stats *ts = malloc(sizeof(*ts)); /* 22 KiB */
	if (ts != NULL && lz_track_stats(fs->track, ts) == 0)
		tracker_json(o, ts);
	free(ts);
	return o;
}

/* What this binary is: one sample whose labels say it, Prometheus's usual form. */
static void build_info(FILE *f)
{
#ifdef HAVE_BPF
	const char *bpf = "yes";
#else
	const char *bpf = "no";
#endif
#ifdef HAVE_LIBSYSTEMD
	const char *systemd = "yes";
#else
	const char *systemd = "no";
#endif
	char label[160];

	help(f, "lazyfs_build_info", "gauge", "Always 1: the version and build of this daemon.");
	snprintf(label, sizeof(label), "version=\"%s\",bpf=\"%s\",systemd=\"%s\"", PACKAGE_VERSION,
		 bpf, systemd);
	sample(f, "lazyfs_build_info", label, 1);
}

/* The latency of cold resolves that worked, by backend, as a Prometheus histogram. */
static void resolve_latency_text(FILE *f, const struct lz_images_stats *st)
{
	static const char *const names[] = { "kernel", "squashfuse" };
	const char *name = "lazyfs_image_resolve_duration_seconds";
	char label[96];

	help(f, name, "histogram", "Time to mount an image at its first use, by backend.");
	for (int b = 0; b < 2; b++) {
		const struct lz_resolve_latency *l = &st->latency[b];
		unsigned long long cum = 0;
		for (size_t k = 0; k < LZ_RESOLVE_BUCKETS; k++) {
			cum += l->buckets[k];
			if (k + 1 < LZ_RESOLVE_BUCKETS)
				snprintf(label, sizeof(label), "backend=\"%s\",le=\"%g\"", names[b],
					 lz_resolve_bucket_s[k]);
			else
				snprintf(label, sizeof(label), "backend=\"%s\",le=\"+Inf\"",
					 names[b]);
			fprintf(f, "%s_bucket{%s} %llu\n", name, label, cum);
		}
		snprintf(label, sizeof(label), "backend=\"%s\"", names[b]);
		fprintf(f, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, label, l->sum_s, name,
			label, l->count);
	}
}

/* The map now: its images and the bad lines the last read skipped. */
static void map_text(FILE *f, struct lz_fs *fs)
{
	struct lz_map *map = lz_fs_map_hold(fs);

	if (map == NULL)
		return;
	help(f, "lazyfs_map_images", "gauge", "Images the map names.");
	sample(f, "lazyfs_map_images", NULL, (double)map->images);
	help(f, "lazyfs_map_bad_lines", "gauge", "Lines of the map file skipped as bad.");
	sample(f, "lazyfs_map_bad_lines", NULL, (double)map->bad_lines);
	lz_map_release(map);
}

void lz_report_metrics(struct lz_fs *fs, FILE *f)
{
	build_info(f);
	help(f, "lazyfs_passthrough_active", "gauge",
	     "1 while opens use kernel passthrough; 0 once the kernel or libfuse refused it.");
	sample(f, "lazyfs_passthrough_active", NULL,
	       fs->settings->open_mode == LZ_OPEN_PASSTHROUGH && atomic_load(&fs->passthrough));
	map_text(f, fs);
	help(f, "lazyfs_start_time_seconds", "gauge", "When the daemon started (Unix time).");
	sample(f, "lazyfs_start_time_seconds", NULL, (double)fs->started.tv_sec);
	help(f, "lazyfs_backing_files_kept", "gauge",
	     "Passthrough backing files kept registered for files nobody has open.");
	sample(f, "lazyfs_backing_files_kept", NULL, lz_linger_count(fs->linger));
	help(f, "lazyfs_restarts_total", "counter",
	     "Workers the keeper started after one crashed (the mount stayed).");
	sample(f, "lazyfs_restarts_total", NULL, fs->restarts);
	help(f, "lazyfs_poisoned_requests_total", "counter",
	     "Requests answered EIO because the worker crashed twice while serving them.");
	sample(f, "lazyfs_poisoned_requests_total", NULL, (double)atomic_load(&fs->poisoned));
	help(f, "lazyfs_revived_nodes_total", "counter",
	     "Node ids a crashed worker gave out, served again by the next (not ESTALE).");
	sample(f, "lazyfs_revived_nodes_total", NULL, (double)atomic_load(&fs->revived));
	if (fs->images != NULL) {
		struct image_numbers n;
		enum lz_image_backend backend;
		char label[64];
		image_numbers(fs, &n, &backend);
		snprintf(label, sizeof(label), "backend=\"%s\"", backend_name(backend));
		section_text(f, &images_section, &n, label);
		struct lz_images_stats st;
		lz_images_stats(fs->images, &st);
		resolve_latency_text(f, &st);
		struct deferred_numbers dn;
		deferred_numbers(fs, &dn);
		section_text(f, &deferred_section, &dn, NULL);
	}
	if (fs->remote != NULL && fs->remote->stats != NULL) {
		struct lz_source_stats st;
		fs->remote->stats(fs->remote->ctx, &st);
		section_text(f, &cache_section, &st, NULL);
	}
	if (fs->prefetch != NULL) {
		struct lz_prefetch_stats st;
		lz_prefetch_stats(fs->prefetch, &st);
		section_text(f, &prefetch_section, &st, NULL);
	}
	struct lz_listings_stats dirs;
	lz_listings_stats(fs->listings, &dirs);
	section_text(f, &dir_section, &dirs, NULL);
	struct inode_numbers in;
	lz_inode_table_stats(fs->inodes, &in.inodes, &in.fds);
	section_text(f, &inode_section, &in, NULL);
	struct lz_track_stats *ts = malloc(sizeof(*ts));
	if (ts != NULL && lz_track_stats(fs->track, ts) == 0) {
		struct tracker_numbers n;
		tracker_numbers(ts, &n);
		section_text(f, &tracker_section, &n, NULL);
		if (ts->bpf.fuse_connection != 0)
			fuse_requests_text(f, &ts->bpf);
	}
	free(ts);
}
