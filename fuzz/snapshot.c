/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The state lines of a takeover record (upgrade/snapline.c), each line of
 * the input decoded as lz_snapshot_restore decodes it: a line is a state
 * line exactly when its first word is one of the five and fields follow; a
 * refusal names the line's kind; a line let through has every field in the
 * range restore relies on (slots, descriptor indexes, node ids and their
 * sources, file types, nanoseconds), every field written as the writer
 * writes it (a decimal number, "-", or "=" and an escaped string: no sign
 * or space a number parser skips), and encoded again (as the old daemon
 * writes it) it is one line that decodes to the same values.
 */
#include "config.h"
#include "check.h"
#include "fscore/inode.h"
#include "fscore/nodeid.h"
#include "upgrade/handover.h"
#include "upgrade/snapline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const words[] = { "source", "sqfs", "image", "inode", "remote" };

static bool same_str(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static void check_ranges(const struct lz_snapline *l)
{
	switch (l->kind) {
	case LZ_SNAP_SOURCE:
		CHECK(l->u.source.index >= 1 && l->u.source.index < LZ_NODEID_FIRST_RESERVED);
		break;
	case LZ_SNAP_SQFS: {
		const struct lz_snap_sqfs *s = &l->u.sqfs;
		CHECK(s->slot <= 65535 && s->fd >= -1 && s->kernel >= -1 && s->kernel <= 1);
		CHECK(!s->unfetched || (s->name != NULL && s->nsec >= 0 && s->nsec < 1000000000L));
		break;
	}
	case LZ_SNAP_IMAGE: {
		const struct lz_snap_image *m = &l->u.image;
		CHECK(m->name != NULL && m->root_fd >= -1 && m->slot >= -1 && m->slot <= 65535);
		CHECK(m->size >= 0 && m->nsec >= 0 && m->nsec < 1000000000L);
		CHECK(m->has_key || m->key == NULL);
		break;
	}
	case LZ_SNAP_INODE: {
		const struct lz_snap_inode *i = &l->u.inode;
		CHECK(i->nodeid != 0 && i->kind >= LZ_INODE_FD && i->kind <= LZ_INODE_SQFS);
		CHECK(i->type <= 0177777 && i->path_fd >= -1 && i->read_fd >= -1);
		CHECK(i->backing_id >= 0 && i->slot >= -1 && i->slot <= 65535);
		break;
	}
	case LZ_SNAP_REMOTE: {
		const struct lz_snap_remote *r = &l->u.remote;
		CHECK(lz_nodeid_source(r->nodeid) == LZ_NODEID_REMOTE_SOURCE && r->path != NULL);
		CHECK(S_ISREG(r->type) || S_ISDIR(r->type));
		CHECK(r->read_fd >= -1 && r->backing_id >= 0 && r->nsec >= 0 &&
		      r->nsec < 1000000000L);
		break;
	}
	}
}

static bool same_sqfs(const struct lz_snap_sqfs *a, const struct lz_snap_sqfs *b)
{
	return a->slot == b->slot && a->fd == b->fd && a->unfetched == b->unfetched &&
	       (a->unfetched ? same_str(a->name, b->name) && a->size == b->size &&
				       a->sec == b->sec && a->nsec == b->nsec
			     : a->kernel == b->kernel);
}

static bool same_image(const struct lz_snap_image *a, const struct lz_snap_image *b)
{
	return same_str(a->name, b->name) && same_str(a->path, b->path) &&
	       same_str(a->entry, b->entry) && a->parent == b->parent && a->dev == b->dev &&
	       a->ino == b->ino && a->generation == b->generation && a->pins == b->pins &&
	       a->root_fd == b->root_fd && a->slot == b->slot && a->size == b->size &&
	       a->sec == b->sec && a->nsec == b->nsec && a->has_key == b->has_key &&
	       same_str(a->key, b->key);
}

static bool same_inode(const struct lz_snap_inode *a, const struct lz_snap_inode *b)
{
	return a->nodeid == b->nodeid && a->nlookup == b->nlookup && a->sqfs_id == b->sqfs_id &&
	       a->kind == b->kind && a->type == b->type && a->path_fd == b->path_fd &&
	       a->read_fd == b->read_fd && a->backing_id == b->backing_id && a->slot == b->slot &&
	       a->opens == b->opens && same_str(a->image, b->image) &&
	       same_str(a->maprel, b->maprel) && same_str(a->tree, b->tree);
}

static bool same_remote(const struct lz_snap_remote *a, const struct lz_snap_remote *b)
{
	return a->nodeid == b->nodeid && a->nlookup == b->nlookup && a->size == b->size &&
	       a->type == b->type && a->read_fd == b->read_fd && a->backing_id == b->backing_id &&
	       a->opens == b->opens && a->held == b->held && a->sec == b->sec &&
	       a->nsec == b->nsec && same_str(a->path, b->path);
}

static bool same(const struct lz_snapline *a, const struct lz_snapline *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case LZ_SNAP_SOURCE:
		return a->u.source.index == b->u.source.index && a->u.source.dev == b->u.source.dev;
	case LZ_SNAP_SQFS:
		return same_sqfs(&a->u.sqfs, &b->u.sqfs);
	case LZ_SNAP_IMAGE:
		return same_image(&a->u.image, &b->u.image);
	case LZ_SNAP_INODE:
		return same_inode(&a->u.inode, &b->u.inode);
	case LZ_SNAP_REMOTE:
		return same_remote(&a->u.remote, &b->u.remote);
	}
	return false;
}

