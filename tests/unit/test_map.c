/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"
#include "fscore/map.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static char reports[4096];
static int nreports;

static void collect(void *ctx, const char *message)
{
	(void)ctx;
	nreports++;
	strncat(reports, message, sizeof(reports) - strlen(reports) - 2);
	strcat(reports, "\n");
}

static struct lz_map *parse(const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	struct lz_map *map;

	reports[0] = '\0';
	nreports = 0;
	map = lz_map_parse(f, "test.map", collect, NULL);
	fclose(f);
	return map;
}

static const struct lz_map_node *walk(const struct lz_map *map, const char *a, const char *b)
{
	const struct lz_map_node *node = lz_map_child(&map->root, a);
	return b ? lz_map_child(node, b) : node;
}

static void test_good(void)
{
	struct lz_map *map = parse("# compilers\n"
				   "gcc-15        /efs/img/gcc-15.sqfs\n"
				   "\n"
				   "arm/gcc-12\t/efs/img/arm-gcc-12.sqfs   # trailing comment\n"
				   "arm/clang-17  /efs/img/arm-clang.sqfs\n"
				   "x86/tools/deep/cmake /efs/img/cmake.sqfs\n");

	CHECK(map != NULL && nreports == 0 && map->images == 4 && map->bad_lines == 0);
	CHECK_STR(walk(map, "gcc-15", NULL)->image, "/efs/img/gcc-15.sqfs");
	CHECK(walk(map, "arm", NULL)->image == NULL);
	CHECK(walk(map, "arm", NULL)->nchildren == 2);
	CHECK_STR(walk(map, "arm", "gcc-12")->image, "/efs/img/arm-gcc-12.sqfs");
	CHECK_STR(walk(map, "arm", "gcc-12")->relpath, "arm/gcc-12");
	CHECK_STR(walk(map, "arm", "clang-17")->relpath, "arm/clang-17");
	CHECK(walk(map, "arm", "missing") == NULL);
	CHECK(walk(map, "nothing", NULL) == NULL);
	/* Children are sorted: clang-17 before gcc-12 although listed after. */
	CHECK_STR(walk(map, "arm", NULL)->children[0]->name, "clang-17");
	CHECK(walk(map, "arm", "gcc-12")->index != walk(map, "arm", "clang-17")->index);
	lz_map_free(map);
}

static void test_bad_lines(void)
{
	struct lz_map *map = parse("ok /img/ok.sqfs\n"
				   "/abs/path /img/a.sqfs\n"
				   "a/../etc /img/b.sqfs\n"
				   "./x /img/c.sqfs\n"
				   "a//b /img/d.sqfs\n"
				   "trailing/ /img/e.sqfs\n"
				   "rel relative.sqfs\n"
				   "onlyone\n"
				   "three fields here\n"
				   "ok /img/again.sqfs\n"
				   "ok/inside /img/f.sqfs\n"
				   "dir/x /img/x.sqfs\n"
				   "dir /img/dir.sqfs\n");

	CHECK(map != NULL);
	if (nreports != 11)
		fputs(reports, stderr);
	CHECK(nreports == 11 && map->bad_lines == 11);
	CHECK(map->images == 2);
	CHECK(strstr(reports, "test.map:2: the path must be relative") != NULL);
	CHECK(strstr(reports, "test.map:3: '.' and '..'") != NULL);
	CHECK(strstr(reports, "test.map:5: empty path component") != NULL);
	CHECK(strstr(reports, "test.map:6: trailing") != NULL);
	CHECK(strstr(reports, "test.map:7: the image path must be absolute") != NULL);
	CHECK(strstr(reports, "test.map:8: expected") != NULL);
	CHECK(strstr(reports, "test.map:9: expected") != NULL);
	CHECK(strstr(reports, "test.map:10: the path is mapped twice") != NULL);
	CHECK(strstr(reports, "test.map:11: the path lies inside another mapped image") != NULL);
	CHECK(strstr(reports, "test.map:13: other mapped paths lie inside this one") != NULL);
	/* Refused lines leave nothing behind. */
	CHECK(walk(map, "a", NULL) == NULL && walk(map, ".", NULL) == NULL);
	CHECK(walk(map, "trailing", NULL) == NULL);
	CHECK_STR(walk(map, "ok", NULL)->image, "/img/ok.sqfs");
	CHECK_STR(walk(map, "dir", "x")->image, "/img/x.sqfs");
	lz_map_free(map);
}

static void test_empty_and_long(void)
{
	struct lz_map *map = parse("");
	CHECK(map != NULL && map->images == 0 && map->root.nchildren == 0);
	lz_map_free(map);

	char line[600];
	memset(line, 'n', 300);
	strcpy(line + 300, " /img/long.sqfs\n");
	map = parse(line);
	CHECK(map != NULL && map->images == 0 && nreports == 1);
	CHECK(strstr(reports, "longer than NAME_MAX") != NULL);
	lz_map_free(map);
}

/*
 * After a crash: the same lines give the same crc and, renumbered from the
 * first index the worker before gave, the same indices; nodes are found by
 * index and by path, and later maps are numbered above.
 */
static void test_numbering(void)
{
	const char *text = "arm/gcc-12 /i/a.sqfs\nx86/gcc-15 /i/b.sqfs\nbad line here\n";
	struct lz_map *before = parse(text), *again = parse(text), *other = parse("a /i/c.sqfs\n");
	const struct lz_map_node *node = lz_map_find(before, "x86/gcc-15");

	CHECK(before->crc == again->crc && before->crc != other->crc);
	CHECK(again->first_index >= before->end_index); /* one process: no index given twice */
	CHECK(node != NULL && lz_map_by_index(before, node->index) == node);
	CHECK(lz_map_find(before, "") == &before->root && lz_map_find(before, "x86/no") == NULL);
	lz_map_renumber(again, before->first_index, before->end_index + 10);
	CHECK(again->first_index == before->first_index && again->end_index == before->end_index);
	CHECK(lz_map_find(again, "x86/gcc-15")->index == node->index);
	CHECK(lz_map_find(again, "arm")->index == lz_map_find(before, "arm")->index);
	CHECK(lz_map_by_index(again, node->index) == lz_map_find(again, "x86/gcc-15"));
	CHECK(lz_map_by_index(other, node->index) == NULL);
	CHECK(lz_map_next_index() >= before->end_index + 10);
	lz_map_free(before);
	lz_map_free(again);
	lz_map_free(other);
}

int main(void)
{
	test_good();
	test_bad_lines();
	test_empty_and_long();
	test_numbering();
	return unit_finish("test_map");
}
