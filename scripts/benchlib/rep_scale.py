# SPDX-License-Identifier: BSD-2-Clause
"""The report's rows of section 15, remote objects at scale: mount-ready with a big
cache, `ls` of a big remote directory, memory per cached object and per listed
entry, warm opens under cold fetches and under eviction."""
from .rep_format import fmt_t, mm, ratio_str
from .runner import median

LZ = "lazyfs remote_mode=objects"
RC = "rclone mount --vfs-cache-mode full"


def mib(kib):
    return f"{kib / 1024:.1f} MiB" if kib is not None else "n/a"


def rep_scale(r, row, T, notes):
    n = r.get("objects", 0)
    if r.get("ready"):
        rep_scale_ready(r, n, row, T)
    if r.get("ls"):
        rep_scale_ls(r, n, row)
    if r.get("memory"):
        rep_scale_memory(r, n, row, T)
    if r.get("small"):
        rep_scale_small(r["small"], row, T)
    if r.get("warm_load"):
        rep_scale_warm(r, row, T, notes)
    if r.get("evict"):
        rep_scale_evict(r, row, T)
    if r.get("fill_s"):
        notes.append(f"- Section 15: the cache was filled by reading each of the {n:,} objects "
                     f"once through lazyfs with 16 readers in {r['fill_s']:.0f} s (the remote's "
                     f"listing of them {r.get('fill_list_s', 0):.1f} s); the tree was generated "
                     f"in {r.get('generate_s', 0):.0f} s and removed at the end.")


def rep_scale_ready(r, n, row, T):
    rows = r["ready"]
    full = [x["full"]["ready_s"] for x in rows]
    empty = [x["empty"]["ready_s"] for x in rows]
    idx = [x["full"]["index_s"] for x in rows]
    m = f"mount ready: `lazyfs -o remote=…,remote_mode=objects,cache=C MP` (daemonizes when " \
        f"ready) + first `stat MP`, {len(rows)} runs"
    row(15, m, f"{LZ}, {n:,} objects in the cache", fmt_t(median(full)), mm(full, fmt_t),
        ratio_str([x["full"]["ready_s"] / x["empty"]["ready_s"] for x in rows]) + " vs empty cache",
        "fork+exec, the keeper and its worker, mount(2) and the INIT round trip; the store "
        "only locks its directory: the index is read by a thread of its own once the "
        "daemon serves (cache/store/load.c)")
    row(15, m, f"{LZ}, empty cache", fmt_t(median(empty)), mm(empty, fmt_t), "",
        "the same, with nothing to load")
    if "full-baseline" in rows[0]:
        base = [x["full-baseline"]["ready_s"] for x in rows]
        row(15, m, f"{LZ}, {n:,} objects in the cache, the baseline binary "
            "(--baseline-lazyfs)", fmt_t(median(base)), mm(base, fmt_t),
            ratio_str([x["full"]["ready_s"] / x["full-baseline"]["ready_s"] for x in rows])
            + " (measured / baseline)",
            "the baseline binary: see the paragraph on this run for which one")
    row(15, "then `lazyfsctl --json MP stats` (it waits for the cache's index)",
        f"{LZ}, {n:,} objects in the cache", fmt_t(median(idx)), mm(idx, fmt_t),
        f"{median([x['full']['objects'] or 0 for x in rows]):,.0f} objects loaded",
        "reading the index (a record per object: its key hashed again for its file name, "
        "two allocations) and sorting the LRU list by access time; opens made meanwhile "
        "wait for it")
    T.append((f"remote objects at scale: mount ready with {n:,} objects in the cache < 100 ms",
              median(full) < 0.1, f"median {fmt_t(median(full))}, empty cache "
              f"{fmt_t(median(empty))}; the index loaded {fmt_t(median(idx))} after"))


