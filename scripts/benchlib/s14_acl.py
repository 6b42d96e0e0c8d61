# SPDX-License-Identifier: BSD-2-Clause
"""Section 14: what enforcing POSIX ACLs costs (acl=on, FUSE_POSIX_ACL) against mode
bits only (acl=off), for a user who owns nothing in the tree (nobody): the kernel asks
the daemon for a file's ACL at the first permission check that needs it, and keeps
the answer with the attributes. The walked tree of section 8, as an image (against a
kernel loop mount of it) and as the underlay (against the directory itself):

  - cold `find ROOT -readable` (every cache dropped, mounts kept): a permission check
    on every entry, so one ACL lookup per inode;
  - warm stats of every file by its full path (each walk starts at the mount's root):
    what the ACL lookups cost once every entry is cached."""
import os
import pwd
import subprocess
import time

from .runner import BenchError, log, median, rotate

ACL_SYSTEMS = {"lazyfs acl=on": "acl=on", "lazyfs acl=off": "acl=off"}
# The walker the stat storm runs as nobody: the system's python (a user's pyenv is
# not nobody's to run), paths from a list file, the loop timed in the process after
# one pass that warms the caches. Rounds 0: that one pass alone (counting requests).
STAT_PY = """import os, sys, time
root, rounds = sys.argv[1], int(sys.argv[3])
paths = [os.path.join(root, p) for p in open(sys.argv[2]).read().split()]
for p in paths:
    os.stat(p)
t = time.perf_counter()
for _ in range(rounds):
    for p in paths:
        os.stat(p)
print((time.perf_counter() - t) / (len(paths) * max(rounds, 1)))
"""


def s14_acl(b):
    env, p, inp = b.env, b.p, b.inp
    R = {"entries": inp.tree_entries(), "cold": [], "warm": [], "requests": {}}
    b.res["acl"] = R
    files = [os.path.relpath(os.path.join(d, f), inp.tree_unpacked)
             for d, _, fs in os.walk(inp.tree_unpacked) for f in fs]
    R["files"] = len(files)
    lst = b.write_list("acl-paths", sorted(files))
    walker = os.path.join(env.run, "acl-stat.py")
    with open(walker, "w") as f:
        f.write(STAT_PY)
    entry = os.path.basename(inp.tree_image)[:-len(".sqfs")]
    roots, fuse, pids = {}, {}, {}
    try:
        loop = b.mp("acl-loop")
        env.loop_mount(inp.tree_image, loop)
        roots["image: loop"] = loop
        roots["underlay: native"] = inp.tree_unpacked
        for v, opt in ACL_SYSTEMS.items():
            for kind, opts in (("image", f"images={os.path.dirname(inp.tree_image)},"
                                         f"underlay={b.empty()}"),
                               ("underlay", f"underlay={inp.tree_unpacked}")):
                name = f"{kind}: {v}"
                mp = b.mp(f"acl-{kind}-{opt.replace('=', '-')}")
                pids[name] = (mp, env.lazyfs(b.lz, mp, f"{opts},{opt},allow_other",
                                             f"acl-{kind}-{opt}"))
                fuse[name] = mp
                roots[name] = os.path.join(mp, entry) if kind == "image" else mp
        names = list(roots)
        for v in names:
            find_readable(b, roots[v])  # resolves lazyfs's image; nobody can walk it
        for rnd in range(p["walk_cold"]):
            row = {}
            for v in rotate(names, rnd):
                b.drop_caches_settled()
                row[v] = find_readable(b, roots[v])
            R["cold"].append(row)
        for rnd in range(p["walk_rounds"]):
            row = {}
            for v in rotate(names, rnd):
                row[v] = stat_storm(walker, roots[v], lst)
            R["warm"].append(row)
        for v, mp in fuse.items():
            R["requests"][v] = {}
            for when in ("cold", "warm"):
                if when == "cold":
                    b.drop_caches_settled()
                t = env.trace(mp)
                try:
                    if when == "cold":
                        find_readable(b, roots[v])
                    else:
                        stat_storm(walker, roots[v], lst, rounds=0)
                    time.sleep(0.3)
                    R["requests"][v][when] = t.counts()
                finally:
                    t.stop()
    finally:
        for mp, pid in pids.values():
            env.umount(mp, pid)
        env.umount(b.mp("acl-loop"))
    log("ACL lookups, cold find -readable as nobody: " + ", ".join(
        f"{v} {median([x[v] for x in R['cold']]) * 1e3:.0f} ms" for v in roots))
    log("ACL lookups, warm stat by full path as nobody: " + ", ".join(
        f"{v} {median([x[v] for x in R['warm']]) * 1e6:.1f} µs" for v in roots))


def as_nobody():
    pw = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]


def find_readable(b, root):
    """`find ROOT -readable` as nobody: its wall time (every entry is readable)."""
    argv = [*as_nobody(), "find", root, "-readable"]
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, LC_ALL="C"))
    took = time.perf_counter() - t0
    if r.returncode != 0 or r.stdout.count("\n") < b.inp.tree_entries():
        raise BenchError(f"find {root} -readable as nobody: exit {r.returncode}, "
                         f"{r.stdout.count(chr(10))} entries: {r.stderr.strip()[-300:]}")
    return took


def stat_storm(walker, root, lst, rounds=3):
    """Seconds per stat(2) of every listed path under ROOT, as nobody, warm."""
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
    r = subprocess.run([*as_nobody(), py, walker, root, lst, str(rounds)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise BenchError(f"stat storm under {root} as nobody: {r.stderr.strip()[-300:]}")
    return float(r.stdout)