/* L encoded as the old daemon writes it: one line, decoding to L again. */
static void round_trip(const struct lz_snapline *l)
{
	struct lz_handover w = { 0 };
	struct lz_snapline again;
	const char *why;

	lz_snapline_encode(&w, l);
	CHECK(!w.failed && w.len > 0 && w.text[w.len - 1] == '\n');
	CHECK(strchr(w.text, '\n') == w.text + w.len - 1);
	w.text[w.len - 1] = '\0';
	CHECK(lz_snapline_decode(w.text, &again, &why) == 1);
	CHECK(same(l, &again));
	lz_handover_free(&w);
}

/* Each field as the writer makes it: a decimal number (%d, %u, PRIu64...), "-", or "=" and a string
 * escaped. */
static void check_fields(const char *line)
{
	const char *f = strchr(line, ' ');

	while (f != NULL) {
		f += strspn(f, " ");
		size_t len = strcspn(f, " ");
		if (len == 0)
			break;
		if (f[0] != '=') {
			size_t digits = strspn(f + (f[0] == '-'), "0123456789");
			CHECK(len == (f[0] == '-') + digits && (digits > 0 || len == 1));
		} else {
			for (size_t i = 1; i < len; i++)
				CHECK(f[i] > ' ' && f[i] < 0x7f);
		}
		f = strchr(f, ' ');
	}
}

static void one_line(char *line)
{
	char *copy = strdup(line);
	size_t word_len = strcspn(line, " ");
	bool fields = line[word_len] == ' ', known = false;
	char word[8] = "";
	struct lz_snapline l;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		known |= strlen(words[i]) == word_len && strncmp(line, words[i], word_len) == 0;
	if (known)
		memcpy(word, line, word_len);
	CHECK(copy != NULL);
	int got = lz_snapline_decode(line, &l, &why);
	CHECK(got == 0 ? !(known && fields) : known && fields);
	if (got < 0) {
		CHECK(why != NULL && strncmp(why, "malformed ", 10) == 0);
		CHECK(strncmp(why + 10, word, strlen(word)) == 0 && why[10 + strlen(word)] == ' ');
	} else if (got > 0) {
		check_fields(copy);
		check_ranges(&l);
		round_trip(&l);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *save = NULL;

	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	/* As lz_snapshot_restore splits the record's text. */
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		one_line(line);
	free(text);
	return 0;
}
