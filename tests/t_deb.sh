#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The Debian package: built from a copy of this source with dpkg-buildpackage
# (libfuse linked statically from scripts/bootstrap's private prefix),
# installed, a real lazyfs (an underlay and a squashfs image) mounted through
# an fstab line and `mount -t` of type fuse.lazyfs, which Debian's mount.fuse3
# runs as the installed /usr/sbin/lazyfs, asked about with the package's
# lazyfsctl, unmounted, and purged: nothing of it is left. The machine is left
# as it was, even on failure: the package never stays installed, and
# /etc/lazyfs, /var/cache/lazyfs (which purge removes) and the _lazyfs user are
# as before. One run at a time on the machine (a lock in /run/lock).
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
lz_init
[[ ${LAZYFS_DEB_TEST:-1} != 0 ]] ||
	lz_skip "LAZYFS_DEB_TEST=0: the package is built and tested in another suite of this run"
for tool in dpkg-buildpackage dh dh_autoreconf mksquashfs mount.fuse3 systemd-analyze; do
	command -v "$tool" >/dev/null || lz_skip "$tool missing (scripts/bootstrap installs it)"
done
FUSE_STATIC=${LAZYFS_FUSE_STATIC:-/var/cache/lazyfs-bootstrap/fuse3-static}
[[ -f $FUSE_STATIC/lib/libfuse3.a ]] || lz_skip "no static libfuse in $FUSE_STATIC (scripts/bootstrap builds it)"
for f in /usr/local/sbin/lazyfs /usr/local/bin/lazyfs; do
	[[ ! -e $f ]] || lz_skip "$f would run for type fuse.lazyfs instead of the package's /usr/sbin/lazyfs"
done

TOP=$(cd "$TESTS_SRCDIR/.." && pwd)
VERSION=$(sed -n 's/^AC_INIT(\[lazyfs\], \[\([^]]*\)\].*/\1/p' "$TOP/configure.ac")
ARCH=$(dpkg --print-architecture)
BUILD=$LZ_TMP/build SRC=$LZ_TMP/build/lazyfs-$VERSION
DEB=$BUILD/lazyfs_${VERSION}_$ARCH.deb
mkdir -p "$SRC"

