#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The cache under pressure, and remote images: a small cache_size evicts the
# least recently used objects (never one that is open); a full cache disk (a
# small tmpfs) makes a too-large object fail with EIO and a log line while
# the rest keeps working; remote_mode=images lists N.sqfs without fetching it,
# fetches it once walked into and serves it as a local image on both backends;
# a pin that fetches one runs as a job.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v rclone >/dev/null || lz_skip "rclone missing"
export RCLONE_CONFIG=/dev/null
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}

SRC=$LZ_TMP/srv U=$LZ_TMP/under MP=$LZ_TMP/mnt
mkdir -p "$SRC/objs" "$SRC/images" "$U" "$MP" "$LZ_TMP/tiny"
for i in 1 2 3 4 5 6 7 8; do head -c $((1 << 20)) /dev/urandom > "$SRC/objs/o$i.bin"; done
head -c $((6 << 20)) /dev/urandom > "$SRC/objs/huge.bin"
mkdir -p "$LZ_TMP/imgsrc/bin"
echo "from a remote image" > "$LZ_TMP/imgsrc/bin/tool"
chmod 0711 "$LZ_TMP/imgsrc"
touch -d @981173106 "$LZ_TMP/imgsrc"
mksquashfs "$LZ_TMP/imgsrc" "$SRC/images/tools.sqfs" -noappend -quiet >/dev/null
lz_serve_http "$SRC"
port=$LZ_HTTP_PORT

# Quota: 3 MiB holds three 1 MiB objects; an open one survives eviction.
CACHE=$LZ_TMP/not/yet/there/cache # parents are created
lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/objs/':,remote_mode=objects,cache=$CACHE,cache_size=3M"
log=$LZ_LAST_LOG
exec {held}<"$MP/o1.bin"
for i in 2 3 4 5 6 7 8; do
	cmp -s "$MP/o$i.bin" "$SRC/objs/o$i.bin" || lz_fail "o$i.bin bytes"
	sleep 0.2 # RELEASE arrives in the background: until then the object is open
