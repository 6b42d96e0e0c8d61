#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The eBPF open tracker in the daemon: cold entries send one event and start
# resolving before the kernel's LOOKUP, warm ones are only counted, expiry
# re-arms them, opens elsewhere say nothing, a nested images tree resolves at
# the image's depth, bpf=off serves the same, and
# nothing stays pinned or attached after unmount.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
"$LAZYFS_BIN" --version >/dev/null

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt OUT=$LZ_TMP/outside
mkdir -p "$IMG" "$U/plain" "$MP" "$OUT"
for n in alpha beta gamma; do
	mkdir -p "$LZ_TMP/src-$n/bin"
	echo "image $n" >"$LZ_TMP/src-$n/hello.txt"
	printf '#!/bin/sh\necho ran %s\n' "$n" >"$LZ_TMP/src-$n/bin/tool"
	chmod +x "$LZ_TMP/src-$n/bin/tool"
	mksquashfs "$LZ_TMP/src-$n" "$IMG/$n.sqfs" -noappend -quiet >/dev/null
done
for n in walled closed; do # opened only from where the tracker must not act
	mkdir -p "$LZ_TMP/src-$n"
	echo "image $n" >"$LZ_TMP/src-$n/hello.txt"
	mksquashfs "$LZ_TMP/src-$n" "$IMG/$n.sqfs" -noappend -quiet >/dev/null
done
mkdir -p "$LZ_TMP/nested/a"
echo nested >"$LZ_TMP/nested/a/file"
mksquashfs "$LZ_TMP/nested" "$IMG/nested.img" -noappend -quiet >/dev/null
echo "deep/er/entry $IMG/nested.img" >"$LZ_TMP/map"
echo outside >"$OUT/file"
suffix=${LZ_TMP##*.}

# Counts DEBUG log lines "bpf: KEY: cold" for KEY.
cold_events() { grep -c "bpf: $1: cold" "$LZ_LAST_LOG" || true; }
pins() { ls /sys/fs/bpf/lazyfs 2>/dev/null | grep -c -- "$suffix" || true; }
# Programs of other lazyfs mounts on the machine do not count: only those PID
# holds (its fdinfo names them: bpftool here cannot list holders).
BPFTOOL=$(command -v bpftool || echo /usr/sbin/bpftool)
daemon_progs() {
	[[ -x $BPFTOOL ]] || return 0
	cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ {print $2}' | sort -un | tr '\n' ' '
}
our_progs_among() {
	"$BPFTOOL" -j prog show 2>/dev/null | python3 -c '
import json, sys
ids = set(int(i) for i in sys.argv[1].split())
print(" ".join(str(p["id"]) for p in json.load(sys.stdin) if p["id"] in ids))' "$1"
}

opts="backend=$BACKEND,underlay=$U,images=$IMG,map=$LZ_TMP/map,idle_timeout=2,prefetch=off"
# bpf=auto loads the tracker in the background once the mount serves.
tracker_up() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q "open tracker loaded\|open tracker off" "$LZ_LAST_LOG" && return 0
		sleep 0.05
	done
}
lz_mount "$MP" -d -o "$opts,bpf=auto"
tracker_up
if grep -q "open tracker off" "$LZ_LAST_LOG"; then
	lz_skip "BPF cannot load here: $(grep 'open tracker off' "$LZ_LAST_LOG")"
fi
grep -q "open tracker loaded" "$LZ_LAST_LOG" || lz_fail "no 'open tracker loaded' line: $(cat "$LZ_LAST_LOG")"
[[ $(pins) -eq 1 ]] || lz_fail "no pin directory for this mount under /sys/fs/bpf/lazyfs"
lz_ok "bpf=auto loads the tracker and pins its maps under /sys/fs/bpf/lazyfs"

# A cold image opened by another process: one event, resolved before (or while) LOOKUP runs.
[[ $(sh -c "cat '$MP/alpha/hello.txt'") == "image alpha" ]] || lz_fail "alpha reads wrong"
for ((i = 0; i < 50; i++)); do
	grep -q "bpf: alpha: LOOKUP" "$LZ_LAST_LOG" && break
	sleep 0.1
done
[[ $(cold_events alpha) -eq 1 ]] || lz_fail "alpha: $(cold_events alpha) events, expected 1"
grep -q "bpf: alpha: LOOKUP .* after the event" "$LZ_LAST_LOG" ||
	lz_fail "alpha: its LOOKUP was not matched to the event"
