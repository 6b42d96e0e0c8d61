/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "common/names.h"
#include "prefetch.h"
#include "workingset.h"
#include "images/images.h"
#include "common/log.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WS_FILE_MAX (8u << 20) /* a working set file larger than this is not read */
#define SET_SLOTS   (2 * LZ_WS_MAX_FILES)

struct unit;

/* What one image's users touch after a resolve, until its window closes. */
struct recording {
	char *name;	   /* its unit's name */
	struct unit *unit; /* the unit it records, which points back to it */
	long long until;   /* CLOCK_MONOTONIC seconds */
	char *paths[LZ_WS_MAX_FILES];
	off_t sizes[LZ_WS_MAX_FILES];
	size_t n;
	uint32_t set[SET_SLOTS]; /* index + 1 into paths, by hash: dedups records */
	struct recording *prev, *next;
};

struct job {
	struct lz_image *image; /* NULL: remote objects, prefetched by fetching them */
	char *name;
	off_t *sizes;
	unsigned generation;
	char **paths;
	size_t n;
	struct job *next;
};

/*
 * What is used together and prefetched together: an image (by its registry
 * name), or with remote_mode=objects a top directory of the remote. Units are
 * kept for the life of the prefetcher, one per name ever used.
 */
struct unit {
	char *name;
	struct recording *ws; /* its working set being recorded, or NULL; under lock */
	struct unit *next;
};
#define UNIT_BUCKETS 1024u

struct lz_prefetch {
	char *dir;
	lz_prefetch_fetch_fn *fetch;
	void *fetch_ctx;
	uint64_t max_bytes;
	pthread_mutex_t lock; /* units, recordings, jobs */
	pthread_cond_t work;
	struct unit *units[UNIT_BUCKETS];
	struct recording *recordings;
	atomic_uint recording; /* recordings open: most lookups find none and skip the lock */
	struct job *jobs, **jobs_tail;
	bool stop;
	pthread_t workers[LZ_WS_WORKERS];
	unsigned nworkers;
	atomic_ullong recorded, started, files, bytes, cancelled, bad_lines;
};

/* The file of image NAME in the working-set directory: NAME, %-escaped, or a hash if long. */
static void ws_filename(const struct lz_prefetch *p, const char *name, char *out, size_t size)
{
	char esc[3 * NAME_MAX + 1];
	size_t o = 0;

	for (const char *c = name; *c != '\0' && o + 4 < sizeof(esc); c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || (*c == '.' && c != name))
			esc[o++] = *c;
		else
			o += (size_t)snprintf(esc + o, sizeof(esc) - o, "%%%02X", (uint8_t)*c);
	}
	esc[o] = '\0';
	if (o > 200 || o + 4 >= sizeof(esc))
		snprintf(out, size, "%s/h%08x%08x.ws", p->dir, lz_hash32(name),
			 lz_hash32(name + strlen(name) / 2));
	else
		snprintf(out, size, "%s/%s.ws", p->dir, esc);
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -1;
	for (char *c = tmp + 1; *c != '\0'; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		mkdir(tmp, 0700);
		*c = '/';
	}
	return mkdir(tmp, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

static char **read_working_set(struct lz_prefetch *p, const char *name, off_t **sizes,
			       size_t *count);
static void free_paths(char **paths, size_t n);

/* Whether R recorded REL (its set is complete: records stop at the cap). */
static bool recorded(const struct recording *r, const char *rel);

/*
 * Writes R's files (in the order first seen), then those of the image's last
 * working set that R did not see, up to the cap: users of one image differ
 * (one compile needs headers another does not), so sets are merged, not
 * replaced; files gone from the image are skipped when prefetching.
 */
static void write_recording(struct lz_prefetch *p, struct recording *r)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	char **old;
	off_t *old_sizes = NULL;
	size_t n_old = 0, written;
	FILE *f;
	int ok;

	if (r->n == 0)
		return;
	old = read_working_set(p, r->name, &old_sizes, &n_old);
	ws_filename(p, r->name, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	if (mkdir_p(p->dir) != 0 || (f = fopen(tmp, "wxe")) == NULL) {
		free_paths(old, n_old);
		free(old_sizes);
		lz_warn("working set of %s: cannot write %s: %s", r->name, tmp, strerror(errno));
		return;
	}
	lz_ws_write_header(f);
	for (size_t i = 0; i < r->n; i++)
		lz_ws_write_line(f, r->sizes[i], r->paths[i]);
	written = r->n;
	for (size_t i = 0; i < n_old && written < LZ_WS_MAX_FILES; i++)
		if (!recorded(r, old[i])) {
			lz_ws_write_line(f, old_sizes[i], old[i]);
			written++;
		}
	free_paths(old, n_old);
	free(old_sizes);
	ok = ferror(f) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		lz_warn("working set of %s: cannot write %s", r->name, path);
		unlink(tmp);
		return;
	}
	atomic_fetch_add(&p->recorded, 1);
	lz_debug("%s: working set of %zu files written (%zu seen this time)", r->name, written,
		 r->n);
}

