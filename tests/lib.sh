# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# Shared by the integration tests: temporary trees, lazyfs mounts that are
# always torn down (even when a test fails), and small assertions.
# Exit codes follow automake: 0 pass, 1 fail, 77 skip.
set -euo pipefail

LAZYFS_BIN=${LAZYFS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lazyfs}
TESTS_SRCDIR=${TESTS_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
# shellcheck source=tests/fusetrace.sh
. "$TESTS_SRCDIR/fusetrace.sh"

# Image tests run once per backend; the *_squashfuse.sh wrappers set this.
BACKEND=${BACKEND:-kernel}
LZ_TMP=''
LZ_PIDS=()
LZ_MOUNTS=()
LZ_REMOVE=() # files outside LZ_TMP a test created
declare -A LZ_KEEPER_OF # mountpoint -> the keeper holding it
LZ_CHECKS=0

# lz_cleanup [STATUS]: a test's own EXIT trap may do something first and pass its status.
lz_cleanup() {
	local rc=${1:-$?} mp pid f
	fusetrace_stop 2>/dev/null || true
	for mp in "${LZ_MOUNTS[@]}"; do
		if mountpoint -q -- "$mp" 2>/dev/null; then
			umount -- "$mp" 2>/dev/null || umount -l -- "$mp" 2>/dev/null || true
		fi
	done
	# Only processes this test started.
	for pid in "${LZ_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${LZ_PIDS[@]}"; do
		timeout 5 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	for f in "${LZ_REMOVE[@]}"; do
		rm -f -- "$f"
	done
	lz_tsan_reports || rc=1
	if [[ -n $LZ_TMP && -d $LZ_TMP ]]; then
		rm -rf --one-file-system -- "$LZ_TMP"
	fi
	exit "$rc"
}

lz_init() {
	[[ $EUID -eq 0 ]] || lz_skip "integration tests need root (FUSE passthrough, /dev/fuse)"
	[[ -c /dev/fuse ]] || lz_skip "no /dev/fuse"
	[[ -x $LAZYFS_BIN ]] || lz_fail "no lazyfs binary at $LAZYFS_BIN"
	LZ_TMP=$(mktemp -d /tmp/lazyfs-test.XXXXXX)
	# Searchable (not listable): a remote mount's rclone child runs as _lazyfs and
	# writes into the cache directories the tests keep here.
	chmod 711 "$LZ_TMP"
	trap lz_cleanup EXIT
	trap 'exit 1' INT TERM
	lz_tsan_init
}

# A ThreadSanitizer build (configure --enable-tsan): every instrumented process
# the test starts (daemon, keeper, restarted or upgraded workers, lazyfsctl)
# writes its reports to $LZ_TMP/tsan/report.PID rather than to a stderr the test
# may not read, keeps going after one (a halted worker would be restarted by its
# keeper and the report lost), and lz_cleanup fails the test if any was written.
LZ_TSAN=false
lz_tsan_init() {
	[[ $(ldd "$LAZYFS_BIN" 2>/dev/null) == *libtsan* ]] || return 0
	LZ_TSAN=true
	mkdir -p "$LZ_TMP/tsan"
	export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS }log_path=$LZ_TMP/tsan/report halt_on_error=0 \
suppressions=$TESTS_SRCDIR/tsan.supp second_deadlock_stack=1 history_size=4"
}

# Prints every TSan report written so far and returns 1 if there was any.
lz_tsan_reports() {
	local f found=0
	$LZ_TSAN && [[ -d $LZ_TMP/tsan ]] || return 0
	for f in "$LZ_TMP"/tsan/report*; do
		[[ -s $f ]] || continue
		grep -qE '^(WARNING|ERROR|FATAL): ThreadSanitizer' "$f" || continue
		found=1
		echo "FAIL: ThreadSanitizer reports from pid ${f##*.}:" >&2
		grep '^SUMMARY' "$f" >&2
		head -n 3000 "$f" >&2
	done
	return $found
}

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

lz_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

lz_skip() {
	echo "SKIP: $*" >&2
	exit 77
}

lz_ok() {
	LZ_CHECKS=$((LZ_CHECKS + 1))
	echo "ok $LZ_CHECKS - $*"
}

# lz_check DESCRIPTION COMMAND...: the command must succeed.
lz_check() {
	local what=$1
	shift
	if "$@"; then
		lz_ok "$what"
	else
		lz_fail "$what (command: $*)"
	fi
}

lz_is_lazyfs_mount() {
	local real
	real=$(realpath -- "$1")
	findmnt -n -M "$real" -t fuse.lazyfs >/dev/null 2>&1
}

