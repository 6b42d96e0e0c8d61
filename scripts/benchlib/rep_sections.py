# SPDX-License-Identifier: BSD-2-Clause
"""The report's rows of sections 1–5 and 7–9 (one writer per section; section 6 is
in rep_remote), each adding its targets and notes."""
from .config import COLD_SETTLE_S, SIZES, SYSTEMS
from .rep_format import (fmt_t, median_counts, mm, opcounts_str, pairs, ratio_str, req_total,
                         reqs_said, skipped_notes)
from .runner import median


def rep_mount_ready(r, row, T):
    """Section 1: lazyfs's mount-ready time by image count, static loop mounts."""
    lz = {int(k): v for k, v in r["lazyfs_s"].items()}
    base = lz[SIZES[0]]
    for n in SIZES:
        rs = [a / b for a, b in zip(lz[n], base)]
        row(1, f"mount ready: `lazyfs -o images=DIR MP` (daemonizes when ready) + first "
            f"`stat MP`, {len(lz[n])} runs", f"lazyfs, {n} images",
            fmt_t(median(lz[n])), mm(lz[n], fmt_t),
            "1.00x (baseline)" if n == SIZES[0] else f"{ratio_str(rs)} vs {SIZES[0]} images",
            "fork+exec, mount(2) of /dev/fuse, fuse_daemonize's fork and the INIT round trip; "
            "the images directory is not read, so the count cannot matter")
    st = r["static_total_s"]
    row(1, f"static `mount -t squashfs -o loop,ro` of {r['static_mounts']} images one after "
        f"the other, {len(st)} runs", "kernel loop mounts", fmt_t(median(st)), mm(st, fmt_t),
        f"{fmt_t(median(r['static_each_s']))} per mount (median)",
        "per image: fork+exec of mount(8), a loop device (LOOP_CTL_GET_FREE, LOOP_CONFIGURE), "
        "the squashfs superblock read and mount(2)")
    ex = r["static_extrapolated_4000_s"]
    n4 = lz[SIZES[-1]]
    rs = [a / b for a, b in zip(n4, ex)]
    row(1, f"static mounts **extrapolated** to 4000 images (measured {r['static_mounts']}, "
        f"times 4000/{r['static_mounts']})", "kernel loop mounts", fmt_t(median(ex)), mm(ex, fmt_t),
        f"lazyfs with 4000 images takes {median(rs):.5f}x of it",
        "linear in the image count: every image is mounted up front")
    worst = max(median(lz[n]) for n in SIZES)
    diff = [a - b for a, b in zip(lz[SIZES[-1]], base)]
    T.append(("mount-ready < 50 ms and flat in the image count (flat: 4000 images at most "
              "5 ms, a tenth of the budget, slower than 10, median of pairwise differences)",
              worst < 0.050 and median(diff) < 0.005,
              f"medians {', '.join(fmt_t(median(lz[n])) for n in SIZES)}; 4000 − 10 images "
              f"{fmt_t(median(diff))}"))


def rep_cold_open(r, row, T):
    """Section 2: the first open in a cold image against the warm open after it."""
    c, e = r["cached"], r["evicted"]
    row(2, f"open+close of a file in a **cold** image, image file in the host page cache "
        f"({len(c['cold_s'])} images, each on its first access)", "lazyfs passthrough, kernel backend",
        fmt_t(median(c["cold_s"])), mm(c["cold_s"], fmt_t),
        f"{median([a / b for a, b in zip(c['cold_s'], c['warm_s'])]):.1f}x warm",
        "LOOKUP of the image entry (lazyfs opens the image, sets up a loop device and "
        "fsmount()s it), LOOKUP of the file, then OPEN")
    row(2, "open+close of the same file right after, warm", "lazyfs passthrough",
        fmt_t(median(c["warm_s"])), mm(c["warm_s"], fmt_t), "",
        "one OPEN round trip (RELEASE is sent in the background)")
    row(2, "difference cold − warm, per image (image file in the host page cache)",
        "lazyfs passthrough", fmt_t(median(c["diff_s"])), mm(c["diff_s"], fmt_t), "",
        "the image setup made on the first lookup")
    row(2, f"difference cold − warm, per image, image file evicted from the page cache first "
        f"({len(e['cold_s'])} images)", "lazyfs passthrough", fmt_t(median(e["diff_s"])),
        mm(e["diff_s"], fmt_t), f"{median(e['diff_s']) / median(c['diff_s']):.1f}x the cached case",
        "the same, plus reading the image's superblock, tables and the file from the disk")
    T.append(("first open in a cold image < 1 ms more than a warm open (image file in the "
              "page cache)", median(c["diff_s"]) < 1e-3,
              f"median difference {fmt_t(median(c['diff_s']))}; "
              f"{fmt_t(median(e['diff_s']))} with the image file evicted first"))


