# SPDX-License-Identifier: BSD-2-Clause
"""The report's rows of section 6, remote objects: warm opens, cold opens and their
anatomy, warm reads."""
from .rep_format import fmt_t, mm, opcounts_str, ratio_str
from .runner import median


def rep_remote(r, row, T, notes):
    """Section 6: warm opens, cold opens, warm reads, and whether any READ reached
    the daemon on the warm paths."""
    w = r.get("warm") or {}
    labels = {"lazyfs-remote": "lazyfs remote_mode=objects, object in its cache",
              "lazyfs-image": "lazyfs images=, the same 200 files in a local squashfs image "
                              "(kernel backend)",
              "rclone-mount": "rclone mount --vfs-cache-mode full, file in its cache",
              "cache-file": "lazyfs's cache file read directly (CACHE/objects/…)"}
    if w.get("open_rounds"):
        rep_remote_open(w, labels, row, T)
    rep_remote_cold(r, row, T, notes)
    rounds = w.get("read_rounds_Bps")
    if rounds:
        rep_remote_read(w, rounds, labels, row, T)
    lz = {what: d["lazyfs-remote"] for what, d in (
        ("per open+close", w.get("requests_per_open")),
        ("per 1 MiB object read", w.get("requests_per_object_read")),
        ("per 256 MiB read", w.get("requests_per_big_read"))) if d and "lazyfs-remote" in d}
    if lz:
        bad = sum(d.get("FUSE_READ", 0) + d.get("LOST", 0) for d in lz.values())
        T.append(("remote objects: no READ reaches the daemon on warm opens and reads",
                  bad == 0, "READ requests: " + ", ".join(
                      f"{d.get('FUSE_READ', 0):g} {what}" for what, d in lz.items())))
    if (r.get("anatomy") or {}).get("error"):
        notes.append(f"- Section 6: no cold open anatomy: {r['anatomy']['error']}.")


