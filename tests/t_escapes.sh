#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Escapes: nothing a client does through the mount and nothing inside an image,
# the underlay, the map or the cache makes the daemon touch a path outside the
# images directory, the underlay, the cache, the map and its images, and the
# few system files it needs. strace records every path-taking system call of
# the daemon while a client walks and reads hostile trees (symlinks to /, to
# ../../.., to /etc/shadow; odd names), the images directory holds symlinks
# out of it, map entries go through symlinks, and lazyfsctl gets hostile
# names; then each call is checked. Symlinks reach the client unchanged and
# resolve in the client's view. Names: 255 bytes work, 256 give ENAMETOOLONG,
# a name with "/" in an image never reaches a listing. The cache refuses an
# objects/ directory (or a subdirectory of it) replaced by a symlink, at start
# and while running.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v strace >/dev/null || lz_skip "strace missing (scripts/bootstrap installs it)"
command -v unshare >/dev/null || lz_skip "unshare missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt E=$LZ_TMP/evil V=$LZ_TMP/view
CACHE=$LZ_TMP/cache MAPF=$LZ_TMP/map REAL=$LZ_TMP/real
mkdir -p "$IMG" "$U/plain" "$MP" "$E" "$V" "$REAL/src" "$LZ_TMP/links"
echo "daemon view" > "$V/secret"
echo "plain" > "$U/plain/file"

# The same hostile tree in an image and in the underlay.
long=$(printf 'n%.0s' $(seq 255))
hostile_tree() {
	local d=$1
	ln -s / "$d/to-root"
	ln -s /etc/shadow "$d/to-shadow"
	ln -s /etc "$d/to-etc"
	ln -s ../../.. "$d/up3"
	ln -s ../../../../../../../../../etc/passwd "$d/up-passwd"
	ln -s .. "$d/dotdot-link"
	ln -s "$V/secret" "$d/to-view"
	ln -s self-loop "$d/self-loop"
	ln -s "$(printf 'a/%.0s' $(seq 2000))x" "$d/long-target"
	mkdir -p "$d/sub" "$d/..."
	ln -s ../../../.. "$d/sub/up4"
	echo "three dots" > "$d/.../f"
	for name in $'new\nline' ' ' $'\xff\xfe' "$long" '%s%n%x' '-rf' '*' '\' '$(id)' '.hidden' ':' 'a b'; do
		printf '%s\n' "$name" > "$d/$name"
	done
}
hostile_tree "$E"
hostile_tree "$U"
mksquashfs "$E" "$IMG/evil.sqfs" -noappend -quiet >/dev/null
# The images directory holds symlinks out of it: a non-image, a directory, a relative escape.
ln -s /etc/passwd "$IMG/passwd.sqfs"
ln -s / "$IMG/rootdir.sqfs"
ln -s ../../../../../../etc/shadow "$IMG/shadow.sqfs"
# Mapped images reached through a symlinked file and a symlinked directory.
echo "mapped image" > "$REAL/src/id"
mksquashfs "$REAL/src" "$REAL/good.sqfs" -noappend -quiet >/dev/null
ln -s ../real/good.sqfs "$LZ_TMP/links/linked.sqfs"
ln -s real "$LZ_TMP/ldir"
cat > "$MAPF" <<EOF
mapped/linked $LZ_TMP/links/linked.sqfs
mapped/viadir $LZ_TMP/ldir/good.sqfs
../escape $REAL/good.sqfs
/absolute $REAL/good.sqfs
mapped/relative real/good.sqfs
EOF

# Images whose directory entries hold "/", "..", "." or a NUL (crafted: mksquashfs cannot).
mkdir -p "$LZ_TMP/names"
for n in aaaa bbb cc dd eeee; do echo "$n" > "$LZ_TMP/names/$n"; done
mksquashfs "$LZ_TMP/names" "$LZ_TMP/names.sqfs" -noappend -quiet -noI -noId -noX >/dev/null
python3 - "$LZ_TMP/names.sqfs" "$IMG" <<'PY' || lz_fail "crafting images with bad names"
import struct, sys
base = open(sys.argv[1], "rb").read()
dirs = struct.unpack_from("<Q", base, 72)[0]  # directory_table_start: stored uncompressed (-noI)
for tag, old, new in [("slash", b"bbb", b"b/b"), ("dotdot", b"cc", b".."), ("dot", b"cc", b".\0"),
                      ("nul", b"dd", b"d\0")]:
    d = bytearray(base)
    at = d.index(old, dirs)
    d[at:at + len(old)] = new
    open(f"{sys.argv[2]}/names-{tag}.sqfs", "wb").write(d)
