# SPDX-License-Identifier: BSD-2-Clause
"""The report: the results table (report(), one writer per section), the targets
and what limits a missed one, and the markdown and JSON files."""
import json
import os

from .chart import write_chart
from .rep_format import fmt_t
from .rep_browse import rep_acl, rep_browse, rep_browse_remote, rep_storm
from .rep_remote import rep_remote
from .rep_scale import rep_scale
from .rep_sections import (rep_cold_open, rep_compile, rep_footprint, rep_mount_ready, rep_open,
                           rep_read, rep_restart, rep_tracker, rep_underlay, rep_walk)
from .runner import RUN_LOG, median


def report(res, meta, targets_out):
    L = []
    T = targets_out
    notes = []
    row = lambda *cells: L.append("| " + " | ".join(str(c) for c in cells) + " |")
    L.append("| # | Measurement | Variant | Median | Min – max | Ratio (pairwise median, min–max) | What limits it |")
    L.append("|---|---|---|---|---|---|---|")
    drops = res.get("cache_drops_by_others", {})

    if "mount_ready" in res:
        rep_mount_ready(res["mount_ready"], row, T)
    if "cold_open" in res:
        rep_cold_open(res["cold_open"], row, T)
    if "open_close" in res:
        rep_open(res["open_close"], row, T, notes)
    if "read" in res:
        rep_read(res["read"], row, T, notes)
    if "compile" in res:
        rep_compile(res["compile"], row, T, notes)
    if "remote" in res:
        rep_remote(res["remote"], row, T, notes)
    if "tracker" in res:
        rep_tracker(res["tracker"], row, T)
    if "walk" in res:
        rep_walk(res["walk"], row, notes)
    if "footprint" in res:
        rep_footprint(res["footprint"], row, notes)
    if "restart" in res:
        rep_restart(res["restart"], row, notes)
    if "underlay" in res:
        rep_underlay(res["underlay"], row, notes)
    if "browse" in res:
        rep_browse(res["browse"], row, T, notes)
        rep_browse_remote(res["browse"], row, T, notes)
    if "storm" in res:
        rep_storm(res["storm"], row, T, notes)
    if "acl" in res:
        rep_acl(res["acl"], row, notes)
    if "scale" in res:
        rep_scale(res["scale"], row, T, notes)
    if drops and any(drops.values()):
        notes.append("- Other processes on the machine wrote to /proc/sys/vm/drop_caches during "
                     "this run (section: times): " + ", ".join(f"{k}: {n}" for k, n in drops.items())
                     + ". Each drop empties warm caches, so the measurement after it is partly cold.")
    if notes:
        L += ["", "Notes:", ""] + notes
    return "\n".join(L)


def bpf_median(res, v, op, i):
    """Median over section 5's builds of OP's count (I=0) or summed round trips in µs
    (I=1) on V, from the BPF statistics; None without them."""
    cs = ((res.get("compile") or {}).get("bpf_per_build") or {}).get(v)
    return median([c.get(op, [0, 0])[i] for c in cs]) if cs else None


def missed_why(target, res):
    """For a missed target: what limits it and what would fix it, from this run's
    measurements; None where the rows of its section say it already."""
    ioctl_us = bpf_median(res, "lazyfs-passthrough", "IOCTL", 1)
    ioctls = ("the IOCTL requests are isatty() calls (ld reading the libgcc_s.so linker script) "
              "that the kernel forwards to the server on every FUSE file, passthrough or not"
              + (f"; their round trips add up to {fmt_t(ioctl_us / 1e6)} per build"
                 if ioctl_us is not None else ""))
    if target.startswith("passthrough build sends only OPEN"):
        return (f"What limits it: {ioctls}. What would fix it: nothing in lazyfs (it cannot "
                "stop the kernel from asking); the kernel would have to pass ioctls through "
                "to the backing file, or remember an ENOTTY answer")
    if target.startswith("cached build sends < 50"):
        reads = bpf_median(res, "lazyfs-cached", "READ", 0)
        return (f"What limits it: {ioctls}; the READs"
                + (f" ({reads:.0f} per build)" if reads is not None else "")
                + " are pages of the FUSE page cache evicted between builds (the DAMON pageout "
                "policy of this machine, see the method). What would fix it: the IOCTLs as "
                "above; the READs disappear on a machine that does not page out idle page cache")
    if target.startswith("remote objects: warm open+close at least 5x faster"):
        oc = res.get("open_close")
        if oc and {"lazyfs-passthrough", "lazyfs-cached"} <= set(oc["rounds"][0]):
            p50 = lambda v: median([x[v]["p50"] for x in oc["rounds"]]) / 1e9
            return ("What limits it: lazyfs's warm open is one OPEN round trip (section 3: "
                    f"{fmt_t(p50('lazyfs-passthrough'))} p50 in passthrough against "
                    f"{fmt_t(p50('lazyfs-cached'))} with no OPEN at all); rclone mount pays a round "
                    "trip per open as well, so the ratio is that of two round trips. What would "
                    "fix it: no OPEN "
                    "per open (the cached open mode's ENOSYS, which gives up passthrough); the "
                    "OPEN itself is already answered from memory (backing_keep), so what is left "
                    "is the kernel's round trip: the pinned rows show it without cross-CPU "
                    "wake-ups")
    if target.startswith("remote objects: cold open"):
        an = ((res.get("remote") or {}).get("anatomy") or {}).get("phases_s") or []
        if an:
            return ("What limits it: the open waits for rclone's copy and then "
                    f"{fmt_t(median([p['after_copy'] for p in an]))} (under strace) after it, "
                    f"plus {fmt_t(median([p['before_copy'] for p in an]))} before it (the rows of "
                    "section 6 say what they are). What would fix it: shrinking those two "
                    "phases, the copy itself being the baseline's own")
    return None


