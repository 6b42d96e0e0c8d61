/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The metrics listener's address, -o metrics=ADDR:PORT: parsed once for the
 * option's check at start and again for the bind, by the same rule.
 */
#ifndef LAZYFS_NETADDR_H
#define LAZYFS_NETADDR_H

#include <netinet/in.h>
#include <stdbool.h>

/* "127.0.0.1:9100" (an IPv4 address, a port 1-65535) into *SA: 0, or -1 when malformed. */
int lz_netaddr_parse(const char *spec, struct sockaddr_in *sa);
/* Whether SA is in 127.0.0.0/8: reachable from this host only. */
bool lz_netaddr_is_loopback(const struct sockaddr_in *sa);

#endif
