/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Which images reach the kernel's squashfs driver. The driver is not
 * hardened against hostile images, so with the kernel backend an image is
 * mounted in the kernel only when it is trusted; any other is read by the
 * daemon through libsquashfuse (the fuzzed backend), or refused where the
 * kernel backend was asked for by name.
 *
 * - An image file read in place (images=, map=) is trusted when root owns it,
 *   or the trusted owner (an option: images on a root-squashed NFS share
 *   belong to nobody), and neither its group nor others may write it; the
 *   same holds for the images directory it is found in. A digest proves
 *   nothing for such a file: it could change after it was checked.
 * - A remote image is trusted only when the SHA-256 of the copy fetched into
 *   the cache (which nobody changes after the check) is the one the local
 *   digests file gives for its object name.
 *
 * The digests file has sha256sum(1)'s format: "HEX  NAME" (or "HEX *NAME")
 * per line, NAME an object name at the remote's top; '#' starts a comment.
 * Nothing here knows FUSE, the cache or the registry.
 */
#ifndef LAZYFS_TRUST_H
#define LAZYFS_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct lz_trust;

/* No trusted owner besides root. */
#define LZ_TRUST_NO_OWNER ((uid_t)-1)

/*
 * The rule with OWNER (or LZ_TRUST_NO_OWNER) and the digests of file
 * DIGESTS (NULL: none). NULL with a one-line reason in ERR ("FILE:LINE: ...")
 * for a file that cannot be read or has a bad line.
 */
struct lz_trust *lz_trust_new(uid_t owner, const char *digests, char *err, size_t errlen);
void lz_trust_free(struct lz_trust *trust);

/*
 * An image file of stat ST found in a directory of stat DIR (NULL: not
 * known, a map entry): whether it is trusted, with what says so or why not
 * in WHY ("root's", "untrusted: writable by others"...). TRUST NULL: the
 * default rule (root only).
 */
bool lz_trust_file(const struct lz_trust *trust, const struct stat *st, const struct stat *dir,
		   char *why, size_t whylen);
/* A fetched copy FD of remote object NAME: whether its SHA-256 is NAME's digest (WHY as above). */
bool lz_trust_copy(const struct lz_trust *trust, const char *name, int fd, char *why,
		   size_t whylen);
/* How many digests it holds. */
size_t lz_trust_digests(const struct lz_trust *trust);

#endif
