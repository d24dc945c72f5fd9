"""The shared vectors: every create.jsonl case through the Sandbox builder
(compared with the core's rendering of the create params), port_forward.jsonl
and allow_list.jsonl through the core's exported parsers."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest

import matchlock_native as ml
from matchlock_native._msgpack import unpackb
from matchlock_native._native import ffi, lib
from matchlock_native.errors import error_from_status

from conftest import vectors_dir


def load(name: str) -> list[dict[str, Any]]:
    p = vectors_dir() / name
    if not p.is_file():
        pytest.fail(f"vector file {p} not found; set MLK_VECTORS_DIR", pytrace=False)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


CREATE = load("create.jsonl")
PORT_FORWARD = load("port_forward.jsonl")
ALLOW_LIST = load("allow_list.jsonl")


def number(v: Any) -> Any:
    if v == "NaN":
        return math.nan
    if v == "Infinity":
        return math.inf
    return v


def apply_ops(ops: list[list[Any]]) -> tuple[ml.Sandbox, bool]:
    """Run the vector's ops on a Sandbox; returns (builder, launch)."""
    assert ops[0][0] == "new"
    sb = ml.Sandbox(ops[0][1])
    launch = False
    for op, *args in ops[1:]:
        if op == "launch":
            launch = True
        elif op == "with_cpus":
            sb.with_cpus(number(args[0]))
        elif op in ("with_memory", "with_disk_size", "with_timeout", "with_network_mtu", "with_hostname",
                    "with_workspace", "with_user", "with_kernel"):
            getattr(sb, op)(args[0])
        elif op in ("with_privileged", "block_private_ips", "allow_private_ips", "unset_block_private_ips",
                    "with_no_network"):
            getattr(sb, op)()
        elif op == "with_block_private_ips":
            sb.with_block_private_ips(args[0])
        elif op in ("allow_host", "with_dns_servers", "with_entrypoint"):
            getattr(sb, op)(*args)
        elif op in ("mount_host_dir", "mount_host_dir_readonly"):
            getattr(sb, op)(args[0], args[1], **(args[2] if len(args) > 2 else {}))
        elif op in ("add_host", "mount_overlay", "with_env"):
            getattr(sb, op)(args[0], args[1])
        elif op == "mount_memory":
            sb.mount_memory(args[0])
        elif op == "add_secret":
            sb.add_secret(args[0], args[1], *args[2:])
        elif op == "add_secret_with_placeholder":
            sb.add_secret_with_placeholder(args[0], args[1], args[2], *args[3:])
        elif op == "with_network_interception":
            sb.with_network_interception(args[0] if args else None)
        elif op in ("with_env_map", "with_image_config", "with_vfs_interception"):
            getattr(sb, op)(args[0])
        elif op == "add_extra_disk":
            sb.add_extra_disk(args[0], args[1], args[2])
        else:
            raise AssertionError(f"vector op {op!r} has no Sandbox method mapping")
    return sb, launch


def normalise(params: dict[str, Any]) -> dict[str, Any]:
    """`network.allowed_hosts` may be null or [] when empty."""
    net = params.get("network")
    if isinstance(net, dict) and net.get("allowed_hosts") is None and "allowed_hosts" in net:
        net["allowed_hosts"] = []
    return params


