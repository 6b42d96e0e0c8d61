# SPDX-License-Identifier: BSD-2-Clause
"""The report's formatting helpers: times, min–max ranges, ratios, FUSE request
counts, and the pairwise ratios every comparison uses."""
from .runner import median


def fmt_t(s):
    if s is None:
        return "n/a"
    a = abs(s)
    if a >= 1:
        return f"{s:.2f} s"
    if a >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def mm(xs, f):
    return f"{f(min(xs))} – {f(max(xs))}" if xs else "n/a"


def ratio_str(rs, digits=2):
    if not rs:
        return "n/a"
    return f"{median(rs):.{digits}f}x ({min(rs):.2f}–{max(rs):.2f})"


def opcounts_str(d, digits=0):
    if not d:
        return "none"
    items = sorted(((k, v) for k, v in d.items() if v), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return "none"
    return ", ".join(f"{k.replace('FUSE_', '')} {v:.{digits}f}" for k, v in items)


def median_counts(list_of_counts):
    ops = sorted({k for c in list_of_counts for k in c})
    return {op: median([c.get(op, 0) for c in list_of_counts]) for op in ops}


def req_total(c):
    return sum(n for k, n in (c or {}).items() if not k.startswith("_") and k != "LOST")


def reqs_said(c, per, digits=0):
    """'N FUSE requests per PER (OPEN a, ...)', from counts by opcode."""
    if not req_total(c):
        return f"no FUSE request per {per}"
    c = {k: n for k, n in c.items() if not k.startswith("_")}
    return f"{req_total(c):.{digits}f} FUSE requests per {per} ({opcounts_str(c, digits)})"


def pairs(rounds, v, b, f=lambda x: x):
    """F(v)/F(b) for every round that has both: the pairwise ratios."""
    return [f(x[v]) / f(x[b]) for x in rounds if v in x and b in x]


def skipped_notes(section, r, notes):
    for v, why in (r.get("skipped") or {}).items():
        notes.append(f"- Section {section}: {v} left out: {why}.")
