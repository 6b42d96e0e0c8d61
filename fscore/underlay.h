/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Backing files: opening names beneath a directory descriptor without ever
 * following a symlink, and turning their stat into what lazyfs reports.
 */
#ifndef LAZYFS_UNDERLAY_H
#define LAZYFS_UNDERLAY_H

#include <stddef.h>
#include <sys/stat.h>

/* O_PATH descriptor of NAME beneath DIR_FD (a symlink itself, never its target); -errno. */
int lz_backing_open_path(int dir_fd, const char *name);
/* stat of an O_PATH descriptor, not following symlinks; 0 or -errno. */
int lz_backing_stat(int path_fd, struct stat *st);
/* A readable descriptor for the file behind PATH_FD; -errno. */
int lz_backing_reopen(int path_fd, int flags);
/* "/proc/self/fd/N" for calls that only take paths (xattrs). */
void lz_backing_proc_path(int path_fd, char *buf, size_t size);

#endif
