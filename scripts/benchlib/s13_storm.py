# SPDX-License-Identifier: BSD-2-Clause
"""Section 13: a stat storm, what a build system's dependency scan does: STORM[3]
processes statting distinct paths spread over STORM[0] images, with cold dentries
(every cache dropped, mounts kept) and warm, against loop mounts of the same images."""
import os
import random
import time

from .config import STORM
from .runner import log, median, rotate

STORM_SYSTEMS = {"lazyfs-kernel": "backend=kernel", "lazyfs-squashfuse": "backend=squashfuse"}


def s13_storm(b):
    p, env, inp = b.p, b.env, b.inp
    paths = inp.storm_paths()
    random.Random(13).shuffle(paths)
    R = {"images": STORM[0], "paths": len(paths), "procs": STORM[3], "warm": [], "cold": [],
         "errors": {}}
    b.res["storm"] = R
    roots, pids, loops = {}, {}, []
    try:
        loop_root = b.mp("storm-loop")
        for i in range(STORM[0]):
            m = os.path.join(loop_root, f"s{i:02d}")
            env.loop_mount(os.path.join(inp.storm, f"s{i:02d}.sqfs"), m)
            loops.append(m)
        roots["loop"] = loop_root
        for v, opts in STORM_SYSTEMS.items():
            mp = b.mp(f"storm-{v}")
            pids[v] = (mp, env.lazyfs(b.lz, mp, f"images={inp.storm},underlay={b.empty()},"
                                      f"{opts}", f"storm-{v}"))
            roots[v] = mp
        names = list(roots)
        for v in names:
            storm(roots[v], paths)  # resolves lazyfs's images, fills the caches
        for when, rounds in (("warm", p["storm_rounds"]), ("cold", p["storm_cold"])):
            for rnd in range(rounds):
                row = {}
                for v in rotate(names, rnd):
                    if when == "cold":
                        b.drop_caches()
                    row[v], errs = storm(roots[v], paths)
                    if errs:
                        R["errors"][v] = R["errors"].get(v, 0) + errs
                R[when].append(row)
    finally:
        for v, (mp, pid) in pids.items():
            env.umount(mp, pid)
        for m in loops:
            env.umount(m)
    for when in ("warm", "cold"):
        log(f"stat storm, {when}: " + ", ".join(
            f"{v} {median([x[v] for x in R[when]]) * 1e3:.0f} ms" for v in R[when][0]))


def storm(root, paths):
    """STORM[3] forked processes lstat their share of PATHS under ROOT: the wall time
    until all are done, and the number of failed lstat calls."""
    n = STORM[3]
    t0 = time.perf_counter()
    kids = []
    for k in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            errs = 0
            for rel in paths[k::n]:
                try:
                    os.lstat(os.path.join(root, rel))
                except OSError:
                    errs += 1
            os.write(w, str(errs).encode())
            os._exit(0)
        os.close(w)
        kids.append((pid, r))
    errs = 0
    for pid, r in kids:
        errs += int(os.read(r, 64) or b"0")
        os.close(r)
        os.waitpid(pid, 0)
    return time.perf_counter() - t0, errs
