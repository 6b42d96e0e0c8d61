#!/bin/bash
# Images resolved lazily through the kernel backend: the tree under lazyfs
# equals a kernel loop mount of the same image; mounting opens no image; the
# root is the union with the underlay; nothing is left behind.
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
lz_ok "built the images"

LZ_MOUNTS+=("$REF")
mount -t squashfs -o loop,ro "$IMG/tree.sqfs" "$REF"

for mode in passthrough cached; do
	lz_mount "$MP" -d -o backend="$BACKEND",underlay="$U",images="$IMG",open_mode="$mode"
	log=$LZ_LAST_LOG
	[[ $(lz_image_loops "$IMG") -eq 1 ]] || lz_fail "mounting lazyfs attached a loop device"
	grep -q "resolved" "$log" && lz_fail "mounting resolved an image"
	lz_ok "$mode: mounting opened no image"

	listing=$(ls "$MP" | tr '\n' ' ')
	[[ $listing == "plain second tree " ]] || lz_fail "root listing is [$listing]"
	grep -q "resolved" "$log" && lz_fail "listing the root resolved an image"
	lz_ok "$mode: the root lists the union [$listing] without resolving"

	out=$(python3 "$TESTS_SRCDIR/treecmp.py" "$REF" "$MP/tree") || {
		echo "$out" >&2
		lz_fail "$mode: lazyfs differs from a kernel loop mount of the image"
	}
	lz_ok "$mode: equal to a kernel loop mount: ${out##*$'\n'}"
	[[ ! -e $MP/tree/only-in-underlay ]] || lz_fail "the underlay shows through an image"
	lz_ok "$mode: the image shadows the underlay entry of its name"

	[[ $(grep -c "resolved" "$log") -eq 1 ]] || lz_fail "tree resolved more than once"
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
