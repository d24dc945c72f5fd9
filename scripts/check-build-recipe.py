#!/usr/bin/env python3
"""Check that every build of the C core follows its recipe, core/build.json.

    scripts/check-build-recipe.py [BUILD_DIR]      (default build; make test runs it)

The recipe's sources are exactly core/*.c, and each build compiles exactly
those, with the recipe's C standard, defines, flags and warnings (and links
its libraries), as the build itself would run them:
  cmake   BUILD_DIR/compile_commands.json (CMakeLists.txt exports it)
  python  `python3 python/build_ffi.py --print-core` (setuptools' arguments;
          the wheels of python/build-dist.sh and the sdist build through it)
  node    `node node/scripts/build.js --print-core` (also the prebuilds
          scripts/pack.js cross-compiles through it)
  lua     the rock lua/dist.sh makes: `make -n -f rock.mk install` in it
Exit status 1 with one line per drift.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
problems: list[str] = []


def drift(builder: str, what: str) -> None:
    problems.append(f"{builder}: {what}")


def check_command(builder: str, src: str, tokens: list[str], expected: list[str]) -> None:
    missing = [t for t in expected if t not in tokens]
    if missing:
        drift(builder, f"{os.path.basename(src)} is compiled without {' '.join(missing)} (core/build.json)")


def check_sources(builder: str, compiled: list[str], recipe: dict) -> None:
    names = [os.path.basename(s) for s in compiled]
    if sorted(names) != sorted(recipe["sources"]) or len(set(names)) != len(names):
        extra = sorted(set(names) - set(recipe["sources"]))
        lacking = sorted(set(recipe["sources"]) - set(names))
        drift(builder, f"compiles other core sources than the recipe (extra: {extra}, missing: {lacking})")


def run(builder: str, cmd: list[str], **kw) -> str | None:
    """The command's output, or None (a drift) when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        drift(builder, f"`{' '.join(cmd)}` failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")
        return None
    return p.stdout


def as_json(builder: str, text: str | None):
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        drift(builder, f"--print-core printed no JSON (does it read core/build.json?): {text[:200]!r}")
        return None


def main() -> int:
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    build = build if os.path.isabs(build) else os.path.join(REPO, build)
    with open(os.path.join(REPO, "core", "build.json"), encoding="utf-8") as f:
        recipe = json.load(f)
    flags = [f"-std={recipe['c_std']}", *(f"-D{d}" for d in recipe["defines"]), *recipe["cflags"], *recipe["warnings"]]
    libs = [f"-l{lib}" for lib in recipe["libs"]]

    # the recipe itself: every core/*.c, once, and nothing else
    on_disk = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "core", "*.c")))
    if sorted(recipe["sources"]) != on_disk or len(set(recipe["sources"])) != len(recipe["sources"]):
        drift("core/build.json", f"its sources are not core/*.c: core/ has {sorted(set(on_disk) - set(recipe['sources']))} "
              f"beside them, lacks {sorted(set(recipe['sources']) - set(on_disk))}, or one is listed twice")

    # CMake
    cc_json = os.path.join(build, "compile_commands.json")
    if not os.path.isfile(cc_json):
        drift("cmake", f"{cc_json} is missing (configure {build} with CMakeLists.txt, which exports it)")
    else:
        with open(cc_json, encoding="utf-8") as f:
            entries = [e for e in json.load(f)
                       if os.path.dirname(os.path.realpath(os.path.join(e["directory"], e["file"])))
                       == os.path.realpath(os.path.join(REPO, "core"))
                       and "mlk_core.dir" in e.get("output", e.get("command", ""))]
        check_sources("cmake", [e["file"] for e in entries], recipe)
        for e in entries:
            check_command("cmake", e["file"], e["arguments"] if "arguments" in e else shlex.split(e["command"]), flags)

    # Python (cffi's set_source arguments, which setuptools turns into -D and flags)
    py = as_json("python", run("python", [sys.executable, os.path.join(REPO, "python", "build_ffi.py"), "--print-core"],
                               cwd=os.path.join(REPO, "python")))
    if py:
        check_sources("python", py["sources"], recipe)
        py_tokens = [f"-D{d}" for d, _ in py["define_macros"]] + py["extra_compile_args"]
        check_command("python", "every source", py_tokens, flags)
        check_command("python", "the extension (link)", [f"-l{lib}" for lib in py["libraries"]], libs)

    # Node
    if shutil.which("node"):
        nd = as_json("node", run("node", ["node", os.path.join(REPO, "node", "scripts", "build.js"), "--print-core"]))
        if nd:
            check_sources("node", [c["src"] for c in nd["compiles"]], recipe)
            for c in nd["compiles"]:
                check_command("node", c["src"], c["args"], flags)
    else:
        drift("node", "node is not installed: node/scripts/build.js was not checked")

    # the Lua rock, as lua/dist.sh makes it and luarocks would compile it
    with tempfile.TemporaryDirectory(prefix="mlk-recipe.") as tmp:
        files = run("lua rock", [os.path.join(REPO, "lua", "dist.sh"), tmp])
        if files:
            tarball = files.splitlines()[0]
            with tarfile.open(tarball) as t:
                t.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(tmp)
            src = os.path.join(tmp, os.path.basename(tarball)[: -len(".tar.gz")])
            dry = run("lua rock", ["make", "-n", "-f", "rock.mk", "install", "CC=cc", "CFLAGS=", "LIBFLAG=-shared",
                                   f"LIBDIR={tmp}/lib", f"LUADIR={tmp}/lua", "LUA_INCDIR=/x"], cwd=src) or ""
            line = next((ln for ln in dry.replace("\\\n", " ").splitlines() if ln.startswith("cc ")), "")
            tokens = shlex.split(line)
            check_sources("lua rock", [t for t in tokens if t.startswith("core/") and t.endswith(".c")], recipe)
            check_command("lua rock", "core.so", tokens, flags + libs)

    for p in problems:
        print(f"check-build-recipe: {p}", file=sys.stderr)
    if not problems:
        print(f"check-build-recipe: cmake, python, node and the lua rock compile the {len(recipe['sources'])} "
              f"sources of core/build.json with {' '.join(flags)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