lz_ok "a cold image sends one event and its LOOKUP is matched to it"

# The tracker acts only for processes that can reach this mount: not for one
# in a mount namespace with another tree at the prefix (a container), not for
# a user the mount does not let in (no allow_other). Their opens start nothing.
images_ready() { "$(dirname "$LAZYFS_BIN")/lazyfsctl" "$MP" images | awk '$2 == "ready" { print $1 }' | sort | tr '\n' ' '; }
before=$(images_ready)
unshare -m --propagation private sh -c "mount -t tmpfs none '$MP' && cat '$MP/walled/hello.txt' 2>/dev/null; sleep 1" || true
setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c "cat '$MP/closed/hello.txt' 2>/dev/null; sleep 1" || true
for ((i = 0; i < 50; i++)); do
	[[ $(grep -c "bpf: \(walled\|closed\): pid [0-9]* does not see this mount or may not search it: ignored" "$LZ_LAST_LOG") -ge 2 ]] && break
	sleep 0.1
done
grep -q "bpf: walled: pid [0-9]* does not see this mount" "$LZ_LAST_LOG" || lz_fail "the foreign namespace's open was not ignored: $(grep walled "$LZ_LAST_LOG")"
grep -q "bpf: closed: pid [0-9]* does not see this mount" "$LZ_LAST_LOG" || lz_fail "nobody's open was not ignored: $(grep closed "$LZ_LAST_LOG")"
[[ $(images_ready) == "$before" ]] || lz_fail "an ignored event resolved an image: $before -> $(images_ready)"
lz_ok "opens from a foreign mount namespace and from a user the mount does not let in start nothing"

# Warm: opens, execs and stats of a resolved image send nothing more.
for ((i = 0; i < 200; i++)); do cat "$MP/alpha/hello.txt" >/dev/null; done
[[ $("$MP/alpha/bin/tool") == "ran alpha" ]] || lz_fail "exec from alpha failed"
stat "$MP/alpha/bin/tool" >/dev/null
[[ $(cold_events alpha) -eq 1 ]] || lz_fail "alpha warm: $(cold_events alpha) events"
lz_ok "warm opens, exec and stat of a resolved image send no event"

# A storm of 100k opens of one cold entry: one event.
python3 - "$MP/beta/hello.txt" <<'EOF'
import os, sys
for _ in range(100000):
    os.close(os.open(sys.argv[1], os.O_RDONLY))
EOF
[[ $(cold_events beta) -eq 1 ]] || lz_fail "beta: $(cold_events beta) events for 100k opens"
lz_ok "100k opens of a cold entry send exactly one event"

# exec and stat are seen too; an entry with nothing to resolve is silenced.
[[ $("$MP/gamma/bin/tool") == "ran gamma" ]] || lz_fail "exec from gamma failed"
[[ $(cold_events gamma) -eq 1 ]] || lz_fail "exec: $(cold_events gamma) events"
stat "$MP/plain" >/dev/null
stat "$MP/plain" >/dev/null
stat "$MP/no-such-entry" >/dev/null 2>&1 || true
stat "$MP/no-such-entry" >/dev/null 2>&1 || true
sleep 0.3
[[ $(cold_events plain) -eq 1 && $(cold_events no-such-entry) -eq 1 ]] ||
	lz_fail "underlay entries: $(cold_events plain) and $(cold_events no-such-entry) events"
lz_ok "exec and stat send events; entries with no image are reported once"

# map= entries are keyed by their whole mapped path.
[[ $(cat "$MP/deep/er/entry/a/file") == nested ]] || lz_fail "mapped entry reads wrong"
[[ $(cold_events deep/er/entry) -eq 1 ]] || lz_fail "mapped entry: $(cold_events deep/er/entry) events"
lz_ok "a map= entry is keyed by its mapped path"

# Opens elsewhere, including a sibling sharing the prefix's spelling, send nothing.
before=$(grep -c "bpf: .*: cold" "$LZ_LAST_LOG")
mkdir -p "$MP-other" 2>/dev/null || true
for ((i = 0; i < 1000; i++)); do cat "$OUT/file" >/dev/null; done
ls "$MP-other" >/dev/null 2>&1 || true
rmdir "$MP-other" 2>/dev/null || true
sleep 0.3
[[ $(grep -c "bpf: .*: cold" "$LZ_LAST_LOG") -eq $before ]] || lz_fail "opens outside the mount sent events"
lz_ok "opens outside the prefix send nothing"

