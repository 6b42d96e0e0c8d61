# SPDX-License-Identifier: BSD-2-Clause
"""Section 10: a crashed worker: time from SIGKILL to serving again, the longest
stall readers saw across the crashes, and the keeper's memory; against what an
operator does without a keeper (unmount the dead mount, mount again)."""
import os
import signal
import threading
import time

from .config import SIZES
from .runner import BenchError, log, median, proc_mem


class Readers:
    """Threads reading files under the mount in a loop: the longest single
    open+read+close (the stall a reader saw) and the errors."""

    def __init__(self, paths, n):
        self.paths, self.stop = paths, threading.Event()
        self.longest, self.errors, self.reads = 0.0, [], 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def run(self, i):
        path = self.paths[i % len(self.paths)]
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.read(fd, 65536)
                finally:
                    os.close(fd)
            except OSError as e:
                with self.lock:
                    self.errors.append(f"{path}: {e.strerror}")
            took = time.monotonic() - t0
            with self.lock:
                self.reads += 1
                self.longest = max(self.longest, took)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def worker_of(keeper):
    """The keeper's child: the worker that serves the mount."""
    with open(f"/proc/{keeper}/task/{keeper}/children") as f:
        kids = [int(x) for x in f.read().split()]
    if not kids:
        raise BenchError(f"keeper {keeper} has no worker")
    return kids[0]


def s10_restart(b):
    """SIGKILL of the worker under 4 readers (a file in an image, a file of the
    underlay), `crashes` times: how long until a request that waits on the dead
    worker is answered by the next one, the longest any read took meanwhile, and
    the keeper's memory; then the remount an operator would do without a keeper."""
    env, p = b.env, b.p
    under = os.path.join(env.run, "restart-under")
    os.makedirs(under, exist_ok=True)
    with open(os.path.join(under, "file"), "w") as f:
        f.write("underlay file\n" * 100)
    images = b.inp.n_dir(SIZES[0])
    opts = (f"images={images},underlay={under},restart_limit=1000,restart_window=1")
    R = {"crashes": p["restart_crashes"], "restart": [], "remount": [], "readers": 4}
    b.res["restart"] = R
    mp = b.mp("restart")
    keeper = env.lazyfs(b.lz, mp, opts, "lazyfs-restart")
    try:
        R["keeper"] = proc_mem(keeper)
        paths = [os.path.join(mp, "img0000", "README"), os.path.join(mp, "file")]
        for path in paths:
            os.stat(path)
        with Readers(paths, R["readers"]) as rd:
            for i in range(R["crashes"]):
                old = worker_of(keeper)
                R.setdefault("worker", proc_mem(old))
                os.kill(old, signal.SIGKILL)
                t0 = time.monotonic()
                try:  # a name never looked up: only a live worker answers it
                    os.stat(os.path.join(mp, f"absent-{i}"))
                except FileNotFoundError:
                    pass
                R["restart"].append(time.monotonic() - t0)
                if worker_of(keeper) == old:
                    raise BenchError("the same worker answered after SIGKILL")
                time.sleep(0.2)
        R["reads"], R["longest_stall"], R["errors"] = rd.reads, rd.longest, rd.errors[:5]
        R["error_count"] = len(rd.errors)
        R["keeper_after"] = proc_mem(keeper)
    finally:
        env.umount(mp, keeper)
    for i in range(p["restart_remounts"]):
        R["remount"].append(remount_once(b, opts, i))
    log(f"restart after SIGKILL: median {median(R['restart']) * 1e3:.1f} ms over {R['crashes']}, "
        f"longest read {R['longest_stall'] * 1e3:.1f} ms, {R['error_count']} errors; remount "
        f"median {median(R['remount']) * 1e3:.1f} ms")


def remount_once(b, opts, i):
    """What an operator does with a dead FUSE mount: umount -l and mount again;
    from the unmount until a name is answered."""
    env = b.env
    mp = b.mp(f"remount{i}")
    keeper = env.lazyfs(b.lz, mp, opts, f"lazyfs-remount{i}")
    os.kill(worker_of(keeper), signal.SIGKILL)
    os.kill(keeper, signal.SIGKILL)  # no keeper: the mount is dead (ENOTCONN)
    env.wait_pid(keeper, 10)
    t0 = time.monotonic()
    env.umount(mp)
    keeper = env.lazyfs(b.lz, mp, opts, f"lazyfs-remount{i}")
    try:
        os.stat(os.path.join(mp, "absent"))
    except FileNotFoundError:
        pass
    took = time.monotonic() - t0
    env.umount(mp, keeper)
    return took