OPCODE_NOTES = {
    "FUSE_ACCESS": "access(2)/faccessat(2) calls, one round trip each: the gcc driver probes "
                   "its programs and files with access(), lazyfs implements the ACCESS operation "
                   "and the mount has no default_permissions, so the kernel asks every time",
    "FUSE_IOCTL": "isatty() (TCGETS) on files opened from the mount, e.g. ld lexing the "
                  "libgcc_s.so linker script: lazyfs has no ioctl handler and the kernel forwards "
                  "every ioctl on a FUSE regular file anyway",
    "FUSE_LOOKUP": "entries the kernel had to look up again (dropped dentries or expired timeouts)",
    "FUSE_READ": "pages that were no longer in the FUSE page cache (see DAMON above: pages "
                 "idle for a while are evicted on this machine, in every variant)",
    "FUSE_GETATTR": "attributes the kernel fetched again",
    "FUSE_FORGET": "inodes the kernel evicted",
    "FUSE_BATCH_FORGET": "inodes the kernel evicted",
    "FUSE_FLUSH": "close() of a file opened without FOPEN_NOFLUSH",
    "FUSE_READLINK": "symlinks read again",
}


OPEN_WHY = {
    "native": "path walk in the dcache and a file descriptor: no filesystem round trip",
    "loop": "the same as native: squashfs dentries and inodes stay cached",
    "lazyfs-passthrough": "one OPEN round trip to the daemon per open, answered with the backing "
                          "id kept since the file's last close (backing_keep): no file opened, "
                          "nothing registered (RELEASE follows in the background)",
    "lazyfs-cached": "no request at all (the first OPEN was answered ENOSYS): the kernel's own "
                     "open of a FUSE inode",
    "lazyfs-squashfuse-passthrough": "one OPEN round trip per open as with the kernel backend, "
                                     "but no backing file to reopen: the daemon reads for these "
                                     "inodes itself",
    "lazyfs-squashfuse-cached": "no request, as lazyfs-cached: the backend matters only for reads",
    "lazyfs-io_uring": "one OPEN round trip as lazyfs-passthrough, carried by the io_uring "
                       "queues instead of read(2)/writev(2) on /dev/fuse",
    "squashfuse_ll": "the round trips counted here, each answered by squashfuse_ll (Debian's "
                     "build, libfuse 3.14)",
    "passthrough_hp": "two synchronous round trips per open+close, OPEN and FLUSH (the stock "
                      "example sets no FOPEN_NOFLUSH), plus RELEASE in the background",
}


def rep_open(r, row, T, notes):
    rounds = r["rounds"]
    names = list(rounds[0])
    reqs = r["requests_per_open"]
    hp = "passthrough_hp" in names
    for v in names:
        p50 = [x[v]["p50"] / 1e9 for x in rounds]
        p99 = [x[v]["p99"] / 1e9 for x in rounds]
        ratios = []
        if hp and v != "passthrough_hp":
            ratios.append(ratio_str(pairs(rounds, v, "passthrough_hp", lambda x: x["p50"]))
                          + " vs passthrough_hp")
        if v not in ("native", "loop"):
            ratios.append(ratio_str(pairs(rounds, v, "loop", lambda x: x["p50"])) + " vs loop")
        if v != "native":
            ratios.append(ratio_str(pairs(rounds, v, "native", lambda x: x["p50"])) + " vs native")
        extra = f" Requests per open+close: {opcounts_str(reqs[v], 2)}." if v in reqs else ""
        row(3, f"warm open+close **p50**, {r['files']} files x {r['passes']} passes, "
            f"{len(rounds)} rounds", v, fmt_t(median(p50)), mm(p50, fmt_t), "; ".join(ratios),
            OPEN_WHY.get(v, "") + "." + extra)
        row(3, "warm open+close **p99**", v, fmt_t(median(p99)), mm(p99, fmt_t),
            ratio_str(pairs(rounds, v, "passthrough_hp", lambda x: x["p99"])) + " vs passthrough_hp"
            if hp and v.startswith("lazyfs") else "",
            "the tail: the daemon's threads waiting for one of the 2 busy CPUs"
            if req_total(reqs.get(v)) else "the tail: interrupts and preemption")
    if "cpu" in r:
        rep_open_cpu(r, row)
    skipped_notes(3, r, notes)
    if not hp:
        row(3, "warm open+close", "passthrough_hp", "not measured", "", "", r["passthrough_hp"])
        T.append(("lazyfs passthrough open+close within 1.3x of passthrough_hp", None,
                  r["passthrough_hp"]))
    else:
        rs = pairs(rounds, "lazyfs-passthrough", "passthrough_hp", lambda x: x["p50"])
        T.append(("lazyfs passthrough open+close within 1.3x of passthrough_hp (p50)",
                  median(rs) <= 1.3, f"ratio {ratio_str(rs, 3)}"))


