# SPDX-License-Identifier: BSD-2-Clause
"""Section 6: remote objects (remote_mode=objects) from `rclone serve http` on
127.0.0.1: warm open+close of cached objects against the same files in a local image
and against `rclone mount --vfs-cache-mode full`; the cold open of a 10 MiB object
against a running `rclone rcd` copying it alone (operations/copyfile), with where the
extra time goes (strace of the daemon); warm sequential read of a 256 MiB object
against reading its cache file directly and against rclone mount."""
import hashlib
import json
import os
import re
import shutil
import signal
import time
import zlib

from .config import REMOTE_HUGE_MIB, REMOTE_OBJS, REMOTE_TEN
from .runner import (NO_PROXY, BenchError, Rcd, free_port, log, median, pin_threads,
                     rclone_env, read_all, read_fd, rotate, run, sha256_file, wait_ready)
from .s10_restart import worker_of


# strace timelines of the daemon: where a cold open's time goes (s6_anatomy).
STRACE_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
STRACE_DUR = re.compile(r"<(\d+\.\d+)>\s*$")


def strace_calls(path):
    """[(tid, start, end, name, text)] from `strace -f -ttt -T -o`, with the
    unfinished/resumed halves of a call joined, in order of start."""
    calls, pending = [], {}
    with open(path, errors="replace") as f:
        for line in f:
            m = STRACE_LINE.match(line.rstrip("\n"))
            if not m:
                continue
            tid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
            if rest.startswith("<... "):
                r = re.match(r"<\.\.\. (\w+) resumed>(.*)$", rest)
                if not r or (tid, r.group(1)) not in pending:
                    continue
                start, head = pending.pop((tid, r.group(1)))
                name, text = r.group(1), head + r.group(2)
            else:
                n = re.match(r"(\w+)\(", rest)
                if not n:
                    continue
                if rest.endswith("<unfinished ...>"):
                    pending[(tid, n.group(1))] = (ts, rest[:-len("<unfinished ...>")])
                    continue
                start, name, text = ts, n.group(1), rest
            d = STRACE_DUR.search(text)
            calls.append((tid, start, start + (float(d.group(1)) if d else 0.0), name, text))
    calls.sort(key=lambda c: c[1])
    return calls


def cold_open_anatomy(calls):
    """The phases of each cold OPEN in a strace of the daemon, in seconds: from the
    read(2) of the request off /dev/fuse (by any thread) to the writev(2) of the
    reply (by the thread that copied), split at
    the operations/copyfile HTTP request (sendto .. the reply's first recvfrom).
    Then, apart, each background publication (cache/store/fill.c's settle thread): the
    CRC32 reads (first pread64 .. fsetxattr), the fsync of the object and the
    fsync of its objects/ directory. Returns (opens, publications)."""
    opens, pubs, by_tid = [], [], {}
    for c in calls:
        by_tid.setdefault(c[0], []).append(c)
    # /dev/fuse is where the replies go. The request is read by a FUSE worker, the
    # copy and the reply are the fetch pool's thread's (fs/open_cold.c): the read is
    # looked for on every thread, the rest on the copying one.
    fds = {}
    for c in calls:
        if c[3] == "writev":
            fd = c[4][len("writev("):].split(",", 1)[0]
            fds[fd] = fds.get(fd, 0) + 1
    fuse_read = f"read({max(fds, key=fds.get)}," if fds else None
    fuse_reads = [c for c in calls if c[3] == "read" and fuse_read and c[4].startswith(fuse_read)]
    for cs in by_tid.values():
        def find(seq, name, start, cond=lambda x: True):
            for j in range(start, len(seq)):
                if seq[j][3] == name and cond(seq[j]):
                    return j
            return None
        for i, c in enumerate(cs):
            if c[3] == "fsetxattr":
                j_pread = None
                for j in range(i - 1, -1, -1):
                    if cs[j][3] == "pread64":
                        j_pread = j
                    elif j_pread is not None:
                        break
                j_fs1 = find(cs, "fsync", i)
                j_fs2 = find(cs, "fsync", j_fs1 + 1) if j_fs1 is not None else None
                if j_pread is None or j_fs2 is None:
                    continue
                pubs.append({"total": cs[j_fs2][2] - cs[j_pread][1],
                             "crc": c[1] - cs[j_pread][1],
                             "fsync_object": cs[j_fs1][2] - cs[j_fs1][1],
                             "fsync_dir": cs[j_fs2][2] - cs[j_fs2][1]})
                continue
            if c[3] != "sendto" or "POST /operations/copyfile" not in c[4]:
                continue
            req = [x for x in fuse_reads if x[2] <= c[1]]
            after = cs[i + 1:]
            j_recv = find(after, "recvfrom", 0, lambda x: "HTTP/1.1 " in x[4])
            j_reply = find(after, "writev", j_recv + 1) if j_recv is not None else None
            if not req or j_reply is None:
                continue
            ph = {"total": after[j_reply][2] - req[-1][2],
                  "before_copy": c[1] - req[-1][2],
                  "copy": after[j_recv][2] - c[1],
                  "after_copy": after[j_reply][1] - after[j_recv][2]}
            opens.append(ph)
    return opens, pubs


