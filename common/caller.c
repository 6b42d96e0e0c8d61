/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A requesting process's credentials from /proc (caller.h).
 */
#include "config.h"
#include "caller.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* status with LZ_CALLER_GROUPS groups of 10 digits fits; a larger one has too many. */
#define STATUS_MAX (64 * 1024)

/* The value of field NAME ("Uid") in TEXT: after "NAME:", up to the line's end; NULL. */
static const char *field(const char *text, size_t len, const char *name, const char **end)
{
	size_t n = strlen(name);
	const char *p = text, *stop = text + len;

	while (p < stop) {
		const char *nl = memchr(p, '\n', (size_t)(stop - p));
		const char *eol = nl ? nl : stop;
		if ((size_t)(eol - p) > n && memcmp(p, name, n) == 0 && p[n] == ':') {
			*end = eol;
			return p + n + 1;
		}
		p = eol + 1;
	}
	return NULL;
}

/*
 * Up to MAX decimal numbers from P to END into OUT: how many, -E2BIG when
 * there are more, -EINVAL on anything but numbers and blanks.
 */
static long numbers(const char *p, const char *end, uint32_t *out, size_t max)
{
	size_t n = 0;

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			return (long)n;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (n == max)
			return -E2BIG;
		uint32_t v = 0;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			if (v > (UINT32_MAX - (uint32_t)(*p - '0')) / 10)
				return -EINVAL;
			v = v * 10 + (uint32_t)(*p - '0');
		}
		out[n++] = v;
	}
}

/* The four ids of field NAME ("Uid", "Gid"): 0 or -EINVAL. */
static int ids(const char *text, size_t len, const char *name, uint32_t out[4])
{
	const char *end, *p = field(text, len, name, &end);

	return p != NULL && numbers(p, end, out, 4) == 4 ? 0 : -EINVAL;
}

static int groups(const char *text, size_t len, struct lz_caller *c)
{
	const char *end, *p = field(text, len, "Groups", &end);
	long n;

	if (p == NULL)
		return -EINVAL;
	if ((n = numbers(p, end, c->groups, LZ_CALLER_GROUPS)) < 0)
		return (int)n;
	c->ngroups = (size_t)n;
	return 0;
}

int lz_caller_parse(const char *text, size_t len, struct lz_caller *c)
{
	const char *end, *p;
	char hex[17];
	int err;

	memset(c, 0, sizeof(*c));
	if ((err = ids(text, len, "Uid", c->uid)) != 0 ||
	    (err = ids(text, len, "Gid", c->gid)) != 0 || (err = groups(text, len, c)) != 0)
		return err;
	if ((p = field(text, len, "CapEff", &end)) == NULL)
		return -EINVAL;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p != 16)
		return -EINVAL;
	memcpy(hex, p, 16);
	hex[16] = '\0';
	if (strspn(hex, "0123456789abcdef") != 16)
		return -EINVAL;
	c->cap_eff = strtoull(hex, NULL, 16);
	return 0;
}

/* Reads /proc/PID/NAME into BUF (SIZE bytes, NUL-terminated): its length, or -errno. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[64];
	size_t got = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT || errno == EACCES ? -ESRCH : -errno;
	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;
			close(fd);
			return err;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return got == size - 1 ? -E2BIG : (ssize_t)got;
}

/*
 * Whether uid_map TEXT maps every id to itself: the initial namespace's. A
 * namespace set up that way by a privileged process counts the same; its
 * root was made by someone holding the capabilities already.
 */
static bool identity_map(const char *text)
{
	unsigned long inside, outside, count;
	int used = 0;

	return sscanf(text, " %lu %lu %lu %n", &inside, &outside, &count, &used) == 3 &&
	       inside == 0 && outside == 0 && count == UINT32_MAX && text[used] == '\0';
}

int lz_caller_read(pid_t pid, struct lz_caller *c)
{
	char map[256];
	char *buf;
	ssize_t len;
	int err;

	if (pid <= 0)
		return -ESRCH;
	if ((buf = malloc(STATUS_MAX)) == NULL)
		return -ENOMEM;
	len = read_proc(pid, "status", buf, STATUS_MAX);
	err = len < 0 ? (int)len : lz_caller_parse(buf, (size_t)len, c);
	free(buf);
	if (err != 0)
		return err;
	len = read_proc(pid, "uid_map", map, sizeof(map));
	c->init_userns = len > 0 && identity_map(map);
	if (!c->init_userns)
		c->cap_eff = 0;
	return 0;
}

bool lz_caller_in_group(const struct lz_caller *c, gid_t gid)
{
	if (c->gid[LZ_ID_FS] == gid)
		return true;
	for (size_t i = 0; i < c->ngroups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

bool lz_caller_capable(const struct lz_caller *c, unsigned cap)
{
	return c->init_userns && cap < 64 && (c->cap_eff >> cap & 1) != 0;
}
