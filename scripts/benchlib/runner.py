# SPDX-License-Identifier: BSD-2-Clause
"""The runner the sections share: logging, commands, the processes, mounts, loop
devices and trace instances a run starts (Env, FuseTrace), medians and rotating
orders, cache drops, and the rclone processes, rc calls and whole-file reads of
sections 6 and 7."""
import base64
import ctypes
import glob
import hashlib
import json
import os
import re
import resource
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .config import TRACEFS, URING

RUN_LOG = []


def log(msg):
    RUN_LOG.append(f"{time.strftime('%H:%M:%S')} {msg}")
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def run(cmd, **kw):
    """subprocess.run that raises with the command's stderr on failure."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    r = subprocess.run(cmd, text=True, **kw)
    if r.returncode != 0:
        err = (r.stderr or "").strip()[-2000:]
        raise BenchError(f"{shlex.join(map(str, cmd))} failed ({r.returncode}): {err}")
    return r


def cache_drops():
    """How often anyone wrote to /proc/sys/vm/drop_caches (1: page cache, 2: dentries
    and inodes, which takes their pages along): concurrent test suites do."""
    with open("/proc/vmstat") as f:
        v = dict(line.split() for line in f)
    return int(v.get("drop_pagecache", 0)) + int(v.get("drop_slab", 0))


def proc_cpu(pid):
    """User+system seconds of a process, all its threads (exited ones too)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem(pid):
    """VmRSS, VmHWM and Pss of a process in KiB (Pss shares each library page
    among the processes that map it)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        out["Pss"] = int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
    return out


def children_cpu():
    """User+system seconds of every child we have waited for so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def median(xs):
    return statistics.median(xs) if xs else None


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


# ----------------------------------------------------------------------------
# mounts, processes, loop devices