# lz_mount MOUNTPOINT [lazyfs args...]: starts lazyfs -f (so this test owns
# its PID), waits until the mount serves, and records it for cleanup. Without
# a cache= option it gets one in $LZ_TMP. LZ_LAST_LOG is the daemon's stderr.
# LZ_LAST_PID is the worker (the process that serves: what status calls pid),
# LZ_KEEPER_PID the keeper lazyfs leaves holding the mount (its parent).
lz_mount() {
	local mp=$1 log pid i worker
	shift
	log=$LZ_TMP/lazyfs.${#LZ_PIDS[@]}.log
	# Working sets and the cache stay in the test's own directory.
	[[ " $* " == *cache=* ]] || set -- "$@" -o "cache=$LZ_TMP/cache"
	"$LAZYFS_BIN" -f "$@" "$mp" 2>"$log" &
	pid=$!
	LZ_PIDS+=("$pid")
	LZ_MOUNTS+=("$mp")
	for ((i = 0; i < 200; i++)); do
		if lz_is_lazyfs_mount "$mp"; then
			worker=$(pgrep -P "$pid" | head -n 1 || true)
			LZ_PIDS+=($worker)
			LZ_LAST_PID=${worker:-$pid}
			LZ_KEEPER_PID=$pid
			LZ_KEEPER_OF[$mp]=$pid
			LZ_LAST_LOG=$log
			stat -- "$mp" >/dev/null # waits for FUSE INIT, so its log lines are out
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	lz_fail "lazyfs did not mount $mp"
}

# lz_stacks PID: where each thread of PID is, in the kernel and (with gdb) in
# user space: what a test prints before failing on a process that hangs.
lz_stacks() {
	local t
	for t in /proc/"$1"/task/*; do
		echo "--- thread ${t##*/} $(cat "$t/comm" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
		cat "$t/stack" 2>/dev/null | head -n 12
	done
	command -v gdb >/dev/null &&
		timeout 30 gdb -p "$1" -batch -ex "thread apply all bt 12" 2>/dev/null | grep -E '^(Thread|#)' | head -n 200
	return 0
}

# lz_umount MOUNTPOINT [PID]: unmounts and waits for the worker PID that
# served it and for its keeper.
lz_umount() {
	local mp=$1 pid=${2:-${LZ_LAST_PID:-}} keeper=${LZ_KEEPER_OF[$1]:-}
	umount -- "$mp"
	if [[ -n $pid ]]; then
		timeout 10 tail --pid="$pid" -f /dev/null || {
			lz_stacks "$pid" >&2
			lz_fail "lazyfs $pid did not exit after umount"
		}
	fi
	if [[ -n $keeper ]]; then
		timeout 10 tail --pid="$keeper" -f /dev/null || lz_fail "the keeper $keeper did not exit after umount"
	fi
}

# lz_serve_http DIR [RCLONE ARGS]: serves DIR with `rclone serve http` on 127.0.0.1 (no
# directory cache, so files added later show), waits until it answers, and
# sets LZ_HTTP_PORT and LZ_HTTP_PID (cleaned up with the test).
lz_serve_http() {
	local i dir=$1
	shift
	LZ_HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	RCLONE_CONFIG=/dev/null rclone serve http "$dir" --addr "127.0.0.1:$LZ_HTTP_PORT" \
		--dir-cache-time 0s "$@" 2>"$LZ_TMP/serve.log" &
	LZ_HTTP_PID=$!
	LZ_PIDS+=("$LZ_HTTP_PID")
	for ((i = 0; i < 100; i++)); do
		curl -sf "http://127.0.0.1:$LZ_HTTP_PORT/" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	lz_fail "rclone serve http did not start: $(cat "$LZ_TMP/serve.log")"
}

# Number of mounts visible in this namespace of images stored under DIR
# (squashfs on a loop device backed by a file there). Other processes'
# mounts on the machine do not count.
lz_visible_image_mounts() {
	local dir=$1 n=0 src back
	while read -r src; do
		back=$(losetup -n -O BACK-FILE "$src" 2>/dev/null) || continue
		[[ $back == "$dir"/* ]] && n=$((n + 1))
	done < <(awk '$0 ~ / - squashfs / { split($0, a, " - "); split(a[2], b, " "); print b[2] }' /proc/self/mountinfo)
	echo "$n"
}

# Number of loop devices backed by files under DIR (other processes' do not count).
lz_image_loops() {
	losetup -n -l -O BACK-FILE 2>/dev/null | awk -v d="$1/" 'index($0, d) == 1 { n++ } END { print n + 0 }'
}

# Evicts FILE's pages from the page cache, so the next read is cold.
lz_drop_file_cache() {
	python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)  # dirty pages cannot be dropped
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$1"
}

# Readers that go on while a test replaces the daemon under them: each counts
# its finished runs in W/runs.N and adds what failed to W/err.N, until W/stop.
# lz_checksum_reader W N SUMS [DIR]: checks SUMS (its paths relative to DIR).
lz_checksum_reader() {
	local w=$1 n=$2 sums=$3 dir=${4:-.} runs=0
	while [[ ! -e $w/stop ]]; do
		(cd "$dir" && sha256sum --quiet -c "$sums") >"$w/out.$n" 2>&1 ||
			echo "run $runs: $(head -c 300 "$w/out.$n")" >>"$w/err.$n"
		runs=$((runs + 1))
		echo "$runs" >"$w/runs.$n"
	done
}

# lz_wait_readers W N: until readers 0..N-1 each finished a run (60 s at most).
lz_wait_readers() {
	local n i
	for ((n = 0; n < $2; n++)); do
		for ((i = 0; i < 600; i++)); do
			[[ -s $1/runs.$n ]] && break
			sleep 0.1
		done
		[[ -s $1/runs.$n ]] || lz_fail "reader $n never finished a run: $(head -c 500 "$1/err.$n" 2>/dev/null)"
	done
}

lz_done() {
	echo "$(basename "$0"): $LZ_CHECKS checks passed"
}
