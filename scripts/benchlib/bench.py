# SPDX-License-Identifier: BSD-2-Clause
"""The context every section receives: the options, the profile, the run's Env,
the cached inputs, the helper and the lazyfs copy, the results so far, and what
several sections do (mount the image systems, drop caches, time a command, build
zlib)."""
import json
import os
import shlex
import shutil
import subprocess
import time

from .config import COLD_SETTLE_S, OPTIONAL, PROFILES, SYSTEMS
from .runner import BenchError, cache_drops, log, run


class Bench:
    """What each section (s1_mount_ready(b) .. s11_underlay(b)) receives as B: the
    options (a), the profile (p), env, inp, helper, lz, lazyfsctl (ctl), the results
    (res, a section's under its key) and own_drops (its own cache drops, which main
    tells from others')."""

    def __init__(self, args, env, inp, helper, lazyfs):
        self.a = args
        self.ctl = os.path.join(os.path.dirname(lazyfs), "lazyfsctl")
        self.own_drops = 0
        self.p = PROFILES["quick" if args.quick else "full"]
        self.env = env
        self.inp = inp
        self.helper = helper
        self.lz = lazyfs
        # --baseline-lazyfs: an earlier binary, copied beside LAZYFS, or None.
        base = os.path.join(os.path.dirname(lazyfs), "baseline", "lazyfs")
        self.lz_base = base if args.baseline_lazyfs else None
        self.res = {}

    def helper_json(self, *args):
        return json.loads(run([self.helper, *map(str, args)]).stdout)

    def write_list(self, name, paths):
        f = os.path.join(self.env.run, name)
        with open(f, "w") as fh:
            fh.write("".join(p + "\n" for p in paths))
        return f

    def mp(self, name):
        return os.path.join(self.env.run, "mnt", name)

    def empty(self):
        d = os.path.join(self.env.run, "empty")
        os.makedirs(d, exist_ok=True)
        return d

    def drop_caches(self):
        """Empties the page cache, dentries and inodes: what a cold start finds."""
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        self.own_drops += 2  # counted as a page-cache and a slab drop

    def drop_caches_settled(self):
        """drop_caches, then a second for the FUSE servers (every one mounted) to take
        the FORGET of each inode the kernel just dropped: a walk timed at once would
        race them for the 2 CPUs, whichever system it walks."""
        self.drop_caches()
        time.sleep(COLD_SETTLE_S)

    def mount_system(self, v, image, tag):
        """Mounts IMAGE as system V (IMAGE_SYSTEMS) at a mountpoint of its own. Returns
        root (the image's root directory, PARENT/ENTRY in every system), mp (what to
        unmount), fuse (the FUSE mount to trace, None for loop), pid, log."""
        env = self.env
        entry = os.path.basename(image)[:-len(".sqfs")]
        base, name = self.mp(f"{tag}-{v}"), f"{tag}-{v}"
        root = os.path.join(base, entry)
        if v == "loop":
            env.loop_mount(image, root)
            return dict(root=root, mp=root, fuse=None, pid=None, log=None, lazyfs=False)
        if v == "squashfuse_ll":
            if shutil.which("squashfuse_ll") is None:
                raise BenchError("squashfuse_ll is not installed (Debian package squashfuse)")
            pid = env.serve(["squashfuse_ll", "-f", image, root], root, name)
            return dict(root=root, mp=root, fuse=root, pid=pid, log=name, lazyfs=False)
        opts = f"images={os.path.dirname(image)},underlay={self.empty()},{SYSTEMS[v]}"
        if "io_uring" in opts:
            env.uring_on()
        pid = env.lazyfs(self.lz, base, opts, name)
        if "io_uring" in opts and "FUSE-over-io_uring enabled" not in env.log_tail(name):
            env.umount(base, pid)
            raise BenchError("the kernel did not use FUSE-over-io_uring: "
                             + env.log_tail(name)[-300:].strip())
        return dict(root=root, mp=base, fuse=base, pid=pid, log=name, lazyfs=True)

    def mount_systems(self, variants, image, tag, skipped):
        """mount_system for each variant; an optional one that fails is left out and
        its reason kept in SKIPPED. Returns {variant: mount} in the given order."""
        out = {}
        try:
            for v in variants:
                try:
                    out[v] = self.mount_system(v, image, tag)
                except BenchError as e:
                    if v not in OPTIONAL:
                        raise
                    skipped[v] = str(e)
                    log(f"{tag}: leaving out {v}: {e}")
        except BaseException:
            self.unmount_systems(out)
            raise
        return out

    def unmount_systems(self, ms):
        for m in ms.values():
            self.env.umount(m["mp"], m["pid"])
        self.env.uring_restore()

    def wait_tracker(self, m, timeout=10):
        """Waits until a lazyfs mount's tracker has loaded (it loads after the mount):
        its FUSE statistics count from then on. False if it does not load."""
        deadline = time.monotonic() + timeout
        while "open tracker loaded" not in self.env.log_tail(m["log"]):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def ctl_json(self, mp, command):
        """`lazyfsctl --json MP COMMAND`, parsed."""
        return json.loads(run([self.ctl, "--json", mp, command]).stdout)

    def bpf_fuse(self, m):
        """The FUSE requests of a lazyfs mount so far as its BPF tracker counts them
        (`lazyfsctl --json MP stats`): {opcode: [count, µs of round trips, send to
        reply]}, the time being count x the mean; None without the tracker."""
        if not m["lazyfs"]:
            return None
        st = json.loads(run([self.ctl, "--json", m["mp"], "stats"]).stdout)
        if "fuse_requests" not in st:
            return None
        return {op: [d["count"], d["count"] * d["mean_us"]] for op, d in st["fuse_requests"].items()}

    # -- commands timed with their children's CPU (sections 5, 7, 8), the zlib build (5, 7)
    def timed(self, argv, cwd, env_vars, logname, stdout=None):
        """Runs argv, returns (wall, user+sys of it and its waited-for children)."""
        with open(os.path.join(self.env.logs, logname), "ab") as logf:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=cwd, env=env_vars, stdin=subprocess.DEVNULL,
                                    stdout=logf if stdout is None else stdout, stderr=logf)
            self.env.procs[proc.pid] = proc
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.env.procs.pop(proc.pid, None)
        if proc.returncode != 0:
            raise BenchError(f"{shlex.join(argv)} in {cwd} failed ({proc.returncode}); see {logname}")
        return wall, ru.ru_utime + ru.ru_stime

    def build_once(self, variant, cc, tag):
        bdir = os.path.join(self.env.run, "build", f"{variant}-{tag}")
        shutil.rmtree(bdir, ignore_errors=True)
        shutil.copytree(self.inp.zlib_src, bdir, symlinks=True)
        env_vars = dict(os.environ, CC=cc, LC_ALL="C")
        env_vars.pop("MAKEFLAGS", None)
        env_vars.pop("CFLAGS", None)
        lg = f"build-{variant}.log"
        drops = cache_drops()
        cw, cc_cpu = self.timed(["./configure"], bdir, env_vars, lg)
        mw, mk_cpu = self.timed(["make", "-j2"], bdir, env_vars, lg)
        if not os.path.exists(os.path.join(bdir, "libz.a")):
            raise BenchError(f"{variant}: the build made no libz.a")
        shutil.rmtree(bdir, ignore_errors=True)
        return {"wall": cw + mw, "cpu": cc_cpu + mk_cpu, "configure_wall": cw,
                "configure_cpu": cc_cpu, "make_wall": mw, "make_cpu": mk_cpu,
                "cache_drops": cache_drops() - drops}
