# SPDX-License-Identifier: BSD-2-Clause
"""Section 5: a zlib build (Debian's bookworm source) with gcc from an image, and a
preprocess-only run (-E of zlib's sources and of 391 C++ and intrinsics headers), on
every system, with blocked time (wall - CPU) and FUSE requests by opcode (tracepoint,
and lazyfs's BPF statistics). The build itself is Bench.build_once (section 7 runs it
too)."""
import glob
import os
import subprocess
import time

from .config import GCC_ENTRY, IMAGE_SYSTEMS, PP_COMMANDS
from .runner import cache_drops, log, rotate


def s5_compile(b):
    """zlib's build and a preprocess-only run with the toolchain image on every
    system, in rotating order; FUSE requests of each counted by the tracepoint
    and, for lazyfs, by its BPF statistics."""
    env, p, inp = b.env, b.p, b.inp
    R = {"project": f"zlib {inp.zlib_version} (Debian bookworm source)",
         "command": "./configure && make -j2", "preprocess": PP_COMMANDS,
         "rounds": [], "pp_rounds": [], "requests_per_build": {}, "requests_per_pp": {},
         "bpf_per_build": {}, "bpf_per_pp": {}, "skipped": {}, "notes": []}
    b.res["compile"] = R
    ms, traces = {}, {}
    try:
        ms = b.mount_systems(IMAGE_SYSTEMS, os.path.join(inp.main, f"{GCC_ENTRY}.sqfs"),
                                "cc", R["skipped"])
        names = list(ms)
        for v in names:
            log(f"warm-up build: {v}")
            b.build_once(v, os.path.join(ms[v]["root"], "bin", "gcc"), "warm")
            pp_once(b, v, ms[v]["root"], 1)
        for v, m in ms.items():
            if m["fuse"] is not None:
                traces[v] = env.trace(m["fuse"])
            if m["lazyfs"] and not b.wait_tracker(m):
                R["notes"].append(f"{v}: the BPF tracker did not load, no BPF statistics")
        for rnd in range(p["build_reps"]):
            row, pprow = {}, {}
            for v in rotate(names, rnd):
                cc = os.path.join(ms[v]["root"], "bin", "gcc")
                row[v] = counted(b, v, ms[v], traces.get(v), "build",
                                      lambda: b.build_once(v, cc, str(rnd)))
                pprow[v] = counted(b, v, ms[v], traces.get(v), "pp",
                                        lambda: pp_once(b, v, ms[v]["root"], p["pp_inner"]))
            R["rounds"].append(row)
            R["pp_rounds"].append(pprow)
            log(f"build round {rnd + 1}/{p['build_reps']}: " + ", ".join(
                f"{v} {row[v]['wall']:.2f} s (-E {pprow[v]['wall']:.2f} s)" for v in names))
    finally:
        for t in traces.values():
            t.stop()
        b.unmount_systems(ms)


def counted(b, v, m, trace, what, fn):
    """Runs FN, a build or a preprocess run on mount M, and keeps the FUSE requests
    it caused: by the tracepoint, and by lazyfs's BPF statistics (opcode: [count,
    µs in the daemon]) as the difference of two snapshots."""
    R = b.res["compile"]
    if trace is not None:
        trace.reset()
    b0 = b.bpf_fuse(m)
    out = fn()
    if trace is not None or b0 is not None:
        time.sleep(0.3)  # RELEASE follows close asynchronously
    if trace is not None:
        c = trace.counts()
        c["_cache_drops"] = out["cache_drops"]
        R[f"requests_per_{what}"].setdefault(v, []).append(c)
    if b0 is not None:
        b1, zero = b.bpf_fuse(m), [0, 0.0]
        R[f"bpf_per_{what}"].setdefault(v, []).append(
            {op: [n - b0.get(op, zero)[0], us - b0.get(op, zero)[1]]
             for op, (n, us) in b1.items() if n != b0.get(op, zero)[0]})
    return out


def pp_once(b, variant, root, reps):
    """PP_COMMANDS, REPS times, one compiler at a time so that wall − CPU is the
    time it was blocked: wall and user+sys summed."""
    srcs = sorted(os.path.basename(f) for f in glob.glob(os.path.join(b.inp.zlib_src, "*.c")))
    hh = os.path.join(b.env.run, "pp-headers.cc")
    if not os.path.exists(hh):
        with open(hh, "w") as f:
            f.write("#include <bits/stdc++.h>\n#include <x86intrin.h>\n")
    env_vars = dict(os.environ, LC_ALL="C")
    env_vars.pop("CFLAGS", None)
    bin_ = os.path.join(root, "bin")
    wall = cpu = 0.0
    drops = cache_drops()
    for _ in range(reps):
        for argv in ([os.path.join(bin_, "gcc"), "-E", *srcs], [os.path.join(bin_, "g++"), "-E", hh]):
            w, c = b.timed(argv, b.inp.zlib_src, env_vars, f"pp-{variant}.log",
                              stdout=subprocess.DEVNULL)
            wall, cpu = wall + w, cpu + c
    return {"wall": wall, "cpu": cpu, "reps": reps, "cache_drops": cache_drops() - drops}
