/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The one step from a raw ring buffer record to what on_miss is told: kept
 * apart from the loader (no libbpf, no skeleton) so that the fuzzer and the
 * --disable-bpf build compile it too.
 */
#ifndef LAZYFS_TRACKER_EVENT_H
#define LAZYFS_TRACKER_EVENT_H

#include <stddef.h>

#include "tracker.h"

/*
 * Decodes the ring buffer record DATA of SIZE bytes (a struct lz_event, any
 * alignment) into KEY, NUL-terminated, and *EV. 0, or -1 for a record the BPF
 * program never sends: shorter than an event, an unknown kind, an empty key.
 */
int lz_tracker_decode_event(const void *data, size_t size, char key[LZ_TRACKER_KEY_MAX + 1],
			    struct lz_tracker_event *ev);

#endif