# Expiry forgets the entry: the next cold open sends an event again.
for ((i = 0; i < 80; i++)); do
	grep -q "image alpha: closed" "$LZ_LAST_LOG" && break
	sleep 0.1
done
grep -q "image alpha: closed" "$LZ_LAST_LOG" || lz_fail "alpha did not expire"
cat "$MP/alpha/hello.txt" >/dev/null
sleep 0.2
[[ $(cold_events alpha) -eq 2 ]] || lz_fail "alpha after expiry: $(cold_events alpha) events, expected 2"
lz_ok "an expired image is forgotten by the tracker and reported again"

progs=$(daemon_progs "$LZ_LAST_PID")
[[ -n $progs || ! -x $BPFTOOL ]] || lz_fail "bpftool lists no program held by the daemon"
lz_umount "$MP"
summary=$(grep "open tracker:" "$LZ_LAST_LOG" || true)
[[ $summary =~ ([0-9]+)\ hits,\ ([0-9]+)\ lost ]] || lz_fail "no tracker summary: $summary"
((BASH_REMATCH[1] >= 200)) || lz_fail "only ${BASH_REMATCH[1]} hits counted: $summary"
[[ ${BASH_REMATCH[2]} -eq 0 ]] || lz_fail "events lost: $summary"
lz_ok "hits are counted in the kernel, no event lost ($summary)"
fuse=$(grep "FUSE requests of this mount:" "$LZ_LAST_LOG" || true)
[[ $fuse =~ OPEN\ ([0-9]+) ]] || lz_fail "no FUSE statistics: $fuse"
# 200 cats of alpha, 100k opens of beta, a few more: each open is one OPEN in passthrough mode.
((BASH_REMATCH[1] >= 100200)) || lz_fail "only ${BASH_REMATCH[1]} OPEN requests counted: $fuse"
[[ $fuse =~ LOOKUP\ [0-9]+ && $fuse =~ GETATTR|STATX ]] || lz_fail "FUSE statistics lack LOOKUP/GETATTR: $fuse"
lz_ok "the mount's FUSE requests are counted by opcode (${fuse#*: })"
[[ $(pins) -eq 0 ]] || lz_fail "pins left after unmount: $(ls /sys/fs/bpf/lazyfs)"
if [[ -n $progs ]]; then
	still=$(our_progs_among "$progs")
	[[ -z $still ]] || lz_fail "BPF programs $still of the unmounted daemon are still loaded"
fi
lz_ok "nothing pinned or attached after unmount"

# bpf=on loads the tracker before the mount exists: it is there at once.
lz_mount "$MP" -d -o "$opts,bpf=on"
grep -q "open tracker loaded" "$LZ_LAST_LOG" || lz_fail "bpf=on: no tracker when the mount is up"
[[ $(pins) -eq 1 ]] || lz_fail "bpf=on: nothing pinned"
lz_umount "$MP"
lz_ok "bpf=on loads the tracker before the mount serves"

# bpf=off serves the same tree, with no tracker.
lz_mount "$MP" -d -o "$opts,bpf=off"
[[ $(cat "$MP/alpha/hello.txt") == "image alpha" && $("$MP/beta/bin/tool") == "ran beta" ]] ||
	lz_fail "bpf=off reads differ"
[[ $(pins) -eq 0 ]] && ! grep -q "open tracker" "$LZ_LAST_LOG" || lz_fail "bpf=off loaded the tracker"
lz_umount "$MP"
lz_ok "bpf=off serves the same files without a tracker"

# remote_mode=objects: the key is the whole path; an evicted object is reported again.
if command -v rclone >/dev/null; then
	T=$LZ_TMP/tree
	mkdir -p "$T/dir"
	head -c 700000 /dev/urandom >"$T/dir/a.bin"
	head -c 700000 /dev/urandom >"$T/dir/b.bin"
	lz_serve_http "$T"
	remote=":http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/':"
	lz_mount "$MP" -d -o "underlay=$U,remote=$remote,remote_mode=objects,cache=$LZ_TMP/oc,cache_size=1M,prefetch=off"
	tracker_up
	cmp "$MP/dir/a.bin" "$T/dir/a.bin" || lz_fail "objects: a.bin reads wrong"
	[[ $(cold_events dir/a.bin) -eq 1 ]] || lz_fail "objects: $(cold_events dir/a.bin) events for dir/a.bin"
	cmp "$MP/dir/a.bin" "$T/dir/a.bin"
	[[ $(cold_events dir/a.bin) -eq 1 ]] || lz_fail "objects: a cached object was reported again"
	sleep 0.5 # RELEASE follows close asynchronously; an open object cannot be evicted
	cmp "$MP/dir/b.bin" "$T/dir/b.bin" || lz_fail "objects: b.bin reads wrong" # evicts a.bin
	sleep 0.5
	cmp "$MP/dir/a.bin" "$T/dir/a.bin" || lz_fail "objects: a.bin reads wrong after eviction"
	[[ $(cold_events dir/a.bin) -eq 2 ]] || lz_fail "objects: evicted dir/a.bin gave $(cold_events dir/a.bin) events, expected 2"
	lz_umount "$MP"
	kill "$LZ_HTTP_PID" 2>/dev/null || true
	lz_ok "objects are keyed by their whole path; an evicted object is reported again"
