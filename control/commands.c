/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The commands of the control socket: one line in, a reply body out. Each
 * command is a small function of the table below; the reports come from
 * report.c.
 */
#include "config.h"
#include "commands.h"
#include "jobs.h"
#include "report.h"
#include "request.h"
#include "fscore/expiry.h"
#include "fscore/fs.h"
#include "fscore/lookup.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The layout of --json output; 1: the first with a version (fetch_seconds only in "cache"). */
#define LZ_JSON_SCHEMA 1

/* The longest a reload keeps lazyfsctl waiting for what it found. */
#define RELOAD_WAIT_S 10

/* Human output: "key: value" lines, nested objects indented. */
static void print_plain(FILE *f, struct json_object *o, int depth)
{
	json_object_object_foreach(o, key, val)
	{
		if (json_object_is_type(val, json_type_object)) {
			fprintf(f, "%*s%s:\n", depth * 2, "", key);
			print_plain(f, val, depth + 1);
		} else if (val == NULL) {
			fprintf(f, "%*s%s: -\n", depth * 2, "", key);
		} else {
			fprintf(f, "%*s%s: %s\n", depth * 2, "", key, json_object_get_string(val));
		}
	}
}

static void print_object(FILE *f, struct json_object *o)
{
	print_plain(f, o, 0);
}

static const char *field(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && v != NULL ? json_object_get_string(v) : "-";
}

static void print_images(FILE *f, struct json_object *list)
{
	size_t n = json_object_array_length(list);

	fprintf(f, "%-28s %-9s %-10s %7s %5s %4s %8s %12s  %s\n", "IMAGE", "STATE", "BACKEND",
		"RESOLVES", "OPEN", "PIN", "IDLE_S", "BYTES", "TRUST");
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(list, i);
		fprintf(f, "%-28s %-9s %-10s %7s %5s %4s %8s %12s  %s\n", field(o, "name"),
			field(o, "state"), field(o, "backend"), field(o, "resolves"),
			field(o, "open_files"), field(o, "pins"), field(o, "idle_s"),
			field(o, "bytes"), field(o, "trust"));
	}
	if (n == 0)
		fprintf(f, "(no image used since start)\n");
}

/* How long pin and prefetch wait for their job before answering it goes on. */
#define JOB_WAIT_MS 500

/* Takes the "/" off ARG; NULL (and why in OUT) when CMD has no valid entry name. */
static const char *entry_arg(const char *cmd, const char *arg, FILE *out)
{
	const char *entry = lz_request_entry(arg);

	if (entry == NULL)
		fprintf(out, "%s needs an entry name", cmd);
	return entry;
}

static int cmd_evict(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out)
{
	struct lz_fs *fs = c->fs;
	struct lz_image *image;
	int rc;

	if ((arg = entry_arg(cmd, arg, out)) == NULL)
		return -1;
	if (fs->objects != NULL) {
		rc = fs->objects->evict(fs->objects->ctx, arg);
	} else {
		image = lz_image_of_entry(fs, arg);
		rc = image == NULL ? -ENOENT : lz_evict_image(fs, lz_image_name(image));
	}
	if (rc == 0) {
		fprintf(out, "%s evicted\n", arg);
		return 0;
	}
	fprintf(out, "%s: %s", arg,
		rc == -EBUSY	? "in use (open files or pinned)"
		: rc == -ENOENT ? "not resolved or cached"
				: strerror(-rc));
	return -1;
}

/* The image ARG, resolved first (a pin keeps it; a prefetch needs its root); NULL with OUT. */
static struct lz_image *resolved_image(struct lz_fs *fs, const char *arg, FILE *out)
{
	struct lz_image *image;

	if (!lz_resolve_entry(fs, arg, LZ_RESOLVE_FETCH | LZ_RESOLVE_MOUNT)) {
		fprintf(out, "%s: no image or object there, or it cannot be resolved", arg);
		return NULL;
	}
	image = lz_image_of_entry(fs, arg);
	if (image == NULL)
		fprintf(out, "%s: no such image in use", arg);
	return image;
}

