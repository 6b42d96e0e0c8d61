# SPDX-License-Identifier: BSD-2-Clause
"""Section 15: remote objects at scale (remote_mode=objects). A tree generated for
the run (150,000 objects of 512 bytes in one directory, 10,000 more to push the
quota, and 64 KiB objects to fetch cold), served by `rclone serve http` on
127.0.0.1, and removed at the end of the section: the mount-ready time with 150,000
objects in the cache (against an empty cache), the first and later `ls` of the
150,000-entry directory against `rclone mount --vfs-cache-mode full`, the daemon's
memory per cached object and per listed entry (VmRSS from /proc, against rclone
mount's for the same listing), warm open+close p50/p99 idle and while 64 distinct
cold fetches run (both systems), warm opens while 10,000 new objects each
evict an old one under a full quota, and small cold objects: the first `ls` of a
20,000-entry directory and 2,000 of its objects read one after the other on fresh
mounts, against rclone mount."""
import concurrent.futures
import os
import shutil
import subprocess
import threading
import time

from .config import SCALE_COLD_BYTES, SCALE_LOADERS, SCALE_OBJ_BYTES, SCALE_WARM
from .runner import (NO_PROXY, BenchError, free_port, is_mounted, log, median, proc_mem,
                     rclone_env, read_all, rotate, run, wait_ready)
from .s10_restart import worker_of


def make_tree(root, counts):
    """objs/ (the big directory), extra/ (what pushes the quota), cold/ (the cold
    load): tiny files, each unlike the others by its first line."""
    t0 = time.perf_counter()
    for sub, (n, size) in counts.items():
        d = os.path.join(root, sub)
        os.makedirs(d)
        pad = os.urandom(size)
        for i in range(n):
            name = f"{sub[0]}{i:06d}.bin"
            data = (f"{sub}/{name}\n".encode() + pad)[:size]
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
    return time.perf_counter() - t0


def names(sub, n):
    return [f"{sub}/{sub[0]}{i:06d}.bin" for i in range(n)]


def read_many(root, rels, threads):
    """Reads every REL under ROOT with THREADS readers: (seconds, errors)."""
    errors = []

    def one(rel):
        try:
            read_all(os.path.join(root, rel))
        except OSError as e:
            errors.append(f"{rel}: {e.strerror}")
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, rels, chunksize=64))
    return time.perf_counter() - t0, errors


