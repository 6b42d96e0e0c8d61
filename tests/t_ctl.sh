#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# lazyfsctl and the control socket: status, stats, images, pin/unpin, evict,
# prefetch, reload, metrics (also over HTTP, which no local user can stall),
# and clear errors for a
# mountpoint that is not lazyfs, a daemon that does not answer, non-root.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
[[ -x $CTL ]] || lz_fail "no lazyfsctl at $CTL"

IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt
mkdir -p "$IMG" "$U" "$MP"
for n in alpha beta gamma; do
	mkdir -p "$LZ_TMP/src-$n"
	echo "image $n" >"$LZ_TMP/src-$n/hello.txt"
	mksquashfs "$LZ_TMP/src-$n" "$IMG/$n.sqfs" -noappend -quiet >/dev/null
done
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

lz_mount "$MP" -d -o "backend=$BACKEND,underlay=$U,images=$IMG,idle_timeout=2,metrics=127.0.0.1:$PORT"
pid=$LZ_LAST_PID

out=$("$CTL" "$MP" status) || lz_fail "status failed: $out"
grep -q "^mountpoint: $MP$" <<<"$out" || lz_fail "status lacks the mountpoint: $out"
json=$("$CTL" --json "$MP" status)
python3 -c 'import json,sys; d = json.loads(sys.argv[1]); assert d["pid"] == int(sys.argv[2]), d' "$json" "$pid" ||
	lz_fail "status --json: $json"
lz_ok "status, human and JSON (the daemon's pid)"

cat "$MP/alpha/hello.txt" >/dev/null
out=$("$CTL" "$MP" images)
grep -Eq "^alpha +ready +$BACKEND " <<<"$out" || lz_fail "images: $out"
lz_ok "images lists a resolved image with its state and backend"

"$CTL" "$MP" pin beta >/dev/null || lz_fail "pin beta failed"
for ((i = 0; i < 60; i++)); do
	grep -q "image alpha: closed" "$LZ_LAST_LOG" && break
	sleep 0.1
done
sleep 2.5
out=$("$CTL" "$MP" images)
grep -Eq "^beta +ready .* 1 " <<<"$out" || lz_fail "pinned beta is not ready and pinned: $out"
grep -Eq "^alpha +closed " <<<"$out" || lz_fail "alpha did not expire: $out"
if "$CTL" "$MP" evict beta 2>"$LZ_TMP/err"; then lz_fail "evicted a pinned image"; fi
grep -q "pinned" "$LZ_TMP/err" || lz_fail "evict of a pinned image: $(cat "$LZ_TMP/err")"
"$CTL" "$MP" images | grep -Eq "^beta +ready " || lz_fail "evict closed the pinned beta"
"$CTL" "$MP" unpin beta >/dev/null || lz_fail "unpin beta failed"
if "$CTL" "$MP" unpin beta 2>"$LZ_TMP/err"; then lz_fail "a second unpin worked"; fi
grep -q "not pinned" "$LZ_TMP/err" || lz_fail "second unpin: $(cat "$LZ_TMP/err")"
lz_ok "pin resolves an image and keeps it past idle_timeout and evict; unpin releases it"

exec 7<"$MP/gamma/hello.txt"
if "$CTL" "$MP" evict gamma 2>"$LZ_TMP/err"; then lz_fail "evicted an image with an open file"; fi
grep -q "in use" "$LZ_TMP/err" || lz_fail "evict in use: $(cat "$LZ_TMP/err")"
exec 7<&-
sleep 0.3
"$CTL" "$MP" evict gamma >/dev/null || lz_fail "evict gamma failed"
"$CTL" "$MP" images | grep -Eq "^gamma +closed " || lz_fail "gamma not closed after evict"
[[ $(cat "$MP/gamma/hello.txt") == "image gamma" ]] || lz_fail "gamma does not read after evict"
lz_ok "evict refuses an image in use and closes it once free; it resolves again on use"

out=$("$CTL" "$MP" prefetch alpha) || lz_fail "prefetch alpha: $out"
grep -q "prefetching 1 files" <<<"$out" || lz_fail "prefetch alpha: $out"
lz_ok "prefetch reads an image's recorded working set ($out)"

stats=$("$CTL" --json "$MP" stats)
python3 - "$stats" <<'EOF' || lz_fail "stats --json: $stats"
import json, sys
d = json.loads(sys.argv[1])
assert d["images"]["resolved"] >= 4, d["images"]
if "tracker" in d:
    assert d["tracker"]["events"] >= 3, d["tracker"]
    assert d["fuse_requests"]["LOOKUP"]["count"] > 0, d["fuse_requests"]
EOF
lz_ok "stats --json counts resolves (and, with the tracker, events and FUSE requests)"

m=$("$CTL" "$MP" metrics)
grep -Eq "^lazyfs_image_resolutions_total\{backend=\"$BACKEND\"\} [0-9]+" <<<"$m" || lz_fail "metrics: $m"
h=$(curl -sf "http://127.0.0.1:$PORT/metrics") || lz_fail "no metrics over HTTP"
grep -q "^# TYPE lazyfs_image_resolutions_total counter" <<<"$h" || lz_fail "HTTP metrics: $h"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/other") == 404 ]] || lz_fail "HTTP /other is not 404"
lz_ok "metrics in the Prometheus text format, through lazyfsctl and over loopback HTTP"

