#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Images under stress and failure: fail open to the underlay with one log line,
# EIO (not a crash) for a corrupt block, 64 threads first-touching 32 images
# resolve each exactly once, idle expiry frees loop devices and re-resolves,
# a replaced image shows after SIGHUP while an open file keeps the old bytes,
# hostile names reach nothing; entries that are no regular file, or symlinks
# the rule does not follow, are never opened for reading.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt S=$LZ_TMP/s
mkdir -p "$IMG" "$U" "$MP" "$S"

# A good image to damage in different ways.
mkdir -p "$S/good/data"
# Compressible, so damaged blocks fail to decompress (squashfs stores random data raw).
head -c $((3 << 20)) /dev/urandom | base64 -w 100 > "$S/good/data/blob"
echo v1 > "$S/good/version"
mksquashfs "$S/good" "$LZ_TMP/good.sqfs" -noappend -quiet >/dev/null
size=$(stat -c %s "$LZ_TMP/good.sqfs")
for name in missing random zero magic truncated; do
	mkdir -p "$U/$name"
	echo "underlay of $name" > "$U/$name/who"
done
head -c 100000 /dev/urandom > "$IMG/random.sqfs"
: > "$IMG/zero.sqfs"
{ printf 'nope'; tail -c +5 "$LZ_TMP/good.sqfs"; } > "$IMG/magic.sqfs"
# Keeps the superblock and tables (at the end) but loses data blocks: mounts, then EIO.
python3 - "$LZ_TMP/good.sqfs" "$IMG/truncated.sqfs" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
for off in range(4096, 4096 + 1024 * 1024, 512):
    data[off] ^= 0xFF  # corrupt compressed data blocks, not the superblock
open(sys.argv[2], "wb").write(data)
PY
for i in $(seq 0 31); do
	mkdir -p "$S/img$i"
	echo "image $i" > "$S/img$i/id"
	mksquashfs "$S/img$i" "$IMG/img$i.sqfs" -noappend -quiet >/dev/null
done
cp "$LZ_TMP/good.sqfs" "$IMG/live.sqfs"
lz_ok "images built (good, broken five ways, 32 small ones)"

lz_mount "$MP" -d -o backend="$BACKEND",underlay="$U",images="$IMG",idle_timeout=1
log=$LZ_LAST_LOG

for name in missing random zero magic; do
	got=$(cat "$MP/$name/who") || lz_fail "$name: underlay not served"
	[[ $got == "underlay of $name" ]] || lz_fail "$name: got [$got]"
done
for name in random zero magic; do
	[[ $(grep -c "image $name.sqfs: .*serving the underlay" "$log") -eq 1 ]] ||
		lz_fail "$name: expected one log line naming the image and reason"
done
cat "$MP/random/who" "$MP/zero/who" >/dev/null
[[ $(grep -c "image random.sqfs" "$log") -eq 1 ]] || lz_fail "the failure was logged again"
lz_ok "missing, random, empty and wrong-magic images fail open to the underlay, logged once"

# Corrupt data blocks: the image mounts, the bad read fails with EIO, nothing crashes.
if cat "$MP/truncated/data/blob" >/dev/null 2>"$LZ_TMP/err"; then
	lz_fail "a corrupt block read without error"
fi
grep -q "Input/output error" "$LZ_TMP/err" || lz_fail "corrupt block: $(cat "$LZ_TMP/err")"
[[ $(cat "$MP/truncated/version") == v1 ]] || lz_fail "the intact part of a damaged image"
kill -0 "$LZ_LAST_PID" || lz_fail "the daemon died"
lz_ok "a corrupt block gives EIO for that read; the rest of the image and daemon live on"

# 64 threads first-touch 32 images at once.
python3 - "$MP" <<'PY' || lz_fail "concurrent first touches failed"
import sys, threading
mp, errors = sys.argv[1], []
def touch(i):
    try:
        with open(f"{mp}/img{i % 32}/id") as f:
            if f.read() != f"image {i % 32}\n":
                errors.append(f"img{i % 32}: wrong content")
    except OSError as e:
        errors.append(str(e))