def rep_open_cpu(r, row):
    c, reqs = r["cpu"], r["requests_per_open"]
    for v, xs in c["per_100k"].items():
        opener = [x["opener_s"] for x in xs]
        if xs[0]["server_s"] is None:
            row(3, f"CPU time per 100k warm open+close ({c['opens']:,} measured, {len(xs)} runs): "
                "the opener's user+sys", v, fmt_t(median(opener)), mm(opener, fmt_t), "",
                "no server: the opener's own path walk and open in the kernel")
            continue
        server = [x["server_s"] for x in xs]
        n = req_total(reqs.get(v))
        per_req = f"; {median(server) / 1e5 / n * 1e6:.1f} µs of daemon CPU per request" if n else ""
        row(3, f"CPU time per 100k warm open+close ({c['opens']:,} measured, {len(xs)} runs): "
            "the **server's**, all threads (/proc/PID/stat)", v, fmt_t(median(server)),
            mm(server, fmt_t), f"opener's user+sys {fmt_t(median(opener))}",
            (f"{reqs_said(reqs.get(v), 'open+close', 2)}{per_req}: reading each request and "
             "answering it" + (", and for the OPEN reopening the backing file and registering "
                               "it for passthrough (closing both at RELEASE)"
                               if v == "passthrough_hp" else
                               ", the OPEN reusing the backing id kept since the last close"
                               if v in PASSTHROUGH else "")
             if n else "no request reaches the server: it does nothing")
            + " (tick-based accounting: 10 ms resolution)")


READ_ORDER = ("loop", "loop-shared", *SYSTEMS, "squashfuse_ll")
READ_LABELS = {"loop": "loop (its own loop device)",
               "loop-shared": "loop on lazyfs's loop device (same page cache as passthrough)"}
PASSTHROUGH = ("lazyfs-passthrough", "lazyfs-io_uring")


def read_why(v, rq, size, warm):
    """What a read on V is limited by, from the requests it caused (RQ)."""
    reads = (rq or {}).get("FUSE_READ", 0)
    if v in ("loop", "loop-shared"):
        return ("copying from the squashfs page cache; how fast depends on where in memory that "
                "cache landed (see min–max)" if warm else "squashfs reading the image through the "
                "loop device (random data is stored uncompressed)")
    if v in PASSTHROUGH:
        return (("FUSE passthrough hands each read to the backing file on lazyfs's detached "
                 "squashfs mount: the page-cache copy" if warm else "squashfs reading the image "
                 "under lazyfs's detached mount, in the kernel")
                + (f"; {reads:.0f} READ reached the daemon" if rq is not None else ""))
    if rq is not None and reads == 0:
        return "copying from the FUSE inode's own page cache, kept across opens (no READ)"
    if rq is None:
        return "FUSE READ requests answered by the server"
    return (f"{reads:.0f} READ requests of {size / reads / 1024:.0f} KiB on average, each a round "
            "trip to the server, which "
            + ("splices from the backing file" if v == "lazyfs-cached" else
               "decompresses and copies through libsquashfuse (sqfs_read_range) in user space"))


def rep_read(r, row, T, notes):
    rounds, first = r["rounds_Bps"], r["first_read_Bps"]
    names = [v for v in READ_ORDER if any(v in x for x in rounds)]
    warm_rq, cold_rq = r["requests_per_read"], r.get("requests_per_cold_read", {})
    base = {v: "loop" for v in names if v != "loop"}
    if "loop-shared" in names:  # the same pages as passthrough: placement cancels out
        base["lazyfs-passthrough"] = "loop-shared"
    gb = lambda b: f"{b:.2f}"
    n_reads = len(rounds) // max(r["setups"], 1)
    for v in names:
        xs = [x[v] / 1e9 for x in rounds if v in x]
        ratio = []
        if v in base:
            ratio.append(ratio_str(pairs(rounds, v, base[v])) + f" vs {base[v]}")
        if v in base and base[v] != "loop":
            ratio.append(ratio_str(pairs(rounds, v, "loop")) + " vs loop")
        row(4, f"warm sequential read of {r['bytes'] >> 20} MiB, 1 MiB buffer, GB/s "
            f"({r['setups']} sets of fresh mounts x {n_reads} reads)", READ_LABELS.get(v, v),
            f"{median(xs):.2f} GB/s", mm(xs, gb), "; ".join(ratio),
            read_why(v, warm_rq.get(v), r["bytes"], True) + ".")
    alone = [v for v in names if v != "loop-shared"]
    for v in alone:
        xs = [x[v] / 1e9 for x in first if v in x]
        row(4, "first read after mounting (the image file read into the host page cache just "
            "before), GB/s", READ_LABELS.get(v, v), f"{median(xs):.2f} GB/s", mm(xs, gb),
            "" if v == "loop" else ratio_str(pairs(first, v, "loop")) + " vs loop",
            read_why(v, cold_rq.get(v), r["bytes"], False) + ".")
    rep_read_cold(r, alone, row)
    for v in names:
        if v.startswith("lazyfs"):
            rs = pairs(rounds, v, base[v])
            detail = f"ratio {ratio_str(rs, 3)} vs {base[v]}"
            if base[v] != "loop":
                detail += f"; {ratio_str(pairs(rounds, v, 'loop'), 3)} vs loop with its own page cache"
            T.append((f"{v} warm read throughput >= 0.95x the loop mount", median(rs) >= 0.95, detail))
    for n in r.get("notes", []):
        notes.append(f"- Section 4: {n}.")
    skipped_notes(4, r, notes)


