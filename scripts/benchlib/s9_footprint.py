# SPDX-License-Identifier: BSD-2-Clause
"""Section 9: the daemon's memory with 4000 images registered and 100 of them open,
against one squashfuse_ll per image."""
import os
import shutil

from .config import RSS_OPEN, SIZES
from .runner import BenchError, log, median, proc_mem, rotate


def s9_footprint(b):
    """The daemon's memory with 4000 images registered: after the mount (the
    tracker loaded), after listing the root, and with 100 images resolved and a
    file held open in each; against Debian's squashfuse_ll, one process per image
    (it serves one image), for the same 100 images."""
    p = b.p
    R = {"images": SIZES[-1], "open": RSS_OPEN, "lazyfs": {}, "errors": []}
    b.res["footprint"] = R
    for rep in range(p["rss_reps"]):
        for backend in rotate(["kernel", "squashfuse"], rep):
            R["lazyfs"].setdefault(backend, []).append(s9_lazyfs(b, backend))
    try:
        R["squashfuse_ll"] = s9_squashfuse_ll(b)
    except BenchError as e:
        R["errors"].append(f"squashfuse_ll: {e}")
    k = R["lazyfs"]["kernel"]
    log(f"daemon with {SIZES[-1]} images: VmRSS {median([x['mounted']['VmRSS'] for x in k])} KiB "
        f"mounted, {median([x['open']['VmRSS'] for x in k])} KiB with {RSS_OPEN} open (kernel backend)")


def s9_lazyfs(b, backend):
    env = b.env
    mp, name = b.mp("rss"), f"lazyfs-rss-{backend}"
    pid = env.lazyfs(b.lz, mp, f"images={b.inp.n_dir(SIZES[-1])},underlay={b.empty()},"
                     f"backend={backend}", name)
    fds, out = [], {}
    try:
        out["tracker"] = b.wait_tracker({"log": name})
        out["mounted"] = proc_mem(pid)
        out["listed_entries"] = len(os.listdir(mp))
        out["listed"] = proc_mem(pid)
        for i in range(RSS_OPEN):
            fds.append(os.open(os.path.join(mp, f"img{i:04d}", "README"), os.O_RDONLY))
        out["open"] = proc_mem(pid)
    finally:
        for fd in fds:
            os.close(fd)
        env.umount(mp, pid)
    return out


def s9_squashfuse_ll(b):
    if shutil.which("squashfuse_ll") is None:
        raise BenchError("squashfuse_ll is not installed (Debian package squashfuse)")
    env, tiny = b.env, os.path.join(b.inp.images, "tiny.sqfs")
    pids, fds, out = {}, [], {}
    try:
        for i in range(RSS_OPEN):
            mp = b.mp(f"rss-sqll/img{i:04d}")
            pids[mp] = env.serve(["squashfuse_ll", "-f", tiny, mp], mp, "rss-squashfuse_ll")
            fds.append(os.open(os.path.join(mp, "README"), os.O_RDONLY))
        mems = [proc_mem(pid) for pid in pids.values()]
        out = {k: sum(m[k] for m in mems) for k in ("VmRSS", "VmHWM", "Pss")}
        out["processes"] = len(mems)
    finally:
        for fd in fds:
            os.close(fd)
        for mp, pid in pids.items():
            env.umount(mp, pid)
    return out
