#!/bin/bash
# Restart after a crash without unmounting: under a supervisor that keeps a
# file descriptor store as systemd does (tests/fdstore.py), the daemon stores
# its /dev/fuse connection, underlay and state; it is killed with SIGKILL
# while four readers checksum files of the underlay and of an image, and the
# daemon the supervisor starts next takes the mount over from the store. The
# mount stays the same mount, the readers see no error, a file held open
# reads on, lazyfsctl reaches the new daemon. A mount unmounted while no
# daemon ran is mounted anew instead; a clean unmount empties the store.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null && command -v python3 >/dev/null || lz_skip "mksquashfs or python3 missing"
"$LAZYFS_BIN" --version | grep -q "no systemd notify" && lz_skip "built without libsystemd: no descriptor store"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}

U=$LZ_TMP/under IMG=$LZ_TMP/img MP=$LZ_TMP/mnt W=$LZ_TMP/work T=$LZ_TMP/tree
mkdir -p "$U/tools" "$IMG" "$MP" "$W" "$T/data"
for i in $(seq 1 30); do head -c $((i * 6007)) /dev/urandom >"$U/tools/u$i.bin"; done
for i in $(seq 1 30); do head -c $((i * 5003)) /dev/urandom >"$T/data/t$i.bin"; done
head -c $((6 << 20)) /dev/urandom >"$T/big.bin"
mksquashfs "$T" "$IMG/app.sqfs" -quiet -noappend >/dev/null
# Absolute paths: a process whose working directory is inside the mount when
# the daemon dies gets ESTALE for relative paths (lazyfs(8) RESTART).
(cd "$U/tools" && sha256sum ./*) | sed "s|\./|$MP/tools/|" >"$W/under.sums"
(cd "$T/data" && sha256sum ./*) | sed "s|\./|$MP/app/data/|" >"$W/app.sums"

EV=$W/events HOLD=$W/hold
python3 "$TESTS_SRCDIR/fdstore.py" "$EV" "$W/daemon.log" "$HOLD" -- \
	"$LAZYFS_BIN" -f -d -o "backend=$BACKEND,underlay=$U,images=$IMG,cache=$LZ_TMP/cache" "$MP" &
SUP=$!
LZ_PIDS+=("$SUP")
LZ_MOUNTS+=("$MP")
# The supervisor first: while it holds the connection and no daemon runs, any
# look at the mountpoint (the cleanup's too) waits for one.
stop_supervisor() {
	local rc=$?
	kill -TERM "$SUP" 2>/dev/null || true
	timeout 10 tail --pid="$SUP" -f /dev/null || true
	lz_cleanup "$rc"
}
trap stop_supervisor EXIT
# wait_event N PATTERN: the Nth line matching PATTERN, once it is there.
wait_event() {
	local i line
	for ((i = 0; i < 300; i++)); do
		line=$(grep -E "$2" "$EV" 2>/dev/null | sed -n "$1p" || true)
		[[ -n $line ]] && { echo "$line"; return 0; }
		sleep 0.1
	done
	lz_fail "no event '$2' (#$1): $(cat "$EV" 2>/dev/null) / $(tail -5 "$W/daemon.log")"
}
pid=$(wait_event 1 '^ready ' | cut -d' ' -f2)
LZ_PIDS+=("$pid")
for name in lazyfs-fuse lazyfs-underlay lazyfs-state; do wait_event 1 "^stored $name\$" >/dev/null; done
mount_of() { awk -v mp="$(realpath "$MP")" '$5 == mp { print $1, $3 }' /proc/self/mountinfo; }
before=$(mount_of)
[[ -n $before ]] || lz_fail "not mounted"
lz_ok "pid $pid serves, its connection, underlay and state are in the supervisor's store"

exec 7<"$MP/app/big.bin"
head -c 4096 <&7 >"$W/held.1"
STOP=$W/stop
READERS=()
for n in 0 1 2 3; do
	if ((n % 2)); then sums=$W/under.sums; else sums=$W/app.sums; fi
	lz_checksum_reader "$W" "$n" "$sums" &
	READERS+=("$!")
	LZ_PIDS+=("$!")
done
lz_wait_readers "$W" 4
runs_before=$(cat "$W"/runs.* | paste -sd+ | bc)

kill -KILL "$pid"
wait_event 1 "^killed $pid 9\$" >/dev/null
new=$(wait_event 2 '^ready ' | cut -d' ' -f2)
LZ_PIDS+=("$new")
[[ $new != "$pid" ]] || lz_fail "no new daemon"
[[ $(mount_of) == "$before" ]] || lz_fail "the mount changed: $(mount_of) vs $before"
grep -q "restart: taking the stored mount over" "$W/daemon.log" || lz_fail "the new daemon did not take the stored mount over"
lz_ok "SIGKILL: the supervisor started pid $new, which took the same mount ($before) over"

sleep 2 # the readers go on through the new daemon
touch "$STOP"
for r in "${READERS[@]}"; do wait "$r" || true; done
runs_after=$(cat "$W"/runs.* | paste -sd+ | bc)
((runs_after > runs_before + 4)) || lz_fail "the readers did not go on after the restart ($runs_before, then $runs_after runs)"
errors=$(cat "$W"/err.* 2>/dev/null || true)
[[ -z $errors ]] || lz_fail "readers saw errors: $(head -c 1500 <<<"$errors")"
lz_ok "4 readers, $runs_after runs ($((runs_after - runs_before)) after the crash), zero errors"

cat <&7 >"$W/held.2"
exec 7<&-
cat "$W/held.1" "$W/held.2" | cmp - "$T/big.bin" || lz_fail "the file held open read wrong after the restart"
"$CTL" "$MP" status | grep -q "^pid: $new\$" || lz_fail "lazyfsctl does not reach pid $new"
lz_ok "a file opened before the crash reads on; lazyfsctl reaches the new daemon"

# Unmounted while no daemon runs: the next one finds the stored connection ended.
touch "$HOLD"
kill -KILL "$new"
wait_event 1 "^killed $new 9\$" >/dev/null
# No stat of the mountpoint: nothing would answer it.
umount --no-canonicalize "$MP"
rm "$HOLD"
third=$(wait_event 3 '^ready ' | cut -d' ' -f2)
LZ_PIDS+=("$third")
grep -q "restart: the stored mount has ended; mounting anew" "$W/daemon.log" || lz_fail "no 'mounting anew' line"
cmp "$MP/tools/u3.bin" "$U/tools/u3.bin" || lz_fail "the new mount does not serve"
wait_event 2 "^stored lazyfs-fuse\$" >/dev/null
lz_ok "unmounted while no daemon ran: pid $third mounts anew and stores the new connection"

umount "$MP"
wait_event 1 "^exited $third 0\$" >/dev/null
for name in lazyfs-fuse lazyfs-underlay lazyfs-state; do wait_event 1 "^removed $name\$" >/dev/null; done
for f in "$IMG"/*.sqfs; do
	for ((i = 0; i < 50; i++)); do [[ -z $(losetup -j "$f") ]] && break; sleep 0.1; done
	[[ -z $(losetup -j "$f") ]] || lz_fail "a loop device is left on $f: $(losetup -j "$f")"
done
lz_ok "a clean unmount takes the descriptors out of the store; no loop device left"
lz_done
