/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lztrack-bench: what the tracker costs, as one JSON object on stdout.
 *
 *   lztrack-bench [-n OUTSIDE_OPENS] [-r ROUNDS] [-e FILTERED_OPENS]
 *
 * Overhead: open+close of a path outside the prefix, timed in batches, with
 * the tracker detached and attached in alternating rounds of one run (so
 * both see the same machine state); the medians of the per-open batch times
 * are attached_ns and detached_ns. The path is PREFIX-out, a sibling that
 * matches every byte of the prefix but the boundary: the compare's worst case.
 *
 * Throughput: opens of distinct cold keys under the prefix (missing files:
 * the programs run at syscall entry either way) while the consumer forgets
 * every key it is told about, so each open can be an event again.
 */
#include "config.h"
#include "bpf/tracker.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 10000
#define NKEYS 4096

static atomic_ulong seen;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Appends one sample (ns per open) per batch. */
static int time_opens(const char *path, long n, double *samples, size_t *ns)
{
	long done, i;

	for (done = 0; done < n; done += BATCH) {
		uint64_t t0 = (uint64_t)lz_clock_ns(CLOCK_MONOTONIC);
		for (i = 0; i < BATCH; i++) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			close(fd);
		}
		samples[(*ns)++] = (double)((uint64_t)lz_clock_ns(CLOCK_MONOTONIC) - t0) / BATCH;
	}
	return 0;
}

static void rearm(void *ctx, const char *key, const struct lz_tracker_event *ev)
{
	struct lz_tracker **t = ctx;

	lz_tracker_forget(*t, key);
	atomic_fetch_add(&seen, 1);
}

static int fail(const char *what, const char *why)
{
	printf("{\"error\": \"%s: %s\"}\n", what, why);
	return 1;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int run(const char *prefix, const char *outside, long n, int rounds, long e)
{
	struct lz_tracker_config cfg = { .prefix = prefix, .mode = LZ_TRACKER_FIRST_COMPONENT };
	size_t per_round = (n / rounds + BATCH - 1) / BATCH, nd = 0, na = 0;
	double *det = calloc(per_round * rounds, sizeof(double));
	double *att = calloc(per_round * rounds, sizeof(double));
	struct lz_tracker_stats *st = calloc(1, sizeof(*st));
	static char keys[NKEYS][64]; /* the prefix is a short mkdtemp name */
	struct lz_tracker *t = NULL;
	uint64_t t0, elapsed;
	char err[256];
	int r, rc;
	long i;

	if (!det || !att || !st)
		return fail("memory", strerror(ENOMEM));
	for (r = 0; r < rounds; r++) {
		if ((rc = time_opens(outside, per_round * BATCH, det, &nd)) != 0)
			return fail(outside, strerror(-rc));
		if ((rc = lz_tracker_open(&cfg, &t, err, sizeof(err))) != 0)
			return fail("tracker", err);
		lz_tracker_start(t);
		rc = time_opens(outside, per_round * BATCH, att, &na);
		lz_tracker_close(t);
		if (rc)
			return fail(outside, strerror(-rc));
	}
	double dmed = median(det, nd), amed = median(att, na);

	for (i = 0; i < NKEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "%s/k%04ld/f", prefix, i);
	cfg.on_miss = rearm;
	cfg.ctx = &t;
	if ((rc = lz_tracker_open(&cfg, &t, err, sizeof(err))) != 0)
		return fail("tracker", err);
	if ((rc = lz_tracker_start(t)) != 0) {
		lz_tracker_close(t);
		return fail("tracker thread", strerror(-rc));
	}
	t0 = (uint64_t)lz_clock_ns(CLOCK_MONOTONIC);
	for (i = 0; i < e; i++) {
		int fd = open(keys[i % NKEYS], O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
	}
	elapsed = (uint64_t)lz_clock_ns(CLOCK_MONOTONIC) - t0;
	/* Let the consumer catch up with what was submitted. */
	for (i = 0; i < 2000; i++) {
		if (lz_tracker_stats(t, st) == 0 && atomic_load(&seen) >= st->events)
			break;
		usleep(1000);
	}
	lz_tracker_stats(t, st);
	lz_tracker_close(t);
	printf("{\"overhead_ns_median\": %.1f, \"attached_ns\": %.1f, \"detached_ns\": %.1f, "
	       "\"outside_opens\": %zu, \"opens\": %ld, \"opens_per_s\": %.0f, "
	       "\"events_per_s\": %.0f, \"events\": %lu, \"suppressed\": %llu, \"lost\": %llu}\n",
	       amed - dmed, amed, dmed, nd * BATCH, e, e * 1e9 / elapsed,
	       atomic_load(&seen) * 1e9 / elapsed, atomic_load(&seen),
	       (unsigned long long)st->suppressed, (unsigned long long)st->lost);
	free(det);
	free(att);
	free(st);
	return 0;
}

int main(int argc, char **argv)
{
	long n = 1000000, e = 1000000;
	int rounds = 5, c, rc, fd;
	char prefix[] = "/tmp/lztrack-bench.XXXXXX";
	char outside[sizeof(prefix) + 8];

	while ((c = getopt(argc, argv, "n:r:e:")) != -1) {
		switch (c) {
		case 'n':
			n = atol(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'e':
			e = atol(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s [-n OUTSIDE_OPENS] [-r ROUNDS] [-e FILTERED_OPENS]\n",
				argv[0]);
			return 2;
		}
	}
	if (n < BATCH || rounds < 1 || e < 1) {
		fprintf(stderr, "%s: -n must be >= %d, -r and -e >= 1\n", argv[0], BATCH);
		return 2;
	}
	if (!mkdtemp(prefix))
		return fail("mkdtemp", strerror(errno));
	snprintf(outside, sizeof(outside), "%s-out", prefix);
	fd = open(outside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = fail(outside, strerror(errno));
	} else {
		close(fd);
		rc = run(prefix, outside, n, rounds, e);
		unlink(outside);
	}
	rmdir(prefix);
	return rc;
}