PY
lz_ok "hostile trees, images, image-directory symlinks and map built"

# Checks an strace -f -y log of the daemon: every path a call took is a single
# name on a directory descriptor (or "" with AT_EMPTY_PATH), a path resolved
# strictly beneath its descriptor (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
# or an absolute path under one of the allowed roots (the first is the cache
# directory, which may be created with its parents); nothing relative to the
# working directory, no "..", no execve.
cat > "$LZ_TMP/tracecheck.py" <<'PY'
import re, sys

trace, cache, allowed = sys.argv[1], sys.argv[2], sys.argv[2:]
PATH_ARGS = {  # syscall -> [(index of the directory fd or None, index of the path)]
    "open": [(None, 0)], "creat": [(None, 0)], "openat": [(0, 1)], "openat2": [(0, 1)],
    "execve": [(None, 0)], "execveat": [(0, 1)], "mkdir": [(None, 0)], "mkdirat": [(0, 1)],
    "rename": [(None, 0), (None, 1)], "renameat": [(0, 1), (2, 3)], "renameat2": [(0, 1), (2, 3)],
    "unlink": [(None, 0)], "unlinkat": [(0, 1)], "rmdir": [(None, 0)], "readlink": [(None, 0)],
    "readlinkat": [(0, 1)], "chdir": [(None, 0)], "chroot": [(None, 0)], "stat": [(None, 0)],
    "lstat": [(None, 0)], "newfstatat": [(0, 1)], "statx": [(0, 1)], "access": [(None, 0)],
    "faccessat": [(0, 1)], "faccessat2": [(0, 1)], "statfs": [(None, 0)], "truncate": [(None, 0)],
    "symlink": [(None, 1)], "symlinkat": [(1, 2)], "link": [(None, 0), (None, 1)],
    "linkat": [(0, 1), (2, 3)], "mknod": [(None, 0)], "mknodat": [(0, 1)],
    "fchmodat": [(0, 1)], "fchownat": [(0, 1)], "utimensat": [(0, 1)], "getxattr": [(None, 0)],
    "lgetxattr": [(None, 0)], "listxattr": [(None, 0)], "llistxattr": [(None, 0)],
    "setxattr": [(None, 0)], "lsetxattr": [(None, 0)], "removexattr": [(None, 0)],
    "umount2": [(None, 0)], "mount": [(None, 1)], "inotify_add_watch": [(None, 1)],
    "open_tree": [(0, 1)], "name_to_handle_at": [(0, 1)],
}

def split_args(s):
    args, cur, depth, quote, i = [], "", 0, False, 0
    while i < len(s):
        c = s[i]
        if quote:
            cur += c
            if c == "\\":
                cur += s[i + 1]
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote, cur = True, cur + c
        elif c in "{[(<":
            depth, cur = depth + 1, cur + c
        elif c in "}])>":
            depth, cur = depth - 1, cur + c
        elif c == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        args.append(cur.strip())
    return args

def unquote(a):
    m = re.match(r'^"(.*)"(\.\.\.)?$', a, re.S)
    return None if m is None else bytes(m.group(1), "latin-1").decode("unicode_escape")

def under(p, root):
    return p == root or p.startswith(root.rstrip("/") + "/")

bad, calls = [], 0
for line in open(trace, encoding="latin-1"):
    m = re.match(r"^(\d+)\s+(\w+)\((.*)$", line.rstrip("\n"))
    if m is None:
        continue
    pid, call, rest = m.groups()
    if call == "fsconfig" and '"source"' in rest:
        src = unquote(split_args(rest.split(" <unfinished")[0].rsplit(")", 1)[0])[3])
        if not re.fullmatch(r"/dev/loop\d+", src or ""):
            bad.append(f"fsconfig source {src!r}: {line.strip()}")
        continue
    if call not in PATH_ARGS:
        continue
    calls += 1
    body = rest.split(" <unfinished ...>")[0]
    args = split_args(body[:body.rfind(")")] if " = " in body else body)
    for fd_i, path_i in PATH_ARGS[call]:
        if path_i >= len(args):
            continue
        p = unquote(args[path_i])
        if p is None:
            continue  # NULL or an address
        comps = p.split("/")
        why = None
        if ".." in comps:
            why = "a '..' component"
        elif p.startswith("/"):
            if call in ("execve", "execveat"):
                why = "a program executed"
            elif call == "openat" and re.fullmatch(r"/proc/\d+/(mountinfo|status|uid_map)", p):
                # the open tracker: whether an opener sees this mount (fscore/opener.c);
                # LISTXATTR: the requesting process's credentials (common/caller.c)
                pass
            elif call == "mkdir" and under(cache, p):
                pass  # creating the configured cache directory and its parents
            elif not any(under(p, r) for r in allowed):
                why = "an absolute path outside the allowed roots"
        elif p == "":
            if fd_i is None:
                why = "an empty path"  # else the descriptor itself (AT_EMPTY_PATH, readlinkat)
        elif fd_i is None or args[fd_i].startswith("AT_FDCWD"):
            why = "a path relative to the working directory"
        elif "/" in p and not (call == "openat2" and "RESOLVE_BENEATH" in body
                               and "RESOLVE_NO_SYMLINKS" in body):
            why = "a multi-component path a symlink on the way could redirect"
        if why:
            bad.append(f"{why}: {line.strip()[:300]}")