# A copy of the source: a git checkout's files (committed or not, without
# builds), or all of a dist tree (make distcheck's, read-only) but its builds.
start=$SECONDS
if [[ $(git -C "$TOP" rev-parse --show-toplevel 2>/dev/null) == "$TOP" ]]; then
	git -C "$TOP" ls-files -z --cached --others --exclude-standard |
		(cd "$TOP" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$TOP" --null -T - -cf - | tar -C "$SRC" -xf -
else
	tar -C "$TOP" --exclude=./_build --exclude=./_inst -cf - . | tar -C "$SRC" -xf -
fi
chmod -R u+w "$SRC"
[[ -f $SRC/debian/rules ]] || lz_fail "no debian/ in the source at $TOP"

# A clean environment: nothing of the make check that runs this (MAKEFLAGS,
# TESTS=...) reaches the package's build.
(cd "$SRC" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" LC_ALL=C.UTF-8 \
	DEB_BUILD_OPTIONS="nocheck noautodbgsym" LAZYFS_FUSE_STATIC="$FUSE_STATIC" \
	dpkg-buildpackage -b -us -uc -j2) >"$LZ_TMP/build.log" 2>&1 || {
	tail -40 "$LZ_TMP/build.log" >&2
	lz_fail "dpkg-buildpackage -b -us -uc failed (log above)"
}
[[ -f $DEB ]] || lz_fail "no $DEB: $(ls "$BUILD")"
lz_ok "dpkg-buildpackage -b built ${DEB##*/} in $((SECONDS - start)) s"

# What it holds and needs.
depends=$(dpkg-deb -f "$DEB" Depends)
[[ $depends != *fuse3-* && $depends != *libfuse* ]] || lz_fail "Depends names a libfuse: $depends"
[[ " $depends," == *" fuse3,"* && " $depends," == *" adduser,"* ]] ||
	lz_fail "Depends lacks fuse3 (mount.fuse3) or adduser: $depends"
[[ $(dpkg-deb -f "$DEB" Built-Using) == "fuse3 (= "*")" ]] ||
	lz_fail "Built-Using does not name the fuse3 source: $(dpkg-deb -f "$DEB" Built-Using)"
dpkg-deb -x "$DEB" "$LZ_TMP/x"
! readelf -d "$LZ_TMP/x/usr/sbin/lazyfs" | grep -i 'NEEDED.*fuse3' || lz_fail "the daemon links a shared libfuse"
files=$(dpkg-deb -c "$DEB" | awk '{ print $6 }')
for f in ./usr/sbin/lazyfs ./usr/bin/lazyfsctl ./usr/share/man/man8/lazyfs.8.gz \
	./usr/share/man/man8/lazyfsctl.8.gz ./lib/systemd/system/lazyfs@.service \
	./usr/share/doc/lazyfs/copyright ./usr/share/doc/lazyfs/examples/lazyfs.conf.example; do
	grep -qxF "$f" <<<"$files" || lz_fail "the package lacks $f"
done
! grep -E 'mount\.fuse|fusermount|libfuse' <<<"$files" || lz_fail "the package carries a FUSE tool or library of its own"
grep -q '^Files: fuse3/lib/' "$LZ_TMP/x/usr/share/doc/lazyfs/copyright" || lz_fail "copyright does not cover libfuse"
lz_ok "Depends: $depends; no libfuse3.so needed, Built-Using: fuse3"

# From here on the machine changes: one run at a time, and all of it undone.
APT=(apt-get -qq -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
MOVED=() WANTS_MADE='' had_user=1
deb_cleanup() {
	local d mp
	for mp in "${LZ_MOUNTS[@]}"; do
		if mountpoint -q -- "$mp" 2>/dev/null; then
			umount -- "$mp" 2>/dev/null || umount -l -- "$mp" 2>/dev/null || true
		fi
	done
	if dpkg-query -W -f='${Status}' lazyfs 2>/dev/null | grep -qv 'not-installed'; then
		DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge lazyfs >/dev/null 2>&1 ||
			dpkg --purge --force-all lazyfs >/dev/null 2>&1 || true
	fi
	rm -f /etc/systemd/system/remote-fs.target.wants/lazyfs@t-deb.service
	[[ -z $WANTS_MADE ]] || rmdir "$WANTS_MADE" 2>/dev/null || true
	for d in "${MOVED[@]}"; do
		rm -rf --one-file-system -- "$d"
		mv -- "$d.t_deb-$$" "$d"
	done
	MOVED=()
	if [[ $had_user == 0 ]] && getent passwd _lazyfs >/dev/null; then
		userdel _lazyfs 2>/dev/null || true
		groupdel _lazyfs 2>/dev/null || true
	fi
}
trap 'rc=$?; deb_cleanup; lz_cleanup $rc' EXIT
exec 8>/run/lock/lazyfs-t_deb.lock # closed (8>&-) for what may outlive the test
flock -w 900 8 || lz_fail "another t_deb.sh kept the lock for 15 minutes"
! dpkg-query -W -f='${Status}' lazyfs 2>/dev/null | grep -qv 'not-installed' ||
	lz_skip "a lazyfs package is installed here: the test would purge it"
links=$(find /etc/systemd/system -type l -name 'lazyfs@*.service' 2>/dev/null || true)
[[ -z $links ]] || lz_skip "lazyfs@ instances are enabled here ($links): purge would remove their links"
getent passwd _lazyfs >/dev/null || had_user=0
for d in /etc/lazyfs /var/cache/lazyfs; do # purge removes them: kept aside meanwhile
	if [[ -e $d ]]; then
		mv -- "$d" "$d.t_deb-$$"
		MOVED+=("$d")
	fi
done

# apt-get resolves its dependencies; on a bootstrapped machine it installs nothing else.
others=$("${APT[@]}" -s install "$DEB" 2>/dev/null | awk '$1 == "Inst" && $2 != "lazyfs" { print $2 }')
[[ -z $others ]] || lz_skip "installing the package would install $(echo $others) too (scripts/bootstrap installs them)"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "$DEB" >"$LZ_TMP/install.log" 2>&1 8>&- || {
	cat "$LZ_TMP/install.log" >&2
	lz_fail "apt-get install ${DEB##*/} failed"
}
[[ $(dpkg-query -W -f='${Status}' lazyfs) == "install ok installed" ]] || lz_fail "lazyfs not installed"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd _lazyfs) || lz_fail "no user _lazyfs after install"
((uid < 1000)) && [[ $home == /nonexistent && $shell == */nologin ]] ||
	lz_fail "_lazyfs is not a system user without home and shell: uid $uid, $home, $shell"
getent group _lazyfs >/dev/null || lz_fail "no group _lazyfs"
installed=$(dpkg -L lazyfs)
/usr/sbin/lazyfs --version | grep -q "^lazyfs $VERSION (libfuse 3\.\(1[6-9]\|[2-9][0-9]\)" ||
	lz_fail "the installed lazyfs: $(/usr/sbin/lazyfs --version)"
lz_ok "apt-get install ./${DEB##*/}: $(/usr/sbin/lazyfs --version), the system user _lazyfs"

# The unit installed matches the daemon and verifies.
unit=/lib/systemd/system/lazyfs@.service
grep -q '^ExecStart=/usr/sbin/lazyfs ' "$unit" || lz_fail "ExecStart: $(grep ^ExecStart "$unit")"
if /usr/sbin/lazyfs --version | grep -q "no systemd notify"; then want=forking; else want=notify; fi
grep -qx "Type=$want" "$unit" || lz_fail "the unit has $(grep ^Type= "$unit"), the daemon needs Type=$want"
mkdir -p "$LZ_TMP/units"
cp "$unit" "$LZ_TMP/units/lazyfs@opt-ce.service"
out=$(systemd-analyze verify --man=no "$LZ_TMP/units/lazyfs@opt-ce.service" 2>&1) || lz_fail "verify: $out"
[[ -z $out ]] || lz_fail "verify warns: $out"
lz_ok "the installed lazyfs@.service: Type=$want, ExecStart=/usr/sbin/lazyfs, verifies"

# A real mount through an fstab line's type, served by the installed binary.
U=$LZ_TMP/under IMG=$LZ_TMP/images MP=$LZ_TMP/mnt
mkdir -p "$U/plain" "$IMG" "$MP" "$LZ_TMP/tree/bin"
echo underlay >"$U/plain/file"
echo 'from the image' >"$LZ_TMP/tree/bin/hello"
mksquashfs "$LZ_TMP/tree" "$IMG/tool.sqfs" -noappend -quiet >/dev/null
LZ_MOUNTS+=("$MP")
cd "$LZ_TMP" # mount(8) would turn SOURCE into a path if ./lazyfs existed here
printf 'lazyfs %s fuse.lazyfs images=%s,underlay=%s,allow_other,_netdev,noauto 0 0\n' \
	"$MP" "$IMG" "$U" >"$LZ_TMP/fstab"
mount -T "$LZ_TMP/fstab" "$MP" 8>&- || lz_fail "mount through the fstab line failed"
[[ $(findmnt -n -o FSTYPE,SOURCE -M "$MP") == "fuse.lazyfs lazyfs" ]] ||
	lz_fail "not a fuse.lazyfs mount: $(findmnt -n -o FSTYPE,SOURCE -M "$MP")"
[[ $(cat "$MP/plain/file") == underlay && $(cat "$MP/tool/bin/hello") == 'from the image' ]] ||
	lz_fail "the mount does not serve the underlay and the image"
json=$(/usr/bin/lazyfsctl --json "$MP" status) || lz_fail "lazyfsctl status: $json"
read -r pid keeper < <(python3 -c 'import json,sys; d = json.loads(sys.argv[1]); print(d["pid"], d["keeper_pid"])' "$json")
[[ $(readlink "/proc/$pid/exe") == /usr/sbin/lazyfs && $(readlink "/proc/$keeper/exe") == /usr/sbin/lazyfs ]] ||
	lz_fail "the mount is served by $(readlink "/proc/$pid/exe"), kept by $(readlink "/proc/$keeper/exe")"
/usr/bin/lazyfsctl "$MP" images | grep -Eq '^tool +ready ' || lz_fail "lazyfsctl images: $(/usr/bin/lazyfsctl "$MP" images)"
lz_ok "fstab line of type fuse.lazyfs: served by /usr/sbin/lazyfs (pid $pid), lazyfsctl status and images"
umount "$MP"
timeout 10 tail --pid="$pid" -f /dev/null || lz_fail "the daemon $pid did not exit after umount"
timeout 10 tail --pid="$keeper" -f /dev/null || lz_fail "the keeper $keeper did not exit after umount"

mount -t fuse.lazyfs lazyfs "$MP" -o "underlay=$U" 8>&- || lz_fail "mount -t fuse.lazyfs failed"
[[ $(cat "$MP/plain/file") == underlay ]] || lz_fail "mount -t fuse.lazyfs does not serve the underlay"
pid=$(/usr/bin/lazyfsctl --json "$MP" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
umount "$MP"
timeout 10 tail --pid="$pid" -f /dev/null || lz_fail "the daemon $pid did not exit after umount"
[[ -d /var/cache/lazyfs ]] || lz_fail "the default cache /var/cache/lazyfs was not made"
lz_ok "mount -t fuse.lazyfs; the default cache /var/cache/lazyfs in use"

# What an administrator adds: an instance's options and its enabled unit.
echo "LAZYFS_OPTIONS=underlay=$U" >/etc/lazyfs/t-deb.conf
wants=/etc/systemd/system/remote-fs.target.wants
[[ -d $wants ]] || { mkdir -p "$wants" && WANTS_MADE=$wants; }
ln -s "$unit" "$wants/lazyfs@t-deb.service"

DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge lazyfs >"$LZ_TMP/purge.log" 2>&1 || {
	cat "$LZ_TMP/purge.log" >&2
	lz_fail "apt-get purge lazyfs failed"
}
! dpkg-query -W -f='${Status}' lazyfs 2>/dev/null | grep -qv 'not-installed' ||
	lz_fail "lazyfs still known to dpkg: $(dpkg-query -W -f='${Status}' lazyfs)"
left=()
while read -r f; do
	# Directories the package shares with others stay.
	[[ -e $f && ! ( -d $f && $f != /etc/lazyfs* && $f != /usr/share/doc/lazyfs* ) ]] && left+=("$f")
done <<<"$installed"
for f in /etc/lazyfs /var/cache/lazyfs "$unit" "$wants/lazyfs@t-deb.service"; do
	[[ -e $f || -L $f ]] && left+=("$f")
done
((${#left[@]} == 0)) || lz_fail "left after purge: ${left[*]}"
lz_ok "apt-get purge lazyfs: its files, /etc/lazyfs, /var/cache/lazyfs and the enabled unit's link are gone"
lz_done
