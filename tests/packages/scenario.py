"""The package scenario (scripts/test-packages.sh) in Python: launch on
matchlock-local ($MATCHLOCK_BIN), exec, stream, files."""
import io

import matchlock_native
from matchlock_native import Client, Sandbox

with Client() as c:
    c.launch(Sandbox("alpine:latest"))
    assert c.exec("echo hi").stdout == "hi\n"
    out = io.StringIO()
    assert c.exec_stream("printf 'a\\nb\\n'", stdout=out).exit_code == 0
    assert out.getvalue() == "a\nb\n", out.getvalue()
    c.write_file("/tmp/scenario.txt", "hello")
    assert c.read_file("/tmp/scenario.txt") == b"hello"
    assert any(f.name == "scenario.txt" for f in c.list_files("/tmp"))
c.remove()
print(f"scenario (Python, matchlock_native {matchlock_native.CORE_VERSION_STR}): ok")
