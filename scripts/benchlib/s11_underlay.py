# SPDX-License-Identifier: BSD-2-Clause
"""Section 11: walking a large underlay under a small descriptor limit: `find`
and `ls -lR` over lazyfs's underlay-only mount with the daemon under
RLIMIT_NOFILE 1024 (it keeps at most a quarter of it open for inodes and
reopens the rest by file handle) and under the machine's hard limit (nothing
reopened), against the same walk of the directory itself."""
import os
import resource
import subprocess
import time

from .config import UNDERLAY_TREES
from .runner import BenchError, log, median, rotate


def s11_underlay(b):
    env, p = b.env, b.p
    n = UNDERLAY_TREES[b.a.quick]
    tree = b.inp.underlay_tree(n)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limits = {"nofile=1024": 1024, f"nofile={hard}": hard}
    R = {"entries": n, "limits": list(limits), "warm": [], "cold": [], "stats": {}, "errors": []}
    b.res["underlay"] = R
    mps = {}
    try:
        for name, lim in limits.items():
            mp = b.mp(f"underlay-{lim}")
            pid = env.lazyfs(b.lz, mp, f"underlay={tree},bpf=off", f"lazyfs-underlay-{lim}",
                             preexec_fn=lambda lim=lim: resource.setrlimit(
                                 resource.RLIMIT_NOFILE, (lim, lim)))
            mps[name] = (mp, pid)
        roots = {"native": tree, **{k: v[0] for k, v in mps.items()}}
        for when, rounds in (("warm", p["underlay_rounds"]), ("cold", p["underlay_rounds"])):
            for v in roots:  # warm-up (and, for lazyfs, the inodes made once)
                if when == "warm":
                    walk(b, roots[v], "find", R)
            for rnd in range(rounds):
                row = {}
                for v in rotate(list(roots), rnd):
                    for c in ("find", "ls -lR"):
                        if when == "cold":
                            b.drop_caches()
                        row.setdefault(c, {})[v] = walk(b, roots[v], c, R)
                R[when].append(row)
        for name, (mp, pid) in mps.items():
            R["stats"][name] = b.ctl_json(mp, "stats").get("inodes", {})
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                worker = int(f.read().split()[0])
            R["stats"][name]["worker_fds"] = len(os.listdir(f"/proc/{worker}/fd"))
    finally:
        for mp, pid in mps.values():
            env.umount(mp, pid)
    for when in ("warm", "cold"):
        log(f"underlay walk of {n:,} entries, {when}: " + "; ".join(
            f"{c}: " + ", ".join(f"{v} {median([x[c][v] for x in R[when]]):.2f} s" for v in roots)
            for c in ("find", "ls -lR")))


def walk(b, root, command, R):
    """One walk; its wall time. A failed walk (EMFILE...) is recorded, not timed."""
    argv = ["find", root] if command == "find" else ["ls", "-lR", root]
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, LC_ALL="C"))
    took = time.monotonic() - t0
    if r.returncode != 0:
        R["errors"].append(f"{command} {root}: exit {r.returncode}: {r.stderr.strip()[-200:]}")
        raise BenchError(f"{command} over {root} failed: {r.stderr.strip()[-200:]}")
    return took
