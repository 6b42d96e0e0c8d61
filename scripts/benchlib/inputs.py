# SPDX-License-Identifier: BSD-2-Clause
"""The cached inputs: images, sources and the compiled helper, built under the
scratch dir when missing and kept between runs."""
import glob
import os
import random
import re
import shutil

from .config import (BIG_MIB, COLD_IMAGES, FILES, GCC_ENTRY, REMOTE_HUGE_MIB, REMOTE_OBJS,
                     REMOTE_TEN, SIZES, STORM, TOP, TREE, UNDERLAY_TREES)
from .runner import BenchError, log, run


def atomic_dir(path, build):
    """Builds a directory under a temporary name and renames it into place."""
    if os.path.isdir(path):
        return
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    build(tmp)
    os.rename(tmp, path)


def mksquashfs(src, out):
    if os.path.exists(out):
        return
    run(["mksquashfs", src, out + ".tmp", "-noappend", "-quiet", "-comp", "zstd", "-all-root"])
    os.rename(out + ".tmp", out)


class Inputs:
    def __init__(self, scratch):
        self.s = scratch
        self.images = os.path.join(scratch, "images")
        self.main = os.path.join(self.images, "main")  # files, big, gcc-12
        self.cold = os.path.join(self.images, "cold")
        self.unpacked = os.path.join(scratch, "unpacked", "files")
        self.zlib_src = os.path.join(scratch, "zlib", "src")
        self.php = os.path.join(scratch, "bin", "passthrough_hp")
        self.php_error = None
        self.zlib_version = None
        self.remote_tree = os.path.join(scratch, "remote", "tree")
        self.remote_images = os.path.join(self.images, "remote")  # objs.sqfs: the same objs/
        self.tree_image = os.path.join(self.main, "tree10k.sqfs")
        self.tree_unpacked = os.path.join(scratch, "unpacked", "tree10k")
        self.storm = os.path.join(self.images, "storm")

    def storm_paths(self):
        """Section 13's paths, relative to the images' parent: sNN/dDD/fFFF."""
        n, dirs, files, _ = STORM
        return [f"s{i:02d}/d{d:02d}/f{f:03d}" for i in range(n) for d in range(dirs)
                for f in range(files)]

    def remote_objs(self):
        return [f"objs/o{i:03d}.bin" for i in range(REMOTE_OBJS)]

    def remote_tens(self):
        return [f"ten-{i}.bin" for i in range(REMOTE_TEN)]

    def tree_entries(self):
        """Entries under the walked tree's root (directories, files and symlinks)."""
        return sum(len(ds) + len(fs) for _, ds, fs in os.walk(self.tree_unpacked))

    def build_tree(self, d):
        """TREE: nested directories of small files of random sizes, and symlinks."""
        rnd = random.Random(8)
        top, sub, per = TREE
        for a in range(top):
            for b in range(sub):
                leaf = os.path.join(d, f"t{a:02d}", f"s{b:02d}")
                os.makedirs(leaf)
                for i in range(per - 5):
                    with open(os.path.join(leaf, f"f{i:03d}.h"), "wb") as f:
                        f.write(rnd.randbytes(rnd.randint(0, 4096)))
                for i in range(5):
                    os.symlink(f"f{i:03d}.h", os.path.join(leaf, f"l{i}.h"))

    def underlay_tree(self, n):
        """A plain directory of N empty files: 100 directories of 10 of N/1000 each."""
        return os.path.join(self.s, "unpacked", f"underlay{n}")

    def build_underlay(self, n):
        def build(d):
            log(f"making an underlay of {n:,} empty files")
            per = n // 1000
            for a in range(100):
                for b in range(10):
                    leaf = os.path.join(d, f"d{a:02d}", f"s{b}")
                    os.makedirs(leaf)
                    for i in range(per):
                        os.close(os.open(os.path.join(leaf, f"f{i:04d}"),
                                         os.O_CREAT | os.O_WRONLY, 0o644))
        atomic_dir(self.underlay_tree(n), build)

    def n_dir(self, n):
        return os.path.join(self.images, f"n{n}")

    def files_list(self):
        return [f"d{d:02d}/f{i:03d}" for d in range(FILES[0]) for i in range(FILES[1])]

    def prepare(self, sections, quick=False):
        os.makedirs(self.main, exist_ok=True)
        stage = os.path.join(self.s, "stage")
        shutil.rmtree(stage, ignore_errors=True)
        tiny = os.path.join(self.images, "tiny.sqfs")
        if {1, 9, 10, 12} & set(sections):
            if not os.path.exists(tiny):
                os.makedirs(os.path.join(stage, "tiny"))
                with open(os.path.join(stage, "tiny", "README"), "w") as f:
                    f.write("one tiny image, hard-linked many times\n")
                mksquashfs(os.path.join(stage, "tiny"), tiny)
            for n in SIZES:
                atomic_dir(self.n_dir(n), lambda d, n=n: [
                    os.link(tiny, os.path.join(d, f"img{i:04d}.sqfs")) for i in range(n)])
        if 1 in sections or 2 in sections or 7 in sections:
            def build_cold(d):
                log(f"making {COLD_IMAGES} distinct small images")
                for i in range(COLD_IMAGES):
                    src = os.path.join(stage, f"c{i:02d}")
                    os.makedirs(os.path.join(src, "lib"))
                    with open(os.path.join(src, "hello.txt"), "w") as f:
                        f.write(f"cold image {i}\n")
                    rnd = random.Random(1000 + i)
                    for k in range(3):
                        with open(os.path.join(src, "lib", f"part{k}"), "wb") as f:
                            f.write(rnd.randbytes(4096))
                    mksquashfs(src, os.path.join(d, f"c{i:02d}.sqfs"))
            atomic_dir(self.cold, build_cold)
        if 3 in sections:
            img = os.path.join(self.main, "files.sqfs")
            if not os.path.exists(img):
                log("making the open-loop image (500 small files)")
                src = os.path.join(stage, "files")
                rnd = random.Random(42)
                for rel in self.files_list():
                    os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                    with open(os.path.join(src, rel), "wb") as f:
                        f.write(rnd.randbytes(rnd.randint(100, 16384)))
                mksquashfs(src, img)
            if not os.path.isdir(self.unpacked):
                os.makedirs(os.path.dirname(self.unpacked), exist_ok=True)
                shutil.rmtree(self.unpacked + ".tmp", ignore_errors=True)
                run(["unsquashfs", "-q", "-n", "-d", self.unpacked + ".tmp", img])
                os.rename(self.unpacked + ".tmp", self.unpacked)
            self.build_php()
        if 4 in sections:
            img = os.path.join(self.main, "big.sqfs")
            if not os.path.exists(img):
                log(f"making a {BIG_MIB} MiB image of random data")
                src = os.path.join(stage, "big")
                os.makedirs(src)
                with open(os.path.join(src, "big.bin"), "wb") as f:
                    for _ in range(BIG_MIB):
                        f.write(os.urandom(1 << 20))
                mksquashfs(src, img)
        if 5 in sections or 7 in sections:
            img = os.path.join(self.main, f"{GCC_ENTRY}.sqfs")
            if not os.path.exists(img):
                log("packing the system gcc into an image (tests/mkgccimage.sh)")
                run(["bash", os.path.join(TOP, "tests", "mkgccimage.sh"), img + ".tmp"])
                os.rename(img + ".tmp", img)
            self.fetch_zlib()
        if {8, 14} & set(sections) and not os.path.exists(self.tree_image):
            log(f"making the walked tree ({TREE[0] * TREE[1] * TREE[2]} entries) and its image")
            shutil.rmtree(self.tree_unpacked, ignore_errors=True)
            atomic_dir(self.tree_unpacked, self.build_tree)
            mksquashfs(self.tree_unpacked, self.tree_image)
        if 13 in sections:
            def build_storm(d):
                n, dirs, files, _ = STORM
                log(f"making {n} images of {dirs * files} files each")
                for i in range(n):
                    src = os.path.join(stage, f"s{i:02d}")
                    for k in range(dirs):
                        os.makedirs(os.path.join(src, f"d{k:02d}"))
                        for f in range(files):
                            with open(os.path.join(src, f"d{k:02d}", f"f{f:03d}"), "w") as o:
                                o.write(f"{i} {k} {f}\n")
                    mksquashfs(src, os.path.join(d, f"s{i:02d}.sqfs"))
            atomic_dir(self.storm, build_storm)
        if 11 in sections:
            self.build_underlay(UNDERLAY_TREES[quick])
        if 6 in sections:
            def build_remote(d):
                log(f"making the remote tree: {REMOTE_OBJS} x 1 MiB, {REMOTE_TEN} x 10 MiB, "
                    f"{REMOTE_HUGE_MIB} MiB of random data")
                os.makedirs(os.path.join(d, "objs"))
                for rel in self.remote_objs():
                    with open(os.path.join(d, rel), "wb") as f:
                        f.write(os.urandom(1 << 20))
                for rel in self.remote_tens():
                    with open(os.path.join(d, rel), "wb") as f:
                        f.write(os.urandom(10 << 20))
                with open(os.path.join(d, "huge.bin"), "wb") as f:
                    for _ in range(REMOTE_HUGE_MIB):
                        f.write(os.urandom(1 << 20))
            atomic_dir(self.remote_tree, build_remote)
            img = os.path.join(self.remote_images, "objs.sqfs")
            if not os.path.exists(img):
                log("packing the remote tree's objs/ into a local image")
                os.makedirs(self.remote_images, exist_ok=True)
                mksquashfs(os.path.join(self.remote_tree, "objs"), img)
        shutil.rmtree(stage, ignore_errors=True)

    def build_php(self):
        if os.path.exists(self.php):
            return
        srcs = sorted(glob.glob("/var/cache/lazyfs-bootstrap/src/fuse3-*/example/passthrough_hp.cc"))
        if not srcs:
            self.php_error = "no libfuse source under /var/cache/lazyfs-bootstrap/src (run scripts/bootstrap)"
            return
        log(f"building passthrough_hp from {srcs[-1]}")
        try:
            flags = run(["pkg-config", "--cflags", "--libs", "fuse3"]).stdout.split()
            os.makedirs(os.path.dirname(self.php), exist_ok=True)
            run(["g++", "-O2", "-std=c++17", "-w", "-I", os.path.dirname(srcs[-1]), srcs[-1],
                 *flags, "-o", self.php + ".tmp"])
            os.rename(self.php + ".tmp", self.php)
        except BenchError as e:
            self.php_error = f"could not build passthrough_hp: {e}"

    def fetch_zlib(self):
        zdir = os.path.join(self.s, "zlib")
        if not glob.glob(os.path.join(zdir, "zlib_*.dsc")):
            log("fetching zlib's bookworm source package (private apt configuration)")
            mirror = "http://deb.debian.org/debian"
            try:
                with open("/etc/apt/sources.list.d/debian.sources") as f:
                    m = re.search(r"^URIs: *(http\S*debian)$", f.read(), re.M)
                    if m:
                        mirror = m.group(1)
            except OSError:
                pass
            apt = os.path.join(zdir, "apt")
            for d in ("sources", "lists/partial", "cache/archives/partial"):
                os.makedirs(os.path.join(apt, d), exist_ok=True)
            with open(os.path.join(apt, "sources", "bookworm-src.sources"), "w") as f:
                f.write(f"Types: deb-src\nURIs: {mirror}\nSuites: bookworm\nComponents: main\n"
                        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
            opts = ["-o", "Dir::Etc::SourceList=/dev/null",
                    "-o", f"Dir::Etc::SourceParts={apt}/sources",
                    "-o", f"Dir::State::Lists={apt}/lists",
                    "-o", f"Dir::Cache={apt}/cache",
                    "-o", "APT::Sandbox::User=root"]
            run(["apt-get", *opts, "update", "-qq"])
            run(["apt-get", *opts, "source", "--download-only", "-qq", "zlib/bookworm"], cwd=zdir)
        dsc = sorted(glob.glob(os.path.join(zdir, "zlib_*.dsc")))[-1]
        self.zlib_version = os.path.basename(dsc)[len("zlib_"):-len(".dsc")]
        if not os.path.isdir(self.zlib_src):
            shutil.rmtree(self.zlib_src + ".tmp", ignore_errors=True)
            run(["dpkg-source", "--no-check", "-x", dsc, self.zlib_src + ".tmp"])
            os.rename(self.zlib_src + ".tmp", self.zlib_src)


def compile_helper(tmp):
    exe = os.path.join(tmp, "bench-openloop")
    run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(TOP, "scripts", "bench-openloop.c")])
    return exe
