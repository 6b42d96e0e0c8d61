/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Requests left on a connection nobody will serve again: when the keeper
 * fails open it detaches the mount, but a path walk already inside it, a
 * working directory there or a file the daemon served still sends requests.
 * Closing the connection would answer them "Transport endpoint is not
 * connected"; this answers each with EIO instead, until the connection ends
 * (its last user is gone) or SECONDS pass. It reads only the header the
 * kernel wrote and answers every request alike: no FUSE operation runs here.
 */
#ifndef LAZYFS_STRAGGLERS_H
#define LAZYFS_STRAGGLERS_H

/* Returns when FUSE_FD's connection ended or after SECONDS. */
void lz_answer_stragglers(int fuse_fd, double seconds);

#endif
