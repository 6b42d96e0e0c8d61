#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Restart after a crash (upgrade/keeper.h): lazyfs leaves a keeper holding the
# mount and a worker serving it. SIGKILL of the worker under four checksumming
# readers: the same mount (st_dev), a new serving pid, zero reader errors, a
# file held open reads on, status and the metrics count the restart; after a
# live upgrade the keeper restarts the upgraded worker. Through
# `mount -t fuse.lazyfs` (the keeper in the background) the same holds. A
# crash loop fails open: the mountpoint shows the directory that was there
# before (never ENOTCONN), the keeper exits non-zero, and once the last file
# held open is closed no loop device, process, socket or BPF pin is left.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}

IMG=$LZ_TMP/img MP=$LZ_TMP/mnt W=$LZ_TMP/work T=$LZ_TMP/tree
mkdir -p "$IMG" "$MP/tools" "$W" "$T/data"
# The underlay is the mountpoint's own contents: what fail open shows again.
for i in $(seq 1 30); do head -c $((i * 6007)) /dev/urandom >"$MP/tools/u$i.bin"; done
echo "the directory underneath" >"$MP/underneath"
for i in $(seq 1 30); do head -c $((i * 5003)) /dev/urandom >"$T/data/t$i.bin"; done
head -c $((6 << 20)) /dev/urandom >"$T/big.bin"
mksquashfs "$T" "$IMG/app.sqfs" -quiet -noappend >/dev/null
for t in a b; do # the same layout, so the same inode numbers
	mkdir -p "$LZ_TMP/twin-$t/data"
	echo "twin $t" >"$LZ_TMP/twin-$t/data/f"
	mksquashfs "$LZ_TMP/twin-$t" "$IMG/twin-$t.sqfs" -quiet -noappend >/dev/null