fi

# A nested images tree: keys are whole paths, so an image below the top is
# resolved from the event at its own depth; its expiry forgets every key below it.
NI=$LZ_TMP/nested-tree
mkdir -p "$NI/arm/v8"
cp "$IMG/alpha.sqfs" "$NI/arm/v8/gcc-1.sqfs"
lz_mount "$MP" -d -o "backend=$BACKEND,underlay=$U,images=$NI,idle_timeout=2,prefetch=off,bpf=on"
[[ $(cat "$MP/arm/v8/gcc-1/hello.txt") == "image alpha" ]] || lz_fail "nested: reads wrong"
"$MP/arm/v8/gcc-1/bin/tool" >/dev/null || lz_fail "nested: the tool does not run"
sleep 0.3
[[ $(cold_events arm/v8/gcc-1/hello.txt) -eq 1 ]] || lz_fail "nested: $(cold_events arm/v8/gcc-1/hello.txt) events for the file"
# Both files' events (the open and the exec) are resolved by the tracker's workers.
for ((i = 0; i < 50; i++)); do
	early=$("$(dirname "$LAZYFS_BIN")/lazyfsctl" "$MP" stats | awk '/resolved_early:/ { print $2 }')
	((early >= 2)) && break
	sleep 0.1
done
((early >= 2)) || lz_fail "nested: $early entries resolved early, expected both files'"
cat "$MP/arm/v8/gcc-1/hello.txt" >/dev/null
[[ $(cold_events arm/v8/gcc-1/hello.txt) -eq 1 ]] || lz_fail "nested: a resolved file was reported again"
for ((i = 0; i < 80; i++)); do
	grep -q "image arm/v8/gcc-1: closed" "$LZ_LAST_LOG" && break
	sleep 0.1
done
grep -q "image arm/v8/gcc-1: closed" "$LZ_LAST_LOG" || lz_fail "nested: the image did not expire"
cat "$MP/arm/v8/gcc-1/hello.txt" >/dev/null
sleep 0.2
[[ $(cold_events arm/v8/gcc-1/hello.txt) -eq 2 ]] ||
	lz_fail "nested: after expiry $(cold_events arm/v8/gcc-1/hello.txt) events, expected 2"
lz_umount "$MP"
lz_ok "a nested tree is keyed by whole paths, resolved early at the image's depth, forgotten below it at expiry"

# bpf=on fails the mount when the tracker cannot load (a prefix too long for it).
LONG=$LZ_TMP/$(printf 'x%.0s' {1..130})
mkdir -p "$LONG"
if "$LAZYFS_BIN" -f -o "$opts,bpf=on" "$LONG" 2>"$LZ_TMP/on.log"; then
	umount "$LONG" 2>/dev/null || true
	lz_fail "bpf=on mounted although the tracker could not load"
fi
grep -q "bpf=on: the open tracker cannot load" "$LZ_TMP/on.log" || lz_fail "bpf=on error: $(cat "$LZ_TMP/on.log")"
lz_is_lazyfs_mount "$LONG" && lz_fail "bpf=on left a mount"
lz_mount "$LONG" -o "$opts,bpf=auto"
tracker_up
grep -q "open tracker off" "$LZ_LAST_LOG" || lz_fail "bpf=auto did not say the tracker is off"
[[ $(cat "$LONG/alpha/hello.txt") == "image alpha" ]] || lz_fail "bpf=auto without tracker reads wrong"
lz_umount "$LONG"
lz_ok "bpf=on refuses to mount without a tracker; bpf=auto mounts and says why"
lz_done
