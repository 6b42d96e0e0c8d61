# SPDX-License-Identifier: BSD-2-Clause
"""The chart: each system's time for a few key measurements relative to the loop
mount, drawn with gnuplot."""
import os
import shutil
import subprocess

from .rep_format import pairs
from .runner import median


CHART_SYSTEMS = ["lazyfs-passthrough", "lazyfs-cached", "lazyfs-squashfuse-passthrough",
                 "lazyfs-io_uring", "squashfuse_ll"]


def chart_rows(res):
    """[(measure, {system: median pairwise time ratio against the loop mount})]."""
    def ratios(rows, f, inverse=False):
        out = {}
        for v in CHART_SYSTEMS:
            rs = pairs(rows or [], "loop", v, f) if inverse else pairs(rows or [], v, "loop", f)
            if rs:
                out[v] = median(rs)
        return out
    p50, wall, same = (lambda x: x["p50"]), (lambda x: x["wall"]), (lambda x: x)
    out = []
    if "open_close" in res:
        out.append(("warm open+close p50", ratios(res["open_close"]["rounds"], p50)))
    if "read" in res:
        rd = res["read"]
        out += [("warm sequential read", ratios(rd["rounds_Bps"], same, inverse=True)),
                ("cold sequential read", ratios(rd.get("cold_Bps"), same, inverse=True)),
                ("warm random 4 KiB p50", ratios(rd.get("rand_warm"), p50)),
                ("cold random 4 KiB p50", ratios(rd.get("rand_cold"), p50))]
    if "walk" in res:
        for when in ("warm", "cold"):
            out.append((f"ls -lR {when}", ratios([x["ls -lR"] for x in res["walk"][when]], wall)))
    if "compile" in res:
        out += [("zlib build wall", ratios(res["compile"]["rounds"], wall)),
                ("preprocess-only wall", ratios(res["compile"].get("pp_rounds"), wall))]
    return [(m, d) for m, d in out if d]


def write_chart(res, png):
    """A PNG of chart_rows with gnuplot; returns None, or why there is none."""
    rows = chart_rows(res)
    if not rows:
        return "nothing to draw"
    if shutil.which("gnuplot") is None:
        return "gnuplot is not installed (scripts/bootstrap installs gnuplot-nox)"
    systems = [v for v in CHART_SYSTEMS if any(v in d for _, d in rows)]
    dat = png[:-len(".png")] + ".dat"
    with open(dat, "w") as f:
        f.write(" ".join(f'"{c}"' for c in ["measure", *systems]) + "\n")
        for m, d in rows:
            f.write(" ".join([f'"{m}"'] + [f"{d[v]:.4f}" if v in d else "?" for v in systems]) + "\n")
    script = f"""
set terminal pngcairo size 1400,650 font "sans,10"
set output '{png}'
set title "Time relative to a kernel squashfs loop mount of the same image (median of pairwise ratios; lower is better)" noenhanced
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set ylabel "x the loop mount's time (log scale)"
set grid ytics
set xtics rotate by -20 noenhanced
set key top right noenhanced
set datafile missing "?"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2
plot for [i=2:{len(systems) + 1}] '{dat}' using i:xtic(1) title columnheader(i)
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    os.unlink(dat)
    if r.returncode != 0 or not os.path.exists(png):
        return f"gnuplot failed: {r.stderr.strip()[-300:]}"
    return None