done
# The readers use absolute paths; a working directory inside the mount is
# checked on its own below.
(cd "$MP/tools" && sha256sum ./*) | sed "s|\./|$MP/tools/|" >"$W/under.sums"
(cd "$T/data" && sha256sum ./*) | sed "s|\./|$MP/app/data/|" >"$W/app.sums"
mount_of() { awk -v mp="$(realpath "$1")" '$5 == mp { print $1, $3 }' /proc/self/mountinfo; }
serving() { "$CTL" --timeout 5 "$1" status 2>/dev/null | awk '/^pid:/ { print $2 }'; }
# restarted MP OLD: the pid that serves MP once it is not OLD (20 s at most).
restarted() {
	local i pid
	for ((i = 0; i < 200; i++)); do
		pid=$(serving "$1")
		[[ -n $pid && $pid != "$2" ]] && { echo "$pid"; return 0; }
		sleep 0.1
	done
	lz_fail "no new worker serves $1 after $2"
}
start_readers() {
	READERS=()
	rm -f "$W"/runs.* "$W"/err.* "$W/stop"
	for n in $(seq 0 $(($1 - 1))); do
		if ((n % 2)); then sums=$W/under.sums; else sums=$W/app.sums; fi
		lz_checksum_reader "$W" "$n" "$sums" &
		READERS+=("$!")
		LZ_PIDS+=("$!")
	done
	lz_wait_readers "$W" "$1"
}
stop_readers() {
	touch "$W/stop"
	for r in "${READERS[@]}"; do wait "$r" || true; done
	errors=$(cat "$W"/err.* 2>/dev/null || true)
	[[ -z $errors ]] || lz_fail "readers saw errors: $(head -c 1500 <<<"$errors")"
}

# --- a bare lazyfs command --------------------------------------------------
lz_mount "$MP" -d -o "backend=$BACKEND,images=$IMG,restart_limit=3,restart_window=120"
keeper=$LZ_KEEPER_PID pid=$LZ_LAST_PID
before=$(mount_of "$MP")
exec 7<"$MP/app/big.bin"
head -c 4096 <&7 >"$W/held.1"
ino_under=$(stat -c %i "$MP/tools/u1.bin")
# A process working inside the mount, with relative paths, across the crash.
(
	cd "$MP/tools" || exit 1
	while [[ ! -e $W/go ]]; do sleep 0.05; done
	{ sha256sum ./u1.bin && ls . | wc -l; } >"$W/cwd.out" 2>&1
) &
cwd_pid=$!
start_readers 4
kill -KILL "$pid"
new=$(restarted "$MP" "$pid")
LZ_PIDS+=("$new")
[[ $(mount_of "$MP") == "$before" ]] || lz_fail "the mount changed: $(mount_of "$MP") vs $before"
[[ $(ps -o ppid= -p "$new" | tr -d ' ') == "$keeper" ]] || lz_fail "pid $new is not the keeper's worker"
lz_wait_readers "$W" 4 # each finished a run since
rm -f "$W"/runs.*
lz_wait_readers "$W" 4 # and another one, on the new worker
stop_readers
lz_ok "SIGKILL of worker $pid: worker $new serves the same mount ($before); 4 readers saw no error"
json=$("$CTL" --json "$MP" status)
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["pid"] == int(sys.argv[2]) and d["keeper_pid"] == int(sys.argv[3]) and d["restarts"] == 1, d' \
	"$json" "$new" "$keeper" || lz_fail "status after the restart: $json"
grep -qx "lazyfs_restarts_total 1" <<<"$("$CTL" "$MP" metrics)" || lz_fail "metrics do not count the restart"
cat <&7 >"$W/held.2"
cat "$W/held.1" "$W/held.2" | cmp - "$T/big.bin" || lz_fail "the file held open read wrong after the restart"
[[ $(stat -c %i "$MP/tools/u1.bin") == "$ino_under" ]] || lz_fail "an underlay file changed node id"
lz_ok "underlay node ids are kept across the crash"
touch "$W/go"
wait "$cwd_pid" || true
[[ $(head -n 1 "$W/cwd.out" | cut -d' ' -f1) == $(grep "/u1.bin$" "$W/under.sums" | cut -d' ' -f1) &&
	$(sed -n 2p "$W/cwd.out") == 30 ]] || lz_fail "relative paths in a working directory inside the mount: $(cat "$W/cwd.out")"
revived=$("$CTL" "$MP" metrics | awk '$1 == "lazyfs_revived_nodes_total" { print $2 }')
((revived >= 1)) || lz_fail "lazyfs_revived_nodes_total is '$revived'"
lz_ok "a process working inside the mount reads and lists relative paths after the crash ($revived node ids revived)"
lz_ok "status names worker $new and keeper $keeper with 1 restart, the metrics count it; a file held open reads on"

# After a live upgrade the keeper restarts the upgraded binary.
cp "$LAZYFS_BIN" "$W/lazyfs-upgraded"
"$CTL" "$MP" upgrade "$W/lazyfs-upgraded" >/dev/null || lz_fail "upgrade under the keeper failed"
up=$(restarted "$MP" "$new")
LZ_PIDS+=("$up")
kill -KILL "$up"
again=$(restarted "$MP" "$up")
LZ_PIDS+=("$again")
[[ $(readlink "/proc/$again/exe") == "$W/lazyfs-upgraded" ]] || lz_fail "the restart ran $(readlink "/proc/$again/exe")"
cmp -s "$MP/app/data/t3.bin" "$T/data/t3.bin" || lz_fail "no serving after the upgrade and the crash"
lz_ok "live upgrade to a new binary, then SIGKILL: the keeper restarts the new binary (pid $again)"

# A crash loop: past restart_limit, the mount fails open.
start_readers 2
kill -KILL "$again"
last=$(restarted "$MP" "$again")
rm -f "$W/stop"
kill -KILL "$last"
rc=0
timeout 20 tail --pid="$keeper" -f /dev/null || lz_fail "the keeper did not exit after the crash loop"
wait "$keeper" || rc=$?
touch "$W/stop"
for r in "${READERS[@]}"; do wait "$r" || true; done
((rc != 0)) || lz_fail "the keeper exited 0 after failing open"
lz_is_lazyfs_mount "$MP" && lz_fail "still mounted after the crash loop"
[[ $(cat "$MP/underneath") == "the directory underneath" ]] || lz_fail "the mountpoint does not show what was underneath"
if grep -h "Transport endpoint" "$W"/err.* 2>/dev/null; then lz_fail "a reader saw ENOTCONN"; fi
grep -q "failing open" "$LZ_LAST_LOG" || lz_fail "no log line says why it failed open"
lz_ok "4 crashes with restart_limit=3: failed open (keeper exit $rc), the directory underneath shows, no ENOTCONN"
exec 7<&-
for ((i = 0; i < 50; i++)); do [[ -z $(losetup -j "$IMG/app.sqfs") ]] && break; sleep 0.1; done
[[ -z $(losetup -j "$IMG/app.sqfs") ]] || lz_fail "a loop device is left: $(losetup -j "$IMG/app.sqfs")"
pgrep -f -- "$MP" >/dev/null && lz_fail "processes left: $(pgrep -af -- "$MP")"
suffix=$(basename "$LZ_TMP" | sed 's/.*\.//')
left=$(find /run/lazyfs /sys/fs/bpf/lazyfs -maxdepth 1 -name "*$suffix*" 2>/dev/null || true)
[[ -z $left ]] || lz_fail "left behind: $left"
lz_ok "the held file closed: no loop device, process, control socket or BPF pin left"

# --- node ids of images after a crash ----------------------------------------
# The kernel may still hold the dead worker's node ids: they must never come to
# name another file. twin-a and twin-b have the same layout (the same inode
# numbers); twin-a is the first image before the crash, twin-b the first after.
MP2=$LZ_TMP/mnt2
mkdir -p "$MP2"
lz_mount "$MP2" -o "backend=$BACKEND,images=$IMG,bpf=off"
[[ $(cat "$MP2/twin-a/data/f") == "twin a" ]] || lz_fail "twin-a's file read wrong"
ino_a=$(stat -c %i "$MP2/twin-a/data/f")
kill -KILL "$LZ_LAST_PID"
new2=$(restarted "$MP2" "$LZ_LAST_PID")
[[ $(cat "$MP2/twin-b/data/f") == "twin b" ]] || lz_fail "twin-b's file read wrong"
ino_b=$(stat -c %i "$MP2/twin-b/data/f")
[[ $ino_b != "$ino_a" ]] || lz_fail "twin-b's file got node id $ino_b, which the dead worker gave twin-a's"
[[ $(cat "$MP2/twin-a/data/f") == "twin a" ]] || lz_fail "twin-a's file read wrong after the restart"
[[ $(stat -c %i "$MP2/twin-a/data/f") == "$ino_a" ]] || lz_fail "twin-a's file changed node id"
lz_ok "after a crash an image's node ids never name another image's file, and its own keep theirs"
lz_umount "$MP2" "$new2"

# --- inside images after a crash ---------------------------------------------
# A process working inside an image (relative paths), and a file whose reads
# the daemon serves itself (the squashfuse backend, open_mode=cached), go on
# across the crash: the image is resolved again and the node ids revived.
t1_sum=$(grep "/t1.bin$" "$W/app.sums" | cut -d' ' -f1)
for mode in backend=squashfuse backend=kernel,open_mode=cached; do
	lz_mount "$MP2" -o "$mode,images=$IMG,bpf=off"
	exec 8<"$MP2/app/big.bin"
	head -c 4096 <&8 >"$W/held.1"
	ino_dir=$(stat -c %i "$MP2/app/data") ino_t1=$(stat -c %i "$MP2/app/data/t1.bin")
	rm -f "$W/go"
	(
		cd "$MP2/app/data" || exit 1
		while [[ ! -e $W/go ]]; do sleep 0.05; done
		{ sha256sum ./t1.bin && ls . | wc -l && stat -c %i . ./t1.bin; } >"$W/cwd.out" 2>&1
	) &
	cwd_pid=$!
	kill -KILL "$LZ_LAST_PID"
	new2=$(restarted "$MP2" "$LZ_LAST_PID")
	touch "$W/go"
	wait "$cwd_pid" || true
	expected=$(printf '%s  ./t1.bin\n30\n%s\n%s' "$t1_sum" "$ino_dir" "$ino_t1")
	[[ $(cat "$W/cwd.out") == "$expected" ]] ||
		lz_fail "$mode: a working directory inside an image after the crash: $(cat "$W/cwd.out")"
	cat <&8 >"$W/held.2"
	exec 8<&-
	cat "$W/held.1" "$W/held.2" | cmp - "$T/big.bin" || lz_fail "$mode: the file held open read wrong"
	revived=$("$CTL" "$MP2" metrics | awk '$1 == "lazyfs_revived_nodes_total" { print $2 }')
	((revived >= 2)) || lz_fail "$mode: lazyfs_revived_nodes_total is '$revived'"
	lz_ok "$mode: a working directory inside an image and a file the daemon reads go on after the crash ($revived node ids revived)"
	lz_umount "$MP2" "$new2"
done

# An image replaced while no worker served: the dead worker's node ids in it
# are not brought back onto the new file (a tree must not mix two images).
cp "$IMG/twin-a.sqfs" "$IMG/swap.sqfs"
lz_mount "$MP2" -o "images=$IMG,bpf=off"
[[ $(cat "$MP2/swap/data/f") == "twin a" ]] || lz_fail "swap read wrong"
rm -f "$W/go"
(
	cd "$MP2/swap/data" || exit 1
	while [[ ! -e $W/go ]]; do sleep 0.05; done
	cat ./f >"$W/swap.out" 2>&1 || true
) &
probe=$!
kill -KILL "$LZ_LAST_PID"
cp "$IMG/twin-b.sqfs" "$IMG/swap.new" && mv -f "$IMG/swap.new" "$IMG/swap.sqfs"
new2=$(restarted "$MP2" "$LZ_LAST_PID")
touch "$W/go"
wait "$probe" || true
grep -q "Stale file handle" "$W/swap.out" || lz_fail "a working directory in a replaced image: $(cat "$W/swap.out")"
[[ $(cat "$MP2/swap/data/f") == "twin b" ]] || lz_fail "the replaced image read wrong by its path"
lz_ok "an image replaced while the worker was dead: the old node ids get ESTALE, the path reads the new image"
lz_umount "$MP2" "$new2"
rm -f "$IMG/swap.sqfs"

# --- map= after a crash --------------------------------------------------------
# Working directories in a directory the map synthesizes (opt), in an underlay
# directory on a mapped path (tools), and inside a mapped image go on.
MP3=$LZ_TMP/mnt3
mkdir -p "$MP3/tools"
echo "under tools" >"$MP3/tools/note"
printf 'opt/app %s\ntools/twin %s\n' "$IMG/app.sqfs" "$IMG/twin-a.sqfs" >"$LZ_TMP/map"
lz_mount "$MP3" -o "map=$LZ_TMP/map,bpf=off"
ino_opt=$(stat -c %i "$MP3/opt")
rm -f "$W/go"
cwd_probe() { # DIR OUT COMMAND...: COMMAND run in DIR once told to go
	local dir=$1 out=$2
	shift 2
	(
		cd "$dir" || exit 1
		while [[ ! -e $W/go ]]; do sleep 0.05; done
		"$@" >"$out" 2>&1
	) &
	PROBES+=("$!")
}
PROBES=()
cwd_probe "$MP3/opt" "$W/opt.out" sh -c 'ls . && stat -c %i .'
cwd_probe "$MP3/tools" "$W/tools.out" sh -c 'cat note twin/data/f'
cwd_probe "$MP3/opt/app/data" "$W/app.out" sha256sum ./t1.bin
kill -KILL "$LZ_LAST_PID"
new3=$(restarted "$MP3" "$LZ_LAST_PID")
touch "$W/go"
for p in "${PROBES[@]}"; do wait "$p" || true; done
[[ $(cat "$W/opt.out") == "$(printf 'app\n%s' "$ino_opt")" ]] ||
	lz_fail "map=: a working directory the map synthesizes: $(cat "$W/opt.out")"
[[ $(cat "$W/tools.out") == "$(printf 'under tools\ntwin a')" ]] ||
	lz_fail "map=: a working directory on a mapped underlay path: $(cat "$W/tools.out")"
[[ $(cat "$W/app.out") == "$t1_sum  ./t1.bin" ]] ||
	lz_fail "map=: a working directory inside a mapped image: $(cat "$W/app.out")"
lz_ok "map=: working directories in a synthesized directory, a mapped underlay one and a mapped image go on after the crash"
lz_umount "$MP3" "$new3"

# --- remote_mode=objects after a crash -----------------------------------------
# A working directory in a remote directory and a remote object the daemon
# reads itself (open_mode=cached) go on: their paths are in the record.
if command -v rclone >/dev/null; then
	R=$LZ_TMP/remote MP4=$LZ_TMP/mnt4
	mkdir -p "$R/clips" "$MP4"
	for i in 1 2 3; do head -c $((i * 70001)) /dev/urandom >"$R/clips/c$i.bin"; done
	head -c $((4 << 20)) /dev/urandom >"$R/clips/long.bin"
	lz_serve_http "$R"
	lz_mount "$MP4" -o "remote=:http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/':,remote_mode=objects,open_mode=cached,cache=$LZ_TMP/cache4,bpf=off"
	exec 8<"$MP4/clips/long.bin"
	head -c 4096 <&8 >"$W/held.1"
	rm -f "$W/go"
	(
		cd "$MP4/clips" || exit 1
		while [[ ! -e $W/go ]]; do sleep 0.05; done
		{ ls . && sha256sum ./c2.bin; } >"$W/remote.out" 2>&1 || true
	) &
	probe=$!
	kill -KILL "$LZ_LAST_PID"
	new4=$(restarted "$MP4" "$LZ_LAST_PID")
	touch "$W/go"
	wait "$probe" || true
	expected=$(printf 'c1.bin\nc2.bin\nc3.bin\nlong.bin\n%s  ./c2.bin' "$(sha256sum <"$R/clips/c2.bin" | cut -d' ' -f1)")
	[[ $(cat "$W/remote.out") == "$expected" ]] ||
		lz_fail "a working directory in a remote directory after the crash: $(cat "$W/remote.out")"
	cat <&8 >"$W/held.2"
	exec 8<&-
	cat "$W/held.1" "$W/held.2" | cmp - "$R/clips/long.bin" || lz_fail "the remote object held open read wrong"
	lz_ok "remote_mode=objects: a working directory in a remote directory and an object the daemon reads go on after the crash"
	lz_umount "$MP4" "$new4"
fi

# --- mount -t fuse.lazyfs: the keeper runs in the background -----------------
command -v mount.fuse3 >/dev/null || lz_skip "mount.fuse3 missing: the mount(8) case is not tested"
NAME=lazyfs-test-$$
LZ_REMOVE+=("/usr/local/bin/$NAME")
ln -s "$LAZYFS_BIN" "/usr/local/bin/$NAME"
cd "$LZ_TMP"
LZ_MOUNTS+=("$MP")
mount -t fuse."$NAME" lazyfs "$MP" -o "images=$IMG,cache=$LZ_TMP/cache2" || lz_fail "mount -t fuse.$NAME failed"
before=$(mount_of "$MP")
pid=$(serving "$MP")
keeper=$(ps -o ppid= -p "$pid" | tr -d ' ')
LZ_PIDS+=("$pid" "$keeper")
[[ -n $before && -n $pid ]] || lz_fail "mount -t fuse.$NAME does not serve"
start_readers 2
kill -KILL "$pid"
new=$(restarted "$MP" "$pid")
LZ_PIDS+=("$new")
[[ $(mount_of "$MP") == "$before" ]] || lz_fail "the mount changed"
rm -f "$W"/runs.*
lz_wait_readers "$W" 2
stop_readers
lz_ok "mount -t fuse.$NAME: SIGKILL of worker $pid, worker $new serves the same mount, readers saw no error"
umount "$MP"
timeout 10 tail --pid="$keeper" -f /dev/null || lz_fail "the keeper did not exit after umount"
pgrep -f -- "$MP" >/dev/null && lz_fail "processes left after umount: $(pgrep -af -- "$MP")"
lz_ok "umount: the worker and the keeper exit"
lz_done
