/* SPDX-License-Identifier: BSD-2-Clause */
/* The keeper's messages and descriptor list (keeper_msg.h). */
#include "config.h"
#include "keeper_msg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A name the keeper can keep and hand back: it fits, and holds no list separator. */
static bool name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len < LZ_KEEPER_NAME_MAX && strchr(name, ',') == NULL;
}

/* A process id as "ready %d" writes it (digits, the first not 0); else 0. */
static long pid_of(const char *s)
{
	char *end;

	if (*s < '1' || *s > '9')
		return 0;
	errno = 0;
	long pid = strtol(s, &end, 10);
	return errno == 0 && *end == '\0' && pid > 0 && pid <= INT32_MAX ? pid : 0;
}

void lz_keeper_msg_parse(const char *text, struct lz_keeper_msg *m)
{
	*m = (struct lz_keeper_msg){ .kind = LZ_KEEPER_OTHER };
	if (strncmp(text, "store ", 6) == 0 && name_ok(text + 6)) {
		m->kind = LZ_KEEPER_STORE;
		m->name = text + 6;
	} else if (strcmp(text, "unstore") == 0) {
		m->kind = LZ_KEEPER_UNSTORE;
	} else if (strncmp(text, "ready ", 6) == 0) {
		m->kind = LZ_KEEPER_READY;
		m->pid = pid_of(text + 6);
	}
}

/* One item, NAME:FD (changed in place), into OUT; false when it is malformed. */
static bool parse_item(char *item, struct lz_kept_fd *out)
{
	char *colon = strrchr(item, ':'), *end;
	long fd;

	if (colon == NULL)
		return false;
	*colon = '\0';
	fd = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || fd < 3 || fd > INT32_MAX ||
	    !name_ok(item))
		return false;
	snprintf(out->name, sizeof(out->name), "%s", item);
	out->fd = (int)fd;
	return true;
}

size_t lz_keeper_fds_parse(const char *list, struct lz_kept_fd *out, size_t max)
{
	char copy[LZ_KEEPER_FDS_MAX], *save = NULL;
	size_t n = 0;

	if (snprintf(copy, sizeof(copy), "%s", list) >= (int)sizeof(copy))
		return 0;
	for (char *item = strtok_r(copy, ",", &save); item != NULL && n < max;
	     item = strtok_r(NULL, ",", &save))
		if (parse_item(item, &out[n]))
			n++;
	return n;
}

void lz_keeper_fds_add(char *list, size_t size, const char *name, int fd)
{
	size_t len = strlen(list);

	snprintf(list + len, size - len, "%s%s:%d", len > 0 ? "," : "", name, fd);
}