def s6_remote(b):
    """Remote objects: one `rclone serve http` of the generated tree on 127.0.0.1
    for everything, our own `rclone rcd` as the copy baseline. Three parts, each
    with its own mounts: warm opens and reads, cold opens, and a strace of the
    daemon during cold opens (where the time goes)."""
    env, inp = b.env, b.inp
    if shutil.which("rclone") is None:
        raise BenchError("rclone is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    fs_ = f":http,url='{url}':"
    R = {"fs": fs_, "base": os.path.join(env.run, "remote"),
         # Inside -o a comma is escaped with a backslash (lazyfs(8)).
         "lz_opts": "remote=" + fs_.replace(",", "\\,") + ",remote_mode=objects"}
    os.makedirs(R["base"], exist_ok=True)
    ver = run(["rclone", "version"], env=rclone_env()).stdout.splitlines()[0]
    out = {"rclone": ver, "server": f"rclone serve http TREE --addr 127.0.0.1:PORT "
                                    "--dir-cache-time 0s",
           "objects": REMOTE_OBJS, "ten": REMOTE_TEN, "huge_mib": REMOTE_HUGE_MIB,
           "errors": []}
    b.res["remote"] = out
    serve = env.spawn(["rclone", "serve", "http", inp.remote_tree, "--addr",
                       f"127.0.0.1:{port}", "--dir-cache-time", "0s"], "rclone-serve",
                      env=rclone_env())
    rcd = None
    try:
        wait_ready(env, serve, "rclone-serve",
                   lambda: NO_PROXY.open(url, timeout=2).status == 200)
        R["rcd"] = rcd = Rcd(env)
        for part in (s6_warm, s6_cold, s6_anatomy):
            try:
                part(b, out, R)
            except BenchError as e:
                out["errors"].append(f"{part.__name__[3:]}: {e}")
                log(f"section 6, {part.__name__[3:]} failed: {e}")
    finally:
        if rcd is not None:
            env.stop_server(rcd.proc)
        env.stop_server(serve)
        shutil.rmtree(R["base"], ignore_errors=True)
    if out["errors"]:
        raise BenchError("; ".join(out["errors"]))


def s6_check(b, path, rel):
    """The bytes at PATH are those of REL in the generated tree."""
    if sha256_file(path) != sha256_file(os.path.join(b.inp.remote_tree, rel)):
        raise BenchError(f"{path}: not the bytes of {rel}")


def s6_warm(b, out, R):
    """Warm open+close of the 200 cached objects (lazyfs remote, the same files in a
    local image through lazyfs, rclone mount), FUSE requests per open and per
    read, and warm sequential reads of the 256 MiB object (lazyfs, its cache file
    read directly, rclone mount)."""
    env, p, inp = b.env, b.p, b.inp
    empty = os.path.join(env.run, "empty")
    os.makedirs(empty, exist_ok=True)
    cache = os.path.join(R["base"], "warm-cache")
    roots = {"lazyfs-remote": b.mp("remote"), "lazyfs-image": b.mp("remote-image"),
             "rclone-mount": b.mp("remote-rclone")}
    objs = inp.remote_objs()
    pids = {}
    res = {}
    try:
        mp = roots["lazyfs-remote"]
        pids[mp] = env.lazyfs(b.lz, mp, f"{R['lz_opts']},cache={cache},underlay={empty}",
                              "lazyfs-remote", env=rclone_env())
        mp = roots["lazyfs-image"]
        pids[mp] = env.lazyfs(b.lz, mp, f"images={inp.remote_images},underlay={empty},"
                              "backend=kernel", "lazyfs-remote-image")
        mp = roots["rclone-mount"]
        pids[mp] = env.serve(["rclone", "mount", R["fs"], mp, "--vfs-cache-mode", "full",
                              "--cache-dir", os.path.join(R["base"], "warm-rclone-cache")],
                             mp, "rclone-mount", env=rclone_env())
        # Every object read once: lazyfs fetches each into its cache, rclone into its VFS cache.
        res["prime_s"] = {}
        for v, root in roots.items():
            t0 = time.perf_counter()
            for rel in objs + ([] if v == "lazyfs-image" else ["huge.bin"]):
                n = read_all(os.path.join(root, rel))
                want = os.path.getsize(os.path.join(inp.remote_tree, rel))
                if n != want:
                    raise BenchError(f"{v}: read {n} bytes of {rel}, expected {want}")
            res["prime_s"][v] = time.perf_counter() - t0
            for rel in (objs[0], objs[-1]):
                s6_check(b, os.path.join(root, rel), rel)
        log("remote: every object read once (" + ", ".join(
            f"{v} {t:.1f} s" for v, t in res["prime_s"].items()) + ")")

        names = list(roots)
        lists = {v: b.write_list(f"remote-open-{v}.list",
                                    [os.path.join(roots[v], rel) for rel in objs]) for v in names}
        # Each variant as it runs (the scheduler places the daemon's threads), and pinned:
        # the helper and every thread of the server on one CPU, so that no wake-up
        # crosses CPUs (a cross-CPU wake-up costs tens of µs on this VM).
        cpu = max(os.sched_getaffinity(0))
        everywhere = os.sched_getaffinity(0)
        variants = names + [v + "@cpu" for v in names]
        rounds = []
        for rnd in range(p["remote_open_rounds"]):
            row = {}
            for v in rotate(variants, rnd):
                name = v.split("@")[0]
                argv = [b.helper, "open", lists[name], str(p["remote_open_passes"])]
                if "@" not in v:
                    row[v] = json.loads(run(argv).stdout)
                    continue
                pin_threads(pids[roots[name]], {cpu})
                try:
                    row[v] = json.loads(run(["taskset", "-c", str(cpu)] + argv).stdout)
                finally:
                    pin_threads(pids[roots[name]], everywhere)
            rounds.append(row)
        res.update(files=len(objs), passes=p["remote_open_passes"], open_rounds=rounds,
                   pinned_cpu=cpu)
        log("remote open+close p50: " + ", ".join(
            f"{v} {median([x[v]['p50'] for x in rounds]) / 1e3:.1f} µs" for v in variants))

        # FUSE requests: per open+close (one untimed and one timed pass of the
        # helper), per warm read of a whole object.
        res["requests_per_open"], res["requests_per_object_read"] = {}, {}
        for v in names:
            t = env.trace(roots[v])
            try:
                b.helper_json("open", lists[v], 1)
                time.sleep(0.5)  # RELEASE follows close in the background
                res["requests_per_open"][v] = {k: n / (2 * len(objs))
                                               for k, n in t.counts().items()}
                t.reset()
                for rel in objs:
                    read_all(os.path.join(roots[v], rel))
                time.sleep(0.5)
                res["requests_per_object_read"][v] = {k: n / len(objs)
                                                      for k, n in t.counts().items()}
            finally:
                t.stop()

        # The 256 MiB object: lazyfs, its cache file (the largest one) and rclone mount.
        s6_warm_read(b, res, roots, cache)
    finally:
        out["warm"] = res
        for mp, pid in pids.items():
            env.umount(mp, pid)


def s6_warm_read(b, res, roots, cache):
    """The 256 MiB object: lazyfs, its cache file (the largest one) and rclone mount."""
    env, p = b.env, b.p
    size = REMOTE_HUGE_MIB << 20
    big = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(cache, "objects"))
           for f in fs]
    big = [f for f in big if os.path.getsize(f) == size]
    if len(big) != 1:
        raise BenchError(f"expected one {REMOTE_HUGE_MIB} MiB file in the cache, found {big}")
    files = {"lazyfs-remote": os.path.join(roots["lazyfs-remote"], "huge.bin"),
             "cache-file": big[0],
             "rclone-mount": os.path.join(roots["rclone-mount"], "huge.bin")}
    for v, f in files.items():
        b.helper_json("read", f, 1 << 20)  # warm (DAMON may have paged it out)
    reads = []
    for rnd in range(p["remote_read_reps"]):
        row = {}
        for v in rotate(list(files), rnd):
            r = b.helper_json("read", files[v], 1 << 20)
            if r["bytes"] != size:
                raise BenchError(f"{files[v]}: read {r['bytes']} bytes, expected {size}")
            row[v] = r["bytes"] / (r["ns"] / 1e9)
        reads.append(row)
    res["read_bytes"] = size
    res["read_rounds_Bps"] = reads
    res["requests_per_big_read"] = {}
    for v in ("lazyfs-remote", "rclone-mount"):
        t = env.trace(roots[v])
        try:
            b.helper_json("read", files[v], 1 << 20)
            time.sleep(0.3)
            res["requests_per_big_read"][v] = t.counts()
        finally:
            t.stop()
    log("remote warm read: " + ", ".join(
        f"{v} {median([x[v] for x in reads]) / 1e9:.2f} GB/s" for v in files))


