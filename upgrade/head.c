/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The head of a takeover record (head.h). Each head line comes once, its
 * fields as printf wrote them: a line repeated or malformed refuses the
 * record (one that named its mountpoint twice used to leak the first).
 */
#include "config.h"
#include "head.h"
#include "handover.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	SEEN_MOUNT = 1u << 0,
	SEEN_MINOR = 1u << 1,
	SEEN_INIT = 1u << 2,
	SEEN_FUSE = 1u << 3,
	SEEN_CONTROL = 1u << 4,
};

/* Whether the line BIT names comes for the first time (then noted in SEEN). */
static bool once(unsigned *seen, unsigned bit)
{
	if (*seen & bit)
		return false;
	*seen |= bit;
	return true;
}

/* A descriptor index field: -1 (none) or an index an int holds. */
static bool index_field(const char *field, long *out)
{
	long long v;

	if (!lz_handover_num(field, -1, INT32_MAX, &v))
		return false;
	*out = (long)v;
	return true;
}

/* "control LISTEN HTTP PATH" */
static int control_line(struct lz_head *head, char **f, int n)
{
	bool ok;

	if (n != 3 || !index_field(f[0], &head->listen_index) ||
	    !index_field(f[1], &head->http_index))
		return -1;
	char *path = lz_handover_unescape(f[2], &ok);
	return ok && (path == NULL || (head->control_path = strdup(path)) != NULL) ? 0 : -1;
}

/*
 * One line after the first, its first WORD and its N fields F, into HEAD:
 * 0, 1 when it is no head line (the state's: snapshot.c), -1 if malformed.
 */
static int head_line(struct lz_head *head, const char *word, char **f, int n, unsigned *seen)
{
	long long v;
	bool ok;

	if (strcmp(word, "mountpoint") == 0) {
		char *p = n == 1 && once(seen, SEEN_MOUNT) ? lz_handover_unescape(f[0], &ok) : NULL;
		return p != NULL && ok && p[0] == '/' && (head->mountpoint = strdup(p)) ? 0 : -1;
	}
	if (strcmp(word, "minor") == 0) {
		if (n != 1 || !once(seen, SEEN_MINOR) || !lz_handover_num(f[0], 0, UINT32_MAX, &v))
			return -1;
		head->minor = (unsigned)v;
		return 0;
	}
	if (strcmp(word, "init") == 0)
		return n == 1 && once(seen, SEEN_INIT)
			       ? lz_handover_unbytes(f[0], &head->init, &head->init_len)
			       : -1;
	if (strcmp(word, "fuse") == 0)
		return n == 1 && once(seen, SEEN_FUSE) && index_field(f[0], &head->fuse_index) ? 0
											       : -1;
	if (strcmp(word, "control") == 0)
		return once(seen, SEEN_CONTROL) ? control_line(head, f, n) : -1;
	return 1;
}

/* The first line, "version N": 0, -1 if malformed, -2 (with ERR) for a version not read here. */
static int version_line(struct lz_head *head, const char *word, char **f, int n, char *err,
			size_t errlen)
{
	long long v;

	if (strcmp(word, "version") != 0 || n != 1 || !lz_handover_num(f[0], INT_MIN, INT_MAX, &v))
		return -1;
	if (v < LZ_RECORD_VERSION_OLDEST || v > LZ_RECORD_VERSION) {
		snprintf(err, errlen,
			 "state record version %lld, this binary reads versions %d to %d", v,
			 LZ_RECORD_VERSION_OLDEST, LZ_RECORD_VERSION);
		return -2;
	}
	head->version = (int)v;
	return 0;
}

/* Line number N, L (changed in place), into HEAD: 0, -1 if malformed, -2 with ERR. */
static int parse_line(struct lz_head *head, char *l, unsigned n, unsigned *seen, char *err,
		      size_t errlen)
{
	char *f[4], *rest = strchr(l, ' ');
	int nf = 0;

	if (rest != NULL) {
		*rest++ = '\0';
		nf = lz_handover_split(rest, f, 3);
	}
	if (n == 1)
		return version_line(head, l, f, nf, err, errlen);
	return head_line(head, l, f, nf, seen) < 0 ? -1 : 0;
}

/* What the whole record must hold: 0, or -1 with ERR. */
static int check(const struct lz_head *head, bool end, char *err, size_t errlen)
{
	const struct lz_fuse_in_header *in = (const struct lz_fuse_in_header *)head->init;

	if (!end)
		snprintf(err, errlen, "state record is truncated (no end line)");
	else if (head->mountpoint == NULL || head->init == NULL || head->fuse_index < 0)
		snprintf(err, errlen, "state record lacks the mountpoint, FUSE_INIT or connection");
	else if (head->init_len < sizeof(*in) || in->opcode != LZ_FUSE_INIT_OPCODE ||
		 in->len != head->init_len)
		snprintf(err, errlen, "state record's FUSE_INIT request is malformed");
	else
		return 0;
	return -1;
}

int lz_head_parse(const char *text, struct lz_head *head, char *err, size_t errlen)
{
	char *copy = strdup(text), *save = NULL;
	unsigned n = 0, seen = 0;
	bool end = false;
	int rc = 0;

	*head = (struct lz_head){ .fuse_index = -1, .listen_index = -1, .http_index = -1 };
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (char *l = strtok_r(copy, "\n", &save); l != NULL && rc == 0;
	     l = strtok_r(NULL, "\n", &save)) {
		n++;
		if (end)
			rc = -1; /* nothing after the end */
		else if (n > 1 && strcmp(l, "end") == 0)
			end = true;
		else
			rc = parse_line(head, l, n, &seen, err, errlen);
		if (rc == -1)
			snprintf(err, errlen, "state record line %u is malformed", n);
	}
	free(copy);
	if (n == 0 && rc == 0) {
		snprintf(err, errlen, "state record has no version line");
		rc = -1;
	}
	if (rc == 0)
		rc = check(head, end, err, errlen);
	return rc < 0 ? -1 : 0;
}

void lz_head_free(struct lz_head *head)
{
	free(head->mountpoint);
	free(head->init);
	free(head->control_path);
	*head = (struct lz_head){ .fuse_index = -1, .listen_index = -1, .http_index = -1 };
}

void lz_head_write_mount(struct lz_handover *h, const char *mountpoint, unsigned minor,
			 const void *init, size_t init_len)
{
	lz_handover_printf(h, "mountpoint");
	lz_handover_string(h, mountpoint);
	lz_handover_printf(h, "\nminor %u\ninit", minor);
	lz_handover_bytes(h, init, init_len);
	lz_handover_printf(h, "\n");
}

void lz_head_write_fds(struct lz_handover *h, int fuse_index, int listen_index, int http_index,
		       const char *control_path)
{
	lz_handover_printf(h, "fuse %d\ncontrol %d %d", fuse_index, listen_index, http_index);
	lz_handover_string(h, control_path);
	lz_handover_printf(h, "\n");
}
