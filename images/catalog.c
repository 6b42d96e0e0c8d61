/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A directory's entries, read with a deadline (catalog.h). The
 * catalog is shared by its owner and the helper reading, each holding a
 * reference: a helper stuck in readdir outlives lz_catalog_free.
 */
#include "config.h"
#include "catalog.h"
#include "common/clock.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lz_catalog {
	pthread_mutex_t lock;
	pthread_cond_t read_done; /* CLOCK_MONOTONIC */
	int dir_fd;
	char *what;	     /* the directory, in messages */
	unsigned refs;	     /* the owner's, and the reading helper's */
	bool reading;	     /* a helper reads now */
	unsigned listings;   /* listings read so far (successful or not) */
	int error;	     /* of the last read: 0 or -errno */
	char **names;	     /* the last listing read without error: a DT_* byte, then the name */
	size_t count;	     /* its names */
	bool have;	     /* names holds a listing */
	double stale_logged; /* CLOCK_MONOTONIC seconds of the last "stale" warning */
};

struct lz_catalog *lz_catalog_new(int dir_fd, const char *what)
{
	struct lz_catalog *c = calloc(1, sizeof(*c));
	pthread_condattr_t attr;

	if (c == NULL)
		return NULL;
	c->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
	if (c->dir_fd < 0 || (c->what = strdup(what)) == NULL) {
		if (c->dir_fd >= 0)
			close(c->dir_fd);
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->read_done, &attr);
	pthread_condattr_destroy(&attr);
	c->refs = 1;
	return c;
}

static void free_names(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* Drops a reference, under c->lock, which is gone with the last one. */
static void put_locked(struct lz_catalog *c)
{
	if (--c->refs > 0) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	pthread_mutex_unlock(&c->lock);
	free_names(c->names, c->count);
	free(c->what);
	close(c->dir_fd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->read_done);
	free(c);
}

void lz_catalog_free(struct lz_catalog *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	put_locked(c);
}

/* ENTRY's type; asked of the directory when its filesystem does not say. */
static unsigned char type_of(DIR *dir, const struct dirent *entry)
{
	struct stat st;

	if (entry->d_type != DT_UNKNOWN)
		return entry->d_type;
	if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode)   ? DT_DIR
	       : S_ISREG(st.st_mode) ? DT_REG
	       : S_ISLNK(st.st_mode) ? DT_LNK
				     : DT_UNKNOWN;
}

/* A DT_* byte and NAME, in one string. */
static char *typed_name(unsigned char type, const char *name)
{
	size_t len = strlen(name);
	char *s = malloc(len + 2);

	if (s != NULL) {
		s[0] = (char)type;
		memcpy(s + 1, name, len + 1);
	}
	return s;
}

/* Every entry of the directory into *NAMES (typed_name): 0 or -errno. This is what may hang. */
static int read_names(int dir_fd, char ***names, size_t *count)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t cap = 0;
	struct dirent *entry;
	DIR *dir;

	*names = NULL;
	*count = 0;
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -errno;
	}
	errno = 0;
	while ((entry = readdir(dir)) != NULL) {
		if (*count == cap) {
			cap = cap ? cap * 2 : 64;
			char **more = realloc(*names, cap * sizeof(**names));
			if (more == NULL)
				break;
			*names = more;
		}
		if (((*names)[*count] = typed_name(type_of(dir, entry), entry->d_name)) == NULL)
			break;
		++*count;
		errno = 0;
	}
	int err = errno != 0 ? -errno : 0;
	closedir(dir);
	if (err != 0) {
		free_names(*names, *count);
		*names = NULL;
		*count = 0;
	}
	return err;
}

/* Reads a listing and keeps it; consumes the reference the caller took for it. */
static void read_now(struct lz_catalog *c)
{
	char **names;
	size_t count;
	int err = read_names(c->dir_fd, &names, &count);

	pthread_mutex_lock(&c->lock);
	c->error = err;
	if (err == 0) {
		free_names(c->names, c->count);
		c->names = names;
		c->count = count;
		c->have = true;
	}
	c->listings++;
	c->reading = false;
	pthread_cond_broadcast(&c->read_done);
	put_locked(c);
}

static void *reader(void *arg)
{
	read_now(arg);
	return NULL;
}

/* Starts a helper unless one reads already; under c->lock. */
static void start_reading_locked(struct lz_catalog *c)
{
	pthread_attr_t attr;
	pthread_t thread;

	if (c->reading)
		return;
	c->reading = true;
	c->refs++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&thread, &attr, reader, c);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		/* No thread: read here, with no bound (rare: out of threads or memory). */
		pthread_mutex_unlock(&c->lock);
		read_now(c); /* drops the reference taken above */
		pthread_mutex_lock(&c->lock);
	}
}

int lz_catalog_list(struct lz_catalog *c, double deadline_s, lz_catalog_fn *fn, void *ctx)
{
	struct timespec until = lz_clock_after(CLOCK_MONOTONIC, deadline_s);
	int err = 0;

	pthread_mutex_lock(&c->lock);
	/*
	 * A helper reading already is waited for, not joined by a second: its
	 * listing may miss an image added meanwhile (a lookup still finds it).
	 */
	unsigned before = c->listings;
	start_reading_locked(c);
	while (c->listings == before) {
		int rc = deadline_s > 0 ? pthread_cond_timedwait(&c->read_done, &c->lock, &until)
					: pthread_cond_wait(&c->read_done, &c->lock);
		if (rc == ETIMEDOUT)
			break;
	}
	bool fresh = c->listings != before;
	if (fresh && c->error != 0) {
		err = c->error;
	} else if (!fresh && !c->have) {
		err = -ETIMEDOUT;
	} else {
		if (!fresh && lz_clock_s(CLOCK_MONOTONIC) - c->stale_logged > 60) {
			c->stale_logged = lz_clock_s(CLOCK_MONOTONIC);
			lz_warn("%s did not list within %gs: its listing shows the images it "
				"had before",
				c->what, deadline_s);
		}
		for (size_t i = 0; i < c->count; i++)
			fn(ctx, c->names[i] + 1, (unsigned char)c->names[i][0]);
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}
