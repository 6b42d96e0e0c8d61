#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# An images directory that stops answering (an NFS or EFS hiccup; here a
# squashfuse mount whose daemon is stopped with SIGSTOP) holds no caller
# beyond resolve_timeout and takes no FUSE worker: a cold open is answered
# EIO in time, a killed caller is let go at once (FUSE_INTERRUPT), more stuck
# names than worker threads leave warm files, a mapped image elsewhere and
# lazyfsctl serving, the root lists the images it had, the stall shows in
# lazyfsctl images and the metrics, and all of it recovers on SIGCONT. A lookup
# waiting there while the worker aborts twice is answered EIO by the third.
# After a crash, a working directory inside an image on the stopped store
# gets ESTALE within a bound, and reads on once the store answers.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v squashfuse >/dev/null || lz_skip "squashfuse missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}

U=$LZ_TMP/under MP=$LZ_TMP/mnt STORE=$LZ_TMP/store SRC=$LZ_TMP/src
mkdir -p "$U/plain" "$MP" "$STORE" "$SRC" "$LZ_TMP/local"
# The images directory is itself a squashfs image holding the images, served by squashfuse.
for n in warm cold late; do
	mkdir -p "$LZ_TMP/t/$n"
	echo "$n contents" >"$LZ_TMP/t/$n/f"
	mksquashfs "$LZ_TMP/t/$n" "$SRC/$n.sqfs" -noappend -quiet >/dev/null
done
mksquashfs "$SRC" "$LZ_TMP/store.sqfs" -noappend -quiet >/dev/null
# A mapped image on a disk that keeps answering.
mkdir -p "$LZ_TMP/t/other"
echo "other contents" >"$LZ_TMP/t/other/f"
mksquashfs "$LZ_TMP/t/other" "$LZ_TMP/local/other.sqfs" -noappend -quiet >/dev/null
echo "mapped/other $LZ_TMP/local/other.sqfs" >"$LZ_TMP/map"
echo plain >"$U/plain/x"

squashfuse -f "$LZ_TMP/store.sqfs" "$STORE" 2>"$LZ_TMP/squashfuse.log" &
STORE_PID=$!
LZ_PIDS+=("$STORE_PID")
for ((i = 0; i < 100; i++)); do
	[[ -e $STORE/warm.sqfs ]] && break
	sleep 0.05
done
[[ -e $STORE/warm.sqfs ]] || lz_fail "squashfuse did not serve the images directory"
# Whatever happens, the store answers again before the mounts are torn down.
trap 'rc=$?; kill -CONT "$STORE_PID" 2>/dev/null; umount -l "$STORE" 2>/dev/null; lz_cleanup $rc' EXIT

# now: seconds since the epoch, with the fraction.
now() { date +%s.%N; }
# elapsed START: seconds since START, whole.
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%d", e - s }'; }

# --- resolve_timeout=2: the bound, the FUSE workers, what goes on serving.
lz_mount "$MP" -o underlay="$U",images="$STORE",map="$LZ_TMP/map",resolve_timeout=2,backend="$BACKEND"
[[ $(cat "$MP/warm/f") == "warm contents" ]] || lz_fail "warm image not read"
exec 3<"$MP/warm/f"
ls "$MP" >/dev/null # the root's listing, read once while the store answers
kill -STOP "$STORE_PID"

start=$(now)
if out=$(timeout 60 cat "$MP/cold/f" 2>&1); then
	lz_fail "a cold image on a stopped store was read: $out"
fi
took=$(elapsed "$start")
[[ $out == *"Input/output error"* ]] || lz_fail "cold open on a stopped store: '$out', not EIO"
((took < 30)) || lz_fail "cold open took ${took}s with resolve_timeout=2"
lz_ok "a cold image on a stopped store is answered EIO within the bound (${took}s, resolve_timeout=2)"

# More stuck names than FUSE worker threads (max_threads=16): 40 callers on 20 names.
pids=()
for ((i = 0; i < 40; i++)); do
	cat "$MP/stuck$((i % 20))/f" >/dev/null 2>&1 &
	pids+=($!)
done
sleep 0.5
for ((i = 0; i < 20; i++)); do
	[[ $(cat "$MP/warm/f") == "warm contents" ]] || lz_fail "warm file not read while 40 lookups wait"
done
[[ $(cat <&3) == "warm contents" ]] || lz_fail "the file held open did not read on"
lz_ok "warm files read while 40 lookups of 20 stuck names wait"
[[ $(timeout 20 cat "$MP/mapped/other/f") == "other contents" ]] ||
	lz_fail "a mapped image on another disk did not resolve while the images directory hangs"
lz_ok "a mapped image on another disk resolves meanwhile"
timeout 10 "$CTL" "$MP" status >/dev/null || lz_fail "lazyfsctl status did not answer"
lz_ok "lazyfsctl answers"
start=$(now)
listing=$(timeout 30 ls "$MP") || lz_fail "the root did not list while the images directory hangs"
took=$(elapsed "$start")
[[ $listing == *warm* && $listing == *plain* ]] || lz_fail "root listing lacks warm or plain: $listing"
lz_ok "the root lists the images it had and the underlay (${took}s)"
grep -q "images directory did not list within" "$LZ_LAST_LOG" || lz_fail "the stale listing was not logged"
lz_ok "the stale listing is logged"

