/* Giving up what the daemon does not need once it serves. */
#ifndef LAZYFS_PRIVILEGES_H
#define LAZYFS_PRIVILEGES_H

#include <stdbool.h>

/*
 * Drops every capability but those serving needs (see privileges.c), from
 * all sets and the bounding set. 0 also when there was nothing to drop or
 * lazyfs was built without libcap; -errno when the kernel refused.
 */
int lz_drop_privileges(void);

#endif
