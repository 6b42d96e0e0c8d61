#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Faults, each with its documented behaviour:
# - the keeper and its worker killed with SIGKILL: the mount answers ENOTCONN (a file opened
#   before keeps reading through passthrough), a new lazyfs on it is refused
#   until `umount -l` or `fusermount3 -uz` removes it; then a fresh start on the
#   same mountpoint works (stale control socket and BPF pins are replaced) and
#   after its unmount no loop device, image mount, socket or pin is left;
# - an image file deleted while files in it are open: they keep reading; new
#   lookups fail open to the underlay after a reload or, once closed, after
#   idle expiry (both backends);
# - rclone's rcd child hanging (SIGSTOP): the call times out, the child is
#   killed and restarted, the fetch succeeds; a remote that accepts
#   connections but never answers (its server stopped): an image fetch fails
#   within fetch_timeout, logged, the entry fails open, other cached images
#   serve, and the image comes back once the remote answers;
# - loop devices unavailable (a private /dev in a mount namespace): without
#   /dev/loop-control backend=auto uses squashfuse and backend=kernel refuses
#   to start; without /dev/loopN nodes each image fails open, logged once;
# - RLIMIT_NOFILE too low: lazyfs fails at start with one line, or serves and
#   answers EMFILE, and exits cleanly on unmount (no crash).
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt S=$LZ_TMP/src
mkdir -p "$IMG" "$U/plain" "$MP" "$S/d"
head -c 300000 /dev/urandom | base64 > "$S/d/big"
echo hello > "$S/f"
echo "plain" > "$U/plain/file"
for name in a b del gone; do
	mksquashfs "$S" "$IMG/$name.sqfs" -noappend -quiet >/dev/null
	mkdir -p "$U/$name"
	echo "underlay of $name" > "$U/$name/who"