# Every caller ends (EIO at the bound), and the stuck names show as stalled.
for pid in "${pids[@]}"; do
	timeout 30 tail --pid="$pid" -f /dev/null || lz_fail "a caller of a stuck name did not end"
done
lz_ok "all 40 callers were answered"
images=$(timeout 10 "$CTL" --json "$MP" images)
python3 - "$images" <<'EOF' || lz_fail "lazyfsctl images shows no stalled image: $images"
import json, sys
d = json.loads(sys.argv[1])
assert d["schema_version"] == 1, d
stalled = [i["name"] for i in d["images"] if i.get("state") == "stalled"]
sys.exit(0 if "stuck0" in stalled and "cold" in stalled else 1)
EOF
lz_ok "lazyfsctl images shows the stuck names as stalled"
metrics=$(timeout 10 "$CTL" "$MP" metrics)
stalled=$(awk '$1 == "lazyfs_images_stalled" { print $2 }' <<<"$metrics")
timeouts=$(awk '$1 == "lazyfs_resolve_timeouts_total" { print $2 }' <<<"$metrics")
threads=$(awk '$1 == "lazyfs_resolve_threads" { print $2 }' <<<"$metrics")
((stalled >= 21)) || lz_fail "lazyfs_images_stalled is $stalled, not at least 21"
((timeouts >= 41)) || lz_fail "lazyfs_resolve_timeouts_total is $timeouts, not at least 41"
((threads >= 21 && threads <= 256)) || lz_fail "lazyfs_resolve_threads is $threads"
lz_ok "metrics: $stalled stalled, $timeouts timed out, $threads resolve threads"

kill -CONT "$STORE_PID"
for ((i = 0; i < 100; i++)); do
	[[ $(cat "$MP/cold/f" 2>/dev/null) == "cold contents" ]] && break
	sleep 0.1
done
[[ $(cat "$MP/cold/f") == "cold contents" ]] || lz_fail "cold image not read once the store answers"
[[ $(cat "$MP/late/f") == "late contents" ]] || lz_fail "late image not read once the store answers"
[[ $(cat "$MP/plain/x") == plain ]] || lz_fail "underlay not served once the store answers"
lz_ok "everything resolves once the store answers again"
exec 3<&-
lz_umount "$MP"
lz_ok "unmounted; the daemon exited"

# --- resolve_timeout=600: a killed caller is let go at once (FUSE_INTERRUPT).
lz_mount "$MP" -o underlay="$U",images="$STORE",resolve_timeout=600,backend="$BACKEND"
kill -STOP "$STORE_PID"
start=$(now)
timeout -s TERM 1 cat "$MP/late/f" >/dev/null 2>&1 && lz_fail "read an image from a stopped store"
took=$(elapsed "$start")
((took < 30)) || lz_fail "a killed caller waited ${took}s for its stuck lookup"
lz_ok "a caller killed after 1 s ends at once (${took}s, resolve_timeout=600)"
interrupted=$("$CTL" "$MP" metrics | awk '$1 == "lazyfs_lookups_interrupted_total" { print $2 }')
((interrupted >= 1)) || lz_fail "no lookup was answered EINTR"
lz_ok "the lookup was answered EINTR ($interrupted)"
# A live upgrade while a lookup waits: the new process gets it, and answers it once the store does.
timeout 120 cat "$MP/cold/f" >"$LZ_TMP/upgrade.out" 2>&1 &
waiter=$!
sleep 1
old=$LZ_LAST_PID
timeout 60 "$CTL" "$MP" upgrade || { tail -30 "$LZ_LAST_LOG"; lz_fail "upgrade with a lookup stuck on the store failed"; }
new=$("$CTL" "$MP" status | awk '/^pid:/ { print $2 }')
[[ -n $new && $new != "$old" ]] || lz_fail "no new process serves after the upgrade"
LZ_PIDS+=("$new")
kill -0 "$waiter" 2>/dev/null || lz_fail "the waiting lookup ended at the upgrade: $(cat "$LZ_TMP/upgrade.out")"
kill -CONT "$STORE_PID"
wait "$waiter" || lz_fail "the lookup that waited across the upgrade failed: $(cat "$LZ_TMP/upgrade.out")"
[[ $(cat "$LZ_TMP/upgrade.out") == "cold contents" ]] || lz_fail "it read: $(cat "$LZ_TMP/upgrade.out")"
lz_ok "a lookup waiting on the store across a live upgrade is answered by the new process"
kill -STOP "$STORE_PID"
timeout -s TERM 1 cat "$MP/stuck0/f" >/dev/null 2>&1 || true # gone; its resolve stays stuck
# Unmounting while a resolve is stuck: the daemon does not wait on it.
lz_umount "$MP" "$new"
lz_ok "unmounted with a resolve stuck on the store; the daemon exited"
kill -CONT "$STORE_PID"

