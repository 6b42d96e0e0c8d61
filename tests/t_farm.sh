#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# A compiler farm end to end (#17 item 9): images= over a nested images tree
# of 300 small images and a real compiler (DIR/arm/gcc-N.img,
# DIR/x86/clang/clang-N.sqfs, DIR/a/b/c/tool-N.squashfs, DIR/arm/gcc-real.sqfs),
# mounted with allow_other over an underlay sharing some directory names, with
# warm= naming two nested images; a CEFS-style hashed tree (CEFS/ab/HASH_NAME.sqfs)
# on a second mount, reached through a symlink as CE's are.
# Checks: the directories of the images tree are directories of the mount, in
# union with the underlay's, images listed without their suffix; an image
# shadows a same-named directory of the images tree and of the underlay; the
# warm images are pinned with no access to the mount; listing (and ls -R)
# attaches no loop device beyond the warm images' and resolves nothing in a
# directory not listed; nested and CEFS files read right; nobody, in a mount
# namespace of its own with a bind of the mount, compiles and runs hello world
# with the nested image's compiler (its cc1); an image added to a nested
# directory after the mount shows in the listing and reads (after lazyfsctl
# reload at the latest), even after a failed lookup of its name, and so does
# a directory added to the tree.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v gcc >/dev/null || lz_skip "gcc missing"
command -v unshare >/dev/null && command -v setpriv >/dev/null || lz_skip "unshare or setpriv missing"
getent passwd nobody >/dev/null && getent group nogroup >/dev/null || lz_skip "no user nobody or group nogroup"
unshare -m --propagation private true 2>/dev/null || lz_skip "unshare -m does not work here"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
start=$SECONDS
export LC_ALL=C # ls and sort order names alike

chmod 755 "$LZ_TMP" # nobody must reach the mountpoints
IMG=$LZ_TMP/images CEFS=$LZ_TMP/cefs U=$LZ_TMP/under MP=$LZ_TMP/ce MP2=$LZ_TMP/cefs-mnt
S=$LZ_TMP/src W=$LZ_TMP/work VIEW=$LZ_TMP/view LINKS=$LZ_TMP/opt
mkdir -p "$IMG/arm" "$IMG/x86/clang" "$IMG/a/b/c" "$IMG/x86/dup" "$CEFS/ab" "$CEFS/cd" \
	"$U/arm/gcc-5" "$U/x86" "$U/a/b" "$MP" "$MP2" "$S" "$W" "$VIEW" "$LINKS"
chown nobody:nogroup "$W"

# The underlay: directories named as the images tree's, files of their own,
# and a directory an image shadows.
echo "arm readme" >"$U/arm/README"
echo "x86 notes" >"$U/x86/notes"
echo "a/b notes" >"$U/a/b/NOTES"
echo "top" >"$U/top-file"
echo "stale" >"$U/arm/gcc-5/stale"

# mkimg PATH NAME: a tiny image whose who file holds NAME.
mkimg() {
	mkdir -p "$S/$2"
	echo "$2" >"$S/$2/who"
	mksquashfs "$S/$2" "$1" -noappend -quiet -processors 1 >/dev/null
}
export -f mkimg
export S IMG
{
	for ((i = 1; i <= 100; i++)); do
		echo "arm/gcc-$i.img" "x86/clang/clang-$i.sqfs"
		((i == 100)) || echo "a/b/c/tool-$i.squashfs"
	done
	echo x86/dup.sqfs x86/dup/inner.sqfs # an image beside a directory of its name: the image wins
} | xargs -n 1 -P 2 bash -c 'n=${1##*/}; mkimg "$IMG/$1" "${n%.*}"' mkimg
[[ $(find "$IMG" -type f | wc -l) -eq 301 ]] || lz_fail "made $(find "$IMG" -type f | wc -l) images"
bash "$TESTS_SRCDIR/mkgccimage.sh" "$IMG/arm/gcc-real.sqfs"
# The CEFS tree: hash-prefixed names two levels down, one with a program.
mkdir -p "$S/cefs-gcc-15/bin"
echo "gcc-15" >"$S/cefs-gcc-15/who"
printf '#!/bin/sh\necho "gcc-15 ran: $*"\n' >"$S/cefs-gcc-15/bin/gcc-15"
chmod 755 "$S/cefs-gcc-15/bin/gcc-15"
mksquashfs "$S/cefs-gcc-15" "$CEFS/ab/abcdef0123_gcc-15.sqfs" -noappend -quiet >/dev/null
mkimg "$CEFS/cd/cd0011_tool.sqfs" cd0011_tool
lz_ok "an images tree of 300 small images 3 levels deep and a real gcc ($(du -h "$IMG/arm/gcc-real.sqfs" | cut -f1)), a CEFS tree ($((SECONDS - start)) s)"