@pytest.fixture(autouse=True)
def _many_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Some success cases (cpus 2.5) assume more CPUs than a 2-core CI machine
    has; the core checks against $MATCHLOCK_HOST_CPUS when set (as the C
    vector test does).  cpu_more_than_host (100000) still fails."""
    if (os.cpu_count() or 1) < 64:
        monkeypatch.setenv("MATCHLOCK_HOST_CPUS", "64")


@pytest.mark.parametrize("case", CREATE, ids=[c["name"] for c in CREATE])
def test_create_vector(case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(ml.MatchlockError) as ei:
            sb, launch = apply_ops(case["ops"])
            sb.params(launch)
        assert ei.value.upstream_name == case["error"], str(ei.value)
        assert isinstance(ei.value, ml.ValidationError)
        assert str(ei.value)  # says what went wrong
        return
    sb, launch = apply_ops(case["ops"])
    assert normalise(sb.params(launch)) == normalise(case["create_params"])


@pytest.mark.parametrize("case", [c for c in CREATE if "create_params" in c],
                         ids=[c["name"] for c in CREATE if "create_params" in c])
def test_create_vector_roundtrips_through_create_options(case: dict[str, Any]) -> None:
    """options() records what the builder got; a builder made from it renders the same."""
    sb, launch = apply_ops(case["ops"])
    again = ml.Sandbox.from_options(sb.options())
    assert normalise(again.params(launch)) == normalise(sb.params(launch))


def _cstrs(items: list[str]) -> tuple[list[Any], Any]:
    keep = [ffi.new("char[]", s.encode()) for s in items]
    return keep, (ffi.new("const char *[]", keep) if keep else ffi.NULL)


@pytest.mark.parametrize("case", PORT_FORWARD, ids=[json.dumps(c["specs"]) for c in PORT_FORWARD])
def test_port_forward_vector(case: dict[str, Any]) -> None:
    keep, arr = _cstrs(case["specs"])
    pj = ffi.new("char **")
    pl = ffi.new("size_t *")
    rc = lib.mlk_port_forward_parse(arr, len(keep), pj, pl)
    if "error" in case:
        assert rc != 0
        assert error_from_status(rc).upstream_name == case["error"]
        assert isinstance(error_from_status(rc), ml.PortForwardParseError)
        return
    assert rc == 0
    try:
        assert json.loads(ffi.string(pj[0], pl[0])) == case["forwards"]
    finally:
        lib.mlk_free(pj[0])


@pytest.mark.parametrize("case", ALLOW_LIST, ids=[json.dumps(c["hosts"]) for c in ALLOW_LIST])
def test_allow_list_vector(case: dict[str, Any]) -> None:
    keep, arr = _cstrs(case["hosts"])
    pm = ffi.new("char **")
    pl = ffi.new("size_t *")
    rc = lib.mlk_allow_list_normalize(arr, len(keep), pm, pl)
    if "error" in case:
        assert rc != 0
        err = error_from_status(rc)
        assert err.upstream_name == case["error"]
        assert isinstance(err, ml.AllowListHostsError)
        return
    assert rc == 0
    try:
        assert unpackb(ffi.buffer(pm[0], pl[0])[:]) == case["wire"]
    finally:
        lib.mlk_free(pm[0])


@pytest.mark.parametrize("case", [c for c in ALLOW_LIST if "error" in c], ids=lambda c: json.dumps(c["hosts"]))
def test_allow_list_errors_through_client(client: ml.Client, case: dict[str, Any]) -> None:
    with pytest.raises(ml.AllowListHostsError) as ei:
        client.allow_list_add(*case["hosts"])
    assert ei.value.upstream_name == case["error"]


@pytest.mark.parametrize("case", [c for c in PORT_FORWARD if "error" in c], ids=lambda c: json.dumps(c["specs"]))
def test_port_forward_errors_through_client(client: ml.Client, case: dict[str, Any]) -> None:
    with pytest.raises(ml.PortForwardParseError) as ei:
        client.port_forward(*case["specs"])
    assert ei.value.upstream_name == case["error"]


HOOK_ANSWERS = load("hook_answers.jsonl")
_HOOK_KINDS = {"network": lib.MLK_HOOK_NETWORK, "action": lib.MLK_HOOK_VFS_ACTION, "mutate": lib.MLK_HOOK_VFS_MUTATE}


@pytest.mark.parametrize("case", HOOK_ANSWERS, ids=lambda c: c["name"])
def test_hook_answer_vector(case: dict[str, Any]) -> None:
    """The hook-answer contract, as Python's hooks encode an answer: the same
    code and message as in C, Node and Lua (tests/vectors/hook_answers.jsonl)."""
    from matchlock_native import _hooks
    from matchlock_native._msgpack import packb

    kind = _HOOK_KINDS[case["kind"]]
    mp = packb(_hooks._plain(case["answer"]))
    pm = ffi.new("char **")
    rc = lib.mlk_hook_answer_check(kind, mp, len(mp), pm)
    msg = ffi.string(pm[0]).decode() if pm[0] else None
    lib.mlk_free(pm[0])
    if "error" in case:
        assert ffi.string(lib.mlk_errname(rc)).decode() == case["error"]
        assert msg == case["message"]
        if kind == lib.MLK_HOOK_NETWORK and isinstance(case["answer"], dict):
            with pytest.raises(ValueError) as ei:
                _hooks.network_reply(case["answer"])
            assert str(ei.value) == case["message"]
    else:
        assert (rc, msg) == (0, None)


INTERCEPTION = load("interception.jsonl")


def _with_functions(config: Any) -> Any:
    """The vector's config with a function for every callback key set to true."""
    rules = []
    for r in config.get("rules", []):
        if isinstance(r, dict):
            r = {k: (lambda *a: None) if v is True and k.endswith("hook") else v for k, v in r.items()}
        rules.append(r)
    return {**config, "rules": rules} if "rules" in config else dict(config)


