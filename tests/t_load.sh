#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Load and leaks: THREADS threads x OPS rounds of open/read/close/stat over
# 100 images that expire after 1 s idle, with readdir storms running, must
# finish with zero errors before a watchdog; afterwards the daemon's open
# files, loop devices and memory are back where a small warm-up left them,
# a sanitizer build reports nothing, and a short run under valgrind loses
# nothing. LAZYFS_LOAD_OPS (default 20000) and LAZYFS_LOAD_THREADS (64) set
# the size; docs/SECURITY.md records a run at 64 x 100000.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v gcc >/dev/null || lz_skip "gcc missing (the load generator is C)"
THREADS=${LAZYFS_LOAD_THREADS:-64} OPS=${LAZYFS_LOAD_OPS:-20000} WATCHDOG=${LAZYFS_LOAD_WATCHDOG:-900}

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt
mkdir -p "$IMG" "$U" "$MP"
gcc -O2 -pthread -o "$LZ_TMP/loadgen" "$TESTS_SRCDIR/loadgen.c"
: >"$LZ_TMP/list"
for ((i = 0; i < 100; i++)); do
	n=$(printf 'img%02d' "$i")
	for d in a b; do
		mkdir -p "$LZ_TMP/src/$n/$d"
		for f in 1 2 3 4; do
			printf '%s' "$MP/$n/$d/f$f" >"$LZ_TMP/src/$n/$d/f$f"
			echo "$MP/$n/$d/f$f" >>"$LZ_TMP/list"
		done
	done
	mksquashfs "$LZ_TMP/src/$n" "$IMG/$n.sqfs" -noappend -quiet >/dev/null
done
lz_ok "100 images of 8 files, each holding its own path"

settle() { # waits until every image has expired and the kernel let go of their inodes
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(lz_image_loops "$IMG") -eq 0 ]] && break
		sleep 0.2
	done
	sleep 1
}
fds() { ls "/proc/$1/fd" | wc -l; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

lz_mount "$MP" -o "backend=$BACKEND,underlay=$U,images=$IMG,idle_timeout=1,prefetch=off"
pid=$LZ_LAST_PID
"$LZ_TMP/loadgen" "$LZ_TMP/list" 8 500 1 >/dev/null || lz_fail "warm-up load failed"
# bpf=auto loads the tracker in the background (slowly in a sanitizer build):
# its descriptors must be counted in the baseline, not as a leak.
ctl="${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}"
for ((i = 0; i < 100; i++)); do
	grep -q '"bpf": *"loaded"' <<<"$("$ctl" --json "$MP" status 2>/dev/null)" && break
	sleep 0.1
done
settle
fd0=$(fds "$pid") rss0=$(rss_kib "$pid")

start=$SECONDS
if ! out=$(timeout "$WATCHDOG" "$LZ_TMP/loadgen" "$LZ_TMP/list" "$THREADS" "$OPS" 4); then
	kill -0 "$pid" 2>/dev/null || lz_fail "the daemon died under load: $(tail -5 "$LZ_LAST_LOG")"
	lz_fail "load failed or hung past ${WATCHDOG} s: $out"
fi
lz_ok "$THREADS threads x $OPS open/read/close/stat with expiry at 1 s and readdir storms: $out in $((SECONDS - start)) s"
resolves=$("$ctl" --json "$MP" stats 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["images"]["resolved"])' 2>/dev/null || echo "?")

settle
fd1=$(fds "$pid") rss1=$(rss_kib "$pid")
[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "$(lz_image_loops "$IMG") loop devices still attached after expiry"
((fd1 <= fd0 + 2)) || lz_fail "open files grew from $fd0 to $fd1"
# Thread arenas and caches may grow a little; a leak per operation would not fit.
# Under ASan freed memory waits in a quarantine (up to 256 MiB): there LeakSanitizer,
# at exit below, is the check. TSan's shadow memory and histories grow with use.
asan=false
[[ $(ldd "$LAZYFS_BIN") == *libasan* ]] && asan=true
$LZ_TSAN && asan=true
$asan || ((rss1 <= rss0 + 16384)) || lz_fail "RSS grew from $rss0 KiB to $rss1 KiB"
lz_ok "afterwards: no loop device left, $fd0 -> $fd1 open files, RSS $rss0 -> $rss1 KiB ($resolves image resolves)"
lz_umount "$MP"
! grep -q "Sanitizer" "$LZ_LAST_LOG" || lz_fail "sanitizer report: $(grep -A5 Sanitizer "$LZ_LAST_LOG" | head -20)"
lz_ok "no sanitizer report at exit (in a sanitizer build, leaks included)"

if ! command -v valgrind >/dev/null; then
	lz_skip "valgrind missing (the load checks passed)"
fi
if $asan; then
	lz_done # valgrind and the sanitizers do not mix; the werror build runs this part
	exit 0
fi
# valgrind 3.19 does not know the mount API (fsopen, fsmount): the squashfuse
# backend, whose code is lazyfs's own, is what runs under it.
VG=$LZ_TMP/valgrind.log
LZ_MOUNTS+=("$MP")
valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=9 --log-file="$VG" "$LAZYFS_BIN" -f -o "backend=squashfuse,underlay=$U,images=$IMG,idle_timeout=1,bpf=off,prefetch=off,cache=$LZ_TMP/vgcache" "$MP" 2>"$LZ_TMP/vg-daemon.log" &
vpid=$!
LZ_PIDS+=("$vpid")
for ((i = 0; i < 300; i++)); do
	lz_is_lazyfs_mount "$MP" && break
	sleep 0.1
done
lz_is_lazyfs_mount "$MP" || lz_fail "lazyfs under valgrind did not mount: $(tail -3 "$LZ_TMP/vg-daemon.log") $(grep -v "^==[0-9]*== *$" "$VG" | tail -5)"
"$LZ_TMP/loadgen" "$LZ_TMP/list" 4 300 1 >/dev/null || lz_fail "load under valgrind failed"
sleep 3 # expiry closes images under valgrind too
umount "$MP"
rc=0
wait "$vpid" || rc=$?
grep -q "ERROR SUMMARY: 0 errors" "$VG" || lz_fail "valgrind: $(grep -E 'ERROR SUMMARY|definitely|indirectly' "$VG")"
[[ $rc -eq 0 ]] || lz_fail "lazyfs under valgrind exited $rc: $(tail -20 "$VG")"
lz_ok "a short run under valgrind --leak-check=full: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$VG"), no definite or indirect leak"
lz_done
