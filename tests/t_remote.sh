#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Remote objects through a real rclone: `rclone serve http` on 127.0.0.1
# serves a generated tree; lazyfs mounts it with remote_mode=objects. Bytes
# and listings match (rclone itself checks, as an unmodified client of the
# mount); cold then warm opens (warm: passthrough, no READ); 32 threads on one
# cold object fetch it once; a missing object is ENOENT; what is cached keeps
# being served when the remote stops answering and after a restart, while
# uncached objects fail with EIO and a log line.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v rclone >/dev/null || lz_skip "rclone missing"
export RCLONE_CONFIG=/dev/null

SRC=$LZ_TMP/srv U=$LZ_TMP/under MP=$LZ_TMP/mnt CACHE=$LZ_TMP/cache
mkdir -p "$SRC/clips/deeper" "$U" "$MP"
for i in 1 2 3 4 5 6; do head -c $((i * 300000 + 7)) /dev/urandom > "$SRC/clips/clip-$i.bin"; done
head -c $((10 << 20)) /dev/urandom > "$SRC/big.bin"
echo "unicode and spaces" > "$SRC/clips/deeper/é a file.txt"
: > "$SRC/empty"
lz_serve_http "$SRC"
port=$LZ_HTTP_PORT server=$LZ_HTTP_PID
remote=":http\\,url='http://127.0.0.1:$port/':"
opts="underlay=$U,remote=$remote,remote_mode=objects,cache=$CACHE,fetch_timeout=3,listing_ttl=1"

lz_mount "$MP" -d -o "$opts"
log=$LZ_LAST_LOG
# The rcd child starts with the mount, before any access, niced below the daemon.
wait_for 10 grep -q "rclone rcd (pid [0-9]*)" "$log" || lz_fail "no rcd child started with the mount"
rcd=$(sed -n 's/.*rclone rcd (pid \([0-9]*\)).*/\1/p' "$log" | tail -n1)
daemon_ni=$(ps -o ni= -p "$(ps -o ppid= -p "$rcd" | tr -d ' ')" | tr -d ' ')
want_ni=$((daemon_ni + 10 > 19 ? 19 : daemon_ni + 10))
[[ $(ps -o ni= -p "$rcd" | tr -d ' ') == "$want_ni" ]] ||
	lz_fail "the rcd child's nice value: $(ps -o ni= -p "$rcd"), the daemon's $daemon_ni"
lz_ok "the rcd child started with the mount, at nice $want_ni (the daemon's is $daemon_ni)"
[[ $(ls "$MP/clips" | tr '\n' ' ') == "clip-1.bin clip-2.bin clip-3.bin clip-4.bin clip-5.bin clip-6.bin deeper " ]] ||
	lz_fail "listing: $(ls "$MP/clips")"
[[ $(stat -c %s "$MP/clips/clip-3.bin") == $(stat -c %s "$SRC/clips/clip-3.bin") ]] || lz_fail "sizes"
lz_ok "the tree mirrors the remote's listing"

rclone check "$SRC" "$MP" --one-way 2>"$LZ_TMP/check.log" || { cat "$LZ_TMP/check.log" >&2; lz_fail "rclone check"; }
lz_ok "rclone check SOURCE MOUNT passes (rclone reading the mount unmodified)"

# Warm: the second pass opens cached copies with passthrough.
fusetrace_start "$MP"
cat "$MP"/clips/clip-*.bin > /dev/null
sleep 0.3
reads=$(fusetrace_count FUSE_READ)
fusetrace_stop
[[ $reads -eq 0 ]] || lz_fail "warm reads of cached objects sent $reads READ requests"
lz_ok "warm opens of cached objects: no READ reaches the daemon"

