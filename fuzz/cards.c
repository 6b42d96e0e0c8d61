/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The root cards file (images/cards.c), as a damaged disk or a crash leaves
 * it: loading never fails on its content, what it keeps loads again the
 * same (the compaction and the cut of a torn last line lose no card), and a
 * card learnt after it is found by its key and by nothing else.
 */
#include "config.h"
#include "check.h"
#include "images/cards.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void write_input(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	if (path[0] == '\0') {
		char dir[] = "/tmp/fuzz_cards.XXXXXX";
		CHECK(mkdtemp(dir) != NULL);
		snprintf(path, sizeof(path), "%s/image-roots", dir);
	}
	write_input(data, size);
	struct lz_cards *cards = lz_cards_open(path, err, sizeof(err));
	CHECK(cards != NULL);
	size_t n = lz_cards_count(cards);
	struct lz_card_key key = { .name = "fuzz.sqfs", .size = 7, .mtime = { 1, 2 } };
	struct lz_image_card card = { .no_xattrs = true }, got;
	card.root.st_mode = S_IFDIR | 0750;
	card.root.st_ino = 99;
	card.root.st_blksize = 4096;
	lz_cards_put(cards, &key, &card);
	lz_cards_free(cards);

	cards = lz_cards_open(path, err, sizeof(err));
	CHECK(cards != NULL);
	CHECK(lz_cards_count(cards) == n || lz_cards_count(cards) == n + 1);
	CHECK(lz_cards_find(cards, &key, &got) && got.root.st_ino == 99 && got.no_xattrs);
	key.size = 8;
	CHECK(!lz_cards_find(cards, &key, &got));
	lz_cards_free(cards);
	return 0;
}