/* Pins (PIN) or unpins entry ARG (kept across restarts), saying so in OUT: 0, or -1. */
static int pin_entry(struct lz_fs *fs, const char *arg, bool pin, FILE *out)
{
	int rc = lz_pin_entry(fs, arg, pin);

	if (rc == 0) {
		fprintf(out, "%s %s\n", arg, pin ? "pinned" : "unpinned");
		return 0;
	}
	fprintf(out, "%s: %s", arg,
		rc == -EINVAL	? "not pinned"
		: rc == -ENOENT ? (pin ? "no image or object there, or it cannot be resolved"
				       : "no such image in use")
				: strerror(-rc));
	return -1;
}

/* Prefetches entry ARG's working set, saying so in OUT: 0, or -1 with the reason there. */
static int prefetch_entry(struct lz_fs *fs, const char *arg, FILE *out)
{
	struct lz_image *image = NULL;
	int rc;

	/* An image's prefetch needs its root (objects: a directory, nothing to resolve). */
	if (fs->objects == NULL && (image = resolved_image(fs, arg, out)) == NULL)
		return -1;
	rc = lz_prefetch_now(fs->prefetch, image, arg);
	if (rc < 0) {
		fprintf(out, "%s: %s", arg,
			rc == -ENOENT	 ? "no working set recorded yet"
			: rc == -ENOTSUP ? "prefetch is off or does not apply (squashfuse)"
					 : strerror(-rc));
		return -1;
	}
	fprintf(out, "%s: prefetching %d files\n", arg, rc);
	return 0;
}

/* A pin or prefetch as a job: its outcome written into MSG. */
static int job(void *ctx, const char *arg, char *msg, size_t size, bool prefetch)
{
	FILE *out = fmemopen(msg, size, "w");
	int rc;

	if (out == NULL) {
		snprintf(msg, size, "%s: out of memory", arg);
		return -1;
	}
	rc = prefetch ? prefetch_entry(ctx, arg, out) : pin_entry(ctx, arg, true, out);
	fclose(out);
	return rc;
}

static int pin_job(void *ctx, const char *arg, char *msg, size_t size)
{
	return job(ctx, arg, msg, size, false);
}

static int prefetch_job(void *ctx, const char *arg, char *msg, size_t size)
{
	return job(ctx, arg, msg, size, true);
}

/*
 * pin and prefetch resolve the entry first, which can mean a mount or a
 * whole remote image to fetch: a job does it, and the answer comes at once
 * (with the job's outcome when it took less than JOB_WAIT_MS).
 */
static int run_job(const struct lz_command_ctx *c, const char *what, lz_job_fn *fn, const char *arg,
		   FILE *out)
{
	char msg[LZ_JOB_MSG];
	int rc = lz_jobs_run(c->jobs, what, fn, c->fs, arg, JOB_WAIT_MS, msg, sizeof(msg));

	fputs(msg, out);
	if (rc == 1)
		fputc('\n', out);
	return rc < 0 ? -1 : 0;
}

static int cmd_pin(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out)
{
	if ((arg = entry_arg(cmd, arg, out)) == NULL)
		return -1;
	if (strcmp(cmd, "unpin") == 0)
		return pin_entry(c->fs, arg, false, out);
	return run_job(c, "pin", pin_job, arg, out);
}

static int cmd_prefetch(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out)
{
	if ((arg = entry_arg(cmd, arg, out)) == NULL)
		return -1;
	return run_job(c, "prefetch", prefetch_job, arg, out);
}

/*
 * Waits for the reload it asks for, so the caller learns what it found: an
 * error when the map could not be read (the old one serves) or has bad lines
 * (skipped, the first said).
 */
