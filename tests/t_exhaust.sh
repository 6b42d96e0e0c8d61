#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# What holding directories and inodes costs the daemon: an unprivileged user
# with 10,000 directory handles adds at most 64 descriptors (directory streams
# are a bounded pool, reopened at the kernel's offset) and 64 MiB (union
# listings are shared and evicted past listing_max, then taken again and
# resumed at the same name), while root reads on. Listings read across those
# evictions are complete and list no name twice. Under a descriptor limit of
# 256 a walk of 20,000 underlay entries succeeds: inodes keep at most a
# quarter of the limit open and reopen the rest by file handle.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v prlimit >/dev/null || lz_skip "prlimit missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
HANDLES=10000

U=$LZ_TMP/under MP=$LZ_TMP/mnt MAP=$LZ_TMP/lazyfs.map FIFO=$LZ_TMP/release
mkdir -p "$U" "$MP" "$LZ_TMP/src"
chmod 755 "$LZ_TMP" # nobody must reach the mountpoint
echo "from the image" >"$LZ_TMP/src/who"
mksquashfs "$LZ_TMP/src" "$LZ_TMP/one.sqfs" -noappend -quiet >/dev/null
# 150 plain directories (more than the 64 streams) and 20 the map adds a name
# to (unions), 300 entries each: several READDIRs per directory.
python3 - "$U" "$MAP" "$LZ_TMP/one.sqfs" <<'PY'
import os, sys
under, map_file, image = sys.argv[1:]
dirs = [f"p{i:03}" for i in range(150)] + [f"m{i:02}" for i in range(20)]
for d in dirs:
    os.mkdir(os.path.join(under, d))
    for j in range(300):
        open(os.path.join(under, d, f"an-entry-with-a-longer-name-{j:04}"), "w").close()
with open(map_file, "w") as f:
    f.writelines(f"{d}/img {image}\n" for d in dirs if d.startswith("m"))
PY
echo "root reads this" >"$U/p000/an-entry-with-a-longer-name-0000"
lz_ok "built 170 directories of 300 entries"

lz_mount "$MP" -o underlay="$U",map="$MAP",listing_max=64K,allow_other
pid=$LZ_LAST_PID

# Runs as nobody: lists directories through getdents64 with a small buffer,
# so a listing is read in several requests, interleaved across directories.
LISTER=$(
	cat <<'PY'
import ctypes, os, sys
mp, mode = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
SYS_getdents64 = {"x86_64": 217, "aarch64": 61}[os.uname().machine]
buf = ctypes.create_string_buffer(2048)

def getdents(fd):
    n = libc.syscall(SYS_getdents64, fd, buf, len(buf))
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    names, pos, raw = [], 0, buf.raw
    while pos < n:
        reclen = int.from_bytes(raw[pos + 16:pos + 18], "little")
        names.append(raw[pos + 19:pos + reclen].split(b"\0", 1)[0].decode())
        pos += reclen
    return names

dirs = sorted(d for d in os.listdir(mp) if d[0] in "pm")
if mode == "interleaved":
    # One request on every directory first, then the rest of each: the
    # streams and unions of the first ones are gone by the time they go on.
    fds = [os.open(os.path.join(mp, d), os.O_RDONLY | os.O_DIRECTORY) for d in dirs]
    seen = [getdents(fd) for fd in fds]
    for d, fd, names in zip(dirs, fds, seen):
        while more := getdents(fd):
            names += more
        os.close(fd)
        want = set(os.listdir(os.path.join(mp, d))) | {".", ".."}
        if len(names) != len(set(names)):
            sys.exit(f"{d}: a name listed twice")
        if set(names) != want:
            sys.exit(f"{d}: {len(set(names) ^ want)} names differ")
    print("listed", len(dirs), "directories completely", flush=True)
else:
    held, targets = [], [mp] + [os.path.join(mp, d) for d in dirs]
    for i in range(int(mode)):
        fd = os.open(targets[i % len(targets)], os.O_RDONLY | os.O_DIRECTORY)
        getdents(fd)
        held.append(fd)
    print("holding", len(held), flush=True)
    sys.stdin.readline()
PY
)

as_nobody() {
	prlimit --nofile=$((HANDLES + 100)) setpriv --reuid=nobody --regid=nogroup --clear-groups \
		/usr/bin/python3 -c "$LISTER" "$@"
}

out=$(as_nobody "$MP" interleaved 2>&1) || lz_fail "interleaved listings as nobody: $out"
stats=$("$CTL" --json "$MP" stats) || lz_fail "stats: $stats"
evicted=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["directories"]["union_evictions"])' "$stats")
[[ $evicted -gt 0 ]] || lz_fail "no union listing was evicted past listing_max=64K: $stats"
lz_ok "170 listings read interleaved are complete, no name twice ($evicted union evictions)"