threads = [threading.Thread(target=touch, args=(i,)) for i in range(64)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("\n".join(errors))
PY
for i in $(seq 0 31); do
	[[ $(grep -c "image img$i.sqfs: resolved" "$log") -eq 1 ]] || lz_fail "img$i resolved $(grep -c "image img$i.sqfs: resolved" "$log") times"
done
lz_ok "64 threads first-touching 32 images: each resolved exactly once"

# Idle expiry: loop devices go away, the next access resolves again.
for ((i = 0; i < 50; i++)); do
	grep -q "image img7: closed" "$log" && [[ $(lz_image_loops "$IMG") -eq 0 ]] && break
	sleep 0.1
done
grep -q "image img7: closed" "$log" || lz_fail "img7 was not closed after its idle time"
[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "idle images kept their loop devices"
[[ $(cat "$MP/img7/id") == "image 7" ]] || lz_fail "re-resolve after expiry"
[[ $(grep -c "image img7.sqfs: resolved" "$log") -eq 2 ]] || lz_fail "img7 was not resolved again"
lz_ok "idle images expire (loop devices freed) and resolve again on the next access"

# Hot update: a file held open keeps the old bytes; after SIGHUP new opens see the new image.
exec {held}<"$MP/live/version"
echo v2 > "$S/good/version"
mksquashfs "$S/good" "$IMG/.live.new" -noappend -quiet >/dev/null
mv "$IMG/.live.new" "$IMG/live.sqfs"
kill -HUP "$LZ_LAST_PID"
for ((i = 0; i < 50; i++)); do
	[[ $(cat "$MP/live/version") == v2 ]] && break
	sleep 0.1
done
[[ $(cat "$MP/live/version") == v2 ]] || lz_fail "the replaced image is not served after SIGHUP"
[[ $(cat <&$held) == v1 ]] || lz_fail "the open file lost its old bytes"
exec {held}<&-
lz_ok "replaced image served after SIGHUP; a file held open still reads the old image"

# Hostile names reach nothing outside the images directory or the underlay.
long=$(printf 'a%.0s' $(seq 255))
echo secret > "$LZ_TMP/outside.sqfs"
for name in "$long" ".sqfs" "..sqfs" "-rf" "img1.sqfs" $'new\nline' "outside"; do
	if [[ -e "$MP/$name" ]]; then lz_fail "hostile name [$name] resolved to something"; fi
done
ln -s /etc/passwd "$IMG/escape.sqfs"
mkdir -p "$U/escape" && echo safe > "$U/escape/who"
[[ $(cat "$MP/escape/who") == safe ]] || lz_fail "a symlinked non-image was not failed open"
kill -0 "$LZ_LAST_PID" || lz_fail "the daemon died on hostile names"
lz_ok "hostile names resolve to nothing; a symlink to a non-image fails open"

lz_umount "$MP"
[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "loop devices left: $(losetup -a)"
[[ $(lz_visible_image_mounts "$IMG") -eq 0 ]] || lz_fail "a squashfs mount is left"
lz_ok "no loop device or mount left behind"

# Entries are looked at before they are opened for reading (images/imagefile.h).
# In root's images directory: a fifo behind a root-owned symlink is never opened
# (a writer waiting on it stays blocked), a device neither, and a symlink owned
# by nobody is not followed. In a directory nobody owns, nobody's symlinks lead
# only to what nobody may read: not to a root-only image.
chmod 0711 "$LZ_TMP"
R=$LZ_TMP/rootdir N=$LZ_TMP/nobodydir
mkdir -p "$R" "$N" "$S/pub"
chown nobody "$N"
echo public >"$S/pub/f"
mksquashfs "$S/pub" "$LZ_TMP/public.sqfs" -noappend -quiet >/dev/null
cp "$LZ_TMP/public.sqfs" "$LZ_TMP/secret.sqfs"
chmod 0600 "$LZ_TMP/secret.sqfs"
mkfifo "$LZ_TMP/fifo"
ln -s "$LZ_TMP/fifo" "$R/fifo.sqfs"
ln -s /dev/zero "$R/zero.sqfs"
ln -s "$LZ_TMP/public.sqfs" "$R/planted.sqfs"
chown -h nobody "$R/planted.sqfs"
ln -s "$LZ_TMP/public.sqfs" "$R/linked.sqfs"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
as_nobody ln -s "$LZ_TMP/secret.sqfs" "$N/secret.sqfs"
as_nobody ln -s "$LZ_TMP/public.sqfs" "$N/public.sqfs"
timeout 20 sh -c "echo x >'$LZ_TMP/fifo'" &
writer=$!
LZ_PIDS+=("$writer")
lz_mount "$MP" -d -o backend="$BACKEND",underlay="$U",images="$R"
for e in fifo zero planted; do
	[[ ! -e $MP/$e/f ]] || lz_fail "the entry $e was served as an image"
done
[[ $(cat "$MP/linked/f") == public ]] || lz_fail "a root-owned symlink in root's directory"
sleep 0.5
kill -0 "$writer" 2>/dev/null || lz_fail "the fifo behind fifo.sqfs was opened for reading"
kill "$writer" 2>/dev/null || true
grep -q "fifo.sqfs: not a regular file" "$LZ_LAST_LOG" || lz_fail "no log line for the fifo"
grep -q "zero.sqfs: not a regular file" "$LZ_LAST_LOG" || lz_fail "no log line for the device"
grep -q "planted.sqfs: a symlink owned by uid $(id -u nobody), neither root" "$LZ_LAST_LOG" ||
	lz_fail "no log line for the symlink nobody planted"
lz_umount "$MP"
# nobody's directory is untrusted (images/trust.h): backend=kernel would refuse every image in it.
lz_mount "$MP" -d -o backend="${BACKEND/kernel/auto}",underlay="$U",images="$N"
[[ $(cat "$MP/public/f") == public ]] || lz_fail "nobody's symlink to an image nobody may read"
[[ ! -e $MP/secret/f ]] || lz_fail "nobody's symlink made a root-only image readable"
grep -q "secret.sqfs: a symlink by uid $(id -u nobody) to a file" "$LZ_LAST_LOG" ||
	lz_fail "no log line for the symlink to a root-only image"
lz_umount "$MP"
lz_ok "image entries checked before they are opened: a fifo and a device never opened, a symlink planted by nobody not followed, nobody's symlink to a root-only image refused"

# The kernel mounts only trusted images (images/trust.h): root's, not writable
# by group or others, in a directory alike; or the trusted_owner's.
if [[ $BACKEND != squashfuse ]]; then
	CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
	T=$LZ_TMP/trustdir
	mkdir -p "$T"
	cp "$LZ_TMP/public.sqfs" "$T/mine.sqfs"
	cp "$LZ_TMP/public.sqfs" "$T/theirs.sqfs"
	cp "$LZ_TMP/public.sqfs" "$T/shared.sqfs"
	chown nobody "$T/theirs.sqfs"
	chmod 0664 "$T/shared.sqfs"
	backend_of() { "$CTL" "$MP" images | awk -v n="$1" '$1 == n { print $3 }'; }
	lz_mount "$MP" -d -o backend=auto,underlay="$U",images="$T"
	for e in mine theirs shared; do
		[[ $(cat "$MP/$e/f") == public ]] || lz_fail "auto: the image $e"
	done
	[[ $(backend_of mine) == kernel ]] || lz_fail "root's image is not kernel-mounted: $("$CTL" "$MP" images)"
	[[ $(backend_of theirs) == squashfuse && $(backend_of shared) == squashfuse ]] ||
		lz_fail "an untrusted image reached the kernel: $("$CTL" "$MP" images)"
	"$CTL" "$MP" images | grep -q "^theirs .*untrusted: the file owned by uid $(id -u nobody)" ||
		lz_fail "images does not say why theirs is untrusted: $("$CTL" "$MP" images)"
	"$CTL" "$MP" images | grep -q "^shared .*untrusted: the file writable by its group" ||
		lz_fail "images does not say why shared is untrusted: $("$CTL" "$MP" images)"
	[[ $(lz_image_loops "$T") -eq 1 ]] || lz_fail "$(lz_image_loops "$T") loop devices, not 1 (mine's)"
	lz_umount "$MP"
	lz_mount "$MP" -d -o backend=kernel,underlay="$U",images="$T"
	[[ $(cat "$MP/mine/f") == public ]] || lz_fail "backend=kernel: root's image"
	[[ ! -e $MP/theirs/f ]] || lz_fail "backend=kernel served nobody's image"
	grep -q "theirs.sqfs: untrusted: the file owned by uid $(id -u nobody); backend=kernel mounts only trusted images" "$LZ_LAST_LOG" ||
		lz_fail "no log line for the untrusted image refused"
	lz_umount "$MP"
	lz_mount "$MP" -d -o backend=kernel,underlay="$U",images="$T",trusted_owner=nobody
	[[ $(cat "$MP/theirs/f") == public ]] || lz_fail "trusted_owner=nobody: nobody's image"
	[[ $(backend_of theirs) == kernel ]] || lz_fail "trusted_owner: $("$CTL" "$MP" images)"
	lz_umount "$MP"
	lz_ok "the kernel mounts root's images only (or trusted_owner's): others are read with squashfuse (auto) or refused (backend=kernel), and lazyfsctl images says why"
fi
lz_done