static int cmd_reload(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out)
{
	struct lz_reload_result r;
	int rc;

	(void)cmd;
	(void)arg;
	rc = lz_expiry_reload_wait(c->fs->expiry, RELOAD_WAIT_S, &r);
	if (rc == -ENOTCONN) {
		fprintf(out, "nothing to reload: this mount has no map and no images");
		return -1;
	}
	if (rc != 0) {
		fprintf(out, "reload requested, not done within %d s (see the log)", RELOAD_WAIT_S);
		return -1;
	}
	if (r.map_error != 0) {
		fprintf(out, "map %s: %s: the map before serves on", c->fs->settings->map,
			strerror(-r.map_error));
		return -1;
	}
	if (r.bad_lines > 0) {
		fprintf(out, "map reloaded with %zu images; %zu bad lines skipped, the first: %s",
			r.images, r.bad_lines, r.first_bad);
		return -1;
	}
	if (r.map)
		fprintf(out, "map reloaded: %zu images; replaced images closed\n", r.images);
	else
		fprintf(out, "reloaded: replaced images closed\n");
	return 0;
}

static int cmd_upgrade(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out)
{
	char msg[600];
	int rc;

	(void)cmd;
	if (c->upgrade == NULL) {
		fprintf(out, "this daemon cannot upgrade");
		return -1;
	}
	/* Blocks while the main thread hands the mount over (or fails to). */
	rc = c->upgrade(c->hooks_ctx, arg, msg, sizeof(msg));
	fprintf(out, rc == 0 ? "%s\n" : "%s", msg);
	return rc;
}

static int cmd_metrics(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out)
{
	(void)cmd;
	(void)arg;
	lz_report_metrics(c->fs, out);
	return 0;
}

/* The commands whose reply is a report: JSON, or text made from it. */
static const struct {
	const char *name;
	struct json_object *(*report)(struct lz_fs *fs);
	void (*print)(FILE *f, struct json_object *o);
} reports[] = {
	{ "status", lz_report_status, print_object },
	{ "stats", lz_report_stats, print_object },
	{ "images", lz_report_images, print_images },
};

/* The commands that answer text of their own. */
static const struct {
	const char *name;
	int (*run)(const struct lz_command_ctx *c, const char *cmd, const char *arg, FILE *out);
} commands[] = {
	{ "metrics", cmd_metrics },   { "reload", cmd_reload }, { "upgrade", cmd_upgrade },
	{ "evict", cmd_evict },	      { "pin", cmd_pin },	{ "unpin", cmd_pin },
	{ "prefetch", cmd_prefetch },
};

static const char usage[] = "commands: status, stats, images, metrics, evict N, pin N, unpin N, "
			    "prefetch N, reload, upgrade";

/* Status shows the pins and prefetches running, and those that ended last. */
static void add_jobs(const struct lz_command_ctx *c, struct json_object *status)
{
	struct json_object *jobs = lz_jobs_report(c->jobs);

	if (json_object_array_length(jobs) > 0)
		json_object_object_add(status, "jobs", jobs);
	else
		json_object_put(jobs);
}

/*
 * What --json prints: an object with "schema_version" first, so a consumer
 * can tell a layout it knows; a list (images) becomes {"schema_version", NAME}.
 * The version goes up when a key is removed, renamed or changes meaning.
 */
static struct json_object *versioned(struct json_object *o, const char *name)
{
	struct json_object *v = json_object_new_object();

	json_object_object_add(v, "schema_version", json_object_new_int(LZ_JSON_SCHEMA));
	if (json_object_is_type(o, json_type_array)) {
		json_object_object_add(v, name, o);
		return v;
	}
	json_object_object_foreach(o, key, val)
	{
		json_object_object_add(v, key, json_object_get(val));
	}
	json_object_put(o);
	return v;
}

int lz_command_run(const struct lz_command_ctx *c, char *line, FILE *out)
{
	struct lz_request r;

	lz_request_parse(line, &r);
	const char *cmd = r.cmd, *arg = r.arg;
	bool json = r.json;
	if (cmd == NULL) {
		fprintf(out, "empty request; %s", usage);
		return -1;
	}
	for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
		if (strcmp(cmd, reports[i].name) != 0)
			continue;
		struct json_object *o = reports[i].report(c->fs);
		if (strcmp(cmd, "status") == 0)
			add_jobs(c, o);
		if (json) {
			o = versioned(o, reports[i].name);
			fprintf(out, "%s\n",
				json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		} else {
			reports[i].print(out, o);
		}
		json_object_put(o);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(c, cmd, arg, out);
	fprintf(out, "unknown command '%.64s'; %s", cmd, usage);
	return -1;
}
