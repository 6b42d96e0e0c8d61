/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The node record across a simulated crash (reopened from a copy of its
 * descriptor): counts and handles kept, a count of 0 or a missing handle
 * removes a record, a probe goes on past a removed one, and a handle too
 * long for a record is not kept.
 */
#include "config.h"
#include "upgrade/nodes.h"
#include "unit.h"

#include <fcntl.h>
#include <unistd.h>

union handle {
	struct file_handle fh;
	char room[sizeof(struct file_handle) + 128];
};

static void make_handle(union handle *h, unsigned bytes, unsigned char fill)
{
	h->fh.handle_bytes = bytes;
	h->fh.handle_type = 1;
	memset(h->fh.f_handle, fill, bytes);
}

/* A record whose map index follows from its count, so that both are checked. */
static void set(struct lz_nodes *n, uint64_t id, uint64_t count, const struct file_handle *h)
{
	struct lz_node_record r = { count, count + 100 };

	lz_nodes_set(n, id, &r, h);
}

static bool get(struct lz_nodes *n, uint64_t id, uint64_t *count, struct file_handle *h)
{
	struct lz_node_record r;

	if (!lz_nodes_get(n, id, &r, h))
		return false;
	*count = r.nlookup;
	return r.map_index == r.nlookup + 100;
}

static struct lz_nodes *crash(struct lz_nodes *n)
{
	int kept = fcntl(lz_nodes_fd(n), F_DUPFD_CLOEXEC, 0);

	lz_nodes_close(n);
	return lz_nodes_open(kept);
}

/* Which image each source held: kept, the last source of a name found by it, cleared. */
static void test_sources(void)
{
	struct lz_nodes *n = lz_nodes_open(-1);
	char name[LZ_NODES_NAME_MAX], tall[LZ_NODES_NAME_MAX + 1];
	struct lz_image_file file = { 1, 2, 3, 4 }, other = { 5, 6, 7, 8 }, got;

	lz_nodes_set_source(n, 2, "gcc-13", &file);
	lz_nodes_set_source(n, 3, "clang-17", &other);
	lz_nodes_set_source(n, 4, "gcc-13", &file); /* mounted again */
	lz_nodes_set_source(n, 5, "old", &file);
	lz_nodes_set_source(n, 5, "new", &file); /* the number reused */
	memset(tall, 'x', sizeof(tall) - 1);
	tall[sizeof(tall) - 1] = '\0';
	lz_nodes_set_source(n, 6, tall, &file);		/* too long: not recorded */
	CHECK(lz_nodes_image_source(n, "gcc-13") == 0); /* only what workers before named */
	n = crash(n);
	CHECK(lz_nodes_source_image(n, 3, name, &got) && strcmp(name, "clang-17") == 0);
	CHECK(got.dev == 5 && got.ino == 6 && got.size == 7 && got.mtime_ns == 8);
	CHECK(lz_nodes_source_image(n, 5, name, &got) && strcmp(name, "new") == 0);
	CHECK(lz_nodes_source_is(n, 5, "new") && !lz_nodes_source_is(n, 5, "old"));
	CHECK(!lz_nodes_source_image(n, 6, name, &got) && !lz_nodes_source_image(n, 7, name, &got));
	CHECK(lz_nodes_image_source(n, "gcc-13") == 4);
	CHECK(lz_nodes_image_source(n, "clang-17") == 3);
	CHECK(lz_nodes_image_source(n, "old") == 0 && lz_nodes_image_source(n, "gcc") == 0);
	struct lz_nodes_map m = { 0 }, noted;
	CHECK(!lz_nodes_noted_map(n, &noted));
	m = (struct lz_nodes_map){ .crc = 0xfeed, .first = 40, .next = 90 };
	lz_nodes_note_map(n, &m);
	lz_nodes_clear_sources(n);
	CHECK(!lz_nodes_source_image(n, 3, name, &got) && lz_nodes_image_source(n, "gcc-13") == 0);
	n = crash(n);
	CHECK(!lz_nodes_source_image(n, 4, name, &got));
	CHECK(lz_nodes_noted_map(n, &noted) && noted.crc == 0xfeed && noted.first == 40 &&
	      noted.next == 90);
	lz_nodes_close(n);
}

/* Remote objects' paths: kept with their records, dropped with them. */
static void test_paths(void)
{
	struct lz_nodes *n = lz_nodes_open(-1);
	char path[LZ_NODES_PATH_MAX], tall[LZ_NODES_PATH_MAX + 1];
	union handle h;

	make_handle(&h, 0, 0);
	set(n, 10, 1, &h.fh);
	set(n, 11, 1, &h.fh);
	lz_nodes_set_path(n, 10, "clips/a.mp4");
	lz_nodes_set_path(n, 10, "clips/other.mp4"); /* a node id's path never changes */
	lz_nodes_set_path(n, 12, "clips/b.mp4");     /* no record: not kept */
	memset(tall, 'x', sizeof(tall) - 1);
	tall[sizeof(tall) - 1] = '\0';
	lz_nodes_set_path(n, 11, tall); /* too long: not kept */
	n = crash(n);
	CHECK(lz_nodes_get_path(n, 10, path) && strcmp(path, "clips/a.mp4") == 0);
	CHECK(!lz_nodes_get_path(n, 11, path) && !lz_nodes_get_path(n, 12, path));
	set(n, 10, 0, NULL); /* forgotten: its path goes too */
	CHECK(!lz_nodes_get_path(n, 10, path));
	lz_nodes_close(n);
}

int main(void)
{
	struct lz_nodes *n = lz_nodes_open(-1);
	union handle h, out;
	uint64_t count;

	CHECK(n != NULL && !lz_nodes_kept(n));
	make_handle(&h, 8, 0xab);
	/* Node ids that share a home slot would probe: many of them. */
	for (uint64_t id = 2; id < 2002; id++)
		set(n, id << 20, id, &h.fh);
	set(n, 5ull << 20, 0, NULL); /* forgotten */
	make_handle(&h, LZ_NODES_HANDLE_MAX + 1, 1);
	set(n, 7ull << 40, 1, &h.fh); /* too long a handle: not kept */
	n = crash(n);
	CHECK(lz_nodes_kept(n));
	CHECK(get(n, 3ull << 20, &count, &out.fh) && count == 3);
	CHECK(out.fh.handle_bytes == 8 && out.fh.f_handle[7] == 0xab);
	CHECK(!get(n, 5ull << 20, &count, NULL));
	CHECK(get(n, 2001ull << 20, &count, NULL) && count == 2001);
	CHECK(!get(n, 7ull << 40, &count, NULL));
	CHECK(!get(n, 1, &count, NULL)); /* the root is never recorded */
	/* Full, then emptied and filled again: tombstones are cleared out, probes end. */
	make_handle(&h, 8, 0xcd);
	for (uint64_t id = 2; id < 2 + LZ_NODES_MAX; id++)
		set(n, id, 1, &h.fh);
	CHECK(get(n, 2, &count, NULL));
	CHECK(!get(n, 1 + LZ_NODES_MAX, &count, NULL)); /* past three quarters: not kept */
	for (uint64_t id = 2; id < 2 + LZ_NODES_MAX; id++)
		set(n, id, 0, NULL);
	for (uint64_t id = 1ull << 40; id < (1ull << 40) + LZ_NODES_MAX / 2; id++)
		set(n, id, 2, &h.fh);
	CHECK(get(n, (1ull << 40) + LZ_NODES_MAX / 2 - 1, &count, NULL) && count == 2);
	lz_nodes_close(n);
	test_sources();
	test_paths();
	return unit_finish("test_nodes");
}
