/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The in-flight record across crashes: a crash is simulated by opening the
 * record again from a copy of its descriptor without the request having left,
 * as the next worker gets it from the keeper. Two crashes of the worker's own
 * with a request in flight make it poison, answered once; SIGKILLs count for
 * nothing; a request not in flight at a crash is cleared; the source numbers
 * taken are handed on.
 */
#include "config.h"
#include "upgrade/inflight.h"
#include "unit.h"

#include <fcntl.h>
#include <unistd.h>

/* The worker after F crashed (F's requests still in flight); KILLED: by SIGKILL. */
static struct lz_inflight *crash(struct lz_inflight *f, bool killed)
{
	int kept = fcntl(lz_inflight_fd(f), F_DUPFD_CLOEXEC, 0);

	lz_inflight_close(f);
	return lz_inflight_open(kept, killed);
}

static void test_poison_after_two_crashes(void)
{
	uint64_t bad = lz_inflight_sig(1, 42, "gcc-12"), good = lz_inflight_sig(1, 42, "clang");
	struct lz_inflight *f = lz_inflight_open(-1, false);

	CHECK(f != NULL);
	CHECK(bad != good);
	CHECK(lz_inflight_enter(f, bad) >= 0);
	int slot = lz_inflight_enter(f, good);
	lz_inflight_leave(f, slot); /* answered before the crash */
	f = crash(f, false);
	CHECK(lz_inflight_enter(f, bad) >= 0); /* once is no pattern: served again */
	f = crash(f, false);
	CHECK(lz_inflight_enter(f, bad) == LZ_INFLIGHT_POISON);
	CHECK(lz_inflight_poisoned(f) == 1);
	slot = lz_inflight_enter(f, bad); /* answered once: forgiven */
	CHECK(slot >= 0);
	CHECK(lz_inflight_enter(f, good) >= 0);
	f = crash(f, false); /* a strike: one more crash is enough */
	CHECK(lz_inflight_enter(f, bad) == LZ_INFLIGHT_POISON);
	CHECK(lz_inflight_enter(f, good) >= 0); /* in flight at one crash only */
	lz_inflight_close(f);
}

static void test_sigkill_counts_nothing(void)
{
	uint64_t sig = lz_inflight_sig(15, 7, NULL);
	struct lz_inflight *f = lz_inflight_open(-1, false);

	for (int i = 0; i < 3; i++) {
		CHECK(lz_inflight_enter(f, sig) >= 0);
		f = crash(f, true);
	}
	CHECK(lz_inflight_enter(f, sig) >= 0);
	CHECK(lz_inflight_poisoned(f) == 0);
	lz_inflight_close(f);
}

static void test_not_in_a_row(void)
{
	uint64_t sig = lz_inflight_sig(3, 9, NULL);
	struct lz_inflight *f = lz_inflight_open(-1, false);

	CHECK(lz_inflight_enter(f, sig) >= 0);
	f = crash(f, false);
	f = crash(f, false); /* not in flight at this one: cleared */
	CHECK(lz_inflight_enter(f, sig) >= 0);
	f = crash(f, false);
	CHECK(lz_inflight_enter(f, sig) >= 0); /* one crash in a row again */
	lz_inflight_close(f);
}

static void test_sources_handed_on(void)
{
	struct lz_inflight *f = lz_inflight_open(-1, false);

	CHECK(lz_inflight_sources(f) == 0);
	lz_inflight_note_sources(f, 5);
	lz_inflight_note_sources(f, 3); /* never down */
	f = crash(f, true);
	CHECK(lz_inflight_sources(f) == 5);
	lz_inflight_close(f);
}

int main(void)
{
	test_poison_after_two_crashes();
	test_sigkill_counts_nothing();
	test_not_in_a_row();
	test_sources_handed_on();
	return unit_finish("test_inflight");
}