def rep_remote_open(w, labels, row, T):
    """Warm open+close of cached objects (as scheduled, and pinned to one CPU), and
    the requests per warm read of a whole object."""
    reads_of = lambda v: w.get("requests_per_object_read", {}).get(v)
    rounds = w["open_rounds"]
    names = [v for v in rounds[0] if "@" not in v]
    pinned = [v for v in rounds[0] if "@" in v]
    reqs = w.get("requests_per_open", {})
    why = {
        "lazyfs-remote": "one OPEN round trip: the daemon takes back the backing id kept "
                         "since the object's last close and holds the object in the "
                         "store's index again (a hash lookup under a mutex; no file "
                         "opened, nothing registered; RELEASE follows in the background); "
                         "after listing_ttl (60 s) one LOOKUP per entry and one re-listing "
                         "per directory",
        "lazyfs-image": "one OPEN round trip: the daemon takes back the backing id kept "
                        "since the file's last close",
        "rclone-mount": "rclone's Go daemon answers every open and close itself (opening "
                        "its cache file, checking the item against its directory cache); "
                        "its 1 s attribute timeout sends the kernel back to it as well",
    }
    pair = lambda a, b, k="p50": [x[a][k] / x[b][k] for x in rounds]

    def pinned_detail(a, b, digits, ok):
        """The pinned figures for a target on A/B; OK(ratio) is its verdict."""
        a, b = a + "@cpu", b + "@cpu"
        if a not in pinned or b not in pinned:
            return ""
        med = lambda v: fmt_t(median([x[v]["p50"] for x in rounds]) / 1e9)
        rr = pair(a, b)
        text = (f"; pinned to one CPU {ratio_str(rr, digits)}, {med(a)} against {med(b)}")
        if ok(median(rr)) != ok(median(pair(a[:-4], b[:-4]))):
            text += (f", which {'meets' if ok(median(rr)) else 'misses'} it: the verdict "
                     "rests on cross-CPU wake-ups, not on the daemons' own work")
        return text
    for v in names:
        p50 = [x[v]["p50"] / 1e9 for x in rounds]
        p99 = [x[v]["p99"] / 1e9 for x in rounds]
        if v == "lazyfs-remote":
            ratio = "; ".join(ratio_str(pair(v, o)) + f" vs {o}" for o in names if o != v)
        elif v == "rclone-mount" and "lazyfs-remote" in names:
            ratio = ratio_str(pair(v, "lazyfs-remote")) + " vs lazyfs-remote"
        else:
            ratio = ""
        extra = (f" Requests per open+close: {opcounts_str(reqs[v], 2)}."
                 if v in reqs else "")
        row(6, f"warm open+close **p50** of a cached object, {w['files']} objects x "
            f"{w['passes']} passes, {len(rounds)} rounds", labels[v], fmt_t(median(p50)),
            mm(p50, fmt_t), ratio, why[v] + "." + extra)
        row(6, "warm open+close **p99**", labels[v], fmt_t(median(p99)), mm(p99, fmt_t),
            "; ".join(ratio_str(pair(v, o, "p99")) + f" vs {o}" for o in names if o != v)
            if v == "lazyfs-remote" else "",
            "the tail: the daemon's threads waiting for one of the 2 busy CPUs"
            if v != "rclone-mount" else "the tail: Go's scheduler and garbage collector "
            "on 2 busy CPUs")
    for v in pinned:
        name = v.split("@")[0]
        p50 = [x[v]["p50"] / 1e9 for x in rounds]
        p99 = [x[v]["p99"] / 1e9 for x in rounds]
        others = [o for o in pinned if o != v] if name == "lazyfs-remote" else \
            ["lazyfs-remote@cpu"] if name == "rclone-mount" else []
        row(6, f"warm open+close **p50** (p99), the helper and every thread of the "
            f"server pinned to CPU {w.get('pinned_cpu')}", labels[name],
            f"{fmt_t(median(p50))} ({fmt_t(median(p99))})", mm(p50, fmt_t),
            "; ".join(ratio_str(pair(v, o)) + f" vs {o.split('@')[0]} (pinned)"
                      for o in others),
            "the same requests without cross-CPU wake-ups: the daemon's own work "
            "and the kernel's round trip (unpinned, each wake-up of the other CPU "
            "costs tens of µs on this VM, and the medians above mix both cases)")
    for v in names:
        rq = reads_of(v)
        if rq is None:
            continue
        row(6, f"FUSE requests per warm read of a whole 1 MiB object (open, read(2) with a "
            f"1 MiB buffer to the end, close; {w['files']} objects, traced)", labels[v],
            f"READ {rq.get('FUSE_READ', 0):.2f}", "", "",
            {"lazyfs-remote": "passthrough: reads go from the kernel to the cache file, "
                              "no READ reaches the daemon",
             "lazyfs-image": "passthrough to the file on the detached squashfs mount",
             "rclone-mount": "every read is a FUSE READ the daemon answers from its "
                             "cache file (at most 128 KiB each)"}[v]
            + f". All requests: {opcounts_str(rq, 2)}.")
    rs = [x["lazyfs-remote"]["p50"] for x in rounds]
    T.append(("remote objects: warm open+close of a cached object < 50 µs (p50)",
              median(rs) < 50e3, f"median p50 {fmt_t(median(rs) / 1e9)}, rounds "
              f"{mm([x / 1e9 for x in rs], fmt_t)}"))
    if "lazyfs-image" in names:
        rr = pair("lazyfs-remote", "lazyfs-image")
        T.append(("remote objects: warm open+close within 1.3x of a local image file "
                  "through lazyfs (p50)", median(rr) <= 1.3, f"ratio {ratio_str(rr, 3)}"
                  + pinned_detail("lazyfs-remote", "lazyfs-image", 3, lambda x: x <= 1.3)))
    if "rclone-mount" in names:
        rr = pair("rclone-mount", "lazyfs-remote")
        T.append(("remote objects: warm open+close at least 5x faster than rclone mount "
                  "--vfs-cache-mode full (p50)", median(rr) >= 5,
                  f"rclone mount takes {ratio_str(rr, 1)} the time of lazyfs"
                  + pinned_detail("rclone-mount", "lazyfs-remote", 1, lambda x: x >= 5)))


