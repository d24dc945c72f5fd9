"""cffi build script for matchlock_native._native (out-of-line API mode).

The C core (../core/*.c) is compiled straight into the extension, so the
package needs no separately installed libmatchlock.  The cdef is derived
from the public header itself (abi/include/matchlock.h), so every function
of the ABI is reachable from Python and the two can never drift apart.

Sources are looked up next to this file: ``../core`` and ``../abi/include``
in a source checkout, or ``_core/`` inside an sdist (setup.py's sdist
command vendors them there).  What is compiled and how (sources, C
standard, defines, flags, pkg-config packages) is the core's recipe,
``core/build.json``, which CMake and the other package builds read too.
``python build_ffi.py --print-core`` prints the arguments the core is
compiled with, as JSON (scripts/check-build-recipe.py compares them with the
recipe); it needs neither cffi nor a compiler.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _find_sources() -> tuple[str, str]:
    """Return (core_dir, include_dir) or exit with a clear message."""
    candidates = [
        (os.path.join(HERE, "..", "core"), os.path.join(HERE, "..", "abi", "include")),
        (os.path.join(HERE, "_core"), os.path.join(HERE, "_core")),
    ]
    env_root = os.environ.get("MATCHLOCK_SOURCE_DIR")
    if env_root:
        candidates.insert(0, (os.path.join(env_root, "core"), os.path.join(env_root, "abi", "include")))
    for core, inc in candidates:
        if os.path.isfile(os.path.join(inc, "matchlock.h")) and os.path.isdir(core):
            return os.path.normpath(core), os.path.normpath(inc)
    sys.exit(
        "matchlock-native: cannot find the libmatchlock C core next to build_ffi.py "
        f"(looked in {', '.join(os.path.normpath(c) for c, _ in candidates)}).\n"
        "Build from the libmatchlock source tree (pip install ./python) or from an sdist "
        "made by `python -m build`, or set MATCHLOCK_SOURCE_DIR to the repository root."
    )


# macOS: `brew install pkg-config libevent msgpack` (Homebrew's .pc files).
def _install_hint(recipe: dict) -> str:
    return "brew install pkg-config " + " ".join(dict.fromkeys(p["brew"] for p in recipe["pkg_config"]))


def _pc_exists(name: str) -> bool:
    try:
        return subprocess.run(["pkg-config", "--exists", name], capture_output=True).returncode == 0
    except OSError:
        return False


def _pc_name(pkg: dict) -> str:
    """The first of a recipe package's pkg-config names that pkg-config knows
    (msgpack: msgpack-c from 6.0 on, msgpack before), else the first."""
    return next((n for n in pkg["any_of"] if _pc_exists(n)), pkg["any_of"][0])


def _pkg_config(recipe: dict) -> tuple[list[str], list[str], list[str]]:
    """libraries, library_dirs, include_dirs of the recipe's packages from
    pkg-config; exits naming the system package to install when a library
    (or pkg-config) is missing."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pkg-config", *args], capture_output=True, text=True)

    def system_pkg(p: dict) -> str:
        return f"{p['debian']} (Fedora: {p['fedora']})"

    macos = _install_hint(recipe)
    try:
        run("--version")
    except OSError:
        sys.exit("matchlock-native: building from source needs pkg-config, which is not installed "
                 "(Debian/Ubuntu: apt-get install pkg-config; macOS: " + macos + "), plus "
                 + ", ".join(sorted({system_pkg(p) for p in recipe["pkg_config"]})))
    chosen = [(p, _pc_name(p)) for p in recipe["pkg_config"]]
    missing = [(p, n) for p, n in chosen if run("--exists", n).returncode != 0]
    if missing:
        need = sorted({system_pkg(p) for p, _ in missing})
        sys.exit(f"matchlock-native: building from source needs the C libraries "
                 f"{', '.join(' or '.join(p['any_of']) for p, _ in missing)}, "
                 f"which pkg-config cannot find: install {' and '.join(need)} "
                 f"(Debian/Ubuntu package names; macOS: {macos}), or install a prebuilt wheel instead")
    pkgs = [n for _, n in chosen]
    libs, cflags = run("--libs", *pkgs).stdout, run("--cflags", *pkgs).stdout
    libraries, library_dirs, include_dirs = [], [], []
    for tok in shlex.split(libs):
        if tok.startswith("-l"):
            libraries.append(tok[2:])
        elif tok.startswith("-L"):
            library_dirs.append(tok[2:])
    for tok in shlex.split(cflags):
        if tok.startswith("-I"):
            include_dirs.append(tok[2:])
    return libraries, library_dirs, include_dirs


def core_functions(core_dir: str) -> set[str]:
    """Names of the MLK_API functions the core's sources define."""
    names: set[str] = set()
    for n in os.listdir(core_dir):
        if n.endswith(".c"):
            with open(os.path.join(core_dir, n), encoding="utf-8") as f:
                names.update(re.findall(r"MLK_API[^;{(]*?\b(mlk_\w+)\s*\(", f.read()))
    return names


