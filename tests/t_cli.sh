#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Command line: bad input gets one clear line and a non-zero exit with no
# stray mount; help, version, daemon mode and signals behave.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init

U=$LZ_TMP/underlay MP=$LZ_TMP/mnt
mkdir -p "$U/sub" "$MP"
echo underlay > "$U/file"
echo mine > "$MP/own"
: > "$LZ_TMP/plainfile"

# expect_error DESCRIPTION PATTERN ARGS...: lazyfs must exit non-zero with
# exactly one line on stderr matching PATTERN, and leave no mount behind.
expect_error() {
	local what=$1 pattern=$2 out rc=0 mounts_before
	shift 2
	# Mounts under this test's directory only: other tests may mount meanwhile.
	mounts_before=$(grep -c -F "$LZ_TMP" /proc/self/mountinfo || true)
	out=$(timeout 10 "$LAZYFS_BIN" "$@" 2>&1 >/dev/null) || rc=$?
	[[ $rc -ne 0 && $rc -ne 124 ]] || lz_fail "$what: exit status $rc, output: $out"
	[[ $(printf '%s\n' "$out" | grep -c .) -eq 1 ]] || lz_fail "$what: expected one line, got: $out"
	grep -Eq -- "$pattern" <<<"$out" || lz_fail "$what: '$out' does not match /$pattern/"
	[[ $(grep -c -F "$LZ_TMP" /proc/self/mountinfo || true) -eq $mounts_before ]] || lz_fail "$what: a mount was left behind"
	lz_ok "$what: $out"
}

expect_error "no mountpoint" "missing MOUNTPOINT"
expect_error "missing mountpoint" "No such file" -f "$LZ_TMP/nowhere"
expect_error "mountpoint is a file" "not a directory" -f "$LZ_TMP/plainfile"
expect_error "three positional arguments" "unexpected argument" -f a b "$MP"
expect_error "missing underlay" "underlay .*No such file" -f -o underlay="$LZ_TMP/none" "$MP"
expect_error "underlay is a file" "underlay .*Not a directory" -f -o underlay="$LZ_TMP/plainfile" "$MP"
expect_error "unknown option" "unknown option" -f -o underlay="$U",no_such_option "$MP"
expect_error "bad bpf mode" "bpf: 'maybe' is not auto, on or off" -f -o underlay="$U",bpf=maybe "$MP"
expect_error "bad remote" "remote: 'nocolon' is not REMOTE:PATH" -f -o underlay="$U",remote=nocolon "$MP"
# The rclone child of a root daemon runs as rclone_user (_lazyfs), never root, and must
# reach the cache; a named remote's config is handed to it, not read from root's home.
if command -v rclone >/dev/null; then
	unset RCLONE_CONFIG
	web="remote=:http\\,url='http://127.0.0.1:9/':"
	expect_error "rclone_user missing" "no user 'lz-nosuchuser' to run rclone as: create it" \
		-f -o "underlay=$U,$web,cache=$LZ_TMP/c,rclone_user=lz-nosuchuser" "$MP"
	expect_error "rclone_user root" "rclone must not run as root" \
		-f -o "underlay=$U,$web,cache=$LZ_TMP/c,rclone_user=root" "$MP"
	mkdir -m 700 "$LZ_TMP/closed"
	expect_error "cache the rclone user cannot reach" "cannot reach it: .*/closed is mode 0700" \
		-f -o "underlay=$U,$web,cache=$LZ_TMP/closed/c,rclone_user=nobody" "$MP"
	expect_error "named remote without a config file" "remote 'media:' names a remote of rclone's config: name its file with -o rclone_config=FILE" \
		-f -o "underlay=$U,remote=media:clips,cache=$LZ_TMP/c,rclone_user=nobody" "$MP"
fi
expect_error "metrics on a public address" "metrics: 0.0.0.0:9100 is not a loopback address: .*add -o metrics_remote" \
	-f -o "underlay=$U,metrics=0.0.0.0:9100" "$MP"
expect_error "malformed metrics" "metrics: '127.0.0.1:x' is not ADDR:PORT" -f -o "underlay=$U,metrics=127.0.0.1:x" "$MP"
# libfuse's own options are checked before anything is opened: no cache directory made.
expect_error "unknown option before the cache" "unknown option" \
	-f -o "underlay=$U,no_such_option,remote=:http\\,url=http://127.0.0.1:9/:,cache=$LZ_TMP/early-cache" "$MP"
