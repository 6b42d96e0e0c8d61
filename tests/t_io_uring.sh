#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# -o io_uring: with the kernel's FUSE-over-io_uring switched on, lazyfs uses it
# and serves the tree unchanged; with it off, one line says so and /dev/fuse
# serves instead. A live upgrade is refused while rings serve (the kernel
# cannot give back the requests in the old daemon's ring entries: they would
# hang) and the daemon serves on; over the /dev/fuse fallback it works, under
# a reader, with no error. The module parameter is restored afterwards.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"
param=/sys/module/fuse/parameters/enable_uring
[[ -w $param ]] || lz_skip "this kernel has no FUSE-over-io_uring switch"
saved=$(cat "$param")
restore_param() { echo "$saved" > "$param"; }
trap 'restore_param; lz_cleanup' EXIT

SRC=$LZ_TMP/src MP=$LZ_TMP/mnt
mkdir -p "$MP"
bash "$TESTS_SRCDIR/mktree.sh" "$SRC" >/dev/null

echo Y > "$param"
lz_mount "$MP" -o underlay="$SRC",io_uring
grep -q "FUSE-over-io_uring enabled" "$LZ_LAST_LOG" || lz_fail "io_uring was not negotiated"
lz_ok "io_uring negotiated with enable_uring=Y"
out=$(python3 "$TESTS_SRCDIR/treecmp.py" "$SRC" "$MP") || { echo "$out" >&2; lz_fail "tree differs over io_uring"; }
lz_ok "over io_uring: ${out##*$'\n'}"
pid=$LZ_LAST_PID
if out=$(timeout 60 "$CTL" "$MP" upgrade 2>&1); then
	lz_fail "an upgrade over io_uring succeeded: $out"
fi
[[ $out == *"not with -o io_uring"* ]] || lz_fail "upgrade over io_uring: unexpected answer: $out"
grep -q "^pid: $pid\$" <<<"$("$CTL" "$MP" status)" || lz_fail "another pid answers after the refused upgrade"
timeout 10 cmp -s "$SRC/files/f_1" "$MP/files/f_1" || lz_fail "no serving after the refused upgrade"
lz_ok "upgrade over io_uring refused with a reason, pid $pid serves on"
lz_umount "$MP"

echo N > "$param"
lz_mount "$MP" -o underlay="$SRC",io_uring
grep -q "io_uring requested, but the kernel does not offer it" "$LZ_LAST_LOG" ||
	lz_fail "no warning when io_uring is unavailable"
cmp -s "$SRC/files/f_1" "$MP/files/f_1" || lz_fail "fallback to /dev/fuse does not serve"
lz_ok "enable_uring=N: one warning line, served over /dev/fuse"

# The fallback connection is plain /dev/fuse: upgrades work under a reader.
pid=$LZ_LAST_PID W=$LZ_TMP/w
mkdir -p "$W"
(cd "$SRC/files" && sha256sum ./*) >"$W/sums"
(
	cd "$MP/files"
	while [[ ! -e $W/stop ]]; do
		sha256sum --quiet -c "$W/sums" >"$W/out" 2>&1 || cat "$W/out" >>"$W/err"
		echo x >>"$W/runs"
	done
) &
READER=$!
LZ_PIDS+=("$READER")
for i in 1 2 3; do
	out=$(timeout 60 "$CTL" "$MP" upgrade 2>&1) || lz_fail "upgrade $i over the fallback: $out"
	new=$(sed -n 's/^upgraded: pid \([0-9]*\) .*/\1/p' <<<"$out")
	[[ -n $new && $new != "$pid" ]] || lz_fail "upgrade $i: no new pid in '$out'"
	LZ_PIDS+=("$new")
	timeout 10 tail --pid="$pid" -f /dev/null || lz_fail "upgrade $i: old daemon $pid did not exit"
	pid=$new
done
touch "$W/stop"
timeout 30 tail --pid="$READER" -f /dev/null || lz_fail "the reader hangs after the upgrades"
[[ ! -s $W/err ]] || lz_fail "the reader saw errors: $(head -c 500 "$W/err")"
lz_ok "enable_uring=N: 3 upgrades under a reader ($(wc -l <"$W/runs") runs), zero errors"
lz_umount "$MP" "$pid"
lz_done