class ColdLoad:
    """N threads, each reading its own slice of cold objects one after the other
    (N fetches in flight at any time) until stopped or out of objects."""

    def __init__(self, root, rels, n):
        self.stop = threading.Event()
        self.done, self.errors, self.ran_out = 0, [], 0
        self.lock = threading.Lock()
        per = max(1, len(rels) // n)
        self.threads = [threading.Thread(target=self.run, args=(root, rels[i * per:(i + 1) * per]),
                                         daemon=True) for i in range(n)]

    def run(self, root, rels):
        for rel in rels:
            if self.stop.is_set():
                return
            try:
                read_all(os.path.join(root, rel))
                with self.lock:
                    self.done += 1
            except OSError as e:
                with self.lock:
                    self.errors.append(f"{rel}: {e.strerror}")
        with self.lock:
            self.ran_out += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(120)


def lazyfs_rss(keeper):
    """VmRSS/VmHWM/Pss (KiB) of the worker serving the mount, and of its rclone child."""
    worker = worker_of(keeper)
    out = {"daemon": proc_mem(worker)}
    try:
        with open(f"/proc/{worker}/task/{worker}/children") as f:
            kids = [int(x) for x in f.read().split()]
        out["rclone_child"] = proc_mem(kids[0]) if kids else None
    except OSError:
        out["rclone_child"] = None
    return out


def timed_ls(path):
    """`ls` of PATH (LC_ALL=C, output discarded): seconds and the names it printed."""
    t0 = time.perf_counter()
    r = subprocess.run(["ls", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, LC_ALL="C"))
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise BenchError(f"ls {path}: {r.stderr.decode(errors='replace').strip()}")
    return t, r.stdout.count(b"\n")


class Scale:
    """The mounts of the section and their options."""

    def __init__(self, b, url):
        self.b, self.env = b, b.env
        self.fs = f":http,url='{url}':"
        self.base = os.path.join(b.env.run, "scale")
        self.cache = os.path.join(self.base, "cache")
        # Inside -o a comma is escaped with a backslash (lazyfs(8)).
        self.opts = ("remote=" + self.fs.replace(",", "\\,") + ",remote_mode=objects,"
                     f"underlay={b.empty()}")

    def lazyfs(self, tag, cache=None, extra="", binary=None):
        """A foreground lazyfs (BINARY, else the one measured) on a mountpoint of its own:
        (mountpoint, keeper pid)."""
        mp = self.b.mp(f"scale-{tag}")
        pid = self.env.lazyfs(binary or self.b.lz, mp,
                              f"{self.opts},cache={cache or self.cache}{extra}",
                              f"lazyfs-scale-{tag}", env=rclone_env())
        return mp, pid

    def rclone(self, tag):
        mp = self.b.mp(f"scale-rclone-{tag}")
        pid = self.env.serve(["rclone", "mount", self.fs, mp, "--vfs-cache-mode", "full",
                              "--cache-dir", os.path.join(self.base, f"rclone-cache-{tag}")],
                             mp, f"rclone-mount-scale-{tag}", env=rclone_env())
        return mp, pid

    def index_loaded(self, mp):
        """Seconds until `lazyfsctl stats` answers: it waits for the cache's index."""
        t0 = time.perf_counter()
        st = self.b.ctl_json(mp, "stats")
        return time.perf_counter() - t0, st.get("cache") or {}


def s15_scale(b):
    env, p = b.env, b.p
    if shutil.which("rclone") is None:
        raise BenchError("rclone is not installed")
    n, n_extra = p["scale_objects"], p["scale_evict"]
    n_cold = p["scale_cold_per_round"] * 3 * p["scale_load_rounds"]  # 3 systems at most
    out = {"objects": n, "object_bytes": SCALE_OBJ_BYTES, "evicted": n_extra,
           "cold_bytes": SCALE_COLD_BYTES, "loaders": SCALE_LOADERS, "warm_set": SCALE_WARM,
           "errors": []}
    b.res["scale"] = out
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    S = Scale(b, url)
    tree = os.path.join(S.base, "tree")
    os.makedirs(S.base)
    serve = None
    try:
        out["generate_s"] = make_tree(tree, {"objs": (n, SCALE_OBJ_BYTES),
                                             "extra": (n_extra, SCALE_OBJ_BYTES),
                                             "cold": (n_cold, SCALE_COLD_BYTES),
                                             "small": (p["scale_small"], SCALE_OBJ_BYTES)})
        log(f"scale: generated {n} + {n_extra} objects of {SCALE_OBJ_BYTES} bytes and "
            f"{n_cold} of {SCALE_COLD_BYTES >> 10} KiB in {out['generate_s']:.1f} s")
        serve = env.spawn(["rclone", "serve", "http", tree, "--addr", f"127.0.0.1:{port}"],
                          "rclone-serve-scale", env=rclone_env())
        wait_ready(env, serve, "rclone-serve-scale",
                   lambda: NO_PROXY.open(url, timeout=5).status == 200)
        s15_populate(b, S, out)
        for part in (s15_ready, s15_listing, s15_small, s15_warm_load, s15_evict):
            try:
                part(b, S, out)
            except BenchError as e:
                out["errors"].append(f"{part.__name__[4:]}: {e}")
                log(f"section 15, {part.__name__[4:]} failed: {e}")
    finally:
        if serve is not None:
            env.stop_server(serve)
        shutil.rmtree(S.base, ignore_errors=True)
    if out["errors"]:
        raise BenchError("; ".join(out["errors"]))


def s15_populate(b, S, out):
    """Fills lazyfs's cache with every object of objs/ (16 readers), then unmounts:
    the index is saved. Also the first pass's time, the memory with the cache
    full and the directory listed."""
    env, n = b.env, out["objects"]
    mp, pid = S.lazyfs("fill", extra=",listing_ttl=86400")
    try:
        t0 = time.perf_counter()
        listed = len(os.listdir(os.path.join(mp, "objs")))
        out["fill_list_s"] = time.perf_counter() - t0
        if listed != n:
            raise BenchError(f"lazyfs listed {listed} objects in objs/, expected {n}")
        t, errors = read_many(mp, names("objs", n), 16)
        if errors:
            raise BenchError(f"{len(errors)} reads failed while filling the cache: {errors[:3]}")
        out["fill_s"] = t
        _, st = S.index_loaded(mp)
        out["fill_cache"] = st
        log(f"scale: cache filled with {st.get('objects')} objects in {t:.1f} s (16 readers; "
            f"the listing {out['fill_list_s']:.1f} s)")
    finally:
        env.umount(mp, pid)


def s15_ready(b, S, out):
    """`lazyfs -o remote=...,cache=C MP` (it daemonizes once it serves) + the first
    `stat MP`, with the 150k-object cache and with an empty one, alternating; then
    how long until the index is loaded (`lazyfsctl stats` waits for it)."""
    env, p = b.env, b.p
    mp = b.mp("scale-ready")
    os.makedirs(mp, exist_ok=True)
    empty_cache = os.path.join(S.base, "empty-cache")
    rows = []
    variants = ["full", "empty"] + (["full-baseline"] if b.lz_base else [])
    for rep in range(p["scale_ready_reps"]):
        row = {}
        for v in rotate(variants, rep):
            cache = S.cache if v.startswith("full") else empty_cache
            binary = b.lz_base if v.endswith("baseline") else b.lz
            t0 = time.perf_counter()
            r = subprocess.run([binary, "-o", f"{S.opts},cache={cache}", mp],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=rclone_env())
            if r.returncode == 0:
                os.stat(mp)
            t1 = time.perf_counter()
            pid = env.find_daemon("lazyfs", mp)
            if pid is not None:
                env.procs[pid] = None
            if r.returncode != 0 or pid is None or not is_mounted(mp):
                raise BenchError(f"lazyfs -o remote=... {mp}: rc {r.returncode}, "
                                 f"daemon {pid}: {r.stderr.strip()}")
            env.mounted.append(mp)
            try:
                loaded, st = S.index_loaded(mp)
            finally:
                env.umount(mp, pid)
            row[v] = {"ready_s": t1 - t0, "index_s": loaded, "objects": st.get("objects")}
        rows.append(row)
    out["ready"] = rows
    log("scale: mount ready " + ", ".join(
        f"{v} cache {median([x[v]['ready_s'] for x in rows]) * 1e3:.1f} ms (index loaded "
        f"{median([x[v]['index_s'] for x in rows]) * 1e3:.1f} ms later)" for v in variants))


def s15_listing(b, S, out):
    """The first `ls` of objs/ on fresh mounts (both list the remote), then later
    ones (lazyfs: its listing in memory; rclone mount: its directory cache); the
    memory before and after, and with 1 and 4 handles of the directory held open."""
    env, p = b.env, b.p
    rounds = []
    mem = {}
    for rnd in range(p["scale_ls_rounds"]):
        row = {}
        for v in rotate(["lazyfs", "rclone-mount"], rnd):
            if v == "lazyfs":
                mp, pid = S.lazyfs(f"ls{rnd}", extra=",listing_ttl=86400")
            else:
                mp, pid = S.rclone(f"ls{rnd}")
            try:
                d = os.path.join(mp, "objs")
                m = {}
                if v == "lazyfs":
                    S.index_loaded(mp)
                    m["cached"] = lazyfs_rss(pid)
                else:
                    os.stat(mp)
                    m["mounted"] = {"daemon": proc_mem(pid)}
                first, count = timed_ls(d)
                if count != out["objects"]:
                    raise BenchError(f"{v}: ls printed {count} names, expected {out['objects']}")
                later = [timed_ls(d)[0] for _ in range(p["scale_ls_later"])]
                m["listed"] = lazyfs_rss(pid) if v == "lazyfs" else {"daemon": proc_mem(pid)}
                fds = []
                try:
                    for k in (1, 4):
                        while len(fds) < k:
                            fds.append(os.open(d, os.O_RDONLY | os.O_DIRECTORY))
                        m[f"held{k}"] = (lazyfs_rss(pid) if v == "lazyfs"
                                         else {"daemon": proc_mem(pid)})
                finally:
                    for fd in fds:
                        os.close(fd)
                row[v] = {"first_s": first, "later_s": later}
                if rnd == 0:
                    mem[v] = m
            finally:
                env.umount(mp, pid)
        rounds.append(row)
        log(f"scale: ls of {out['objects']} entries, round {rnd + 1}: " + ", ".join(
            f"{v} first {x['first_s']:.2f} s, later {median(x['later_s']):.2f} s"
            for v, x in row.items()))
    out["ls"] = rounds
    out["memory"] = mem
    # The same lazyfs daemon with an empty cache, mounted and idle: the baseline
    # the cached objects' memory is counted from.
    mp, pid = S.lazyfs("baseline", cache=os.path.join(S.base, "baseline-cache"))
    try:
        os.stat(mp)
        S.index_loaded(mp)
        out["memory"]["lazyfs_empty"] = lazyfs_rss(pid)
    finally:
        env.umount(mp, pid)
    kib = lambda v, k: (mem.get(v, {}).get(k) or {}).get("daemon", {}).get("VmRSS")
    log(f"scale: VmRSS empty cache {out['memory']['lazyfs_empty']['daemon']['VmRSS']} KiB, "
        f"{out['objects']} cached {kib('lazyfs', 'cached')} KiB, listed "
        f"{kib('lazyfs', 'listed')} KiB, 4 handles {kib('lazyfs', 'held4')} KiB; rclone mount "
        f"{kib('rclone-mount', 'mounted')} KiB, listed {kib('rclone-mount', 'listed')} KiB")


def s15_small(b, S, out):
    """Small cold objects, as a media worker's first pass meets them: on fresh mounts
    with empty caches (lazyfs with listing_ttl=86400; rclone mount), in rotating
    order, the first `ls` of small/, then scale_small_reads of its objects read one
    after the other (open, read to the end, close), each timed. Each round reads
    objects of its own; the server has them all in its page cache."""
    env, p = b.env, b.p
    n, reads = p["scale_small"], p["scale_small_reads"]
    rounds = []
    for rnd in range(p["scale_small_rounds"]):
        rels = names("small", n)[rnd * reads:(rnd + 1) * reads]
        row = {}
        for v in rotate(["lazyfs", "rclone-mount"], rnd):
            if v == "lazyfs":
                mp, pid = S.lazyfs(f"small{rnd}", cache=os.path.join(S.base, f"small-cache-{rnd}"),
                                   extra=",listing_ttl=86400")
            else:
                mp, pid = S.rclone(f"small{rnd}")
            try:
                os.stat(mp)
                first, count = timed_ls(os.path.join(mp, "small"))
                if count != n:
                    raise BenchError(f"{v}: ls printed {count} names, expected {n}")
                lat = []
                t0 = time.perf_counter()
                for rel in rels:
                    t = time.perf_counter()
                    read_all(os.path.join(mp, rel))
                    lat.append(time.perf_counter() - t)
                total = time.perf_counter() - t0
                lat.sort()
                row[v] = {"ls_s": first, "total_s": total, "p50_s": lat[len(lat) // 2],
                          "p99_s": lat[len(lat) * 99 // 100]}
            finally:
                env.umount(mp, pid)
        rounds.append(row)
        log(f"scale: small cold objects, round {rnd + 1}: " + ", ".join(
            f"{v} first ls of {n} {x['ls_s']:.2f} s, {reads} reads {x['total_s']:.2f} s (p50 "
            f"{x['p50_s'] * 1e3:.2f} ms)" for v, x in row.items()))
    out["small"] = {"objects": n, "reads": reads, "rounds": rounds}


def s15_warm_load(b, S, out):
    """Warm open+close of SCALE_WARM cached objects (p50/p99), idle and while
    SCALE_LOADERS threads each read cold objects one after the other (so that many
    distinct fetches run at once), lazyfs against rclone mount, in rotating order.
    Each round and system reads cold objects of its own."""
    env, p = b.env, b.p
    warm = names("objs", SCALE_WARM)
    per = p["scale_cold_per_round"]
    cold = names("cold", per * 3 * p["scale_load_rounds"])
    mounts = {}
    try:
        mounts["lazyfs"] = S.lazyfs("warm", extra=",listing_ttl=86400")
        if b.lz_base:  # its own cache: one process per cache directory
            mounts["lazyfs-baseline"] = S.lazyfs(
                "warm-baseline", cache=os.path.join(S.base, "baseline-warm-cache"),
                extra=",listing_ttl=86400", binary=b.lz_base)
        mounts["rclone-mount"] = S.rclone("warm")
        lists = {}
        for v, (mp, _) in mounts.items():
            os.listdir(os.path.join(mp, "cold"))  # listed once, outside the timing
            for rel in warm:  # lazyfs has them; rclone mount fetches them into its cache
                read_all(os.path.join(mp, rel))
            lists[v] = b.write_list(f"scale-warm-{v}.list", [os.path.join(mp, r) for r in warm])
        rounds, k = [], 0
        for rnd in range(p["scale_load_rounds"]):
            row = {}
            for v in rotate(list(mounts), rnd):
                mp = mounts[v][0]
                idle = b.helper_json("open", lists[v], p["scale_open_passes"])
                mine = cold[k * per:(k + 1) * per]
                k += 1
                with ColdLoad(mp, mine, SCALE_LOADERS) as load:
                    time.sleep(0.3)  # every loader has its first fetch in flight
                    busy = b.helper_json("open", lists[v], p["scale_open_passes"])
                    with load.lock:
                        running_out = load.ran_out
                        fetched = load.done
                row[v] = {"idle": idle, "load": busy, "fetched_during": fetched,
                          "loaders_out_of_objects": running_out, "errors": load.errors[:5]}
                if load.errors:
                    raise BenchError(f"{v}: cold reads failed: {load.errors[:3]}")
            rounds.append(row)
            log(f"scale: warm open under {SCALE_LOADERS} cold fetches, round {rnd + 1}: " + ", ".join(
                f"{v} p50 {x['idle']['p50'] / 1e3:.1f} -> {x['load']['p50'] / 1e3:.1f} µs, p99 "
                f"{x['idle']['p99'] / 1e3:.1f} -> {x['load']['p99'] / 1e3:.1f} µs "
                f"({x['fetched_during']} fetched)" for v, x in row.items()))
        out["warm_load"] = rounds
    finally:
        for mp, pid in mounts.values():
            env.umount(mp, pid)


def s15_evict(b, S, out):
    """The cache's quota set to what it holds: each of n_extra new objects (read by
    16 threads) evicts an old one while warm opens of SCALE_WARM objects go on in a
    loop; their p50/p99 against the same loop idle just before."""
    env, p = b.env, b.p
    mp, pid = S.lazyfs("quota0", extra=",listing_ttl=86400")
    try:
        _, st = S.index_loaded(mp)
    finally:
        env.umount(mp, pid)
    quota = int(st["bytes"])
    mp, pid = S.lazyfs("evict", extra=f",listing_ttl=86400,cache_size={quota}")
    try:
        warm = names("objs", SCALE_WARM)
        os.listdir(os.path.join(mp, "extra"))
        for rel in warm:
            read_all(os.path.join(mp, rel))
        lst = b.write_list("scale-evict.list", [os.path.join(mp, r) for r in warm])
        _, before = S.index_loaded(mp)
        idle = [b.helper_json("open", lst, p["scale_evict_passes"]) for _ in range(3)]
        during, result = [], {}

        def fill():
            result["s"], result["errors"] = read_many(mp, names("extra", out["evicted"]), 16)
        th = threading.Thread(target=fill, daemon=True)
        th.start()
        while th.is_alive():
            during.append(b.helper_json("open", lst, p["scale_evict_passes"]))
        th.join()
        _, after = S.index_loaded(mp)
        if result.get("errors"):
            raise BenchError(f"{len(result['errors'])} reads failed: {result['errors'][:3]}")
        out["evict"] = {"quota": quota, "before": before, "after": after, "idle": idle,
                        "during": during, "fill_s": result["s"],
                        "evictions": after.get("evictions", 0) - before.get("evictions", 0)}
        log(f"scale: {out['evict']['evictions']} evictions in {result['s']:.1f} s; warm open p50 "
            f"{median([x['p50'] for x in idle]) / 1e3:.1f} µs idle, "
            f"{median([x['p50'] for x in during]) / 1e3:.1f} µs during (p99 "
            f"{median([x['p99'] for x in idle]) / 1e3:.1f} -> "
            f"{median([x['p99'] for x in during]) / 1e3:.1f} µs)")
    finally:
        env.umount(mp, pid)
