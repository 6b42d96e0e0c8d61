/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "pins.h"
#include "fs.h"
#include "lookup.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mountpoint.h"
#include "common/names.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A warm list longer than this is a mistake (a farm has a few thousand images). */
#define LIST_MAX 100000

struct list {
	char **names;
	size_t count, cap;
};

struct lz_pins {
	struct lz_fs *fs;
	char *path; /* the pin file */
	pthread_mutex_t lock;
	struct list noted; /* the pin file's entries; guarded by lock */
	struct list todo;  /* what the thread pins: warm=FILE and the pin file at open */
	pthread_t thread;
	bool started;
	atomic_bool stop, running;
	atomic_uint_fast64_t pinned, failed;
};

static bool listed(const struct list *l, const char *name)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->names[i], name) == 0)
			return true;
	return false;
}

/* Appends a copy of NAME: 0 or -ENOMEM. */
static int append(struct list *l, const char *name)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **grown = realloc(l->names, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->names = grown;
		l->cap = cap;
	}
	if ((l->names[l->count] = strdup(name)) == NULL)
		return -ENOMEM;
	l->count++;
	return 0;
}

/* Adds a copy of NAME unless listed (one entry: a pin noted): 0 or -ENOMEM. */
static int add(struct list *l, const char *name)
{
	return listed(l, name) ? 0 : append(l, name);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Each name once (a name pinned twice would hold two pins): sorted, not compared pairwise. */
static void dedupe(struct list *l)
{
	size_t kept = 0;

	if (l->count > 1)
		qsort(l->names, l->count, sizeof(*l->names), by_name);
	for (size_t i = 0; i < l->count; i++) {
		if (kept > 0 && strcmp(l->names[kept - 1], l->names[i]) == 0)
			free(l->names[i]);
		else
			l->names[kept++] = l->names[i];
	}
	l->count = kept;
}

static void drop(struct list *l, const char *name)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->names[i], name) == 0) {
			free(l->names[i]);
			l->names[i] = l->names[--l->count];
			return;
		}
}

static void clear(struct list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->names[i]);
	free(l->names);
	*l = (struct list){ 0 };
}

/* An entry as lazyfsctl pin takes it: relative components, each a valid name. */
static const char *bad_entry(const char *entry)
{
	char copy[PATH_MAX], *save = NULL;

	if (entry[0] == '\0' || entry[0] == '/' || strlen(entry) >= sizeof(copy))
		return "not an entry (a relative path like gcc-12 or arm/gcc-12)";
	snprintf(copy, sizeof(copy), "%s", entry);
	for (char *c = strtok_r(copy, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save))
		if (lz_name_check(c) != 0)
			return "not an entry: a component is '.', '..' or not a name";
	return NULL;
}

/*
 * Reads PATH into L: one entry per line, '#' comments and blank lines
 * skipped. A missing pin file is empty (STRICT false); a bad line fails the
 * whole file with "PATH:LINE: reason".
 */