def write_outputs(args, meta, res, table, targets, errors, md_path, json_path):
    lines = ["# lazyfs benchmarks", "",
             "Generated by `scripts/bench`; do not edit by hand, rerun it.", "",
             f"Command: `{meta['command']}` ({meta['profile']} profile, {meta['elapsed_s']:.0f} s)", "",
             f"Machine: Linux {meta['kernel']}, {meta['nproc']} CPUs ({meta['cpu']}), "
             f"{meta['memory_gib']} GiB RAM; {meta['date']}; load average at start "
             f"{' '.join(meta['loadavg_start'])}, at end {' '.join(meta['loadavg_end'])}."
             + (f" **{meta['damon_pageout']}**: on this machine \"warm\" means recently used; "
                "page cache idle for longer is evicted from every variant alike and read again "
                "(through the loop device, or as FUSE READ in open_mode=cached)."
                if meta.get("damon_pageout") else ""), "",
             f"lazyfs: {meta['lazyfs_version']}, commit {meta['lazyfs_commit']}"
             f"{' with uncommitted changes to the sources' if meta['lazyfs_tree_dirty'] else ''}, "
             f"binary sha256 {meta['lazyfs_sha256']}…, built {meta['lazyfs_built']} "
             f"(copied from `{meta['lazyfs_source']}` at the start).", "",
             "Method: every figure is the median of repeated runs with min–max; ratios are "
             "computed pair by pair within one round (variants run in rotating order) and "
             "their median is shown. The machine is shared and noisy. FUSE requests are "
             "counted with the `fuse:fuse_request_send` tracepoint (as tests/fusetrace.sh); "
             "section 5 also shows lazyfs's own count, from its BPF FUSE statistics "
             "(`lazyfsctl --json MP stats`). "
             "The systems, all serving the same image file: **loop** is `mount -t squashfs -o "
             "loop,ro IMAGE MP`; **lazyfs-MODE** is `lazyfs -f -o images=DIR,underlay=EMPTY,"
             "backend=kernel,open_mode=MODE,cache=RUNDIR`, **lazyfs-squashfuse-MODE** the same "
             "with backend=squashfuse, **lazyfs-io_uring** lazyfs-passthrough plus `io_uring` "
             "(with /sys/module/fuse/parameters/enable_uring set to Y while it is mounted); "
             f"**squashfuse_ll** is Debian's `squashfuse_ll -f IMAGE MP` ({meta.get('squashfuse', '?')}); "
             "**native** is the unpacked tree on the local ext4 disk. Every lazyfs measured is "
             "the default configuration otherwise: default timeouts, prefetch=on and bpf=auto, "
             "so the eBPF open tracker is loaded for each mount (and adds its cost, section 7, "
             "to every openat on the machine while mounted). passthrough_hp runs with its "
             "defaults (passthrough on, 86400 s timeouts; this version has no --timeout option) "
             "over the unpacked files. \"Caches dropped\" means `sync; echo 3 > "
             "/proc/sys/vm/drop_caches` right before the measurement."
             + (" Section 6 serves a generated tree with `rclone serve http TREE --addr "
                "127.0.0.1:PORT --dir-cache-time 0s` and mounts `lazyfs -f -o remote=:http\\,url="
                "'http://127.0.0.1:PORT/':,remote_mode=objects,cache=DIR,underlay=EMPTY` (plus "
                "listing_ttl=1 for the cold opens) and `rclone mount :http,url=…: MP "
                "--vfs-cache-mode full --cache-dir DIR` (its defaults otherwise) against it; the "
                "copy baseline is our own `rclone rcd` on 127.0.0.1. Every rclone runs with "
                f"RCLONE_CONFIG=/dev/null ({res['remote'].get('rclone', 'rclone')})."
                if "remote" in res else ""), "",
             "## Results", ""]
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    png = os.path.splitext(json_path)[0] + ".png"
    why_no_chart = write_chart(res, png)
    if why_no_chart is None:
        lines += [f"![Time relative to the kernel loop mount]({os.path.relpath(png, os.path.dirname(md_path))})",
                  "", "The chart: each system's time for a few key measurements relative to the "
                  "kernel squashfs loop mount of the same image (medians of the pairwise ratios "
                  "in the table).", ""]
    else:
        lines += [f"(No chart: {why_no_chart}.)", ""]
    lines += [table, ""]
    if errors:
        lines += ["## Sections that failed", ""] + [f"- {e}" for e in errors] + [""]
    lines += ["## Targets", ""]
    for what, ok, detail in targets:
        verdict = "not measured" if ok is None else ("**met**" if ok else "**missed**")
        fix = missed_why(what, res) if ok is False else None
        lines.append(f"- {what}: {verdict} ({detail})" + (f". {fix}" if fix else ""))
    lines += ["", f"Raw numbers: `{os.path.relpath(json_path, os.path.dirname(md_path))}`.", "",
              "## Run log", "", "```"] + RUN_LOG + ["```", ""]
    os.makedirs(os.path.dirname(md_path), exist_ok=True)
    with open(md_path, "w") as f:
        f.write("\n".join(lines))
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "results": res, "targets": [
            {"target": w, "met": ok, "detail": d} for w, ok, d in targets], "errors": errors},
            f, indent=1)
        f.write("\n")
    return "\n".join(lines)
