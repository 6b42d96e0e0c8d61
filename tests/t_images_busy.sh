#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# An image in use is never expired, in either open mode. In open_mode=cached
# the daemon sees no opens or reads, so path walks must still show the use.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt
mkdir -p "$IMG" "$U" "$MP" "$LZ_TMP/s"
echo busy > "$LZ_TMP/s/file"
mksquashfs "$LZ_TMP/s" "$IMG/busy.sqfs" -noappend -quiet >/dev/null

for mode in passthrough cached; do
	lz_mount "$MP" -d -o backend="$BACKEND",underlay="$U",images="$IMG",idle_timeout=2,open_mode="$mode"
	log=$LZ_LAST_LOG
	end=$((SECONDS + 6))
	while ((SECONDS < end)); do
		[[ $(cat "$MP/busy/file") == busy ]] || lz_fail "$mode: read failed"
		sleep 0.1
	done
	closes=$(grep -c "image busy: closed" "$log" || true)
	[[ $closes -eq 0 ]] || lz_fail "$mode: an image in use for 6 s was expired $closes times (idle_timeout=2)"
	lz_ok "$mode: an image read every 0.1 s for 6 s is never expired"
	for ((i = 0; i < 60; i++)); do
		grep -q "image busy: closed" "$log" && break
		sleep 0.1
	done
	grep -q "image busy: closed" "$log" || lz_fail "$mode: the idle image was not expired"
	lz_ok "$mode: once idle, it is expired"
	lz_umount "$MP"
done
lz_done