def rep_scale_ls(r, n, row):
    rounds = r["ls"]
    for v, label, why_first, why_later in (
            ("lazyfs", f"{LZ}, fresh mount",
             "rclone's operations/list of the directory (its http backend asks the server for "
             "each file's size and date), the listing saved in the cache, then OPENDIR builds "
             "the union (a copy of every entry) and READDIRPLUS sends it",
             "no remote call (listing_ttl): OPENDIR copies the listing into a new union, "
             "READDIRPLUS sends it, RELEASEDIR"),
            ("rclone-mount", f"{RC}, fresh mount",
             "the same listing through the same backend, then READDIR(PLUS) from its "
             "directory cache",
             "its directory cache (dir-cache-time 5 min)")):
        firsts = [x[v]["first_s"] for x in rounds if v in x]
        laters = [median(x[v]["later_s"]) for x in rounds if v in x]
        if not firsts:
            continue
        other = "rclone-mount" if v == "lazyfs" else None
        rf = [x["lazyfs"]["first_s"] / x["rclone-mount"]["first_s"] for x in rounds
              if "lazyfs" in x and "rclone-mount" in x]
        rl = [median(x["lazyfs"]["later_s"]) / median(x["rclone-mount"]["later_s"])
              for x in rounds if "lazyfs" in x and "rclone-mount" in x]
        row(15, f"first `ls` of a {n:,}-entry remote directory, {len(firsts)} rounds", label,
            fmt_t(median(firsts)), mm(firsts, fmt_t),
            ratio_str(rf) + " vs rclone mount" if other else "", why_first)
        row(15, "`ls` of it again (the same mount, right after)", label, fmt_t(median(laters)),
            mm(laters, fmt_t), ratio_str(rl) + " vs rclone mount" if other else "", why_later)


def rep_scale_memory(r, n, row, T):
    m = r["memory"]
    lz = m.get("lazyfs") or {}
    base = (m.get("lazyfs_empty") or {}).get("daemon", {}).get("VmRSS")
    rss = lambda k: ((lz.get(k) or {}).get("daemon") or {}).get("VmRSS")
    per = lambda a, b: f"{(a - b) * 1024 / n:.0f} bytes" if None not in (a, b) and n else ""
    row(15, "daemon memory (VmRSS of the worker), mounted, empty cache", LZ, mib(base), "", "",
        "the daemon's code, libraries and threads")
    row(15, f"… with {n:,} objects in the cache (index loaded)", LZ, mib(rss("cached")), "",
        per(rss("cached"), base) + " per cached object (vs empty cache)",
        "one index entry per object: the entry (176 bytes), its key, a hash bucket")
    row(15, f"… after `ls` of the {n:,}-entry directory", LZ, mib(rss("listed")), "",
        per(rss("listed"), rss("cached")) + " per listed entry",
        "the remote listing kept for listing_ttl (a fixed-size entry per object), plus what "
        "building and sending the listings left in the allocator")
    row(15, "… with 1 handle of the directory held open, then 4", LZ,
        f"{mib(rss('held1'))}, {mib(rss('held4'))}", "",
        (f"{(rss('held4') - rss('held1')) / 3 / 1024:.1f} MiB per further handle"
         if None not in (rss("held1"), rss("held4")) else ""),
        "each OPENDIR builds a union of the entries; handles with the same entries share one")
    hwm = ((lz.get("listed") or {}).get("daemon") or {}).get("VmHWM")
    if hwm is not None:
        row(15, "… its peak (VmHWM) by then", LZ, mib(hwm), "", "",
            "the listing's transient peak: rclone's JSON reply parsed into a tree of small "
            "objects, given back after (malloc_trim)")
    child = ((lz.get("listed") or {}).get("rclone_child") or {}).get("VmRSS")
    if child is not None:
        row(15, "lazyfs's rclone child (rcd) after the listing", LZ, mib(child), "", "",
            "rclone's own process (the http backend's listing, its transfers)")
    rc = m.get("rclone-mount") or {}
    rrss = lambda k: ((rc.get(k) or {}).get("daemon") or {}).get("VmRSS")
    if rrss("mounted") is not None:
        row(15, "rclone mount memory (VmRSS), mounted", RC, mib(rrss("mounted")), "", "",
            "Go runtime")
        row(15, f"… after `ls` of the {n:,}-entry directory", RC, mib(rrss("listed")), "",
            per(rrss("listed"), rrss("mounted")) + " per listed entry",
            "its directory cache (a Go object per entry)")
    if rss("cached") is not None:
        T.append((f"remote objects at scale: daemon memory with {n:,} objects in the cache "
                  "< 64 MiB", rss("cached") < 64 * 1024,
                  f"VmRSS {mib(rss('cached'))} ({mib(rss('listed'))} after listing them; "
                  f"empty cache {mib(base)})"))
    if None not in (rss("held1"), rss("held4"), rss("listed"), rss("cached")):
        listing = max(1, rss("listed") - rss("cached"))
        extra = (rss("held4") - rss("held1")) / 3
        T.append(("remote objects at scale: listings shared, not copied (a further open "
                  "handle of the big directory costs < 10 % of its listing)",
                  extra < 0.1 * listing,
                  f"{extra / 1024:.1f} MiB per further handle against {listing / 1024:.1f} MiB "
                  "for the listing"))


