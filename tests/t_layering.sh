#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The structure holds (docs/ARCHITECTURE.md): includes point down the layers,
# only the FUSE glue sees FUSE requests, C files open with their license line
# and headers then with their contract, and
# functions, files and scripts stay short. The checker is first shown a tree
# that breaks each rule, so a checker that sees nothing cannot pass.
. "${TESTS_SRCDIR:-$(dirname "$0")}/lib.sh"
LZ_TMP=$(mktemp -d /tmp/lazyfs-test.XXXXXX)
trap lz_cleanup EXIT
top=$(cd "$TESTS_SRCDIR/.." && pwd)
check=$TESTS_SRCDIR/layering.py

# A small tree that breaks every rule once.
B=$LZ_TMP/bad
mkdir -p "$B/common" "$B/fscore" "$B/fs" "$B/images" "$B/cache/store" "$B/scripts"
printf '/* The glue. */\n#define FUSE_USE_VERSION 317\n#include <fuse_lowlevel.h>\n' >"$B/fs/ops.h"
printf '/* A core header. */\nstruct x;\n' >"$B/fscore/x.h"
printf '#include "config.h"\n#include "fs/ops.h"\nvoid f(fuse_req_t req);\n' >"$B/fscore/up.c"
printf '#include "fscore/x.h"\n' >"$B/common/low.c"
printf '#include "cache/store/s.h"\n' >"$B/images/side.c"
printf '/* The store. */\n' >"$B/cache/store/s.h"
printf '#include <fuse_lowlevel.h>\n' >"$B/images/lib.c"
printf 'struct y;\n' >"$B/fscore/bare.h"
# 121 lines (signature, braces and body) breaks the rule; 120 does not.
body() { for i in $(seq 1 "$1"); do echo "	i++;"; done; }
{ echo "int long_one(void)"; echo "{"; body 118; echo "}"; } >"$B/fscore/long.c"
{ echo "int just_fits(void)"; echo "{"; body 117; echo "}"; } >"$B/fscore/fits.c"
for i in $(seq 1 901); do echo "int v$i;"; done >"$B/fscore/big.c"
for i in $(seq 1 1201); do echo "# $i"; done >"$B/scripts/huge"
# Every C file opens with its license line but images/lib.c.
for f in "$B"/*/*.[ch] "$B"/cache/store/*.h; do
	[[ $f == */images/lib.c ]] && continue
	{ echo "/* SPDX-License-Identifier: BSD-2-Clause */"; cat "$f"; } >"$f.new" && mv "$f.new" "$f"
done
out=$(python3 "$check" "$B") && lz_fail "the checker passed a tree that breaks every rule"
expect() {
	grep -qF -- "$1" <<<"$out" || lz_fail "not reported: $2 (got: $out)"
	lz_ok "reported: $2"
}
expect "fscore/up.c:3: includes fs/ops.h: fscore/ (layer 3) may not use fs/ (layer 5)" "an include running up"
expect "common/low.c:2: includes fscore/x.h" "an include from the bottom layer"
expect "images/side.c:2: includes cache/store/s.h: images/ (layer 1) may not use cache/store/" "an include to a sibling layer"
expect "fscore/up.c: uses fuse_req_t outside the FUSE glue" "fuse_req_t outside fs/"
expect "images/lib.c: includes libfuse outside fs/ and upgrade/" "libfuse below the glue"
expect "fscore/bare.h: a header opens with its contract" "a header without its contract"
expect "fscore/long.c:2: long_one() is 121 lines" "a 121-line function"
expect "fscore/big.c: 902 lines" "a 902-line file"
expect "images/lib.c: a source file opens with its SPDX-License-Identifier line" "a C file without its license line"
expect "scripts/huge: 1201 lines" "a 1,201-line script"
[[ $(grep -c . <<<"$out") -eq 10 ]] || lz_fail "more reported than broken: $out"
lz_ok "nothing else reported (a 120-line function neither)"

# And this tree.
out=$(python3 "$check" "$top") || lz_fail "the tree breaks its structure:
$out"
lz_ok "this tree keeps its structure ($(ls "$top"/{common,images,cache,cache/store,cache/rclone,bpf,fscore,upgrade,control,fs,tools}/*.[ch] | wc -l) product files)"
lz_done
