/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "fscore/inode.h"
#include "fscore/nodeid.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int open_fd(void)
{
	return open("/", O_PATH | O_CLOEXEC);
}

static int count_open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void test_ref_and_forget(void)
{
	struct lz_inode_table *table = lz_inode_table_new(16384);
	int fds_before = count_open_fds();
	uint64_t id = lz_nodeid_make(1, 42);

	struct lz_inode *a = lz_inode_ref(table, id, open_fd(), S_IFREG | 0644);
	CHECK(a != NULL && a->nodeid == id && a->nlookup == 1 && S_ISREG(a->type));
	/* A second lookup of the same node id reuses the inode and closes the new fd. */
	struct lz_inode *b = lz_inode_ref(table, id, open_fd(), S_IFREG);
	CHECK(a == b && b->nlookup == 2);
	CHECK(count_open_fds() == fds_before + 2); /* the inode's, and its source's anchor */
	CHECK(lz_inode_find(table, id) == a);
	CHECK(lz_inode_count(table) == 1);

	lz_inode_forget(table, id, 1);
	CHECK(lz_inode_find(table, id) == a);
	lz_inode_forget(table, id, 1);
	CHECK(lz_inode_find(table, id) == NULL);
	CHECK(lz_inode_count(table) == 0);
	CHECK(count_open_fds() == fds_before);

	/* Forgetting more than was looked up, or an unknown id, is harmless. */
	lz_inode_ref(table, id, open_fd(), S_IFDIR);
	lz_inode_forget(table, id, 1000);
	lz_inode_forget(table, lz_nodeid_make(9, 9), 1);
	CHECK(lz_inode_count(table) == 0);
	CHECK(count_open_fds() == fds_before);
	lz_inode_table_free(table);
}

static void test_many_and_free(void)
{
	struct lz_inode_table *table = lz_inode_table_new(16384);
	int fds_before = count_open_fds();

	for (uint64_t i = 1; i <= 1000; i++)
		lz_inode_ref(table, lz_nodeid_make(1 + (unsigned)(i % 3), i), open_fd(), S_IFREG);
	CHECK(lz_inode_count(table) == 1000);
	for (uint64_t i = 1; i <= 1000; i++)
		CHECK(lz_inode_find(table, lz_nodeid_make(1 + (unsigned)(i % 3), i)) != NULL);
	lz_inode_table_free(table); /* closes what is left */
	CHECK(count_open_fds() == fds_before);
}

static void test_sources(void)
{
	struct lz_inode_table *table = lz_inode_table_new(16384);
	unsigned a = lz_inode_source_for_dev(table, makedev(8, 1));
	unsigned b = lz_inode_source_for_dev(table, makedev(0, 50));

	CHECK(a == 1 && b == 2);
	CHECK(lz_inode_source_for_dev(table, makedev(8, 1)) == a);
	lz_inode_table_free(table);
}

static void note_sources(void *ctx, unsigned sources)
{
	*(unsigned *)ctx = sources;
}

/* After a crash: the dead worker's numbers stay taken; the new count is told. */
static void test_reserved_sources(void)
{
	struct lz_inode_table *table = lz_inode_table_new(16384);
	unsigned told = 0;

	CHECK(lz_inode_source_for_dev(table, makedev(8, 1)) == 1);
	CHECK(lz_inode_reserve_sources(table, 5) == 0);
	lz_inode_table_on_sources(table, note_sources, &told);
	CHECK(told == 5);
	CHECK(lz_inode_source_for_dev(table, makedev(0, 50)) == 6); /* not 2: reserved */
	CHECK(told == 6);
	CHECK(lz_inode_source_for_dev(table, makedev(8, 1)) == 1);
	CHECK(lz_inode_reserve_sources(table, LZ_NODEID_MAX_SOURCE) == -1); /* too many */
	CHECK(lz_inode_source_for_dev(table, makedev(0, 51)) == 7);
	lz_inode_table_free(table);
}

/*
 * After a crash: an image takes the reserved number it had, once; a device
 * reused by another image never takes it, the number stays its image's.
 */
static void test_image_sources(void)
{
	struct lz_inode_table *table = lz_inode_table_new(16384);
	int k, l; /* two images */

	CHECK(lz_inode_source_for_dev(table, makedev(8, 1)) == 1);
	CHECK(lz_inode_reserve_sources(table, 4) == 0);
	lz_inode_source_for_image(table, makedev(0, 60), &k, 3);
	CHECK(lz_inode_source_for_dev(table, makedev(0, 60)) == 3);
	lz_inode_source_for_image(table, makedev(0, 60), &k, 3); /* looked up again: the same */
	CHECK(lz_inode_source_for_dev(table, makedev(0, 60)) == 3);
	lz_inode_source_for_image(table, makedev(0, 61), &k, 3); /* mounted again: a new number */
	CHECK(lz_inode_source_for_dev(table, makedev(0, 61)) == 5);
	lz_inode_source_for_image(table, makedev(0, 60), &l, 0); /* k's device, now l's */
	CHECK(lz_inode_source_for_dev(table, makedev(0, 60)) == 6);
	lz_inode_source_for_image(table, makedev(0, 62), &l, 2); /* unclaimed: l takes its own */
	CHECK(lz_inode_source_for_dev(table, makedev(0, 62)) == 2);
	lz_inode_source_for_image(table, makedev(0, 63), &l, 9); /* never reserved: nothing */
	CHECK(lz_inode_source_for_dev(table, makedev(0, 63)) == 7);
	lz_inode_table_free(table);
}

