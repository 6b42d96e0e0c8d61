/* SPDX-License-Identifier: BSD-2-Clause */
/* Ring buffer records into on_miss arguments; see tracker_event.h. */
#include "config.h"
#include "tracker_event.h"

#include <linux/types.h>
#include <string.h>

#include "lazyfs_bpf.h"

_Static_assert(LZ_TRACKER_KEY_MAX + 1 == LZ_KEY_SIZE, "key sizes");
_Static_assert((int)LZ_TRACKER_OPENAT == LZ_KIND_OPENAT && (int)LZ_TRACKER_STATX == LZ_KIND_STATX,
	       "event kinds");

int lz_tracker_decode_event(const void *data, size_t size, char key[LZ_TRACKER_KEY_MAX + 1],
			    struct lz_tracker_event *ev)
{
	struct lz_event e;

	/* Copied, not cast: a record is only as aligned as whoever hands it over. */
	if (size < sizeof(e))
		return -1;
	memcpy(&e, data, sizeof(e));
	/* The kernel wrote it, but a key without its NUL would run into whatever follows. */
	memcpy(key, e.key, LZ_TRACKER_KEY_MAX);
	key[LZ_TRACKER_KEY_MAX] = '\0';
	if (key[0] == '\0' || e.kind > LZ_KIND_STATX)
		return -1;
	ev->ktime_ns = e.ktime_ns;
	ev->pid = e.pid;
	ev->tgid = e.tgid;
	ev->kind = (enum lz_tracker_kind)e.kind;
	return 0;
}
