#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Remote objects (remote_mode=objects) as they scale, at a size CI affords
# (scripts/bench section 15 measures 150,000): a cold open waits for its fetch
# off the FUSE workers, so with a single worker a warm open, a lookup and a
# listing are answered while a fetch hangs on a stopped remote; handles of
# one remote directory share one listing, a changed listing gets its own,
# and every handle lists every name; a mount over a cache of 2,000 objects
# serves them all from the cache (its index loaded after the mount) and
# fetches nothing. Behaviour only: the timing belongs to scripts/bench.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v rclone >/dev/null || lz_skip "rclone missing"
export RCLONE_CONFIG=/dev/null
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
N=2000

SRC=$LZ_TMP/srv U=$LZ_TMP/under MP=$LZ_TMP/mnt
mkdir -p "$SRC/objs" "$SRC/slow" "$U" "$MP"
python3 - "$SRC/objs" "$N" <<'EOF'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"o{i:05d}"), "w") as f:
        f.write(f"object {i}\n")
EOF
head -c 4M /dev/urandom >"$SRC/slow/big.bin"
lz_serve_http "$SRC"
remote="remote=:http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/':,remote_mode=objects"
stat_of() { "$CTL" --json "$MP" stats | python3 -c "import json,sys; d = json.load(sys.stdin); print(d$1)"; }

# One FUSE worker; bpf=off, so nothing but the OPEN starts the fetch.
lz_mount "$MP" -o "underlay=$U,$remote,max_threads=1,bpf=off,prefetch=off,listing_ttl=3600"
[[ $(cat "$MP/objs/o00007") == "object 7" ]] || lz_fail "o00007: wrong bytes"
stat "$MP/slow/big.bin" >/dev/null
kill -STOP "$LZ_HTTP_PID"
cat "$MP/slow/big.bin" >"$LZ_TMP/big.copy" &
cold=$!
sleep 1
kill -0 "$cold" 2>/dev/null || {
	kill -CONT "$LZ_HTTP_PID"
	lz_fail "the cold read ended while the remote was stopped: nothing was in flight"
}
[[ $(timeout 5 cat "$MP/objs/o00007") == "object 7" ]] || {
	kill -CONT "$LZ_HTTP_PID"
	lz_stacks "$LZ_LAST_PID" >&2
	lz_fail "a warm open waited behind a fetch in flight (max_threads=1)"
}
[[ $(timeout 5 ls "$MP/objs" | wc -l) -eq $N ]] || {
	kill -CONT "$LZ_HTTP_PID"
	lz_fail "a listing waited behind a fetch in flight"
}
# The fetch's threads (the pool's, the stream's) run niced; the FUSE worker does not.
niced=0
for p in "$LZ_LAST_PID" $(pgrep -P "$LZ_LAST_PID"); do
	[[ $(ps -o comm= -p "$p") == lazyfs ]] || continue
	base=$(ps -o ni= -p "$p" | tr -d ' ')
	niced=$((niced + $(ps -L -o ni= -p "$p" | awk -v n=$((base + 10 > 19 ? 19 : base + 10)) '$1 == n' | wc -l)))
done
((niced >= 1)) || {
	kill -CONT "$LZ_HTTP_PID"
	lz_fail "no daemon thread 10 nice levels down while a fetch runs"
}
kill -0 "$cold" 2>/dev/null || lz_fail "the cold read ended before the remote went on"
kill -CONT "$LZ_HTTP_PID"
wait "$cold" || lz_fail "the cold read failed once the remote went on: $(tail -3 "$LZ_LAST_LOG")"
cmp -s "$LZ_TMP/big.copy" "$SRC/slow/big.bin" || lz_fail "the cold read's bytes differ"
lz_ok "with one worker, a warm open and a listing of $N were answered while a fetch hung ($niced fetch threads niced by 10)"
lz_umount "$MP"

# Handles of one remote directory share its listing; a new listing is a new one.
lz_mount "$MP" -o "underlay=$U,$remote,bpf=off,prefetch=off,listing_ttl=1"
python3 - "$MP/objs" "$N" "$CTL" "$MP" "$SRC/objs" <<'EOF'
import json, os, subprocess, sys, time
d, n, ctl, mp, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def dirs():
    st = json.loads(subprocess.run([ctl, "--json", mp, "stats"], check=True,
                                   stdout=subprocess.PIPE).stdout)
    return st["directories"]
def names(fd):
    # A listing through the handle itself, from its start.
    os.lseek(fd, 0, os.SEEK_SET)
    return sorted(os.listdir(fd))
fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for _ in range(3)]
st = dirs()
assert st["unions"] == 1 and st["union_entries"] == n + 2, st  # ".", ".." and the objects
for fd in fds:
    got = names(fd)
    assert len(got) == n and got[0] == "o00000" and got[-1] == f"o{n - 1:05d}", (len(got), got[:3])
with open(os.path.join(src, "new"), "w") as f:
    f.write("new\n")
time.sleep(1.5)  # listing_ttl=1
os.stat(os.path.join(d, "new"))  # the lookup lists the directory again
late = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
st = dirs()
assert st["unions"] == 2, st
assert len(names(late)) == n + 1 and "new" in names(late)
for fd in fds:  # the earlier handles keep the listing they opened
    assert len(names(fd)) == n
for fd in fds + [late]:
    os.close(fd)
EOF
lz_ok "3 handles of a $N-entry remote directory shared one listing; a changed one got its own"
lz_umount "$MP"

# A cache of N objects from the first mount: the next one serves them all without a fetch.
rm -f "$SRC/objs/new"
lz_mount "$MP" -o "underlay=$U,$remote,bpf=off,prefetch=off,listing_ttl=3600,cache=$LZ_TMP/cache2"
cat "$MP"/objs/* >/dev/null
lz_umount "$MP"
lz_mount "$MP" -o "underlay=$U,$remote,bpf=off,prefetch=off,listing_ttl=3600,cache=$LZ_TMP/cache2"
before=$(stat_of '["cache"]["fetches"]')
objects=$(stat_of '["cache"]["objects"]')
((objects >= N)) || lz_fail "the cache's index holds $objects objects, expected $N"
cat "$MP"/objs/* | sha256sum >"$LZ_TMP/a"
cat "$SRC"/objs/* | sha256sum >"$LZ_TMP/b"
cmp -s "$LZ_TMP/a" "$LZ_TMP/b" || lz_fail "objects served from the cache differ"
after=$(stat_of '["cache"]["fetches"]')
[[ $before == "$after" && $after -eq 0 ]] || lz_fail "$((after - before)) objects fetched again"
lz_ok "a mount over a cache of $objects objects served all $N of them, none fetched"
lz_umount "$MP"
lz_done
