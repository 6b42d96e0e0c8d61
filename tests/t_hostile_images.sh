#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Hostile images: a valid image cut short at several points, bit-flipped (every
# superblock field and random offsets), empty, with a wrong magic, with huge
# declared sizes and counts, and with directory loops in its metadata. Each is
# walked fully (stat, readdir, readlink, listxattr, read every file) under a
# timeout: lazyfs must not crash or hang, a failing access gives an error
# (ENOENT through fail-open, EIO, ELOOP for a loop), an image that cannot be
# opened is logged once and its underlay entry is served, and the rest of the
# mount (a good image, the underlay) keeps working. Nothing is left behind.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt S=$LZ_TMP/src
mkdir -p "$IMG" "$U/plain" "$MP" "$S/sub/deep" "$S/loop"
echo "plain underlay file" > "$U/plain/file"

# The image to damage: blocks and a tail fragment, a hard link (extended inode),
# symlinks, nested and empty directories, an xattr when the tools allow.
head -c 400000 /dev/urandom | base64 -w 76 > "$S/big" # compressible: 3+ data blocks
echo "small file" > "$S/file"
echo "deep file" > "$S/sub/deep/f"
: > "$S/empty"
ln "$S/file" "$S/hard"
ln -s file "$S/rel-link"
ln -s /etc/hostname "$S/abs-link"
if command -v setfattr >/dev/null; then setfattr -n user.lazyfs -v hostile "$S/file" 2>/dev/null || true; fi
mksquashfs "$S" "$LZ_TMP/base.sqfs" -noappend -quiet -xattrs >/dev/null
# The same with its metadata stored uncompressed, so fields can be edited in place.
mksquashfs "$S" "$LZ_TMP/raw.sqfs" -noappend -quiet -xattrs -noI -noId -noX >/dev/null
cp "$LZ_TMP/base.sqfs" "$IMG/good.sqfs"

python3 - "$LZ_TMP/base.sqfs" "$LZ_TMP/raw.sqfs" "$IMG" <<'PY' || lz_fail "crafting the hostile images"
import os, random, struct, sys

base = open(sys.argv[1], "rb").read()
raw = open(sys.argv[2], "rb").read()
out = sys.argv[3]
SB = {  # squashfs 4.0 superblock: field -> (offset, format)
    "magic": (0, "<I"), "inodes": (4, "<I"), "mkfs_time": (8, "<I"), "block_size": (12, "<I"),
    "fragments": (16, "<I"), "compression": (20, "<H"), "block_log": (22, "<H"),
    "flags": (24, "<H"), "no_ids": (26, "<H"), "s_major": (28, "<H"), "s_minor": (30, "<H"),
    "root_inode": (32, "<Q"), "bytes_used": (40, "<Q"), "id_table_start": (48, "<Q"),
    "xattr_id_table_start": (56, "<Q"), "inode_table_start": (64, "<Q"),
    "directory_table_start": (72, "<Q"), "fragment_table_start": (80, "<Q"),
    "lookup_table_start": (88, "<Q"),
}

def get(d, field):
    return struct.unpack_from(SB[field][1], d, SB[field][0])[0]

def put(d, field, value):
    struct.pack_into(SB[field][1], d, SB[field][0], value)

def write(name, data):
    with open(os.path.join(out, name + ".sqfs"), "wb") as f:
        f.write(data)