@pytest.mark.parametrize("case", INTERCEPTION, ids=lambda c: c["name"])
def test_interception_vector(case: dict[str, Any]) -> None:
    """Interception configs through the Python builder (functions for the
    callbacks): the same wire, or code and message, as in C, Node and Lua
    (tests/vectors/interception.jsonl)."""
    sb = ml.Sandbox("alpine:latest")
    config = _with_functions(case["config"])
    set_ = sb.with_network_interception if case["which"] == "network" else sb.with_vfs_interception
    if "error" in case:
        with pytest.raises(ml.MatchlockError) as ei:
            set_(config)
        assert ffi.string(lib.mlk_errname(ei.value.status)).decode() == case["error"]
        assert str(ei.value) == case["message"]
    else:
        set_(config)
        section = sb.params().get("network" if case["which"] == "network" else "vfs", {})
        assert section.get("interception") == case["wire"]


def test_vfs_op_constants_come_from_the_core() -> None:
    """VFS_HOOK_OP_* hold the core's op names (mlk_vfs_op_name), each under
    its own name, and the VFSHookOp literal type lists the same ops."""
    from typing import get_args

    from matchlock_native import types

    core = []
    while (p := lib.mlk_vfs_op_name(len(core))) != ffi.NULL:
        core.append(ffi.string(p).decode())
    assert len(core) == 16
    assert {n: getattr(types, n) for n in dir(types) if n.startswith("VFS_HOOK_OP_")} == {
        "VFS_HOOK_OP_" + op.upper(): op for op in core}
    assert list(get_args(types.VFSHookOp)) == core

ERRORS = load("errors.jsonl")


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c.get("errname") or f"rpc{c['rpc_code']}")
def test_error_contract(case: dict[str, Any]) -> None:
    """errors.jsonl: the class and hint the core gives a code are the
    exception Python raises for it (the same file runs in C, Node, Lua)."""
    if "errname" in case:
        code = getattr(lib, case["errname"])
        assert code == case["code"]
        e = error_from_status(code, "boom", -32000 if code == lib.MLK_ERPC else 0)
    else:
        e = error_from_status(lib.MLK_ERPC, "boom", case["rpc_code"])
        assert e.rpc_code == case["rpc_code"]
    assert type(e).__name__ == case["class"]
    assert ffi.string(lib.mlk_error_class(case.get("code", case.get("rpc_code")))).decode() == case["class"]
    if case["hint"]:
        assert str(e).endswith(f"({case['hint']})"), str(e)
    else:
        assert str(e).endswith("boom"), str(e)
