#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Live upgrade: lazyfsctl MP upgrade replaces the daemon ten times while eight
# readers check files and compile with a gcc from the mount. The mount stays
# the same mount, no reader sees an error (no ENOTCONN, no EIO), files opened
# before the first upgrade read correctly after the last, a binary that cannot
# take over leaves the running daemon serving, and the last daemon unmounts
# cleanly and leaves no loop device.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v gcc >/dev/null && command -v mksquashfs >/dev/null || lz_skip "gcc or mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt W=$LZ_TMP/work SRC=$LZ_TMP/src
mkdir -p "$IMG" "$U/tools" "$MP" "$W" "$SRC/data/deep/er"
bash "$TESTS_SRCDIR/mkgccimage.sh" "$IMG/gcc.sqfs"
for i in $(seq 1 40); do
	head -c $((i * 7919)) /dev/urandom >"$SRC/data/f$i.bin"
done
# Directories too long for one READDIR, listed across the upgrades.
mkdir -p "$SRC/many" "$U/many"
(cd "$SRC/many" && seq -f "an-entry-with-a-long-name-%05g" 1 1500 | xargs touch)
(cd "$U/many" && seq -f "an-underlay-entry-with-a-long-name-%05g" 1 1500 | xargs touch)
head -c $((8 << 20)) /dev/urandom >"$SRC/data/deep/er/big.bin"
cat >"$SRC/prog.c" <<'C'
#include <stdio.h>
#include "prog.h"
int main(void) { printf("%d\n", ANSWER * 2); return 0; }
C
echo '#define ANSWER 21' >"$SRC/prog.h"
mksquashfs "$SRC" "$IMG/src.sqfs" -quiet -noappend >/dev/null
(cd "$SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$W/sums"
head -c 100000 /dev/urandom >"$U/tools/under.bin"
lz_ok "images: gcc and a source tree ($(wc -l <"$W/sums") files)"

# Bad handover records: the new process refuses each with one line to the old daemon.
if command -v python3 >/dev/null; then
	python3 - "$LAZYFS_BIN" "$U" "$MP" <<'PY' || lz_fail "bad handover records were not refused as expected"
import os, socket, struct, subprocess, sys
binary, under, mp = sys.argv[1:4]
MAGIC = 0x4f485a4c
def attempt(version, nfds, text, fds, expect):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = dict(os.environ, LAZYFS_TAKEOVER_FD=str(b.fileno()))
    p = subprocess.Popen([binary, "-f", "-o", "underlay=" + under, mp], env=env,
                         pass_fds=[b.fileno()], stderr=subprocess.PIPE)
    b.close()
    a.send(struct.pack("<IIIIQ", MAGIC, version, nfds, 0, len(text)))
    if version == 1:
        if fds:
            socket.send_fds(a, [b"F"], fds)
        if fds or nfds == 0:
            a.send(text)
        if nfds > len(fds):
            a.shutdown(socket.SHUT_WR)
    reply = a.recv(1000).decode()
    p.wait(timeout=60)
    err = p.stderr.read().decode()
    ok = reply.startswith("error ") and expect in reply and p.returncode != 0
    print(("ok" if ok else "BAD") + ": " + reply + " / exit " + str(p.returncode))
    if not ok:
        print(err, file=sys.stderr)
    return ok
good = attempt(99, 0, b"", [], "version 99")
good &= attempt(1, 0, b"version 1\nminor 0\n", [], "truncated")
good &= attempt(1, 0, b"version 9\nend\n", [], "reads versions 1 to")
good &= attempt(1, 0, b"version 1\nmountpoint =/x\nminor 0\ninit 00\nfuse 0\nend\n", [], "FUSE_INIT")
good &= attempt(1, 3, b"version 1\nend\n", [0], "descriptors")
sys.exit(0 if good else 1)
PY
	lz_ok "wrong framing or record version, truncated record, bad FUSE_INIT, missing descriptors: refused with a reason"
fi

lz_mount "$MP" -o backend="$BACKEND",underlay="$U",images="$IMG"
pid=$LZ_LAST_PID
mount_of() { awk -v mp="$(realpath "$MP")" '$5 == mp { print $1, $3 }' /proc/self/mountinfo; }
before=$(mount_of)
[[ -n $before ]] || lz_fail "no mountinfo line for $MP"

# Held open across every upgrade: read partly now, the rest after the last one.
exec 7<"$MP/src/data/deep/er/big.bin" 8<"$MP/tools/under.bin"
# And directories open mid-listing: the kernel sends the old daemon's handles to the new ones.
python3 - "$MP" "$W" <<'PY' &
import os, sys, time
mp, w = sys.argv[1:3]
dirs = [mp, mp + "/src/many", mp + "/many"]
its = [os.scandir(d) for d in dirs]
seen = [[next(it).name for _ in range(3)] for it in its]
open(w + "/dirs.started", "w").close()
while not os.path.exists(w + "/dirs.go"):
    time.sleep(0.1)
with open(w + "/dirs.out", "w") as out:
    for d, it, names in zip(dirs, its, seen):
        try:
            names += [e.name for e in it]
        except OSError as e:
            out.write("error %s: %s\n" % (d, e))
        out.write("%s %d %s\n" % (d, len(names), ",".join(sorted(names)) == ",".join(sorted(os.listdir(d)))))
PY
LISTER=$!
LZ_PIDS+=("$LISTER")
for ((i = 0; i < 100; i++)); do [[ -e $W/dirs.started ]] && break; sleep 0.1; done
[[ -e $W/dirs.started ]] || lz_fail "the directory lister did not start"
head -c 4096 <&7 >"$W/held.part1"
cmp "$W/held.part1" <(head -c 4096 "$SRC/data/deep/er/big.bin") || lz_fail "held file: first read wrong"

# Readers: 6 checksum every file of the image, 2 compile and run a program
# from it with the image's gcc. Any failure is written to err.N.
STOP=$W/stop
reader() {
	local n=$1 runs=0
	cd "$W"
	while [[ ! -e $STOP ]]; do
		if ((n < 6)); then
			(cd "$MP/src" && sha256sum --quiet -c "$W/sums") >"$W/out.$n" 2>&1 ||
				{ echo "run $runs: $(head -c 300 "$W/out.$n")" >>"$W/err.$n"; }
		else
			if ! "$MP/gcc/bin/gcc" -O1 -I"$MP/src" "$MP/src/prog.c" -o "$W/prog.$n" 2>"$W/out.$n" ||
				[[ $("$W/prog.$n") != 42 ]]; then
				echo "run $runs: compile: $(head -c 300 "$W/out.$n")" >>"$W/err.$n"
			fi
		fi
		runs=$((runs + 1))
		echo "$runs" >"$W/runs.$n"
	done
}
READERS=()
for n in 0 1 2 3 4 5 6 7; do
	reader "$n" &
	READERS+=("$!")
	LZ_PIDS+=("$!")
done
# Every reader has finished a run before the first upgrade.
lz_wait_readers "$W" 8
lz_ok "8 readers running (6 checksumming, 2 compiling with the image's gcc)"

# A binary that cannot take over: the running daemon serves on.
if out=$("$CTL" "$MP" upgrade /bin/false 2>&1); then
	lz_fail "upgrade to /bin/false succeeded: $out"
fi
[[ $out == *"serves on"* ]] || lz_fail "upgrade to /bin/false: unexpected answer: $out"
kill -0 "$pid" || lz_fail "the daemon died after a failed upgrade"
grep -q "^pid: $pid\$" <<<"$("$CTL" "$MP" status)" || lz_fail "another pid answers after a failed upgrade"
lz_ok "upgrade to /bin/false fails with a reason, pid $pid serves on: $(tail -c 120 <<<"$out")"

# A binary others may write, or a user's, is never run with the daemon's privileges.
cp "$LAZYFS_BIN" "$W/lazyfs-open"
chmod 0777 "$W/lazyfs-open"
out=$("$CTL" "$MP" upgrade "$W/lazyfs-open" 2>&1) && lz_fail "upgrade to a world-writable binary: $out"
[[ $out == *"writable by others"* ]] || lz_fail "upgrade to a world-writable binary: $out"
chmod 0755 "$W/lazyfs-open"
chown nobody "$W/lazyfs-open"
out=$("$CTL" "$MP" upgrade "$W/lazyfs-open" 2>&1) && lz_fail "upgrade to nobody's binary: $out"
[[ $out == *"owned by uid $(id -u nobody)"* ]] || lz_fail "upgrade to nobody's binary: $out"
grep -q "^pid: $pid\$" <<<"$("$CTL" "$MP" status)" || lz_fail "another pid answers after a refused upgrade"
lz_ok "upgrade refuses a binary writable by others or owned by another user; pid $pid serves on"

# The same binary nine times, a copy of it (a "new" binary) once.
cp "$LAZYFS_BIN" "$W/lazyfs-new"
for i in $(seq 1 10); do
	bin=()
	((i == 5)) && bin=("$W/lazyfs-new")
	out=$("$CTL" "$MP" upgrade "${bin[@]}" 2>&1) || lz_fail "upgrade $i: $out"
	new=$(sed -n 's/^upgraded: pid \([0-9]*\) .*/\1/p' <<<"$out")
	[[ -n $new && $new != "$pid" ]] || lz_fail "upgrade $i: no new pid in '$out'"
	LZ_PIDS+=("$new")
	timeout 10 tail --pid="$pid" -f /dev/null || lz_fail "upgrade $i: old daemon $pid did not exit"
	kill -0 "$new" || lz_fail "upgrade $i: new daemon $new is not running"
	[[ $(mount_of) == "$before" ]] || lz_fail "upgrade $i: the mount changed: $(mount_of) vs $before"
	if ((i == 5)); then
		[[ $(readlink "/proc/$new/exe") == "$W/lazyfs-new" ]] || lz_fail "upgrade 5 did not run the new binary"
	fi
	pid=$new
done
lz_ok "10 upgrades: a new pid each time, the same mount ($before) throughout"
grep -q "^pid: $pid\$" <<<"$("$CTL" "$MP" status)" || lz_fail "lazyfsctl does not reach the last daemon"
lz_ok "lazyfsctl reaches the last daemon over the same socket"

touch "$STOP"
for r in "${READERS[@]}"; do wait "$r" || true; done
total=0
for n in 0 1 2 3 4 5 6 7; do total=$((total + $(cat "$W/runs.$n"))); done
errors=$(cat "$W"/err.* 2>/dev/null || true)
[[ -z $errors ]] || lz_fail "readers saw errors: $(head -c 1500 <<<"$errors")"
lz_ok "8 readers, $total runs across the upgrades, zero errors (no ENOTCONN, no EIO)"

cat <&7 >"$W/held.part2"
cat "$W/held.part1" "$W/held.part2" | cmp - "$SRC/data/deep/er/big.bin" || lz_fail "file held open (image) read wrong after the upgrades"
touch "$W/dirs.go"
wait "$LISTER" || lz_fail "the directory lister failed"
grep -q "^error" "$W/dirs.out" && lz_fail "directories open across the upgrades: $(cat "$W/dirs.out")"
[[ $(grep -c " True$" "$W/dirs.out") == 3 ]] || lz_fail "directories listed across the upgrades differ: $(cut -c 1-200 "$W/dirs.out")"
lz_ok "directories opened before the first upgrade list completely after the last ($(awk '{ printf "%s ", $2 }' "$W/dirs.out")entries)"
cmp <(cat <&8) "$U/tools/under.bin" || lz_fail "file held open (underlay) read wrong after the upgrades"
exec 7<&- 8<&-
lz_ok "files opened before the first upgrade read correctly after the last"

# The images are still those the first daemon mounted: no loop device more.
cmp "$MP/src/data/f7.bin" "$SRC/data/f7.bin" || lz_fail "a read after the readers stopped failed"
if grep -qiE "transport endpoint|input/output error" "$LZ_LAST_LOG"; then
	lz_fail "the daemons logged I/O errors: $(grep -iE 'transport|input/output' "$LZ_LAST_LOG" | head -3)"
fi
lz_umount "$MP" "$pid"
lz_is_lazyfs_mount "$MP" && lz_fail "still mounted"
for f in "$IMG"/*.sqfs; do
	[[ -z $(losetup -j "$f") ]] || lz_fail "a loop device is left on $f: $(losetup -j "$f")"
done
lz_ok "clean unmount by the last daemon, no loop device left"