done
suffix=${LZ_TMP##*.} # survives the escaping of socket and pin names

# fd_matches FD FILE: the open descriptor FD (inherited, not reopened) reads FILE's bytes.
fd_matches() {
	python3 -c 'import os, sys
fd, want = int(sys.argv[1]), open(sys.argv[2], "rb").read()
sys.exit(os.pread(fd, len(want) + 1, 0) != want)' "$1" "$2"
}
leftovers() {
	find /run/lazyfs /sys/fs/bpf/lazyfs -maxdepth 1 -name "*$suffix*" 2>/dev/null || true
}
# A name never looked up needs the daemon: cached attributes may still answer stat MP.
enotconn() {
	[[ $(stat "$MP/probe-$RANDOM" 2>&1) == *"Transport endpoint is not connected"* ]]
}

# --- SIGKILL ---------------------------------------------------------------
opts="backend=kernel,underlay=$U,images=$IMG"
for cleaner in "umount -l" "fusermount3 -uz"; do
	lz_mount "$MP" -d -o "$opts"
	pid=$LZ_LAST_PID
	[[ $(cat "$MP/a/f" "$MP/b/f") == $'hello\nhello' ]] || lz_fail "images before the kill"
	exec {held}<"$MP/a/d/big"
	# The keeper and its worker both (a worker alone is restarted: t_restart.sh).
	kill -KILL "$LZ_KEEPER_PID" "$pid"
	wait_for 10 enotconn || lz_fail "after SIGKILL: $(stat "$MP/probe" 2>&1)"
	if cat "$MP/plain/file" 2>/dev/null; then lz_fail "a killed daemon's mount served a file"; fi
	fd_matches "$held" "$S/d/big" || lz_fail "a file opened before the kill stopped reading"
	exec {held}<&-
	if "$LAZYFS_BIN" -f -o "$opts,cache=$LZ_TMP/cache" "$MP" 2>"$LZ_TMP/err"; then
		lz_fail "lazyfs started over a dead mount"
	fi
	grep -q "already a lazyfs mount" "$LZ_TMP/err" || lz_fail "over a dead mount: $(cat "$LZ_TMP/err")"
	$cleaner "$MP" || lz_fail "$cleaner after SIGKILL"
	wait_for 10 eval '[[ $(lz_image_loops "$IMG") -eq 0 ]]' ||
		lz_fail "$cleaner: loop devices left: $(losetup -a)"
	lz_ok "SIGKILL of keeper and worker: ENOTCONN, an open file keeps reading, a restart is refused until $cleaner; then no loop device"

	lz_mount "$MP" -d -o "$opts"
	[[ $(cat "$MP/a/f") == hello && $(cat "$MP/plain/file") == plain ]] || lz_fail "after the restart"
	"$CTL" "$MP" status >/dev/null || lz_fail "lazyfsctl after a restart over a stale socket"
	lz_umount "$MP"
	[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "loop devices left: $(losetup -a)"
	[[ $(lz_visible_image_mounts "$IMG") -eq 0 ]] || lz_fail "an image mount is left"
	[[ -z $(leftovers) ]] || lz_fail "left behind: $(leftovers)"
	lz_ok "a fresh start on the same mountpoint serves (stale socket and pins replaced); its unmount leaves nothing"
done

# --- an image deleted while open ----------------------------------------------
for backend in kernel squashfuse; do
	mksquashfs "$S" "$IMG/del.sqfs" -noappend -quiet >/dev/null
	mksquashfs "$S" "$IMG/gone.sqfs" -noappend -quiet >/dev/null
	lz_mount "$MP" -d -o "backend=$backend,underlay=$U,images=$IMG,idle_timeout=1"
	pid=$LZ_LAST_PID
	exec {held}<"$MP/del/d/big"
	rm "$IMG/del.sqfs"
	fd_matches "$held" "$S/d/big" || lz_fail "$backend: an open file of a deleted image"
	[[ $(cat "$MP/del/f") == hello ]] || lz_fail "$backend: the deleted image before a reload"
	kill -HUP "$pid"
	wait_for 10 eval '[[ $(cat "$MP/del/who" 2>/dev/null) == "underlay of del" ]]' ||
		lz_fail "$backend: after a reload the deleted image's entry is not the underlay's"
	[[ ! -e $MP/del/f ]] || lz_fail "$backend: the deleted image is still looked up"
	fd_matches "$held" "$S/d/big" || lz_fail "$backend: the open file lost its bytes after the reload"
	exec {held}<&-
	lz_ok "$backend: deleted while open: the open file reads on; after a reload new lookups get the underlay"

	exec {held}<"$MP/gone/d/big"
	rm "$IMG/gone.sqfs"
	fd_matches "$held" "$S/d/big" || lz_fail "$backend: an open file of a deleted image"
	exec {held}<&-
	wait_for 15 eval '[[ $(cat "$MP/gone/who" 2>/dev/null) == "underlay of gone" ]]' ||
		lz_fail "$backend: the deleted image did not expire"
	kill -0 "$pid" || lz_fail "$backend: the daemon died"
	lz_ok "$backend: deleted, then closed: after idle expiry new lookups get the underlay"
	lz_umount "$MP"
	[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "$backend: loop devices left"
done

# --- rclone hanging -------------------------------------------------------------
if command -v rclone >/dev/null; then
	export RCLONE_CONFIG=/dev/null
	SRV=$LZ_TMP/srv
	mkdir -p "$SRV/objs" "$SRV/images" "$U/tools"
	for i in 1 2 3; do echo "object $i" > "$SRV/objs/o$i"; done
	mksquashfs "$S" "$SRV/images/tools.sqfs" -noappend -quiet >/dev/null
	mksquashfs "$S" "$SRV/images/other.sqfs" -noappend -quiet >/dev/null
	echo "underlay of tools" > "$U/tools/who"
	lz_serve_http "$SRV"
	url="http://127.0.0.1:$LZ_HTTP_PORT"

	lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='$url/objs/':,remote_mode=objects,cache=$LZ_TMP/c1,fetch_timeout=2"
	log=$LZ_LAST_LOG
	[[ $(cat "$MP/o1") == "object 1" ]] || lz_fail "o1"
	rcd=$(sed -n 's/.*rclone rcd (pid \([0-9]*\)).*/\1/p' "$log" | tail -n1)
	[[ -n $rcd ]] || lz_fail "no rcd pid in the log"
	pass1=$(tr '\0' '\n' <"/proc/$rcd/environ" | sed -n 's/^RCLONE_RC_PASS=//p')
	[[ -n $pass1 ]] || lz_fail "no credentials in the rcd's environment"
	kill -STOP "$rcd"
	start=$SECONDS
	[[ $(timeout 30 cat "$MP/o2") == "object 2" ]] || lz_fail "a fetch through a hung rcd"
	((SECONDS - start <= 12)) || lz_fail "the hung rcd held the fetch $((SECONDS - start)) s"
	grep -q "restarting rclone rcd (pid $rcd): it stopped answering" "$log" || lz_fail "no log line for the hung rcd"
	wait_for 5 eval '! kill -0 "$rcd" 2>/dev/null' || lz_fail "the hung rcd $rcd was not killed"
	lz_ok "rclone rcd stopped (SIGSTOP): the call times out, the child is killed and restarted, the fetch succeeds ($((SECONDS - start)) s)"
	# Every child has credentials of its own: the dead one's open nothing.
	rcd2=$(sed -n 's/.*rclone rcd (pid \([0-9]*\)).*/\1/p' "$log" | tail -n1)
	[[ -n $rcd2 && $rcd2 != "$rcd" ]] || lz_fail "no new rcd in the log"
	pass_of() { tr '\0' '\n' <"/proc/$1/environ" | sed -n 's/^RCLONE_RC_PASS=//p'; }
	[[ -n $(pass_of "$rcd2") && $(pass_of "$rcd2") != "$pass1" ]] || lz_fail "the new rcd has the old credentials"
	lz_ok "the restarted rcd has credentials of its own"
	lz_umount "$MP"

	lz_mount "$MP" -d -o "underlay=$U,remote=:http\\,url='$url/images/':,cache=$LZ_TMP/c2,fetch_timeout=2,underlay_timeout=1"
	log=$LZ_LAST_LOG
	[[ $(cat "$MP/other/f") == hello ]] || lz_fail "a remote image"
	kill -STOP "$LZ_HTTP_PID"
	start=$(date +%s%N)
	got=$(timeout 60 cat "$MP/tools/who") || lz_fail "the image entry of a silent remote"
	ms=$((($(date +%s%N) - start) / 1000000))
	[[ $got == "underlay of tools" ]] || lz_fail "silent remote: [$got]"
	((ms <= 2000 * 3 + 3000)) || lz_fail "a silent remote held the lookup $ms ms"
	grep -q "fetch of 'tools.sqfs' failed" "$log" || lz_fail "no log line for the failed image fetch"
	[[ $(cat "$MP/other/f") == hello ]] || lz_fail "a cached image while the remote is silent"
	up=$("$(dirname "$LAZYFS_BIN")/lazyfsctl" "$MP" metrics | awk '$1 == "lazyfs_remote_up" {print $2}')
	[[ $up == 0 ]] || lz_fail "lazyfs_remote_up is [$up] while the remote is silent"
	kill -CONT "$LZ_HTTP_PID"
	wait_for 15 eval '[[ $(cat "$MP/tools/f" 2>/dev/null) == hello ]]' || lz_fail "the image after the remote answered again"
	up=$("$(dirname "$LAZYFS_BIN")/lazyfsctl" "$MP" metrics | awk '$1 == "lazyfs_remote_up" {print $2}')
	[[ $up == 1 ]] || lz_fail "lazyfs_remote_up is [$up] after the remote answered again"
	lz_ok "a remote that accepts but never answers: the image fetch fails in $ms ms (fetch_timeout=2), logged, the entry fails open; cached images serve; it recovers"
	lz_umount "$MP"
fi

# --- loop devices unavailable ---------------------------------------------------
# lazyfs runs in a mount namespace of its own whose /dev is a tmpfs with only the
# nodes it needs: without loop-control, or with it but without /dev/loopN. The
# machine's loop devices are never taken. The mount lives in that namespace.
# ns_start MODE BACKEND: sets NS_PID once mounted, or returns 1 when lazyfs exited.
ns_start() {
	local mode=$1 backend=$2 i
	NS_LOG=$LZ_TMP/ns.$mode.$backend.log
	unshare -m --propagation private bash -c '
		mode=$1; shift
		mount -t tmpfs -o mode=755 lazyfs-test-dev /dev || exit 3
		mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 &&
			mknod -m 666 /dev/urandom c 1 9 && mknod -m 600 /dev/fuse c 10 229 || exit 3
		if [[ $mode == no-nodes ]]; then mknod -m 600 /dev/loop-control c 10 237 || exit 3; fi
		exec "$@"' sh "$mode" "$LAZYFS_BIN" -f -d \
		-o "backend=$backend,bpf=off,underlay=$U,images=$IMG,cache=$LZ_TMP/nscache" "$MP" 2>"$NS_LOG" &
	NS_PID=$!
	LZ_PIDS+=("$NS_PID")
	for ((i = 0; i < 200; i++)); do
		nsenter -t "$NS_PID" -m findmnt -M "$MP" -t fuse.lazyfs >/dev/null 2>&1 && return 0
		kill -0 "$NS_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	lz_fail "lazyfs in a private /dev neither mounted nor exited: $(cat "$NS_LOG")"
}
in_ns() { nsenter -t "$NS_PID" -m -- "$@"; }
ns_stop() {
	kill -TERM "$NS_PID"
	timeout 10 tail --pid="$NS_PID" -f /dev/null || lz_fail "lazyfs in a namespace did not stop"
	wait "$NS_PID" || lz_fail "lazyfs in a namespace exited with $?"
}
if unshare -m --propagation private true 2>/dev/null; then
	ns_start no-control auto || lz_fail "backend=auto without loop-control: $(cat "$NS_LOG")"
	[[ $(in_ns cat "$MP/a/f") == hello ]] || lz_fail "backend=auto without loop-control: the image"
	grep -q "kernel squashfs unavailable.*squashfuse" "$NS_LOG" || lz_fail "no log line for the fallback"
	ns_stop
	if ns_start no-control kernel; then lz_fail "backend=kernel started without loop-control"; fi
	wait "$NS_PID" && lz_fail "backend=kernel without loop-control exited with 0"
	grep -q "backend=kernel: loop devices .* not available" "$NS_LOG" || lz_fail "backend=kernel: $(cat "$NS_LOG")"
	lz_ok "no /dev/loop-control: backend=auto reads images with squashfuse (logged); backend=kernel refuses to start"

	for backend in auto kernel; do
		ns_start no-nodes "$backend" || lz_fail "$backend without loop nodes: $(cat "$NS_LOG")"
		for i in 1 2 3; do
			[[ $(in_ns cat "$MP/a/f") == hello ]] || lz_fail "$backend: no kernel mount, and the image does not read"
			[[ $(in_ns cat "$MP/plain/file") == plain ]] || lz_fail "$backend: the underlay"
		done
		[[ $(grep -c "image a: kernel mount: /dev/loop[0-9]*: no such device node; the daemon reads its files for now" "$NS_LOG") -eq 1 ]] ||
			lz_fail "$backend: expected one log line: $(grep -v debug "$NS_LOG")"
		[[ -z $(losetup -j "$IMG/a.sqfs") ]] || lz_fail "$backend: a loop device without nodes"
		if [[ $backend == kernel ]]; then
			# The cause passes (the nodes appear): the mount is tried again.
			in_ns bash -c 'for i in $(seq 0 255); do mknod -m 600 /dev/loop$i b 7 $i; done'
			wait_for 40 eval '[[ $(in_ns cat "$MP/a/f" 2>/dev/null) == hello && -n $(losetup -j "$IMG/a.sqfs") ]]' ||
				lz_fail "the kernel mount was not tried again once loop devices could be set up: $(grep -v debug "$NS_LOG" | tail -3)"
		fi
		ns_stop
	done
	lz_ok "loop devices that cannot be set up: the daemon reads the image's files itself, logged once (auto and kernel); the kernel mount is tried again later"
else
	echo "# no mount namespaces here: loop device failures not tested"
fi

# --- RLIMIT_NOFILE --------------------------------------------------------------
mkdir -p "$U/many"
for i in $(seq 1 200); do echo "$i" > "$U/many/f$i"; done
many=()
for i in $(seq 1 200); do many+=("$MP/many/f$i"); done
mounted_or_exited() { lz_is_lazyfs_mount "$MP" || ! kill -0 "$pid" 2>/dev/null; }
for n in 4 6 16 64; do
	rc=0
	timeout 120 prlimit --nofile="$n:$n" "$LAZYFS_BIN" -f -o "backend=kernel,underlay=$U,images=$IMG,cache=$LZ_TMP/c$n" "$MP" \
		2>"$LZ_TMP/nofile.$n" &
	pid=$!
	LZ_PIDS+=("$pid")
	wait_for 10 mounted_or_exited || true
	if lz_is_lazyfs_mount "$MP"; then
		# The underlay's files exist: EMFILE is the only error they may give.
		# An image whose loop device could not be opened fails open (ENOENT).
		# Their names come from the underlay: a glob over the mount would list
		# the directory through the daemon, and at EMFILE find nothing.
		errs=$({ timeout 60 cat "${many[@]}" 2>&1 >/dev/null || true; } | grep -c "Too many open files" || true)
		others=$({ timeout 60 cat "${many[@]}" 2>&1 >/dev/null || true; } | grep -v "Too many open files" || true)
		[[ -z $others ]] || lz_fail "nofile=$n: errors other than EMFILE: $others"
		others=$({ timeout 60 cat "$MP/a/f" "$MP/b/d/big" 2>&1 >/dev/null || true; } |
			grep -v "Too many open files\|No such file or directory" || true)
		[[ -z $others ]] || lz_fail "nofile=$n: image errors other than EMFILE and ENOENT: $others"
		kill -0 "$pid" || lz_fail "nofile=$n: the daemon died"
		umount "$MP"
		wait "$pid" || rc=$?
		((rc == 0)) || lz_fail "nofile=$n: exit status $rc after unmount: $(tail -n3 "$LZ_TMP/nofile.$n")"
		echo "nofile=$n: served, $errs reads failed with EMFILE, clean exit"
	else
		wait "$pid" || rc=$?
		((rc == 1 || rc == 127)) || lz_fail "nofile=$n: not mounted, exit status $rc: $(cat "$LZ_TMP/nofile.$n")"
		[[ $(grep -vc "^$" "$LZ_TMP/nofile.$n") -le 3 ]] || lz_fail "nofile=$n: more than a line or three: $(cat "$LZ_TMP/nofile.$n")"
		echo "nofile=$n: refused at start (exit $rc): $(tail -n1 "$LZ_TMP/nofile.$n")"
	fi
done
lz_ok "RLIMIT_NOFILE too low: fails at start with one line, or serves with EMFILE and exits 0 on unmount"
[[ $(lz_image_loops "$IMG") -eq 0 ]] || lz_fail "loop devices left: $(losetup -a)"
lz_done
