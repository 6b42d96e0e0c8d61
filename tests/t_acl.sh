#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# POSIX ACLs and extended attribute names, as another user sees them through
# an allow_other mount: the kernel enforces the underlay's ACLs (FUSE_POSIX_ACL)
# on files, on directories, on the mount's root and on directories where the
# map's images and the underlay meet; files without an ACL (every image file:
# squashfs cannot hold one) keep working; getfacl shows the ACL through the
# mount; listxattr shows trusted.* names only to a caller holding
# CAP_SYS_ADMIN and user.* names only to one that may read the file.
# acl=off: mode bits only, and no ACL shown. Run once per image backend.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
command -v mksquashfs >/dev/null || lz_skip "mksquashfs missing"
command -v setfacl >/dev/null || lz_skip "setfacl missing (package acl)"
command -v getfattr >/dev/null || lz_skip "getfattr missing (package attr)"

U=$LZ_TMP/under IMG=$LZ_TMP/img S=$LZ_TMP/s MP=$LZ_TMP/mnt MAP=$LZ_TMP/lazyfs.map
chmod 755 "$LZ_TMP" # another user must reach the mountpoint
mkdir -p "$U/sub" "$U/closed" "$IMG" "$S/img" "$S/nested" "$MP"
setfacl -m u:nobody:--- "$U" 2>/dev/null || lz_skip "$LZ_TMP's filesystem has no POSIX ACLs"
setfacl -b "$U"

# The underlay: ACLs denying and granting, on files and directories.
echo denied >"$U/denied" # 0644, but not for nobody
setfacl -m u:nobody:--- "$U/denied"
echo by-user >"$U/by_user" # 0600, read by nobody through a named entry
chmod 600 "$U/by_user"
setfacl -m u:nobody:r-- "$U/by_user"
echo by-group >"$U/by_group" # 0600, read by members of group 4242
chmod 600 "$U/by_group"
setfacl -m g:4242:r-- "$U/by_group"
echo masked >"$U/masked" # a named entry the mask takes back
chmod 600 "$U/masked"
setfacl -m u:nobody:r--,m::--- "$U/masked"
echo plain >"$U/plain" # 0644, no ACL
echo inside >"$U/closed/f"
setfacl -m u:nobody:--- "$U/closed" # a directory nobody may not search
setfacl -d -m u:nobody:r-x "$U/sub" # a default ACL, shown as it is
setfacl -m u:nobody:--- "$U/sub"    # nobody may not reach the image mapped in here
setfattr -n trusted.lazyfs -v t "$U/plain"
setfattr -n user.lazyfs -v u "$U/plain"
echo secret >"$U/secret"
chmod 600 "$U/secret"
setfattr -n user.lazyfs -v s "$U/secret"
setfattr -n user.lazyfs -v d "$U/denied"
setfattr -n user.lazyfs -v b "$U/by_user"

# An image: its files carry no ACL (squashfs has no place for one), so modes decide.
echo image >"$S/img/f"
echo private >"$S/img/p"
chmod 640 "$S/img/p"
echo acl >"$S/img/had_acl"
setfacl -m u:nobody:--- "$S/img/had_acl"
setfattr -n trusted.lazyfs -v t "$S/img/f"
setfattr -n user.lazyfs -v u "$S/img/f"
setfattr -n user.lazyfs -v p "$S/img/p"
mksquashfs "$S/img" "$IMG/img.sqfs" -noappend -quiet >"$LZ_TMP/mksquashfs.out" 2>&1
grep -q "Unrecognised xattr prefix system.posix_acl_access" "$LZ_TMP/mksquashfs.out" ||
	lz_fail "mksquashfs kept an ACL: $(cat "$LZ_TMP/mksquashfs.out")"
echo bare >"$S/nested/f" # no extended attributes at all: "not supported" answers
mksquashfs "$S/nested" "$IMG/bare.sqfs" -noappend -quiet -no-xattrs >/dev/null
cat >"$MAP" <<MAP
sub/nested     $IMG/bare.sqfs
made/up/nested $IMG/bare.sqfs
MAP

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
reads() { as_nobody cat -- "$1" >/dev/null 2>&1; }

lz_mount "$MP" -o "backend=$BACKEND,underlay=$U,images=$IMG,map=$MAP,allow_other"

reads "$MP/denied" && lz_fail "nobody read a 0644 file its ACL denies it"
[[ $(cat "$MP/denied") == denied ]] || lz_fail "root cannot read the ACL-denied file"
[[ $(as_nobody cat "$MP/by_user") == by-user ]] || lz_fail "a named user entry does not grant"
reads "$MP/by_group" && lz_fail "nobody read a 0600 file without the group"
[[ $(setpriv --reuid=nobody --regid=nogroup --groups=4242 cat "$MP/by_group") == by-group ]] ||
	lz_fail "a named group entry does not grant to a supplementary group"
reads "$MP/masked" && lz_fail "the mask did not take back a named entry"
[[ $(as_nobody cat "$MP/plain") == plain ]] || lz_fail "a file without an ACL cannot be read"
lz_ok "as nobody: the ACL-denied file is unreadable, named user and group entries grant, the mask limits, no ACL means modes"

as_nobody ls "$MP/closed" >/dev/null 2>&1 && lz_fail "nobody listed a directory its ACL closes"
reads "$MP/closed/f" && lz_fail "nobody went through a directory its ACL closes"
reads "$MP/sub/nested/f" && lz_fail "nobody reached an image mapped into a directory closed to it"
[[ $(cat "$MP/sub/nested/f") == bare ]] || lz_fail "root cannot reach the mapped image"
[[ $(as_nobody cat "$MP/made/up/nested/f") == bare ]] || lz_fail "nobody cannot go through synthesized directories"
as_nobody ls "$MP" >/dev/null || lz_fail "nobody cannot list the mount's root"
lz_ok "directory ACLs hold, where the map's images meet the underlay too; synthesized directories have none"

