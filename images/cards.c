/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Root cards (cards.h): a hash table by name, loaded from and appended to a
 * file of lines
 *
 *   1 SIZE MTIME_S MTIME_NS MODE INO NLINK UID GID RSIZE BLOCKS BLKSIZE RMTIME_S RMTIME_NS
 *     NO_XATTRS NAME
 *
 * (one line; R*: the root's), the name last since it may hold spaces.
 */
#include "config.h"
#include "cards.h"
#include "common/names.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CARD_BUCKETS 4096u
#define LINE_MAX_LEN (NAME_MAX + 512) /* a line written: the name is at most NAME_MAX */

struct card {
	struct card *next;
	uint64_t size;
	struct timespec mtime;
	struct lz_image_card card;
	char name[];
};

struct lz_cards {
	pthread_mutex_t lock;
	int fd; /* O_APPEND */
	char *path;
	size_t count;
	struct card *buckets[CARD_BUCKETS];
};

static struct card **slot_of(struct lz_cards *cards, const char *name)
{
	struct card **p = &cards->buckets[lz_hash32(name) % CARD_BUCKETS];

	while (*p != NULL && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	return p;
}

/* Sets NAME's card (replacing the one it had); false when out of memory. */
static bool set_locked(struct lz_cards *cards, const struct lz_card_key *key,
		       const struct lz_image_card *card)
{
	struct card **p = slot_of(cards, key->name), *c = *p;

	if (c == NULL) {
		size_t len = strlen(key->name) + 1;
		if ((c = calloc(1, sizeof(*c) + len)) == NULL)
			return false;
		memcpy(c->name, key->name, len);
		*p = c;
		cards->count++;
	}
	c->size = key->size;
	c->mtime = key->mtime;
	c->card = *card;
	return true;
}

static int format_line(char *buf, size_t len, const struct lz_card_key *key,
		       const struct lz_image_card *card)
{
	const struct stat *st = &card->root;

	return snprintf(
		buf, len, "1 %" PRIu64 " %lld %ld %o %ju %ju %u %u %jd %jd %ld %lld %ld %d %s\n",
		key->size, (long long)key->mtime.tv_sec, key->mtime.tv_nsec, (unsigned)st->st_mode,
		(uintmax_t)st->st_ino, (uintmax_t)st->st_nlink, (unsigned)st->st_uid,
		(unsigned)st->st_gid, (intmax_t)st->st_size, (intmax_t)st->st_blocks,
		(long)st->st_blksize, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		card->no_xattrs ? 1 : 0, key->name);
}

static bool valid_ns(long ns)
{
	return ns >= 0 && ns < 1000000000L;
}

/* One line of the file into KEY (NAME points into LINE) and CARD; false when it is damaged. */
static bool parse_line(char *line, struct lz_card_key *key, struct lz_image_card *card)
{
	unsigned mode, uid, gid;
	uintmax_t ino, nlink;
	intmax_t rsize, blocks;
	long long mtime_s, rmtime_s;
	long mtime_ns, rmtime_ns, blksize;
	int no_xattrs, name_at = -1;
	size_t len = strlen(line);

	if (len == 0 || line[len - 1] != '\n')
		return false; /* torn by a crash */
	line[len - 1] = '\0';
	if (sscanf(line, "1 %" SCNu64 " %lld %ld %o %ju %ju %u %u %jd %jd %ld %lld %ld %d %n",
		   &key->size, &mtime_s, &mtime_ns, &mode, &ino, &nlink, &uid, &gid, &rsize,
		   &blocks, &blksize, &rmtime_s, &rmtime_ns, &no_xattrs, &name_at) != 14 ||
	    name_at < 0)
		return false;
	key->name = line + name_at;
	if (lz_name_check(key->name) != 0 || !S_ISDIR(mode) || !valid_ns(mtime_ns) ||
	    !valid_ns(rmtime_ns) || rsize < 0 || blocks < 0 || blksize <= 0 ||
	    (no_xattrs != 0 && no_xattrs != 1))
		return false;
	key->mtime = (struct timespec){ .tv_sec = mtime_s, .tv_nsec = mtime_ns };
	memset(card, 0, sizeof(*card));
	card->root.st_mode = mode;
	card->root.st_ino = ino;
	card->root.st_nlink = nlink;
	card->root.st_uid = uid;
	card->root.st_gid = gid;
	card->root.st_size = rsize;
	card->root.st_blocks = blocks;
	card->root.st_blksize = blksize;
	card->root.st_mtim = (struct timespec){ .tv_sec = rmtime_s, .tv_nsec = rmtime_ns };
	card->root.st_atim = card->root.st_mtim;
	card->root.st_ctim = card->root.st_mtim;
	card->no_xattrs = no_xattrs == 1;
	return true;
}

/* Reads every line of the file; *LINES gets how many there were. */
static int load(struct lz_cards *cards, size_t *lines)
{
	struct lz_card_key key;
	struct lz_image_card card;
	int fd = dup(cards->fd);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewind(f);
	*lines = 0;
	off_t read = 0, whole = 0; /* bytes read; where the last whole line ends */
	bool torn = false;
	while ((len = getline(&line, &cap, f)) > 0) {
		(*lines)++;
		read += (off_t)len;
		torn = line[len - 1] != '\n';
		whole = torn ? whole : read;
		/* A NUL inside makes the line end early, without its newline: skipped. */
		if (parse_line(line, &key, &card) && !set_locked(cards, &key, &card))
			break;
	}
	free(line);
	fclose(f);
	/* A line torn by a crash goes, so the next one appended stays a line of its own. */
	if (torn && ftruncate(cards->fd, whole) != 0)
		return -errno;
	return 0;
}

/* Writes the live cards to a new file that replaces the old one. */
static void compact(struct lz_cards *cards)
{
	char tmp[PATH_MAX], line[LINE_MAX_LEN];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.new", cards->path) >= (int)sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_APPEND, 0600);
	if (fd < 0)
		return;
	bool ok = true;
	for (unsigned b = 0; b < CARD_BUCKETS && ok; b++)
		for (struct card *c = cards->buckets[b]; c != NULL && ok; c = c->next) {
			struct lz_card_key key = { c->name, c->size, c->mtime };
			int n = format_line(line, sizeof(line), &key, &c->card);
			ok = n > 0 && n < (int)sizeof(line) && write(fd, line, (size_t)n) == n;
		}
	if (ok && fsync(fd) == 0 && rename(tmp, cards->path) == 0) {
		close(cards->fd);
		cards->fd = fd;
		return;
	}
	close(fd);
	unlink(tmp);
}

struct lz_cards *lz_cards_open(const char *path, char *err, size_t errlen)
{
	struct lz_cards *cards = calloc(1, sizeof(*cards));
	size_t lines = 0;
	int rc = -ENOMEM;

	if (cards == NULL || (cards->path = strdup(path)) == NULL)
		goto fail;
	pthread_mutex_init(&cards->lock, NULL);
	cards->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	rc = cards->fd < 0 ? -errno : load(cards, &lines);
	if (rc != 0)
		goto fail;
	if (lines > 64 && lines > 2 * cards->count)
		compact(cards);
	return cards;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	lz_cards_free(cards);
	return NULL;
}

void lz_cards_free(struct lz_cards *cards)
{
	if (cards == NULL)
		return;
	for (unsigned b = 0; b < CARD_BUCKETS; b++)
		while (cards->buckets[b] != NULL) {
			struct card *c = cards->buckets[b];
			cards->buckets[b] = c->next;
			free(c);
		}
	if (cards->path != NULL) {
		close(cards->fd);
		pthread_mutex_destroy(&cards->lock);
	}
	free(cards->path);
	free(cards);
}

static bool same_key(const struct card *c, const struct lz_card_key *key)
{
	return c->size == key->size && c->mtime.tv_sec == key->mtime.tv_sec &&
	       c->mtime.tv_nsec == key->mtime.tv_nsec;
}

bool lz_cards_find(struct lz_cards *cards, const struct lz_card_key *key, struct lz_image_card *out)
{
	bool found;

	pthread_mutex_lock(&cards->lock);
	struct card *c = *slot_of(cards, key->name);
	found = c != NULL && same_key(c, key);
	if (found)
		*out = c->card;
	pthread_mutex_unlock(&cards->lock);
	return found;
}

static bool same_card(const struct lz_image_card *a, const struct lz_image_card *b)
{
	const struct stat *x = &a->root, *y = &b->root;

	return x->st_mode == y->st_mode && x->st_ino == y->st_ino && x->st_nlink == y->st_nlink &&
	       x->st_uid == y->st_uid && x->st_gid == y->st_gid && x->st_size == y->st_size &&
	       x->st_blocks == y->st_blocks && x->st_blksize == y->st_blksize &&
	       x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
	       a->no_xattrs == b->no_xattrs;
}

void lz_cards_put(struct lz_cards *cards, const struct lz_card_key *key,
		  const struct lz_image_card *card)
{
	char line[LINE_MAX_LEN];
	int n = format_line(line, sizeof(line), key, card);

	if (n <= 0 || n >= (int)sizeof(line) || lz_name_check(key->name) != 0)
		return;
	pthread_mutex_lock(&cards->lock);
	struct card *c = *slot_of(cards, key->name);
	bool known = c != NULL && same_key(c, key) && same_card(&c->card, card);
	/* One write of a whole line: a crash leaves at most a torn last line. */
	if (!known && set_locked(cards, key, card) && write(cards->fd, line, (size_t)n) != n)
		(void)0; /* the card still serves this process; the next fetch writes it again */
	pthread_mutex_unlock(&cards->lock);
}

size_t lz_cards_count(struct lz_cards *cards)
{
	size_t n;

	pthread_mutex_lock(&cards->lock);
	n = cards->count;
	pthread_mutex_unlock(&cards->lock);
	return n;
}
