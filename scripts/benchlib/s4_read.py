# SPDX-License-Identifier: BSD-2-Clause
"""Section 4: sequential reads of a 512 MiB file, warm and cold (every cache
dropped), and random 4 KiB reads of it, warm and cold."""
import os
import time

from .config import BIG_MIB, IMAGE_SYSTEMS
from .runner import BenchError, log, loops_backed_by, median, read_all, rotate


def s4_read(b):
    """Fresh mounts per setup (the speed of a warm read depends on where its page
    cache landed in memory, which differs from one mount to the next), one first
    read each, then rounds of warm reads in rotating order, warm random 4 KiB reads,
    and in the first setups cold reads, each after dropping every cache. Besides a
    loop mount of its own, each setup mounts the loop device lazyfs (passthrough)
    set up for the image: the kernel reuses that superblock, so this mount and
    lazyfs read the very same page cache, which isolates the cost of the path from
    the luck of placement."""
    env, p, inp = b.env, b.p, b.inp
    size = BIG_MIB << 20
    big = os.path.join(inp.main, "big.sqfs")
    R = {"bytes": size, "buffer": 1 << 20, "setups": p["read_setups"], "first_read_Bps": [],
         "rounds_Bps": [], "requests_per_read": {}, "notes": [], "skipped": {},
         "rand_block": 4096, "rand_warm_n": p["rand_warm"], "rand_cold_n": p["rand_cold"],
         "rand_warm": [], "cold_Bps": [], "rand_cold": [], "requests_per_cold_read": {}}
    b.res["read"] = R
    variants = IMAGE_SYSTEMS
    for setup in range(p["read_setups"]):
        ms, shared = {}, os.path.join(env.run, "static", "big-shared")
        try:
            ms = b.mount_systems(variants, big, "read", R["skipped"])
            variants = list(ms)  # what failed once is not tried again
            files = {v: os.path.join(m["root"], "big.bin") for v, m in ms.items()}
            before = loops_backed_by(big)
            os.stat(files["lazyfs-passthrough"])  # lazyfs mounts the image now
            new = loops_backed_by(big) - before
            if len(new) == 1:
                env.dev_mount(new.pop(), shared)
                files = {"loop-shared": os.path.join(shared, "big.bin"), **files}
            elif setup == 0:
                R["notes"].append(f"could not tell lazyfs's loop device: {sorted(new)}")
            s4_setup(b, setup, files, ms)
        finally:
            env.umount(shared)
            b.unmount_systems(ms)
    log("read: " + ", ".join(f"{v} {median([r[v] for r in R['rounds_Bps'] if v in r]) / 1e9:.2f} GB/s"
                             for v in R["rounds_Bps"][0] if v != "setup"))
    if R["cold_Bps"]:
        log("cold read: " + ", ".join(f"{v} {median([r[v] for r in R['cold_Bps']]) / 1e9:.2f} GB/s"
                                      for v in R["cold_Bps"][0]))


def read_Bps(b, path):
    r = b.helper_json("read", path, 1 << 20)
    if r["bytes"] != BIG_MIB << 20:
        raise BenchError(f"{path}: read {r['bytes']} bytes, expected {BIG_MIB << 20}")
    return r["bytes"] / (r["ns"] / 1e9)


def s4_setup(b, setup, files, ms):
    env, p, R = b.env, b.p, b.res["read"]
    names = list(files)
    alone = [v for v in names if v != "loop-shared"]  # the shared mount would steal passthrough's
    rand = lambda v, n: b.helper_json("randread", files[v], R["rand_block"], n, setup + 1)
    # The image file in the host page cache for every first read, whatever the cold
    # reads of the setup before left there.
    read_all(os.path.join(b.inp.main, "big.sqfs"))
    R["first_read_Bps"].append({v: read_Bps(b, files[v]) for v in rotate(alone, setup)})
    for rnd in range(p["read_reps"]):
        R["rounds_Bps"].append({"setup": setup, **{v: read_Bps(b, files[v])
                                                   for v in rotate(names, rnd + setup)}})
    R["rand_warm"].append({v: rand(v, p["rand_warm"]) for v in rotate(names, setup)})
    if setup == 0:
        for v, m in ms.items():
            if m["fuse"] is None:
                continue
            t = env.trace(m["fuse"])
            try:
                b.helper_json("read", files[v], 1 << 20)
                time.sleep(0.3)
                R["requests_per_read"][v] = t.counts()
            finally:
                t.stop()
    if setup >= p["read_cold"]:
        return
    row, rrow = {}, {}
    for v in rotate(alone, setup):
        b.drop_caches()
        row[v] = read_Bps(b, files[v])
    for v in rotate(alone, setup):
        b.drop_caches()
        rrow[v] = rand(v, p["rand_cold"])
    R["cold_Bps"].append(row)
    R["rand_cold"].append(rrow)
    if setup == 0:  # untimed: what a cold read asks of the daemon
        for v, m in ms.items():
            if m["fuse"] is None:
                continue
            b.drop_caches()
            t = env.trace(m["fuse"])
            try:
                b.helper_json("read", files[v], 1 << 20)
                time.sleep(0.3)
                R["requests_per_cold_read"][v] = t.counts()
            finally:
                t.stop()