def timed_read(path, size):
    """Open, the first 64 KiB, then the rest of PATH (1 MiB reads): the seconds from
    the open's start to each."""
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    t1 = time.perf_counter()
    try:
        n = read_fd(fd, 64 << 10, limit=64 << 10)
        t2 = time.perf_counter()
        n += read_fd(fd)
        t3 = time.perf_counter()
    finally:
        os.close(fd)
    if n != size:
        raise BenchError(f"{path}: read {n} bytes, expected {size}")
    return {"open_s": t1 - t0, "first64k_s": t2 - t0, "all_s": t3 - t0}


def s6_cold(b, out, R):
    """Each round mounts lazyfs (listing_ttl=1, stream=on, the default) and rclone
    mount with empty caches; for each 10 MiB object, in rotating order: lazyfs (a
    stat once the listing has expired, then the first open, which returns once the
    fetch has begun, then the reads), the baseline rcd copying the object alone,
    rclone mount (open, first 64 KiB, the rest). Then the 256 MiB object, cold on
    both, in rotating order. The server finds each object in the page cache."""
    env, p, inp = b.env, b.p, b.inp
    empty = os.path.join(env.run, "empty")
    os.makedirs(empty, exist_ok=True)
    rcd = R["rcd"]
    rows, huge = [], []
    out["cold"] = {"objects": rows, "ten_mib": 10, "huge": huge, "huge_mib": REMOTE_HUGE_MIB}
    size = 10 << 20
    for rnd in range(p["remote_cold_rounds"]):
        d = os.path.join(R["base"], f"cold-{rnd}")
        dst = os.path.join(d, "rcd-copies")
        os.makedirs(dst)
        lz_mp, rc_mp = b.mp("remote-cold"), b.mp("remote-cold-rclone")
        pids = {}
        try:
            pids[lz_mp] = env.lazyfs(b.lz, lz_mp, f"{R['lz_opts']},cache={d}/cache,"
                                     f"underlay={empty},listing_ttl=1",
                                     f"lazyfs-remote-cold-{rnd}", env=rclone_env())
            pids[rc_mp] = env.serve(["rclone", "mount", R["fs"], rc_mp, "--vfs-cache-mode",
                                     "full", "--cache-dir", os.path.join(d, "rclone-cache")],
                                    rc_mp, f"rclone-mount-cold-{rnd}", env=rclone_env())
            # Untimed: starts lazyfs's rcd, opens every HTTP connection, lists the top.
            objs = inp.remote_objs()
            read_all(os.path.join(lz_mp, objs[0]))
            rcd.copy(R["fs"], objs[1], os.path.join(dst, "warm-up"))
            read_all(os.path.join(rc_mp, objs[2]))
            listed = time.monotonic()
            for k, rel in enumerate(rotate(inp.remote_tens(), rnd)[:p["remote_cold_n"]]):
                read_all(os.path.join(inp.remote_tree, rel))
                row = {"round": rnd, "object": rel}
                for v in rotate(["lazyfs", "rcd", "rclone-mount"], k + rnd):
                    if v == "rcd":
                        copy = os.path.join(dst, f"{k}.bin")
                        row["rcd_copy_s"] = rcd.copy(R["fs"], rel, copy)
                        if os.path.getsize(copy) != size:
                            raise BenchError(f"rcd copied {os.path.getsize(copy)} bytes of {rel}")
                        os.unlink(copy)
                        continue
                    path = os.path.join(lz_mp if v == "lazyfs" else rc_mp, rel)
                    if v == "lazyfs":
                        # Past listing_ttl, the stat's LOOKUP lists the top again; the
                        # open then finds the listing fresh.
                        time.sleep(max(0.0, listed + 1.2 - time.monotonic()))
                        t0 = time.perf_counter()
                        os.stat(path)
                        row["lazyfs_stat_s"] = time.perf_counter() - t0
                        listed = time.monotonic()
                    key = "lazyfs" if v == "lazyfs" else "rclone"
                    for m, t in timed_read(path, size).items():
                        row[f"{key}_{m}"] = t
                    if rnd == 0 and k == 0:
                        s6_check(b, path, rel)
                rows.append(row)
            huge_row = {"round": rnd}
            read_all(os.path.join(inp.remote_tree, "huge.bin"))
            for v in rotate(["lazyfs", "rclone"], rnd):
                path = os.path.join(lz_mp if v == "lazyfs" else rc_mp, "huge.bin")
                os.stat(path)  # lists again if the listing expired: outside the timing
                for m, t in timed_read(path, REMOTE_HUGE_MIB << 20).items():
                    huge_row[f"{v}_{m}"] = t
                if rnd == 0:
                    s6_check(b, path, "huge.bin")
            huge.append(huge_row)
            log(f"remote cold {REMOTE_HUGE_MIB} MiB, round {rnd + 1}: first 64 KiB lazyfs "
                f"{huge_row['lazyfs_first64k_s'] * 1e3:.1f} ms, rclone mount "
                f"{huge_row['rclone_first64k_s'] * 1e3:.1f} ms; all lazyfs "
                f"{huge_row['lazyfs_all_s']:.2f} s, rclone mount {huge_row['rclone_all_s']:.2f} s")
            log(f"remote cold round {rnd + 1}/{p['remote_cold_rounds']}: lazyfs open "
                f"{median([x['lazyfs_open_s'] for x in rows[-k - 1:]]) * 1e3:.1f} ms, "
                f"rcd copy {median([x['rcd_copy_s'] for x in rows[-k - 1:]]) * 1e3:.1f} ms")
        finally:
            for mp, pid in pids.items():
                env.umount(mp, pid)
            shutil.rmtree(d, ignore_errors=True)
    # What the store adds besides the copy, in memory: its CRC32 (zlib, as
    # cache/store/digest.c) and the MD5 it checks when a remote lists one (OpenSSL).
    data = open(os.path.join(inp.remote_tree, inp.remote_tens()[0]), "rb").read()
    crc, md5 = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        zlib.crc32(data)
        t1 = time.perf_counter()
        hashlib.md5(data).digest()
        crc.append(t1 - t0)
        md5.append(time.perf_counter() - t1)
    out["cold"]["crc32_10mib_s"] = crc
    out["cold"]["md5_10mib_s"] = md5


