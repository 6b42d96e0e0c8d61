# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# Count the FUSE requests the kernel sends to one mount, via the
# fuse:fuse_request_send tracepoint.  Source this file; needs root.
#
#	fusetrace_start MOUNTPOINT	# start counting (sets FUSETRACE_DIR)
#	fusetrace_counts		# "FUSE_OPEN 500" lines, sorted; "LOST n" if events were dropped
#	fusetrace_count FUSE_READ	# one number, 0 if none
#	fusetrace_reset			# forget what was counted so far
#	fusetrace_stop			# tear down; safe to repeat
#
# Each caller gets its own ftrace instance, so concurrent tests neither see
# each other's events nor fight over the global buffer.

FUSETRACE_TRACEFS=/sys/kernel/tracing
FUSETRACE_DIR=${FUSETRACE_DIR:-}
FUSETRACE_BUF_KB=${FUSETRACE_BUF_KB:-8192}

# stat(1) reports st_dev in glibc's encoding; the tracepoint prints the
# kernel's MKDEV(major, minor) = major << 20 | minor.  The two agree only
# while the minor is below 256, which anonymous devices soon exceed.
fusetrace_kdev() {
	local dev major minor
	dev=$(stat -c %d -- "$1") || return 1
	major=$(( ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff) ))
	minor=$(( (dev & 0xff) | ((dev >> 12) & ~0xff) ))
	echo $(( (major << 20) | minor ))
}

fusetrace_start() {
	local mnt=${1:?usage: fusetrace_start MOUNTPOINT} kdev ev
	if [[ -n $FUSETRACE_DIR ]]; then
		echo "fusetrace_start: already tracing ($FUSETRACE_DIR)" >&2
		return 1
	fi
	if ! mountpoint -q -- "$mnt"; then
		echo "fusetrace_start: $mnt is not a mount point" >&2
		return 1
	fi
	# Before tracing starts: this stat itself may send a GETATTR.
	kdev=$(fusetrace_kdev "$mnt") || return 1
	if [[ ! -d $FUSETRACE_TRACEFS/instances ]]; then
		mount -t tracefs nodev "$FUSETRACE_TRACEFS" || return 1
	fi
	FUSETRACE_DIR=$FUSETRACE_TRACEFS/instances/lazyfs-$$-$RANDOM
	ev=$FUSETRACE_DIR/events/fuse/fuse_request_send
	if ! mkdir "$FUSETRACE_DIR" ||
		! echo "$FUSETRACE_BUF_KB" > "$FUSETRACE_DIR/buffer_size_kb" ||
		! echo "connection == $kdev" > "$ev/filter" ||
		! echo 1 > "$ev/enable" ||
		! echo > "$FUSETRACE_DIR/trace" ||
		! echo 1 > "$FUSETRACE_DIR/tracing_on"; then
		echo "fusetrace_start: cannot set up $FUSETRACE_DIR" >&2
		fusetrace_stop
		return 1
	fi
}

fusetrace_counts() {
	local d=${FUSETRACE_DIR:?fusetrace_counts: not started} lost
	# Lines read "... opcode 14 (FUSE_OPEN) len 48"; an opcode the kernel
	# has no name for shows up as a hex number in the parentheses.
	sed -n 's/.* opcode [0-9]* (\([^)]*\)).*/\1/p' "$d/trace" |
		LC_ALL=C sort | uniq -c | awk '{ print $2, $1 }'
	# Overwritten, uncommitted or dropped events would make counts too low.
	lost=$(cat "$d"/per_cpu/cpu*/stats |
		awk -F': *' '$1 ~ /^(overrun|commit overrun|dropped events)$/ { n += $2 } END { print n + 0 }')
	if (( lost > 0 )); then
		echo "LOST $lost"
	fi
}

fusetrace_count() {
	local op=${1:?usage: fusetrace_count OPNAME}
	fusetrace_counts | awk -v op="$op" '$1 == op { n = $2 } END { print n + 0 }'
}

fusetrace_reset() {
	echo > "${FUSETRACE_DIR:?fusetrace_reset: not started}/trace"
}

fusetrace_stop() {
	local d=$FUSETRACE_DIR
	FUSETRACE_DIR=
	[[ -n $d && -d $d ]] || return 0
	echo 0 > "$d/tracing_on"
	echo 0 > "$d/events/fuse/fuse_request_send/enable"
	rmdir "$d"
}