static void free_recording(struct recording *r)
{
	free(r->name);
	for (size_t i = 0; i < r->n; i++)
		free(r->paths[i]);
	free(r);
}

/* Lock held: takes R off its unit and the list; the caller writes and frees it. */
static void detach(struct lz_prefetch *p, struct recording *r)
{
	r->unit->ws = NULL;
	atomic_fetch_sub(&p->recording, 1);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		p->recordings = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
}

static bool recorded(const struct recording *r, const char *rel)
{
	uint32_t slot = lz_hash32(rel) % SET_SLOTS;

	while (r->set[slot] != 0) {
		if (strcmp(r->paths[r->set[slot] - 1], rel) == 0)
			return true;
		slot = (slot + 1) % SET_SLOTS;
	}
	return false;
}

/* The last working set of unit NAME and its SIZES, or 0 paths. */
static char **read_working_set(struct lz_prefetch *p, const char *name, off_t **sizes,
			       size_t *count)
{
	char path[PATH_MAX];
	struct lz_ws ws = { 0 };
	struct stat st;
	FILE *f;
	int rc = -EINVAL;

	*count = 0;
	ws_filename(p, name, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	/* A damaged cache may hold anything here: only a regular file of sane size is read. */
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= WS_FILE_MAX)
		rc = lz_ws_read(f, &ws);
	fclose(f);
	if (rc != 0)
		lz_warn("working set %s: not a working set file; ignored", path);
	atomic_fetch_add(&p->bad_lines, ws.bad);
	*sizes = ws.sizes;
	*count = ws.n;
	return ws.paths;
}

static void free_paths(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Fetches each object into the cache (the store runs one fetch per object however asked). */
static void run_objects_job(struct lz_prefetch *p, struct job *j)
{
	uint64_t budget = p->max_bytes, files = 0, bytes = 0;

	atomic_fetch_add(&p->started, 1);
	for (size_t i = 0; i < j->n && (uint64_t)j->sizes[i] <= budget; i++) {
		if (p->fetch(p->fetch_ctx, j->paths[i]) != 0)
			continue;
		budget -= (uint64_t)j->sizes[i];
		bytes += (uint64_t)j->sizes[i];
		files++;
	}
	atomic_fetch_add(&p->files, files);
	atomic_fetch_add(&p->bytes, bytes);
	lz_debug("objects %s: prefetched %llu files, %llu bytes", j->name,
		 (unsigned long long)files, (unsigned long long)bytes);
}

static void run_job(struct lz_prefetch *p, struct job *j)
{
	uint64_t budget = p->max_bytes, files = 0, bytes = 0;
	int root = lz_image_open_root(j->image, j->generation);

	if (root < 0) {
		atomic_fetch_add(&p->cancelled, 1);
		return;
	}
	atomic_fetch_add(&p->started, 1);
	for (size_t i = 0; i < j->n && budget > 0; i++) {
		/* Never outside the image, never through a link inside it. */
		struct open_how how = {
			.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
				   RESOLVE_NO_XDEV,
		};
		struct stat st;
		int fd;

		if (!lz_image_is_generation(j->image, j->generation)) {
			atomic_fetch_add(&p->cancelled, 1);
			break;
		}
		fd = (int)syscall(SYS_openat2, root, j->paths[i], &how, sizeof(how));
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
			uint64_t want =
				(uint64_t)st.st_size < budget ? (uint64_t)st.st_size : budget;
			/* Squashfs decompresses in readahead: the work happens here, not in the
			 * compiler. */
			if (readahead(fd, 0, want) == 0) {
				budget -= want;
				bytes += want;
				files++;
			}
		}
		close(fd);
	}
	close(root);
	atomic_fetch_add(&p->files, files);
	atomic_fetch_add(&p->bytes, bytes);
	lz_debug("image %s: prefetched %llu files, %llu bytes", j->name, (unsigned long long)files,
		 (unsigned long long)bytes);
}

static void free_job(struct job *j)
{
	free_paths(j->paths, j->n);
	free(j->sizes);
	free(j->name);
	free(j);
}

