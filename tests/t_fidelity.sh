#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The mount shows the underlay exactly: every name, type, mode, owner, size,
# mtime, link target, link count, xattr and byte, in both open modes; inode
# numbers are lazyfs's own and hard links share one.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init

SRC=$LZ_TMP/src MP=$LZ_TMP/mnt
mkdir -p "$MP"
bash "$TESTS_SRCDIR/mktree.sh" "$SRC" --big --devices >/dev/null
lz_ok "generated the source tree ($(find "$SRC" | wc -l) entries)"

for mode in passthrough cached; do
	lz_mount "$MP" -o underlay="$SRC",open_mode="$mode"
	out=$(python3 "$TESTS_SRCDIR/treecmp.py" "$SRC" "$MP") || {
		echo "$out" >&2
		lz_fail "open_mode=$mode: the mount differs from the underlay"
	}
	lz_ok "open_mode=$mode: ${out##*$'\n'}"

	[[ $(stat -c %i "$MP") == 1 ]] || lz_fail "root inode is not 1"
	src_ino=$(stat -c %i "$SRC/files/f_1")
	mnt_ino=$(stat -c %i "$MP/files/f_1")
	[[ $src_ino != "$mnt_ino" ]] || lz_fail "lazyfs reports the backing inode number"
	lz_ok "inode numbers are lazyfs's own (backing $src_ino, lazyfs $mnt_ino)"

	# Inode numbers are unique within the mount and stable across lookups.
	dups=$(find "$MP" -xdev ! -type d -links 1 -printf '%i\n' | sort | uniq -d | wc -l)
	[[ $dups -eq 0 ]] || lz_fail "$dups inode numbers are shared by unrelated files"
	first=$(find "$MP/dir10k" -printf '%i %p\n' | sort | md5sum)
	echo 2 > /proc/sys/vm/drop_caches # forget dentries and inodes: ids come back by lookup
	again=$(find "$MP/dir10k" -printf '%i %p\n' | sort | md5sum)
	[[ $first == "$again" ]] || lz_fail "inode numbers changed after the kernel forgot them"
	lz_ok "inode numbers are unique and stable after the kernel drops its inodes"

	# readdir's d_ino agrees with stat's st_ino.
	python3 - "$MP/files" <<'PY' || lz_fail "readdir d_ino differs from st_ino"
import os, sys
for e in os.scandir(sys.argv[1]):
    if e.inode() != os.lstat(e.path).st_ino:
        sys.exit(1)
PY
	lz_ok "readdir d_ino equals st_ino"
	lz_umount "$MP"
done
lz_done