def rep_remote_cold(r, row, T, notes):
    """The cold open of a 10 MiB object against the running rcd copying it alone."""
    c = r.get("cold") or {}
    objs = [x for x in c.get("objects", []) if "lazyfs_open_s" in x and "rcd_copy_s" in x]
    an = (r.get("anatomy") or {}).get("phases_s") or []
    cold_lz = "lazyfs remote_mode=objects, empty cache"
    cold_rc = "rclone mount --vfs-cache-mode full, empty cache"
    if objs:
        n, nr = len(objs), len({x["round"] for x in objs})
        col = lambda k: [x[k] for x in objs]
        lo, rc = col("lazyfs_open_s"), col("rcd_copy_s")
        ratios = [a / b for a, b in zip(lo, rc)]
        diff = [a - b for a, b in zip(lo, rc)]
        row(6, f"**cold** open of a 10 MiB object (first `open()`, listing fresh; with "
            f"stream=on it returns once the fetch has begun), {n} objects over {nr} rounds "
            "with empty caches", cold_lz, fmt_t(median(lo)), mm(lo, fmt_t),
            ratio_str(ratios) + f" vs rclone rcd; +{fmt_t(median(diff))} (median difference)",
            "a stream started (its file, its workers) on the fetch pool; the bytes follow "
            "(the rows of the first 64 KiB and of all of it below)")
        row(6, "the same object copied by a running `rclone rcd` alone (`operations/copyfile` "
            "to a local path, timed around the HTTP call)", "rclone rcd (ours)",
            fmt_t(median(rc)), mm(rc, fmt_t), "",
            "rclone fetching 10 MiB from the HTTP server on loopback and writing them to the "
            "local disk's page cache (no fsync)")
        if "lazyfs_stat_s" in objs[0]:
            ls = col("lazyfs_stat_s")
            both = [a + b for a, b in zip(ls, lo)]
            row(6, "`stat` of the object once its listing expired (listing_ttl=1)",
                cold_lz, fmt_t(median(ls)), mm(ls, fmt_t), "",
                "a LOOKUP that lists the directory again through rclone (operations/list) "
                "and writes the listing into the cache (temporary file, fsync, rename, fsync "
                "of its directory); with the default listing_ttl=60 once a minute per "
                "directory in use, in whichever LOOKUP or OPEN comes first")
            row(6, "cold open with the listing expired (`stat` + first `open()`)",
                cold_lz, fmt_t(median(both)), mm(both, fmt_t),
                ratio_str([a / b for a, b in zip(both, rc)]) + " vs rclone rcd",
                "both of the above")
        pubs = (r.get("anatomy") or {}).get("publications_s") or []
        rep_remote_anatomy(an, pubs, c, lo, rc, cold_lz, row)
        if "rclone_open_s" in objs[0]:
            rep_remote_stream(col, cold_lz, cold_rc, row, notes, T,
                              [dict(x, mib=c.get("huge_mib")) for x in c.get("huge") or []])
        if "lazyfs_all_s" in objs[0]:
            al = col("lazyfs_all_s")
            T.append(("remote objects: all of a cold 10 MiB object (streamed, read to the end) "
                      "<= 1.05x the running rcd copying it alone",
                      median([a / b for a, b in zip(al, rc)]) <= 1.05,
                      f"ratio {ratio_str([a / b for a, b in zip(al, rc)], 3)}, "
                      f"{fmt_t(median(al))} against {fmt_t(median(rc))}"))


def rep_remote_anatomy(an, pubs, c, lo, rc, cold_lz, row):
    """Where a cold open's time goes (the daemon under strace), the background
    publication after it, and CRC32 and MD5 of 10 MiB in memory."""
    names_an = [("total", "the whole OPEN, from reading the request off /dev/fuse to "
                          "the reply (strace slows every system call)"),
                ("before_copy", "from the request to the copyfile HTTP request: the "
                                "store's lookup, its temporary directory"),
                ("copy", "operations/copyfile through lazyfs's rcd, request to reply"),
                ("after_copy", "from rclone's reply to ours: the size check, reopening "
                               "the temporary file, registering the passthrough file")]
    names_pub = [("total", "the background publication of one object, first read to "
                           "the last fsync (after the open has been answered)"),
                 ("crc", "reading the fetched file back for its CRC32 (the record "
                         "lz_store_check compares later; an MD5 the remote lists is "
                         "checked before the open is answered instead)"),
                 ("fsync_object", "fsync of the object file: writing its 10 MiB to disk"),
                 ("fsync_dir", "fsync of its objects/ subdirectory after the rename")]
    if an:
        for k, what in names_an:
            xs = [ph[k] for ph in an]
            total = median([ph["total"] for ph in an])
            rel = f"{median(xs) / total * 100:.0f}% of the total" if k != "total" else ""
            if k == "copy":
                rel += f"; {median(xs) / median(rc):.2f}x the rcd baseline's median"
            row(6, f"cold open anatomy, under strace ({len(an)} objects): "
                f"{k.replace('_', ' ')}", cold_lz, fmt_t(median(xs)), mm(xs, fmt_t), rel, what)
    if pubs:
        for k, what in names_pub:
            xs = [ph[k] for ph in pubs]
            row(6, f"background publication, under strace ({len(pubs)} objects): "
                f"{k.replace('_', ' ')}", cold_lz, fmt_t(median(xs)), mm(xs, fmt_t),
                "off the open's path", what)
    if c.get("crc32_10mib_s"):
        xs = c["crc32_10mib_s"]
        row(6, "CRC32 of 10 MiB in memory (zlib 1.2.13, the library the store uses)",
            "the bench process", fmt_t(median(xs)), mm(xs, fmt_t),
            f"{median(xs) / median(lo) * 100:.0f}% of the cold open",
            "zlib's crc32(), which the store runs over every fetched object")
        xs = c["md5_10mib_s"]
        row(6, "MD5 of 10 MiB in memory (OpenSSL)", "the bench process", fmt_t(median(xs)),
            mm(xs, fmt_t), f"{median(xs) / median(lo) * 100:.0f}% of the cold open",
            "what a remote listing MD5s (S3, WebDAV with hashes …) adds to each fetch")


