#!/usr/bin/env python3
"""Hooks from Python: watch files a command writes, block and rewrite the
SDK's own file writes, and change HTTP traffic with a network hook (sync
and async).  Run against the local backend:

    MATCHLOCK_BIN=build/matchlock-local python3 examples/python/hooks.py

The network part starts a tiny HTTP server on 127.0.0.1 and fetches it
with curl inside the sandbox, through the backend's proxy.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import threading

from matchlock_native import (
    NETWORK_HOOK_ACTION_BLOCK,
    NETWORK_HOOK_PHASE_AFTER,
    VFS_HOOK_ACTION_ALLOW,
    VFS_HOOK_ACTION_BLOCK,
    VFS_HOOK_OP_WRITE,
    VFS_HOOK_PHASE_AFTER,
    Client,
    MatchlockError,
    NetworkHookRequest,
    NetworkHookResponseMutation,
    NetworkHookResult,
    NetworkHookRule,
    NetworkInterceptionConfig,
    Sandbox,
    VFSActionRequest,
    VFSBlockedError,
    VFSHookEvent,
    VFSHookRule,
    VFSInterceptionConfig,
    VFSMutateRequest,
)

logging.basicConfig(level=logging.WARNING)  # hook exceptions are logged on "matchlock_native.hooks"


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"hello from the upstream server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


# -- VFS hooks -------------------------------------------------------------

def on_file(event: VFSHookEvent) -> None:
    """After-hook: runs for matching file events (not re-triggered by itself)."""
    print(f"  [after-hook] {event.op} {event.path} ({event.size} bytes)")


def audit(client: Client, event: VFSHookEvent) -> None:
    """Dangerous hook: gets the client and may call it (a blocking exec works)."""
    r = client.exec(f"wc -c < {event.path}")
    print(f"  [dangerous_hook] {event.path} now holds {r.stdout.strip()} bytes")


def no_secrets(req: VFSActionRequest) -> str:
    """Action hook: allow or block write_file/read_file/list_files."""
    return VFS_HOOK_ACTION_BLOCK if req.path.endswith(".env") else VFS_HOOK_ACTION_ALLOW


async def add_header(req: VFSMutateRequest) -> bytes:
    """Mutate hook (async works too): the bytes that land in the file."""
    await asyncio.sleep(0)
    return b"# written through matchlock\n" + req.data


# -- network hooks -----------------------------------------------------------

def rewrite_body(req: NetworkHookRequest) -> NetworkHookResult:
    print(f"  [network hook] {req.method} {req.host}{req.path} -> {req.status_code}")
    return NetworkHookResult(response=NetworkHookResponseMutation(
        headers={"Content-Type": ["text/plain"]}, set_body=b"body replaced by a Python hook\n"))


async def deny_admin(req: NetworkHookRequest) -> NetworkHookResult | None:
    await asyncio.sleep(0.01)  # answered later through the reply token
    return NetworkHookResult(action=NETWORK_HOOK_ACTION_BLOCK) if req.path.startswith("/admin") else None


def show_event(e: dict) -> None:
    """Every server event (network and file), beyond the official SDK."""
    if e.get("type") == "network":
        n = e.get("network", {})
        print(f"  [event] network {n.get('method')} {n.get('url')} -> {n.get('status_code')}"
              f"{' blocked' if n.get('blocked') else ''}")
    elif e.get("type") == "file":
        f = e.get("file", {})
        print(f"  [event] file {f.get('op')} {f.get('path')}")


def main() -> int:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{srv.server_address[1]}"

    sandbox = (
        Sandbox("alpine:latest")
        .with_workspace("/workspace")
        .mount_memory("/workspace")
        .with_vfs_interception(VFSInterceptionConfig(rules=[
            VFSHookRule(name="watch", phase=VFS_HOOK_PHASE_AFTER, path="/workspace/*.txt", hook=on_file),
            VFSHookRule(name="audit", phase=VFS_HOOK_PHASE_AFTER, ops=[VFS_HOOK_OP_WRITE],
                        path="/workspace/*.log", dangerous_hook=audit),
            VFSHookRule(name="no-dotenv", action_hook=no_secrets),
            VFSHookRule(name="header", path="/workspace/*.conf", mutate_hook=add_header),
        ]))
        .allow_private_ips()  # the demo upstream is on loopback
        .with_network_interception(NetworkInterceptionConfig(rules=[
            NetworkHookRule(name="rewrite", phase=NETWORK_HOOK_PHASE_AFTER, path="/hello", hook=rewrite_body),
            NetworkHookRule(name="deny-admin", hook=deny_admin),
        ]))
    )
    try:
        with Client() as client:
            client.on_event(show_event)
            client.create(sandbox)

            print("a command writes files:")
            client.exec("echo notes > /workspace/notes.txt; echo line >> /workspace/app.log")

            print("write_file through the action and mutate hooks:")
            try:
                client.write_file("/workspace/.env", "TOKEN=x")
            except VFSBlockedError as e:
                print(f"  blocked: {e}")
            client.write_file("/workspace/app.conf", "port = 8080\n")
            print(client.exec("cat /workspace/app.conf").stdout, end="")

            print("HTTP through the network hooks:")
            print(client.exec(f"curl -s {upstream}/hello").stdout, end="")
            print(client.exec(f"curl -s {upstream}/admin").stdout, end="")
            print(client.exec(f"curl -s {upstream}/other").stdout, end="")

            if client.hook_errors:
                print(f"hook errors: {client.hook_errors}")
    except MatchlockError as e:
        print(f"error: {e}")
        return 1
    finally:
        srv.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
