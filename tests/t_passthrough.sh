#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Passthrough really bypasses the daemon: a cold read (backing pages evicted)
# and an mmap of a large file send no READ request; the same read with
# open_mode=cached does send READs, which shows the counter can see them.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init

SRC=$LZ_TMP/src MP=$LZ_TMP/mnt
mkdir -p "$SRC" "$MP"
head -c $((128 << 20)) /dev/urandom > "$SRC/large"
head -c $((32 << 20)) /dev/urandom > "$SRC/mapped"
want=$(sha256sum < "$SRC/large")

is_cold() {
	# fincore prints the resident pages of the file; 0 means a cold read.
	[[ $(fincore -n -b -o PAGES "$1" | tr -d ' ') == 0 ]]
}

lz_mount "$MP" -o underlay="$SRC"
stat "$MP/large" "$MP/mapped" >/dev/null # lookups before counting
lz_drop_file_cache "$SRC/large"
is_cold "$SRC/large" || lz_fail "could not evict the backing file from the page cache"
fusetrace_start "$MP"
got=$(sha256sum < "$MP/large")
[[ $got == "$want" ]] || lz_fail "bytes differ through passthrough"
sleep 0.2 # RELEASE is sent asynchronously after close
reads=$(fusetrace_count FUSE_READ) opens=$(fusetrace_count FUSE_OPEN)
fusetrace_counts | grep -q LOST && lz_fail "trace lost events"
[[ $reads -eq 0 ]] || lz_fail "cold passthrough read sent $reads READ requests"
[[ $opens -eq 1 ]] || lz_fail "expected 1 OPEN, saw $opens"
lz_ok "cold read of 128 MiB: 0 READ, $opens OPEN (bytes match)"

fusetrace_reset
lz_drop_file_cache "$SRC/mapped"
python3 - "$MP/mapped" "$SRC/mapped" <<'PY' || lz_fail "mmap through the mount differs"
import mmap, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "rb") as g:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    if m[:] != g.read():
        sys.exit(1)
PY
reads=$(fusetrace_count FUSE_READ)
[[ $reads -eq 0 ]] || lz_fail "mmap read sent $reads READ requests"
lz_ok "cold mmap of 32 MiB: 0 READ"
fusetrace_stop
lz_umount "$MP"

# Control: the daemon-served path does produce READs the trace counts.
lz_mount "$MP" -o underlay="$SRC",open_mode=cached
stat "$MP/large" >/dev/null
fusetrace_start "$MP"
got=$(sha256sum < "$MP/large")
[[ $got == "$want" ]] || lz_fail "bytes differ in open_mode=cached"
reads=$(fusetrace_count FUSE_READ)
[[ $reads -gt 0 ]] || lz_fail "open_mode=cached read sent no READ: the counter is blind"
lz_ok "control: open_mode=cached serves the same read with $reads READ requests"
fusetrace_stop
lz_umount "$MP"
lz_done