print(f"{calls} path-taking calls checked, {len(bad)} violations")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad or calls == 0 else 0)
PY

STRACE_PID=''
# trace_start PID FILE: attaches strace to every thread of PID; returns once it sees calls.
trace_start() {
	local pid=$1 out=$2 i
	strace -f -qq -y -s 65535 -e trace=%file,fsconfig,mount,umount2,chroot -o "$out" -p "$pid" 2>"$out.err" &
	STRACE_PID=$!
	LZ_PIDS+=("$STRACE_PID")
	for ((i = 0; i < 100; i++)); do
		stat "$MP/strace-sync-$i" >/dev/null 2>&1 || true
		grep -q "strace-sync-$i" "$out" 2>/dev/null && return 0
		sleep 0.1
	done
	grep -q "not permitted" "$out.err" && lz_skip "strace cannot attach here: $(cat "$out.err")"
	lz_fail "strace did not attach: $(cat "$out.err")"
}
trace_stop() {
	kill -INT "$STRACE_PID"
	timeout 10 tail --pid="$STRACE_PID" -f /dev/null || lz_fail "strace did not detach"
}

lz_mount "$MP" -d -o "backend=$BACKEND,underlay=$U,images=$IMG,map=$MAPF,cache=$CACHE,idle_timeout=1"
pid=$LZ_LAST_PID log=$LZ_LAST_LOG
if grep -q "$MAPF:[12]:" "$log"; then lz_fail "a good map line was refused"; fi
for line in 3 4 5; do
	grep -q "$MAPF:$line:" "$log" || lz_fail "bad map line $line was not refused with a log line"
done
lz_ok "map lines with '..', an absolute entry path or a relative image path are refused and logged"
trace_start "$pid" "$LZ_TMP/trace"

# The client walks everything: lstat, readlink (compared with the source), read
# every file, and follows every symlink (in the client's view).
timeout -k 10 300 python3 - "$MP" "$E" "$U" <<'PY' || lz_fail "walking the hostile trees"
import os, stat, sys
mp, src_img, src_under = (os.fsencode(a) for a in sys.argv[1:4])
problems, links, reads = [], 0, 0

def walk(top, src):
    global links, reads
    for dirpath, dirnames, filenames in os.walk(top, onerror=lambda e: None):
        for name in dirnames + filenames:
            assert b"/" not in name
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, top)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                got = os.readlink(p)
                if src is not None and got != os.readlink(os.path.join(src, rel)):
                    problems.append(f"{p!r}: readlink {got!r} differs from the source")
                for follow in (os.stat, lambda q: open(q, "rb").read(4096), os.listdir):
                    try:
                        follow(p)
                    except OSError:
                        pass
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
                reads += 1
                if src is not None and data != open(os.path.join(src, rel), "rb").read():
                    problems.append(f"{p!r}: content differs from the source")

walk(os.path.join(mp, b"evil"), src_img)
walk(mp, None)
for name in os.listdir(src_under):
    p = os.path.join(mp, name)
    if os.path.islink(os.path.join(src_under, name)) and os.readlink(p) != os.readlink(os.path.join(src_under, name)):
        problems.append(f"underlay {name!r}: readlink differs")
print(f"walked: {links} symlinks, {reads} files read")
if problems:
    sys.exit("\n".join(problems[:10]))
PY
lz_ok "every symlink reads back unchanged (image and underlay); every file reads its bytes"

