#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Packs this machine's gcc into a relocatable squashfs image: bin/gcc and
# bin/g++ drivers with the lib/gcc/TARGET/VERSION tree beside them (cc1,
# cc1plus, collect2, lto, crt files, libgcc, headers). The drivers find their
# programs relative to their own location; binutils and libc come from the
# system, as on a compiler farm.
#   mkgccimage.sh OUT.sqfs
set -euo pipefail
out=${1:?usage: mkgccimage.sh OUT.sqfs}
gcc_bin=$(readlink -f "$(command -v gcc)")
target=$(gcc -dumpmachine)
version=$(gcc -dumpversion)
libdir=$(dirname "$(gcc -print-prog-name=cc1)")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage" # the image's root: other users run the compiler too (mktemp makes it 0700)

mkdir -p "$stage/bin" "$stage/lib/gcc/$target/$version"
cp "$gcc_bin" "$stage/bin/gcc"
if command -v g++ >/dev/null && [[ -x $libdir/cc1plus ]]; then
	cp "$(readlink -f "$(command -v g++)")" "$stage/bin/g++"
fi
# -L: the tree links to system libraries outside it (libstdc++.so, ...); copy them in.
# Other languages' front ends are left out: they only make the image bigger.
(cd "$libdir" && find . -mindepth 1 -maxdepth 1 \
	! -name gnat1 ! -name f951 ! -name 'ada*' ! -name finclude ! -name 'libgfortran*' \
	! -name 'libobjc*' ! -name 'libgo*' ! -name d21 ! -name go1 ! -name 'cc1obj*' \
	-exec cp -aL {} "$stage/lib/gcc/$target/$version/" \;)
# g++ looks for libstdc++'s headers relative to its prefix too.
for inc in "c++/$version" "$target/c++/$version"; do
	if [[ -d /usr/include/$inc ]]; then
		mkdir -p "$stage/include/$(dirname "$inc")"
		cp -a "/usr/include/$inc" "$stage/include/$inc"
	fi
done
echo "$target $version" > "$stage/TOOLCHAIN"
mksquashfs "$stage" "$out" -noappend -quiet -comp zstd -all-root >/dev/null
