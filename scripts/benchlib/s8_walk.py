# SPDX-License-Identifier: BSD-2-Clause
"""Section 8: `ls -lR` and `find` over an image of 10k entries, warm and cold."""
import os
import subprocess
import time

from .config import WALKS
from .rep_format import fmt_t
from .runner import log, median, rotate


def s8_walk(b):
    """`ls -lR` and `find` over an image of about 10k entries: warm (each walked
    before), and cold (every cache dropped before each walk, then a second to let the
    FUSE servers take the FORGETs; the mounts stay, so lazyfs's image stays resolved
    and only the kernel's caches are empty)."""
    env, p, inp = b.env, b.p, b.inp
    R = {"entries": inp.tree_entries(), "commands": list(WALKS), "skipped": {},
         "warm": [], "cold": [], "requests": {}}
    b.res["walk"] = R
    ms = {}
    try:
        ms = b.mount_systems(["loop", "lazyfs-passthrough", "lazyfs-cached",
                                 "lazyfs-squashfuse-passthrough", "squashfuse_ll"],
                                inp.tree_image, "walk", R["skipped"])
        roots = {"native": inp.tree_unpacked, **{v: m["root"] for v, m in ms.items()}}
        names = list(roots)
        walk = lambda v, c: walk_once(b, v, c, roots[v])
        for v in names:
            for c in WALKS:
                walk(v, c)  # warm-up
        for rnd in range(p["walk_rounds"]):
            row = {c: {} for c in WALKS}
            for v in rotate(names, rnd):
                for c in rotate(list(WALKS), rnd):
                    row[c][v] = walk(v, c)
            R["warm"].append(row)
        for rnd in range(p["walk_cold"]):
            row = {c: {} for c in WALKS}
            for v in rotate(names, rnd):
                for c in rotate(list(WALKS), rnd):
                    b.drop_caches_settled()
                    row[c][v] = walk(v, c)
            R["cold"].append(row)
        for v, m in ms.items():
            if m["fuse"] is not None:
                R["requests"][v] = s8_requests(b, v, m, walk)
    finally:
        b.unmount_systems(ms)
    for when in ("warm", "cold"):
        log(f"walk, {when}: " + "; ".join(f"{c}: " + ", ".join(
            f"{v} {fmt_t(median([x[c][v]['wall'] for x in R[when]]))}" for v in names)
            for c in WALKS))


def walk_once(b, v, c, root):
    env_vars = dict(os.environ, LC_ALL="C")
    w, cpu = b.timed([*WALKS[c], root], b.env.run, env_vars, f"walk-{v}.log",
                        stdout=subprocess.DEVNULL)
    return {"wall": w, "cpu": cpu}


def s8_requests(b, v, m, walk):
    """FUSE requests of one walk of each kind, warm then cold (untimed)."""
    out = {"warm": {}, "cold": {}}
    for when in out:
        for c in WALKS:
            if when == "cold":
                b.drop_caches()
            t = b.env.trace(m["fuse"])
            try:
                walk(v, c)
                time.sleep(0.3)
                out[when][c] = t.counts()
            finally:
                t.stop()
    return out
