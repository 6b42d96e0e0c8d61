#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Privilege: once serving, the daemon holds only the capabilities it uses
# (in every set and the bounding set, so its rclone child cannot regain the
# rest), and still does everything: images through loop mounts, passthrough
# opens, the open tracker, lazyfsctl. allow_other always comes with
# default_permissions, so the kernel checks each client's access.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
"$LAZYFS_BIN" --version >/dev/null
IMG=$LZ_TMP/img U=$LZ_TMP/under MP=$LZ_TMP/mnt
chmod 755 "$LZ_TMP" # another user must reach the mountpoint
mkdir -p "$IMG" "$U" "$MP" "$LZ_TMP/s"
echo secret >"$LZ_TMP/s/private"
chmod 600 "$LZ_TMP/s/private"
echo open >"$LZ_TMP/s/public"
mksquashfs "$LZ_TMP/s" "$IMG/img.sqfs" -noappend -quiet >/dev/null

lz_mount "$MP" -o "backend=$BACKEND,underlay=$U,images=$IMG,allow_other"
caps=$(awk '/^CapEff|^CapPrm|^CapBnd/ {print $2}' "/proc/$LZ_LAST_PID/status" | sort -u)
inh=$(awk '/^CapInh|^CapAmb/ {print $2}' "/proc/$LZ_LAST_PID/status" | sort -u)
# dac_override 1, dac_read_search 2, sys_admin 21 (of those this environment grants
# at all: a container may lack some); with a remote also chown 0, kill 5, setgid 6, setuid 7
bnd=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
want=$(printf '%016x' $((((1 << 1) | (1 << 2) | (1 << 21)) & bnd)))
if [[ $caps == "000001ffffffffff" ]] || [[ $caps == "$(awk '/^CapBnd/ {print $2}' /proc/self/status)" ]]; then
	if ! grep -q HAVE_LIBCAP "$(dirname "$LAZYFS_BIN")/config.h" 2>/dev/null; then
		lz_skip "built without libcap: capabilities are not dropped"
	fi
fi
[[ $caps == "$want" ]] || lz_fail "daemon capabilities: $caps, expected $want in effective, permitted and bounding"
[[ $inh == 0000000000000000 ]] || lz_fail "inheritable or ambient capabilities: $inh"
lz_ok "effective, permitted and bounding sets hold only dac_override, dac_read_search, sys_admin; nothing inheritable or ambient"

[[ $(cat "$MP/img/public") == open ]] || lz_fail "root cannot read the image"
[[ $(cat "$MP/img/private") == secret ]] || lz_fail "root cannot read a 0600 file after the drop"
lz_ok "images still mount and files still open through passthrough after the drop"
if runuser -u nobody -- cat "$MP/img/private" 2>/dev/null; then
	lz_fail "another user read a 0600 file through allow_other"
fi
[[ $(runuser -u nobody -- cat "$MP/img/public") == open ]] || lz_fail "another user cannot read a 0644 file"
findmnt -n -o OPTIONS -M "$MP" | grep -q default_permissions || lz_fail "allow_other without default_permissions"
lz_ok "allow_other comes with default_permissions: modes are enforced for other users"
lz_umount "$MP"

# A remote: the daemon also keeps what starting its rclone child as _lazyfs takes.
if command -v rclone >/dev/null && getent passwd _lazyfs >/dev/null; then
	mkdir -p "$LZ_TMP/srv"
	echo remote >"$LZ_TMP/srv/obj"
	lz_serve_http "$LZ_TMP/srv"
	lz_mount "$MP" -o "underlay=$U,remote=:http\\,url='http://127.0.0.1:$LZ_HTTP_PORT/':,remote_mode=objects,cache=$LZ_TMP/cache"
	want=$(printf '%016x' $((((1 << 0) | (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 21)) & bnd)))
	caps=$(awk '/^CapEff|^CapPrm|^CapBnd/ {print $2}' "/proc/$LZ_LAST_PID/status" | sort -u)
	[[ $caps == "$want" ]] || lz_fail "remote daemon capabilities: $caps, expected $want"
	[[ $(cat "$MP/obj") == remote ]] || lz_fail "a remote object after the drop"
	lz_ok "with a remote: also chown, kill, setgid, setuid (the rclone child's own user), and fetches work"
	lz_umount "$MP"
fi
lz_done
