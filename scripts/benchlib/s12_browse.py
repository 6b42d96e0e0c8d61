# SPDX-License-Identifier: BSD-2-Clause
"""Section 12: browsing 4000 images: `ls -l` of the root and `find` over every image,
each on a fresh mount, with the loop devices attached, the daemon's descriptors and
memory after the walk and again once the images have idled out; and `ls -l` of 500 of
them as remote images (remote_mode=images) served by `rclone serve http` on 127.0.0.1,
counting what it fetched."""
import glob
import os
import shutil
import subprocess
import time

from .config import BROWSE_IDLE_S, BROWSE_REMOTE_IMAGES, SIZES
from .runner import (NO_PROXY, free_port, log, median, proc_mem, rclone_env, rotate,
                     wait_ready)

BROWSES = {"ls -l": ["ls", "-l"], "find": ["find"]}


def s12_browse(b):
    p = b.p
    R = {"images": SIZES[-1], "idle_timeout_s": BROWSE_IDLE_S, "runs": {}}
    b.res["browse"] = R
    for rep in range(p["browse_reps"]):
        for backend in rotate(["kernel", "squashfuse"], rep):
            for c in rotate(list(BROWSES), rep):
                R["runs"].setdefault(backend, {}).setdefault(c, []).append(
                    browse_once(b, backend, c))
    for backend, cs in R["runs"].items():
        log(f"browse, {backend}: " + "; ".join(
            f"{c} {median([x['wall'] for x in xs]) * 1e3:.0f} ms, "
            f"{max(x['loops'] for x in xs)} loop devices" for c, xs in cs.items()))
    if shutil.which("rclone") is not None:
        R["remote_images"] = BROWSE_REMOTE_IMAGES
        R["remote"] = [browse_remote(b) for _ in range(p["browse_reps"])]
        log("browse, remote: " + "; ".join(
            f"{run} listing {median([x[run]['listing'] for x in R['remote']]) * 1e3:.0f} ms, "
            f"ls -l {median([x[run]['wall'] for x in R['remote']]) * 1e3:.0f} ms, "
            f"{max(x[run]['fetches'] for x in R['remote'])} fetches"
            for run in R["remote"][0]))


def loops_under(d):
    """Loop devices whose backing file is in directory D."""
    n = 0
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(bf) as f:
                n += os.path.dirname(f.read().strip()) == d
        except OSError:
            pass
    return n


def daemon_state(pid, d):
    return {"loops": loops_under(d), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            **proc_mem(pid)}


def browse_once(b, backend, c):
    env, d = b.env, b.inp.n_dir(SIZES[-1])
    mp, name = b.mp("browse"), f"lazyfs-browse-{backend}"
    keeper = env.lazyfs(b.lz, mp, f"images={d},underlay={b.empty()},backend={backend},"
                        f"idle_timeout={BROWSE_IDLE_S}", name)
    try:
        pid = b.ctl_json(mp, "status")["pid"]  # the worker, not its keeper
        before = daemon_state(pid, d)
        t0 = time.perf_counter()
        r = subprocess.run([*BROWSES[c], mp], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, LC_ALL="C"))
        wall = time.perf_counter() - t0
        after = daemon_state(pid, d)
        # Idle expiry closes the images; the kernel is told to forget their entries.
        time.sleep(BROWSE_IDLE_S * 3 + 2)
        idle = daemon_state(pid, d)
        return {"wall": wall, "rc": r.returncode, "lines": r.stdout.count(b"\n"),
                "errors": r.stderr.decode(errors="replace").count("\n"),
                "loops": after["loops"], "before": before, "after": after, "idle": idle}
    finally:
        env.umount(mp, keeper)


def browse_remote(b):
    """`ls -l` of the first BROWSE_REMOTE_IMAGES images as remote images, twice over one cache: on a fresh mount over
    an empty cache (the remote's listing fetched first), then on a new mount over the same
    cache (the listing cached). Nothing but the listing should be fetched."""
    env, src = b.env, b.inp.n_dir(SIZES[-1])
    d = os.path.join(env.run, "browse-remote-images")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name in sorted(os.listdir(src))[:BROWSE_REMOTE_IMAGES]:
        os.link(os.path.join(src, name), os.path.join(d, name))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cache = os.path.join(env.run, "browse-cache")
    shutil.rmtree(cache, ignore_errors=True)
    serve = env.spawn(["rclone", "serve", "http", d, "--addr", f"127.0.0.1:{port}",
                       "--dir-cache-time", "0s"], "rclone-serve-browse", env=rclone_env())
    out = {}
    try:
        wait_ready(env, serve, "rclone-serve-browse",
                   lambda: NO_PROXY.open(url, timeout=2).status == 200)
        remote = "remote=" + f":http,url='{url}':".replace(",", "\\,")
        for run in ("empty cache", "same cache"):
            mp = b.mp("browse-remote")
            keeper = env.lazyfs(b.lz, mp, f"{remote},remote_mode=images,cache={cache},"
                                f"underlay={b.empty()}", "lazyfs-browse-remote")
            try:
                # The names first (the remote's listing), then `ls -l`: each root looked up.
                t0 = time.perf_counter()
                subprocess.run(["ls", mp], stdout=subprocess.DEVNULL, check=True)
                listing = time.perf_counter() - t0
                t0 = time.perf_counter()
                r = subprocess.run(["ls", "-l", mp], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=dict(os.environ, LC_ALL="C"))
                wall = time.perf_counter() - t0
                cache_stats = b.ctl_json(mp, "stats").get("cache", {})
                out[run] = {"wall": wall, "listing": listing, "rc": r.returncode,
                            "lines": r.stdout.count(b"\n"),
                            "errors": r.stderr.decode(errors="replace").count("\n"),
                            "fetches": cache_stats.get("fetches", -1),
                            "fetch_bytes": cache_stats.get("fetch_bytes", -1),
                            "loops": loops_under(cache)}
            finally:
                env.umount(mp, keeper)
    finally:
        env.stop_server(serve)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)
    return out
