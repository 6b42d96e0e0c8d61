#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# map=FILE: images at nested paths. Intermediate directories come from the
# underlay or are synthesized read-only; bad lines are reported as file:line
# and skipped; a missing mapped image fails open; SIGHUP rereads the map.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt S=$LZ_TMP/s MAP=$LZ_TMP/lazyfs.map
mkdir -p "$IMG" "$U/arm" "$U/arm/clang" "$MP"
echo "native arm file" > "$U/arm/native"
echo "underlay clang" > "$U/arm/clang/who"
for name in gcc clang cmake extra; do
	mkdir -p "$S/$name"
	echo "$name image" > "$S/$name/who"
	mksquashfs "$S/$name" "$IMG/$name.sqfs" -noappend -quiet >/dev/null
done
cat > "$MAP" <<MAP
# toolchains by architecture
arm/gcc-12          $IMG/gcc.sqfs
arm/clang           $IMG/clang.sqfs
x86/tools/cmake     $IMG/cmake.sqfs   # synthesized parents
top                 $IMG/gcc.sqfs
../escape           $IMG/gcc.sqfs
arm/gcc-12/inner    $IMG/gcc.sqfs
relative            img/gcc.sqfs
arm/missing         $IMG/missing.sqfs
MAP
lz_mount "$MP" -d -o backend="$BACKEND",underlay="$U",map="$MAP"
log=$LZ_LAST_LOG

grep -q "lazyfs.map:6: '.' and '..' are not allowed" "$log" || lz_fail "line 6 not reported"
grep -q "lazyfs.map:7: the path lies inside another mapped image" "$log" || lz_fail "line 7 not reported"
grep -q "lazyfs.map:8: the image path must be absolute" "$log" || lz_fail "line 8 not reported"
[[ $(grep -c "lazyfs.map:[0-9]*:" "$log") -eq 3 ]] || lz_fail "wrong number of bad lines reported"
lz_ok "bad map lines are reported as file:line with the reason, and skipped"

[[ $(cat "$MP/arm/gcc-12/who") == "gcc image" ]] || lz_fail "arm/gcc-12"
[[ $(cat "$MP/arm/clang/who") == "clang image" ]] || lz_fail "arm/clang does not shadow the underlay"
[[ $(cat "$MP/arm/native") == "native arm file" ]] || lz_fail "the underlay beside mapped entries"
[[ $(cat "$MP/x86/tools/cmake/who") == "cmake image" ]] || lz_fail "x86/tools/cmake"
[[ $(cat "$MP/top/who") == "gcc image" ]] || lz_fail "top"
lz_ok "nested mapped images resolve; the underlay shows beside them"

[[ $(ls "$MP" | tr '\n' ' ') == "arm top x86 " ]] || lz_fail "root listing: $(ls "$MP")"
[[ $(ls "$MP/arm" | tr '\n' ' ') == "clang gcc-12 native " ]] || lz_fail "arm listing: $(ls "$MP/arm")"
[[ $(ls "$MP/x86") == tools ]] || lz_fail "x86 listing"
[[ $(stat -c %A "$MP/x86") == dr-xr-xr-x && $(stat -c %A "$MP/x86/tools") == dr-xr-xr-x ]] ||
	lz_fail "synthesized directories are not read-only directories"
[[ $(stat -c %i "$MP/x86") != $(stat -c %i "$MP/x86/tools") ]] || lz_fail "synthesized inodes collide"
if mkdir "$MP/x86/new" 2>/dev/null; then lz_fail "mkdir in a synthesized directory"; fi
lz_ok "listings are the union; missing parents are synthesized read-only; a missing image is not listed"

[[ ! -e $MP/arm/missing ]] || lz_fail "a mapped image with no file exists"
grep -q "image $IMG/missing.sqfs: No such file" "$log" || lz_fail "the missing image was not logged"
lz_ok "a mapped image with no file is logged and fails open"

# SIGHUP: drop arm/clang (the underlay shows again), add a new entry.
cat > "$MAP" <<MAP
arm/gcc-12          $IMG/gcc.sqfs
new/extra           $IMG/extra.sqfs
MAP
kill -HUP "$LZ_LAST_PID"
for ((i = 0; i < 50; i++)); do
	[[ -e $MP/new/extra/who ]] && break
	sleep 0.1
done
[[ $(cat "$MP/new/extra/who") == "extra image" ]] || lz_fail "new mapping not served after SIGHUP"
[[ $(cat "$MP/arm/clang/who") == "underlay clang" ]] || lz_fail "removed mapping still served"
[[ ! -e $MP/x86 ]] || lz_fail "removed synthesized directory still there"
[[ $(cat "$MP/arm/gcc-12/who") == "gcc image" ]] || lz_fail "kept mapping lost"
lz_ok "SIGHUP rereads the map: added, removed and kept entries"

# lazyfsctl reload waits for the reload and says what the map held.
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
cp "$MAP" "$MAP.good"
printf '%s\n' "arm/gcc-12 $IMG/gcc.sqfs" "bad/../path $IMG/gcc.sqfs" "other relative.sqfs" >"$MAP"
out=$("$CTL" "$MP" reload 2>&1) && lz_fail "a reload with bad lines succeeded: $out"
[[ $out == *"map reloaded with 1 images; 2 bad lines skipped, the first: $MAP:2: '.' and '..' are not allowed"* ]] ||
	lz_fail "reload with bad lines answered: $out"
cp "$MAP.good" "$MAP"
out=$("$CTL" "$MP" reload) || lz_fail "reload of a good map failed: $out"
[[ $out == "map reloaded: 2 images; replaced images closed" ]] || lz_fail "reload answered: $out"
lz_ok "lazyfsctl reload answers with the map's images, or fails naming the bad lines and the first"
# Read whole first: grep -q would stop reading and fail the pipe (pipefail) under ASan.
m=$("$CTL" "$MP" metrics)
grep -q '^lazyfs_map_bad_lines 0$' <<<"$m" || lz_fail "lazyfs_map_bad_lines after a good reload: $(grep map_ <<<"$m")"

# A replaced map lives while an inode still points into it, and goes with the last.
maps_live() { "$CTL" --json "$MP" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["maps_live"])'; }
reloads() { grep -c "map $MAP: " "$log"; }
echo "x86/tools/cmake $IMG/cmake.sqfs" >>"$MAP"
before=$(reloads)
kill -HUP "$LZ_LAST_PID"
wait_for 5 eval '(($(reloads) > before))' || lz_fail "no reload"
(cd "$MP/x86/tools" && exec sleep 300) &
holder=$!
LZ_PIDS+=("$holder")
wait_for 5 eval '[[ $(readlink /proc/$holder/cwd) == "$MP/x86/tools" ]]' || lz_fail "the holder never entered x86/tools"
for i in 1 2 3 4 5; do
	before=$(reloads)
	kill -HUP "$LZ_LAST_PID"
	wait_for 5 eval '(($(reloads) > before))' || lz_fail "reload $i not done"
done
live=$(maps_live)
((live == 2)) || lz_fail "after 5 reloads with a directory of the first held: $live maps live, expected 2"
[[ $(ls "/proc/$holder/cwd/") == cmake ]] || lz_fail "the held directory of an old map no longer lists"
kill "$holder"
wait "$holder" 2>/dev/null || true
sync
echo 2 >/proc/sys/vm/drop_caches
wait_for 5 eval '(($(maps_live) == 1))' || lz_fail "$(maps_live) maps live after the holder went"
lz_ok "5 reloads keep only the map a held directory points into ($live live), freed when it goes"
lz_umount "$MP"
lz_done
