#!/usr/bin/env python3
"""Run every runnable fenced code block of README.md and docs/*.md as written.

A block is runnable unless the line right before its fence says why not:
    <!-- doc-test: skip (a fragment of a larger program) -->
Languages: sh (bash -e), python, js (an ES module when it uses import or
top-level await, else CommonJS), lua (Lua 5.4), c (a whole program, or a
fragment of main's body, linked with libmatchlock and msgpack-c).  Blocks
run in a scratch directory that links the repository's top-level entries
(so `build/matchlock-local` and `examples/...` resolve, and nothing is
written into the tree), with `matchlock` on PATH pointing at
matchlock-local, so the defaults work as documented.

    run_blocks.py --repo R --build B --python PY --node-project DIR --lua-env FILE
PY is a Python with matchlock_native installed, DIR a project with
matchlock-native installed, FILE a shell snippet setting LUA_PATH/LUA_CPATH
(scripts/test-packages.sh passes the installed artifacts).
Prints one line per block and 'N passed, N failed, N skipped'.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```(\w+)\s*$")
SKIP = re.compile(r"^<!--\s*doc-test:\s*skip\b(.*?)-->\s*$")
LANGS = {"sh", "bash", "python", "js", "lua", "c"}


def blocks(path: str):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            skip = SKIP.match(lines[i - 1]) if i > 0 else None
            yield i + 1, m.group(1), "\n".join(lines[i + 1:j]) + "\n", skip.group(1).strip(" ()-") if skip else None
            i = j
        i += 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--node-project", required=True)
    ap.add_argument("--lua-env", required=True)
    a = ap.parse_args()
    repo, build = os.path.abspath(a.repo), os.path.abspath(a.build)
    work = tempfile.mkdtemp(prefix="mlk-doc-blocks-")
    os.makedirs(os.path.join(work, "bin"))
    os.symlink(os.path.join(build, "matchlock-local"), os.path.join(work, "bin", "matchlock"))
    cwd = os.path.join(work, "tree")
    os.makedirs(cwd)
    for e in os.listdir(repo):
        if not e.startswith("."):
            os.symlink(os.path.join(repo, e), os.path.join(cwd, e))
    env = dict(os.environ, PATH=os.path.join(work, "bin") + os.pathsep + os.environ["PATH"],
               XDG_STATE_HOME=os.path.join(work, "state"))
    env.pop("MATCHLOCK_BIN", None)
    lua_env = open(a.lua_env).read()
    passed = failed = skipped = 0
    for md in ["README.md"] + sorted(glob.glob(os.path.join(repo, "docs", "*.md"))):
        md = os.path.relpath(os.path.join(repo, md), repo)
        for line, lang, body, skip in blocks(os.path.join(repo, md)):
            where = f"{md}:{line} ({lang})"
            if lang not in LANGS or skip is not None:
                skipped += 1
                print(f"skip {where}: {skip or 'not a language the runner knows'}")
                continue
            n = passed + failed
            if lang in ("sh", "bash"):
                cmd = ["bash", "-euo", "pipefail", "-c", body]
            elif lang == "python":
                cmd = [a.python, "-c", body]
            elif lang == "js":
                esm = re.search(r"^\s*import\s|^\s*export\s|^[^/\n]*\bawait\b", body, re.M) and "require(" not in body
                f = os.path.join(a.node_project, f"doc-block-{n}.{'mjs' if esm else 'cjs'}")
                open(f, "w").write(body)
                cmd = ["node", f]
            elif lang == "lua":
                cmd = ["bash", "-c", lua_env + '\nexec lua5.4 -e "$1"', "lua", body]
            else:  # c
                src = body if re.search(r"\bmain\s*\(", body) else (
                    "#include <stdio.h>\n#include <matchlock.h>\nint main(void) {\n" + body + "return 0;\n}\n")
                exe = os.path.join(work, f"doc-block-{n}")
                open(exe + ".c", "w").write(src)
                cmd = ["bash", "-c", f'cc -I"{repo}/abi/include" "{exe}.c" -L"{build}" -lmatchlock '
                       f'-Wl,-rpath,"{build}" $(pkg-config --cflags --libs msgpack) -o "{exe}" && "{exe}"']
            r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                passed += 1
                print(f"ok   {where}")
            else:
                failed += 1
                print(f"FAIL {where} (exit {r.returncode})\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
    subprocess.run(["rm", "-rf", work])
    print(f"doc blocks: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