def rep_read_cold(r, alone, row):
    gb = lambda b: f"{b:.2f}"
    cold, cold_rq = r.get("cold_Bps") or [], r.get("requests_per_cold_read", {})
    for v in [v for v in alone if cold and v in cold[0]]:
        xs = [x[v] / 1e9 for x in cold if v in x]
        row(4, f"**cold** sequential read of {r['bytes'] >> 20} MiB, every cache dropped first "
            f"(`echo 3 > drop_caches`), {len(xs)} reads", READ_LABELS.get(v, v),
            f"{median(xs):.2f} GB/s", mm(xs, gb),
            "" if v == "loop" else ratio_str(pairs(cold, v, "loop")) + " vs loop",
            "the disk under the image file, then " + read_why(v, cold_rq.get(v), r["bytes"], False)
            + (f". Requests (one traced cold read): {opcounts_str(cold_rq[v])}" if v in cold_rq else "")
            + ".")
    us = lambda ns: fmt_t(ns / 1e9)
    for when, key, n in (("warm", "rand_warm", r.get("rand_warm_n")),
                         ("**cold**", "rand_cold", r.get("rand_cold_n"))):
        rs = r.get(key) or []
        for v in [v for v in (alone if "cold" in when else r["rand_warm"][0]) if rs and v in rs[0]]:
            p50 = [x[v]["p50"] for x in rs if v in x]
            rate = [x[v]["n"] / (x[v]["ns"] / 1e9) for x in rs if v in x]
            row(4, f"{when} random {r['rand_block'] // 1024} KiB preads over the {r['bytes'] >> 20} "
                f"MiB file ({n:,} per run, {len(p50)} runs; same offsets everywhere): **p50** "
                "latency" + (", caches dropped before each run" if "cold" in when else ""),
                READ_LABELS.get(v, v), us(median(p50)), mm(p50, us),
                (f"{median(rate) / 1e3:.0f}k reads/s; p99 {us(median([x[v]['p99'] for x in rs if v in x]))}"
                 + ("" if v == "loop" else "; " + ratio_str(pairs(rs, v, "loop", lambda x: x["p50"]))
                    + " vs loop")),
                rand_why(v, "cold" in when))


def rand_why(v, cold):
    if not cold:
        if v in PASSTHROUGH:
            return "the page-cache copy of the backing file, plus the passthrough hop in the kernel"
        if v in ("loop", "loop-shared"):
            return "the page-cache copy and the system call"
        return "the FUSE inode's own page cache (no request once warm)"
    if v in ("loop",) or v in PASSTHROUGH:
        return ("a miss reads the squashfs block holding the 4 KiB (128 KiB blocks) from the disk "
                "in the kernel, plus readahead")
    return ("a miss is a READ round trip (readahead makes it up to 128 KiB) to the server, which "
            "reads the image from the disk" + (" (splice)" if v == "lazyfs-cached" else
                                               " through libsquashfuse"))


COMPILE_WHY = {
    "loop": "CPU: cc1, the configure shell script, as and ld; no FUSE",
    "lazyfs-passthrough": "the same CPU, plus the round trips counted here: one OPEN per file "
                          "opened from the image (RELEASE follows in the background); make -j2 "
                          "keeps both CPUs busy, so each round trip also waits for the daemon to "
                          "get one",
    "lazyfs-cached": "the same CPU, plus the few round trips counted here (opens need none, "
                     "reads none once warm)",
    "lazyfs-squashfuse-passthrough": "the same CPU, plus an OPEN per file opened; reads come "
                                     "from the FUSE page cache once warm",
    "lazyfs-squashfuse-cached": "the same CPU; opens send nothing and warm reads come from the "
                                "FUSE page cache",
    "lazyfs-io_uring": "as lazyfs-passthrough, with the round trips carried by io_uring",
    "squashfuse_ll": "the same CPU, plus the round trips counted here, answered by squashfuse_ll",
}


def clean_counts(cs):
    """The median counts over the runs no drop_caches by someone else disturbed, and
    how many were left out."""
    clean = [c for c in cs if not c.get("_cache_drops")]
    return median_counts([{k: n for k, n in c.items() if not k.startswith("_")}
                          for c in (clean or cs)]), len(cs) - len(clean)


