#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Nested images trees (images.h): an image at any depth of images= is served
# at its path; directories of the tree are directories of the mount, one with
# a same-named underlay directory; an image wins over a same-named directory;
# nothing deeper than the limit, and no symlinked directory, is served;
# listing mounts nothing; an image added later is found; nobody reads through
# allow_other; a working directory in a made-up directory survives a live
# upgrade and a crash of the worker.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt S=$LZ_TMP/src W=$LZ_TMP/work
mkdir -p "$IMG" "$U/arm" "$U/onlyu" "$MP" "$W"
echo readme >"$U/arm/README"
echo file >"$U/onlyu/f"
# make NAME PATH: an image whose file "id" says NAME.
make() {
	mkdir -p "$S/$1" "$(dirname "$2")"
	echo "$1" >"$S/$1/id"
	mksquashfs "$S/$1" "$2" -noappend -quiet >/dev/null
}
deep8=a/b/c/d/e/f/g/h # the deepest directory the tree may have
make top "$IMG/top.sqfs"
make gcc "$IMG/arm/gcc-1.img"
make sub "$IMG/arm/sub/x.squashfs"
make deep "$IMG/$deep8/deep.sqfs"
make tooDeep "$IMG/$deep8/i/too-deep.sqfs"
make hashed "$IMG/ab/abcdef0123_gcc-15.sqfs"
make same "$IMG/same.sqfs"
mkdir -p "$IMG/same/inner"
ln -s ../a "$IMG/arm/link"
lz_ok "built a tree of 7 images up to depth $(tr -cd / <<<"$deep8/" | wc -c)"

lz_mount "$MP" -o "backend=$BACKEND,underlay=$U,images=$IMG,allow_other"
loops=$(lz_image_loops "$IMG")
[[ $(ls "$MP" | tr '\n' ' ') == "a ab arm onlyu same top " ]] || lz_fail "root lists [$(ls "$MP" | tr '\n' ' ')]"
[[ $(ls "$MP/arm" | tr '\n' ' ') == "README gcc-1 sub " ]] || lz_fail "arm/ lists [$(ls "$MP/arm" | tr '\n' ' ')]"
[[ $(ls "$MP/$deep8" | tr '\n' ' ') == "deep " ]] || lz_fail "$deep8 lists [$(ls "$MP/$deep8" | tr '\n' ' ')]"
[[ $(ls "$MP/ab") == abcdef0123_gcc-15 ]] || lz_fail "ab/ lists [$(ls "$MP/ab")]"
# A listing reads the roots of the images it lists (their attributes), and mounts none.
[[ $(lz_image_loops "$IMG") == "$loops" ]] || lz_fail "listing attached a loop device"
lz_ok "the tree's directories list their images and subdirectories, arm/ with the underlay's README; no image is mounted"

for want in top:top gcc:arm/gcc-1 sub:arm/sub/x deep:$deep8/deep hashed:ab/abcdef0123_gcc-15 same:same; do
	[[ $(cat "$MP/${want#*:}/id") == "${want%%:*}" ]] || lz_fail "${want#*:}/id does not read ${want%%:*}"
done
[[ $(cat "$MP/arm/README") == readme && $(cat "$MP/onlyu/f") == file ]] || lz_fail "the underlay does not read"
[[ ! -e $MP/same/inner ]] || lz_fail "a directory of the tree won over the same-named image"
[[ ! -e $MP/$deep8/i ]] || lz_fail "a directory past the depth limit is served"
[[ ! -e $MP/arm/link ]] || lz_fail "a symlinked directory of the tree is served"
images=$("$CTL" "$MP" images | awk 'NR > 1 && $2 == "ready" { print $1 }' | sort | tr '\n' ' ')
[[ $images == "$deep8/deep ab/abcdef0123_gcc-15 arm/gcc-1 arm/sub/x same top " ]] || lz_fail "ready: [$images]"
lz_ok "every image reads at its path, the image wins over a directory, none past depth 8, no symlinked directory"

setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$MP/ab/abcdef0123_gcc-15/id" >/dev/null ||
	lz_fail "nobody cannot read a nested image"
lz_ok "nobody reads a nested image (allow_other)"

make later "$IMG/arm/later.sqfs"
[[ $(cat "$MP/arm/later/id") == later ]] || lz_fail "an image added to arm/ is not found"
ls "$MP/arm" | grep -qx later || lz_fail "an image added to arm/ is not listed"
lz_ok "an image added after the mount is found and listed"

# Working directories in a made-up directory (ab/: the underlay has none) and
# a union one (arm/), held across a live upgrade and a crash of the worker.
(
	cd "$MP/ab" || exit 1
	cd "$MP/arm" || exit 1
	cd "$MP/ab" || exit 1
	while [[ ! -e $W/go.$BASHPID ]]; do sleep 0.05; done
	ls . >"$W/cwd.out" 2>&1
) &
held=$!
LZ_PIDS+=("$held")
ino=$(stat -c %i "$MP/ab")
out=$("$CTL" "$MP" upgrade 2>&1) || lz_fail "upgrade: $out"
new=$(sed -n 's/^upgraded: pid \([0-9]*\) .*/\1/p' <<<"$out")
LZ_PIDS+=("$new")
timeout 10 tail --pid="$LZ_LAST_PID" -f /dev/null || lz_fail "the old daemon did not exit"
[[ $(stat -c %i "$MP/ab") == "$ino" ]] || lz_fail "ab/ changed node id across the upgrade"
[[ $(ls "$MP/ab") == abcdef0123_gcc-15 ]] || lz_fail "ab/ lists wrong after the upgrade"
kill -KILL "$new"
for ((i = 0; i < 100; i++)); do
	pid=$("$CTL" --timeout 5 "$MP" status 2>/dev/null | awk '/^pid:/ { print $2 }' || true)
	[[ -n $pid && $pid != "$new" ]] && break
	sleep 0.1
done
[[ -n $pid && $pid != "$new" ]] || lz_fail "no worker serves after the crash"
LZ_PIDS+=("$pid")
touch "$W/go.$held"
wait "$held" || true
[[ $(cat "$W/cwd.out") == abcdef0123_gcc-15 ]] || lz_fail "a working directory in ab/ after an upgrade and a crash: $(cat "$W/cwd.out")"
[[ $(stat -c %i "$MP/ab") == "$ino" ]] || lz_fail "ab/ changed node id across the crash"
lz_ok "a made-up directory keeps its node id across a live upgrade and a crash; a working directory in it lists"
lz_done
