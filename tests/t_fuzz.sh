#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The libFuzzer targets (scripts/fuzz, docs/FUZZING.md), each run for
# LAZYFS_FUZZ_SECONDS (16: 19 targets take about as long in all as 11 did at
# 30 s) from the source tree's seeds: no crash, no leak, no hang. Built with
# clang in a temporary directory, so a read-only source tree (make distcheck)
# is fine; skipped when clang cannot build fuzzers here.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"

FUZZ=$TESTS_SRCDIR/../scripts/fuzz
SECONDS_EACH=${LAZYFS_FUZZ_SECONDS:-16}
[[ $SECONDS_EACH -gt 0 ]] || lz_skip "LAZYFS_FUZZ_SECONDS=0 (scripts/test runs the fuzzers once, in its first build)"
[[ -x $FUZZ ]] || lz_fail "no $FUZZ"
LZ_TMP=$(mktemp -d /tmp/lazyfs-fuzz-test.XXXXXX)
trap lz_cleanup EXIT
trap 'exit 1' INT TERM
export LAZYFS_FUZZ_DIR=$LZ_TMP/fuzz

rc=0
"$FUZZ" build >"$LZ_TMP/build.out" 2>&1 || rc=$?
[[ $rc -ne 77 ]] || lz_skip "$(tail -n1 "$LZ_TMP/build.out")"
[[ $rc -eq 0 ]] || { cat "$LZ_TMP/build.out" >&2; lz_fail "the fuzz targets do not build"; }
lz_ok "the fuzz targets build with clang and libFuzzer"

for target in $("$FUZZ" list); do
	line=$("$FUZZ" "$target" "$SECONDS_EACH" 2>&1) || {
		printf '%s\n' "$line" >&2
		# The reproducer is in $LZ_TMP, which goes: show the crash here.
		log=$LAZYFS_FUZZ_DIR/logs/$target.log
		[[ ! -f $log ]] || grep -A30 -m1 -E '==ERROR|runtime error|deadly signal|ALARM|out-of-memory' "$log" >&2 || true
		lz_fail "$target crashed"
	}
	lz_ok "$line"
done
lz_done