# Symlinks resolve in the client's view: in a mount namespace of its own the
# client sees a different $V/secret than the daemon does.
got=$(unshare -m --propagation private sh -c '
	mount -t tmpfs tmpfs "$1" && echo "client view" > "$1/secret" &&
	cat "$2/evil/to-view" "$2/to-view"' sh "$V" "$MP") || lz_fail "reading through symlinks in a private namespace"
[[ $got == $'client view\nclient view' ]] || lz_fail "a symlink resolved in the daemon's view: [$got]"
[[ $(cat "$MP/evil/to-view") == "daemon view" ]] || lz_fail "to-view outside the namespace"
lz_ok "absolute symlinks in images and the underlay resolve in the client's mount namespace"

# Hostile names from the client side.
for dir in "$MP/evil" "$MP"; do
	for name in $'new\nline' ' ' $'\xff\xfe' '...' '%s%n%x' '-rf' '*' '\' '$(id)' ':' 'a b' "$long"; do
		[[ -e "$dir/$name" ]] || lz_fail "[$name] missing in $dir"
	done
	[[ $(cat "$dir/.../f") == "three dots" ]] || lz_fail "$dir/.../f"
done
timeout -k 10 60 python3 - "$MP" <<'PY' || lz_fail "name length limits"
import errno, os, sys
mp = sys.argv[1]
for d in (f"{mp}/evil", mp, f"{mp}/plain", f"{mp}/mapped"):
    for n, want in ((255, errno.ENOENT), (256, errno.ENAMETOOLONG), (1024, errno.ENAMETOOLONG),
                    (1025, errno.ENAMETOOLONG), (4000, errno.ENAMETOOLONG)):
        try:
            os.lstat(os.path.join(d, "x" * n))
            sys.exit(f"{d}: a {n}-byte name exists")
        except OSError as e:
            if e.errno != want:
                sys.exit(f"{d}: a {n}-byte name gives {errno.errorcode[e.errno]}, not {errno.errorcode[want]}")
os.lstat(os.path.join(mp, "evil", "n" * 255))
PY
lz_ok "names of 255 bytes work; 256 and longer give ENAMETOOLONG; odd names (newline, non-UTF-8, '...', ' ') work"

# Names with "/", "..", "." or a NUL inside an image: never listed, never looked up.
for tag in slash dotdot dot nul; do
	listing=$(timeout 10 python3 -c 'import os, sys
try:
    print("\n".join(sorted(os.listdir(sys.argv[1]))))
except OSError as e:
    print(f"error {e.errno}")' "$MP/names-$tag") || lz_fail "names-$tag: listing hung or crashed"
	echo "names-$tag: $(tr '\n' ' ' <<<"$listing")"
	for bad in b/b b ..x d; do
		grep -qxF "$bad" <<<"$listing" && lz_fail "names-$tag lists [$bad]"
	done
	for name in b d; do
		if [[ -e $MP/names-$tag/$name ]]; then lz_fail "names-$tag/$name can be looked up"; fi
	done
	[[ $(cat "$MP/names-$tag/eeee") == eeee ]] || lz_fail "names-$tag: the good entry after the bad one"
done
kill -0 "$pid" || lz_fail "the daemon died"
lz_ok "a '/' (or '..', '.', NUL) in an image's name is never listed or looked up (EIO for the kernel's listing at most)"

# The images directory's symlinks out of it, and lazyfsctl with hostile names.
for name in passwd rootdir shadow; do
	if timeout 10 cat "$MP/$name/x" 2>/dev/null; then lz_fail "$name served something"; fi
done
[[ $(cat "$MP/mapped/linked/id") == "mapped image" ]] || lz_fail "a map entry whose image is a symlink"
[[ $(cat "$MP/mapped/viadir/id") == "mapped image" ]] || lz_fail "a map entry through a symlinked directory"
for cmd in pin prefetch evict unpin; do
	for arg in ../../etc /etc/shadow evil/../../x '..' "$long$long" 'evil/to-root/etc' 'evil/up3' mapped/../../x '%s%n'; do
		timeout 20 "$CTL" "$MP" "$cmd" "$arg" >/dev/null 2>&1 || true
	done
done
timeout 20 "$CTL" "$MP" prefetch evil >/dev/null 2>&1 || true
# The hostile map's bad lines: the reload is done and says so, with the first of them.
out=$(timeout 20 "$CTL" "$MP" reload 2>&1) && lz_fail "a reload of a map with bad lines succeeded: $out"
[[ $out == *"bad lines skipped, the first: $MAPF:3:"* ]] || lz_fail "reload: $out"
sleep 2.1 # idle expiry closes the images; the next walk resolves them again
timeout -k 10 60 find "$MP" -exec stat {} + >/dev/null 2>&1 || true
kill -0 "$pid" || lz_fail "the daemon died"
lz_ok "image-directory symlinks fail open; symlinked map images serve; lazyfsctl with hostile names, reload, expiry"

trace_stop
allowed=("$CACHE" "$IMG" "$MAPF" "$LZ_TMP/links/linked.sqfs" "$LZ_TMP/ldir/good.sqfs"
	/proc/self /proc/thread-self "/proc/$pid" /dev/fuse /dev/loop-control /sys /run/lazyfs)
for ((i = 0; i < 256; i++)); do allowed+=("/dev/loop$i"); done
out=$(python3 "$LZ_TMP/tracecheck.py" "$LZ_TMP/trace" "${allowed[@]}") || {
	echo "$out" >&2
	lz_fail "the daemon took a path outside the image, underlay, cache and images directory"
}
echo "$out"
lz_ok "strace: $(head -n1 <<<"$out"); no path outside the allowed roots, no cwd-relative or '..' path"
lz_umount "$MP"

# The cache: a symlinked cache, objects/ or objects/xx is refused at start; the
# same tampering while running never sends a write or unlink outside it.
if [[ $BACKEND == kernel ]] && command -v rclone >/dev/null; then
	export RCLONE_CONFIG=/dev/null
	SRV=$LZ_TMP/srv ELSE=$LZ_TMP/elsewhere
	mkdir -p "$SRV" "$ELSE"
	for i in $(seq 1 12); do echo "object $i" > "$SRV/o$i"; done
	lz_serve_http "$SRV"
	remote="remote=:http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/':,remote_mode=objects"
	C2=$LZ_TMP/c2
	for what in cache objects objects/7f; do
		rm -rf "$C2" && mkdir -p "$C2/objects/7f" "$C2/tmp" && chmod 700 "$C2"
		if [[ $what == cache ]]; then
			mv "$C2" "$C2.real" && ln -s "$C2.real" "$C2"
		else
			rm -rf "${C2:?}/$what" && ln -s "$ELSE" "$C2/$what"
		fi
		if timeout 20 "$LAZYFS_BIN" -f -o "underlay=$U,$remote,cache=$C2" "$MP" 2>"$LZ_TMP/err"; then
			lz_fail "lazyfs started with a symlinked $what"
		fi
		grep -qi "symlink\|not a directory" "$LZ_TMP/err" || lz_fail "symlinked $what: $(cat "$LZ_TMP/err")"
		[[ -z $(ls -A "$ELSE") ]] || lz_fail "something was written through the symlinked $what"
		rm -rf "$C2" "$C2.real"
	done
	lz_ok "a cache directory, objects/ or objects/xx that is a symlink is refused at start"

	lz_mount "$MP" -d -o "underlay=$U,$remote,cache=$C2"
	pid=$LZ_LAST_PID
	# The first fetch starts rclone's rcd child, which the trace below then leaves out.
	[[ $(cat "$MP/o1") == "object 1" ]] || lz_fail "o1"
	trace_start "$pid" "$LZ_TMP/trace2"
	mv "$C2/objects" "$C2/objects.old"
	ln -s "$ELSE" "$C2/objects"
	[[ $(cat "$MP/o2") == "object 2" ]] || lz_fail "o2 with objects/ replaced by a symlink"
	for sub in "$C2"/objects.old/??; do
		mv "$sub" "$sub.moved"
		ln -s "$ELSE" "$sub"
	done
	for i in $(seq 3 12); do
		[[ $(timeout 30 cat "$MP/o$i") == "object $i" ]] || lz_fail "o$i with objects/xx replaced by symlinks"
	done
	grep -q "served but not kept: .*not a directory (refusing it)" "$LZ_LAST_LOG" ||
		lz_fail "no log line for an object that could not be kept"
	[[ $(cat "$MP/o1") == "object 1" ]] || lz_fail "o1 again"
	trace_stop
	kill -0 "$pid" || lz_fail "the daemon died"
	[[ -z $(ls -A "$ELSE") ]] || lz_fail "objects were written through a symlink: $(ls -A "$ELSE")"
	out=$(python3 "$LZ_TMP/tracecheck.py" "$LZ_TMP/trace2" "$C2" /proc/self /proc/thread-self \
		"/proc/$pid" /dev/fuse /dev/null /sys /run/lazyfs) || {
		echo "$out" >&2
		lz_fail "the daemon took a path outside the cache"
	}
	lz_ok "objects/ and objects/xx replaced by symlinks while running: objects served but not kept (logged), nothing written, renamed or unlinked through them ($(head -n1 <<<"$out"))"
	lz_umount "$MP"
fi
lz_done