def s6_anatomy(b, out, R):
    """Cold opens with stream=off (the whole object copied before the open returns)
    and the daemon under `strace -f -ttt -T`: the phases of each OPEN."""
    env, p, inp = b.env, b.p, b.inp
    if shutil.which("strace") is None:
        out["anatomy"] = {"error": "strace is not installed"}
        return
    empty = os.path.join(env.run, "empty")
    os.makedirs(empty, exist_ok=True)
    d = os.path.join(R["base"], "anatomy")
    mp = b.mp("remote-anatomy")
    os.makedirs(d)
    trace = os.path.join(env.logs, "remote-anatomy.strace")
    pid, st = None, None
    opens = []
    try:
        # bpf=off: with the tracker a worker thread starts the fetch at the open's
        # syscall entry, and the OPEN's own thread only waits for it. stream=off: the
        # open that waits for the whole copy (operations/copyfile) is the one dissected.
        pid = env.lazyfs(b.lz, mp, f"{R['lz_opts']},cache={d}/cache,underlay={empty},bpf=off,"
                         "stream=off", "lazyfs-remote-anatomy", env=rclone_env())
        read_all(os.path.join(mp, inp.remote_objs()[0]))  # starts its rcd
        tens = inp.remote_tens()[:p["remote_anatomy"]]
        for rel in tens:
            os.stat(os.path.join(mp, rel))  # the listing is fresh: only the OPEN is traced
        # The worker the keeper started serves the mount: -f follows its threads.
        st = env.spawn(["strace", "-f", "-ttt", "-T", "-p", str(worker_of(pid)), "-o", trace],
                       "strace")
        deadline = time.monotonic() + 10
        while "attached" not in env.log_tail("strace"):
            if st.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"strace did not attach: {env.log_tail('strace')}")
            time.sleep(0.05)
        time.sleep(0.2)
        for rel in tens:
            t0 = time.perf_counter()
            fd = os.open(os.path.join(mp, rel), os.O_RDONLY)
            opens.append(time.perf_counter() - t0)
            os.close(fd)
            time.sleep(0.2)
    finally:
        if st is not None:
            if st.poll() is None:
                st.send_signal(signal.SIGINT)  # strace detaches
            env.stop_pid(st.pid, grace=10)
        if pid is not None:
            env.umount(mp, pid)
        shutil.rmtree(d, ignore_errors=True)
    phases, pubs = cold_open_anatomy(strace_calls(trace))
    if len(phases) != len(tens):
        raise BenchError(f"found {len(phases)} cold OPENs in the strace, expected {len(tens)}")
    out["anatomy"] = {"objects": len(tens), "open_s_under_strace": opens, "phases_s": phases,
                      "publications_s": pubs}