def rep_scale_warm(r, row, T, notes):
    rounds = r["warm_load"]
    for v, label in (("lazyfs", f"{LZ}, object in its cache"),
                     ("lazyfs-baseline", f"{LZ}, the baseline binary (--baseline-lazyfs)"),
                     ("rclone-mount", f"{RC}, file in its cache")):
        xs = [x[v] for x in rounds if v in x]
        if not xs:
            continue
        for k in ("p50", "p99"):
            idle = [x["idle"][k] / 1e9 for x in xs]
            load = [x["load"][k] / 1e9 for x in xs]
            rr = [x["load"][k] / x["idle"][k] for x in xs]
            vs = ""
            if v == "lazyfs":
                rv = [x["lazyfs"]["load"][k] / x["rclone-mount"]["load"][k] for x in rounds
                      if "rclone-mount" in x and "lazyfs" in x]
                vs = "; " + ratio_str(rv) + " vs rclone mount under load"
                rb = [x["lazyfs"]["load"][k] / x["lazyfs-baseline"]["load"][k] for x in rounds
                      if "lazyfs-baseline" in x and "lazyfs" in x]
                if rb:
                    vs += "; " + ratio_str(rb) + " vs the baseline binary under load"
            row(15, f"warm open+close **{k}** of {r['warm_set']} cached objects, idle", label,
                fmt_t(median(idle)), mm(idle, fmt_t), "",
                "one OPEN round trip" if v.startswith("lazyfs") else "rclone answers OPEN, "
                "FLUSH, RELEASE itself")
            row(15, f"… while {r['loaders']} distinct cold fetches run "
                f"({r['cold_bytes'] >> 10} KiB objects)", label, fmt_t(median(load)),
                mm(load, fmt_t), ratio_str(rr) + " vs idle" + vs,
                "cold opens wait for their fetch on threads of their own (at most fetch_max=16 "
                "fetching): the FUSE workers stay free; the warm opens share the 2 CPUs with "
                "rclone's transfers" if v == "lazyfs" else
                "the baseline binary" if v == "lazyfs-baseline" else
                "the same 2 CPUs, shared with its own transfers")
        fetched = [x["fetched_during"] for x in xs]
        out = [x["loaders_out_of_objects"] for x in xs]
        if any(out):
            notes.append(f"- Section 15, {v}: {max(out)} of {r['loaders']} loader threads ran "
                         "out of cold objects before the warm opens under load ended (the load "
                         "was lighter than stated for the end of that measurement).")
        notes.append(f"- Section 15, {v}: cold objects fetched while the warm opens under load "
                     f"were measured: median {median(fetched):.0f} per round.")
        if v == "lazyfs":
            for k in ("p50", "p99"):
                rr = [x["load"][k] / x["idle"][k] for x in xs]
                T.append((f"remote objects at scale: warm open+close {k} while {r['loaders']} "
                          "cold fetches run within 2x of idle", median(rr) <= 2,
                          f"ratio {ratio_str(rr)}, {fmt_t(median([x['load'][k] for x in xs]) / 1e9)}"
                          f" against {fmt_t(median([x['idle'][k] for x in xs]) / 1e9)}"))


