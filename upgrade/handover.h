/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The handover record of a live upgrade (lazyfsctl MP upgrade): the running
 * daemon gives a new process its /dev/fuse connection, the descriptors that
 * keep its inodes and images alive, and a text record describing them.
 *
 * The record is versioned text, one item per line ("inode 1 0 ..."), its
 * strings escaped so no field holds a space; descriptors are named by their
 * index in the record's descriptor list. It travels over a SOCK_SEQPACKET
 * pair: a header message, the descriptors in batches (SCM_RIGHTS carries at
 * most 253 per message), then the text in chunks. The two processes then
 * exchange one-line messages ("ready PID", "error REASON").
 */
#ifndef LAZYFS_HANDOVER_H
#define LAZYFS_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The environment variable naming the new process's end of the socket pair. */
#define LZ_TAKEOVER_ENV "LAZYFS_TAKEOVER_FD"
/* The framing of the messages below (header, descriptors, text): any other is refused. */
#define LZ_HANDOVER_VERSION 1
/*
 * The record's own "version" line, bumped whenever a line changes meaning:
 * a binary reads every version from LZ_RECORD_VERSION_OLDEST on, and a
 * daemon writes the oldest one its state fits in, so a downgrade works
 * where it can.
 */
#define LZ_RECORD_VERSION	 2
#define LZ_RECORD_VERSION_OLDEST 1

struct lz_handover {
	char *text;
	size_t len, cap;
	int *fds;
	size_t nfds, fds_cap;
	bool owns_fds; /* received descriptors are closed by lz_handover_free unless taken */
	int *made;     /* descriptors made for the record: lz_handover_free closes them */
	size_t nmade, made_cap;
	bool failed; /* out of memory while building */
};

/* Appends a descriptor (borrowed when sending); its index, or -1 for FD < 0. */
int lz_handover_add_fd(struct lz_handover *h, int fd);
/* Appends a descriptor made for the record (closed with it); its index, or -1. */
int lz_handover_add_made_fd(struct lz_handover *h, int fd);
/* Takes descriptor INDEX out of a received record (-1 if there is none); the caller owns it. */
int lz_handover_take_fd(struct lz_handover *h, long index);
void lz_handover_printf(struct lz_handover *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends " " and S escaped (NULL is "-", anything else starts with "="). */
void lz_handover_string(struct lz_handover *h, const char *s);
/*
 * Decodes a field written by lz_handover_string in place; NULL for "-" or a
 * malformed one (*OK false: also a byte it would have escaped, raw).
 */
char *lz_handover_unescape(char *field, bool *ok);
/*
 * A record line's fields after its first word: REST split at spaces into F
 * (in place). Their number, or MAX + 1 when there are more than MAX.
 */
int lz_handover_split(char *rest, char **f, int max);
/*
 * A decimal field within [MIN, MAX], as %d, %ld or %lld write one (digits,
 * after a '-' for a negative: no space, no '+'): true with *OUT.
 */
bool lz_handover_num(const char *field, long long min, long long max, long long *out);
/* A decimal field of 64 unsigned bits, as %ju or PRIu64 write one (digits only): true with *OUT. */
bool lz_handover_unum(const char *field, uint64_t *out);
/* Appends " " and N bytes of binary data (a FUSE request) in hex. */
void lz_handover_bytes(struct lz_handover *h, const void *bytes, size_t n);
/* Decodes a field written by lz_handover_bytes into *OUT (malloc'ed): 0, or -1. */
int lz_handover_unbytes(const char *field, unsigned char **out, size_t *len);
void lz_handover_free(struct lz_handover *h);

/* Sends H over SOCK; 0, or -1 with a one-line reason in ERR. */
int lz_handover_send(int sock, const struct lz_handover *h, char *err, size_t errlen);
/* Receives a record into H (zeroed); 0, or -1 with a one-line reason in ERR. */
int lz_handover_recv(int sock, struct lz_handover *h, int timeout_ms, char *err, size_t errlen);

/* One short line each way ("ready 1234", "error ..."); 0 or -1. */
int lz_handover_say(int sock, const char *line);
/* Waits up to TIMEOUT_MS: 0 with the line, -1 with errno (0: the peer closed, ETIMEDOUT). */
int lz_handover_hear(int sock, char *line, size_t size, int timeout_ms);

#endif
