#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# mount(8) integration: `mount -t fuse.lazyfs` and an fstab line both reach
# lazyfs through mount.fuse3. mount(8) runs helpers with its own PATH, so the
# program must sit in /usr/local/bin or /usr/bin: the test links the built
# binary there under a name of its own (type fuse.NAME runs NAME), and
# removes it afterwards.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mount.fuse3 >/dev/null || lz_skip "mount.fuse3 (package fuse3) missing"

SRC=$LZ_TMP/src MP=$LZ_TMP/mnt NAME=lazyfs-test-$$
mkdir -p "$SRC" "$MP"
echo through-mount > "$SRC/file"
LZ_REMOVE+=("/usr/local/bin/$NAME")
ln -s "$LAZYFS_BIN" "/usr/local/bin/$NAME"

LZ_MOUNTS+=("$MP")
cd "$LZ_TMP" # mount(8) would turn SOURCE into a path if ./lazyfs existed here
mount -t fuse."$NAME" lazyfs "$MP" -o underlay="$SRC" || lz_fail "mount -t fuse.lazyfs failed"
[[ $(cat "$MP/file") == through-mount ]] || lz_fail "mount -t fuse.lazyfs does not serve the underlay"
got=$(findmnt -n -o FSTYPE,SOURCE -M "$MP")
[[ $got == "fuse.lazyfs lazyfs" ]] || lz_fail "type or source wrong: $got"
lz_ok "mount -t fuse.$NAME lazyfs MP -o underlay=DIR"
umount "$MP"

printf 'lazyfs %s fuse.%s underlay=%s,allow_other,_netdev,x-systemd.requires=local-fs.target,noauto 0 0\n' "$MP" "$NAME" "$SRC" > "$LZ_TMP/fstab"
mount -T "$LZ_TMP/fstab" "$MP" || lz_fail "mount through an fstab line failed"
[[ $(cat "$MP/file") == through-mount ]] || lz_fail "fstab mount does not serve the underlay"
findmnt -n -o OPTIONS -M "$MP" | grep -q allow_other || lz_fail "allow_other did not reach the mount"
findmnt -n -o OPTIONS -M "$MP" | grep -q default_permissions ||
	lz_fail "allow_other without default_permissions"
lz_ok "fstab line with allow_other,_netdev,x-systemd.requires= (default_permissions added)"
umount "$MP"
lz_done
