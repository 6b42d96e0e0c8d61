# SPDX-License-Identifier: BSD-2-Clause
"""The report's rows of sections 12 (browsing 4000 images), 13 (the stat storm) and
14 (ACL lookups), with their targets."""
from .config import COLD_SETTLE_S
from .rep_format import fmt_t, mm, pairs, ratio_str, reqs_said
from .runner import median

BROWSE_TARGETS = {"ls -l": 1.0, "find": 5.0}
# What each walk costs per image, and what the daemon holds for it afterwards.
WALKED = {
    "ls -l": "one READDIRPLUS of the root carries every image's root attributes, read in user "
             "space (its superblock and root inode, a few KiB) by the FUSE worker (a local "
             "images directory); no LOOKUP, nothing mounted",
    "find": "as `ls -l`, plus per image OPENDIR, READDIRPLUS, READDIR and RELEASEDIR, and "
            "its libsquashfuse reader opened (tables and metadata cache); nothing mounted",
}
HELD = {
    "ls -l": "one descriptor of the image file per image, no reader",
    "find": "one descriptor of the image file and a libsquashfuse reader with its metadata "
            "cache per image",
}


def rep_browse(r, row, T, notes):
    mib = lambda k: f"{k / 1024:.1f} MiB"
    for backend, cs in r["runs"].items():
        for c, xs in cs.items():
            wall = [x["wall"] for x in xs]
            med = lambda when, k: median([x[when][k] for x in xs])
            loops = max(x["loops"] for x in xs)
            bad = [x for x in xs if x["rc"] != 0 or x["errors"]]
            row(12, f"`{c} MP` on a fresh mount with {r['images']:,} images, {len(xs)} runs",
                f"lazyfs, backend={backend}", fmt_t(median(wall)), mm(wall, fmt_t),
                f"{loops} loop devices; {xs[0]['lines']:,} lines",
                WALKED.get(c, "")
                + (f"; {len(bad)} runs failed or printed errors" if bad else ""))
            row(12, f"the daemon after `{c}`, then after {r['idle_timeout_s']} s idle_timeout "
                f"(images closed, the kernel told to forget them)", f"lazyfs, backend={backend}",
                f"{mib(med('after', 'VmRSS'))}, {med('after', 'fds'):.0f} fds",
                "", f"idle: {mib(med('idle', 'VmRSS'))}, {med('idle', 'fds'):.0f} fds; before "
                f"the walk {mib(med('before', 'VmRSS'))}, {med('before', 'fds'):.0f} fds",
                HELD.get(c, "") + "; inodes the kernel still holds keep theirs")
            T.append((f"`{c}` of {r['images']:,} images on the {backend} backend under "
                      f"{BROWSE_TARGETS[c]:.0f} s with no loop device",
                      median(wall) < BROWSE_TARGETS[c] and loops == 0 and not bad,
                      f"median {fmt_t(median(wall))}, {loops} loop devices"))


def rep_browse_remote(r, row, T, notes):
    xs = r.get("remote") or []
    if not xs:
        return
    for run in xs[0]:
        ys = [x[run] for x in xs]
        wall = [y["wall"] for y in ys]
        listing = [y["listing"] for y in ys]
        fetches = max(y["fetches"] for y in ys)
        bad = [y for y in ys if y["rc"] != 0 or y["errors"]]
        what = (f"{r['remote_images']:,} of the images as remote images (remote_mode=images, "
                f"`rclone serve http` on 127.0.0.1), new mount, {run}, {len(ys)} runs")
        row(12, f"`ls MP` (names only) of {what}", "lazyfs, remote_mode=images",
            fmt_t(median(listing)), mm(listing, fmt_t), "",
            "the remote's listing: one rclone operations/list, in which rclone's http backend "
            "asks the server for each file's size and date (a HEAD request each)")
        row(12, f"`ls -l MP` right after, {what}", "lazyfs, remote_mode=images",
            fmt_t(median(wall)), mm(wall, fmt_t), f"{fetches} objects fetched "
            f"({max(y['fetch_bytes'] for y in ys):,} bytes); {ys[0]['lines']:,} lines",
            "a LOOKUP of each root, resolved on a deferral thread from the listing in memory; "
            "its attributes from the image's root card or made-up ones; no image fetched"
            + (f"; {len(bad)} runs failed or printed errors" if bad else ""))
        if run == "empty cache":
            T.append((f"`ls -l` of {r['remote_images']:,} remote images fetches no image",
                      fetches == 0 and not bad, f"{fetches} objects fetched"))


def rep_storm(r, row, T, notes):
    for when in ("warm", "cold"):
        rs = r[when]
        if not rs:
            continue
        for v in rs[0]:
            xs = [x[v] for x in rs]
            row(13, f"{r['procs']} processes lstat {r['paths']:,} distinct paths over "
                f"{r['images']} images, {when} dentries"
                + (" (every cache dropped, mounts kept)" if when == "cold" else "")
                + f", {len(rs)} runs", v, fmt_t(median(xs)), mm(xs, fmt_t),
                "" if v == "loop" else ratio_str(pairs(rs, v, "loop")) + " vs loop",
                ("the dcache: no FUSE request" if when == "warm" else
                 "one LOOKUP round trip per path component the kernel has not cached, "
                 "answered from the image's metadata (decompressed once per block)")
                if v != "loop" else "squashfs in the kernel, no round trip")
    for v, n in r.get("errors", {}).items():
        notes.append(f"- Section 13: {v}: {n} lstat calls failed.")


def rep_acl(r, row, notes):
    """Section 14: acl=on against acl=off and the kernel, as nobody."""
    base = {"image": "image: loop", "underlay": "underlay: native"}
    for when, rs in (("cold", r["cold"]), ("warm", r["warm"])):
        if not rs:
            continue
        for v in rs[0]:
            kind = v.split(":")[0]
            xs = [x[v] for x in rs]
            rq = (r["requests"].get(v) or {}).get(when)
            if when == "cold":
                what = (f"`find ROOT -readable` as nobody over the {kind} of {r['entries']:,} "
                        f"entries, cold (every cache dropped, then {COLD_SETTLE_S:g} s for the "
                        f"FORGETs, mounts kept), {len(rs)} runs")
                per, f = "walk", fmt_t
            else:
                what = (f"stat(2) of each of the {kind}'s {r['files']:,} files by its full path "
                        f"as nobody, warm, {len(rs)} runs")
                per, f = f"pass over the {r['files']:,} paths", fmt_t
            why = ("the kernel alone" if v == base[kind] else
                   reqs_said(rq, per) if rq is not None else "FUSE round trips")
            if v.endswith("acl=on") and when == "warm":
                why += ("; the mount's root is made before FUSE_INIT says ACLs are on, so the "
                        "kernel never caches its ACL: every walk from it by a user who does not "
                        "own it asks again (one GETXATTR per path)")
            elif v.endswith("acl=on"):
                why += "; one GETXATTR per inode: its ACL, kept with its attributes"
            row(14, what, v, f(median(xs)), mm(xs, f),
                "" if v == base[kind] else ratio_str(pairs(rs, v, base[kind])) + f" vs {base[kind]}",
                why)
