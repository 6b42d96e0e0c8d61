#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Live upgrade across the restructuring: a mount served by the lazyfs built
# from the last commit before it (COMPAT_REV) is upgraded to this build while
# readers checksum its files, then back to the old binary and forward again.
# Both directions work because the handover record did not change. Files and
# a directory held open across the three upgrades read on. Needs the git
# history to build the old binary (or LAZYFS_OLD_BIN); skipped in a tarball.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
COMPAT_REV=7a7bd9b17a18d08d4f6dd10c34e85ff6abd7e8e9
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
top=$(cd "$TESTS_SRCDIR/.." && pwd)

# The old binary: built once into _build/ and kept for the next run.
OLD=${LAZYFS_OLD_BIN:-}
if [[ -z $OLD ]]; then
	# The source tree's own history (a tarball unpacked inside a clone has none).
	[[ $(git -C "$top" rev-parse --show-toplevel 2>/dev/null) == "$top" ]] &&
		git -C "$top" cat-file -e "$COMPAT_REV^{commit}" 2>/dev/null ||
		lz_skip "no git history with $COMPAT_REV here (set LAZYFS_OLD_BIN)"
	build=$top/_build/compat-${COMPAT_REV:0:12}
	if [[ ! -x $build/lazyfs ]]; then
		rm -rf "$build"
		mkdir -p "$build/src"
		git -C "$top" archive "$COMPAT_REV" | tar -x -C "$build/src"
		if ! (cd "$build/src" && autoreconf -fi && mkdir obj && cd obj && ../configure -q &&
			make -j"$(nproc)") >"$build/build.log" 2>&1; then
			lz_fail "cannot build lazyfs $COMPAT_REV: $(tail -5 "$build/build.log")"
		fi
		cp "$build/src/obj/lazyfs" "$build/lazyfs"
	fi
	OLD=$build/lazyfs
fi
[[ -x $OLD ]] || lz_fail "no old lazyfs at $OLD"
NEW=$LZ_TMP/lazyfs-new OLD_COPY=$LZ_TMP/lazyfs-old
cp "$LAZYFS_BIN" "$NEW"
cp "$OLD" "$OLD_COPY"
lz_ok "old lazyfs ($COMPAT_REV) and this build, side by side"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt W=$LZ_TMP/work SRC=$LZ_TMP/src
mkdir -p "$IMG" "$U" "$MP" "$W" "$SRC/d/deeper" "$SRC/many"
for i in $(seq 1 30); do head -c $((i * 6007)) /dev/urandom >"$SRC/d/f$i.bin"; done
head -c $((4 << 20)) /dev/urandom >"$SRC/d/deeper/big.bin"
(cd "$SRC/many" && seq -f "an-entry-with-a-long-name-%05g" 1 1500 | xargs touch)
mksquashfs "$SRC" "$IMG/src.sqfs" -quiet -noappend >/dev/null
(cd "$SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$W/sums"
head -c 100000 /dev/urandom >"$U/under.bin"

LAZYFS_BIN=$OLD_COPY lz_mount "$MP" -o backend="$BACKEND",underlay="$U",images="$IMG"
pid=$LZ_LAST_PID
mount_of() { awk -v mp="$(realpath "$MP")" '$5 == mp { print $1, $3 }' /proc/self/mountinfo; }
before=$(mount_of)
[[ $(readlink "/proc/$pid/exe") == "$OLD_COPY" ]] || lz_fail "the old binary does not serve"

# Held across the upgrades: a file of the image, one of the underlay, a listing.
exec 7<"$MP/src/d/deeper/big.bin" 8<"$MP/under.bin"
head -c 4096 <&7 >"$W/held.part1"
python3 - "$MP/src/many" "$W" <<'PY' &
import os, sys, time
d, w = sys.argv[1:3]
it = os.scandir(d)
names = [next(it).name for _ in range(3)]
open(w + "/dir.started", "w").close()
while not os.path.exists(w + "/dir.go"):
    time.sleep(0.1)
try:
    names += [e.name for e in it]
    ok = sorted(names) == sorted(os.listdir(d))
    open(w + "/dir.out", "w").write("%d %s\n" % (len(names), ok))
except OSError as e:
    open(w + "/dir.out", "w").write("error %s\n" % e)
PY
LISTER=$!
LZ_PIDS+=("$LISTER")
for ((i = 0; i < 100; i++)); do [[ -e $W/dir.started ]] && break; sleep 0.1; done
[[ -e $W/dir.started ]] || lz_fail "the directory lister did not start"

READERS=()
for n in 0 1 2 3; do
	lz_checksum_reader "$W" "$n" "$W/sums" "$MP/src" &
	READERS+=("$!")
	LZ_PIDS+=("$!")
done
lz_wait_readers "$W" 4
lz_ok "the old binary serves (pid $pid); 4 readers checksumming its image"

# Forward, back, forward again.
for bin in "$NEW" "$OLD_COPY" "$NEW"; do
	what=$([[ $bin == "$NEW" ]] && echo "to this build" || echo "back to $COMPAT_REV")
	out=$("$CTL" "$MP" upgrade "$bin" 2>&1) || lz_fail "upgrade $what: $out"
	new=$(sed -n 's/^upgraded: pid \([0-9]*\) .*/\1/p' <<<"$out")
	[[ -n $new && $new != "$pid" ]] || lz_fail "upgrade $what: no new pid in '$out'"
	LZ_PIDS+=("$new")
	timeout 10 tail --pid="$pid" -f /dev/null || lz_fail "upgrade $what: old daemon $pid did not exit"
	[[ $(readlink "/proc/$new/exe") == "$bin" ]] || lz_fail "upgrade $what: $new runs $(readlink "/proc/$new/exe")"
	[[ $(mount_of) == "$before" ]] || lz_fail "upgrade $what: the mount changed: $(mount_of) vs $before"
	# Every reader finishes a run on the new daemon before the next upgrade.
	rm -f "$W"/runs.*
	lz_wait_readers "$W" 4
	pid=$new
	lz_ok "upgraded $what: pid $pid serves the same mount ($before)"
done

touch "$W/stop"
for r in "${READERS[@]}"; do wait "$r" || true; done
errors=$(cat "$W"/err.* 2>/dev/null || true)
[[ -z $errors ]] || lz_fail "readers saw errors: $(head -c 1500 <<<"$errors")"
lz_ok "4 readers across the three upgrades, zero errors"
cat <&7 >"$W/held.part2"
cat "$W/held.part1" "$W/held.part2" | cmp - "$SRC/d/deeper/big.bin" || lz_fail "the held image file read wrong"
cmp <(cat <&8) "$U/under.bin" || lz_fail "the held underlay file read wrong"
exec 7<&- 8<&-
touch "$W/dir.go"
wait "$LISTER" || lz_fail "the directory lister failed"
[[ $(cat "$W/dir.out") == "1500 True" ]] || lz_fail "the listing held across the upgrades: $(cat "$W/dir.out")"
lz_ok "files and a listing opened under the old binary read on after the three upgrades"

lz_umount "$MP" "$pid"
[[ -z $(losetup -j "$IMG/src.sqfs") ]] || lz_fail "a loop device is left: $(losetup -j "$IMG/src.sqfs")"
lz_ok "clean unmount by this build, no loop device left"
lz_done