# The loop devices backed by images under DIR, as their paths below it.
loops_of() {
	losetup -n -l -O BACK-FILE 2>/dev/null | awk -v d="$1/" 'index($0, d) == 1 { print substr($0, length(d) + 1) }' | sort
}
# The images resolved (state ready), by name, one a line.
images_in() {
	"$CTL" --json "$MP" images | python3 -c 'import json,sys
for i in json.load(sys.stdin)["images"]:
    if i["state"] == "ready": print(i["name"])' | sort
}
pins_of() { # NAME: its pin count when ready, else -
	"$CTL" --json "$MP" images | python3 -c 'import json,sys
d = {i["name"]: i for i in json.load(sys.stdin)["images"]}
i = d.get(sys.argv[1]); print(i["pins"] if i and i["state"] == "ready" else "-")' "$1"
}
warm() { "$CTL" --json "$MP" status | python3 -c 'import json,sys; w = json.load(sys.stdin)["warm"]
print(w["listed"], w["pinned"], w["failed"], w["running"])'; }
listing() { ls -- "$1" | tr '\n' ' '; }
lists() { # DIR NAME: whether ls DIR shows NAME (read whole: grep -q would cut the pipe)
	local l
	l=$(ls -- "$1") && grep -qx -- "$2" <<<"$l"
}
seqnames() { # PREFIX FIRST LAST: PREFIX1 .. PREFIXN sorted as ls sorts them
	local i
	for ((i = $2; i <= $3; i++)); do echo "$1$i"; done
}

printf '%s\n' "# the boot list" arm/gcc-3 a/b/c/tool-7 >"$LZ_TMP/warm"
lz_mount "$MP" -o "backend=$BACKEND,underlay=$U,images=$IMG,allow_other,warm=$LZ_TMP/warm"
MP_WORKER=$LZ_LAST_PID
wait_for 20 eval '[[ $(warm) == "2 2 0 False" ]]' || lz_fail "warm never pinned both: $(warm) (listed pinned failed running)"
[[ $(pins_of arm/gcc-3) == 1 && $(pins_of a/b/c/tool-7) == 1 ]] ||
	lz_fail "warm images: arm/gcc-3 $(pins_of arm/gcc-3), a/b/c/tool-7 $(pins_of a/b/c/tool-7) pins; images: $(images_in | tr '\n' ' ')"
[[ $(images_in | tr '\n' ' ') == "a/b/c/tool-7 arm/gcc-3 " ]] ||
	lz_fail "before any access, the resolved images are [$(images_in | tr '\n' ' ')]"
lz_ok "warm=: arm/gcc-3 and a/b/c/tool-7 pinned with no access to the mount, nothing else resolved"

# Listings: the union, images without their suffix, subdirectories.
[[ $(listing "$MP") == "a arm top-file x86 " ]] || lz_fail "root listing: [$(listing "$MP")]"
want=$( (echo README; seqnames gcc- 1 100; echo gcc-real) | sort | tr '\n' ' ')
[[ $(listing "$MP/arm") == "$want" ]] || lz_fail "arm listing: [$(listing "$MP/arm")]"
# Listing the root and arm/ resolves nothing below x86/ or a/ (but the warm tool-7).
others=$(images_in | grep -v -e '^arm/' -e '^a/b/c/tool-7$' || true)
[[ -z $others ]] || lz_fail "listing the root and arm/ resolved [$(tr '\n' ' ' <<<"$others")]"
[[ $(listing "$MP/x86") == "clang dup notes " ]] || lz_fail "x86 listing: [$(listing "$MP/x86")]"
want=$(seqnames clang- 1 100 | sort | tr '\n' ' ')
[[ $(listing "$MP/x86/clang") == "$want" ]] || lz_fail "x86/clang listing: [$(listing "$MP/x86/clang" | head -c 300)]"
[[ $(listing "$MP/a") == "b " ]] || lz_fail "a listing: [$(listing "$MP/a")]"
[[ $(listing "$MP/a/b") == "NOTES c " ]] || lz_fail "a/b listing: [$(listing "$MP/a/b")]"
want=$(seqnames tool- 1 99 | sort | tr '\n' ' ')
[[ $(listing "$MP/a/b/c") == "$want" ]] || lz_fail "a/b/c listing: [$(listing "$MP/a/b/c" | head -c 300)]"
[[ -d $MP/arm/gcc-42 && -d $MP/a/b/c && -d $MP/x86/clang ]] || lz_fail "images and directories are not directories"
[[ $(stat -c %i "$MP/a/b/c") != $(stat -c %i "$MP/a/b") ]] || lz_fail "a/b and a/b/c share an inode"
lz_ok "listings: the root, arm/, x86/, x86/clang/, a/, a/b/, a/b/c/: images without suffix, subdirectories, the underlay's files"

ls -R "$MP" >/dev/null
find "$MP" -maxdepth 4 -type d >/dev/null
# A pin mounts its image (kernel backend): the warm images' loop devices, no other.
want="a/b/c/tool-7.squashfs arm/gcc-3.img "
[[ $BACKEND == squashfuse ]] && want=""
[[ $(loops_of "$IMG" | tr '\n' ' ') == "$want" ]] ||
	lz_fail "after ls -R, the loop devices back [$(loops_of "$IMG" | tr '\n' ' ')], not just the warm images"
lz_ok "ls -R and find over all 302 images attach no loop device but the warm images'"

# Shadowing: an image over a directory of the images tree and over an underlay directory.
[[ $(cat "$MP/x86/dup/who") == dup && ! -e $MP/x86/dup/inner ]] || lz_fail "x86/dup is not the image"
[[ $(cat "$MP/arm/gcc-5/who") == gcc-5 && ! -e $MP/arm/gcc-5/stale ]] || lz_fail "arm/gcc-5 is not the image"
lz_ok "an image wins over a same-named directory of the images tree and of the underlay"

# Reads from nested images and the underlay beside them.
for p in arm/gcc-1 arm/gcc-100 x86/clang/clang-37 a/b/c/tool-7 a/b/c/tool-99; do
	[[ $(cat "$MP/$p/who") == "${p##*/}" ]] || lz_fail "$p/who reads [$(cat "$MP/$p/who" 2>&1)]"
done
[[ $(cat "$MP/arm/README") == "arm readme" && $(cat "$MP/a/b/NOTES") == "a/b notes" ]] ||
	lz_fail "the underlay's files beside the images"
lz_ok "files in nested images read right, the underlay's files beside them too"

# CEFS: hashed names two levels down, on a mount of their own, through a symlink.
lz_mount "$MP2" -o "backend=$BACKEND,images=$CEFS,allow_other,cache=$LZ_TMP/cache2"
[[ $(listing "$MP2") == "ab cd " && $(listing "$MP2/ab") == "abcdef0123_gcc-15 " ]] ||
	lz_fail "CEFS listings: [$(listing "$MP2")] [$(listing "$MP2/ab")]"
[[ $(cat "$MP2/ab/abcdef0123_gcc-15/who") == gcc-15 && $(cat "$MP2/cd/cd0011_tool/who") == cd0011_tool ]] ||
	lz_fail "CEFS images read wrong"
ln -s "$MP2/ab/abcdef0123_gcc-15" "$LINKS/gcc-15"
[[ $(cat "$LINKS/gcc-15/who") == gcc-15 ]] || lz_fail "through the symlink: $(cat "$LINKS/gcc-15/who" 2>&1)"
# Through sh: setpriv itself still holds root's capabilities when it runs its command.
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- sh -c '"$1" -v' sh "$LINKS/gcc-15/bin/gcc-15" 2>&1) || true
[[ $out == "gcc-15 ran: -v" ]] || lz_fail "nobody ran gcc-15 through the symlink: $out"
lz_ok "CEFS: $MP2/ab/abcdef0123_gcc-15 reads, and runs as nobody through the symlink $LINKS/gcc-15"

