#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Remote lookups racing FORGET: while threads open, read and stat remote
# objects (remote_mode=objects) and files in remote images (remote_mode=images)
# and others list their directories, the machine's dentries and inodes are
# dropped again and again (drop_caches), so the kernel sends FORGET for nodes
# that lookups are finding again at that moment, and listings expire
# (listing_ttl=1). No operation may fail, FORGETs must really have come
# (status counts them: FUSE's tracepoint does not show FORGET), and the TSan
# build (tests/lib.sh) must report nothing.
# LAZYFS_FORGET_OPS (default 1500 a thread) sets the size.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v rclone >/dev/null || lz_skip "rclone missing"
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v gcc >/dev/null || lz_skip "gcc missing (the load generator is C)"
export RCLONE_CONFIG=/dev/null
OPS=${LAZYFS_FORGET_OPS:-1500}
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}

SRC=$LZ_TMP/srv U=$LZ_TMP/under MP=$LZ_TMP/mnt
mkdir -p "$SRC/objs" "$SRC/images" "$U" "$MP"
gcc -O2 -pthread -o "$LZ_TMP/loadgen" "$TESTS_SRCDIR/loadgen.c"
# Every file holds its own path under the mount, which loadgen checks; its
# paths are MP/TOP/DIR/FILE.
: >"$LZ_TMP/objects.list"
: >"$LZ_TMP/images.list"
for t in 0 1 2 3; do
	for d in a b; do
		mkdir -p "$SRC/objs/t$t/$d" "$LZ_TMP/isrc/img$t/$d"
		for f in 0 1 2 3 4 5; do
			printf '%s' "$MP/t$t/$d/f$f" >"$SRC/objs/t$t/$d/f$f"
			echo "$MP/t$t/$d/f$f" >>"$LZ_TMP/objects.list"
			printf '%s' "$MP/img$t/$d/f$f" >"$LZ_TMP/isrc/img$t/$d/f$f"
			echo "$MP/img$t/$d/f$f" >>"$LZ_TMP/images.list"
		done
	done
	mksquashfs "$LZ_TMP/isrc/img$t" "$SRC/images/img$t.sqfs" -noappend -quiet >/dev/null
done
lz_serve_http "$SRC"
remote="http\\,url='http://127.0.0.1:$LZ_HTTP_PORT"

# Drops the page cache, dentries and inodes every 0.5 s until $LZ_TMP/stop:
# each drop makes the kernel FORGET every unused node of the mount.
dropper() {
	while [[ ! -e $LZ_TMP/stop ]]; do
		echo 3 >/proc/sys/vm/drop_caches
		sleep 0.5
	done
}
forgotten() { "$CTL" --json "$MP" status | sed -n 's/.*"forgotten": *\([0-9]*\).*/\1/p'; }

# storm NAME LIST: 16 threads x OPS open/read/close/stat and 2 directory
# scanners over LIST while the dropper runs; FORGET must have been sent.
storm() {
	local name=$1 list=$2 out forgets dpid
	rm -f "$LZ_TMP/stop"
	forgets=$(forgotten)
	dropper &
	dpid=$!
	LZ_PIDS+=("$dpid")
	out=$(timeout 600 "$LZ_TMP/loadgen" "$list" 16 "$OPS" 2) ||
		lz_fail "$name: load failed or hung: $out $(tail -5 "$LZ_LAST_LOG")"
	touch "$LZ_TMP/stop"
	wait "$dpid" || true
	forgets=$(($(forgotten) - forgets))
	((forgets > 0)) || lz_fail "$name: the kernel gave back no lookup: drop_caches raced nothing"
	lz_ok "$name: $out; $forgets lookups given back by FORGET under drop_caches"
}

lz_mount "$MP" -o "underlay=$U,remote=:$remote/objs/':,remote_mode=objects,listing_ttl=1,prefetch=off"
storm "remote_mode=objects" "$LZ_TMP/objects.list"
lz_umount "$MP"

# squashfuse: the kernel backend would want a trusted digest for each image.
lz_mount "$MP" -o "underlay=$U,remote=:$remote/images/':,remote_mode=images,backend=squashfuse,listing_ttl=1,idle_timeout=1,prefetch=off"
storm "remote_mode=images, images expiring after 1 s idle" "$LZ_TMP/images.list"
lz_umount "$MP"
lz_done
