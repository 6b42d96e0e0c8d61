#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Compare two directory trees entry by entry, metadata and content.

usage: treecmp.py [--no-bytes] [--quiet] [--ignore FIELDS] A B

Prints one line per difference, "path: field: A=... B=...", then a summary.
--quiet drops the difference lines but keeps the summary.  --ignore takes a
comma-separated list of fields (mode, uid, gid, size, mtime, nlink, rdev,
target, xattr, links); "dir:size" ignores a field on directories only, for
filesystems that legitimately report their own directory sizes.
Exit status: 0 identical, 1 differences found, 2 usage error.
"""

import argparse
import errno
import os
import stat
import sys

CHUNK = 1 << 20
MAX_LINES = 50
IGNORED_XATTRS = {b"security.selinux"}

KINDS = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev",
}


def show(path):
    s = os.fsdecode(path) or "."
    return s if s.isprintable() else ascii(s)


class Cmp:
    def __init__(self, a, b, args):
        self.roots = (a, b)
        self.bytes = not args.no_bytes
        self.quiet = args.quiet
        self.ignore = set(args.ignore.split(",")) if args.ignore else set()
        self.entries = 0
        self.diffs = 0
        # (st_dev, st_ino) -> paths, per tree, for the hard-link check.
        self.inodes = ({}, {})
        self.ino_of = ({}, {})

    def diff(self, rel, field, va, vb):
        self.diffs += 1
        if not self.quiet and self.diffs <= MAX_LINES:
            print(f"{show(rel)}: {field}: A={va} B={vb}")

    def check(self, rel, kind, field, va, vb, fmt=str):
        if field in self.ignore or f"{kind}:{field}" in self.ignore:
            return
        if va != vb:
            self.diff(rel, field, fmt(va), fmt(vb))

    def paths(self, rel):
        return [os.path.join(r, rel) if rel else r for r in self.roots]

    def entry(self, rel):
        pa, pb = self.paths(rel)
        sts = []
        for p in (pa, pb):
            try:
                sts.append(os.lstat(p))
            except OSError as e:
                sts.append(e)
        self.entries += 1
        sa, sb = sts
        if isinstance(sa, OSError) or isinstance(sb, OSError):
            self.diff(rel, "lstat", err(sa), err(sb))
            return
        ka = KINDS.get(stat.S_IFMT(sa.st_mode), "unknown")
        kb = KINDS.get(stat.S_IFMT(sb.st_mode), "unknown")
        if ka != kb:
            self.diff(rel, "type", ka, kb)
            return
        for i, st in enumerate((sa, sb)):
            key = (st.st_dev, st.st_ino)
            self.inodes[i].setdefault(key, []).append(rel)
            self.ino_of[i][rel] = key
        self.check(rel, ka, "mode", sa.st_mode, sb.st_mode, oct)
        for f in ("uid", "gid", "size", "nlink"):
            self.check(rel, ka, f, getattr(sa, "st_" + f), getattr(sb, "st_" + f))
        self.check(rel, ka, "mtime", sa.st_mtime_ns, sb.st_mtime_ns)
        if ka in ("chardev", "blockdev"):
            self.check(rel, ka, "rdev", devstr(sa.st_rdev), devstr(sb.st_rdev))
        if ka == "symlink":
            self.check(rel, ka, "target", *map(readlink, (pa, pb)), fmt=repr)
        self.xattrs(rel, ka, pa, pb)
        if ka == "file" and self.bytes:
            self.content(rel, pa, pb)
        if ka == "dir":
            self.directory(rel, pa, pb)

    def xattrs(self, rel, kind, pa, pb):
        if "xattr" in self.ignore or f"{kind}:xattr" in self.ignore:
            return
        xa, xb = xattrs(pa), xattrs(pb)
        if isinstance(xa, str) or isinstance(xb, str):
            if xa != xb:
                self.diff(rel, "xattr", xa, xb)
            return
        for name in sorted(xa.keys() | xb.keys()):
            va, vb = xa.get(name), xb.get(name)
            if va != vb:
                self.diff(rel, "xattr " + os.fsdecode(name),
                          "<absent>" if va is None else repr(va),
                          "<absent>" if vb is None else repr(vb))

    def content(self, rel, pa, pb):
        try:
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                off = 0
                while True:
                    ca, cb = fa.read(CHUNK), fb.read(CHUNK)
                    if ca != cb:
                        n = next((i for i, (x, y) in enumerate(zip(ca, cb))
                                  if x != y), min(len(ca), len(cb)))
                        self.diff(rel, f"byte at {off + n}",
                                  *(f"{c[n]:#04x}" if n < len(c) else "EOF"
                                    for c in (ca, cb)))
                        return
                    if not ca:
                        return
                    off += len(ca)
        except OSError as e:
            self.diff(rel, "read", "", err(e))

    def directory(self, rel, pa, pb):
        names = []
        for p in (pa, pb):
            try:
                names.append(set(os.listdir(p)))
            except OSError as e:
                names.append(e)
        na, nb = names
        if isinstance(na, OSError) or isinstance(nb, OSError):
            self.diff(rel, "listdir", err(na), err(nb))
            return
        for n in sorted(na - nb):
            self.diff(os.path.join(rel, n), "exists", "yes", "no")
        for n in sorted(nb - na):
            self.diff(os.path.join(rel, n), "exists", "no", "yes")
        for n in sorted(na & nb):
            self.entry(os.path.join(rel, n))

    def links(self):
        """Hard-link groups must partition the common paths identically."""
        if "links" in self.ignore:
            return
        seen = set()
        for rel in sorted(self.ino_of[0]):
            ga = sorted(self.inodes[0][self.ino_of[0][rel]])
            gb = sorted(self.inodes[1][self.ino_of[1][rel]])
            if ga != gb and (tuple(ga), tuple(gb)) not in seen:
                seen.add((tuple(ga), tuple(gb)))
                self.diff(rel, "links", [show(p) for p in ga],
                          [show(p) for p in gb])


def err(x):
    if isinstance(x, OSError):
        return errno.errorcode.get(x.errno, str(x.errno))
    return "ok"


def devstr(dev):
    return f"{os.major(dev)}:{os.minor(dev)}"


def readlink(p):
    try:
        return os.readlink(p)
    except OSError as e:
        return err(e)


def xattrs(p):
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        return "listxattr " + err(e)
    out = {}
    for n in names:
        bn = os.fsencode(n)
        if bn in IGNORED_XATTRS:
            continue
        try:
            out[bn] = os.getxattr(p, n, follow_symlinks=False)
        except OSError as e:
            out[bn] = "getxattr " + err(e)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-bytes", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--ignore", default="")
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    a, b = os.fsencode(args.a), os.fsencode(args.b)
    for p in (a, b):
        if not os.path.isdir(p):
            ap.error(f"{os.fsdecode(p)}: not a directory")
    c = Cmp(a, b, args)
    c.entry(b"")
    c.links()
    if not c.quiet and c.diffs > MAX_LINES:
        print(f"... {c.diffs - MAX_LINES} more differences not shown")
    print(f"treecmp: {c.entries} entries compared, {c.diffs} differences")
    return 1 if c.diffs else 0


if __name__ == "__main__":
    sys.exit(main())
