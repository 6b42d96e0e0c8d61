/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the keeper and its workers tell each other (keeper.h), parsed here
 * without I/O: a worker's messages to the keeper ("store NAME" with a
 * descriptor, "unstore", "ready PID"), and the list of kept descriptors the
 * keeper hands a worker it restarts (LAZYFS_RESTART_FDS, "NAME:FD,...").
 * A name the keeper keeps comes back in that list unchanged: it fits its
 * slot and holds no ','.
 */
#ifndef LAZYFS_KEEPER_MSG_H
#define LAZYFS_KEEPER_MSG_H

#include <stddef.h>

#define LZ_KEEPER_NAME_MAX 32  /* a kept descriptor's name, with its NUL */
#define LZ_KEEPER_FDS_MAX  256 /* the list, with its NUL */

enum lz_keeper_msg_kind {
	LZ_KEEPER_OTHER, /* anything else: ignored */
	LZ_KEEPER_STORE,
	LZ_KEEPER_UNSTORE,
	LZ_KEEPER_READY,
};

struct lz_keeper_msg {
	enum lz_keeper_msg_kind kind;
	const char *name; /* STORE: the descriptor's name, in TEXT */
	long pid;	  /* READY: the process that serves, or 0 when none is named */
};

/* One message TEXT (NUL-terminated) into M. */
void lz_keeper_msg_parse(const char *text, struct lz_keeper_msg *m);

struct lz_kept_fd {
	char name[LZ_KEEPER_NAME_MAX];
	int fd; /* 3 and up */
};

/*
 * The items of LIST, at most MAX, into OUT: their number. An item that is
 * not NAME:FD with a name that fits and a descriptor of 3 or more is left
 * out; a list longer than LZ_KEEPER_FDS_MAX - 1 bytes gives none.
 */
size_t lz_keeper_fds_parse(const char *list, struct lz_kept_fd *out, size_t max);
/* Appends NAME:FD to LIST (SIZE bytes), after a ',' unless it is empty. */
void lz_keeper_fds_add(char *list, size_t size, const char *name, int fd);

#endif
