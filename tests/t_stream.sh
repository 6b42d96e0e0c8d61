#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Streamed cold reads (stream=on, remote_mode=objects) through a real rclone:
# `rclone serve http` on 127.0.0.1, the rclone child slowed by RCLONE_BWLIMIT
# so a fetch lasts seconds. Readers at the start, the middle and the end of a
# cold object during its fetch: the open returns at once, the reader at the
# end does not wait for the bytes before it, all bytes equal the source
# (sha256), one fetch for all; once published, the next open sends no READ;
# a changed remote object is fetched again; an object of one chunk (256 KiB)
# or less is fetched whole, and sends no READ even cold; stream=off still waits for the
# whole object (no READ even cold); the http server killed midway gives EIO
# to the waiting reader and publishes nothing; and with a remote that lists
# MD5s (rclone's hasher over a local directory), an object whose bytes do
# not match its listed hash fails every later read with EIO, unpublished.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v rclone >/dev/null && command -v python3 >/dev/null || lz_skip "rclone or python3 missing"
export RCLONE_CONFIG=/dev/null
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

SRC=$LZ_TMP/srv U=$LZ_TMP/under MP=$LZ_TMP/mnt MP2=$LZ_TMP/mnt2
mkdir -p "$SRC" "$U" "$MP" "$MP2"
MIB=$((1 << 20))
head -c $((12 * MIB + 4321)) /dev/urandom >"$SRC/clip.bin"
head -c $((64 * MIB)) /dev/urandom >"$SRC/dies.bin" # killed once read from: never all of it
head -c $((3 * MIB)) /dev/urandom >"$SRC/whole.bin"
head -c $((200 * 1024)) /dev/urandom >"$SRC/small.bin" # one chunk: read whole, not streamed

# A reader: opens PATH, reads LEN bytes at OFF (LEN -1: to the end), and
# writes one JSON line: open time, monotonic end time, bytes, sha256, errno.
cat >"$LZ_TMP/reader.py" <<'PY'
import errno, hashlib, json, os, sys, time
path, off, length, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
progress = sys.argv[5] if len(sys.argv) > 5 else None  # bytes read so far, after each MiB
t0 = time.monotonic()
res = {"err": 0, "n": 0}
h = hashlib.sha256()
try:
    fd = os.open(path, os.O_RDONLY)
    res["open"] = time.monotonic() - t0
    pos = off
    while length < 0 or pos < off + length:
        want = 1 << 20 if length < 0 else min(1 << 20, off + length - pos)
        b = os.pread(fd, want, pos)
        if not b:
            break
        h.update(b)
        pos += len(b)
        if progress:
            open(progress, "w").write(str(pos - off))
    res["n"] = pos - off
    os.close(fd)
except OSError as e:
    res["err"] = e.errno
    res["n"] = pos - off if "pos" in dir() else 0
res["done"] = time.monotonic()
res["sha"] = h.hexdigest()
open(out, "w").write(json.dumps(res))
PY
# The sha256 of LEN bytes of FILE at OFF (LEN -1: to the end).
sha_of() { python3 -c 'import hashlib,sys
f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); n = int(sys.argv[3])
print(hashlib.sha256(f.read() if n < 0 else f.read(n)).hexdigest())' "$@"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
fetches() { grep -c "fetched '$1'" "$log" || true; }
# Reads MP/NAME whole under the FUSE tracer: its sha256 in $got, the READs that reached the daemon in $reads.
traced_read() {
	fusetrace_start "$1"
	got=$(sha256sum <"$1/$2" | cut -d' ' -f1)
	sleep 0.2
	reads=$(fusetrace_count FUSE_READ)
	fusetrace_stop
}

