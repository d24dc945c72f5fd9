#!/usr/bin/env python3
"""Quick start: create a sandbox, run commands (buffered, streamed, piped),
move files.  Run against the local backend:

    MATCHLOCK_BIN=build/matchlock-local python3 examples/python/quickstart.py
"""

import io
import sys

from matchlock_native import Client, MatchlockError, RPCError, Sandbox


def main() -> int:
    sandbox = Sandbox("alpine:latest").with_env("GREETING", "hello from the sandbox")
    try:
        with Client() as client:
            vm_id = client.launch(sandbox)
            print(f"created {vm_id}")

            r = client.exec("echo $GREETING; uname -s")
            print(f"exec: exit={r.exit_code} stdout={r.stdout!r}")

            print("exec_stream:")
            s = client.exec_stream("for i in 1 2 3; do echo tick $i; sleep 0.2; done",
                                   stdout=sys.stdout, stderr=sys.stderr)
            print(f"  exit={s.exit_code} in {s.duration_ms} ms")

            out = io.BytesIO()
            client.exec_pipe("tr a-z A-Z", stdin=b"piped through tr\n", stdout=out)
            print(f"exec_pipe: {out.getvalue()!r}")

            client.write_file("/tmp/hello.txt", "Hello, world!\n")
            client.write_file("/tmp/run.sh", "#!/bin/sh\necho script ran\n", mode=0o755)
            print(f"read_file: {client.read_file('/tmp/hello.txt')!r}")
            for f in client.list_files("/tmp"):
                print(f"  {f.name:10} {f.size:5} bytes  dir={f.is_dir}")
            print(client.exec("/tmp/run.sh").stdout, end="")

            try:
                client.read_file("/no/such/file")
            except RPCError as e:
                print(f"expected error: {e} (file error: {e.is_file_error()})")
        client.remove()
    except MatchlockError as e:
        print(f"matchlock error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
