/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Timing helper for scripts/bench, compiled on the fly into a temporary
 * directory. Every mode prints one JSON object on stdout; times are in ns.
 *
 *   bench-openloop open LISTFILE PASSES
 *	One untimed pass, then PASSES passes of open(O_RDONLY)+close over every
 *	path in LISTFILE (one per line), each pair timed on its own:
 *	{"n":N,"p50":..,"p90":..,"p99":..,"mean":..,"min":..,"max":..}
 *   bench-openloop coldwarm LISTFILE WARMREPS
 *	For each path in turn: one timed open+close (the first access, "cold"),
 *	then WARMREPS more (warm), reporting the median of those:
 *	{"cold":[..],"warm":[..]}
 *   bench-openloop read FILE BUFSIZE
 *	Reads FILE sequentially with a BUFSIZE buffer: {"bytes":..,"ns":..}
 *   bench-openloop randread FILE BLOCK COUNT SEED
 *	COUNT preads of BLOCK bytes at BLOCK-aligned offsets drawn uniformly
 *	from the whole file (the same offsets for the same SEED), each timed:
 *	{"n":..,"p50":..,"p99":..,"mean":..,"ns":..} (ns: all of them, open
 *	and close included)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "bench-openloop: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
	exit(1);
}

static char **read_list(const char *file, size_t *count)
{
	FILE *f = fopen(file, "r");
	char *line = NULL, **paths = NULL;
	size_t cap = 0, n = 0, alloc = 0;
	ssize_t len;

	if (f == NULL)
		die("cannot open", file);
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 1024;
			paths = realloc(paths, alloc * sizeof(*paths));
			if (paths == NULL)
				die("out of memory", NULL);
		}
		paths[n++] = strdup(line);
	}
	free(line);
	fclose(f);
	*count = n;
	return paths;
}

static uint64_t open_close(const char *path)
{
	uint64_t t0 = now_ns();
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die("open", path);
	close(fd);
	return now_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static int mode_open(const char *list, long passes)
{
	size_t n, total, k = 0;
	char **paths = read_list(list, &n);
	uint64_t *t, sum = 0;

	if (n == 0 || passes < 1)
		return fprintf(stderr, "bench-openloop: nothing to do\n"), 1;
	total = n * (size_t)passes;
	t = malloc(total * sizeof(*t));
	if (t == NULL)
		die("out of memory", NULL);
	for (size_t i = 0; i < n; i++) /* untimed: makes every entry warm */
		open_close(paths[i]);
	for (long p = 0; p < passes; p++)
		for (size_t i = 0; i < n; i++)
			t[k++] = open_close(paths[i]);
	for (size_t i = 0; i < total; i++)
		sum += t[i];
	qsort(t, total, sizeof(*t), cmp_u64);
	printf("{\"n\":%zu,\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"mean\":%.1f,\"min\":%llu,"
	       "\"max\":%llu}\n",
	       total, (unsigned long long)pct(t, total, 50), (unsigned long long)pct(t, total, 90),
	       (unsigned long long)pct(t, total, 99), (double)sum / (double)total,
	       (unsigned long long)t[0], (unsigned long long)t[total - 1]);
	return 0;
}

static int mode_coldwarm(const char *list, long reps)
{
	size_t n;
	char **paths = read_list(list, &n);
	uint64_t *cold, *warm, *w;

	if (n == 0 || reps < 1)
		return fprintf(stderr, "bench-openloop: nothing to do\n"), 1;
	cold = malloc(n * sizeof(*cold));
	warm = malloc(n * sizeof(*warm));
	w = malloc((size_t)reps * sizeof(*w));
	if (cold == NULL || warm == NULL || w == NULL)
		die("out of memory", NULL);
	for (size_t i = 0; i < n; i++) {
		cold[i] = open_close(paths[i]);
		for (long r = 0; r < reps; r++)
			w[r] = open_close(paths[i]);
		qsort(w, (size_t)reps, sizeof(*w), cmp_u64);
		warm[i] = w[reps / 2];
	}
	printf("{\"cold\":[");
	for (size_t i = 0; i < n; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)cold[i]);
	printf("],\"warm\":[");
	for (size_t i = 0; i < n; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)warm[i]);
	printf("]}\n");
	return 0;
}

static int mode_read(const char *file, long bufsize)
{
	char *buf;
	uint64_t bytes = 0, t0, t1;
	ssize_t got;
	int fd;

	if (bufsize < 1 || posix_memalign((void **)&buf, 4096, (size_t)bufsize) != 0)
		die("bad buffer size", NULL);
	t0 = now_ns();
	fd = open(file, O_RDONLY);
	if (fd < 0)
		die("open", file);
	while ((got = read(fd, buf, (size_t)bufsize)) > 0)
		bytes += (uint64_t)got;
	if (got < 0)
		die("read", file);
	close(fd);
	t1 = now_ns();
	printf("{\"bytes\":%llu,\"ns\":%llu}\n", (unsigned long long)bytes,
	       (unsigned long long)(t1 - t0));
	return 0;
}

/* xorshift64*: the same offsets on every system for one seed. */
static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ull;
}

static int mode_randread(const char *file, long block, long count, uint64_t seed)
{
	uint64_t *t, x = seed ? seed : 1, sum = 0, t0;
	struct stat st;
	char *buf;
	int fd;

	if (block < 1 || count < 1 || posix_memalign((void **)&buf, 4096, (size_t)block) != 0)
		die("bad block size or count", NULL);
	t = malloc((size_t)count * sizeof(*t));
	if (t == NULL)
		die("out of memory", NULL);
	t0 = now_ns();
	fd = open(file, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0)
		die("open", file);
	if (st.st_size < block)
		return fprintf(stderr, "bench-openloop: %s is smaller than a block\n", file), 1;
	for (long i = 0; i < count; i++) {
		off_t off = (off_t)(next_rand(&x) % (uint64_t)(st.st_size / block)) * block;
		uint64_t a = now_ns();

		if (pread(fd, buf, (size_t)block, off) != block)
			die("pread", file);
		t[i] = now_ns() - a;
		sum += t[i];
	}
	close(fd);
	t0 = now_ns() - t0;
	qsort(t, (size_t)count, sizeof(*t), cmp_u64);
	printf("{\"n\":%ld,\"p50\":%llu,\"p99\":%llu,\"mean\":%.1f,\"ns\":%llu}\n", count,
	       (unsigned long long)pct(t, (size_t)count, 50),
	       (unsigned long long)pct(t, (size_t)count, 99), (double)sum / (double)count,
	       (unsigned long long)t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "open") == 0)
		return mode_open(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "coldwarm") == 0)
		return mode_coldwarm(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "read") == 0)
		return mode_read(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 6 && strcmp(argv[1], "randread") == 0)
		return mode_randread(argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10),
				     strtoull(argv[5], NULL, 10));
	fprintf(stderr,
		"usage: %s open LIST PASSES | coldwarm LIST REPS | read FILE BUFSIZE | "
		"randread FILE BLOCK COUNT SEED\n",
		argv[0]);
	return 2;
}