lz_serve_http "$SRC"
port=$LZ_HTTP_PORT server=$LZ_HTTP_PID
remote=":http\\,url='http://127.0.0.1:$port/':"
# 2 MiB/s (after rclone's first burst): 12 MiB take about 5 s; no read-ahead
# buffer, so the child reads from the remote only as fast as it serves (a
# remote killed midway then cuts the fetch); fetch_timeout bounds a stall; one
# low-level retry, so a dead remote fails at once.
export RCLONE_BWLIMIT=2M RCLONE_BUFFER_SIZE=0 RCLONE_LOW_LEVEL_RETRIES=1
lz_mount "$MP" -d -o "underlay=$U,remote=$remote,remote_mode=objects,cache=$LZ_TMP/cache,listing_ttl=1,fetch_timeout=3"
log=$LZ_LAST_LOG
size=$(stat -c %s "$MP/clip.bin")
[[ $size == $(stat -c %s "$SRC/clip.bin") ]] || lz_fail "clip.bin size $size"

# Three readers at once on the cold object: the whole of it, 64 KiB in the middle, the last 64 KiB.
fusetrace_start "$MP"
python3 "$LZ_TMP/reader.py" "$MP/clip.bin" 0 -1 "$LZ_TMP/r.whole" &
r1=$!
sleep 0.2
python3 "$LZ_TMP/reader.py" "$MP/clip.bin" $((6 * MIB)) 65536 "$LZ_TMP/r.mid" &
r2=$!
python3 "$LZ_TMP/reader.py" "$MP/clip.bin" $((size - 65536)) 65536 "$LZ_TMP/r.end" &
r3=$!
LZ_PIDS+=("$r1" "$r2" "$r3")
wait "$r1" "$r2" "$r3" || true
cold_reads=$(fusetrace_count FUSE_READ)
fusetrace_stop
for r in whole mid end; do
	[[ -s $LZ_TMP/r.$r ]] || lz_fail "reader $r wrote nothing"
	[[ $(field "$LZ_TMP/r.$r" err) == 0 ]] || lz_fail "reader $r: errno $(field "$LZ_TMP/r.$r" err)"
done
[[ $(field "$LZ_TMP/r.whole" sha) == $(sha_of "$SRC/clip.bin" 0 -1) ]] || lz_fail "the streamed object's sha256 differs from the source's"
[[ $(field "$LZ_TMP/r.mid" sha) == $(sha_of "$SRC/clip.bin" $((6 * MIB)) 65536) ]] || lz_fail "the middle reader's bytes"
[[ $(field "$LZ_TMP/r.end" sha) == $(sha_of "$SRC/clip.bin" $((size - 65536)) 65536) ]] || lz_fail "the end reader's bytes"
lz_ok "a cold 12 MiB object streamed to 3 readers (start, middle, end): sha256 equal to the source's ($cold_reads READs served by the daemon)"
((cold_reads > 0)) || lz_fail "no READ reached the daemon: the cold object was not streamed"
opened=$(field "$LZ_TMP/r.whole" open)
whole_done=$(field "$LZ_TMP/r.whole" "done")
end_done=$(field "$LZ_TMP/r.end" "done")
python3 -c "import sys; sys.exit(0 if $opened < 1.0 else 1)" || lz_fail "the cold open took ${opened}s: it waited for the fetch"
python3 -c "import sys; sys.exit(0 if $end_done < $whole_done - 0.8 else 1)" ||
	lz_fail "the reader at the end finished at $end_done, the whole object at $whole_done: it waited for the bytes before it"
lz_ok "the cold open returned in ${opened}s; the last 64 KiB came $(python3 -c "print(round($whole_done - $end_done, 2))")s before the end of the fetch"
wait_for 10 grep -q "fetched 'clip.bin'" "$log" || lz_fail "clip.bin never published"
[[ $(fetches clip.bin) == 1 ]] || lz_fail "clip.bin fetched $(fetches clip.bin) times"
lz_ok "three readers and the early resolve share one fetch"

