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

static struct lz_nodes *crash(struct lz_nodes *n)
{
	int kept = fcntl(lz_nodes_fd(n), F_DUPFD_CLOEXEC, 0);

	lz_nodes_close(n);
	return lz_nodes_open(kept);
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
		lz_nodes_set(n, id << 20, id, &h.fh);
	lz_nodes_set(n, 5ull << 20, 0, NULL); /* forgotten */
	make_handle(&h, LZ_NODES_HANDLE_MAX + 1, 1);
	lz_nodes_set(n, 7ull << 40, 1, &h.fh); /* too long a handle: not kept */
	n = crash(n);
	CHECK(lz_nodes_kept(n));
	CHECK(lz_nodes_get(n, 3ull << 20, &count, &out.fh) && count == 3);
	CHECK(out.fh.handle_bytes == 8 && out.fh.f_handle[7] == 0xab);
	CHECK(!lz_nodes_get(n, 5ull << 20, &count, NULL));
	CHECK(lz_nodes_get(n, 2001ull << 20, &count, NULL) && count == 2001);
	CHECK(!lz_nodes_get(n, 7ull << 40, &count, NULL));
	CHECK(!lz_nodes_get(n, 1, &count, NULL)); /* the root is never recorded */
	/* Full, then emptied and filled again: tombstones are cleared out, probes end. */
	make_handle(&h, 8, 0xcd);
	for (uint64_t id = 2; id < 2 + LZ_NODES_MAX; id++)
		lz_nodes_set(n, id, 1, &h.fh);
	CHECK(lz_nodes_get(n, 2, &count, NULL));
	CHECK(!lz_nodes_get(n, 1 + LZ_NODES_MAX, &count, NULL)); /* past three quarters: not kept */
	for (uint64_t id = 2; id < 2 + LZ_NODES_MAX; id++)
		lz_nodes_set(n, id, 0, NULL);
	for (uint64_t id = 1ull << 40; id < (1ull << 40) + LZ_NODES_MAX / 2; id++)
		lz_nodes_set(n, id, 2, &h.fh);
	CHECK(lz_nodes_get(n, (1ull << 40) + LZ_NODES_MAX / 2 - 1, &count, NULL) && count == 2);
	lz_nodes_close(n);
	return unit_finish("test_nodes");
}
