# SPDX-License-Identifier: BSD-2-Clause
"""Section 2: the first open of a file in a cold image (lazyfs mounts it) against a
warm open."""
import glob
import os

from .runner import log, median, rotate


def s2_cold_open(b):
    """Each round mounts lazyfs afresh; half of the images have their file in the
    host page cache (read just before), the other half were evicted from it
    (POSIX_FADV_DONTNEED), so their first open also reads the image from disk."""
    env, p = b.env, b.p
    mp = b.mp("cold")
    empty = os.path.join(env.run, "empty")
    os.makedirs(empty, exist_ok=True)
    out = {"cached": {"cold_s": [], "warm_s": []}, "evicted": {"cold_s": [], "warm_s": []}}
    images = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(b.inp.cold, "*.sqfs")))
    for rnd in range(p["cold_rounds"]):
        chosen = rotate(images, rnd * 7)[:p["cold_n"]]
        half = len(chosen) // 2
        sets = {"cached": chosen[:half], "evicted": chosen[half:]}
        # Passthrough (the default), as the rows say: in cached mode an open sends nothing.
        pid = env.lazyfs(b.lz, mp, f"images={b.inp.cold},underlay={empty},backend=kernel,"
                         "open_mode=passthrough", f"lazyfs-cold-{rnd}")
        try:
            for kind, names in sets.items():
                for e in names:
                    fd = os.open(os.path.join(b.inp.cold, e + ".sqfs"), os.O_RDONLY)
                    try:
                        if kind == "cached":
                            while os.read(fd, 1 << 20):
                                pass
                        else:
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)
            # One list, kinds alternating, so neither pays for coming first after the mount.
            order = []
            for c, e in zip(sets["cached"], sets["evicted"]):
                pair = [("cached", c), ("evicted", e)]
                order += pair if rnd % 2 == 0 else pair[::-1]
            lst = b.write_list("cold.list", [f"{mp}/{e}/hello.txt" for _, e in order])
            r = b.helper_json("coldwarm", lst, p["cold_warm"])
            for (kind, _), c, w in zip(order, r["cold"], r["warm"]):
                out[kind]["cold_s"].append(c / 1e9)
                out[kind]["warm_s"].append(w / 1e9)
        finally:
            env.umount(mp, pid)
    for d in out.values():
        d["diff_s"] = [c - w for c, w in zip(d["cold_s"], d["warm_s"])]
    b.res["cold_open"] = out
    log("cold open: " + ", ".join(f"image file {k}: {median(d['cold_s']) * 1e6:.0f} µs"
                                  for k, d in out.items())
        + f"; warm {median(out['cached']['warm_s']) * 1e6:.1f} µs")
