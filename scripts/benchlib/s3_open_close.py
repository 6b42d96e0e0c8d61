# SPDX-License-Identifier: BSD-2-Clause
"""Section 3: warm open+close latency on every system, the native dir and libfuse's
passthrough_hp (built from the bootstrap's 3.18 source); CPU time of the server and
of the opener per 100k warm opens."""
import glob
import os
import time

from .config import IMAGE_SYSTEMS
from .runner import children_cpu, log, median, proc_cpu, rotate


def s3_open_close(b):
    env, p, inp = b.env, b.p, b.inp
    rel = inp.files_list()
    skipped, ms = {}, {}
    try:
        ms = b.mount_systems(IMAGE_SYSTEMS, os.path.join(inp.main, "files.sqfs"), "open",
                                skipped)
        if inp.php_error is None:
            mp = b.mp("php")
            pid = env.serve([inp.php, "--foreground", inp.unpacked, mp], mp, "passthrough_hp")
            ms["passthrough_hp"] = dict(root=mp, mp=mp, fuse=mp, pid=pid, log="passthrough_hp",
                                        lazyfs=False)
        else:
            skipped["passthrough_hp"] = inp.php_error
        roots = {"native": inp.unpacked, **{v: m["root"] for v, m in ms.items()}}
        names = list(roots)
        lists = {v: b.write_list(f"open-{v}.list", [os.path.join(roots[v], r) for r in rel])
                 for v in names}
        rounds = []
        for rnd in range(p["open_rounds"]):
            row = {}
            for v in rotate(names, rnd):
                row[v] = b.helper_json("open", lists[v], p["open_passes"])
            rounds.append(row)
        # One traced pass per FUSE mount: requests per open+close.
        reqs = {}
        for v, m in ms.items():
            if m["fuse"] is None:
                continue
            t = env.trace(m["fuse"])
            try:
                b.helper_json("open", lists[v], 1)  # 2 x 500 open+close
                time.sleep(0.5)  # RELEASE is sent in the background after close
                c = t.counts()
            finally:
                t.stop()
            reqs[v] = {k: n / (2 * len(rel)) for k, n in c.items()}
        cpu = s3_cpu(b, names, lists, ms)
    finally:
        b.unmount_systems(ms)
    b.res["open_close"] = {"files": len(rel), "passes": p["open_passes"], "rounds": rounds,
                              "requests_per_open": reqs, "cpu": cpu, "skipped": skipped,
                              "passthrough_hp": inp.php_error or "built from " + os.path.basename(
                                  glob.glob("/var/cache/lazyfs-bootstrap/src/fuse3-*")[-1])}
    log("open+close p50: " + ", ".join(
        f"{v} {median([r[v]['p50'] for r in rounds]) / 1e3:.1f} µs" for v in names))


def s3_cpu(b, names, lists, ms):
    """CPU time per 100k warm open+close: the opener's (its system time is the
    kernel's open path) and the server's, all its threads (/proc/PID/stat, which
    keeps the time of threads that have exited)."""
    p, n = b.p, len(b.inp.files_list())
    passes = max(1, p["cpu_opens"] // n)
    opens = n * (passes + 1)  # the helper's untimed pass included
    out = {v: [] for v in names}
    for rep in range(p["cpu_reps"]):
        for v in rotate(names, rep):
            pid = ms[v]["pid"] if v in ms else None
            d0, c0 = pid and proc_cpu(pid), children_cpu()
            b.helper_json("open", lists[v], passes)
            c1 = children_cpu()
            if pid:
                time.sleep(0.3)  # the last RELEASEs follow the closes in the background
            out[v].append({"opener_s": (c1 - c0) * 1e5 / opens,
                           "server_s": pid and (proc_cpu(pid) - d0) * 1e5 / opens})
    log("CPU per 100k warm opens, server (opener): " + ", ".join(
        f"{v} {median([x['server_s'] or 0 for x in xs]):.2f} s "
        f"({median([x['opener_s'] for x in xs]):.2f} s)" for v, xs in out.items()))
    return {"opens": opens, "per_100k": out}
