# SPDX-License-Identifier: BSD-2-Clause
"""What the bench measures and how often: the sizes of its inputs, the systems it
compares and the repetitions of the quick and full profiles."""
import os
import subprocess

# scripts/benchlib/config.py: the top of the tree is three levels up.
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = (10, 1000, 4000)
STATIC_N = 50
COLD_IMAGES = 50
FILES = (10, 50)  # the open-loop image: 10 dirs of 50 files
BIG_MIB = 512
# Section 6: the remote tree (objs/ of 1 MiB objects, ten-N.bin of 10 MiB, huge.bin).
REMOTE_OBJS = 200
REMOTE_TEN = 8
REMOTE_HUGE_MIB = 256
# Section 15: remote objects at scale. The big directory's objects (SCALE_OBJ_BYTES
# each, how many by profile), the warm set opened while cold fetches or evictions run,
# how many cold fetches run at once (one per loader thread) and their objects' size.
SCALE_OBJ_BYTES = 512
SCALE_WARM = 200
SCALE_LOADERS = 64
SCALE_COLD_BYTES = 16 << 10
# Small cold objects (SCALE_OBJ_BYTES each) in a directory of their own, read one after
# the other on fresh mounts: how many the directory holds, by profile (scale_small).
# The image entry for the system gcc, e.g. gcc-12: CC=<mount>/gcc-12/bin/gcc.
# Section 5's preprocess-only run: zlib's sources, then a file whose headers (391 with
# gcc 12) all come from the image.
PP_COMMANDS = "`gcc -E *.c` in zlib's tree, then `g++ -E` of a file with " \
              "`#include <bits/stdc++.h>` and `<x86intrin.h>`"
# Section 8's walks of the tree (stdout to /dev/null, LC_ALL=C).
WALKS = {"ls -lR": ["ls", "-lR"], "find": ["find"]}
GCC_ENTRY = "gcc-" + subprocess.run(["gcc", "-dumpversion"], stdout=subprocess.PIPE,
                                    text=True).stdout.strip().split(".")[0]
TRACEFS = "/sys/kernel/tracing"

# Section 8: the walked image, 10 dirs x 10 subdirs x 100 entries (95 files, 5 symlinks).
TREE = (10, 10, 100)
BROWSE_IDLE_S = 2  # section 12: idle_timeout of the browsed mounts
# Section 12's remote browse: rclone's http backend asks every listed file for its size
# and date (a HEAD each), about 60 s for 4,000 from `rclone serve http` here.
BROWSE_REMOTE_IMAGES = 500
COLD_SETTLE_S = 1.0  # section 8: after drop_caches, before a cold walk (the FORGETs)
# Section 13: STORM[0] images of STORM[1] dirs x STORM[2] files, statted by STORM[3] processes.
STORM = (50, 20, 100, 8)
RSS_OPEN = 100  # section 9: images held open in the daemon with 4000 registered
# Section 11: entries of the underlay walked under nofile=1024, by --quick.
UNDERLAY_TREES = {True: 100_000, False: 1_000_000}
URING = "/sys/module/fuse/parameters/enable_uring"

# How each image-backed system serves an image: lazyfs's options, or the program.
SYSTEMS = {
    "lazyfs-passthrough": "backend=kernel,open_mode=passthrough",
    "lazyfs-cached": "backend=kernel,open_mode=cached",
    "lazyfs-squashfuse-passthrough": "backend=squashfuse,open_mode=passthrough",
    "lazyfs-squashfuse-cached": "backend=squashfuse,open_mode=cached",
    "lazyfs-io_uring": "backend=kernel,open_mode=passthrough,io_uring",
}
# Systems that may be missing on a machine (no io_uring in the kernel, no
# squashfuse_ll): a section goes on without them and says why.
OPTIONAL = ("lazyfs-io_uring", "squashfuse_ll", "passthrough_hp")
IMAGE_SYSTEMS = ["loop", *SYSTEMS, "squashfuse_ll"]

PROFILES = {
    "quick": dict(ready_reps=9, static_reps=2, cold_rounds=1, cold_n=30, cold_warm=5,
                  open_rounds=3, open_passes=20, cpu_opens=20000, cpu_reps=1,
                  read_setups=2, read_reps=3, read_cold=1, rand_warm=20000, rand_cold=300,
                  build_reps=1, pp_inner=2, walk_rounds=3, walk_cold=1, rss_reps=1,
                  remote_open_rounds=3, remote_open_passes=20, remote_cold_rounds=2,
                  remote_cold_n=4, remote_read_reps=3, remote_anatomy=2,
                  bpf_opens=1000000, bpf_rounds=4, bpf_events=200000, early_rounds=1,
                  prefetch_reps=2, restart_crashes=5, restart_remounts=2,
                  underlay_rounds=1, browse_reps=1, storm_rounds=2, storm_cold=1,
                  scale_objects=15000, scale_evict=1000, scale_ready_reps=3, scale_ls_rounds=1,
                  scale_ls_later=2, scale_load_rounds=1, scale_cold_per_round=640,
                  scale_open_passes=5, scale_evict_passes=2, scale_small=2000,
                  scale_small_reads=300, scale_small_rounds=1),
    "full": dict(ready_reps=21, static_reps=7, cold_rounds=5, cold_n=30, cold_warm=9,
                 open_rounds=9, open_passes=60, cpu_opens=100000, cpu_reps=3,
                 read_setups=10, read_reps=5, read_cold=5, rand_warm=100000, rand_cold=1000,
                 build_reps=9, pp_inner=3, walk_rounds=7, walk_cold=3, rss_reps=3,
                 remote_open_rounds=15, remote_open_passes=60, remote_cold_rounds=6,
                 remote_cold_n=REMOTE_TEN, remote_read_reps=15, remote_anatomy=6,
                 bpf_opens=2000000, bpf_rounds=8, bpf_events=1000000, early_rounds=3,
                 prefetch_reps=5, restart_crashes=20, restart_remounts=5,
                 underlay_rounds=2, browse_reps=3, storm_rounds=5, storm_cold=3,
                 scale_objects=150000, scale_evict=10000, scale_ready_reps=11,
                 scale_ls_rounds=2, scale_ls_later=3, scale_load_rounds=3,
                 scale_cold_per_round=8000, scale_open_passes=10, scale_evict_passes=3,
                 scale_small=20000, scale_small_reads=2000, scale_small_rounds=3),
}