struct race {
	struct lz_inode_table *table;
	uint64_t id;
};

static void *ref_forget_loop(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 20000; i++) {
		lz_inode_ref(r->table, r->id, open_fd(), S_IFREG);
		lz_inode_forget(r->table, r->id, 1);
	}
	return NULL;
}

static void note_count(void *ctx, const struct lz_inode *inode, uint64_t nlookup)
{
	(void)inode;
	*(uint64_t *)ctx = nlookup;
}

/* A hold keeps an inode like a reference, but the count told is the kernel's alone. */
static void test_holds(void)
{
	struct lz_inode_table *table = lz_inode_table_new(16384);
	uint64_t told = 99, id = lz_nodeid_make(1, 42);

	lz_inode_table_on_count(table, note_count, &told);
	struct lz_inode *inode = lz_inode_ref(table, id, -1, S_IFREG);
	CHECK(inode != NULL && told == 1);
	lz_inode_hold(table, inode);
	lz_inode_ref(table, id, -1, S_IFREG);
	CHECK(told == 2 && inode->nlookup == 3);
	lz_inode_forget(table, id, 2); /* the kernel forgets it: the hold keeps it */
	CHECK(told == 0 && lz_inode_find(table, id) == inode);
	lz_inode_unhold(table, inode);
	CHECK(lz_inode_find(table, id) == NULL);
	lz_inode_table_free(table);
}

static void test_concurrent(void)
{
	struct race r = { lz_inode_table_new(16384), lz_nodeid_make(1, 5) };
	pthread_t threads[4];
	int fds_before = count_open_fds();

	for (int i = 0; i < 4; i++)
		pthread_create(&threads[i], NULL, ref_forget_loop, &r);
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	CHECK(lz_inode_count(r.table) == 0);
	CHECK(count_open_fds() == fds_before);
	lz_inode_table_free(r.table);
}

/* With room for 8 descriptors, 200 inodes keep 8 open, and each still opens its own file. */
static void test_bounded_descriptors(void)
{
	char dir[] = "/tmp/test_inode.XXXXXX", path[64];
	struct lz_inode_table *table = lz_inode_table_new(8);
	struct lz_inode *inodes[200];
	ino_t inos[200];
	int fds_before = count_open_fds();

	CHECK(mkdtemp(dir) != NULL);
	/* The directory first, as a lookup sees it: the anchor of its filesystem. */
	struct stat dst;
	int dfd = open(dir, O_PATH | O_CLOEXEC);
	CHECK(fstat(dfd, &dst) == 0);
	struct lz_inode *top = lz_inode_ref(table, lz_nodeid_make(1, dst.st_ino), dfd, S_IFDIR);
	CHECK(top != NULL);
	for (int i = 0; i < 200; i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/%d", dir, i);
		close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
		int fd = open(path, O_PATH | O_CLOEXEC);
		CHECK(fstat(fd, &st) == 0);
		inos[i] = st.st_ino;
		inodes[i] =
			lz_inode_ref(table, lz_nodeid_make(1, (uint64_t)st.st_ino), fd, S_IFREG);
		CHECK(inodes[i] != NULL);
	}
	CHECK(count_open_fds() <= fds_before + 8 + 1);
	for (int i = 0; i < 200; i++) {
		struct stat st;
		int fd = lz_inode_path_get(table, inodes[i]);
		CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == inos[i]);
		lz_inode_path_put(table, inodes[i]);
	}
	CHECK(count_open_fds() <= fds_before + 8 + 1);
	/* A file removed while its descriptor was closed for room is stale, not another file. */
	snprintf(path, sizeof(path), "%s/%d", dir, 0);
	CHECK(unlink(path) == 0);
	for (int round = 0; round < 3; round++) /* the others push its descriptor out */
		for (int i = 1; i < 200; i++) {
			CHECK(lz_inode_path_get(table, inodes[i]) >= 0);
			lz_inode_path_put(table, inodes[i]);
		}
	CHECK(lz_inode_path_get(table, inodes[0]) == -ESTALE);
	CHECK(lz_inode_path_get(table, top) >= 0); /* the anchor's own inode */
	lz_inode_path_put(table, top);
	for (int i = 1; i < 200; i++) {
		snprintf(path, sizeof(path), "%s/%d", dir, i);
		unlink(path);
	}
	lz_inode_table_free(table);
	CHECK(count_open_fds() == fds_before);
	rmdir(dir);
}

int main(void)
{
	test_ref_and_forget();
	test_many_and_free();
	test_sources();
	test_reserved_sources();
	test_image_sources();
	test_holds();
	test_concurrent();
	test_bounded_descriptors();
	return unit_finish("test_inode");
}
