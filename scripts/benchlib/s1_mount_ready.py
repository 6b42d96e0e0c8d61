# SPDX-License-Identifier: BSD-2-Clause
"""Section 1: the mount-ready time of lazyfs with 10, 1000 and 4000 images, against
static `mount -t squashfs -o loop,ro` of 50 images extrapolated to 4000."""
import glob
import os
import subprocess
import time

from .config import SIZES, STATIC_N
from .runner import BenchError, is_mounted, log, median, rotate


def s1_mount_ready(b):
    env, p = b.env, b.p
    mp = b.mp("ready")
    os.makedirs(mp, exist_ok=True)
    ready = {n: [] for n in SIZES}
    static_total, static_each = [], []
    cold = sorted(glob.glob(os.path.join(b.inp.cold, "*.sqfs")))[:STATIC_N]
    for rep in range(p["ready_reps"]):
        for n in rotate(list(SIZES), rep):
            t0 = time.perf_counter()
            r = subprocess.run([b.lz, "-o", f"images={b.inp.n_dir(n)}", mp],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if r.returncode == 0:
                os.stat(mp)
            t1 = time.perf_counter()
            pid = env.find_daemon("lazyfs", mp)
            if pid is not None:
                env.procs[pid] = None
            if r.returncode != 0 or pid is None or not is_mounted(mp):
                raise BenchError(f"lazyfs -o images=... {mp}: rc {r.returncode}, "
                                 f"daemon {pid}: {r.stderr.strip()}")
            env.mounted.append(mp)
            ready[n].append(t1 - t0)
            env.umount(mp, pid)
        if rep < p["static_reps"]:
            mps = [os.path.join(env.run, "static-many", f"m{i:02d}") for i in range(len(cold))]
            each = []
            try:
                for img, m in zip(cold, mps):
                    os.makedirs(m, exist_ok=True)
                    t0 = time.perf_counter()
                    env.loop_mount(img, m)
                    each.append(time.perf_counter() - t0)
            finally:
                for m in mps:
                    env.umount(m)
            static_total.append(sum(each))
            static_each.extend(each)
    b.res["mount_ready"] = {
        "lazyfs_s": {str(n): ready[n] for n in SIZES},
        "static_mounts": len(cold),
        "static_total_s": static_total,
        "static_each_s": static_each,
        "static_extrapolated_4000_s": [t * 4000 / len(cold) for t in static_total],
    }
    log("mount-ready: " + ", ".join(f"{n} images {median(ready[n]) * 1e3:.1f} ms" for n in SIZES)
        + f"; static {len(cold)} mounts {median(static_total):.2f} s")