static void *worker(void *arg)
{
	struct lz_prefetch *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->jobs == NULL && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		struct job *j = p->jobs;
		p->jobs = j->next;
		if (p->jobs == NULL)
			p->jobs_tail = &p->jobs;
		pthread_mutex_unlock(&p->lock);
		if (j->image != NULL)
			run_job(p, j);
		else
			run_objects_job(p, j);
		free_job(j);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct lz_prefetch *lz_prefetch_new(const char *dir, uint64_t max_bytes)
{
	struct lz_prefetch *p = calloc(1, sizeof(*p));

	if (p == NULL || (p->dir = strdup(dir)) == NULL) {
		free(p);
		return NULL;
	}
	p->max_bytes = max_bytes;
	p->jobs_tail = &p->jobs;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	return p;
}

void lz_prefetch_free(struct lz_prefetch *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i], NULL);
	while (p->jobs != NULL) {
		struct job *j = p->jobs;
		p->jobs = j->next;
		free_job(j);
	}
	while (p->recordings != NULL) {
		struct recording *r = p->recordings;
		detach(p, r);
		write_recording(p, r);
		free_recording(r);
	}
	for (unsigned b = 0; b < UNIT_BUCKETS; b++) {
		while (p->units[b] != NULL) {
			struct unit *u = p->units[b];
			p->units[b] = u->next;
			free(u->name);
			free(u);
		}
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	free(p->dir);
	free(p);
}

/* Lock held: the unit NAME, or NULL. */
static struct unit *find_unit(struct lz_prefetch *p, const char *name)
{
	struct unit *u;

	for (u = p->units[lz_hash32(name) % UNIT_BUCKETS]; u != NULL; u = u->next)
		if (strcmp(u->name, name) == 0)
			break;
	return u;
}

/* Lock held: the unit NAME, made if needed (*MADE says so); NULL when out of memory. */
static struct unit *unit_of(struct lz_prefetch *p, const char *name, bool *made)
{
	unsigned b = lz_hash32(name) % UNIT_BUCKETS;
	struct unit *u = find_unit(p, name);

	*made = false;
	if (u != NULL)
		return u;
	u = calloc(1, sizeof(*u));
	if (u == NULL || (u->name = strdup(name)) == NULL) {
		free(u);
		return NULL;
	}
	u->next = p->units[b];
	p->units[b] = u;
	*made = true;
	return u;
}

/* Lock held: queues J and makes sure a worker runs it. */
static void queue_job(struct lz_prefetch *p, struct job *j)
{
	*p->jobs_tail = j;
	p->jobs_tail = &j->next;
	if (p->nworkers < LZ_WS_WORKERS &&
	    pthread_create(&p->workers[p->nworkers], NULL, worker, p) == 0)
		p->nworkers++;
	pthread_cond_signal(&p->work);
}

/*
 * Starts recording the use of unit NAME and queues J, if it has anything to
 * prefetch. Consumes J.
 */