# --- A request in flight at two crashes in a row is poison: the third worker answers it EIO.
# new_worker OLD: waits for the keeper's next worker, serving, and prints its pid.
new_worker() {
	local w i
	for ((i = 0; i < 200; i++)); do
		w=$(pgrep -P "$LZ_KEEPER_PID" | head -n 1 || true)
		if [[ -n $w && $w != "$1" ]] && "$CTL" "$MP" status >/dev/null 2>&1; then
			echo "$w"
			return 0
		fi
		sleep 0.05
	done
	lz_fail "no new worker after $1 was killed"
}
lz_mount "$MP" -o underlay="$U",images="$STORE",resolve_timeout=600,backend="$BACKEND"
kill -STOP "$STORE_PID"
timeout 60 cat "$MP/cold/f" >"$LZ_TMP/poison.out" 2>&1 &
reader=$!
worker=$LZ_LAST_PID
# crash SIGNAL: the worker dies of SIGNAL while the lookup is being served (it waits on the store).
crash() {
	sleep 1
	kill -0 "$reader" 2>/dev/null || lz_fail "the reader ended before a crash: $(cat "$LZ_TMP/poison.out")"
	kill -"$1" "$worker"
	worker=$(new_worker "$worker")
}
# SIGKILL is an operator's or the OOM killer's: it holds nothing against the request.
crash KILL
crash KILL
sleep 1
kill -0 "$reader" 2>/dev/null || lz_fail "two SIGKILLs made the request poison: $(cat "$LZ_TMP/poison.out")"
lz_ok "a lookup in flight at two SIGKILLs is served again"
# An abort (glibc's on a corrupt heap, a failed assertion) is the worker's own crash.
crash ABRT
crash ABRT
timeout 30 tail --pid="$reader" -f /dev/null || lz_fail "the poison request was not answered"
grep -q "Input/output error" "$LZ_TMP/poison.out" ||
	lz_fail "the request in flight at two crashes got: $(cat "$LZ_TMP/poison.out")"
lz_is_lazyfs_mount "$MP" || lz_fail "the mount failed open"
grep -q "answered EIO when it comes again" "$LZ_LAST_LOG" || lz_fail "the poison was not logged"
[[ $("$CTL" "$MP" metrics | awk '$1 == "lazyfs_poisoned_requests_total" { print $2 }') == 1 ]] ||
	lz_fail "lazyfs_poisoned_requests_total is not 1"
lz_ok "a lookup in flight at two aborts in a row is answered EIO by the third worker"
kill -CONT "$STORE_PID"
[[ $(timeout 30 cat "$MP/cold/f") == "cold contents" ]] || lz_fail "the poison was not forgiven once answered"
lz_ok "asked again, it is served"

# --- After a crash, a working directory inside an image whose store stopped:
# reviving it waits at most a second (ESTALE), and works once the store answers.
[[ $(cat "$MP/late/f") == "late contents" ]] || lz_fail "the late image not read"
rm -f "$LZ_TMP/go" "$LZ_TMP/go2"
(
	cd "$MP/late" || exit 1
	while [[ ! -e $LZ_TMP/go ]]; do sleep 0.05; done
	start=$(now)
	timeout 60 cat ./f >"$LZ_TMP/late.1" 2>&1 || true
	elapsed "$start" >"$LZ_TMP/late.took"
	while [[ ! -e $LZ_TMP/go2 ]]; do sleep 0.05; done
	timeout 60 cat ./f >"$LZ_TMP/late.2" 2>&1 || true
) &
probe=$!
kill -STOP "$STORE_PID"
kill -KILL "$worker"
worker=$(new_worker "$worker")
touch "$LZ_TMP/go"
for ((i = 0; i < 600; i++)); do
	[[ -s $LZ_TMP/late.took ]] && break
	sleep 0.1
done
[[ -s $LZ_TMP/late.took ]] || lz_fail "reviving on a stopped store did not end: $(cat "$LZ_TMP/late.1")"
grep -q "Stale file handle" "$LZ_TMP/late.1" || lz_fail "revived on a stopped store: $(cat "$LZ_TMP/late.1")"
(($(cat "$LZ_TMP/late.took") <= 20)) || lz_fail "reviving waited $(cat "$LZ_TMP/late.took") s on a stopped store"
lz_ok "after a crash, a working directory in an image on a stopped store gets ESTALE in $(cat "$LZ_TMP/late.took") s"
kill -CONT "$STORE_PID"
touch "$LZ_TMP/go2"
wait "$probe" || true
[[ $(cat "$LZ_TMP/late.2") == "late contents" ]] || lz_fail "revived once the store answers: $(cat "$LZ_TMP/late.2")"
lz_ok "and reads on once the store answers"
lz_umount "$MP" "$worker"
lz_done
