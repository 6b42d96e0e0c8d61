#!/bin/bash
# -o io_uring: with the kernel's FUSE-over-io_uring switched on, lazyfs uses it
# and serves the tree unchanged; with it off, one line says so and /dev/fuse
# serves instead. The module parameter is restored afterwards.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
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
grep -q "FUSE-over-io_uring enabled" "$LZ_TMP/lazyfs.0.log" || lz_fail "io_uring was not negotiated"
lz_ok "io_uring negotiated with enable_uring=Y"
out=$(python3 "$TESTS_SRCDIR/treecmp.py" "$SRC" "$MP") || { echo "$out" >&2; lz_fail "tree differs over io_uring"; }
lz_ok "over io_uring: ${out##*$'\n'}"
lz_umount "$MP"

echo N > "$param"
lz_mount "$MP" -o underlay="$SRC",io_uring
grep -q "io_uring requested, but the kernel does not offer it" "$LZ_TMP/lazyfs.1.log" ||
	lz_fail "no warning when io_uring is unavailable"
cmp -s "$SRC/files/f_1" "$MP/files/f_1" || lz_fail "fallback to /dev/fuse does not serve"
lz_ok "enable_uring=N: one warning line, served over /dev/fuse"
lz_umount "$MP"
lz_done
