# SPDX-License-Identifier: BSD-2-Clause
"""Section 7: the eBPF open tracker: cost per openat, events/s, lost events, how
early a cold image starts resolving, and a cold compile with working-set prefetch."""
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import time

from .config import GCC_ENTRY
from .runner import (NO_PROXY, BenchError, free_port, log, median, rclone_env, rotate, run,
                     wait_ready)


# Times the first open of each path listed in argv[1], in a process of its own
# (so the tracker sees an opener that is not the bench), as a JSON list of seconds.
FIRST_OPENS = """
import json, os, sys, time
out = []
for path in open(sys.argv[1]).read().split(chr(10)):
    if path:
        t0 = time.perf_counter()
        os.close(os.open(path, os.O_RDONLY))
        out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def s7_tracker(b):
    """The eBPF open tracker and working-set prefetch: the cost the tracker adds to
    every openat on the machine and the filtered events it delivers
    (tools/lztrack-bench), how much earlier a cold image starts resolving (its BPF
    event against the kernel's LOOKUP of it), and a cold compile whose toolchain
    image is fetched through rclone, with and without prefetch from a recorded
    working set."""
    out = {"errors": []}
    b.res["tracker"] = out
    for part in (s7_cost, s7_early, s7_prefetch):
        try:
            part(b, out)
        except BenchError as e:
            out["errors"].append(f"{part.__name__[3:]}: {e}")
            log(f"section 7, {part.__name__[3:]} failed: {e}")
    if out["errors"]:
        raise BenchError("; ".join(out["errors"]))


def s7_cost(b, out):
    tool = os.path.join(os.path.dirname(b.a.lazyfs), "tools", "lztrack-bench")
    if not os.access(tool, os.X_OK):
        raise BenchError(f"no {tool} (lazyfs built with --disable-bpf?)")
    n, r, e = b.p["bpf_opens"], b.p["bpf_rounds"], b.p["bpf_events"]
    res = json.loads(run([tool, "-n", str(n), "-r", str(r), "-e", str(e)]).stdout)
    if "error" in res:
        raise BenchError(f"lztrack-bench: {res['error']}")
    res["command"] = f"tools/lztrack-bench -n {n} -r {r} -e {e}"
    out["cost"] = res
    log(f"tracker: +{res['overhead_ns_median']:.0f} ns per openat outside the prefix, "
        f"{res['events_per_s'] / 1e3:.0f}k events/s, {res['lost']} lost")


def s7_early(b, out):
    """First opens of cold images with the tracker on and off, in alternating
    mounts; with it on, the daemon's debug log times each LOOKUP after its event."""
    env, p, inp = b.env, b.p, b.inp
    empty = os.path.join(env.run, "empty")
    os.makedirs(empty, exist_ok=True)
    images = sorted(os.path.basename(f)[:-5] for f in glob.glob(os.path.join(inp.cold, "*.sqfs")))
    res = {"on": [], "off": [], "delays_us": []}
    for rnd in range(p["early_rounds"]):
        for mode in rotate(["on", "off"], rnd):
            chosen = rotate(images, rnd * 11 + (mode == "off") * 25)[:25]
            mp = b.mp(f"early-{mode}-{rnd}")
            name = f"lazyfs-early-{mode}-{rnd}"
            pid = env.serve([b.lz, "-f", "-d", "-o",
                             f"images={inp.cold},underlay={empty},backend=kernel,bpf={mode},"
                             f"prefetch=off,cache={env.run}/early-cache", mp], mp, name)
            try:
                if mode == "on" and "open tracker loaded" not in env.log_tail(name):
                    raise BenchError(f"the tracker did not load: {env.log_tail(name)[-300:]}")
                lst = b.write_list(f"early-{mode}.list", [f"{mp}/{e}/hello.txt" for e in chosen])
                times = json.loads(run([sys.executable, "-c", FIRST_OPENS, lst]).stdout)
                res[mode] += times
                time.sleep(0.2)
            finally:
                env.umount(mp, pid)
            if mode == "on":
                with open(os.path.join(env.logs, f"{name}.log"), errors="replace") as f:
                    res["delays_us"] += [float(m) for m in re.findall(
                        r"bpf: [^:\n]+: LOOKUP ([0-9.]+) us after the event", f.read())]
    if not res["delays_us"]:
        raise BenchError("no LOOKUP was matched to a BPF event")
    out["early"] = res
    log(f"tracker: LOOKUP came {median(res['delays_us']):.1f} µs after the event (median of "
        f"{len(res['delays_us'])}); first open {median(res['on']) * 1e3:.2f} ms on, "
        f"{median(res['off']) * 1e3:.2f} ms off")


def s7_prefetch(b, out):
    """zlib built with the toolchain image fetched through rclone (remote_mode=images)
    into an empty cache, page cache dropped, with and without the working set a
    first build recorded."""
    env, p, inp = b.env, b.p, b.inp
    if shutil.which("rclone") is None:
        raise BenchError("rclone is not installed")
    empty = os.path.join(env.run, "empty")
    os.makedirs(empty, exist_ok=True)
    src = os.path.join(env.run, "tc-remote")
    os.makedirs(src, exist_ok=True)
    os.link(os.path.join(inp.main, f"{GCC_ENTRY}.sqfs"), os.path.join(src, f"{GCC_ENTRY}.sqfs"))
    port = free_port()
    fs_ = f":http,url='http://127.0.0.1:{port}/':"
    serve = env.spawn(["rclone", "serve", "http", src, "--addr", f"127.0.0.1:{port}",
                       "--dir-cache-time", "0s"], "rclone-serve-tc", env=rclone_env())
    res = {"image_mib": os.path.getsize(os.path.join(src, f"{GCC_ENTRY}.sqfs")) / 2**20,
           "rounds": []}
    ws = os.path.join(env.run, "tc-ws")
    # The kernel mounts a remote image only with a trusted digest (SECURITY.md).
    digests = os.path.join(env.run, "tc-digests")
    with open(os.path.join(src, f"{GCC_ENTRY}.sqfs"), "rb") as f, open(digests, "w") as d:
        d.write(f"{hashlib.sha256(f.read()).hexdigest()}  {GCC_ENTRY}.sqfs\n")

    def build(variant, cache, prefetch, tag):
        mp = b.mp(f"tc-{variant}")
        name = f"lazyfs-tc-{variant}-{tag}"
        pid = env.serve([b.lz, "-f", "-d", "-o",
                         "remote=" + fs_.replace(",", "\\,") + f",remote_mode=images,"
                         f"underlay={empty},backend=kernel,trusted_digests={digests},"
                         f"cache={cache},"
                         f"prefetch={prefetch}", mp], mp, name, env=rclone_env())
        try:
            return b.build_once(variant, os.path.join(mp, GCC_ENTRY, "bin", "gcc"), tag)
        finally:
            env.umount(mp, pid)
            with open(os.path.join(env.logs, f"{name}.log"), errors="replace") as f:
                m = re.findall(r"image [^:\n]+: prefetched ([0-9]+) files, ([0-9]+) bytes", f.read())
            res.setdefault("prefetched", []).append(m[-1] if m else None)

    try:
        wait_ready(env, serve, "rclone-serve-tc",
                   lambda: NO_PROXY.open(f"http://127.0.0.1:{port}/", timeout=2).status == 200)
        rec = os.path.join(env.run, "tc-cache-record")
        build("record", rec, "on", "record")
        wsf = os.path.join(rec, "workingset", f"{GCC_ENTRY}.ws")
        if not os.path.exists(wsf):
            raise BenchError("the recording build wrote no working set")
        shutil.copy(wsf, ws)
        res["working_set_files"] = sum(1 for _ in open(ws)) - 1
        shutil.rmtree(rec)
        for rnd in range(p["prefetch_reps"]):
            row = {}
            for v in rotate(["prefetch", "no-prefetch"], rnd):
                cache = os.path.join(env.run, f"tc-cache-{v}")
                shutil.rmtree(cache, ignore_errors=True)
                if v == "prefetch":
                    os.makedirs(os.path.join(cache, "workingset"))
                    shutil.copy(ws, os.path.join(cache, "workingset", f"{GCC_ENTRY}.ws"))
                b.drop_caches()
                row[v] = build(v, cache, "on" if v == "prefetch" else "off", str(rnd))
                shutil.rmtree(cache, ignore_errors=True)
            res["rounds"].append(row)
            log(f"cold compile round {rnd + 1}/{p['prefetch_reps']}: " +
                ", ".join(f"{v} {row[v]['wall']:.2f} s" for v in row))
    finally:
        env.stop_server(serve)
    out["prefetch"] = res
