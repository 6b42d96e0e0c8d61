#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Live upgrade of remote= mounts, served by a real `rclone serve http` on
# 127.0.0.1: one with remote_mode=objects, one whose squashfs image comes from
# the remote. Four readers checksum through both while each is upgraded five
# times. The cache directory passes from daemon to daemon (one holds it at a
# time): nothing is fetched twice, objects open across the upgrades stay
# referenced (evict says "in use"), files opened before read correctly after,
# each old daemon's rclone goes with it, an image only listed is handed over
# unfetched and fetched when walked into after, and a failed upgrade leaves the old
# daemon serving with its cache reopened. The last daemon's index is saved:
# a new mount on the same cache fetches nothing.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v rclone >/dev/null && command -v mksquashfs >/dev/null && command -v python3 >/dev/null ||
	lz_skip "rclone, mksquashfs or python3 missing"
export RCLONE_CONFIG=/dev/null
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

SRV=$LZ_TMP/srv U=$LZ_TMP/under W=$LZ_TMP/work MO=$LZ_TMP/objects MI=$LZ_TMP/images
TREE=$LZ_TMP/tree
mkdir -p "$SRV/clips/sub" "$SRV/images" "$U" "$MO" "$MI" "$W" "$TREE/data"
for i in $(seq 1 20); do head -c $((i * 40009)) /dev/urandom >"$SRV/clips/c$i.bin"; done
for i in 1 2 3; do head -c $((i * 70001)) /dev/urandom >"$SRV/clips/sub/s$i.bin"; done
head -c $((6 << 20)) /dev/urandom >"$SRV/clips/held.bin"
head -c 333333 /dev/urandom >"$SRV/late.bin" # read by nobody until a failed upgrade
(cd "$SRV/clips" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$W/clips.sums"
for i in $(seq 1 30); do head -c $((i * 5003)) /dev/urandom >"$TREE/data/t$i.bin"; done
head -c $((5 << 20)) /dev/urandom >"$TREE/data/big.bin"
mksquashfs "$TREE" "$SRV/images/tools.sqfs" -quiet -noappend >/dev/null
mkdir -p "$LZ_TMP/listed"
echo "walked into after the upgrades" >"$LZ_TMP/listed/f"
mksquashfs "$LZ_TMP/listed" "$SRV/images/listed.sqfs" -quiet -noappend >/dev/null
(cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$W/tools.sums"
nobjects=$(($(wc -l <"$W/clips.sums")))
lz_serve_http "$SRV"
url="http://127.0.0.1:$LZ_HTTP_PORT"

lz_mount "$MO" -d -o "underlay=$U,remote=:http\\,url='$url/':,remote_mode=objects,cache=$LZ_TMP/cache-o,fetch_timeout=10,listing_ttl=1"
po=$LZ_LAST_PID logo=$LZ_LAST_LOG
lz_mount "$MI" -d -o "underlay=$U,remote=:http\\,url='$url/images/':,cache=$LZ_TMP/cache-i,fetch_timeout=10"
pi=$LZ_LAST_PID logi=$LZ_LAST_LOG
mount_of() { awk -v mp="$(realpath "$1")" '$5 == mp { print $1, $3 }' /proc/self/mountinfo; }
before_o=$(mount_of "$MO") before_i=$(mount_of "$MI")
[[ -n $before_o && -n $before_i ]] || lz_fail "no mountinfo lines for the mounts"

# Held open across every upgrade: read partly now, the rest after the last one.
exec 7<"$MO/clips/held.bin" 8<"$MI/tools/data/big.bin"
head -c 4096 <&7 >"$W/o.part1"
head -c 4096 <&8 >"$W/i.part1"
# Listed, never walked into: its root goes through each upgrade not fetched.
[[ $(stat -c %F "$MI/listed") == directory ]] || lz_fail "the image listed is no directory"
(cd "$MI/listed" && exec sleep 600) & # its root stays held in the kernel (a cwd) across the upgrades
holder=$!
LZ_PIDS+=("$holder")
lz_ok "two mounts: $nobjects remote objects, an image from the remote; a file of each held open"

STOP=$W/stop
READERS=()
for n in 0 1 2 3; do
	if ((n < 2)); then dir=$MO/clips sums=$W/clips.sums; else dir=$MI/tools sums=$W/tools.sums; fi
	lz_checksum_reader "$W" "$n" "$sums" "$dir" &
	READERS+=("$!")
	LZ_PIDS+=("$!")
done
lz_wait_readers "$W" 4
lz_ok "4 readers running (2 on the objects, 2 in the image)"

in_use() { # MOUNTPOINT ENTRY: evict is refused because the entry is open
	local out
	out=$("$CTL" "$1" evict "$2" 2>&1) && lz_fail "evict $2 succeeded while it is open"
	[[ $out == *"in use"* ]] || lz_fail "evict $2: unexpected answer: $out"
}
in_use "$MO" clips/held.bin

# A failed upgrade: the daemon serves on, its cache reopened and its open objects held again.
out=$("$CTL" "$MO" upgrade /bin/false 2>&1) && lz_fail "upgrade to /bin/false succeeded: $out"
[[ $out == *"serves on"* ]] || lz_fail "upgrade to /bin/false: unexpected answer: $out"
kill -0 "$po" || lz_fail "the daemon died after a failed upgrade"
cmp "$MO/late.bin" "$SRV/late.bin" || lz_fail "a fetch after a failed upgrade read wrong"
in_use "$MO" clips/held.bin
lz_ok "upgrade to /bin/false fails, the daemon serves on: fetches into its reopened cache, the held object stays in use"

upgrade() { # MOUNTPOINT PID BEFORE: sets NEW to the new daemon's pid
	local mp=$1 old=$2 before=$3 out new rclones
	rclones=$(pgrep -P "$old" -x rclone || true)
	out=$("$CTL" "$mp" upgrade 2>&1) || lz_fail "upgrade of $mp: $out"
	new=$(sed -n 's/^upgraded: pid \([0-9]*\) .*/\1/p' <<<"$out")
	[[ -n $new && $new != "$old" ]] || lz_fail "upgrade of $mp: no new pid in '$out'"
	LZ_PIDS+=("$new")
	timeout 10 tail --pid="$old" -f /dev/null || lz_fail "old daemon $old did not exit"
	kill -0 "$new" || lz_fail "new daemon $new is not running"
	[[ $(mount_of "$mp") == "$before" ]] || lz_fail "the mount $mp changed"
	for r in $rclones; do
		timeout 10 tail --pid="$r" -f /dev/null || lz_fail "the old daemon's rclone $r outlived it"
	done
	NEW=$new
}
for i in 1 2 3 4 5; do
	upgrade "$MO" "$po" "$before_o"
	po=$NEW
	upgrade "$MI" "$pi" "$before_i"
	pi=$NEW
	sleep 0.5 # the readers go through each new daemon
done
lz_ok "5 upgrades of each mount: new pids, the same mounts, no old daemon or rclone left"

touch "$STOP"
for r in "${READERS[@]}"; do wait "$r" || true; done
total=0
for n in 0 1 2 3; do total=$((total + $(cat "$W/runs.$n"))); done
errors=$(cat "$W"/err.* 2>/dev/null || true)
[[ -z $errors ]] || lz_fail "readers saw errors: $(head -c 1500 <<<"$errors")"
lz_ok "4 readers, $total runs across the upgrades, zero errors"

in_use "$MO" clips/held.bin
cat <&7 >"$W/o.part2"
cat <&8 >"$W/i.part2"
exec 7<&- 8<&-
cat "$W/o.part1" "$W/o.part2" | cmp - "$SRV/clips/held.bin" || lz_fail "held object read wrong after the upgrades"
cat "$W/i.part1" "$W/i.part2" | cmp - "$TREE/data/big.bin" || lz_fail "held image file read wrong after the upgrades"
lz_ok "objects opened before the upgrades stay in use and read correctly after them"

fetched=$(grep -c "fetched '" "$logo" || true)
distinct=$(grep -o "fetched '.*'" "$logo" | sort -u | wc -l)
[[ $fetched == "$distinct" && $fetched == $((nobjects + 1)) ]] ||
	lz_fail "objects mount: $fetched fetches of $distinct objects (want each of $((nobjects + 1)) once)"
fetched=$(grep -c "fetched 'tools.sqfs'" "$logi" || true)
[[ $fetched == 1 ]] || lz_fail "image mount: the image was fetched $fetched times"
! grep -q "fetched 'listed.sqfs'" "$logi" || lz_fail "the image only listed was fetched"
[[ $(ls "/proc/$holder/cwd/") == f ]] || lz_fail "the root held across the upgrades does not list"
[[ $(cat "$MI/listed/f") == "walked into after the upgrades" ]] || lz_fail "the image listed before the upgrades"
kill "$holder"
lz_ok "an image only listed before the upgrades is handed over unfetched, and fetched once walked into after"
lz_ok "the caches passed from daemon to daemon: each of $((nobjects + 1)) objects and the image fetched once"

if grep -qiE "transport endpoint|input/output error|not saved|cannot reopen" "$logo" "$logi"; then
	lz_fail "the daemons logged errors: $(grep -hiE 'transport|input/output|not saved|cannot reopen' "$logo" "$logi" | head -3)"
fi
lz_umount "$MO" "$po"
lz_umount "$MI" "$pi"
losetup -a | grep -F "$LZ_TMP/" && lz_fail "a loop device is left on the cached image"

# The last daemon saved the index: a new mount on the same cache fetches nothing.
lz_mount "$MO" -d -o "underlay=$U,remote=:http\\,url='$url/':,remote_mode=objects,cache=$LZ_TMP/cache-o,fetch_timeout=10"
(cd "$MO/clips" && sha256sum --quiet -c "$W/clips.sums") || lz_fail "remount: objects read wrong"
grep -q "fetched '" "$LZ_LAST_LOG" && lz_fail "remount: fetched again: $(grep "fetched '" "$LZ_LAST_LOG" | head -3)"
lz_umount "$MO"
lz_ok "clean unmounts; the cache the last daemon saved serves a new mount without fetching"
lz_done