# Published, and the streamed handles closed: the next open is passthrough.
sleep 0.5 # RELEASE reaches the daemon in the background
traced_read "$MP" clip.bin
[[ $got == $(sha_of "$SRC/clip.bin" 0 -1) ]] || lz_fail "the published copy's sha256"
[[ $reads == 0 ]] || lz_fail "the open after publication sent $reads READs"
[[ $("$CTL" "$MP" evict clip.bin 2>&1) == "clip.bin evicted" ]] || lz_fail "clip.bin is not in the cache"
sha256sum <"$MP/clip.bin" >/dev/null # streamed again, for the next check
wait_for 10 eval '[[ $(fetches clip.bin) == 2 ]]' || lz_fail "clip.bin not fetched again after its eviction"
lz_ok "once published, the next open sends no READ (passthrough); the object is in the cache"

# A changed remote object is fetched again.
head -c $((5 * MIB + 77)) /dev/urandom >"$SRC/clip.bin"
sleep 2.2 # listing_ttl=1, and the kernel's entry timeout is the same
[[ $(sha256sum <"$MP/clip.bin" | cut -d' ' -f1) == $(sha_of "$SRC/clip.bin" 0 -1) ]] || lz_fail "the changed object's bytes"
wait_for 10 eval '[[ $(fetches clip.bin) == 3 ]]' || lz_fail "the changed object was not fetched again"
lz_ok "an object changed on the remote is fetched again, and reads as the new one"

# An object of one chunk or less gains nothing streamed: fetched whole by one range read, then passthrough.
traced_read "$MP" small.bin
[[ $got == $(sha_of "$SRC/small.bin" 0 -1) ]] || lz_fail "the small object's bytes"
[[ $reads == 0 ]] || lz_fail "a cold object of 200 KiB sent $reads READs: it was streamed"
wait_for 10 eval '[[ $(fetches small.bin) == 1 ]]' || lz_fail "small.bin fetched $(fetches small.bin) times"
lz_ok "a cold object of 200 KiB (one chunk) is fetched whole and read through passthrough (no READ)"

# stream=off: today's behaviour, the whole object checked before the first byte: no READ even cold.
lz_mount "$MP2" -d -o "underlay=$U,remote=$remote,remote_mode=objects,cache=$LZ_TMP/cache-off,stream=off"
traced_read "$MP2" whole.bin
[[ $got == $(sha_of "$SRC/whole.bin" 0 -1) ]] || lz_fail "stream=off: bytes"
[[ $reads == 0 ]] || lz_fail "stream=off: a cold open sent $reads READs"
lz_ok "stream=off: a cold open waits for the whole object, then passthrough (no READ)"
lz_umount "$MP2"

# The remote dies midway: the waiting reader gets EIO, never short data, and nothing is published.
# Killed once the reader has its first MiB, whatever the speed: the rest is still to come.
python3 "$LZ_TMP/reader.py" "$MP/dies.bin" 0 -1 "$LZ_TMP/r.dies" "$LZ_TMP/r.dies.at" &
r4=$!
LZ_PIDS+=("$r4")
wait_for 20 test -s "$LZ_TMP/r.dies.at" || lz_fail "no byte of dies.bin within 20 s"
kill -KILL "$server"
wait "$server" 2>/dev/null || true
wait "$r4" || true
[[ $(field "$LZ_TMP/r.dies" err) == 5 ]] ||
	lz_fail "the reader of a fetch whose remote died: errno $(field "$LZ_TMP/r.dies" err) after $(field "$LZ_TMP/r.dies" n) bytes"
