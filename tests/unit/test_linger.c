/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The table of parked backing ids: taking one back, the least recently parked
 * pushed out when full, revoking by node id and by image, a table of size 0.
 * No /dev/fuse here: closing is a no-op, what is checked is what stays parked.
 */
#include "config.h"
#include "fscore/linger.h"
#include "unit.h"

static void test_park_take(void)
{
	struct lz_linger *l = lz_linger_new(4);

	CHECK(l != NULL);
	CHECK(lz_linger_take(l, 7) == 0);
	lz_linger_park(l, 7, 70, NULL);
	lz_linger_park(l, 8, 80, NULL);
	CHECK(lz_linger_count(l) == 2);
	CHECK(lz_linger_take(l, 7) == 70);
	CHECK(lz_linger_take(l, 7) == 0); /* taken once */
	CHECK(lz_linger_count(l) == 1);
	CHECK(lz_linger_take(l, 8) == 80);
	CHECK(lz_linger_count(l) == 0);
	lz_linger_free(l);
}

static void test_lru(void)
{
	struct lz_linger *l = lz_linger_new(3);

	for (uint64_t n = 1; n <= 3; n++)
		lz_linger_park(l, n, (int)n * 10, NULL);
	CHECK(lz_linger_take(l, 1) == 10); /* taken back, then parked again: now the newest */
	lz_linger_park(l, 1, 10, NULL);
	lz_linger_park(l, 4, 40, NULL); /* full: node 2, the oldest, goes */
	CHECK(lz_linger_count(l) == 3);
	CHECK(lz_linger_take(l, 2) == 0);
	CHECK(lz_linger_take(l, 3) == 30);
	CHECK(lz_linger_take(l, 1) == 10);
	CHECK(lz_linger_take(l, 4) == 40);
	/* Many more than fit, with colliding hashes: the table stays consistent. */
	for (uint64_t n = 0; n < 1000; n++)
		lz_linger_park(l, n << 32, (int)n + 1, NULL);
	CHECK(lz_linger_count(l) == 3);
	CHECK(lz_linger_take(l, 997ull << 32) == 998);
	CHECK(lz_linger_take(l, 999ull << 32) == 1000);
	CHECK(lz_linger_take(l, 996ull << 32) == 0);
	lz_linger_free(l);
}

static void test_revoke(void)
{
	struct lz_linger *l = lz_linger_new(16);
	int image_a, image_b;

	for (uint64_t n = 1; n <= 6; n++)
		lz_linger_park(l, n, (int)n, n % 2 ? (void *)&image_a : (void *)&image_b);
	lz_linger_revoke(l, 2);
	lz_linger_revoke(l, 99); /* not parked: nothing happens */
	CHECK(lz_linger_count(l) == 5);
	CHECK(lz_linger_take(l, 2) == 0);
	lz_linger_revoke_owner(l, &image_a);
	CHECK(lz_linger_count(l) == 2);
	CHECK(lz_linger_take(l, 1) == 0 && lz_linger_take(l, 3) == 0 && lz_linger_take(l, 5) == 0);
	CHECK(lz_linger_take(l, 4) == 4 && lz_linger_take(l, 6) == 6);
	lz_linger_park(l, 7, 7, NULL);
	lz_linger_park(l, 8, 8, &image_b);
	lz_linger_clear(l);
	CHECK(lz_linger_count(l) == 0 && lz_linger_take(l, 7) == 0 && lz_linger_take(l, 8) == 0);
	lz_linger_free(l);
}

static void test_none_kept(void)
{
	struct lz_linger *l = lz_linger_new(0);

	lz_linger_park(l, 1, 10, NULL); /* closed at once */
	CHECK(lz_linger_count(l) == 0);
	CHECK(lz_linger_take(l, 1) == 0);
	lz_linger_free(l);
}

int main(void)
{
	test_park_take();
	test_lru();
	test_revoke();
	test_none_kept();
	return unit_finish("test_linger");
}