static void start(struct lz_prefetch *p, const char *name, struct job *j)
{
	struct recording *r = calloc(1, sizeof(*r)), *old = NULL;
	struct unit *u;
	bool made;

	if (r == NULL || (r->name = strdup(name)) == NULL || (j->name = strdup(name)) == NULL) {
		if (r != NULL)
			free(r->name);
		free(r);
		free_job(j);
		return;
	}
	r->until = (long long)lz_clock_s(CLOCK_MONOTONIC) + LZ_WS_WINDOW_S;
	j->paths = read_working_set(p, name, &j->sizes, &j->n);

	pthread_mutex_lock(&p->lock);
	u = unit_of(p, name, &made);
	if (u != NULL && u->ws != NULL) {
		old = u->ws;
		detach(p, old);
	}
	if (u != NULL) {
		r->unit = u;
		r->next = p->recordings;
		if (r->next != NULL)
			r->next->prev = r;
		p->recordings = r;
		u->ws = r;
		atomic_fetch_add(&p->recording, 1);
		r = NULL;
	}
	if (u != NULL && j->n > 0) {
		queue_job(p, j);
		j = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (r != NULL)
		free_recording(r);
	if (j != NULL)
		free_job(j);
	if (old != NULL) {
		write_recording(p, old);
		free_recording(old);
	}
}

void lz_prefetch_image_mounted(struct lz_prefetch *p, struct lz_image *image, unsigned generation)
{
	struct job *j;
	int root;

	if (p == NULL)
		return;
	root = lz_image_open_root(image, generation);
	if (root < 0)
		return; /* squashfuse: nothing to warm */
	close(root);
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->image = image;
	j->generation = generation;
	start(p, lz_image_name(image), j);
}

/* Adds RELPATH (SIZE bytes) to the recording of unit NAME, if one is open. */
static void record_in(struct lz_prefetch *p, const char *name, const char *relpath, off_t size)
{
	struct recording *r = NULL, *done = NULL;
	struct unit *u;

	if (atomic_load_explicit(&p->recording, memory_order_relaxed) == 0 ||
	    !lz_ws_path_ok(relpath))
		return;
	pthread_mutex_lock(&p->lock);
	u = find_unit(p, name);
	if (u != NULL)
		r = u->ws;
	if (r != NULL && (long long)lz_clock_s(CLOCK_MONOTONIC) >= r->until) {
		detach(p, r);
		done = r;
	} else if (r != NULL && r->n < LZ_WS_MAX_FILES) {
		uint32_t slot_i = lz_hash32(relpath) % SET_SLOTS;
		while (r->set[slot_i] != 0 && strcmp(r->paths[r->set[slot_i] - 1], relpath) != 0)
			slot_i = (slot_i + 1) % SET_SLOTS;
		if (r->set[slot_i] == 0 && (r->paths[r->n] = strdup(relpath)) != NULL) {
			r->sizes[r->n] = size;
			r->set[slot_i] = (uint32_t)++r->n;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (done != NULL) {
		write_recording(p, done);
		free_recording(done);
	}
}

bool lz_prefetch_recording(struct lz_prefetch *p, struct lz_image *image)
{
	struct unit *u;
	bool open;

	if (p == NULL || atomic_load_explicit(&p->recording, memory_order_relaxed) == 0)
		return false;
	pthread_mutex_lock(&p->lock);
	u = find_unit(p, lz_image_name(image));
	open = u != NULL && u->ws != NULL;
	pthread_mutex_unlock(&p->lock);
	return open;
}

void lz_prefetch_record(struct lz_prefetch *p, struct lz_image *image, const char *relpath,
			off_t size)
{
	if (p != NULL)
		record_in(p, lz_image_name(image), relpath, size);
}

void lz_prefetch_set_fetch(struct lz_prefetch *p, lz_prefetch_fetch_fn *fetch, void *ctx)
{
	p->fetch = fetch;
	p->fetch_ctx = ctx;
}

void lz_prefetch_object_opened(struct lz_prefetch *p, const char *path, off_t size)
{
	char top[NAME_MAX + 1];
	size_t len = strcspn(path, "/");
	bool first = false;

	if (p == NULL || p->fetch == NULL)
		return;
	/* Objects at the top are one unit, ".": most trees keep related objects in one directory.
	 */
	snprintf(top, sizeof(top), "%.*s", path[len] == '/' && len <= NAME_MAX ? (int)len : 1,
		 path[len] == '/' && len <= NAME_MAX ? path : ".");
	pthread_mutex_lock(&p->lock);
	if (unit_of(p, top, &first) == NULL) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_unlock(&p->lock);
	if (first) {
		/* The directory's first use in this process: its cold touch. */
		struct job *j = calloc(1, sizeof(*j));
		if (j != NULL)
			start(p, top, j);
	}
	record_in(p, top, path, size);
}

int lz_prefetch_now(struct lz_prefetch *p, struct lz_image *image, const char *objects_dir)
{
	struct lz_image_info info;
	struct job *j;
	size_t n;

	if (p == NULL)
		return -ENOTSUP;
	if (image != NULL) {
		lz_image_info(image, &info);
		if (info.state != LZ_IMAGE_READY || info.backend != LZ_IMAGE_KERNEL)
			return -ENOTSUP;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->image = image;
	j->name = strdup(image != NULL ? info.name : objects_dir);
	j->generation = image != NULL ? info.generation : 0;
	if (j->name != NULL)
		j->paths = read_working_set(p, j->name, &j->sizes, &j->n);
	n = j->n;
	if (n == 0 || (image == NULL && p->fetch == NULL)) {
		free_job(j);
		return n == 0 ? -ENOENT : -ENOTSUP;
	}
	pthread_mutex_lock(&p->lock);
	queue_job(p, j);
	pthread_mutex_unlock(&p->lock);
	return (int)n;
}

void lz_prefetch_image_closed(struct lz_prefetch *p, struct lz_image *image)
{
	struct recording *r = NULL;
	struct unit *u;

	if (p == NULL || atomic_load(&p->recording) == 0)
		return;
	pthread_mutex_lock(&p->lock);
	u = find_unit(p, lz_image_name(image));
	if (u != NULL && u->ws != NULL) {
		r = u->ws;
		detach(p, r);
	}
	pthread_mutex_unlock(&p->lock);
	if (r != NULL) {
		write_recording(p, r);
		free_recording(r);
	}
}

void lz_prefetch_stats(struct lz_prefetch *p, struct lz_prefetch_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (p == NULL)
		return;
	out->recorded = atomic_load(&p->recorded);
	out->started = atomic_load(&p->started);
	out->files = atomic_load(&p->files);
	out->bytes = atomic_load(&p->bytes);
	out->cancelled = atomic_load(&p->cancelled);
	out->bad_lines = atomic_load(&p->bad_lines);
}