grep -Eq '^lazyfs_build_info\{version="[^"]+",bpf="(yes|no)",systemd="(yes|no)"\} 1$' <<<"$m" || lz_fail "no build_info: $(grep build_info <<<"$m")"
grep -q '^lazyfs_passthrough_active 1$' <<<"$m" || lz_fail "passthrough not shown active: $(grep passthrough <<<"$m")"
n=$(awk -v b="$BACKEND" '$1 == "lazyfs_image_resolve_duration_seconds_count{backend=\"" b "\"}" {print $2}' <<<"$m")
((n >= 3)) || lz_fail "cold resolves with $BACKEND counted: [$n]"
inf=$(awk -v b="$BACKEND" '$1 == "lazyfs_image_resolve_duration_seconds_bucket{backend=\"" b "\",le=\"+Inf\"}" {print $2}' <<<"$m")
[[ $inf == "$n" ]] || lz_fail "the +Inf bucket ($inf) is not the count ($n)"
python3 - "$("$CTL" --json "$MP" status)" "$("$CTL" --json "$MP" images)" <<'EOF' || lz_fail "--json without its schema version"
import json, sys
status, images = (json.loads(a) for a in sys.argv[1:])
assert status["schema_version"] == 1 and "pid" in status, status
assert images["schema_version"] == 1 and isinstance(images["images"], list), images
EOF
lz_ok "build_info, passthrough_active, a cold-resolve histogram per backend ($n resolves); --json carries schema_version"

out=$("$CTL" "$MP" reload) || lz_fail "reload failed: $out"
[[ $out == "reloaded: replaced images closed" ]] || lz_fail "reload answered: $out"
grep -q "reload:" "$LZ_LAST_LOG" || lz_fail "reload did not reach the daemon"
lz_ok "reload makes the daemon reread its configuration"

rc=0
"$CTL" "$MP" frobnicate 2>"$LZ_TMP/err" || rc=$?
[[ $rc -eq 1 ]] && grep -q "unknown command" "$LZ_TMP/err" || lz_fail "unknown command: rc $rc, $(cat "$LZ_TMP/err")"
rc=0
"$CTL" "$LZ_TMP" status 2>"$LZ_TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "is not a lazyfs mount" "$LZ_TMP/err" || lz_fail "not lazyfs: rc $rc, $(cat "$LZ_TMP/err")"
rc=0
runuser -u nobody -- "$CTL" "$MP" status 2>"$LZ_TMP/err" || rc=$?
[[ $rc -ne 0 ]] || lz_fail "a non-root user reached the control socket"
kill -STOP "$pid"
rc=0
start=$SECONDS
"$CTL" --timeout 1 "$MP" status 2>"$LZ_TMP/err" || rc=$?
kill -CONT "$pid"
[[ $rc -eq 3 ]] && grep -q "did not answer within 1 s" "$LZ_TMP/err" || lz_fail "stopped daemon: rc $rc, $(cat "$LZ_TMP/err")"
((SECONDS - start <= 3)) || lz_fail "the timeout took $((SECONDS - start)) s"
lz_ok "clear errors: unknown command (1), not a lazyfs mount (2), non-root refused, no answer (3)"

# Any local user reaches the metrics port: 20 idle clients and one sending a
# byte every 1.5 s, as nobody, reconnecting as they are dropped. lazyfsctl
# answers within a second, the idle ones are dropped within the deadline,
# and the unmount does not wait for them.
setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 - "$PORT" <<'PY' >"$LZ_TMP/attack" &
import socket, sys, time
port = int(sys.argv[1])
end = time.time() + 25
def conn():
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return None
idle = [conn() for _ in range(20)]
trickle, dropped, longest, since = conn(), 0, 0.0, time.time()
while time.time() < end:
    time.sleep(0.5)
    for i, s in enumerate(idle):
        if s is None:
            idle[i] = conn()
            continue
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                raise ConnectionResetError
        except BlockingIOError:
            continue
        except OSError:
            pass
        dropped += 1
        idle[i] = conn()
    if trickle is not None:
        try:
            trickle.send(b"G")
        except OSError:
            longest = max(longest, time.time() - since)
            trickle, since = conn(), time.time()
    print("%d %.1f" % (dropped, longest), flush=True)
PY
ATTACK=$!
LZ_PIDS+=("$ATTACK")
sleep 4
for i in 1 2 3; do
	start=$(date +%s%N)
	"$CTL" --timeout 5 "$MP" status >/dev/null || lz_fail "status failed while the metrics port is held"
	ms=$((($(date +%s%N) - start) / 1000000))
	((ms < 1000)) || lz_fail "status took $ms ms while the metrics port is held"
	sleep 1
done
read -r dropped longest < <(tail -n 1 "$LZ_TMP/attack")
((dropped >= 20)) || lz_fail "idle metrics clients are not dropped: $dropped dropped"
[[ ${longest%.*} -le 3 ]] || lz_fail "a trickling metrics client was held $longest s"
lz_ok "20 idle metrics clients and a trickling one (as nobody): lazyfsctl answers under a second, $dropped idle ones dropped, the trickler cut after ${longest} s"

sock=$(ls /run/lazyfs/ | grep -F -- "${LZ_TMP##*.}" || true)
[[ -n $sock ]] || lz_fail "no socket for this mount in /run/lazyfs"
[[ $(stat -c %a "/run/lazyfs/$sock") == 600 && $(stat -c %a /run/lazyfs) == 700 ]] ||
	lz_fail "socket or directory not root-only"
kill -0 "$ATTACK" 2>/dev/null || lz_fail "the metrics clients stopped before the unmount"
lz_umount "$MP" # the daemon exits within 10 s although the clients still connect
kill "$ATTACK" 2>/dev/null || true
[[ ! -e /run/lazyfs/$sock ]] || lz_fail "socket left after unmount"
lz_ok "the socket is root-only (0600 in a 0700 directory) and removed at unmount"
lz_done
