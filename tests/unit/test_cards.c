/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Root cards: what is learnt is found again by the same name, size and mtime
 * only, in this process and from the file in the next; damaged, torn and
 * hostile lines are skipped; a file mostly of stale lines is compacted.
 */
#include "config.h"
#include "images/cards.h"
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct lz_image_card card_of(mode_t mode, ino_t ino, time_t mtime)
{
	struct lz_image_card c = { .no_xattrs = true };

	c.root.st_mode = S_IFDIR | mode;
	c.root.st_ino = ino;
	c.root.st_nlink = 3;
	c.root.st_uid = 1000;
	c.root.st_gid = 100;
	c.root.st_size = 57;
	c.root.st_blocks = 1;
	c.root.st_blksize = 131072;
	c.root.st_mtim.tv_sec = mtime;
	c.root.st_mtim.tv_nsec = 0;
	return c;
}

static struct lz_card_key key_of(const char *name, uint64_t size, time_t mtime)
{
	return (struct lz_card_key){ .name = name, .size = size, .mtime = { mtime, 5 } };
}

static void append(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void test_learn_and_reload(const char *path)
{
	char err[256];
	struct lz_cards *cards = lz_cards_open(path, err, sizeof(err));
	struct lz_card_key gcc = key_of("gcc 13.sqfs", 4096, 1000);
	struct lz_image_card card = card_of(0711, 42, 981173106), got;

	CHECK(cards != NULL);
	CHECK(!lz_cards_find(cards, &gcc, &got));
	lz_cards_put(cards, &gcc, &card);
	lz_cards_put(cards, &gcc, &card); /* known: not written twice */
	CHECK(lz_cards_find(cards, &gcc, &got));
	CHECK(got.root.st_mode == (S_IFDIR | 0711) && got.root.st_ino == 42 && got.no_xattrs);
	struct lz_card_key changed = key_of("gcc 13.sqfs", 4097, 1000);
	CHECK(!lz_cards_find(cards, &changed, &got)); /* another size: another file */
	lz_cards_free(cards);

	/* Torn, damaged and hostile lines around the good one are skipped. */
	append(path, "1 12 1 0 40755 2 2 0 0 0 0 4096 1 0 0 ../escape\n");
	append(path, "1 12 1 0 100644 2 2 0 0 0 0 4096 1 0 0 notadir.sqfs\n");
	append(path, "1 12 1 2000000000 40755 2 2 0 0 0 0 4096 1 0 0 badns.sqfs\n");
	append(path, "garbage\n");
	int fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "1 12\0 1 0\n", 11) == 11); /* a NUL inside */
	close(fd);
	append(path, "1 12 1 0 40755 2 2 0 0 0 0 4096 1 0 0 torn.sqfs");
	cards = lz_cards_open(path, err, sizeof(err));
	CHECK(cards != NULL);
	CHECK(lz_cards_count(cards) == 1);
	CHECK(lz_cards_find(cards, &gcc, &got));
	CHECK(got.root.st_uid == 1000 && got.root.st_gid == 100 && got.root.st_nlink == 3);
	CHECK(got.root.st_mtim.tv_sec == 981173106 && got.root.st_size == 57);
	lz_cards_free(cards);
}

static void test_later_line_wins_and_compaction(const char *path)
{
	char err[256];
	struct lz_cards *cards = lz_cards_open(path, err, sizeof(err));
	struct lz_card_key k = key_of("churn.sqfs", 1, 1);
	struct lz_image_card got;
	struct stat st;

	CHECK(cards != NULL);
	for (int i = 0; i < 200; i++) {
		k.size = (uint64_t)i + 1; /* replaced 200 times */
		struct lz_image_card c = card_of(0755, (ino_t)i + 1, 7);
		lz_cards_put(cards, &k, &c);
	}
	lz_cards_free(cards);
	cards = lz_cards_open(path, err, sizeof(err));
	CHECK(cards != NULL && lz_cards_count(cards) == 2);
	CHECK(lz_cards_find(cards, &k, &got) && got.root.st_ino == 200);
	lz_cards_free(cards);
	CHECK(stat(path, &st) == 0 && st.st_size < 1000); /* compacted to its two live lines */
	CHECK((st.st_mode & 0777) == 0600);
}

int main(void)
{
	char dir[] = "/tmp/test_cards.XXXXXX", err[256];

	if (mkdtemp(dir) == NULL)
		return 1;
	char *path = xasprintf("%s/image-roots", dir);
	test_learn_and_reload(path);
	test_later_line_wins_and_compaction(path);
	CHECK(lz_cards_open("/nonexistent/dir/image-roots", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "No such file") != NULL);
	unlink(path);
	char *tmp = xasprintf("%s.new", path);
	unlink(tmp);
	free(tmp);
	free(path);
	rmdir(dir);
	return unit_finish("test_cards");
}
