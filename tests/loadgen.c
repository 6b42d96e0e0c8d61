/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Load for t_load.sh: THREADS threads each do OPS rounds of open, read, close
 * and stat on files of images under MP (paths from a list file), and SCANNERS
 * threads list directories meanwhile. Every unexpected result is counted and
 * the first few printed; the exit status is 0 only when there was none.
 *
 *   loadgen LIST THREADS OPS SCANNERS
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char **paths;
static size_t npaths;
static long ops;
static atomic_long errors, done_ops, scans;
static atomic_bool stop;

static void report(const char *what, const char *path, int err)
{
	if (atomic_fetch_add(&errors, 1) < 10)
		fprintf(stderr, "loadgen: %s %s: %s\n", what, path, strerror(err));
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
	char buf[4096];

	for (long i = 0; i < ops; i++) {
		const char *p = paths[rand_r(&seed) % npaths];
		struct stat st;
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			report("open", p, errno);
			continue;
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		/* Every file holds its own path: a read of another file would show. */
		if (n < 0)
			report("read", p, errno);
		else if ((size_t)n < strlen(p) || memcmp(buf, p, strlen(p)) != 0)
			report("content of", p, EIO);
		close(fd);
		if (stat(p, &st) != 0)
			report("stat", p, errno);
		atomic_fetch_add(&done_ops, 1);
	}
	return NULL;
}

/* Readdir storms: the root and every image's directory, over and over. */
static void *scanner(void *arg)
{
	const char *root = arg;

	while (!atomic_load(&stop)) {
		DIR *d = opendir(root);
		struct dirent *e;
		if (d == NULL) {
			report("opendir", root, errno);
			continue;
		}
		while ((e = readdir(d)) != NULL)
			;
		closedir(d);
		for (size_t i = 0; i < npaths && !atomic_load(&stop); i += 7) {
			char dir[4096];
			snprintf(dir, sizeof(dir), "%s", paths[i]);
			*strrchr(dir, '/') = '\0';
			d = opendir(dir);
			if (d == NULL) {
				report("opendir", dir, errno);
				continue;
			}
			while ((e = readdir(d)) != NULL)
				;
			closedir(d);
		}
		atomic_fetch_add(&scans, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char line[4096], root[4096];
	size_t cap = 0;
	FILE *f;

	if (argc != 5 || (f = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "usage: loadgen LIST THREADS OPS SCANNERS\n");
		return 2;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (npaths == cap &&
		    (paths = realloc(paths, (cap = cap ? 2 * cap : 256) * sizeof(*paths))) == NULL)
			return 2;
		paths[npaths++] = strdup(line);
	}
	fclose(f);
	if (npaths == 0)
		return 2;
	int threads = atoi(argv[2]), nscan = atoi(argv[4]);
	ops = atol(argv[3]);
	pthread_t t[threads + nscan];
	/* The mount's root: the list's paths are MP/IMAGE/dir/file. */
	snprintf(root, sizeof(root), "%s", paths[0]);
	for (int k = 0; k < 3; k++)
		*strrchr(root, '/') = '\0';
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
	for (int i = 0; i < nscan; i++)
		pthread_create(&t[threads + i], NULL, scanner, root);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < nscan; i++)
		pthread_join(t[threads + i], NULL);
	printf("loadgen: %ld operations, %ld directory scans, %ld errors\n", atomic_load(&done_ops),
	       atomic_load(&scans), atomic_load(&errors));
	return atomic_load(&errors) == 0 ? 0 : 1;
}