def rep_compile(r, row, T, notes):
    rounds = r["rounds"]
    names = list(rounds[0])
    reqs, disturbed = {}, {}
    for v, cs in r["requests_per_build"].items():
        reqs[v], disturbed[v] = clean_counts(cs)
    for v in names:
        wall = [x[v]["wall"] for x in rounds]
        cpu = [x[v]["cpu"] for x in rounds]
        blocked = [x[v]["wall"] - x[v]["cpu"] for x in rounds]
        cblocked = [x[v]["configure_wall"] - x[v]["configure_cpu"] for x in rounds]
        rq = reqs.get(v)
        extra = ""
        if rq is not None:
            extra = f" FUSE requests per build: {opcounts_str(rq)} (total {sum(rq.values()):.0f})"
            if disturbed[v]:
                extra += (f"; left out of this median: {disturbed[v]} of "
                          f"{len(r['requests_per_build'][v])} builds, during which another "
                          "process wrote to drop_caches")
            extra += "."
        row(5, f"{r['project']}: `{r['command']}`, warm, {len(rounds)} builds: **wall**", v,
            fmt_t(median(wall)), mm(wall, fmt_t),
            "" if v == "loop" else ratio_str(pairs(rounds, v, "loop", lambda x: x["wall"])) + " vs loop",
            COMPILE_WHY.get(v, "") + "." + extra)
        row(5, "… user+sys of the build's processes", v, fmt_t(median(cpu)), mm(cpu, fmt_t),
            "" if v == "loop" else ratio_str(pairs(rounds, v, "loop", lambda x: x["cpu"])) + " vs loop",
            "compiling; FUSE round trips add only a little system time in the callers")
        row(5, "… blocked = wall − (user+sys); [configure alone]", v,
            f"{fmt_t(median(blocked))} [{fmt_t(median(cblocked))}]",
            f"{mm(blocked, fmt_t)} [{mm(cblocked, fmt_t)}]",
            "" if v == "loop" else "Δ vs loop " + fmt_t(median(
                [(x[v]["wall"] - x[v]["cpu"]) - (x["loop"]["wall"] - x["loop"]["cpu"]) for x in rounds]))
            + " [" + fmt_t(median([(x[v]["configure_wall"] - x[v]["configure_cpu"]) -
                                   (x["loop"]["configure_wall"] - x["loop"]["configure_cpu"])
                                   for x in rounds])) + "]",
            "negative for the whole build because make -j2 runs two compilers at once on "
            "2 CPUs; configure runs one at a time, so its figure is time off-CPU "
            "(fork/exec waits and FUSE replies)")
    rep_preprocess(r, row)
    rep_bpf_counts(r, row)
    seen = sorted({op for c in reqs.values() for op, n in c.items()
                   if n and op not in ("FUSE_OPEN", "FUSE_RELEASE")})
    for op in seen:
        notes.append(f"- `{op}` in the builds: {OPCODE_NOTES.get(op, 'see the JSON')}.")
    for n in r.get("notes", []):
        notes.append(f"- Section 5: {n}.")
    skipped_notes(5, r, notes)
    for v in [v for v in ("lazyfs-passthrough", "lazyfs-cached") if v in names]:
        rs = pairs(rounds, v, "loop", lambda x: x["wall"])
        T.append((f"{v} build wall time <= 1.05x the loop mount", median(rs) <= 1.05,
                  f"ratio {ratio_str(rs, 3)}"))
    pp = r.get("pp_rounds") or []
    for v in [v for v in ("lazyfs-passthrough", "lazyfs-cached") if pp and v in pp[0]]:
        rs = pairs(pp, v, "loop", lambda x: x["wall"])
        default = " (the default mode)" if v == "lazyfs-passthrough" else ""
        T.append((f"{v} preprocessing within 1.05x of the loop mount{default}",
                  median(rs) <= 1.05, f"ratio {ratio_str(rs, 3)}"))
    if "lazyfs-passthrough" in reqs:
        c = reqs["lazyfs-passthrough"]
        other = {k: n for k, n in c.items() if k not in ("FUSE_OPEN", "FUSE_RELEASE")}
        ok = not any(other.values()) and c.get("FUSE_OPEN", 0) == c.get("FUSE_RELEASE", 0)
        T.append(("passthrough build sends only OPEN + RELEASE, one each per opened file", ok,
                  f"OPEN {c.get('FUSE_OPEN', 0):.0f}, RELEASE {c.get('FUSE_RELEASE', 0):.0f}; "
                  f"other opcodes: {opcounts_str(other)}"))
    if "lazyfs-cached" in reqs:
        tot = sum(reqs["lazyfs-cached"].values())
        T.append(("cached build sends < 50 FUSE requests in all", tot < 50,
                  f"{tot:.0f} requests ({opcounts_str(reqs['lazyfs-cached'])})"))