[[ $(as_nobody cat "$MP/img/f") == image ]] || lz_fail "an image file cannot be read by nobody"
reads "$MP/img/p" && lz_fail "nobody read a 0640 image file"
[[ $(as_nobody cat "$MP/bare/f") == bare ]] || lz_fail "a file of an image without xattrs cannot be read"
[[ $(as_nobody cat "$MP/img/had_acl") == acl ]] || lz_fail "an image file's dropped ACL is enforced"
LOOP=$LZ_TMP/loop
mkdir -p "$LOOP"
LZ_MOUNTS+=("$LOOP")
mount -t squashfs -o loop,ro "$IMG/img.sqfs" "$LOOP"
[[ $(as_nobody cat "$LOOP/had_acl") == acl ]] || lz_fail "the kernel's squashfs enforces an ACL lazyfs does not"
umount "$LOOP"
getfacl -pc "$MP/img/had_acl" 2>/dev/null | grep -q nobody && lz_fail "getfacl shows an ACL in an image"
lz_ok "image files (no ACL in squashfs) are held to their modes, as on the kernel's squashfs, on both kinds of image"

diff <(getfacl -pcn "$U/denied") <(getfacl -pcn "$MP/denied") >/dev/null ||
	lz_fail "getfacl through the mount differs: $(getfacl -pcn "$MP/denied")"
diff <(getfacl -pcn "$U/sub") <(as_nobody getfacl -pcn "$MP/sub") >/dev/null ||
	lz_fail "the default ACL differs through the mount: $(as_nobody getfacl -pcn "$MP/sub" 2>&1)"
[[ $(getfacl -pc "$MP/plain" | grep -c :) -eq 3 ]] || lz_fail "a file without an ACL shows one"
lz_ok "getfacl shows access and default ACLs through the mount, as nobody too"

# names_as WHO PATH: the *.lazyfs attribute names WHO (root or nobody) is listed on PATH.
names_as() {
	local who=$1 path=$2
	if [[ $who == nobody ]]; then set -- as_nobody; else set --; fi
	{ "$@" getfattr --absolute-names -d -m - "$path" 2>/dev/null || true; } |
		{ grep -o '^[a-z]*\.lazyfs' || true; } | sort | tr '\n' ' '
}
# listed WHO PATH NAMES...: exactly NAMES are listed to WHO.
listed() {
	local who=$1 path=$2 got
	shift 2
	got=$(names_as "$who" "$path")
	[[ $got == "${*:+$* }" ]] || lz_fail "listed to $who on $path: '$got', expected '$*'"
}
listed root "$MP/plain" trusted.lazyfs user.lazyfs
listed nobody "$MP/plain" user.lazyfs
listed root "$MP/secret" user.lazyfs
listed nobody "$MP/secret"
listed nobody "$MP/denied"
listed nobody "$MP/by_user" user.lazyfs
listed root "$MP/img/f" trusted.lazyfs user.lazyfs
listed nobody "$MP/img/f" user.lazyfs
listed root "$MP/img/p" user.lazyfs
listed nobody "$MP/img/p"
lz_ok "trusted.* names are listed to root, not to nobody; user.* names only to who may read the file (by mode and ACL)"

out=$(as_nobody getfattr -n trusted.lazyfs "$MP/plain" 2>&1 || true)
[[ $out == *"No such attribute"* ]] || lz_fail "nobody asking a trusted.* value got: $out"
out=$(as_nobody getfattr -n user.lazyfs "$MP/secret" 2>&1 || true)
[[ $out == *"Permission denied"* ]] || lz_fail "nobody asking a user.* value of a file it may not read got: $out"
# Capabilities decide, not uids: a root without CAP_SYS_ADMIN, a nobody holding it.
got=$(setpriv --bounding-set=-sys_admin -- getfattr -d -m - "$MP/plain" 2>/dev/null | grep -c trusted || true)
[[ $got -eq 0 ]] || lz_fail "root without CAP_SYS_ADMIN was listed trusted.* names"
got=$(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=+sys_admin --ambient-caps=+sys_admin \
	-- getfattr -d -m - "$MP/plain" 2>/dev/null | grep -c trusted || true)
[[ $got -eq 1 ]] || lz_fail "nobody holding CAP_SYS_ADMIN was not listed trusted.* names"
lz_ok "values are checked by the kernel (ENODATA for trusted.*, EACCES for user.*); listing follows CapEff, not the uid"
lz_umount "$MP"

# acl=off: the old behaviour, mode bits only, and getfacl shows no ACL it would not enforce.
lz_mount "$MP" -o "backend=$BACKEND,underlay=$U,images=$IMG,allow_other,acl=off"
[[ $(as_nobody cat "$MP/denied") == denied ]] || lz_fail "acl=off still enforces the ACL"
[[ $(getfacl -pc "$MP/denied" 2>/dev/null | grep -c nobody) -eq 0 ]] || lz_fail "acl=off shows the ACL"
getfattr -d -m - "$MP/denied" 2>/dev/null | grep -q posix_acl && lz_fail "acl=off lists the ACL's name"
reads "$MP/img/p" && lz_fail "acl=off: nobody read a 0640 image file"
lz_ok "acl=off: mode bits only, no ACL shown or listed"
lz_umount "$MP"
lz_done