done
used=$(find "$CACHE/objects" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')
(( used <= (3 << 20) + 65536 )) || lz_fail "the cache holds $used bytes, over its 3 MiB quota"
cmp -s /dev/fd/$held "$SRC/objs/o1.bin" || lz_fail "an open object lost its bytes"
exec {held}<&-
cmp -s "$MP/o2.bin" "$SRC/objs/o2.bin" || lz_fail "an evicted object is not fetched again"
[[ $(grep -c "fetched 'o2.bin'" "$log") -eq 2 ]] || lz_fail "o2.bin was not evicted and fetched again"
lz_ok "cache_size=3M: least recently used objects are evicted and fetched again; an open one stays"
if cat "$MP/huge.bin" >/dev/null 2>"$LZ_TMP/err"; then lz_fail "an object larger than the quota was served"; fi
grep -q "huge.bin" "$log" || lz_fail "no log line for the object larger than the quota"
cmp -s "$MP/o8.bin" "$SRC/objs/o8.bin" || lz_fail "the cache broke after a failed fill"
lz_ok "an object larger than the whole cache fails with a log line; the rest keeps working"

# Remount at once: umount returns before the daemon let go of the cache (it
# saves the index first); the next daemon on that cache waits for it.
first=$LZ_LAST_PID
umount "$MP"
lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/objs/':,remote_mode=objects,cache=$CACHE,cache_size=3M"
cmp -s "$MP/o8.bin" "$SRC/objs/o8.bin" || lz_fail "remounted at once: o8.bin bytes"
timeout 10 tail --pid="$first" -f /dev/null || lz_fail "the first daemon did not exit"
if grep -q "fetched 'o8.bin'" "$LZ_LAST_LOG"; then
	grep -h "o8\|cache\|index\|evict" "$log" "$LZ_LAST_LOG" >&2
	lz_fail "remounted at once: o8.bin was fetched again, the cache was not taken over"
fi
lz_ok "umount and remount at once on the same cache: the new daemon waits for the old one and serves its cached objects"
lz_umount "$MP"

# A full cache disk: a 4 MiB tmpfs under a quota of 8 MiB, so the disk fills first.
LZ_MOUNTS+=("$LZ_TMP/tiny")
mount -t tmpfs -o size=4m tmpfs "$LZ_TMP/tiny"
lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/objs/':,remote_mode=objects,cache=$LZ_TMP/tiny/cache,cache_size=8M"
for i in 1 2 3 4 5 6; do
	cmp -s "$MP/o$i.bin" "$SRC/objs/o$i.bin" || { cat "$LZ_LAST_LOG" >&2; df "$LZ_TMP/tiny" >&2; lz_fail "o$i.bin on a filling disk"; }
	sleep 0.2
done
lz_ok "the cache disk fills before the quota: older objects are evicted and the fills retried"
if cat "$MP/huge.bin" >/dev/null 2>"$LZ_TMP/err"; then lz_fail "a 6 MiB object fit a 4 MiB disk"; fi
grep -q "huge.bin" "$LZ_LAST_LOG" || lz_fail "no log line for the fill that found no room"
cmp -s "$MP/o7.bin" "$SRC/objs/o7.bin" || lz_fail "o7.bin after a fill found no room"
lz_ok "an object the disk cannot hold fails with $(sed 's/.*: //' "$LZ_TMP/err") and a log line; nothing else breaks"
lz_umount "$MP"
umount "$LZ_TMP/tiny"

# Remote images, both backends: ls -l lists them without fetching anything;
# walking in fetches; the root's true attributes (mode 0711, dated 2001) are
# learnt then and serve the listings of the next daemon on that cache.
# The kernel mounts a remote image only with a trusted digest: without one,
# backend=kernel refuses it (the name serves the underlay), backend=auto reads
# it with squashfuse.
sha256sum "$SRC/images/tools.sqfs" | sed 's|  .*/|  |' >"$LZ_TMP/digests"
mkdir -p "$U/tools"
echo "underlay of tools" >"$U/tools/who"
lz_mount "$MP" -d -o "backend=kernel,underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/images/':,cache=$LZ_TMP/icache-untrusted"
[[ $(cat "$MP/tools/who" 2>/dev/null) == "underlay of tools" ]] || lz_fail "backend=kernel served a remote image without a trusted digest"
grep -q "image tools: untrusted: a remote image without a trusted digest; backend=kernel mounts only trusted images" "$LZ_LAST_LOG" ||
	lz_fail "no log line for the untrusted remote image: $(grep tools "$LZ_LAST_LOG")"
lz_umount "$MP"
lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/images/':,cache=$LZ_TMP/icache-untrusted"
[[ $(cat "$MP/tools/bin/tool") == "from a remote image" ]] || lz_fail "backend=auto: an untrusted remote image"
"$CTL" "$MP" images | grep -Eq "^tools +ready +squashfuse .*untrusted: a remote image without a trusted digest" ||
	lz_fail "backend=auto: untrusted remote image: $("$CTL" "$MP" images)"
[[ $(lz_image_loops "$LZ_TMP/icache-untrusted") -eq 0 ]] || lz_fail "an untrusted remote image reached a loop device"
lz_umount "$MP"
lz_ok "a remote image without a trusted digest: backend=kernel refuses it (the underlay is served), backend=auto reads it with squashfuse, never a loop device"
rm -r "$U/tools"

for backend in kernel squashfuse; do
	cache=$LZ_TMP/icache-$backend
	lz_mount "$MP" -d -o "backend=$backend,underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/images/':,cache=$cache,trusted_digests=$LZ_TMP/digests"
	[[ $(ls "$MP") == tools ]] || lz_fail "$backend: remote image listing: $(ls "$MP")"
	listed=$(ls -ld "$MP/tools") || lz_fail "$backend: ls -l of a remote image root"
	[[ $listed == d* ]] || lz_fail "$backend: the root is listed as $listed"
	! grep -q "fetched 'tools.sqfs'" "$LZ_LAST_LOG" || lz_fail "$backend: ls -l fetched the image"
	[[ $(cat "$MP/tools/bin/tool") == "from a remote image" ]] || lz_fail "$backend: remote image content"
	grep -q "fetched 'tools.sqfs'" "$LZ_LAST_LOG" || lz_fail "$backend: walking in fetched nothing"
	sleep 1.2 # the kernel asks again for the attributes of a root listed before its fetch
	[[ $(stat -c '%a %Y' "$MP/tools") == "711 981173106" ]] || lz_fail "$backend: root after the fetch: $(stat -c '%a %Y' "$MP/tools")"
	lz_ok "$backend: remote_mode=images lists tools.sqfs as tools without fetching it, fetches it when walked into"
	if [[ $backend == kernel ]]; then
		"$CTL" "$MP" images | grep -Eq "^tools +ready +kernel .*trusted digest" ||
			lz_fail "a remote image with a trusted digest: $("$CTL" "$MP" images)"
	fi
	lz_umount "$MP"
	lz_mount "$MP" -d -o "backend=$backend,underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/images/':,cache=$cache,trusted_digests=$LZ_TMP/digests"
	[[ $(stat -c '%a %Y' "$MP/tools") == "711 981173106" ]] || lz_fail "$backend: root listed after a restart: $(stat -c '%a %Y' "$MP/tools")"
	! grep -q "image tools.sqfs: fetched" "$LZ_LAST_LOG" || lz_fail "$backend: stat of the root opened the image"
	lz_ok "$backend: the next daemon lists its root with the attributes learnt then, without opening it"
	lz_umount "$MP"
done
[[ $(lz_image_loops "$LZ_TMP/icache-kernel") -eq 0 ]] || lz_fail "loop devices left on cached images"

# A pin that has a whole remote image to fetch (3 MiB at 256 KiB/s) answers
# at once and goes on as a job that status shows; the control socket answers
# meanwhile.
mkdir -p "$LZ_TMP/bigsrc" "$LZ_TMP/slow/images"
head -c $((3 << 20)) /dev/urandom >"$LZ_TMP/bigsrc/blob"
mksquashfs "$LZ_TMP/bigsrc" "$LZ_TMP/slow/images/big.sqfs" -noappend -quiet >/dev/null
lz_serve_http "$LZ_TMP/slow" --bwlimit 256k
lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/images/':,cache=$LZ_TMP/scache"
start=$(date +%s%N)
out=$("$CTL" --timeout 5 "$MP" pin big 2>&1) || lz_fail "pin of a slow remote image: $out"
ms=$((($(date +%s%N) - start) / 1000000))
((ms < 2000)) && [[ $out == *"goes on in the background"* ]] || lz_fail "pin took $ms ms: $out"
"$CTL" --json "$MP" status | grep -Eq '"state": ?"running"' || lz_fail "status shows no running pin"
start=$(date +%s%N)
"$CTL" --timeout 5 "$MP" images >/dev/null || lz_fail "lazyfsctl does not answer during the pin"
(($(date +%s%N) - start < 1000000000)) || lz_fail "lazyfsctl took over a second during the pin"
for ((i = 0; i < 600; i++)); do
	"$CTL" --json "$MP" status | grep -Eq '"state": ?"done"' && break
	sleep 0.1
done
"$CTL" --json "$MP" status | grep -Eq '"message": ?"big pinned' || lz_fail "the pin did not end: $("$CTL" "$MP" status)"
"$CTL" "$MP" images | grep -Eq '^big +ready .* 1 ' || lz_fail "big is not pinned: $("$CTL" "$MP" images)"
lz_ok "pin of a remote image being fetched answers in $ms ms, goes on as a job and ends pinned"
lz_umount "$MP"

# Secrets stay off command lines: an inline secret is refused at start with
# where it goes instead; a remote named in rclone_config=FILE serves, and no
# command line on the machine shows what the file says.
if "$LAZYFS_BIN" -f -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$port/objs/'\\,pass=hunter2:,cache=$LZ_TMP/sc" "$MP" 2>"$LZ_TMP/err"; then
	lz_fail "an inline secret was accepted"
fi
grep -q "'pass=' is a secret.*rclone_config=FILE" "$LZ_TMP/err" || lz_fail "inline secret: $(cat "$LZ_TMP/err")"
! grep -q hunter2 "$LZ_TMP/err" || lz_fail "the refusal repeats the secret"
lz_is_lazyfs_mount "$MP" && lz_fail "mounted with an inline secret"
printf '[media]\ntype = http\nurl = http://127.0.0.1:%s/objs/\n' "$port" >"$LZ_TMP/rclone.conf"
chmod 0600 "$LZ_TMP/rclone.conf"
lz_mount "$MP" -d -o "underlay=$U,remote=media:,remote_mode=objects,rclone_config=$LZ_TMP/rclone.conf,cache=$LZ_TMP/sc"
cmp -s "$MP/o1.bin" "$SRC/objs/o1.bin" || lz_fail "a remote named in rclone_config"
# The needle comes through the environment: a grep's own command line would hold it.
shown=$(NEEDLE=":$port/objs" python3 -c '
import glob, os
me, needle = str(os.getpid()), os.environ["NEEDLE"].encode()
for p in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if p.split("/")[2] != me and needle in open(p, "rb").read():
            print(p)
    except OSError:
        pass')
[[ -z $shown ]] || lz_fail "a command line shows the remote's url: $shown $(cat $shown 2>/dev/null | tr '\0' ' ')"
lz_umount "$MP"
if "$LAZYFS_BIN" -f -o "underlay=$U,remote=media:,rclone_config=$LZ_TMP/none.conf,cache=$LZ_TMP/sc" "$MP" 2>"$LZ_TMP/err"; then
	lz_fail "a missing rclone_config was accepted"
fi
grep -q "rclone_config $LZ_TMP/none.conf: No such file" "$LZ_TMP/err" || lz_fail "missing rclone_config: $(cat "$LZ_TMP/err")"
lz_ok "an inline secret is refused with where it goes; a remote from rclone_config=FILE serves, its settings on no command line; a missing file fails the start"
lz_done