def rep_preprocess(r, row):
    rounds = r.get("pp_rounds") or []
    if not rounds:
        return
    names = list(rounds[0])
    reps = rounds[0][names[0]]["reps"]
    for v in names:
        wall = [x[v]["wall"] for x in rounds]
        blocked = [x[v]["wall"] - x[v]["cpu"] for x in rounds]
        rq = clean_counts(r["requests_per_pp"][v])[0] if v in r["requests_per_pp"] else None
        dblk = median([(x[v]["wall"] - x[v]["cpu"]) - (x["loop"]["wall"] - x["loop"]["cpu"])
                       for x in rounds])
        row(5, f"preprocess only, {len(rounds)} rounds of {reps} x ({r['preprocess']}), one "
            "compiler at a time: **wall** [blocked = wall − user+sys]", v,
            f"{fmt_t(median(wall))} [{fmt_t(median(blocked))}]",
            f"{mm(wall, fmt_t)} [{mm(blocked, fmt_t)}]",
            "" if v == "loop" else ratio_str(pairs(rounds, v, "loop", lambda x: x["wall"]))
            + f" vs loop; blocked Δ vs loop {fmt_t(dblk)}",
            "cc1 and cc1plus on the CPU; the blocked part is exec, page faults and the "
            "reads of headers from the page cache, no FUSE" if rq is None else
            reqs_said(rq, f"run of {reps}") + "; with one compiler at a time each synchronous "
            "request's round trip adds to the blocked time")


ASYNC_OPS = ("RELEASE", "FORGET", "BATCH_FORGET", "INTERRUPT")


def rep_bpf_counts(r, row):
    for what, key in (("build", "bpf_per_build"), ("preprocess run", "bpf_per_pp")):
        for v, cs in (r.get(key) or {}).items():
            ops = sorted({op for c in cs for op in c})
            cnt = {op: median([c.get(op, [0, 0])[0] for c in cs]) for op in ops}
            us = {op: median([c.get(op, [0, 0])[1] for c in cs]) for op in ops}
            tot = [sum(n for n, _ in c.values()) for c in cs]
            trace = r["requests_per_" + ("build" if what == "build" else "pp")].get(v)
            traced = clean_counts(trace)[0] if trace else None
            waited = sum(t for op, t in us.items() if op not in ASYNC_OPS) / 1e6
            row(5, f"FUSE requests per {what} by opcode, from lazyfs's **BPF statistics** "
                "(`lazyfsctl --json MP stats` before and after)", v, f"{median(tot):.0f}",
                mm(tot, lambda n: f"{n:.0f}"),
                f"tracepoint counted {req_total(traced):.0f}" if traced is not None else "",
                "by opcode, count (round trips, send to reply, summed): " + ", ".join(
                    f"{op} {cnt[op]:.0f} ({fmt_t(us[op] / 1e6)})"
                    for op in sorted(ops, key=lambda o: -cnt[o]) if cnt[op])
                + f"; the callers waited at most {fmt_t(waited)} for replies (RELEASE and "
                "FORGET left out: nobody waits for them)")


