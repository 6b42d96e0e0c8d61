/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Root cards: what an image's root directory looks like (its attributes, and
 * whether the image holds extended attributes), kept by the identity of the
 * image file (its name, size and mtime), so that a remote image is listed
 * without being fetched: a card is learnt when the image is first fetched
 * and serves every later listing, across restarts.
 *
 * Cards persist in one file, a line each, appended as they are learnt; a
 * damaged or torn line is skipped when the file is loaded, and a later line
 * for a name wins. The file is rewritten at load when stale lines outnumber
 * the live ones. Thread-safe. Nothing here knows FUSE or the cache.
 */
#ifndef LAZYFS_CARDS_H
#define LAZYFS_CARDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

struct lz_cards;

struct lz_image_card {
	struct stat root; /* the root's attributes: st_ino is the squashfs inode number */
	bool no_xattrs;	  /* the superblock says the image holds no extended attributes */
};

/* The image file a card belongs to. */
struct lz_card_key {
	const char *name; /* one path component: the object's name */
	uint64_t size;
	struct timespec mtime;
};

/*
 * The cards of file PATH (created when missing, 0600). NULL with a one-line
 * reason in ERR when it cannot be opened or read.
 */
struct lz_cards *lz_cards_open(const char *path, char *err, size_t errlen);
void lz_cards_free(struct lz_cards *cards);

/* The card of KEY's file when one is known for that very size and mtime. */
bool lz_cards_find(struct lz_cards *cards, const struct lz_card_key *key,
		   struct lz_image_card *out);
/* Learns CARD for KEY's file, appended to the file unless it is known already. */
void lz_cards_put(struct lz_cards *cards, const struct lz_card_key *key,
		  const struct lz_image_card *card);
/* How many cards are known (for tests and statistics). */
size_t lz_cards_count(struct lz_cards *cards);

#endif
