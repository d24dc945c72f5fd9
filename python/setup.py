"""Build glue for matchlock-native: cffi modules cannot be declared in
pyproject.toml alone.  The sdist command vendors the C core (../core with
its recipe build.json, and ../abi/include) into _core/ so an sdist builds
on its own."""

import glob
import os
import shutil

from setuptools import setup
from setuptools.command.sdist import sdist as _sdist

HERE = os.path.dirname(os.path.abspath(__file__))


class sdist(_sdist):
    def make_release_tree(self, base_dir, files):  # type: ignore[override]
        # The extension's sources live outside this directory (../core);
        # they are vendored into _core/ below instead of copied as "../".
        files = [f for f in files if not f.startswith("..") and not os.path.isabs(f)]
        super().make_release_tree(base_dir, files)
        core = os.path.join(HERE, "..", "core")
        inc = os.path.join(HERE, "..", "abi", "include", "matchlock.h")
        if not os.path.isdir(core):
            return  # building from an sdist already: _core/ is in `files`
        dst = os.path.join(base_dir, "_core")
        os.makedirs(dst, exist_ok=True)
        # the core's sources, headers and recipe (build.json: what build_ffi.py compiles, how)
        for f in glob.glob(os.path.join(core, "*.[ch]")) + glob.glob(os.path.join(core, "*.inc")) + [
                os.path.join(core, "build.json"), inc]:
            shutil.copy2(f, dst)


# The extension uses only CPython's limited API (cffi builds it with
# Py_LIMITED_API), so one wheel serves CPython 3.10 and later: cp310-abi3.
setup(
    cffi_modules=["build_ffi.py:ffibuilder"],
    cmdclass={"sdist": sdist},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