# A compile as nobody in a mount namespace of its own, through a bind of the
# mount there, with the compiler of a nested image.
cat >"$W/hello.c" <<'C'
#include <stdio.h>
int main(void) { printf("hello from the farm\n"); return 0; }
C
cat >"$W/build.sh" <<'SH'
set -eu
cd "$1"
gcc=$2/arm/gcc-real/bin/gcc
cc1=$("$gcc" -print-prog-name=cc1)
case $cc1 in "$2"/arm/gcc-real/*) ;; *) echo "the driver would run $cc1"; exit 3 ;; esac
"$gcc" -O2 -c hello.c -o lazy.o
"$gcc" -O2 hello.c -o hello
./hello
SH
chmod 644 "$W/hello.c" "$W/build.sh"
out=$(unshare -m --propagation private -- sh -c 'mount --bind "$1" "$2" &&
	exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- sh "$3/build.sh" "$3" "$2"' \
	sh "$MP" "$VIEW" "$W" 2>&1) || lz_fail "the compile in the namespace failed: $out"
[[ $out == "hello from the farm" ]] || lz_fail "hello printed [$out]"
[[ $(stat -c %U "$W/hello") == nobody ]] || lz_fail "hello was not built by nobody"
! mountpoint -q "$VIEW" || lz_fail "the namespace's bind mount shows outside it"
(cd "$W" && gcc -O2 -c hello.c -o native.o) && cmp "$W/native.o" "$W/lazy.o" ||
	lz_fail "the object built from the mount differs from the native compiler's"
lz_ok "nobody, in its own mount namespace through a bind of the mount, compiled with arm/gcc-real (its cc1) and ran hello; the object equals native"

# An image added to a nested directory after the mount, after a failed lookup of its name.
[[ ! -e $MP/arm/new-tool ]] || lz_fail "arm/new-tool exists before its image"
mkimg "$LZ_TMP/new-tool.sqfs" new-tool
mv "$LZ_TMP/new-tool.sqfs" "$IMG/arm/new-tool.sqfs"
before=no
lists "$MP/arm" new-tool && [[ $(cat "$MP/arm/new-tool/who" 2>/dev/null) == new-tool ]] && before=yes
out=$("$CTL" "$MP" reload 2>&1) || lz_fail "lazyfsctl reload: $out"
lists "$MP/arm" new-tool || lz_fail "arm/new-tool not listed after reload"
[[ $(cat "$MP/arm/new-tool/who" 2>&1) == new-tool ]] || lz_fail "arm/new-tool reads [$(cat "$MP/arm/new-tool/who" 2>&1)] after reload"
[[ $(listing "$MP/arm" | wc -w) -eq 103 ]] || lz_fail "arm lists $(listing "$MP/arm" | wc -w) entries after the add"
lz_ok "arm/new-tool added after the mount: listed and read (already before the reload: $before; reload: $out)"
# A directory of the tree made after the mount (a new architecture), listed only since.
mkdir -p "$IMG/riscv/v1"
mkimg "$IMG/riscv/v1/rv-gcc.sqfs" rv-gcc
[[ $(listing "$MP") == "a arm riscv top-file x86 " ]] || lz_fail "root listing after riscv/ was made: [$(listing "$MP")]"
[[ $(listing "$MP/riscv/v1") == "rv-gcc " && $(cat "$MP/riscv/v1/rv-gcc/who") == rv-gcc ]] ||
	lz_fail "riscv/v1/rv-gcc: [$(listing "$MP/riscv/v1")] $(cat "$MP/riscv/v1/rv-gcc/who" 2>&1)"
lz_ok "a directory added to the tree after the mount shows, with its image"

lz_umount "$MP2"
lz_umount "$MP" "$MP_WORKER"
wait_for 5 eval '[[ -z $(loops_of "$IMG") && -z $(loops_of "$CEFS") ]]' || lz_fail "loop devices left: $(loops_of "$IMG") $(loops_of "$CEFS")"
# In a sanitizer build: nothing reported by either daemon, at exit included (leaks).
logs=("$LZ_TMP"/lazyfs.*.log)
((${#logs[@]} == 2)) && [[ -f ${logs[0]} ]] || lz_fail "the daemons' logs: ${logs[*]}"
for log in "${logs[@]}"; do
	! grep -q Sanitizer "$log" || lz_fail "sanitizer report in $log: $(grep -A8 Sanitizer "$log" | head -30)"
done
lz_ok "unmounted; no loop device left, no sanitizer report ($((SECONDS - start)) s in all)"
lz_done
