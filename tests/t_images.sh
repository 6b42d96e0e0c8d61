#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Images resolved lazily through the kernel backend: the tree under lazyfs
# equals a kernel loop mount of the same image; mounting opens no image; the
# root is the union with the underlay; browsing (ls -l, find, stat) mounts
# nothing, the first open mounts (kernel backend) without changing any
# attribute; an image without an export table is read by the daemon; nothing
# is left behind.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"

SRC=$LZ_TMP/src IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt REF=$LZ_TMP/ref
mkdir -p "$IMG" "$U/tree" "$U/plain" "$MP" "$REF"
echo underlay > "$U/tree/only-in-underlay"
echo plain > "$U/plain/file"
bash "$TESTS_SRCDIR/mktree.sh" "$SRC" --big --devices >/dev/null
mksquashfs "$SRC" "$IMG/tree.sqfs" -noappend -quiet -comp gzip -xattrs >/dev/null
mksquashfs "$U/plain" "$IMG/second.img" -noappend -quiet >/dev/null
mksquashfs "$U/plain" "$IMG/flat.sqfs" -noappend -quiet -no-exports >/dev/null
FILE=$(cd "$SRC" && find . -type f -size +8k | sort | head -1)
lz_ok "built the images"

LZ_MOUNTS+=("$REF")
mount -t squashfs -o loop,ro "$IMG/tree.sqfs" "$REF"

for mode in passthrough cached; do
	lz_mount "$MP" -d -o backend="$BACKEND",underlay="$U",images="$IMG",open_mode="$mode"
	log=$LZ_LAST_LOG
	[[ $(lz_image_loops "$IMG") -eq 1 ]] || lz_fail "mounting lazyfs attached a loop device"
	grep -q "resolved" "$log" && lz_fail "mounting resolved an image"
	lz_ok "$mode: mounting opened no image"

	fusetrace_start "$MP"
	listing=$(ls "$MP" | tr '\n' ' ')
	ls -l "$MP" >/dev/null
	lookups=$(fusetrace_count FUSE_LOOKUP)
	fusetrace_stop
	[[ $listing == "flat plain second tree " ]] || lz_fail "root listing is [$listing]"
	# The listing carries the image roots' attributes: ls -l looks nothing up.
	((lookups == 0)) || lz_fail "$mode: ls -l of the root sent $lookups LOOKUPs"
	# Each listed image is held by one descriptor, however much of it is read.
	image_fds() { find "/proc/$LZ_LAST_PID/fd" -lname "$IMG/tree.sqfs" | wc -l; }
	(($(image_fds) == 1)) || lz_fail "$mode: tree.sqfs held by $(image_fds) descriptors after ls -l"
	ls "$MP/tree" >/dev/null
	(($(image_fds) == 1)) || lz_fail "$mode: tree.sqfs held by $(image_fds) descriptors once walked into"
	# A listing reads the roots of the images it lists (local images directory), no more.
	[[ $(lz_image_loops "$IMG") -eq 1 ]] || lz_fail "listing the root attached a loop device"
	lz_ok "$mode: the root lists the union [$listing] with the images' attributes, mounting nothing, one descriptor per image"

	ls -l "$MP" >/dev/null
	find "$MP" >/dev/null
	# Listings before and after a file was looked up (find looks up none): the
	# inode number of an entry is the one stat reports.
	python3 -c 'import os, sys
bad = [e.path for r, _, _ in os.walk(sys.argv[1]) for e in os.scandir(r)
       if e.inode() != os.lstat(e.path).st_ino]
sys.exit(bad and print("d_ino differs:", bad[:3]) or bad != [])' "$MP/tree" ||
		lz_fail "$mode: a listed inode number differs from stat"
	ls -lRa "$MP/tree" >/dev/null
	getfattr -R -d "$MP/tree" >/dev/null 2>&1 || true
	before=$(stat -c '%i %s %Y %a %h %u %g %b' "$MP/tree/$FILE")
	[[ $(lz_image_loops "$IMG") -eq 1 ]] || lz_fail "$mode: a browse attached a loop device"
	grep -q "resolved" "$log" || lz_fail "$mode: the browse resolved nothing"
	lz_ok "$mode: ls -l, find, ls -lR, getfattr over the images attach no loop device"
	fusetrace_start "$MP"
	cmp "$SRC/$FILE" "$MP/tree/$FILE" || lz_fail "$mode: $FILE reads wrong"
	reads=$(fusetrace_count FUSE_READ)
	fusetrace_stop
	if [[ $BACKEND == kernel && $mode == passthrough ]]; then
		((reads == 0)) || lz_fail "$mode: the first open of a file served $reads READs (no passthrough)"
	fi
	[[ $(stat -c '%i %s %Y %a %h %u %g %b' "$MP/tree/$FILE") == "$before" ]] ||
		lz_fail "$mode: $FILE changed at its first open: $before"
	want=1
	[[ $BACKEND == kernel ]] && want=2
	[[ $(lz_image_loops "$IMG") -eq $want ]] || lz_fail "$mode: the first open of a $BACKEND image attached $(($(lz_image_loops "$IMG") - 1)) loop devices"
	[[ $(cat "$MP/flat/file") == plain ]] || lz_fail "$mode: an image without an export table does not read"
	[[ $(lz_image_loops "$IMG") -eq $want ]] || lz_fail "$mode: an image without an export table was mounted"
	lz_ok "$mode: the first open ($BACKEND) attaches $((want - 1)) loop device, same inode and attributes; without an export table the daemon reads"

	out=$(python3 "$TESTS_SRCDIR/treecmp.py" "$REF" "$MP/tree") || {
		echo "$out" >&2
		lz_fail "$mode: lazyfs differs from a kernel loop mount of the image"
	}
	lz_ok "$mode: equal to a kernel loop mount: ${out##*$'\n'}"
	[[ ! -e $MP/tree/only-in-underlay ]] || lz_fail "the underlay shows through an image"
	lz_ok "$mode: the image shadows the underlay entry of its name"

	[[ $(grep -c "tree.sqfs: resolved" "$log") -eq 1 ]] || lz_fail "tree resolved more than once"
	[[ $(lz_visible_image_mounts "$IMG") -eq 1 ]] || lz_fail "an image mount is visible in mountinfo"
	ref_root=$(stat -c %i "$U/tree") mnt_root=$(stat -c %i "$MP/tree")
	[[ $ref_root != "$mnt_root" ]] || lz_fail "entry root reports the underlay's inode"
	[[ $(stat -c %i "$MP/tree") != $(stat -c %i "$MP/second") ]] || lz_fail "two image roots share an inode"
	lz_ok "$mode: resolved once, detached (nothing in mountinfo), entry root inodes unique"
	lz_umount "$MP"
done

umount "$REF"
[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "loop devices left behind: $(losetup -a)"
lz_ok "no loop device left after unmount"
lz_done
