#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Working sets: the files looked up after an image resolves are recorded in
# the cache directory when it closes, and read ahead the next time it
# resolves, also after a restart. A hostile working set file reads nothing
# outside the image and follows no link.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
[[ $BACKEND == kernel ]] || lz_skip "prefetch warms kernel-backend images only"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt CACHE=$LZ_TMP/cache S=$LZ_TMP/src
mkdir -p "$IMG" "$U" "$MP" "$S/include/sys" "$S/bin"
for i in 1 2 3 4 5 6 7 8; do
	head -c $((i * 40000)) /dev/urandom >"$S/include/h$i.h"
done
echo inner >"$S/include/sys/types.h"
ln -s / "$S/escape"
ln -s .. "$S/include/up"
mksquashfs "$S" "$IMG/tc.sqfs" -noappend -quiet >/dev/null
WS=$CACHE/workingset/tc.ws

closed() {
	local n=$1 i
	for ((i = 0; i < 100; i++)); do
		[[ $(grep -c "image tc: closed" "$LZ_LAST_LOG" || true) -ge $n ]] && return 0
		sleep 0.1
	done
	lz_fail "image tc was not closed ($n)"
}
prefetched() { grep -o "image tc: prefetched [0-9]* files, [0-9]* bytes" "$LZ_LAST_LOG" | tail -1; }
wait_prefetched() {
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -n $(prefetched) ]] && return 0
		sleep 0.1
	done
}

opts="backend=kernel,underlay=$U,images=$IMG,cache=$CACHE,idle_timeout=1,bpf=off"
lz_mount "$MP" -d -o "$opts"
cat "$MP/tc/include/h2.h" "$MP/tc/include/h5.h" "$MP/tc/include/sys/types.h" >/dev/null
stat "$MP/tc/include/h7.h" >/dev/null
[[ -z $(prefetched) ]] || lz_fail "prefetched without a working set"
closed 1
[[ -f $WS ]] || lz_fail "no working set written at $WS"
[[ $(head -1 "$WS") == "lazyfs-workingset 1" ]] || lz_fail "bad header: $(head -1 "$WS")"
got=$(tail -n +2 "$WS" | awk '{print $2}' | sort | tr '\n' ' ')
[[ $got == "include/h2.h include/h5.h include/h7.h include/sys/types.h " ]] ||
	lz_fail "working set lists: $got"
[[ $(stat -c %a "$CACHE/workingset") == 700 ]] || lz_fail "workingset dir is not 0700"
lz_ok "the files looked up after a resolve are recorded when the image closes"

want=$((80000 + 200000 + 280000 + 6))
cat "$MP/tc/include/h1.h" >/dev/null
wait_prefetched
[[ $(prefetched) == "image tc: prefetched 4 files, $want bytes" ]] ||
	lz_fail "second use: '$(prefetched)', expected 4 files, $want bytes"
lz_ok "the next resolve reads the working set ahead ($(prefetched))"
lz_umount "$MP"
grep -q "include/h1.h" "$WS" || lz_fail "the second use was not recorded at unmount"
lz_ok "the working set is rewritten at unmount with the latest use"

lz_mount "$MP" -d -o "$opts"
ls -lR "$MP/tc" >/dev/null
sleep 0.5
[[ -z $(prefetched) ]] || lz_fail "a browse prefetched: '$(prefetched)'"
[[ -z $(losetup -j "$IMG/tc.sqfs") ]] || lz_fail "a browse mounted the image"
cat "$MP/tc/include/h1.h" >/dev/null
wait_prefetched
[[ $(prefetched) =~ prefetched\ 5\ files ]] || lz_fail "after a restart: '$(prefetched)'"
lz_ok "after a restart the working set is prefetched on first open, not on a browse"
lz_umount "$MP"

# Hostile lines: outside the image, through links, malformed. Only h3.h is read.
printf 'lazyfs-workingset 1\n10 ../../etc/passwd\n10 /etc/passwd\n10 escape/etc/passwd\n10 include/up/include/h4.h\nnot a line\n-5 include/h6.h\n120000 include/h3.h\n10 include/./h8.h\n' >"$WS"
lz_mount "$MP" -d -o "$opts"
cat "$MP/tc/include/h2.h" >/dev/null
wait_prefetched
[[ $(prefetched) == "image tc: prefetched 1 files, 120000 bytes" ]] ||
	lz_fail "hostile working set: '$(prefetched)'"
lz_umount "$MP"
lz_ok "a hostile working set reads only plain paths inside the image, no links"

head -c 100 /dev/urandom >"$WS"
lz_mount "$MP" -d -o "$opts,prefetch_max=1000"
[[ $(cat "$MP/tc/include/sys/types.h") == inner ]] || lz_fail "the image does not read after a garbage working set"
grep -q "not a working set file" "$LZ_LAST_LOG" || lz_fail "a garbage working set was not reported"
lz_umount "$MP"
lz_ok "a garbage working set file is reported and ignored"

rm -rf "$CACHE"
lz_mount "$MP" -d -o "$opts,prefetch=off"
cat "$MP/tc/include/h2.h" >/dev/null
closed 1
lz_umount "$MP"
[[ ! -e $CACHE/workingset ]] || lz_fail "prefetch=off wrote a working set"
lz_ok "prefetch=off records nothing"

# remote_mode=objects: a top directory is the unit; its recorded objects are fetched.
command -v rclone >/dev/null || lz_skip "rclone missing (the image checks passed)"
T=$LZ_TMP/tree
mkdir -p "$T/clips" "$T/other"
for c in a b c d e; do head -c 1048576 /dev/urandom >"$T/clips/$c.bin"; done
echo x >"$T/other/x"
lz_serve_http "$T"
remote=":http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/':"
C1=$LZ_TMP/c1 C2=$LZ_TMP/c2
lz_mount "$MP" -d -o "underlay=$U,remote=$remote,remote_mode=objects,cache=$C1,bpf=off"
cat "$MP/clips/a.bin" "$MP/clips/c.bin" "$MP/clips/b.bin" >/dev/null
lz_umount "$MP"
got=$(tail -n +2 "$C1/workingset/objects/clips.ws" | tr '\n' ' ')
[[ $got == "1048576 clips/a.bin 1048576 clips/c.bin 1048576 clips/b.bin " ]] ||
	lz_fail "objects working set: $got"
lz_ok "objects opened in a directory are recorded as its working set"
mkdir -p "$C2/workingset/objects"
cp "$C1/workingset/objects/clips.ws" "$C2/workingset/objects/"
lz_mount "$MP" -d -o "underlay=$U,remote=$remote,remote_mode=objects,cache=$C2,bpf=off"
cmp "$MP/clips/d.bin" "$T/clips/d.bin" || lz_fail "clips/d reads wrong"
for ((i = 0; i < 100; i++)); do
	grep -q "objects clips: prefetched" "$LZ_LAST_LOG" && break
	sleep 0.1
done
grep -q "objects clips: prefetched 3 files, 3145728 bytes" "$LZ_LAST_LOG" ||
	lz_fail "objects prefetch: $(grep prefetched "$LZ_LAST_LOG" || echo none)"
kill "$LZ_HTTP_PID"
wait "$LZ_HTTP_PID" 2>/dev/null || true
for c in a b c; do
	cmp "$MP/clips/$c.bin" "$T/clips/$c.bin" || lz_fail "prefetched clips/$c.bin is not served with the remote gone"
done
lz_umount "$MP"
lz_ok "the first use of the directory fetches its working set into the cache"
lz_done