def rep_remote_stream(col, cold_lz, cold_rc, row, notes, T, huge):
    """Cold reads streamed: the time to the first 64 KiB and to all of a 10 MiB and a
    256 MiB object, lazyfs (stream=on) against rclone mount, and the targets."""
    sets = [("10 MiB", col)]
    if huge:
        sets.append((f"{huge[0].get('mib', 256)} MiB",
                     lambda k: [x[k] for x in huge]))
    for size, get in sets:
        for k, what in (("first64k", f"time to the first 64 KiB of a cold {size} object "
                                     "(open + first read)"),
                        ("all", f"time to all of a cold {size} object (open + read to "
                                "the end, 1 MiB reads)")):
            a, b = get(f"lazyfs_{k}_s"), get(f"rclone_{k}_s")
            ratios = [x / y for x, y in zip(a, b)]
            row(6, what, cold_lz, fmt_t(median(a)), mm(a, fmt_t),
                ratio_str(ratios) + " vs rclone mount",
                "the open returns once the fetch has begun (stream=on): the daemon reads "
                "the object from rclone's rc-serve into its own file and answers each READ "
                "as its bytes arrive" if k == "first64k" else
                "the streamed fetch, read through FUSE READ while it runs; checked and "
                "published at its end, then every open is passthrough")
            row(6, what, cold_rc, fmt_t(median(b)), mm(b, fmt_t), "",
                "the open returns at once and reads wait for the download, which "
                "streams" if k == "first64k" else
                "the download streamed through FUSE READ requests while it arrives")
            goal, limit = (("within 1.5x of", 1.5) if k == "first64k"
                           else ("no slower than", 1.0))
            T.append((f"remote objects: {'first 64 KiB' if k == 'first64k' else 'all'} of a "
                      f"cold {size} object {goal} rclone mount", median(ratios) <= limit,
                      f"ratio {ratio_str(ratios, 3)}, {fmt_t(median(a))} against "
                      f"{fmt_t(median(b))}"))
    notes.append(
        "- Section 6: lazyfs streams cold objects (stream=on, the default): the bytes "
        "served before the end-of-fetch check are the documented trade-off; stream=off "
        "keeps the whole-object fetch, checked before the first byte (the anatomy rows "
        "dissect that one). Objects of 256 KiB or less are fetched whole either way.")


def rep_remote_read(w, rounds, labels, row, T):
    """Warm sequential read of the 256 MiB object."""
    names = list(rounds[0])
    rq = w.get("requests_per_big_read", {})
    gb = lambda b: f"{b:.2f}"
    why = {"lazyfs-remote": "passthrough: the kernel copies from the cache file's page "
                            "cache, the very pages the direct read uses",
           "cache-file": "read(2) of the same file: the page-cache copy itself",
           "rclone-mount": "each read a FUSE READ (at most 128 KiB) that rclone answers "
                           "from its cache file: two copies and a round trip per 128 KiB"}
    pairs = lambda a, b: [x[a] / x[b] for x in rounds]
    for v in names:
        xs = [x[v] / 1e9 for x in rounds]
        ratio = ""
        if v == "lazyfs-remote":
            ratio = "; ".join(ratio_str(pairs(v, o)) + f" vs {o}" for o in names if o != v)
        extra = (f" Requests per warm read: {opcounts_str(rq[v])}." if v in rq else "")
        row(6, f"warm sequential read of the {w['read_bytes'] >> 20} MiB object, 1 MiB "
            f"buffer, GB/s ({len(rounds)} rounds)", labels[v], f"{median(xs):.2f} GB/s",
            mm(xs, gb), ratio, why[v] + "." + extra)
    rr = pairs("lazyfs-remote", "cache-file")
    T.append(("remote objects: warm sequential read >= 0.95x reading the cache file "
              "directly", median(rr) >= 0.95, f"ratio {ratio_str(rr, 3)}"))
    if "rclone-mount" in names:
        rr = pairs("lazyfs-remote", "rclone-mount")
        T.append(("remote objects: warm sequential read at least 5x faster than rclone "
                  "mount --vfs-cache-mode full", median(rr) >= 5,
                  f"lazyfs reads {ratio_str(rr, 1)} as fast"))