class Raw:
    """Navigates an image whose inode and directory tables are one uncompressed block each."""

    def __init__(self, data):
        self.d = bytearray(data)
        self.it, self.dt = get(self.d, "inode_table_start"), get(self.d, "directory_table_start")
        for start in (self.it, self.dt):
            assert struct.unpack_from("<H", self.d, start)[0] & 0x8000, "compressed metadata"

    def inode(self, ref):  # (type, number, position)
        assert ref >> 16 == 0, "more than one metadata block"
        pos = self.it + 2 + (ref & 0xFFFF)
        typ, _, _, _, _, number = struct.unpack_from("<HHHHII", self.d, pos)
        return typ, number, pos

    def listing(self, ref):  # [(name, entry position, header position, inode ref)]
        typ, _, pos = self.inode(ref)
        assert typ == 1, "a basic directory inode"
        start, _, size, offset, _ = struct.unpack_from("<IIHHI", self.d, pos + 16)
        assert start == 0
        p = self.dt + 2 + offset
        end, entries = p + size - 3, []
        while p < end:
            count, hstart, _ = struct.unpack_from("<III", self.d, p)
            hpos, p = p, p + 12
            for _ in range(count + 1):
                eoff, _, _, esize = struct.unpack_from("<HhHH", self.d, p)
                entries.append((bytes(self.d[p + 8:p + 9 + esize]), p, hpos, hstart << 16 | eoff))
                p += 9 + esize
        return entries

    def find(self, path):
        ref, entry = get(self.d, "root_inode"), None
        for name in path.split(b"/"):
            entry = next(e for e in self.listing(ref) if e[0] == name)
            ref = entry[3]
        return entry

    def retarget(self, path, ref):
        """Points directory entry PATH at inode REF (a loop when REF is an ancestor)."""
        _, epos, hpos, _ = self.find(path)
        hnum = struct.unpack_from("<I", self.d, hpos + 8)[0]
        struct.pack_into("<Hh", self.d, epos, ref & 0xFFFF, self.inode(ref)[1] - hnum)
        return self.d

    def share_listing(self, path, ref):
        """Gives directory PATH the listing of directory REF (PATH shows up inside itself)."""
        pos, src = self.inode(self.find(path)[3])[2], self.inode(ref)[2]
        start, _, size, offset, _ = struct.unpack_from("<IIHHI", self.d, src + 16)
        struct.pack_into("<I", self.d, pos + 16, start)
        struct.pack_into("<HH", self.d, pos + 24, size, offset)
        return self.d

    def inode_field(self, path, typ, off, fmt, value):
        """Sets a field at OFF (after the 16-byte common header) of PATH's inode of type TYP."""
        t, _, pos = self.inode(self.find(path)[3])
        assert t == typ, f"{path}: inode type {t}, not {typ}"
        struct.pack_into(fmt, self.d, pos + 16 + off, value)
        return self.d

# Cut short: inside the superblock, the inode table, the directory table, a data block.
sb = lambda field: get(raw, field)
for name, at in [("trunc-super", 50), ("trunc-data", 96 + 3000),
                 ("trunc-inodes", sb("inode_table_start") + 40),
                 ("trunc-dirs", sb("directory_table_start") + 30),
                 ("trunc-tail", sb("bytes_used") - 4)]:
    write(name, raw[:at])
write("trunc-gz-inodes", base[:get(base, "inode_table_start") + 20])
write("zero", b"")
write("magic", b"hsqs"[::-1] + raw[4:])
write("short-magic", raw[:4])

