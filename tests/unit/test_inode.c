#include "config.h"
#include "fscore/inode.h"
#include "fscore/nodeid.h"
#include "unit.h"

#include <fcntl.h>
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
	struct lz_inode_table *table = lz_inode_table_new();
	int fds_before = count_open_fds();
	uint64_t id = lz_nodeid_make(1, 42);

	struct lz_inode *a = lz_inode_ref(table, id, open_fd(), S_IFREG | 0644);
	CHECK(a != NULL && a->nodeid == id && a->nlookup == 1 && S_ISREG(a->type));
	/* A second lookup of the same node id reuses the inode and closes the new fd. */
	struct lz_inode *b = lz_inode_ref(table, id, open_fd(), S_IFREG);
	CHECK(a == b && b->nlookup == 2);
	CHECK(count_open_fds() == fds_before + 1);
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
	struct lz_inode_table *table = lz_inode_table_new();
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
	struct lz_inode_table *table = lz_inode_table_new();
	unsigned a = lz_inode_source_for_dev(table, makedev(8, 1));
	unsigned b = lz_inode_source_for_dev(table, makedev(0, 50));

	CHECK(a == 1 && b == 2);
	CHECK(lz_inode_source_for_dev(table, makedev(8, 1)) == a);
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

static void test_concurrent(void)
{
	struct race r = { lz_inode_table_new(), lz_nodeid_make(1, 5) };
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

int main(void)
{
	test_ref_and_forget();
	test_many_and_free();
	test_sources();
	test_concurrent();
	return unit_finish("test_inode");
}