[[ ! -e $LZ_TMP/early-cache ]] || lz_fail "an unknown option was refused only after the cache was made"
# bpf=on without the privilege says which one, as an unprivileged user would see it.
if "$LAZYFS_BIN" --version | grep -q "; bpf,"; then
	mkdir -m 777 "$LZ_TMP/nb"
	chmod 711 "$LZ_TMP"
	out=$(setpriv --reuid nobody --regid nogroup --clear-groups "$LAZYFS_BIN" -f -o bpf=on "$LZ_TMP/nb" 2>&1) &&
		lz_fail "bpf=on as nobody started"
	[[ $out == *"bpf=on: the open tracker cannot load: loading it needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN"* &&
		$(grep -c . <<<"$out") -eq 1 ]] || lz_fail "bpf=on as nobody: $out"
	lz_ok "bpf=on as nobody: $out"
fi
expect_error "bad cache_size" "cache_size: '12 parsecs'" -f -o "underlay=$U,cache_size=12 parsecs" "$MP"
expect_error "missing map file" "map .*No such file" -f -o underlay="$U",map="$LZ_TMP/none.map" "$MP"
expect_error "missing images directory" "images .*No such file" -f -o underlay="$U",images="$LZ_TMP/none" "$MP"
expect_error "bad open_mode" "open_mode: 'fast'" -f -o underlay="$U",open_mode=fast "$MP"
expect_error "bad timeout" "underlay_timeout" -f -o underlay="$U",underlay_timeout=-1 "$MP"

out=$("$LAZYFS_BIN" --help) && grep -q "usage:" <<<"$out" || lz_fail "--help"
lz_ok "--help prints usage and exits 0"
out=$("$LAZYFS_BIN" -V) && grep -q "^lazyfs [0-9]" <<<"$out" || lz_fail "-V"
lz_ok "-V prints the version: $out"

# Daemon mode: returns once the mount is ready, exits on unmount.
"$LAZYFS_BIN" -o underlay="$U" "$MP" || lz_fail "daemon mode mount failed"
LZ_MOUNTS+=("$MP")
[[ $(cat "$MP/file") == underlay ]] || lz_fail "daemonized mount does not show the underlay"
lz_ok "daemonized lazyfs serves the mount as soon as it returns"
# Two processes: the keeper, which holds the mount, and the worker, which serves.
daemons=$(pgrep -f -x "$LAZYFS_BIN -o underlay=$U $MP") || lz_fail "no daemon process found"
[[ $(wc -l <<<"$daemons") -eq 2 ]] || lz_fail "not a keeper and a worker: $daemons"
expect_error "second mount on the same point" "already a lazyfs mount" -f -o underlay="$U" "$MP"
[[ $(cat "$MP/file") == underlay ]] || lz_fail "first mount damaged by the second attempt"
lz_ok "first mount still serves after the refused second one"
umount "$MP"
for daemon in $daemons; do
	timeout 10 tail --pid="$daemon" -f /dev/null || lz_fail "daemon $daemon still running after umount"
done
lz_ok "keeper and worker exit on unmount"

# Default underlay: the mountpoint's own previous contents.
lz_mount "$MP"
[[ $(cat "$MP/own") == mine ]] || lz_fail "mount over itself does not show the old contents"
[[ ! -e $MP/file ]] || lz_fail "mount over itself shows another tree"
lz_ok "without underlay= the mountpoint's previous contents show through"
pid=$LZ_KEEPER_PID # the process started; it passes the signal on
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc -eq 0 ]] || lz_fail "SIGTERM: exit status $rc"
! lz_is_lazyfs_mount "$MP" || lz_fail "SIGTERM left the mount behind"
lz_ok "SIGTERM unmounts and exits 0"

lz_mount "$MP" -o underlay="$U"
pid=$LZ_KEEPER_PID
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc -eq 0 ]] && ! lz_is_lazyfs_mount "$MP" || lz_fail "SIGINT: status $rc or mount left"
lz_ok "SIGINT unmounts and exits 0"
lz_done