# One bit of every superblock field, low and high.
for field, (off, fmt) in SB.items():
    size = struct.calcsize(fmt)
    for bit in (0, 8 * size - 2):
        d = bytearray(raw)
        d[off + bit // 8] ^= 1 << (bit % 8)
        write(f"flip-{field}-{bit}", d)

# Random flips anywhere in the image, compressed and uncompressed metadata.
rng = random.Random(int(os.environ.get("LZ_SEED", "8")))
for i in range(48):
    src = raw if i % 2 else base
    d = bytearray(src)
    for _ in range(1 if i < 32 else 64):
        d[rng.randrange(len(src))] ^= 1 << rng.randrange(8)
    write(f"flip-random-{i}", d)

# Huge declared sizes and counts.
Q, I = 2**64 - 1, 2**32 - 1
for field, value in [("bytes_used", Q), ("bytes_used", 2**63), ("bytes_used", len(raw) + 4096),
                     ("inodes", I), ("no_ids", 0xFFFF), ("fragments", I),
                     ("block_size", 2**31), ("root_inode", 2**48 - 1),
                     ("id_table_start", 2**63), ("inode_table_start", Q),
                     ("directory_table_start", 2**62), ("fragment_table_start", Q),
                     ("lookup_table_start", Q), ("xattr_id_table_start", Q - 1)]:
    d = bytearray(raw)
    put(d, field, value)
    write(f"huge-{field}-{value:x}", d)
d = bytearray(raw)
put(d, "block_size", 1 << 20)
put(d, "block_log", 20)
write("huge-block-1M", d)
# Inodes: a basic file of 4 GiB, an extended one (the hard link) of 2^62 and
# 2^64-1 bytes, a 64 KiB directory listing, a 4 GiB symlink target.
write("huge-file", Raw(raw).inode_field(b"big", 2, 12, "<I", I))
write("huge-lfile", Raw(raw).inode_field(b"hard", 9, 8, "<Q", 2**62))
write("huge-lfile-max", Raw(raw).inode_field(b"hard", 9, 8, "<Q", Q))
write("huge-dir", Raw(raw).inode_field(b"sub", 1, 8, "<H", 0xFFFF))
write("huge-symlink", Raw(raw).inode_field(b"rel-link", 3, 4, "<I", I))
im = Raw(raw)
hpos = im.find(b"file")[2]
struct.pack_into("<I", im.d, hpos, I)  # the root listing's header claims 2^32 entries
write("huge-dircount", im.d)
im = Raw(raw)
struct.pack_into("<H", im.d, im.find(b"file")[1] + 6, 0xFFFF)  # a 64 KiB name
write("huge-name", im.d)

# Directory loops: an entry pointing back at the root, at its grandparent, and a
# directory whose listing is the root's (so it contains itself).
im = Raw(raw)
write("loop-root", im.retarget(b"loop", get(im.d, "root_inode")))
im = Raw(raw)
write("loop-parent", im.retarget(b"sub/deep", im.find(b"sub")[3]))
im = Raw(raw)
write("loop-self", im.share_listing(b"loop", get(im.d, "root_inode")))
PY
mapfile -t names < <(cd "$IMG" && ls | sed -n 's/\.sqfs$//p' | grep -vx good)
for name in "${names[@]}"; do
	mkdir -p "$U/$name"
	echo "underlay of $name" > "$U/$name/who"
done
lz_ok "crafted ${#names[@]} hostile images (seed ${LZ_SEED:-8})"

# Must fail to open whatever the backend: the superblock or tables are gone or absurd.
must_fail_open=" zero magic short-magic trunc-super trunc-data trunc-inodes trunc-dirs trunc-gz-inodes
	huge-bytes_used-ffffffffffffffff huge-bytes_used-8000000000000000 "

# walk.py DIR: walks DIR fully; prints a summary; exits 2 on an error no damaged
# image should give (ENOTCONN means the daemon died).
cat > "$LZ_TMP/walk.py" <<'PY'
import errno, os, stat, sys
ALLOWED = {errno.EIO, errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EINVAL, errno.EOVERFLOW,
           errno.ENAMETOOLONG, errno.E2BIG, errno.ENODATA, errno.ERANGE, errno.EUCLEAN,
           errno.ENOTSUP, errno.ESTALE}
errs, bad, count = {}, [], [0, 0]

def fail(path, e):
    name = errno.errorcode.get(e.errno, str(e.errno))
    errs[name] = errs.get(name, 0) + 1
    if e.errno not in ALLOWED:
        bad.append(f"{path!r}: {e}")

def visit(path):
    count[0] += 1
    try:
        st = os.lstat(path)
    except OSError as e:
        return fail(path, e)
    for call in (os.stat, os.listxattr):
        try:
            call(path)
        except OSError as e:
            fail(path, e)
    try:
        if stat.S_ISLNK(st.st_mode):
            os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass
            count[1] += 1
        elif stat.S_ISDIR(st.st_mode):
            for name in os.listdir(path):
                visit(os.path.join(path, name))
    except OSError as e:
        fail(path, e)

visit(sys.argv[1])
summary = ", ".join(f"{k} x{v}" for k, v in sorted(errs.items())) or "no errors"
print(f"{os.path.basename(sys.argv[1])}: {count[0]} entries, {count[1]} files read, {summary}")
if bad:
    print("unexpected: " + "; ".join(bad[:5]))
    sys.exit(2)
PY

# Everything but the hostile image still works, and the daemon lives.
rest_works() {
	kill -0 "$pid" 2>/dev/null || lz_fail "$1: the daemon died"
	[[ $(timeout 10 cat "$MP/plain/file") == "plain underlay file" ]] || lz_fail "$1: the underlay broke"
	timeout 10 cmp -s "$MP/good/big" "$S/big" || lz_fail "$1: a good image broke"
}

for backend in kernel squashfuse; do
	lz_mount "$MP" -d -o "backend=$backend,underlay=$U,images=$IMG"
	pid=$LZ_LAST_PID log=$LZ_LAST_LOG
	failed_open=0 served=0
	for name in "${names[@]}"; do
		rc=0
		out=$(timeout -k 10 60 python3 "$LZ_TMP/walk.py" "$MP/$name" 2>&1) || rc=$?
		echo "$backend: $out"
		((rc != 124)) || lz_fail "$backend: walking $name hung"
		((rc == 0)) || lz_fail "$backend: walking $name: $out"
		rest_works "$backend: $name"
		if [[ $(timeout 10 cat "$MP/$name/who" 2>/dev/null) == "underlay of $name" ]]; then
			failed_open=$((failed_open + 1))
			[[ $(grep -c "image $name.sqfs: .*serving the underlay" "$log") -eq 1 ]] ||
				lz_fail "$backend: $name fell back to the underlay without one log line"
		else
			[[ $must_fail_open != *" $name "* ]] || lz_fail "$backend: $name was served as an image"
			served=$((served + 1))
			# Closed at once, so a hundred images never hold a hundred loop devices.
			"$CTL" "$MP" evict "$name" >/dev/null 2>&1 || true
		fi
	done
	lz_ok "$backend: ${#names[@]} hostile images walked, no hang or crash; $failed_open failed open to the underlay (each logged once), $served opened and gave errors where damaged"

	# The loops: an error (ELOOP or ENOENT), never an endless tree.
	for name in loop-root loop-parent loop-self; do
		depth=$({ timeout -k 10 30 find "$MP/$name" 2>/dev/null || true; } | awk -F/ '{ print NF }' | sort -n | tail -n1)
		base_depth=$(awk -F/ '{ print NF }' <<<"$MP/$name")
		((depth - base_depth <= 4)) || lz_fail "$backend: $name walks $((depth - base_depth)) levels deep"
	done
	for path in loop-root/loop loop-parent/sub/deep loop-self/loop/loop; do
		if timeout 10 ls "$MP/$path" >/dev/null 2>"$LZ_TMP/err"; then
			lz_fail "$backend: $path listed although it is its own ancestor"
		fi
		echo "$backend: ls $path: $(cat "$LZ_TMP/err")"
	done
	lz_ok "$backend: directory loops in the metadata end in an error at the first repeat"

	timeout -k 10 120 find "$MP" >/dev/null 2>&1 || true
	rest_works "$backend: a walk of the whole mount"
	lz_umount "$MP"
	[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "$backend: loop devices left: $(losetup -a)"
	[[ $(lz_visible_image_mounts "$IMG") -eq 0 ]] || lz_fail "$backend: a squashfs mount is left"
	lz_ok "$backend: the whole mount walked; after unmount no loop device or mount is left"
done
lz_done
