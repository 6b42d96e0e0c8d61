#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""The structure the folders promise (docs/ARCHITECTURE.md), checked.

    tests/layering.py SRCDIR        exit 1 with one line per breach

Product code is what is built into lazyfs and lazyfsctl: the C files under the
folders below (tests and fuzzers are not). The rules:

- includes point down: a file includes its own folder's headers and those of
  lower layers only (LAYERS), never a sibling layer's or a higher one's;
- only the FUSE glue (fs/) sees FUSE requests (fuse_req_t), and only fs/ and
  upgrade/ (which hands the session over) include libfuse's headers;
- every C file opens with its SPDX-License-Identifier line, and every header
  then with its contract (a comment before anything else);
- no product function longer than 120 lines, no product file longer than 900,
  no script (scripts/, the bench package) longer than 1,200.
"""
import os
import re
import sys

# Folder -> layer. A file may include headers of its own folder and of folders
# of a lower layer; folders of one layer know nothing of each other.
LAYERS = {
    "common": 0,
    "images": 1,
    "cache/store": 1,
    "cache/rclone": 1,
    "bpf": 1,
    "cache": 2,
    "fscore": 3,
    "upgrade": 4,
    "control": 4,
    "fs": 5,
    "tools": 6,
}
FUSE_REQUESTS = {"fs"}
FUSE_HEADERS = {"fs", "upgrade"}
MAX_FUNCTION = 120
MAX_FILE = 900
MAX_SCRIPT = 1200
# Generated or outside the build: not ours to hold to these rules.
IGNORED_INCLUDES = {"config.h", "vmlinux.h", "lazyfs.skel.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(rel):
    """The layered folder REL (a path from the top) lives in, or None."""
    best = None
    for folder in LAYERS:
        if rel.startswith(folder + "/") and "/" not in rel[len(folder) + 1:]:
            best = folder
    return best


def product_files(top):
    for folder in LAYERS:
        d = os.path.join(top, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                yield f"{folder}/{name}"


def resolve(top, rel, inc):
    """The file an include names, from the top: beside the includer, else from the top."""
    beside = os.path.normpath(os.path.join(os.path.dirname(rel), inc))
    if os.path.exists(os.path.join(top, beside)):
        return beside
    return os.path.normpath(inc)


def check_includes(top, rel, text, breaches):
    mine = folder_of(rel)
    for m in INCLUDE.finditer(text):
        inc = m.group(1)
        if os.path.basename(inc) in IGNORED_INCLUDES:
            continue
        target = resolve(top, rel, inc)
        theirs = folder_of(target)
        line = text.count("\n", 0, m.start()) + 1
        if theirs is None:
            breaches.append(f"{rel}:{line}: includes {inc}, which is in no layer")
        elif theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
            breaches.append(f"{rel}:{line}: includes {inc}: {mine}/ (layer {LAYERS[mine]}) "
                            f"may not use {theirs}/ (layer {LAYERS[theirs]})")


def check_fuse(rel, text, breaches):
    folder = folder_of(rel)
    code = strip_comments(text)
    if folder not in FUSE_REQUESTS and re.search(r"\bfuse_req_t\b", code):
        breaches.append(f"{rel}: uses fuse_req_t outside the FUSE glue (fs/)")
    if folder not in FUSE_HEADERS and re.search(r"#\s*include\s*<fuse(_lowlevel|_opt)?\.h>", code):
        breaches.append(f"{rel}: includes libfuse outside fs/ and upgrade/")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def check_contract(rel, text, breaches):
    spdx = re.match(r"/\* SPDX-License-Identifier: [^*]*\*/\n", text)
    if spdx is None and rel.endswith((".c", ".h")):
        breaches.append(f"{rel}: a source file opens with its SPDX-License-Identifier line")
    body = text[spdx.end():] if spdx else text
    if rel.endswith(".h") and not body.lstrip().startswith("/*"):
        breaches.append(f"{rel}: a header opens with its contract (a comment), this one does not")


def functions(lines):
    """(name, first line, length) of each function: bodies open with "{" alone at column 0."""
    i = 0
    while i < len(lines):
        if lines[i] != "{":
            i += 1
            continue
        start = i - 1
        while start > 0 and lines[start - 1].strip() and \
                not lines[start - 1].startswith(("}", "#")) and \
                not lines[start - 1].rstrip().endswith((";", "*/")):
            start -= 1
        end = i + 1
        while end < len(lines) and lines[end] != "}":
            end += 1
        m = re.search(r"(\w+)\s*\(", " ".join(lines[start:i]))
        yield (m.group(1) if m else "?"), start + 1, end - start + 1
        i = end + 1


def check_sizes(rel, text, breaches):
    lines = text.split("\n")
    if len(lines) - 1 > MAX_FILE:
        breaches.append(f"{rel}: {len(lines) - 1} lines, more than {MAX_FILE}")
    for name, first, length in functions(lines):
        if length > MAX_FUNCTION:
            breaches.append(f"{rel}:{first}: {name}() is {length} lines, more than {MAX_FUNCTION}")


def check_scripts(top, breaches):
    for d, _, names in os.walk(os.path.join(top, "scripts")):
        for name in names:
            path = os.path.join(d, name)
            rel = os.path.relpath(path, top)
            if "__pycache__" in rel:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    n = sum(1 for _ in f)
            except UnicodeDecodeError:
                continue
            if n > MAX_SCRIPT:
                breaches.append(f"{rel}: {n} lines, more than {MAX_SCRIPT}")


def check(top):
    breaches = []
    for rel in product_files(top):
        with open(os.path.join(top, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        check_includes(top, rel, text, breaches)
        check_fuse(rel, text, breaches)
        check_contract(rel, text, breaches)
        check_sizes(rel, text, breaches)
    check_scripts(top, breaches)
    return breaches


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: layering.py SRCDIR")
    breaches = check(sys.argv[1])
    for b in breaches:
        print(b)
    sys.exit(1 if breaches else 0)


if __name__ == "__main__":
    main()