static int load(struct list *l, const char *path, bool strict, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *p;
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = 0;

	if (f == NULL) {
		if (!strict && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && getline(&line, &cap, f) != -1) {
		lineno++;
		line[strcspn(line, "#\r\n")] = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		size_t n = strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			p[--n] = '\0';
		if (n == 0)
			continue;
		const char *why = bad_entry(p);
		if (why == NULL && l->count >= LIST_MAX)
			why = "more entries than "
			      "100000";
		if (why != NULL) {
			snprintf(err, errlen, "%s:%u: '%.*s' is %s", path, lineno, 64, p, why);
			rc = -EINVAL;
		} else {
			rc = append(l, p);
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/* Rewrites the pin file whole (a crash leaves the old or the new one); under lock. */
static void save_locked(struct lz_pins *p)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", p->path);
	f = fopen(tmp, "we");
	if (f == NULL) {
		LZ_LOG_LIMITED(LZ_LOG_WARN, "pins: %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "# lazyfs pins of this mount: pinned again when it starts\n");
	for (size_t i = 0; i < p->noted.count; i++)
		fprintf(f, "%s\n", p->noted.names[i]);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 ||
	    rename(tmp, p->path) != 0) {
		LZ_LOG_LIMITED(LZ_LOG_WARN, "pins: cannot save %s: %s", p->path, strerror(errno));
		unlink(tmp);
	}
}

static void note(struct lz_pins *p, const char *entry, bool pinned)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	bool was = listed(&p->noted, entry);
	if (pinned && !was && add(&p->noted, entry) == 0)
		save_locked(p);
	else if (!pinned && was) {
		drop(&p->noted, entry);
		save_locked(p);
	}
	pthread_mutex_unlock(&p->lock);
}

/* Pins or unpins without noting it; *LAST: no pin is left. */
static int pin_now(struct lz_fs *fs, const char *entry, bool pin, bool *last)
{
	struct lz_image *image;
	struct lz_image_info info;
	int rc;

	*last = true;
	if (pin && !lz_resolve_entry(fs, entry, LZ_RESOLVE_FETCH | LZ_RESOLVE_MOUNT))
		return -ENOENT;
	if (fs->objects != NULL)
		return fs->objects->pin(fs->objects->ctx, entry, pin);
	if ((image = lz_image_of_entry(fs, entry)) == NULL)
		return -ENOENT;
	if (pin) {
		lz_image_pin(image);
		return 0;
	}
	if ((rc = lz_image_unpin(image)) != 0)
		return rc;
	lz_image_info(image, &info);
	*last = info.pins == 0;
	return 0;
}

int lz_pin_entry(struct lz_fs *fs, const char *entry, bool pin)
{
	bool last;
	int rc = bad_entry(entry) != NULL ? -ENOENT : pin_now(fs, entry, pin, &last);

	if (rc == 0 && (pin || last))
		note(fs->pins, entry, pin);
	return rc;
}

static void *warm_main(void *arg)
{
	struct lz_pins *p = arg;
	double started = lz_clock_s(CLOCK_MONOTONIC);
	bool last;

	for (size_t i = 0; i < p->todo.count && !atomic_load(&p->stop); i++) {
		const char *entry = p->todo.names[i];
		int rc = pin_now(p->fs, entry, true, &last);
		if (rc == 0) {
			atomic_fetch_add(&p->pinned, 1);
		} else {
			atomic_fetch_add(&p->failed, 1);
			LZ_LOG_LIMITED(LZ_LOG_WARN, "warm: %s: %s", entry,
				       rc == -ENOENT ? "nothing to resolve there, or it failed"
						     : strerror(-rc));
		}
	}
	lz_info("warm: %llu of %zu entries pinned in %.1f s (%llu failed)",
		(unsigned long long)atomic_load(&p->pinned), p->todo.count,
		lz_clock_s(CLOCK_MONOTONIC) - started, (unsigned long long)atomic_load(&p->failed));
	atomic_store(&p->running, false);
	return NULL;
}

/* CACHE/pins/MOUNT, its directory made (0700). */
static int pin_path(struct lz_pins *p, char *err, size_t errlen)
{
	char dir[PATH_MAX], name[256];
	const char *cache = p->fs->settings->cache;

	lz_escape_mountpoint(p->fs->settings->mountpoint, name, sizeof(name));
	if (snprintf(dir, sizeof(dir), "%s/pins", cache) >= (int)sizeof(dir) ||
	    asprintf(&p->path, "%s/%s", dir, name) < 0) {
		snprintf(err, errlen, "pins: cache path %s too long", cache);
		return -ENAMETOOLONG;
	}
	mkdir(cache, 0700);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "pins: cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

struct lz_pins *lz_pins_open(struct lz_fs *fs, const char *warm, char *err, size_t errlen)
{
	struct lz_pins *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->fs = fs;
	pthread_mutex_init(&p->lock, NULL);
	if ((warm != NULL && load(&p->todo, warm, true, err, errlen) != 0) ||
	    pin_path(p, err, errlen) != 0 || load(&p->noted, p->path, false, err, errlen) != 0) {
		lz_pins_free(p);
		return NULL;
	}
	for (size_t i = 0; i < p->noted.count; i++)
		if (append(&p->todo, p->noted.names[i]) != 0) {
			snprintf(err, errlen, "out of memory");
			lz_pins_free(p);
			return NULL;
		}
	dedupe(&p->noted);
	dedupe(&p->todo);
	return p;
}

int lz_pins_start(struct lz_pins *p)
{
	int rc;

	if (p == NULL || p->todo.count == 0)
		return 0;
	atomic_store(&p->running, true);
	rc = pthread_create(&p->thread, NULL, warm_main, p);
	if (rc != 0) {
		atomic_store(&p->running, false);
		return -rc;
	}
	p->started = true;
	return 0;
}

bool lz_pins_stop(struct lz_pins *p, double wait_s)
{
	struct timespec until = lz_clock_after(CLOCK_REALTIME, wait_s);

	if (p == NULL || !p->started)
		return true;
	atomic_store(&p->stop, true);
	p->started = false;
	if (pthread_timedjoin_np(p->thread, NULL, &until) != 0) {
		pthread_detach(p->thread);
		return false;
	}
	return true;
}

void lz_pins_free(struct lz_pins *p)
{
	if (p == NULL)
		return;
	clear(&p->noted);
	clear(&p->todo);
	pthread_mutex_destroy(&p->lock);
	free(p->path);
	free(p);
}

void lz_pins_stats(struct lz_pins *p, struct lz_pins_stats *out)
{
	*out = (struct lz_pins_stats){ 0 };
	if (p == NULL)
		return;
	out->listed = p->todo.count;
	out->pinned = atomic_load(&p->pinned);
	out->failed = atomic_load(&p->failed);
	out->running = atomic_load(&p->running);
}
