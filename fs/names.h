/* What a single name handed to lazyfs may be before it reaches any filesystem. */
#ifndef LAZYFS_NAMES_H
#define LAZYFS_NAMES_H

/* 0 when NAME is one path component lazyfs may look up, else an errno value. */
int lz_name_check(const char *name);

#endif