# The backing files registered for passthrough are kept after the last close:
# a warm open opens no cache file and registers nothing (no ioctl).
pid=$LZ_LAST_PID
kept=$("$(dirname "$LAZYFS_BIN")/lazyfsctl" --json "$MP" status |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["backing_files_kept"])')
((kept >= 6)) || lz_fail "$kept backing files kept after closing 6 objects"
strace -f -qq -e trace=openat2,ioctl -p "$pid" -o "$LZ_TMP/warm.strace" &
tracer=$!
LZ_PIDS+=("$tracer")
sleep 0.5 # strace attaches to every thread
cat "$MP"/clips/clip-*.bin >/dev/null
sleep 0.3
kill "$tracer"
wait "$tracer" 2>/dev/null || true
# openat2: how the store opens its files; FUSE_DEV_IOC_BACKING_OPEN is 0xe5, 0x1.
grep -E 'openat2\(|ioctl\(.*(BACKING_OPEN|0xe5, 0x1,)' "$LZ_TMP/warm.strace" >&2 &&
	lz_fail "a warm open reopened or registered its cache file"
lz_ok "warm opens reuse the $kept backing files kept from earlier opens: no open, no ioctl"

# An object changed on the remote is fetched again, not served from its kept file.
head -c 123457 /dev/urandom >"$SRC/clips/clip-1.bin"
sleep 2.2 # listing_ttl=1, and the kernel's entry timeout is the same
cmp -s "$MP/clips/clip-1.bin" "$SRC/clips/clip-1.bin" ||
	lz_fail "a changed object was served from the backing file kept for its old copy"
lz_ok "an object changed on the remote is fetched again despite its kept backing file"

# 32 threads open one cold object at once: one fetch.
python3 - "$MP/big.bin" "$SRC/big.bin" <<'PY' || lz_fail "concurrent cold opens"
import sys, threading
want = open(sys.argv[2], "rb").read()
errors = []
def read():
    try:
        with open(sys.argv[1], "rb") as f:
            if f.read() != want:
                errors.append("wrong bytes")
    except OSError as e:
        errors.append(str(e))
