#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# systemd integration: the service template as this build installs it and the
# example mount unit pass `systemd-analyze verify` without a warning, the
# template's Type= matches the daemon (notify only with libsystemd), and lazyfs
# (its keeper) tells a Type=notify supervisor READY=1 only once its mount serves.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
SRC=$TESTS_SRCDIR/../scripts/systemd
command -v systemd-analyze >/dev/null || lz_skip "systemd-analyze missing"

U=$LZ_TMP/under MP=$LZ_TMP/mnt V=$LZ_TMP/units
mkdir -p "$U" "$MP" "$V"
echo served >"$U/file"

# The template as make built it (what make install installs), for one
# instance, starting this build's daemon instead of the installed one.
BUILT=$(dirname "$LAZYFS_BIN")/scripts/systemd/lazyfs@.service
[[ -f $BUILT ]] || lz_fail "no unit built at $BUILT"
! grep -nE '@(NOTIFY|FORKING|sbindir|bindir)@' "$BUILT" || lz_fail "a template marker is left in $BUILT"
grep -Eq '^ExecStart=/[^ ]*/sbin/lazyfs ' "$BUILT" || lz_fail "ExecStart does not name sbin/lazyfs: $(grep ^ExecStart "$BUILT")"
if "$LAZYFS_BIN" --version | grep -q "no systemd notify"; then
	want='Type=forking' exec_start="ExecStart=$LAZYFS_BIN -o"
else
	want='Type=notify' exec_start="ExecStart=$LAZYFS_BIN -f -o"
fi
[[ $(grep '^Type=' "$BUILT") == "$want" ]] || lz_fail "the unit has $(grep '^Type=' "$BUILT"), the daemon needs $want"
sed -E "s|^ExecStart=[^ ]*/lazyfs |ExecStart=$LAZYFS_BIN |" "$BUILT" >"$V/lazyfs@opt-ce.service"
grep -q "^$exec_start " "$V/lazyfs@opt-ce.service" || lz_fail "ExecStart: $(grep ^ExecStart "$BUILT")"
lz_ok "the unit built matches the daemon: $want, ExecStart in sbin"
out=$(systemd-analyze verify --man=no "$V/lazyfs@opt-ce.service" 2>&1) || lz_fail "verify failed: $out"
[[ -z $out ]] || lz_fail "verify warns: $out"
cp "$SRC/example.mount" "$V/$(systemd-escape --path --suffix=mount /opt/compiler-explorer)"
out=$(systemd-analyze verify --man=no "$V"/opt-*.mount 2>&1) || lz_fail "verify of the mount unit failed: $out"
[[ -z $out ]] || lz_fail "verify warns about the mount unit: $out"
# The check can fail: a unit with a mistake is reported.
sed 's/^Restart=on-failure/Restart=sometimes/' "$V/lazyfs@opt-ce.service" >"$V/lazyfs@opt-bad.service"
out=$(systemd-analyze verify --man=no "$V/lazyfs@opt-bad.service" 2>&1 || true)
[[ -n $out ]] || lz_fail "verify accepted a bad Restart= value"
lz_ok "lazyfs@.service and the example mount unit pass systemd-analyze verify"

# Stderr as the journal's stream (JOURNAL_STREAM names it): each line carries its
# priority ("<3>" error, "<6>" info) for `journalctl -p`; elsewhere plain lines.
J=$LZ_TMP/journal
: >"$J"
JOURNAL_STREAM=$(stat -c '%d:%i' "$J") timeout 10 "$LAZYFS_BIN" -f -o "underlay=$LZ_TMP/none" "$MP" 2>>"$J" &&
	lz_fail "a missing underlay started"
grep -q '^<3>error: underlay .*No such file' "$J" || lz_fail "no <3> error line for the journal: $(cat "$J")"
JOURNAL_STREAM=1:1 timeout 10 "$LAZYFS_BIN" -f -o "underlay=$LZ_TMP/none" "$MP" 2>"$J" && lz_fail "started"
grep -q '^lazyfs: error: underlay' "$J" || lz_fail "another stream's JOURNAL_STREAM changed the lines: $(cat "$J")"
lz_ok "errors reach the journal at priority 3 when stderr is its stream, plain otherwise"

