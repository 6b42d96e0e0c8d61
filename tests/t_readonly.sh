#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Every kind of write fails with EROFS and leaves the underlay untouched.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init

SRC=$LZ_TMP/src MP=$LZ_TMP/mnt
mkdir -p "$SRC/dir" "$MP"
echo data > "$SRC/file"
ln -s file "$SRC/link"
before=$(cd "$SRC" && find . -printf '%p %m %s %T@\n' | sort | md5sum)
lz_mount "$MP" -o underlay="$SRC"

python3 - "$MP" <<'PY' || lz_fail "a write did not fail with EROFS"
import errno, os, sys
mp = sys.argv[1]
f, d = os.path.join(mp, "file"), os.path.join(mp, "dir")
attempts = {
    "open O_WRONLY": lambda: os.open(f, os.O_WRONLY),
    "open O_RDWR": lambda: os.open(f, os.O_RDWR),
    "open O_TRUNC": lambda: os.open(f, os.O_RDONLY | os.O_TRUNC),
    "create": lambda: os.open(os.path.join(mp, "new"), os.O_CREAT | os.O_WRONLY, 0o644),
    "mkdir": lambda: os.mkdir(os.path.join(mp, "newdir")),
    "rmdir": lambda: os.rmdir(d),
    "unlink": lambda: os.unlink(f),
    "rename": lambda: os.rename(f, os.path.join(mp, "moved")),
    "link": lambda: os.link(f, os.path.join(mp, "hard")),
    "symlink": lambda: os.symlink("file", os.path.join(mp, "sym")),
    "chmod": lambda: os.chmod(f, 0o600),
    "chown": lambda: os.chown(f, 1, 1),
    "utime": lambda: os.utime(f, (0, 0)),
    "truncate": lambda: os.truncate(f, 0),
    "setxattr": lambda: os.setxattr(f, "user.x", b"1"),
    "removexattr": lambda: os.removexattr(f, "user.x"),
    "mknod": lambda: os.mkfifo(os.path.join(mp, "fifo")),
}
bad = 0
for name, attempt in attempts.items():
    try:
        attempt()
        print(f"{name}: succeeded")
        bad += 1
    except OSError as e:
        if e.errno != errno.EROFS:
            print(f"{name}: {errno.errorcode[e.errno]} instead of EROFS")
            bad += 1
sys.exit(1 if bad else 0)
PY
lz_ok "17 kinds of write fail with EROFS"
[[ $(cat "$MP/file") == data ]] || lz_fail "reading after the failed writes"
after=$(cd "$SRC" && find . -printf '%p %m %s %T@\n' | sort | md5sum)
[[ $before == "$after" ]] || lz_fail "the underlay changed"
lz_ok "the underlay is unchanged"
findmnt -n -o OPTIONS -M "$MP" | grep -qw ro || lz_fail "the mount is not flagged ro"
lz_ok "the mount is read-only (MS_RDONLY)"
lz_umount "$MP"
lz_done
