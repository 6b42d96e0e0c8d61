# SPDX-License-Identifier: BSD-2-Clause
"""The command: options, the run (sections in order, each failure kept), the
machine's description, and the outputs."""
import argparse
import datetime
import fcntl
import glob
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .bench import Bench
from .config import PROFILES, TOP
from .inputs import Inputs, compile_helper
from .report import report, write_outputs
from .runner import BenchError, Env, cache_drops, log, mounts, set_subreaper
from .s1_mount_ready import s1_mount_ready
from .s2_cold_open import s2_cold_open
from .s3_open_close import s3_open_close
from .s4_read import s4_read
from .s5_compile import s5_compile
from .s6_remote import s6_remote
from .s7_tracker import s7_tracker
from .s8_walk import s8_walk
from .s9_footprint import s9_footprint
from .s10_restart import s10_restart
from .s11_underlay import s11_underlay
from .s12_browse import s12_browse
from .s13_storm import s13_storm
from .s14_acl import s14_acl
from .s15_scale import s15_scale


def damon_pageout():
    """Describes an active DAMON pageout scheme (it evicts idle page cache), or None."""
    for ctx in glob.glob("/sys/kernel/mm/damon/admin/kdamonds/[0-9]*/contexts/[0-9]*"):
        kd = ctx.split("/contexts/")[0]
        try:
            if open(os.path.join(kd, "state")).read().strip() != "on":
                continue
            aggr = int(open(os.path.join(ctx, "monitoring_attrs/intervals/aggr_us")).read())
            for sch in glob.glob(os.path.join(ctx, "schemes/[0-9]*")):
                if open(os.path.join(sch, "action")).read().strip() != "pageout":
                    continue
                age = int(open(os.path.join(sch, "access_pattern/age/min")).read())
                return (f"DAMON ({open(os.path.join(ctx, 'operations')).read().strip()}) pages out "
                        f"memory not accessed for {age * aggr / 1e6:.0f} s or more")
        except (OSError, ValueError):
            continue
    return None