def unescape_mountinfo(s):
    return re.sub(r"\\([0-3][0-7][0-7])", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """[(mountpoint, fstype)] from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            out.append((unescape_mountinfo(fields[4]), right.split()[0]))
    return out


def is_mounted(path):
    path = os.path.realpath(path)
    return any(mp == path for mp, _ in mounts())


def proc_stat(pid):
    """(comm, state, ppid) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, rest[0], int(rest[1])


def set_subreaper():
    """Daemonized servers we start get reparented to us, so we can find and reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise BenchError("prctl(PR_SET_CHILD_SUBREAPER) failed")


class Env:
    """Owns everything a run starts: processes, mounts, trace instances."""

    def __init__(self, scratch, run_dir):
        self.scratch = scratch
        self.run = run_dir
        self.procs = {}  # pid -> Popen or None (daemons reparented to us)
        self.mounted = []  # mount points we created, in order
        self.traces = []
        self.tracefs_mounted = False
        self.uring_saved = None  # enable_uring before we switched it on
        self.logs = os.path.join(run_dir, "logs")

    # -- processes
    def wait_pid(self, pid, timeout):
        p = self.procs.get(pid)
        deadline = time.monotonic() + timeout
        while True:
            if p is not None:
                try:
                    p.wait(timeout=0.05)
                    return True
                except subprocess.TimeoutExpired:
                    pass
            else:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done == pid:
                        return True
                except ChildProcessError:
                    if proc_stat(pid) is None:
                        return True
                time.sleep(0.01)
            if time.monotonic() > deadline:
                return False

    def stop_pid(self, pid, grace=10):
        """Waits for a server we started to exit (after its unmount), else kills it."""
        if not self.wait_pid(pid, grace):
            for sig, t in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if self.wait_pid(pid, t):
                    break
        self.procs.pop(pid, None)

    def find_daemon(self, comm, mp):
        """The daemon a just-finished `lazyfs ... MP` left behind (reparented to us)."""
        me = os.getpid()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            st = proc_stat(int(d))
            if st is None or st[2] != me or st[0] != comm:
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if os.fsencode(mp) in args:
                return int(d)
        return None

    def spawn(self, cmd, name, **kw):
        logf = open(os.path.join(self.logs, f"{name}.log"), "ab")
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, **kw)
        finally:
            logf.close()
        self.procs[p.pid] = p
        return p

    def log_tail(self, name):
        try:
            with open(os.path.join(self.logs, f"{name}.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    # -- mounts
    def wait_mount(self, mp, proc, name, timeout=15):
        deadline = time.monotonic() + timeout
        while not is_mounted(mp):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{name} did not mount {mp}: {self.log_tail(name)}")
            time.sleep(0.01)
        self.mounted.append(mp)
        os.stat(mp)  # waits for FUSE INIT

    def serve(self, cmd, mp, name, **kw):
        """Starts a FUSE server in the foreground (we own its PID) and waits for its mount."""
        os.makedirs(mp, exist_ok=True)
        p = self.spawn(cmd, name, **kw)
        self.wait_mount(mp, p, name)
        return p.pid

    def lazyfs(self, bin_, mp, opts, name, **kw):
        # Working sets and the cache stay in the run: none from earlier runs.
        if "cache=" not in opts:
            # Made here: without a remote, lazyfs keeps only its pins there, in a
            # directory it expects to exist.
            os.makedirs(f"{self.run}/lzcache/{name}", mode=0o700, exist_ok=True)
            opts += f",cache={self.run}/lzcache/{name}"
        return self.serve([bin_, "-f", "-o", opts, mp], mp, name, **kw)

    def stop_server(self, p):
        """Stops a server we started that does not exit on its own (SIGTERM, then SIGKILL)."""
        if p.poll() is None:
            p.terminate()
        self.stop_pid(p.pid, grace=5)

    def loop_mount(self, image, mp):
        os.makedirs(mp, exist_ok=True)
        run(["mount", "-t", "squashfs", "-o", "loop,ro", image, mp])
        self.mounted.append(mp)

    def dev_mount(self, dev, mp):
        os.makedirs(mp, exist_ok=True)
        run(["mount", "-t", "squashfs", "-o", "ro", dev, mp])
        self.mounted.append(mp)

    def umount(self, mp, pid=None):
        if is_mounted(mp):
            r = subprocess.run(["umount", mp], stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                time.sleep(0.5)  # a straggling process (e.g. make) may still hold it
                r = subprocess.run(["umount", mp], stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                log(f"umount {mp}: {r.stderr.strip()}; detaching it lazily")
                subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        if mp in self.mounted:
            self.mounted.remove(mp)
        if pid is not None:
            self.stop_pid(pid)

    # -- FUSE-over-io_uring: a module parameter, off by default, read at each mount's INIT
    # and at each ring command, so it stays on until our io_uring mounts are gone.
    def uring_on(self):
        if self.uring_saved is None:
            with open(URING) as f:
                self.uring_saved = f.read().strip()
        with open(URING, "w") as f:
            f.write("Y\n")

    def uring_restore(self):
        if self.uring_saved is not None:
            with open(URING, "w") as f:
                f.write(self.uring_saved + "\n")
            self.uring_saved = None

    # -- tracing
    def trace(self, mp):
        t = FuseTrace(self, mp)
        self.traces.append(t)
        return t

    def cleanup(self):
        for t in list(self.traces):
            t.stop()
        # Everything mounted under the scratch dir is ours: deepest first.
        ours = [mp for mp, _ in mounts() if mp.startswith(self.scratch + "/")]
        for mp in sorted(set(ours + self.mounted), key=len, reverse=True):
            self.umount(mp)
        for pid in list(self.procs):
            self.stop_pid(pid, grace=5)
        # Orphans of our children were reparented to us (subreaper): ours too.
        me = os.getpid()
        for d in os.listdir("/proc"):
            if d.isdigit() and (st := proc_stat(int(d))) and st[2] == me:
                self.stop_pid(int(d), grace=1)
        detach_loops(self.scratch)
        self.uring_restore()
        if self.tracefs_mounted:
            if not os.listdir(os.path.join(TRACEFS, "instances")):
                subprocess.run(["umount", TRACEFS], stderr=subprocess.DEVNULL)


def loops_backed_by(path):
    """The loop devices whose backing file is PATH."""
    devs = set()
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(bf) as f:
                if f.read().strip() == path:
                    devs.add("/dev/" + bf.split("/")[3])
        except OSError:
            pass
    return devs


def detach_loops(scratch):
    """Detaches loop devices backed by files under the scratch dir (ours)."""
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(bf) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(scratch + "/"):
            dev = "/dev/" + bf.split("/")[3]
            subprocess.run(["losetup", "-d", dev], stderr=subprocess.DEVNULL)


class FuseTrace:
    """FUSE requests sent to one mount, counted by opcode through the
    fuse:fuse_request_send tracepoint in a private ftrace instance (the same
    method as tests/fusetrace.sh)."""

    def __init__(self, env, mp):
        self.env = env
        st = os.stat(mp)  # before tracing: this stat may send a GETATTR
        # The tracepoint prints the kernel's MKDEV(major, minor) = major << 20 | minor.
        kdev = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
        if not os.path.isdir(os.path.join(TRACEFS, "instances")):
            run(["mount", "-t", "tracefs", "nodev", TRACEFS])
            env.tracefs_mounted = True
        self.dir = os.path.join(TRACEFS, "instances", f"lazyfs-bench-{os.getpid()}-{len(env.traces)}")
        os.mkdir(self.dir)
        ev = os.path.join(self.dir, "events/fuse/fuse_request_send")
        self._w("buffer_size_kb", "16384")
        self._w(os.path.join(ev, "filter"), f"connection == {kdev}")
        self._w(os.path.join(ev, "enable"), "1")
        self.reset()
        self._w("tracing_on", "1")

    def _w(self, path, text):
        with open(os.path.join(self.dir, path), "w") as f:
            f.write(text + "\n")

    def reset(self):
        with open(os.path.join(self.dir, "trace"), "w"):
            pass

    def counts(self):
        counts = {}
        with open(os.path.join(self.dir, "trace"), errors="replace") as f:
            for line in f:
                m = re.search(r" opcode \d+ \(([^)]*)\)", line)
                if m:
                    counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        lost = 0
        for stats in glob.glob(os.path.join(self.dir, "per_cpu/cpu*/stats")):
            with open(stats) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k.strip() in ("overrun", "commit overrun", "dropped events"):
                        lost += int(v.split()[0])
        if lost:
            counts["LOST"] = lost
        return counts

    def stop(self):
        if self.dir is None:
            return
        try:
            self._w("tracing_on", "0")
            self._w("events/fuse/fuse_request_send/enable", "0")
            os.rmdir(self.dir)
        except OSError as e:
            log(f"could not remove trace instance {self.dir}: {e}")
        self.dir = None
        self.env.traces.remove(self)


# ----------------------------------------------------------------------------
# rclone processes, the rc API, reading whole files (sections 6 and 7)


def free_port():
    """A port on 127.0.0.1 nobody listens on (the server we start takes it next)."""
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def rclone_env():
    """The environment of the rclone programs we start, lazyfs's child included:
    none of the user's configuration."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    e["RCLONE_CONFIG"] = "/dev/null"
    return e


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_ready(env, proc, name, probe, timeout=20):
    """Waits until PROBE() is true (a server answers), or fails with its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"{name} did not start: {env.log_tail(name)}")
        time.sleep(0.05)


class Rcd:
    """Our own `rclone rcd` on 127.0.0.1 (the baseline), with a random user and
    password passed through its environment; calls are timed around the HTTP
    request alone."""

    def __init__(self, env):
        self.port = free_port()
        user, password = secrets.token_hex(8), secrets.token_hex(16)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        e = rclone_env()
        e.update(RCLONE_RC_USER=user, RCLONE_RC_PASS=password)
        self.proc = env.spawn(["rclone", "rcd", f"--rc-addr=127.0.0.1:{self.port}"],
                              "rclone-rcd-baseline", env=e)
        wait_ready(env, self.proc, "rclone-rcd-baseline", lambda: self.call("rc/noop", {})[1] == {})

    def call(self, method, params, timeout=300):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{method}", data=json.dumps(params).encode(),
            headers={"Content-Type": "application/json", "Authorization": self.auth})
        try:
            t0 = time.perf_counter()
            with NO_PROXY.open(req, timeout=timeout) as r:
                body = r.read()
            t = time.perf_counter() - t0
        except urllib.error.HTTPError as e:
            raise BenchError(f"rclone rcd {method}: HTTP {e.code}: "
                             f"{e.read().decode(errors='replace').strip()[:500]}")
        return t, json.loads(body)

    def copy(self, fs, rel, dst):
        """operations/copyfile of REL on FS to the absolute path DST: seconds."""
        t, _ = self.call("operations/copyfile", {"srcFs": fs, "srcRemote": rel,
                                                 "dstFs": "/", "dstRemote": dst.lstrip("/")})
        return t


def pin_threads(pid, cpus):
    """Sets the CPU affinity of every thread of PID (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, PermissionError):
            pass


def read_fd(fd, bufsize=1 << 20, limit=None):
    """Reads FD to its end (or LIMIT bytes) with one buffer; returns the byte count."""
    buf = bytearray(bufsize)
    n = 0
    while limit is None or n < limit:
        k = os.readv(fd, [buf if limit is None else memoryview(buf)[:min(bufsize, limit - n)]])
        if k == 0:
            break
        n += k
    return n


def read_all(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
