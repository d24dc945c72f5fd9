#!/usr/bin/env python3
"""Write seed corpora for the libFuzzer targets (scripts/fuzz.sh runs this).

  make-seeds.py OUTDIR      -> OUTDIR/reader/*, OUTDIR/options/*

options: every case of tests/vectors/create.jsonl (or
$MLK_VECTORS_DIR/create.jsonl) plus port_forward.jsonl and allow_list.jsonl,
encoded in tests/fuzz/fuzz_options.c's op format.
reader: server output of every shape the protocol has (PROTOCOL.md and the
scripted peers of tests/c/test_client_peer.c): a response for each pending
request kind, notifications, events, errors, malformed and oversized lines.
"""
import base64, json, math, os, struct, sys

out = sys.argv[1]
vectors = os.environ.get("MLK_VECTORS_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "vectors")

# ---- a tiny msgpack encoder -------------------------------------------------
def mp(v):
    if v is None: return b"\xc0"
    if v is True: return b"\xc3"
    if v is False: return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128: return bytes([v])
        if 0 <= v: return b"\xcf" + struct.pack(">Q", v)
        if v >= -32: return struct.pack(">b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float): return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32: return bytes([0xa0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b if len(b) < 256 else b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, list):
        h = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return h + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        h = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return h + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)

# ---- fuzz_options op encoding (mirrors the decoder) --------------------------
def s(x):
    b = str(x).encode()[:79]
    return bytes([0x80, len(b)]) + b

def strs(v):
    v = v[:8]
    return bytes([len(v)]) + b"".join(s(x) for x in v)

def num(n):
    return b"\x01" + struct.pack(">q", int(n))

def cpus(x):
    if x == "NaN": x = math.nan
    elif x == "Infinity": x = math.inf
    return b"\x01" + struct.pack(">d", float(x))

def mpraw(v):
    b = mp(v)
    if len(b) > 255:
        return b"\x00\x00"       # too big for the raw form: an empty document
    return b"\x00" + bytes([len(b)]) + b

OPS = {
    "with_cpus": lambda a: b"\x00" + cpus(a[0]),
    "with_memory": lambda a: b"\x01" + num(a[0]),
    "with_disk_size": lambda a: b"\x02" + num(a[0]),
    "with_timeout": lambda a: b"\x03" + num(a[0]),
    "with_privileged": lambda a: b"\x04\x01",
    "with_workspace": lambda a: b"\x05" + s(a[0]),
    "mount_host_dir": lambda a: b"\x06" + s(a[0]) + s(a[1]),
    "mount_host_dir_readonly": lambda a: b"\x07" + s(a[0]) + s(a[1]),
    "mount_memory": lambda a: b"\x08" + s(a[0]),
    "mount_overlay": lambda a: b"\x09" + s(a[0]) + s(a[1]),
    "with_env": lambda a: b"\x0a" + s(a[0]) + s(a[1]),
    "with_env_map": lambda a: b"\x0b" + mpraw(a[0]),
    "allow_host": lambda a: b"".join(b"\x0c" + s(h) for h in a),
    "add_host": lambda a: b"\x0d" + s(a[0]) + s(a[1]),
    "add_secret": lambda a: b"\x0e" + s(a[0]) + s(a[1]) + b"\x00" + strs(a[2:]),
    "add_secret_with_placeholder": lambda a: b"\x0e" + s(a[0]) + s(a[1]) + b"\x01" + s(a[2]) + strs(a[3:]),
    "block_private_ips": lambda a: b"\x0f\x01",
    "allow_private_ips": lambda a: b"\x0f\x00",
    "with_block_private_ips": lambda a: b"\x0f" + (b"\x01" if a[0] else b"\x00"),
    "unset_block_private_ips": lambda a: b"\x10",
    "with_dns_servers": lambda a: b"\x11" + strs(a),
    "with_hostname": lambda a: b"\x12" + s(a[0]),
    "with_network_mtu": lambda a: b"\x13" + num(a[0]),
    "with_no_network": lambda a: b"\x14\x01",
    "with_network_interception": lambda a: b"\x15" + (b"\x00" + mpraw(a[0]) if a else b"\x01"),
    "with_vfs_interception": lambda a: b"\x16" + mpraw(a[0]),
    "with_user": lambda a: b"\x19" + s(a[0]),
    "with_entrypoint": lambda a: b"\x1a" + strs(a),
    "with_image_config": lambda a: b"\x1b" + mpraw(a[0]),
    "with_kernel": lambda a: b"\x1c" + s(a[0]),
    "add_extra_disk": lambda a: b"\x1d" + s(a[0]) + s(a[1]) + (b"\x01" if a[2] else b"\x00"),
}

def write(kind, name, data):
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

with open(os.path.join(vectors, "create.jsonl")) as f:
    for line in f:
        if not line.strip(): continue
        case = json.loads(line)
        image, launch, body = None, 0, b""
        for op in case["ops"]:
            if op[0] == "new": image = op[1] if len(op) > 1 else ""
            elif op[0] == "launch": launch = 1
            else: body += OPS[op[0]](op[1:])
        head = (b"\x01" + s(image)) if image is not None else b"\x00"
        write("options", "create-" + case["name"], head + bytes([launch]) + body)
for fname, key, which in (("port_forward.jsonl", "specs", 1), ("allow_list.jsonl", "hosts", 0)):
    with open(os.path.join(vectors, fname)) as f:
        for i, line in enumerate(f):
            if not line.strip(): continue
            case = json.loads(line)
            write("options", "%s-%d" % (fname.split(".")[0], i),
                  b"\x01" + s("alpine:latest") + b"\x00" + b"\x20" + strs(case[key]) + bytes([which]))
# hooks through the builder
for kind, rule in ((None, {"name": "h", "phase": "before", "hosts": ["*.example.com"], "methods": ["GET"], "timeout_ms": 50}),
                   (2, {"phase": "after", "ops": ["write"], "path": "/w/*"}),
                   (4, {"phase": "before", "ops": ["read", "readdir"], "path": "/etc/*"}),
                   (5, {"ops": ["write"]})):
    body = (b"\x1e" if kind is None else b"\x1f" + bytes([kind])) + mpraw(rule)
    write("options", "hook-%s" % (kind or "net"), b"\x01" + s("alpine:latest") + b"\x00" + body)

# ---- reader seeds --------------------------------------------------------------
# Pending ids (core/client_fuzz.inc): 1 create, 2 exec, 3 exec_stream, 4 exec_pipe,
# 5 exec_tty, 6 write_file, 7 write via exec_pipe, 8 read_file, 9 list_files,
# 10 log, 11 log_stream, 12 allow_list, 13 port_forward, 14 close,
# 15 an abandoned exec, 16 exec_pipe with stdin to feed.
def b64(x): return base64.b64encode(x).decode()
def res(i, r): return json.dumps({"jsonrpc": "2.0", "id": i, "result": r})
def note(m, p): return json.dumps({"jsonrpc": "2.0", "method": m, "params": p})
def err(i, code, msg): return json.dumps({"jsonrpc": "2.0", "id": i, "error": {"code": code, "message": msg}})

happy = [
    res(1, {"id": "vm-123"}),
    res(2, {"exit_code": 7, "stdout": b64(b"hi\n"), "stderr": b64(b"err"), "duration_ms": 3}),
    note("exec_stream.stdout", {"id": 3, "data": b64(b"out")}),
    note("exec_stream.stderr", {"id": 3, "data": b64(b"err")}),
    res(3, {"exit_code": 0, "duration_ms": 1}),
    note("exec_pipe.ready", {"id": 4}),
    note("exec_pipe.stdout", {"id": 4, "data": b64(b"echo")}),
    res(4, {"exit_code": 0}),
    note("exec_tty.ready", {"id": 5}),
    note("exec_tty.stdout", {"id": 5, "data": b64(b"\x1b[1m$ ")}),
    res(5, {"exit_code": 130}),
    res(6, {}),
    note("exec_pipe.ready", {"id": 7}),
    note("exec_pipe.stderr", {"id": 7, "data": b64(b"cat: /x: Permission denied")}),
    res(7, {"exit_code": 1}),
    res(8, {"content": b64(b"file bytes")}),
    res(9, {"files": [{"name": "a", "size": 3, "mode": 420, "is_dir": False, "mod_time": "2024-01-01T00:00:00Z"}]}),
    res(10, {"content": b64(b"log line\n")}),
    note("log_stream.data", {"id": 11, "data": b64(b"tail\n")}),
    res(12, {"added": ["a.com"], "allowed_hosts": ["a.com", "b.com"]}),
    res(13, {"bindings": [{"address": "127.0.0.1", "local_port": 8080, "remote_port": 80}]}),
    res(14, {}),
    res(15, {"exit_code": 0}),
    note("exec_pipe.ready", {"id": 16}),
    res(16, {"exit_code": 0}),
    note("event", {"type": "file", "file": {"op": "write", "path": "/w/a", "size": 3, "mode": 420, "uid": 0, "gid": 0}}),
    note("event", {"type": "network", "network": {"method": "GET", "host": "a.com", "status_code": 200}}),
]
write("reader", "happy-path", b"\x04" + "\n".join(happy).encode() + b"\n")
write("reader", "happy-path-bytewise", b"\x00" + "\n".join(happy).encode() + b"\n")
for i, line in enumerate(happy):
    write("reader", "line-%02d" % i, b"\x02" + line.encode() + b"\n")
bad = [
    "garbage{", "", "[1,2]", "   \t\r", '{"jsonrpc":"2.0","id":',
    res(8, {"content": "@@@"}), res(2, {"stdout": "YQ", "stderr": 5}),
    err(2, -32001, "exec failed: no shell"), err(3, -32003, "cancelled"), err(1, -32000, "vm failed"),
    json.dumps({"jsonrpc": "2.0", "id": 99, "result": {}}),
    json.dumps({"jsonrpc": "2.0", "id": -1, "result": {}}),
    json.dumps({"jsonrpc": "2.0", "id": 18446744073709551615, "result": {}}),
    json.dumps({"jsonrpc": "2.0", "id": 1.5, "result": {}}),
    json.dumps({"jsonrpc": "2.0", "id": "2", "result": {}}),
    res(9, {"files": None}), res(13, {"bindings": "x"}), res(12, None), res(1, {"id": 7}),
    note("exec_stream.stdout", {"id": 3}), note("exec_stream.stdout", {"id": 3, "data": "!!"}),
    note("nodot", {"id": 3}), note("exec_stream.", {"id": 3}), note("event", None), note("event", [1, {"a": {}}]),
    note("event", {"file": {"op": 5, "path": ["x"]}}),
    '{"a":"\\u00e9\\ud83d\\ude00\\n\\"","b":[[[[[[[[[[[]]]]]]]]]]],"c":1e308,"d":-0.0,"e":123456789012345678901234567890}',
    '{"id":2,"result":{"exit_code":1e400,"duration_ms":-9223372036854775809}}',
    '{"id":2,"result":{"stdout":"\\u0000"}}', '{"id":2,"id":3,"result":{}}',
    "{" * 200, '{"x":' + "[" * 5000,
]
write("reader", "malformed-mix", b"\x03" + "\n".join(bad[5:]).encode() + b"\n" + "\n".join(bad[:5]).encode())
for i, line in enumerate(bad):
    write("reader", "bad-%02d" % i, bytes([0x04 | (i & 1) << 3]) + (b"\x05stderr" if i & 1 else b"") + line.encode() + b"\n")
write("reader", "oversized", b"\x14" + b'{"id":8,"result":{"content":"' + b"A" * 2000 + b'"}}\n')
big = bytes(range(256)) * 300   # 76800 bytes: a result that takes the line buffer
write("reader", "big-read", b"\x05" + res(8, {"content": b64(big)}).encode() + b"\n" + res(10, {"content": b64(big[:70000])}).encode() + b"\n")
write("reader", "stderr-tail", b"\x0c\xff" + b"E" * 255 + "\n".join(happy[:3]).encode())
# issue 23: bounds.  An oversized answer whose id is last (upstream's order)
# or first, an oversized output notification, then a call that still works;
# a small node budget; nearly full event and after-hook queues.
over = [b'{"jsonrpc":"2.0","result":{"content":"' + b"QUFB" * 200 + b'"},"id":8}',
        b'{"jsonrpc":"2.0","id":10,"result":{"content":"' + b"QUFB" * 200 + b'"}}',
        note("exec_stream.stdout", {"id": 3, "data": "QUFB" * 200}).encode(),
        res(2, {"exit_code": 0, "stdout": "", "stderr": ""}).encode()]
write("reader", "oversized-ids", b"\x13" + b"\n".join(over) + b"\n")
write("reader", "budget", b"\x24" + "\n".join(happy).encode() + b"\n" + res(9, {"files": [[0] * 40]}).encode() + b"\n")
write("reader", "queues-full", b"\x44" + "\n".join([happy[-2]] * 6 + [happy[-1]] * 6 + [happy[1]]).encode() + b"\n")