def machine_info(lazyfs):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    git = lambda *a: subprocess.run(["git", "-C", TOP, *a], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True).stdout.strip()
    with open(lazyfs, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()[:16]
    ver = subprocess.run([lazyfs, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "fs", "cache", "common", "images", "core", "upgrade", "control", "bpf", "tools", "configure.ac", "Makefile.am")
    return {
        "kernel": os.uname().release, "nproc": os.cpu_count(), "cpu": cpu,
        "memory_gib": round(mem_kb / 1048576, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "lazyfs_commit": git("rev-parse", "--short", "HEAD"),
        "lazyfs_tree_dirty": bool(dirty), "lazyfs_version": ver, "lazyfs_sha256": sha,
        "lazyfs_built": datetime.datetime.fromtimestamp(
            os.stat(lazyfs).st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "damon_pageout": damon_pageout(),
        "squashfuse": subprocess.run(["dpkg-query", "-W", "-f", "squashfuse ${Version}", "squashfuse"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True).stdout.strip() or "not installed",
    }


def main(doc):
    """The command (DOC: scripts/bench's docstring, whose first paragraph --help shows)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (< 5 minutes)")
    ap.add_argument("--scratch", default="/var/tmp/lazyfs-bench", help="scratch and cache dir")
    ap.add_argument("--lazyfs", default=os.path.join(TOP, "_build", "werror", "lazyfs"),
                    help="the lazyfs binary to measure (copied into the scratch dir first)")
    ap.add_argument("--baseline-lazyfs", metavar="PATH",
                    help="an earlier lazyfs binary, measured beside --lazyfs where a section "
                    "supports it (15: mount ready, warm opens under cold fetches)")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", help="comma-separated sections to run")
    ap.add_argument("--md", help="markdown output (default docs/BENCHMARKS.md, or in the scratch dir with --quick)")
    ap.add_argument("--json", help="JSON output (default docs/benchmarks.json, or in the scratch dir with --quick)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (mounts, loop devices, FUSE passthrough, tracefs)")
    sections = sorted({int(s) for s in args.only.split(",") if s.strip()})
    scratch = os.path.realpath(args.scratch)
    if args.quick:
        md = args.md or os.path.join(scratch, "quick-BENCHMARKS.md")
        js = args.json or os.path.join(scratch, "quick-benchmarks.json")
    else:
        md = args.md or os.path.join(TOP, "docs", "BENCHMARKS.md")
        js = args.json or os.path.join(TOP, "docs", "benchmarks.json")
    md, js = os.path.abspath(md), os.path.abspath(js)
    if not os.access(args.lazyfs, os.X_OK):
        sys.exit(f"bench: no lazyfs binary at {args.lazyfs} (scripts/build werror --enable-werror)")
    # The lazyfsctl built with it: the control protocol matches.
    if not os.access(os.path.join(os.path.dirname(args.lazyfs), "lazyfsctl"), os.X_OK):
        sys.exit(f"bench: no lazyfsctl beside {args.lazyfs}")

    os.makedirs(scratch, exist_ok=True)
    lock = open(os.path.join(scratch, ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"bench: another bench is using {scratch}")
    t_start = time.monotonic()
    set_subreaper()
    run_dir = os.path.join(scratch, "run")
    env = Env(scratch, run_dir)
    # What a previous, interrupted run left: its mounts and loop devices are ours.
    env.cleanup()
    leftover = [mp for mp, _ in mounts() if mp.startswith(scratch + "/")]
    if leftover:
        sys.exit(f"bench: cannot unmount what an earlier run left under {scratch}: {leftover}")
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(env.logs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res, errors, targets = {}, [], []
    meta = {}
    try:
        bindir = os.path.join(run_dir, "bin")
        os.makedirs(bindir)
        lz = os.path.join(bindir, "lazyfs")  # a stable copy: others rebuild the tree meanwhile
        shutil.copy2(args.lazyfs, lz)
        ctl = os.path.join(os.path.dirname(args.lazyfs), "lazyfsctl")
        shutil.copy2(ctl, os.path.join(bindir, "lazyfsctl"))
        if args.baseline_lazyfs:
            # Named lazyfs too: a daemonized one is found by its process name.
            os.makedirs(os.path.join(bindir, "baseline"))
            base = os.path.join(bindir, "baseline", "lazyfs")
            shutil.copy2(args.baseline_lazyfs, base)
        meta = machine_info(lz)
        if args.baseline_lazyfs:
            with open(base, "rb") as f:
                meta["baseline"] = {"lazyfs_source": args.baseline_lazyfs,
                                    "lazyfs_sha256": hashlib.sha256(f.read()).hexdigest()[:16]}
        meta.update(command="scripts/bench" + "".join(" " + shlex.quote(a) for a in sys.argv[1:]),
                    profile="quick" if args.quick else "full", lazyfs_source=args.lazyfs,
                    repetitions=PROFILES["quick" if args.quick else "full"])
        inp = Inputs(scratch)
        log(f"preparing inputs in {scratch} (cached between runs)")
        inp.prepare(sections, args.quick)
        helper = compile_helper(tempfile.mkdtemp(prefix="helper.", dir=run_dir))
        b = Bench(args, env, inp, helper, lz)
        steps = {1: s1_mount_ready, 2: s2_cold_open, 3: s3_open_close, 4: s4_read,
                 5: s5_compile, 6: s6_remote, 7: s7_tracker, 8: s8_walk,
                 9: s9_footprint, 10: s10_restart, 11: s11_underlay, 12: s12_browse,
                 13: s13_storm, 14: s14_acl, 15: s15_scale}
        b.res["cache_drops_by_others"] = {}
        for s in sections:
            b.own_drops = 0
            t0 = time.monotonic()
            log(f"section {s}: {steps[s].__name__.split('_', 1)[1]} (load average "
                f"{' '.join(open('/proc/loadavg').read().split()[:3])})")
            drops = cache_drops()
            try:
                steps[s](b)
            except BenchError as e:
                errors.append(f"section {s}: {e}")
                log(f"section {s} failed: {e}")
            b.res["cache_drops_by_others"][str(s)] = cache_drops() - drops - b.own_drops
            log(f"section {s} took {time.monotonic() - t0:.0f} s")
        res = b.res
    finally:
        env.cleanup()
        leftover = [mp for mp, _ in mounts() if mp.startswith(scratch + "/")]
        if leftover:
            log(f"still mounted, leaving {run_dir} in place: {leftover}")
        elif os.path.isdir(run_dir):
            logs_keep = os.path.join(scratch, "last-run-logs")
            shutil.rmtree(logs_keep, ignore_errors=True)
            if os.path.isdir(env.logs):
                shutil.move(env.logs, logs_keep)
            shutil.rmtree(run_dir, ignore_errors=True)
    meta["elapsed_s"] = time.monotonic() - t_start
    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    table = report(res, meta, targets)
    text = write_outputs(args, meta, res, table, targets, errors, md, js)
    print(text)
    log(f"wrote {md} and {js} in {meta['elapsed_s']:.0f} s")
    return 1 if errors else 0