def rep_tracker(r, row, T):
    """Section 7: the tracker's cost and events, how early resolving starts, and the
    cold compile with and without prefetch."""
    c = r.get("cost")
    if c:
        row(7, f"open+close of a path outside the mount, tracker attached vs detached "
            f"({c['opens']:,} opens each way, alternating rounds; `{c['command']}`)",
            "eBPF tracker", f"+{c['overhead_ns_median']:.0f} ns",
            f"{c['detached_ns']:.0f} ns detached, {c['attached_ns']:.0f} ns attached", "",
            "six tracepoint programs run at every openat/openat2/execve(at)/newfstatat/statx "
            "entry on the machine: each reads the first bytes of the path and compares "
            "them with the prefix")
        row(7, "filtered opens under the prefix, each a new cold key (the consumer forgets "
            "every key it is told about)", "eBPF tracker",
            f"{c['events_per_s'] / 1e3:.0f}k events/s", f"{c['events']:,} events, {c['lost']} lost",
            "", "one ring-buffer record per cold key, read by the daemon's consumer thread "
            "woken through epoll")
        T.append(("BPF tracker: added cost per openat outside the prefix <= 0.5 µs",
                  c["overhead_ns_median"] <= 500,
                  f"+{c['overhead_ns_median']:.0f} ns ({c['detached_ns']:.0f} → "
                  f"{c['attached_ns']:.0f} ns per open+close)"))
        T.append(("BPF tracker: >= 100k filtered opens/s with zero lost events",
                  c["events_per_s"] >= 100e3 and c["lost"] == 0,
                  f"{c['events_per_s'] / 1e3:.0f}k events/s, {c['lost']} lost"))
    e = r.get("early")
    if e:
        d = sorted(e["delays_us"])
        q = lambda f: d[min(len(d) - 1, int(f * len(d)))]
        row(7, f"BPF event → the kernel's LOOKUP of the same cold image ({len(d)} images; "
            "p10 / p50 / p90 / max)", "lazyfs, bpf=on",
            f"{median(d):.1f} µs", f"{q(0.1):.1f} / {q(0.5):.1f} / {q(0.9):.1f} / {d[-1]:.1f} µs",
            "", "how much earlier resolving starts: the time the opener's path walk takes "
            "from the syscall entry to FUSE, which is short for a local image, so the head "
            "start is too")
        ratio = median(e["on"]) / median(e["off"])
        for mode in ("on", "off"):
            xs = e[mode]
            row(7, f"first open of a file in a cold image ({len(xs)} images)",
                f"lazyfs, bpf={mode}", fmt_t(median(xs)), mm(xs, fmt_t),
                f"{ratio:.2f}x bpf=off (ratio of medians)" if mode == "on" else "",
                "the image's resolve (loop device, fsmount) dominates; with the tracker a "
                "worker starts it at the event and the LOOKUP waits for that resolve")
    pf = r.get("prefetch")
    if pf and pf.get("rounds"):
        rounds = pf["rounds"]
        for v in ("prefetch", "no-prefetch"):
            xs = [x[v]["wall"] for x in rounds]
            blk = [x[v]["wall"] - x[v]["cpu"] for x in rounds]
            rs = [x["prefetch"]["wall"] / x["no-prefetch"]["wall"] for x in rounds]
            row(7, f"cold zlib build, toolchain image ({pf['image_mib']:.0f} MiB) fetched "
                f"through rclone into an empty cache, page cache dropped ({len(xs)} rounds)",
                f"lazyfs remote_mode=images, {v}", fmt_t(median(xs)), mm(xs, fmt_t),
                (ratio_str(rs) + " vs no-prefetch") if v == "prefetch" else "",
                (f"the working set ({pf.get('working_set_files', '?')} files recorded by a "
                 "first build) read ahead by two threads while the build starts; "
                 if v == "prefetch" else "every header and binary decompressed when the "
                 "compiler first reads it; ")
                + f"blocked (wall − CPU) {fmt_t(median(blk))}")


def walk_why(v, when, rq, wall, cpu):
    own = f"; the command's own user+sys {fmt_t(cpu)} of the {fmt_t(wall)}"
    if v in ("native", "loop"):
        fs = "ext4" if v == "native" else "squashfs"
        return (("getdents and lstat answered from the dcache and inode cache" if when == "warm"
                 else f"{fs} reading its directories and inodes from the disk"
                 + (" (compressed metadata blocks of the image, through the loop device)"
                    if v == "loop" else "")) + own)
    return reqs_said(rq, "walk") + own if rq is not None else "FUSE round trips" + own


def rep_walk(r, row, notes):
    for when in ("warm", "cold"):
        for c in r["commands"]:
            rs = [x[c] for x in r[when]]
            if not rs:
                continue
            for v in rs[0]:
                wall = [x[v]["wall"] for x in rs]
                rq = ((r["requests"].get(v) or {}).get(when) or {}).get(c)
                row(8, f"`{c}` over an image of {r['entries']:,} entries, {when}"
                    + (" (every cache dropped before each walk, then "
                       f"{COLD_SETTLE_S:g} s for the FORGETs, mounts kept)" if when == "cold" else "")
                    + f", {len(rs)} runs", v, fmt_t(median(wall)), mm(wall, fmt_t),
                    "" if v == "loop" else ratio_str(pairs(rs, v, "loop", lambda x: x["wall"])) + " vs loop",
                    walk_why(v, when, rq, median(wall), median([x[v]["cpu"] for x in rs])))
    skipped_notes(8, r, notes)