def rep_scale_evict(r, row, T):
    e = r["evict"]
    for k in ("p50", "p99"):
        idle = [x[k] / 1e9 for x in e["idle"]]
        during = [x[k] / 1e9 for x in e["during"]]
        row(15, f"warm open+close **{k}** of {r['warm_set']} cached objects, full quota, idle",
            f"{LZ}, cache_size = what it holds", fmt_t(median(idle)), mm(idle, fmt_t), "",
            "one OPEN round trip")
        row(15, f"… while {e['evictions']:,} new objects are read (16 readers), each evicting "
            f"an old one ({e['fill_s']:.1f} s)", f"{LZ}, cache_size = what it holds",
            fmt_t(median(during)), mm(during, fmt_t),
            f"{median(during) / median(idle):.2f}x idle (medians)",
            "evictions unlink their victims with the store's lock dropped; the warm opens "
            "share the 2 CPUs with the fetches")
    p50 = median([x["p50"] for x in e["during"]]) / median([x["p50"] for x in e["idle"]])
    T.append((f"remote objects at scale: warm open+close p50 while {e['evictions']:,} objects "
              "are evicted within 2x of idle", p50 <= 2, f"{p50:.2f}x"))


def rep_scale_small(sm, row, T):
    """The first listing of the small objects' directory and their cold reads."""
    rounds = [x for x in sm["rounds"] if "lazyfs" in x and "rclone-mount" in x]
    if not rounds:
        return
    n, reads = sm["objects"], sm["reads"]
    what = {
        "ls_s": (f"first `ls` of a {n:,}-entry remote directory of 512-byte objects, fresh "
                 f"mount, empty cache, {len(rounds)} rounds",
                 "rclone's operations/list (its http backend asks the server for each file's "
                 "size), then READDIRPLUS from the shared listing",
                 "its VFS lists the same backend, then READDIR(PLUS)"),
        "p50_s": (f"cold open+read+close of a 512-byte object, {reads:,} one after the other "
                  f"per round (p50 of each)",
                  "LOOKUP from the listing, OPEN on the fetch pool: one range read from "
                  "rclone's rc-serve on a kept connection (rclone asks the server for the "
                  "object's size, then its bytes), the size check, passthrough; the "
                  "publication (CRC32, fsync, rename) follows in the background",
                  "OPEN: its VFS downloads the object (one GET: the listing gave it the "
                  "size) into its cache file, then READ through FUSE"),
        "total_s": (f"all {reads:,} of them, one after the other", "", ""),
    }
    for k, (label, why_lz, why_rc) in what.items():
        a = [x["lazyfs"][k] for x in rounds]
        c = [x["rclone-mount"][k] for x in rounds]
        ratios = [x / y for x, y in zip(a, c)]
        extra = (f"; p99 {fmt_t(median([x['lazyfs']['p99_s'] for x in rounds]))}"
                 if k == "p50_s" else "")
        row(15, label, f"{LZ}", fmt_t(median(a)), mm(a, fmt_t),
            ratio_str(ratios) + " vs rclone mount" + extra, why_lz)
        extra = (f"p99 {fmt_t(median([x['rclone-mount']['p99_s'] for x in rounds]))}"
                 if k == "p50_s" else "")
        row(15, label, RC, fmt_t(median(c)), mm(c, fmt_t), extra, why_rc)
        target = {"ls_s": f"the first listing of {n:,} entries",
                  "total_s": f"{reads:,} small cold objects read one after the other"}.get(k)
        if target:
            T.append((f"remote objects: {target} at or below rclone mount's time",
                      median(ratios) <= 1.0, f"ratio {ratio_str(ratios, 3)}, "
                      f"{fmt_t(median(a))} against {fmt_t(median(c))}"))