threads = [threading.Thread(target=read) for _ in range(32)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("; ".join(errors))
PY
[[ $(grep -c "fetched 'big.bin'" "$log") -eq 1 ]] || lz_fail "big.bin fetched $(grep -c "fetched 'big.bin'" "$log") times"
lz_ok "32 threads opening one cold object: fetched once, all read the right bytes"

[[ ! -e $MP/clips/nothing.bin ]] || lz_fail "a missing object exists"
if cat "$MP/clips/nothing.bin" 2>"$LZ_TMP/err"; then lz_fail "reading a missing object"; fi
grep -q "No such file" "$LZ_TMP/err" || lz_fail "missing object: $(cat "$LZ_TMP/err")"
lz_ok "a missing object is ENOENT"

# The remote stops answering: cached objects still read, uncached ones fail with EIO.
echo "arrived late" > "$SRC/clips/deeper/late.txt"
sleep 1.1 # past listing_ttl, so the listing is fetched again and shows it
[[ -e $MP/clips/deeper/late.txt ]] || lz_fail "a new remote object did not appear after listing_ttl"
kill -STOP "$server"
sleep 1.1 # past listing_ttl: listings must be refreshed, and that fails
[[ $(md5sum < "$MP/clips/clip-2.bin") == $(md5sum < "$SRC/clips/clip-2.bin") ]] ||
	lz_fail "a cached object is not served while the remote hangs"
# Once the remote has failed, cached opens must not each wait for its timeout
# again (a behaviour, not a benchmark: the bound is the 3 s fetch_timeout).
start=$(date +%s%N)
cat "$MP/clips/clip-3.bin" > /dev/null
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
((elapsed_ms < 3000)) || lz_fail "a cached open waited ${elapsed_ms} ms for the hung remote"
if cat "$MP/clips/deeper/late.txt" >/dev/null 2>"$LZ_TMP/err"; then
	lz_fail "an uncached object was served while the remote hangs"
fi
grep -q "Input/output error" "$LZ_TMP/err" || lz_fail "uncached object: $(cat "$LZ_TMP/err")"
grep -q "failed" "$log" || lz_fail "no log line about the failing remote"
kill -CONT "$server"
lz_ok "remote hangs: cached objects keep being served, an uncached one fails with EIO and a log line"
[[ $(cat "$MP/clips/deeper/late.txt") == "arrived late" ]] || lz_fail "recovery after the remote answers again"
lz_ok "after the remote answers again, the uncached object is fetched"

# Kill rclone's rcd child: the next fetch starts a new one.
rcd=$(sed -n 's/.*rclone rcd (pid \([0-9]*\)).*/\1/p' "$log" | tail -n1)
[[ -n $rcd ]] || lz_fail "no rcd pid in the log"
# It runs as _lazyfs, holds no capability in any set and can gain none.
status=$(cat "/proc/$rcd/status")
child_uid=$(id -u _lazyfs)
[[ $(awk '/^Uid:/ {print $2 $3 $4 $5}' <<<"$status") == "$child_uid$child_uid$child_uid$child_uid" ]] ||
	lz_fail "the rcd child's uids: $(grep ^Uid: <<<"$status"), expected $child_uid (_lazyfs)"
[[ $(awk '/^Groups:/ {print $2}' <<<"$status") == "" ]] || lz_fail "the rcd child has groups: $(grep ^Groups: <<<"$status")"
for set in CapInh CapPrm CapEff CapAmb; do
	[[ $(awk -v s="$set:" '$1 == s {print $2}' <<<"$status") == 0000000000000000 ]] ||
		lz_fail "the rcd child's $set: $(grep "^$set:" <<<"$status")"
done
[[ $(awk '/^NoNewPrivs:/ {print $2}' <<<"$status") == 1 ]] || lz_fail "the rcd child can gain privileges (NoNewPrivs 0)"
! grep -q '^HOME=/root$' <(tr '\0' '\n' <"/proc/$rcd/environ") || lz_fail "the rcd child's HOME is root's"
lz_ok "the rcd child runs as _lazyfs ($child_uid), no groups, no capabilities in any set, no_new_privs"
kill -KILL "$rcd"
[[ $(md5sum < "$MP/clips/clip-6.bin") == $(md5sum < "$SRC/clips/clip-6.bin") ]] ||
	lz_fail "fetch after the rcd child was killed"
lz_ok "the rcd child killed: restarted, the next fetch succeeds"
lz_umount "$MP"

# Restart with the remote down: the cache (objects and listings) serves.
kill -STOP "$server"
lz_mount "$MP" -d -o "$opts"
[[ $(md5sum < "$MP/clips/clip-1.bin") == $(md5sum < "$SRC/clips/clip-1.bin") ]] ||
	lz_fail "the cache did not survive a restart"
kill -CONT "$server"
lz_ok "after a restart with the remote down, cached objects and listings are served"
lz_umount "$MP"
left=$(find "$CACHE/tmp" -mindepth 1 2>/dev/null)
[[ -z $left ]] || lz_fail "temporary files left in the cache: $left"
[[ $(stat -c %a "$CACHE") == 711 ]] || lz_fail "the cache directory is $(stat -c %a "$CACHE"), not 0711"
[[ $(stat -c '%a %U' "$CACHE/tmp") == "700 _lazyfs" ]] || lz_fail "tmp/ is $(stat -c '%a %U' "$CACHE/tmp"), not 700 _lazyfs"
[[ $(stat -c '%a %U' "$CACHE/objects") == "700 root" ]] || lz_fail "objects/ is $(stat -c '%a %U' "$CACHE/objects")"
bad=$(find "$CACHE/objects" -type f ! \( -user root -perm 0400 \) | head -3)
[[ -z $bad ]] || lz_fail "objects not root's and 0400: $bad ($(stat -c '%U %a' $bad))"
[[ -n $(find "$CACHE/objects" -type f | head -1) ]] || lz_fail "no object in the cache"
lz_ok "no temporary file left; tmp/ is the rclone child's, objects/ and every object root's and read-only"
lz_done
