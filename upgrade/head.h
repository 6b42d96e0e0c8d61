/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The head of a takeover record (handover.h): the lines a new process reads
 * besides the state that snapshot.c reads. "version N" first, then
 * "mountpoint =PATH", "minor N", "init HEX" (the kernel's FUSE_INIT request),
 * "fuse INDEX" (the /dev/fuse connection), "control LISTEN HTTP =PATH|-" (the
 * control plane's listeners, -1 for none), in any order among the state's
 * lines, and "end" last. upgrade.c writes them for a live upgrade, restart.c
 * for a restart after a crash; they are parsed here, without I/O.
 */
#ifndef LAZYFS_HEAD_H
#define LAZYFS_HEAD_H

#include <stddef.h>
#include <stdint.h>

struct lz_head {
	int version;
	char *mountpoint; /* absolute */
	unsigned minor;	  /* the FUSE connection (device minor) */
	unsigned char *init;
	size_t init_len;
	/* Descriptors, by index in the record; -1: none. */
	long fuse_index, listen_index, http_index;
	char *control_path; /* the control socket's path, or NULL */
};

/* The FUSE request header's first fields (the kernel's struct fuse_in_header). */
struct lz_fuse_in_header {
	uint32_t len, opcode;
	uint64_t unique;
};
#define LZ_FUSE_INIT_OPCODE 26

/*
 * Parses TEXT (a whole record) into HEAD: 0, or -1 with a one-line reason
 * in ERR. Free HEAD with lz_head_free either way.
 */
int lz_head_parse(const char *text, struct lz_head *head, char *err, size_t errlen);
void lz_head_free(struct lz_head *head);

struct lz_handover;
/* Appends the "mountpoint", "minor" and "init" lines to H. */
void lz_head_write_mount(struct lz_handover *h, const char *mountpoint, unsigned minor,
			 const void *init, size_t init_len);
/* Appends the "fuse" and "control" lines to H (indexes in its descriptors, -1: none). */
void lz_head_write_fds(struct lz_handover *h, int fuse_index, int listen_index, int http_index,
		       const char *control_path);

#endif
