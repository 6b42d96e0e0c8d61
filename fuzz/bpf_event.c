/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lz_tracker_decode_event, between the BPF ring buffer and the daemon's
 * on_miss, on records of any size and content: it never reads past the
 * record, and what it hands on has a NUL-terminated, non-empty key of at most
 * LZ_TRACKER_KEY_MAX bytes and a kind that has a name; everything else is
 * refused.
 */
#include "config.h"
#include "check.h"
#include "bpf/tracker_event.h"

#include <linux/types.h>
#include <stdint.h>
#include <string.h>

#include "bpf/lazyfs_bpf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* One byte more than the key: a missing NUL would show as a long key. */
	char key[LZ_TRACKER_KEY_MAX + 2];
	struct lz_tracker_event ev;

	memset(key, 'x', sizeof(key));
	if (lz_tracker_decode_event(data, size, key, &ev) != 0)
		return 0;
	CHECK(size >= sizeof(struct lz_event));
	CHECK(memchr(key, '\0', LZ_TRACKER_KEY_MAX + 1) != NULL && key[0] != '\0');
	CHECK(strcmp(lz_tracker_kind_name(ev.kind), "?") != 0);
	CHECK(memcmp(&ev.ktime_ns, data, 8) == 0 && memcmp(&ev.pid, data + 8, 4) == 0 &&
	      memcmp(&ev.tgid, data + 12, 4) == 0);
	return 0;
}
