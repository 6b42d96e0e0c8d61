/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The state lines of a takeover record (snapshot.c), as plain values: each
 * line decoded from text (fields checked one by one, strings unescaped) and
 * encoded back. Nothing of the core is touched here: snapshot.c captures the
 * state into these values and restores it from them, with the checks that
 * need the daemon (which images, slots and node ids exist).
 *
 *   source N DEV                     node id source N is device DEV
 *   sqfs SLOT FD [KERNEL]            a squashfuse handle: its slot, the image file, and
 *                                    1 when the kernel may mount it (trusted)
 *   sqfs SLOT -1 NAME SIZE SEC NSEC  ...of a remote image not fetched: its object as listed
 *   image NAME PATH PARENT ENTRY GENERATION PINS ROOT_FD SLOT DEV INO SIZE SEC NSEC [KEY]
 *   inode NODEID KIND TYPE NLOOKUP PATH_FD READ_FD BACKING_ID OPENS IMAGE SLOT SQFS_ID MAPREL
 *   remote NODEID TYPE NLOOKUP READ_FD BACKING_ID OPENS HELD SIZE SEC NSEC PATH
 *
 * Descriptors are indexes into the record's list, -1 for none; strings are
 * lz_handover_string's, "-" for none.
 */
#ifndef LAZYFS_SNAPLINE_H
#define LAZYFS_SNAPLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct lz_handover;

enum lz_snapline_kind {
	LZ_SNAP_SOURCE,
	LZ_SNAP_SQFS,
	LZ_SNAP_IMAGE,
	LZ_SNAP_INODE,
	LZ_SNAP_REMOTE,
};

struct lz_snap_source {
	unsigned index; /* 1 up, below LZ_NODEID_REMOTE_SOURCE */
	uint64_t dev;
};

struct lz_snap_sqfs {
	unsigned slot;
	int fd;		/* the image file; for an unfetched one, the field as written */
	bool unfetched; /* a remote image listed, not fetched: the object below */
	int kernel;	/* 1 trusted, 0 not; -1: no field (an older record) */
	const char *name;
	uint64_t size;
	int64_t sec;
	long nsec;
};

struct lz_snap_image {
	const char *name;	  /* never NULL */
	const char *path, *entry; /* NULL: none */
	uint64_t parent, dev, ino;
	unsigned generation, pins;
	int root_fd, slot; /* -1: none */
	int64_t size, sec;
	long nsec;
	bool has_key;	 /* the KEY field is there (version 2) */
	const char *key; /* NULL: none */
};

struct lz_snap_inode {
	uint64_t nodeid, nlookup, sqfs_id;
	int kind; /* enum lz_inode_kind: FD, SYNTH or SQFS */
	mode_t type;
	int path_fd, read_fd, backing_id, slot;
	unsigned opens;
	const char *image, *maprel; /* NULL: none */
	const char *tree;	    /* its path in the images tree; NULL: none */
};

struct lz_snap_remote {
	uint64_t nodeid, nlookup, size;
	mode_t type; /* a regular file or a directory */
	int read_fd, backing_id;
	unsigned opens;
	bool held;
	int64_t sec;
	long nsec;
	const char *path; /* never NULL */
};

struct lz_snapline {
	enum lz_snapline_kind kind;
	union {
		struct lz_snap_source source;
		struct lz_snap_sqfs sqfs;
		struct lz_snap_image image;
		struct lz_snap_inode inode;
		struct lz_snap_remote remote;
	} u;
};

/*
 * Decodes one line of a record (no newline; changed in place, the strings
 * of OUT point into it): 1 with OUT, 0 when it is no state line (the head's,
 * or a word this binary does not know), or -1 with what is malformed in WHY
 * ("malformed inode line").
 */
int lz_snapline_decode(char *line, struct lz_snapline *out, const char **why);

/* Appends L to H as one line. */
void lz_snapline_encode(struct lz_handover *h, const struct lz_snapline *l);

#endif
