#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Warm opens cost what the design says: reading 500 files a second time sends
# only OPEN and RELEASE (one each per file) in passthrough mode, and nothing at
# all in cached mode: no GETATTR, FLUSH, READLINK, LOOKUP or READ. A warm
# `ls -l` of an image without extended attributes asks for them a few times,
# not once a file: lazyfs answers "not supported", true to the image, and ls
# stops asking the device; an image with them serves them.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init

SRC=$LZ_TMP/src MP=$LZ_TMP/mnt
mkdir -p "$SRC/a/b" "$MP"
python3 - "$SRC/a/b" <<'PY'
import os, sys
for i in range(500):
    with open(os.path.join(sys.argv[1], "f%03d" % i), "wb") as f:
        f.write(os.urandom(100 + i * 37))
PY
files=()
for i in $(seq -f %03g 0 499); do files+=("$MP/a/b/f$i"); done

# read_all: opens, reads and closes every file (cat fstat()s each one too).
read_all() {
	cat "${files[@]}" | sha256sum
}
want=$(cd "$SRC/a/b" && cat f* | sha256sum)

for mode in passthrough cached; do
	lz_mount "$MP" -o underlay="$SRC",open_mode="$mode"
	[[ $(read_all) == "$want" ]] || lz_fail "$mode: first pass read wrong bytes"
	if [[ $mode == passthrough ]]; then
		expected=$'FUSE_OPEN 500\nFUSE_RELEASE 500'
	else
		expected=''
	fi
	# Another process dropping the machine's caches (drop_caches, memory
	# pressure) legitimately causes READs: a pass must be clean once in three.
	for attempt in 1 2 3; do
		sleep 0.3
		fusetrace_start "$MP"
		[[ $(read_all) == "$want" ]] || lz_fail "$mode: second pass read wrong bytes"
		sleep 0.5 # RELEASE is queued in the background after close
		counts=$(fusetrace_counts)
		fusetrace_stop
		[[ $counts == "$expected" ]] && break
		echo "attempt $attempt: [$(echo $counts)]" >&2
	done
	[[ $counts == "$expected" ]] ||
		lz_fail "$mode: second pass sent [$(echo $counts)], expected [$(echo $expected)]"
	lz_ok "$mode: second pass over 500 files sent [$(echo $counts)]"
	lz_umount "$MP"
done

command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
IMG=$LZ_TMP/img
mkdir -p "$IMG" "$LZ_TMP/with"
mksquashfs "$SRC/a" "$IMG/plain.sqfs" -no-xattrs -quiet -noappend >/dev/null
echo x >"$LZ_TMP/with/f"
setfattr -n user.kept -v yes "$LZ_TMP/with/f"
mksquashfs "$LZ_TMP/with" "$IMG/with.sqfs" -xattrs -quiet -noappend >/dev/null
for backend in kernel squashfuse; do
	lz_mount "$MP" -o images="$IMG",backend="$backend"
	ls -l "$MP/plain/b" >/dev/null
	sleep 0.3
	fusetrace_start "$MP"
	[[ $(ls -l "$MP/plain/b" | wc -l) == 501 ]] || lz_fail "$backend: ls -l of the image listed wrong"
	counts=$(fusetrace_counts)
	fusetrace_stop
	asked=$(awk '$1 == "FUSE_GETXATTR" || $1 == "FUSE_LISTXATTR" { n += $2 } END { print n + 0 }' <<<"$counts")
	((asked < 10)) || lz_fail "$backend: a warm ls -l of 500 files asked for extended attributes $asked times"
	python3 -c 'import errno, os, sys
try:
    os.getxattr(sys.argv[1], "security.selinux")
    sys.exit("an attribute was found")
except OSError as e:
    sys.exit(0 if e.errno == errno.EOPNOTSUPP else "getxattr: " + e.strerror)' "$MP/plain/b/f000" ||
		lz_fail "$backend: an image without attributes does not say not supported"
	[[ $(getfattr --absolute-names --only-values -n user.kept "$MP/with/f" 2>&1) == yes ]] ||
		lz_fail "$backend: an image with attributes lost them"
	lz_ok "$backend: a warm ls -l of 500 files in an image without attributes asked for them $asked times; an image with them serves them"
	lz_umount "$MP"
done
lz_done
