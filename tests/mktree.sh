#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Build a fidelity test tree: every kind of entry and attribute lazyfs must
# reproduce exactly.  Compare copies of it with tests/treecmp.py.
#
# usage: mktree.sh DIR [--big] [--devices]
#   --big      add a sparse file > 2 GiB (offsets past 32-bit range)
#   --devices  add char/block device nodes (needs root)
# Content is deterministic, so two runs give byte-identical files.
set -euo pipefail

usage() {
	echo "usage: $0 DIR [--big] [--devices]" >&2
	exit 2
}

dir='' big=0 devices=0
for arg in "$@"; do
	case $arg in
	--big) big=1 ;;
	--devices) devices=1 ;;
	-*) usage ;;
	*) [[ -z $dir ]] || usage; dir=$arg ;;
	esac
done
[[ -n $dir ]] || usage
if [[ -e $dir ]]; then
	[[ -d $dir && -z $(ls -A "$dir") ]] || { echo "$0: $dir exists and is not an empty directory" >&2; exit 1; }
fi
root=0
[[ $EUID -eq 0 ]] && root=1
if (( devices && !root )); then
	echo "$0: --devices needs root" >&2
	exit 1
fi
mkdir -p "$dir"
cd "$dir"

# Python does the bulk work: a deterministic PRNG is far faster than any
# shell generator, and 10000 creat()s or utime()s must not fork 10000 times.
py() { python3 -c "$1" "${@:2}"; }

# Sizes straddle page (4096), FUSE max_read (128 KiB) and 1 MiB boundaries.
mkdir files
py '
import random, sys
for size in map(int, sys.argv[1:]):
    with open("files/f_%d" % size, "wb") as f:
        f.write(random.Random(size).randbytes(size))
' 0 1 511 512 4095 4096 4097 65543 131071 131072 131073 1048579 8400000

# Small sparse file: holes at start, middle and end, without needing --big.
mkdir sparse
putat() { printf '%s' "$3" | dd of="$1" bs=1M seek="$2" oflag=seek_bytes conv=notrunc status=none; }
truncate -s 3M sparse/holes
putat sparse/holes 1048576 middle
putat sparse/holes 2097000 tail
if (( big )); then
	truncate -s 2300M sparse/big
	putat sparse/big 0 head
	putat sparse/big $((1024 * 1024 * 1024 + 5)) past1G
	putat sparse/big $((2300 * 1024 * 1024 - 7)) theend
fi

mkdir -p links/sub
ln -s /etc/hostname links/abs
ln -s ../files/f_4096 links/rel_file
ln -s ../../files links/sub/up_dir
ln -s does/not/exist links/dangling
ln -s loop links/loop
ln -s "$(printf 'x%.0s' {1..1000})" links/long_target

# Links span directories so an inode cache keyed by parent would be caught.
mkdir -p hard/sub
echo pair > hard/p1
ln hard/p1 hard/p2
echo triple > hard/t1
ln hard/t1 hard/t2
ln hard/t1 hard/sub/t3

mkdir special
mkfifo special/fifo
if (( devices )); then
	mknod special/null c 1 3
	mknod special/loop200 b 7 200
fi

mkdir xattr
echo x > xattr/several
setfattr -n user.one -v first xattr/several
setfattr -n user.two -v second xattr/several
setfattr -n user.empty xattr/several
setfattr -n user.bin -v 0x00ff0a0d00 xattr/several
setfattr -n user.big -v "$(printf 'v%.0s' {1..3000})" xattr/several
echo x > xattr/empty_only
setfattr -n user.empty xattr/empty_only
echo x > xattr/binary
setfattr -n user.bin -v 0x000102fffe xattr/binary
setfattr -n user.dir -v onadir xattr
mkdir xattr/dir
setfattr -n user.a -v 1 xattr/dir

mkdir names
: > "names/$(printf 'n%.0s' {1..255})"
: > names/café
: > names/日本語
mkdir names/ディレクトリ
: > "names/with  spaces "
: > names/-dash
: > names/.hidden

# chown before chmod: chown clears setuid/setgid.
mkdir modes modes/sticky
for m in 0600 0755 0644 04755 02755 0000; do
	echo "$m" > "modes/m$m"
done
if (( root )); then
	mkdir owner
	echo owned > owner/file
	mkdir owner/dir
	ln -s file owner/link
	chown -h 1234:5678 owner/file owner/dir owner/link
	chown 1234:5678 modes/m04755 modes/m02755
fi
for m in 0600 0755 0644 04755 02755 0000; do
	chmod "$m" "modes/m$m"
done
chmod 01777 modes/sticky

mkdir dir10k
py '
for i in range(10000):
    open("dir10k/entry_%05d" % i, "w").close()
'

d=deep
for i in $(seq -w 1 20); do
	d+=/d$i
done
mkdir -p "$d"
echo bottom > "$d/leaf"

mkdir emptydir
mkdir times
touch times/pre1970 times/post2038 times/ns0 times/ns999999999

# Must run last: any later creation would bump a parent's mtime.
py '
import os, zlib
special = {
    "./times/pre1970": -86400 * 400 * 10**9 + 123456789,
    "./times/post2038": 4102444800 * 10**9 + 987654321,
    "./times/ns0": 1600000000 * 10**9,
    "./times/ns999999999": 1600000000 * 10**9 + 999999999,
}
# Derived from the path, so optional entries do not shift everyone else.
def stamp(path):
    h = zlib.crc32(path.encode("utf-8", "surrogateescape"))
    ns = special.get(path, (1500000000 + h % 10**8) * 10**9 + h * 2654435761 % 10**9)
    os.utime(path, ns=(ns, ns), follow_symlinks=False)
for top, dirs, files in os.walk(".", topdown=False):
    for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
        stamp(os.path.join(top, name))
    stamp(top)
'