def header_to_cdef(text: str, defined: set[str] | None = None) -> str:
    """Turn matchlock.h into something cffi's cdef() accepts.  Functions the
    header declares but the core does not define (an ABI being added) are
    left out, with a warning, so the extension still loads."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    text = "\n".join(lines)
    if defined is not None:
        kept = []
        for stmt in re.split(r"(?<=;)", text):
            m = re.search(r"\bMLK_API\b[^;]*?\b(mlk_\w+)\s*\(", stmt)
            if m and m.group(1) not in defined:
                sys.stderr.write(f"matchlock-native: {m.group(1)} is declared in matchlock.h but not "
                                 "implemented by the core; it is not exposed\n")
                continue
            kept.append(stmt)
        text = "".join(kept)
    text = re.sub(r"\bMLK_API\s+", "", text)
    return text


CORE_DIR, INCLUDE_DIR = _find_sources()

with open(os.path.join(INCLUDE_DIR, "matchlock.h"), encoding="utf-8") as f:
    _HEADER = f.read()

# Every field of a result, handed to Python in one crossing (cdef and source).
FIELDS_STRUCT = """typedef struct {
    int status, rpc_code, exit_code;
    int64_t duration_ms;
    const char *message, *out, *err, *data, *mp;
    size_t message_len, out_len, err_len, data_len, mp_len;
} mlk_py_fields;
"""

CDEF = (
    header_to_cdef(_HEADER, core_functions(CORE_DIR))
    + """
#define MLK_VERSION_MAJOR ...
#define MLK_VERSION_MINOR ...
#define MLK_VERSION_PATCH ...
#define MLK_VERSION ...
int mlk_py_header_version(void);
"""
    + FIELDS_STRUCT
    + """
void mlk_py_result_fields(const mlk_result *r, mlk_py_fields *f);

void mlk_py_done(void *ud, uint64_t op, const mlk_result *res);
extern "Python" void _mlk_py_done_fields(void *ud, uint64_t op, const mlk_py_fields *f);
extern "Python" void _mlk_py_output(void *ud, uint64_t op, int fd, const char *data, size_t len);
extern "Python" void _mlk_py_ready(void *ud, uint64_t op);
extern "Python" void _mlk_py_event(void *ud, const char *msgpack, size_t len);
extern "Python" void _mlk_py_hook(void *ud, mlk_client *c, int kind, mlk_hook_call *call,
                                  const char *request, size_t len);
"""
)

SOURCE = r"""
#include "matchlock.h"
#include <string.h>
/* The header version this extension was compiled against. */
static int mlk_py_header_version(void) { return MLK_VERSION; }

/* Every field of a result in one call (one crossing instead of ten: the
 * Python side of each call built its result from ten accessor calls, 8 us
 * of a round trip; docs/benchmarks.md). */
""" + FIELDS_STRUCT + r"""
static void mlk_py_result_fields(const mlk_result *r, mlk_py_fields *f)
{
    f->status = mlk_result_status(r);
    f->rpc_code = mlk_result_rpc_code(r);
    f->exit_code = mlk_result_exit_code(r);
    f->duration_ms = mlk_result_duration_ms(r);
    f->message = mlk_result_message(r);
    f->message_len = strlen(f->message);
    f->out = mlk_result_stdout(r, &f->out_len);
    f->err = mlk_result_stderr(r, &f->err_len);
    f->data = mlk_result_data(r, &f->data_len);
    f->mp = mlk_result_msgpack(r, &f->mp_len);
    if (!f->mp) f->mp_len = 0;
}

/* The done callback of every async call: the fields go to Python with the
 * completion, so reading them needs no call back into C (each crossing
 * releases and retakes the GIL). */
static void _mlk_py_done_fields(void *ud, uint64_t op, const mlk_py_fields *f);

static void mlk_py_done(void *ud, uint64_t op, const mlk_result *res)
{
    mlk_py_fields f;
    if (res) mlk_py_result_fields(res, &f);
    _mlk_py_done_fields(ud, op, res ? &f : NULL);
}
"""

def core_build_args(core_dir: str, include_dir: str) -> dict:
    """The core's sources and compiler arguments, from its recipe
    (core/build.json, or _core/build.json in an sdist), as set_source's
    keyword arguments."""
    with open(os.path.join(core_dir, "build.json"), encoding="utf-8") as f:
        recipe = json.load(f)
    libs, libdirs, incs = _pkg_config(recipe)
    return {
        # setuptools insists on sources relative to setup.py (next to this file)
        "sources": [os.path.relpath(os.path.join(core_dir, n), HERE) for n in recipe["sources"]],
        "include_dirs": [include_dir, core_dir, *incs],
        "libraries": libs + recipe["libs"],
        "library_dirs": libdirs,
        "define_macros": [(d, None) for d in recipe["defines"]],
        "extra_compile_args": [f"-std={recipe['c_std']}", *recipe["cflags"], *recipe["warnings"]],
    }


if __name__ == "__main__" and sys.argv[1:] == ["--print-core"]:
    json.dump(core_build_args(CORE_DIR, INCLUDE_DIR), sys.stdout, indent=1)
    sys.exit(0)

from cffi import FFI  # noqa: E402  (not needed by --print-core)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("matchlock_native._native", SOURCE, **core_build_args(CORE_DIR, INCLUDE_DIR))

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
