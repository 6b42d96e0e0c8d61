/* SPDX-License-Identifier: BSD-2-Clause */
/* The state lines of a takeover record (snapline.h). */
#include "config.h"
#include "snapline.h"
#include "handover.h"
#include "fscore/inode.h"
#include "fscore/nodeid.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define FIELDS_MAX 16

/* A descriptor index field: -1 (none) or an index an int holds. */
static bool fd_field(const char *f, int *out)
{
	long long v;

	if (!lz_handover_num(f, -1, INT32_MAX, &v))
		return false;
	*out = (int)v;
	return true;
}

/* An escaped string field into *OUT (NULL for "-"); false when malformed. */
static bool str_field(char *f, const char **out)
{
	bool ok;

	*out = lz_handover_unescape(f, &ok);
	return ok;
}

static bool nsec_field(const char *f, long *out)
{
	long long v;

	if (!lz_handover_num(f, 0, 999999999, &v))
		return false;
	*out = (long)v;
	return true;
}

static bool s64_field(const char *f, int64_t *out)
{
	long long v;

	if (!lz_handover_num(f, INT64_MIN, INT64_MAX, &v))
		return false;
	*out = v;
	return true;
}

/* A field within [MIN, MAX] as an unsigned (MIN >= 0). */
static bool u_field(const char *f, long long min, long long max, unsigned *out)
{
	long long v;

	if (!lz_handover_num(f, min, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

static bool source_line(char **f, int n, struct lz_snap_source *s)
{
	return n == 2 && u_field(f[0], 1, LZ_NODEID_FIRST_RESERVED - 1, &s->index) &&
	       lz_handover_unum(f[1], &s->dev);
}

static bool sqfs_line(char **f, int n, struct lz_snap_sqfs *s)
{
	if ((n != 2 && n != 3 && n != 6) || !u_field(f[0], 0, 65535, &s->slot) ||
	    !fd_field(f[1], &s->fd))
		return false;
	s->unfetched = n == 6;
	s->kernel = -1; /* without the field: an older daemon's record */
	if (n == 3) {
		unsigned kernel;
		if (!u_field(f[2], 0, 1, &kernel))
			return false; /* "Y" used to read as 0 */
		s->kernel = (int)kernel;
	}
	if (!s->unfetched)
		return true;
	return str_field(f[2], &s->name) && s->name != NULL && lz_handover_unum(f[3], &s->size) &&
	       s64_field(f[4], &s->sec) && nsec_field(f[5], &s->nsec);
}

static bool image_line(char **f, int n, struct lz_snap_image *m)
{
	long long size;

	if (n != 13 && n != 14)
		return false;
	m->has_key = n == 14;
	if (m->has_key && !str_field(f[13], &m->key))
		return false;
	if (!str_field(f[0], &m->name) || !str_field(f[1], &m->path) ||
	    !str_field(f[3], &m->entry) || m->name == NULL || !lz_handover_unum(f[2], &m->parent) ||
	    !u_field(f[4], 0, UINT32_MAX, &m->generation) ||
	    !u_field(f[5], 0, UINT32_MAX, &m->pins) || !fd_field(f[6], &m->root_fd) ||
	    !lz_handover_num(f[7], -1, 65535, &size) || !lz_handover_unum(f[8], &m->dev) ||
	    !lz_handover_unum(f[9], &m->ino))
		return false;
	m->slot = (int)size;
	if (!lz_handover_num(f[10], 0, INT64_MAX, &size) || !s64_field(f[11], &m->sec) ||
	    !nsec_field(f[12], &m->nsec))
		return false;
	m->size = size;
	return true;
}

static bool inode_line(char **f, int n, struct lz_snap_inode *i)
{
	long long slot;
	unsigned type, kind;

	/* A 13th field, the path in the images tree, only when there is one. */
	if ((n != 12 && n != 13) || (n == 13 && (!str_field(f[12], &i->tree) || i->tree == NULL)) ||
	    !str_field(f[8], &i->image) || !str_field(f[11], &i->maprel) ||
	    !lz_handover_unum(f[0], &i->nodeid) || i->nodeid == 0 ||
	    !u_field(f[1], LZ_INODE_FD, LZ_INODE_SQFS, &kind) ||
	    !u_field(f[2], 0, 0177777, &type) || !lz_handover_unum(f[3], &i->nlookup) ||
	    !fd_field(f[4], &i->path_fd) || !fd_field(f[5], &i->read_fd) ||
	    !fd_field(f[6], &i->backing_id) || i->backing_id < 0 ||
	    !u_field(f[7], 0, UINT32_MAX, &i->opens) || !lz_handover_num(f[9], -1, 65535, &slot) ||
	    !lz_handover_unum(f[10], &i->sqfs_id))
		return false;
	i->kind = (int)kind;
	i->type = (mode_t)type;
	i->slot = (int)slot;
	return true;
}

static bool remote_line(char **f, int n, struct lz_snap_remote *r)
{
	unsigned type, held;

	if (n != 11 || !str_field(f[10], &r->path) || r->path == NULL ||
	    !lz_handover_unum(f[0], &r->nodeid) ||
	    lz_nodeid_source(r->nodeid) != LZ_NODEID_REMOTE_SOURCE ||
	    !u_field(f[1], 0, 0177777, &type) || (!S_ISREG(type) && !S_ISDIR(type)) ||
	    !lz_handover_unum(f[2], &r->nlookup) || !fd_field(f[3], &r->read_fd) ||
	    !fd_field(f[4], &r->backing_id) || r->backing_id < 0 ||
	    !u_field(f[5], 0, UINT32_MAX, &r->opens) || !u_field(f[6], 0, 1, &held) ||
	    !lz_handover_unum(f[7], &r->size) || !s64_field(f[8], &r->sec) ||
	    !nsec_field(f[9], &r->nsec))
		return false;
	r->type = (mode_t)type;
	r->held = held != 0;
	return true;
}

int lz_snapline_decode(char *line, struct lz_snapline *out, const char **why)
{
	static const struct {
		const char *word;
		enum lz_snapline_kind kind;
		const char *why;
	} words[] = {
		{ "source", LZ_SNAP_SOURCE, "malformed source line" },
		{ "sqfs", LZ_SNAP_SQFS, "malformed sqfs line" },
		{ "image", LZ_SNAP_IMAGE, "malformed image line" },
		{ "inode", LZ_SNAP_INODE, "malformed inode line" },
		{ "remote", LZ_SNAP_REMOTE, "malformed remote line" },
	};
	char *f[FIELDS_MAX], *rest = strchr(line, ' ');
	size_t w;
	bool ok = false;

	if (rest == NULL)
		return 0; /* no fields: no state line */
	*rest++ = '\0';
	for (w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (strcmp(line, words[w].word) == 0)
			break;
	if (w == sizeof(words) / sizeof(words[0]))
		return 0;
	memset(out, 0, sizeof(*out));
	out->kind = words[w].kind;
	int n = lz_handover_split(rest, f, FIELDS_MAX);
	switch (out->kind) {
	case LZ_SNAP_SOURCE:
		ok = source_line(f, n, &out->u.source);
		break;
	case LZ_SNAP_SQFS:
		ok = sqfs_line(f, n, &out->u.sqfs);
		break;
	case LZ_SNAP_IMAGE:
		ok = image_line(f, n, &out->u.image);
		break;
	case LZ_SNAP_INODE:
		ok = inode_line(f, n, &out->u.inode);
		break;
	case LZ_SNAP_REMOTE:
		ok = remote_line(f, n, &out->u.remote);
		break;
	}
	*why = words[w].why;
	return ok ? 1 : -1;
}

static void encode_sqfs(struct lz_handover *h, const struct lz_snap_sqfs *s)
{
	if (!s->unfetched) {
		lz_handover_printf(h, "sqfs %u %d", s->slot, s->fd);
		if (s->kernel >= 0)
			lz_handover_printf(h, " %d", s->kernel);
		lz_handover_printf(h, "\n");
		return;
	}
	lz_handover_printf(h, "sqfs %u %d", s->slot, s->fd);
	lz_handover_string(h, s->name);
	lz_handover_printf(h, " %" PRIu64 " %" PRId64 " %ld\n", s->size, s->sec, s->nsec);
}

static void encode_image(struct lz_handover *h, const struct lz_snap_image *m)
{
	lz_handover_printf(h, "image");
	lz_handover_string(h, m->name);
	lz_handover_string(h, m->path);
	lz_handover_printf(h, " %" PRIu64, m->parent);
	lz_handover_string(h, m->entry);
	lz_handover_printf(h, " %u %u %d %d %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64 " %ld",
			   m->generation, m->pins, m->root_fd, m->slot, m->dev, m->ino, m->size,
			   m->sec, m->nsec);
	if (m->has_key)
		lz_handover_string(h, m->key);
	lz_handover_printf(h, "\n");
}

static void encode_inode(struct lz_handover *h, const struct lz_snap_inode *i)
{
	lz_handover_printf(h, "inode %" PRIu64 " %d %u %" PRIu64 " %d %d %d %u", i->nodeid, i->kind,
			   (unsigned)i->type, i->nlookup, i->path_fd, i->read_fd, i->backing_id,
			   i->opens);
	lz_handover_string(h, i->image);
	lz_handover_printf(h, " %d %" PRIu64, i->slot, i->sqfs_id);
	lz_handover_string(h, i->maprel);
	if (i->tree != NULL)
		lz_handover_string(h, i->tree);
	lz_handover_printf(h, "\n");
}

static void encode_remote(struct lz_handover *h, const struct lz_snap_remote *r)
{
	lz_handover_printf(
		h, "remote %" PRIu64 " %u %" PRIu64 " %d %d %u %d %" PRIu64 " %" PRId64 " %ld",
		r->nodeid, (unsigned)r->type, r->nlookup, r->read_fd, r->backing_id, r->opens,
		r->held ? 1 : 0, r->size, r->sec, r->nsec);
	lz_handover_string(h, r->path);
	lz_handover_printf(h, "\n");
}

void lz_snapline_encode(struct lz_handover *h, const struct lz_snapline *l)
{
	switch (l->kind) {
	case LZ_SNAP_SOURCE:
		lz_handover_printf(h, "source %u %" PRIu64 "\n", l->u.source.index,
				   l->u.source.dev);
		break;
	case LZ_SNAP_SQFS:
		encode_sqfs(h, &l->u.sqfs);
		break;
	case LZ_SNAP_IMAGE:
		encode_image(h, &l->u.image);
		break;
	case LZ_SNAP_INODE:
		encode_inode(h, &l->u.inode);
		break;
	case LZ_SNAP_REMOTE:
		encode_remote(h, &l->u.remote);
		break;
	}
}
