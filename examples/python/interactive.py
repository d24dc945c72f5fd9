#!/usr/bin/env python3
"""An interactive shell on a TTY in the sandbox (Ctrl-D to leave).

    MATCHLOCK_BIN=build/matchlock-local python3 examples/python/interactive.py
"""

import os
import shutil
import sys

from matchlock_native import Client, Sandbox

try:
    import termios
    import tty
except ImportError:  # pragma: no cover
    termios = tty = None  # type: ignore[assignment]


class RawStdin:
    """Unbuffered reads from the terminal."""

    def read(self, n: int) -> bytes:
        return os.read(sys.stdin.fileno(), n)


def main() -> int:
    cols, rows = shutil.get_terminal_size()
    with Client() as client:
        client.launch(Sandbox("alpine:latest"))
        interactive = sys.stdin.isatty() and termios is not None
        old = termios.tcgetattr(sys.stdin) if interactive else None
        try:
            if interactive:
                tty.setraw(sys.stdin)
            r = client.exec_interactive("/bin/sh", stdin=RawStdin() if interactive else b"echo not a tty\n",
                                        stdout=sys.stdout.buffer, rows=rows, cols=cols)
        finally:
            if old is not None:
                termios.tcsetattr(sys.stdin, termios.TCSADRAIN, old)
        print(f"\r\nshell exited with {r.exit_code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
