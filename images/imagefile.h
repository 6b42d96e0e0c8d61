/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Opening an image file for reading only once it is known to be one: it is
 * looked at through an O_PATH descriptor first, so a device, a fifo or a
 * directory in the images directory (or behind a symlink there) is never
 * opened for reading, and the file checked is the file opened.
 *
 * The rule for a symlink in the images directory, as the kernel's
 * fs.protected_symlinks has it for sticky directories: it is followed only
 * when root owns it, or the owner of the directory it is in; and, when that
 * owner is not root, only to a file the owner could read (its own with the
 * owner's read bit, or readable by all). At a map entry's image path (root's
 * configuration) only a link root owns is followed.
 * So a user who may write the directory cannot make the root daemon serve
 * a file that user could not read. Symlinks in the path above the entry, and
 * a followed link's own target path, are the administrator's.
 */
#ifndef LAZYFS_IMAGEFILE_H
#define LAZYFS_IMAGEFILE_H

#include <stddef.h>
#include <sys/stat.h>

/*
 * Opens NAME (one component) of directory DIR_FD read-only, with the rule
 * above: a descriptor with the file's stat in ST, or -ENOENT (no such entry),
 * -EPERM / -EINVAL (refused: a one-line reason in WHY) or another -errno.
 * DIR_FD AT_FDCWD with an absolute NAME: a map entry's image path, whose
 * last component may be a symlink only when root owns it.
 */
int lz_open_image_file(int dir_fd, const char *name, struct stat *st, char *why, size_t whylen);

#endif
