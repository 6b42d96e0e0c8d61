#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Warm at boot and pins that outlive the process: warm=FILE lists entries
# pinned in the background once the mount serves, with no access to the mount;
# pinned images outlive idle_timeout; a `lazyfsctl pin` is pinned again after
# a remount, a worker crash and a live upgrade (once, not twice); unpin
# forgets it; a bad warm file fails the start with FILE:LINE.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
CTL=${LAZYFSCTL_BIN:-$(dirname "$LAZYFS_BIN")/lazyfsctl}
IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt S=$LZ_TMP/s C=$LZ_TMP/cache
mkdir -p "$IMG" "$U" "$MP"
for name in alpha beta gamma delta; do
	mkdir -p "$S/$name"
	echo "$name" >"$S/$name/who"
	mksquashfs "$S/$name" "$IMG/$name.sqfs" -noappend -quiet >/dev/null
done
printf '%s\n' "# the compilers most requests use" alpha "beta   # trailing comment" "" nosuch >"$LZ_TMP/warm"

status() { "$CTL" --json "$MP" status; }
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$(status)" "$1"; }
pins_of() { # IMAGE: its pin count, or - when it is not in use
	"$CTL" --json "$MP" images | python3 -c 'import json,sys
d = {i["name"]: i for i in json.load(sys.stdin)["images"]}
i = d.get(sys.argv[1]); print(i["pins"] if i and i["state"] == "ready" else "-")' "$1"
}

opts="backend=$BACKEND,underlay=$U,images=$IMG,idle_timeout=1,cache=$C"
lz_mount "$MP" -o "$opts,warm=$LZ_TMP/warm"
wait_for 20 eval '[[ $(field "d[\"warm\"][\"running\"]") == False ]]' || lz_fail "warm never finished: $(status)"
[[ $(field 'd["warm"]["listed"], d["warm"]["pinned"], d["warm"]["failed"]') == "(3, 2, 1)" ]] ||
	lz_fail "warm: $(field 'd["warm"]')"
sleep 2.5 # idle_timeout=1 has passed twice
[[ $(pins_of alpha) == 1 && $(pins_of beta) == 1 && $(pins_of gamma) == - ]] ||
	lz_fail "after idle_timeout: alpha $(pins_of alpha), beta $(pins_of beta), gamma $(pins_of gamma)"
grep -q "warm: nosuch: nothing to resolve there" "$LZ_LAST_LOG" || lz_fail "the failed warm entry was not logged"
lz_ok "warm=FILE pinned alpha and beta with no access to the mount, kept past idle_timeout; nosuch logged"

"$CTL" "$MP" pin gamma >/dev/null || lz_fail "pin gamma"
grep -qx gamma "$C"/pins/* || lz_fail "gamma not in the pin file: $(cat "$C"/pins/*)"
lz_umount "$MP"
lz_mount "$MP" -o "$opts"
wait_for 20 eval '[[ $(pins_of gamma) == 1 ]]' || lz_fail "gamma not pinned again after a remount"
[[ $(pins_of alpha) == - ]] || lz_fail "alpha pinned without warm= and without a pin: $(pins_of alpha)"
lz_ok "a lazyfsctl pin is kept in CACHE/pins and pinned again at the next mount"

worker=$LZ_LAST_PID
kill -KILL "$worker"
wait_for 20 eval '[[ $(field "d[\"pid\"]") != "$worker" ]]' 2>/dev/null || lz_fail "no new worker"
wait_for 20 eval '[[ $(pins_of gamma) == 1 ]]' || lz_fail "gamma not pinned after the worker crash: $(pins_of gamma)"
lz_ok "after a worker crash the new worker pins gamma again"

"$CTL" "$MP" upgrade >/dev/null || lz_fail "upgrade failed"
wait_for 20 eval '[[ $(pins_of gamma) == 1 ]]' || lz_fail "gamma after a live upgrade: $(pins_of gamma) pins"
sleep 1
[[ $(pins_of gamma) == 1 ]] || lz_fail "a live upgrade pinned gamma twice: $(pins_of gamma)"
"$CTL" "$MP" unpin gamma >/dev/null || lz_fail "unpin gamma"
! grep -qx gamma "$C"/pins/* || lz_fail "gamma still in the pin file after unpin"
lz_ok "a live upgrade keeps gamma's one pin; unpin takes it out of the pin file"
lz_umount "$MP"

printf '%s\n' alpha "../escape" >"$LZ_TMP/bad-warm"
if out=$("$LAZYFS_BIN" -f -o "$opts,warm=$LZ_TMP/bad-warm" "$MP" 2>&1); then
	lz_fail "a bad warm file started"
fi
[[ $out == *"bad-warm:2: '../escape' is not an entry"* && $(grep -c . <<<"$out") -eq 1 ]] || lz_fail "bad warm file: $out"
lz_ok "a bad warm line fails the start: $out"
lz_done
