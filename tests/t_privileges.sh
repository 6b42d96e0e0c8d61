#!/bin/bash
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
# chown 0, dac_override 1, dac_read_search 2, fowner 3, sys_admin 21, sys_resource 24, bpf 39
# (of those this environment grants at all: a container may lack some)
bnd=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
want=$(printf '%016x' $((((1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 21) | (1 << 24) | (1 << 39)) & bnd)))
if [[ $caps == "000001ffffffffff" ]] || [[ $caps == "$(awk '/^CapBnd/ {print $2}' /proc/self/status)" ]]; then
	if ! grep -q HAVE_LIBCAP "$(dirname "$LAZYFS_BIN")/config.h" 2>/dev/null; then
		lz_skip "built without libcap: capabilities are not dropped"
	fi
fi
[[ $caps == "$want" ]] || lz_fail "daemon capabilities: $caps, expected $want in effective, permitted and bounding"
lz_ok "effective, permitted and bounding sets hold only chown, dac_*, fowner, sys_admin, sys_resource, bpf"

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
lz_done