# The .conf as systemd reads it (its own env-file parser, through the environment.d
# generator): a quoted value keeps the \, inside an option, an unquoted one loses it.
GEN=/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator
if [[ -x $GEN ]]; then
	mkdir -p "$LZ_TMP/xdg/environment.d"
	grep '^LAZYFS_OPTIONS=' "$SRC/lazyfs.conf.example" >"$LZ_TMP/xdg/environment.d/10-example.conf"
	printf '%s\n' "LZ_QUOTED='remote=:http\\,url=http://127.0.0.1:9/:'" "LZ_BARE=remote=:http\\,url=x:" \
		>>"$LZ_TMP/xdg/environment.d/10-example.conf"
	env=$(env -i XDG_CONFIG_HOME="$LZ_TMP/xdg" "$GEN") || lz_fail "the environment.d generator failed"
	eval "$(grep -E '^(LAZYFS_OPTIONS|LZ_QUOTED|LZ_BARE)=' <<<"$env")"
	[[ $LAZYFS_OPTIONS == images=/srv/ce-images,idle_timeout=600,allow_other ]] ||
		lz_fail "the example .conf reads as [$LAZYFS_OPTIONS]"
	[[ $LZ_QUOTED == 'remote=:http\,url=http://127.0.0.1:9/:' ]] || lz_fail "a quoted value lost its backslash: [$LZ_QUOTED]"
	[[ $LZ_BARE == 'remote=:http,url=x:' ]] || lz_fail "systemd's unquoted rule changed: [$LZ_BARE]"
	lz_ok "systemd reads the example .conf as written; a quoted \\, survives, an unquoted one does not"
fi
# No .conf: the unit passes -o "" and lazyfs mounts the mountpoint's own contents.
echo own >"$MP/own"
lz_mount "$MP" -o "" -o "cache=$LZ_TMP/cache"
[[ $(cat "$MP/own") == own ]] || lz_fail "lazyfs -o '' does not serve the mountpoint's own contents"
lz_umount "$MP"
rm "$MP/own"
lz_ok "the unit's -o \${LAZYFS_OPTIONS} with no .conf (-o '') mounts"

"$LAZYFS_BIN" --version | grep -q "systemd notify" && ! "$LAZYFS_BIN" --version | grep -q "no systemd" ||
	lz_skip "built without libsystemd: no readiness notification (verify passed)"
# A supervisor's notify socket: READY=1 must come, and only once the mount is
# there, from the keeper (the unit's main process): the worker says nothing to
# systemd, and nothing goes to systemd's descriptor store (the keeper holds the
# connection).
python3 - "$LAZYFS_BIN" "$U" "$MP" "$LZ_TMP" <<'PY' || lz_fail "no READY=1 from lazyfs"
import os, socket, struct, subprocess, sys, time
lazyfs, under, mp, tmp = sys.argv[1:]
path = os.path.join(tmp, "notify.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.settimeout(10)
def recv():
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = [struct.unpack("iII", d)[0] for l, t, d in anc if t == socket.SCM_CREDENTIALS]
    return msg.decode(), pid[0] if pid else None
env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.Popen([lazyfs, "-f", "-o", f"underlay={under},bpf=off", mp], env=env,
                     stderr=open(os.path.join(tmp, "notify.log"), "w"))
try:
    msg, sender = recv()
    mounted = any(l.split()[4] == mp for l in open("/proc/self/mountinfo"))
    assert "READY=1" in msg, msg
    assert mounted, "READY=1 before the mount"
    assert sender == p.pid, f"READY=1 from pid {sender}, not the keeper {p.pid}"
    assert open(os.path.join(mp, "file")).read() == "served\n"
    subprocess.run(["umount", mp], check=True)
    msgs = []
    while not msgs or "STOPPING=1" not in msgs[-1][0]:
        msgs.append(recv())
    assert all(sender == p.pid for _, sender in msgs), msgs
    assert not any("FDSTORE" in m for m, _ in msgs), msgs
    p.wait(10)
finally:
    if p.poll() is None:
        subprocess.run(["umount", mp], stderr=subprocess.DEVNULL)
        p.terminate()
PY
lz_ok "READY=1 reaches NOTIFY_SOCKET from the keeper once the mount serves, STOPPING=1 at unmount, no descriptor store"
lz_done