fds() { find "/proc/$pid/fd" -mindepth 1 | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
fds0=$(fds) rss0=$(rss_kib)
mkfifo "$FIFO"
as_nobody "$MP" "$HANDLES" <"$FIFO" >"$LZ_TMP/holder" 2>&1 &
holder=$!
LZ_PIDS+=("$holder")
exec 7>"$FIFO"
for ((i = 0; i < 1200; i++)); do
	grep -q "^holding" "$LZ_TMP/holder" && break
	kill -0 "$holder" 2>/dev/null || break
	sleep 0.1
done
grep -q "^holding $HANDLES" "$LZ_TMP/holder" || lz_fail "nobody did not open $HANDLES handles: $(cat "$LZ_TMP/holder")"

fds1=$(fds) rss1=$(rss_kib)
((fds1 - fds0 <= 64)) || lz_fail "$HANDLES handles added $((fds1 - fds0)) descriptors (at most 64)"
# Under ASan freed memory waits in a quarantine (up to 256 MiB): the werror build checks memory.
asan=false
[[ $(ldd "$LAZYFS_BIN") == *libasan* ]] && asan=true
$asan || ((rss1 - rss0 <= 64 * 1024)) || lz_fail "$HANDLES handles added $(((rss1 - rss0) / 1024)) MiB (at most 64)"
lz_ok "$HANDLES directory handles held by nobody: +$((fds1 - fds0)) descriptors, +$(((rss1 - rss0) / 1024)) MiB"

stats=$("$CTL" --json "$MP" stats) || lz_fail "stats: $stats"
python3 - "$stats" "$HANDLES" <<'PY' || lz_fail "stats while held: $stats"
import json, sys
d = json.loads(sys.argv[1])["directories"]
assert d["open"] >= int(sys.argv[2]), d
assert d["streams"] <= 64, d
assert d["union_bytes"] <= 64 * 1024 + 64 * 1024, d  # the cap, and the one being read
PY
[[ $(cat "$MP/p000/an-entry-with-a-longer-name-0000") == "root reads this" ]] || lz_fail "root could not read a file"
[[ $(cat "$MP/m07/img/who") == "from the image" ]] || lz_fail "root could not read a mapped image"
n=$(find "$MP" -path "$MP/m*/img" -prune -o -print | wc -l)
((n == 170 * 301 + 1)) || lz_fail "root's find saw $n entries, not $((170 * 301 + 1))"
lz_ok "root reads and walks the mount meanwhile; stats count the handles, streams stay at most 64"

echo go >&7
exec 7>&-
wait "$holder" || lz_fail "the holder failed: $(cat "$LZ_TMP/holder")"
for ((i = 0; i < 100; i++)); do
	stats=$("$CTL" --json "$MP" stats)
	python3 -c 'import json,sys; d = json.loads(sys.argv[1])["directories"]; sys.exit(d["open"] != 0 or d["streams"] != 0)' "$stats" && break
	sleep 0.1
done
python3 -c 'import json,sys; d = json.loads(sys.argv[1])["directories"]; sys.exit(d["open"] != 0 or d["streams"] != 0)' "$stats" ||
	lz_fail "handles closed, yet: $stats"
lz_ok "closing them releases every listing and stream"

lz_umount "$MP"

# --- inodes under a descriptor limit of 256 ----------------------------------
W=$LZ_TMP/walk
mkdir -p "$W"
python3 - "$W" <<'PY'
import os, sys
top = sys.argv[1]
for d in range(40):
    os.makedirs(f"{top}/d{d:02}/sub")
    for f in range(500):
        with open(f"{top}/d{d:02}/f{f:04}", "w") as fh:
            fh.write(f"{d} {f}\n")
    os.symlink("f0000", f"{top}/d{d:02}/link")
os.mkfifo(f"{top}/d00/fifo")
PY
want=$(cd "$W" && find . | sort | sha256sum)
want_data=$(cd "$W" && find . -type f | sort | xargs cat | sha256sum)
prlimit --pid $$ --nofile=256:256 # the daemon inherits it (and raises nothing past it)
lz_mount "$MP" -o underlay="$W"
pid=$LZ_LAST_PID
cd "$MP/d00" # a working directory whose descriptor the walk pushes out
[[ $(cd "$MP" && find . | sort | sha256sum) == "$want" ]] || lz_fail "find under nofile=256 lists other names"
ls -lR "$MP" >"$LZ_TMP/lslR" 2>&1 || lz_fail "ls -lR under nofile=256: $(grep -m3 -v '^$' "$LZ_TMP/lslR" | tail -n 3)"
[[ $(cd "$MP" && find . -type f | sort | xargs cat | sha256sum) == "$want_data" ]] || lz_fail "the files read other data"
[[ $(cat ./f0007) == "0 7" && $(readlink ./link) == f0000 && -p ./fifo ]] || lz_fail "the working directory's relative paths failed"
cd "$LZ_TMP"
fds=$(find "/proc/$pid/fd" -mindepth 1 | wc -l)
stats=$("$CTL" --json "$MP" stats) || lz_fail "stats: $stats"
python3 - "$stats" <<'PY' || lz_fail "inode stats after the walk: $stats"
import json, sys
d = json.loads(sys.argv[1])["inodes"]
assert d["path_fds"] <= d["path_fds_max"] == 64, d
assert d["reopened"] > 0 and d["closed_for_room"] > 0, d
PY
reopened=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["inodes"]["reopened"])' "$stats")
lz_ok "20,000 entries under nofile=256: find, ls -lR, every file's data and a working directory's relative paths; the daemon holds $fds descriptors ($reopened reopened by handle)"
lz_umount "$MP"

# open_mode=cached: every READ comes to the daemon, and no file keeps a descriptor for it.
lz_mount "$MP" -o underlay="$W",open_mode=cached
[[ $(cd "$MP" && find . -type f | sort | xargs cat | sha256sum) == "$want_data" ]] ||
	lz_fail "open_mode=cached: the files read other data under nofile=256"
fds=$(find "/proc/$LZ_LAST_PID/fd" -mindepth 1 | wc -l)
((fds < 200)) || lz_fail "open_mode=cached: the daemon holds $fds descriptors after reading 20,000 files"
lz_ok "open_mode=cached under nofile=256: every file's data read; the daemon holds $fds descriptors"
lz_umount "$MP"
lz_done