def rep_footprint(r, row, notes):
    mib = lambda k: f"{k / 1024:.1f} MiB"
    sq = r.get("squashfuse_ll")
    for backend, xs in r["lazyfs"].items():
        med = lambda stage, k: median([x[stage][k] for x in xs])
        per_entry = (med("listed", "VmRSS") - med("mounted", "VmRSS")) * 1024 / xs[0]["listed_entries"]
        per_image = (med("open", "VmRSS") - med("listed", "VmRSS")) / r["open"]
        stages = (("mounted", "after the mount (tracker loaded)",
                   "what the process maps at start (binary, libraries, thread stacks, the "
                   "tracker's ring buffer); the images directory is not read"),
                  ("listed", f"after listing the root ({xs[0]['listed_entries']:,} entries)",
                   f"{per_entry:.0f} bytes per listed entry (its inode and name)"),
                  ("open", f"with {r['open']} images resolved and a file open in each",
                   f"{per_image:.1f} KiB per resolved image with an open file"
                   + (" (the loop device and squashfs mount are kernel memory, not counted here)"
                      if backend == "kernel" else " (the libsquashfuse handle and its caches)")))
        for stage, what, why in stages:
            rss = [x[stage]["VmRSS"] for x in xs]
            ratio = f"Pss {mib(med(stage, 'Pss'))}, VmHWM {mib(med(stage, 'VmHWM'))}"
            if stage == "open" and sq:
                ratio += f"; {med(stage, 'Pss') / sq['Pss']:.2f}x the Pss of {sq['processes']} squashfuse_ll"
            row(9, f"daemon memory with {r['images']:,} images registered, {what}: VmRSS "
                f"({len(xs)} mounts)", f"lazyfs, backend={backend}", mib(median(rss)),
                mm(rss, mib), ratio, why)
    if sq:
        row(9, f"{sq['processes']} images served by Debian's squashfuse_ll (one process per image), "
            "a file open in each: VmRSS summed", "squashfuse_ll x " + str(sq["processes"]),
            mib(sq["VmRSS"]), "", f"Pss {mib(sq['Pss'])} summed",
            f"{sq['Pss'] / sq['processes']:.0f} KiB of Pss per process: each maps libfuse and "
            "its own threads and caches; a static kernel mount has no process at all")
    for e in r.get("errors", []):
        notes.append(f"- Section 9: {e}.")


def percentile(xs, q):
    """The nearest-rank percentile Q (0-100) of XS."""
    ys = sorted(xs)
    return ys[max(0, min(len(ys) - 1, -(-len(ys) * q // 100) - 1))] if ys else None


def rep_restart(r, row, notes):
    mib = lambda k: f"{k / 1024:.1f} MiB"
    xs, rm = r["restart"], r["remount"]
    if xs:
        ratio = (f"{median(xs) / median(rm):.2f}x the remount" if rm else "")
        row(10, f"SIGKILL of the worker to a waiting request answered by the next one, "
            f"{len(xs)} crashes under {r['readers']} readers", "lazyfs (keeper)",
            fmt_t(median(xs)), mm(xs, fmt_t), f"p99 {fmt_t(percentile(xs, 99))}; {ratio}",
            "the keeper sees the worker exit (SIGCHLD), forks and execs a new one, which "
            "loads its libraries and the BPF tracker, attaches the kept connection, replays "
            "FUSE_INIT and asks the kernel to resend what the dead one had read")
        row(10, f"longest open+read+close a reader saw across the {len(xs)} crashes "
            f"({r['reads']:,} reads, {r['error_count']} errors)", "lazyfs (keeper)",
            fmt_t(r["longest_stall"]), "", "",
            "a read waits while no worker serves: at most one restart"
            + ("" if not r["error_count"] else f"; errors: {'; '.join(r['errors'])}"))
    if rm:
        row(10, f"without a keeper: `umount` of the dead mount and a new mount until a name "
            f"is answered, {len(rm)} times", "lazyfs (remount by hand)", fmt_t(median(rm)),
            mm(rm, fmt_t), "", "what a supervisor would do; every open file and working "
            "directory under the old mount is lost (ENOTCONN), which the keeper avoids")
    k = r.get("keeper")
    if k:
        row(10, "the keeper's memory while it holds the mount", "lazyfs keeper",
            mib(k["VmRSS"]), "", f"Pss {mib(k['Pss'])}; the worker's VmRSS "
            f"{mib(r['worker']['VmRSS'])}",
            "one process that only waits: its stack, libc and the five descriptors it keeps")


def rep_underlay(r, row, notes):
    small, big = r["limits"]
    for when in ("warm", "cold"):
        rs = r[when]
        for c in ("find", "ls -lR"):
            xs = [x[c] for x in rs if c in x]
            if not xs:
                continue
            for v in xs[0]:
                wall = [x[v] for x in xs]
                st = r["stats"].get(v, {})
                why = ""
                if v == small:
                    reopen = pairs(xs, small, big)
                    why = (f"the daemon holds {st.get('worker_fds', '?')} descriptors, at most "
                           f"{st.get('path_fds_max', '?')} for inodes; "
                           f"{st.get('reopened', 0):,} reopens by file handle over the run, "
                           f"{ratio_str(reopen)} the walk with no limit")
                elif v == big:
                    why = f"{st.get('path_fds_max', '?')} inode descriptors may stay open"
                row(11, f"`{c}` over an underlay of {r['entries']:,} files, {when}"
                    + (" (every cache dropped before each walk)" if when == "cold" else "")
                    + f", {len(xs)} runs", "native" if v == "native" else f"lazyfs, {v}",
                    fmt_t(median(wall)), mm(wall, fmt_t),
                    "" if v == "native" else ratio_str(pairs(xs, v, "native")) + " vs native",
                    why)
    for e in r.get("errors", []):
        notes.append(f"- Section 11: {e}.")