got=$(field "$LZ_TMP/r.dies" n)
((got < 64 * MIB)) || lz_fail "the reader got all of an object whose remote died"
[[ $(field "$LZ_TMP/r.dies" sha) == $(sha_of "$SRC/dies.bin" 0 "$got") ]] || lz_fail "the bytes before the EIO are not the object's"
grep -q "streamed fetch of 'dies.bin' failed" "$log" || lz_fail "no log line for the failed fetch"
! grep -q "fetched 'dies.bin'" "$log" || lz_fail "a failed fetch was published"
[[ $("$CTL" "$MP" evict dies.bin 2>&1) == *"not resolved or cached"* ]] || lz_fail "dies.bin is in the cache"
lz_ok "the remote killed midway: the waiting reader got EIO after $got right bytes; nothing published"
stats=$("$CTL" --json "$MP" stats) || lz_fail "stats: $stats"
python3 - "$stats" <<'PY' || lz_fail "stats: $stats"
import json, sys
c = json.loads(sys.argv[1])["cache"]
assert c["streams"] >= 4 and c["stream_failures"] == 1, c
PY
lz_ok "lazyfsctl stats counts the streams and the one that failed"
lz_umount "$MP"

# A remote that lists MD5s: rclone's hasher over a local directory the child can read.
LOCAL=$LZ_TMP/local
mkdir -p "$LOCAL" "$LZ_TMP/rcache"
chown _lazyfs "$LZ_TMP/rcache"
head -c $((6 * MIB)) /dev/urandom >"$LOCAL/changed.bin"
chmod 755 "$LOCAL"
chmod 644 "$LOCAL/changed.bin"
# The hasher keeps its sums under the child's cache dir; the local backend must not
# refuse a file changed under it (the point here is the check at the end).
export RCLONE_CACHE_DIR=$LZ_TMP/rcache RCLONE_LOCAL_NO_CHECK_UPDATED=true
lz_mount "$MP" -d -o "underlay=$U,remote=:hasher\\,remote=$LOCAL:,remote_mode=objects,cache=$LZ_TMP/cache-h,listing_ttl=60"
log=$LZ_LAST_LOG
[[ $(stat -c %s "$MP/changed.bin") == $((6 * MIB)) ]] || lz_fail "hasher remote: size"
# Listed with the MD5 of these bytes; then replaced by others of the same size.
head -c $((6 * MIB)) /dev/urandom >"$LOCAL/changed.bin.new"
chmod 644 "$LOCAL/changed.bin.new"
mv "$LOCAL/changed.bin.new" "$LOCAL/changed.bin"
python3 - "$MP/changed.bin" "$log" <<'PY' || lz_fail "hash mismatch"
import errno, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    while os.read(fd, 1 << 20):
        pass  # bytes before the check: the documented trade-off
except OSError as e:
    if e.errno != errno.EIO:
        raise
deadline = time.monotonic() + 20
while b"streamed fetch of 'changed.bin' failed" not in open(sys.argv[2], "rb").read():
    if time.monotonic() > deadline:
        sys.exit("no log line for the mismatch")
    time.sleep(0.1)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # what the page cache kept
for off in (0, 3 << 20):
    try:
        os.pread(fd, 4096, off)
        sys.exit("a read after the failed check succeeded")
    except OSError as e:
        if e.errno != errno.EIO:
            raise
os.close(fd)
PY
grep -q "streamed fetch of 'changed.bin' failed:.*mismatch" "$log" || lz_fail "the failure is not a hash mismatch: $(grep changed.bin "$log" | tail -2)"
! grep -q "fetched 'changed.bin'" "$log" || lz_fail "an object that failed its check was published"
[[ $("$CTL" "$MP" evict changed.bin 2>&1) == *"not resolved or cached"* ]] || lz_fail "changed.bin is in the cache"
lz_ok "hash mismatch at the end of a streamed fetch: later reads fail with EIO, nothing published"
lz_umount "$MP"
# In a sanitizer build: nothing reported by any daemon, at exit included (leaks).
for f in "$LZ_TMP"/lazyfs.*.log; do
	! grep -qE "Sanitizer|runtime error" "$f" || lz_fail "sanitizer report in $f: $(grep -E -A8 'Sanitizer|runtime error' "$f" | head -30)"
done
lz_ok "no sanitizer report in the daemons' logs"
lz_done
