"""Unit tests that need no server: errors, sinks, msgpack, conversions, ABI."""

from __future__ import annotations

import io
import math

import pytest

import matchlock_native as ml
from matchlock_native import _core
from matchlock_native._msgpack import packb, unpackb
from matchlock_native._native import ffi, lib
from matchlock_native.errors import error_from_status


def test_abi_version_is_compatible() -> None:
    assert ml.CORE_VERSION // 10000 == ml.HEADER_VERSION // 10000
    assert ml.CORE_VERSION >= ml.HEADER_VERSION
    assert ml.CORE_VERSION_STR.count(".") == 2


def test_abi_mismatch_raises_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeLib:
        def mlk_py_header_version(self) -> int:
            return 10000

        def mlk_version(self) -> int:
            return 20000

    monkeypatch.setattr(_core, "lib", FakeLib())
    with pytest.raises(ImportError, match="Rebuild"):
        _core._check_abi()


def test_every_status_maps_to_a_class_with_names() -> None:
    for code in range(-1, -40, -1):
        name = lib.mlk_errname(code)
        if name == ffi.NULL:
            continue
        e = error_from_status(code, "msg", -32000 if code == lib.MLK_ERPC else 0)
        assert isinstance(e, ml.MatchlockError)
        if code != lib.MLK_ERPC:
            assert e.status == code
            assert e.errname == ffi.string(name).decode()
    assert isinstance(error_from_status(lib.MLK_ETIMEDOUT), TimeoutError)
    assert isinstance(error_from_status(lib.MLK_EINVAL), ValueError)
    assert error_from_status(lib.MLK_EIMAGE_REQUIRED).upstream_name == "ErrImageRequired"
    r = error_from_status(lib.MLK_ERPC, "exec: boom (code -32001)", -32001)
    assert isinstance(r, ml.RPCError) and r.code == -32001 and r.message == "exec: boom"
    assert r.is_exec_error() and not r.is_vm_error() and str(r) == "[-32001] exec: boom"
    # upstream constructor signature
    assert ml.RPCError(-32000, "vm").is_vm_error()
    # the hint follows the cause the core gives, not the call: a spawn that
    # ran out of descriptors is not told to check the binary (issue 25)
    emfile = error_from_status(lib.MLK_ESPAWN, "cannot create the child's pipes: Too many open files "
                               "(the process is out of file descriptors)")
    assert isinstance(emfile, ml.SpawnError) and "binary" not in str(emfile), str(emfile)


def test_msgpack_roundtrip() -> None:
    v = {"a": [1, -1, -33, 200, 70000, 2**40, -(2**40), 1.5, True, False, None, "x" * 40, b"\x00\xff"],
         "nested": {"k": {"z": []}}, "big": list(range(20)), "s": "é" * 300}
    assert unpackb(packb(v)) == v
    with pytest.raises(TypeError):
        packb(object())


def test_text_sink_joins_split_characters() -> None:
    out = io.StringIO()
    s = _core._Sink(out)
    for b in (b"\xe2", b"\x82", b"\xac", b"ok", b"\xf0\x9f"):
        s.write(b)
    s.close()
    assert out.getvalue() == "€ok\ufffd"


def test_sink_kinds() -> None:
    got: list[bytes] = []
    _core._Sink(got.append).write(b"c")
    assert got == [b"c"]
    bio = io.BytesIO()
    _core._Sink(bio).write(b"b")
    assert bio.getvalue() == b"b"

    class Unknown:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, s: str) -> None:
            if not isinstance(s, str):
                raise TypeError("text only")
            self.parts.append(s)

    u = Unknown()
    _core._Sink(u).write(b"t")
    assert u.parts == ["t"]
    with pytest.raises(TypeError):
        _core._Sink(3)


def test_to_ms() -> None:
    assert _core.to_ms(None) == 0
    assert _core.to_ms(1.5) == 1500
    assert _core.to_ms(0.0001) == 1
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(ml.ValidationError):
            _core.to_ms(bad)
    with pytest.raises(TypeError):
        _core.to_ms(True)  # type: ignore[arg-type]


def test_strings_with_nul_are_rejected() -> None:
    with pytest.raises(ml.ValidationError):
        ml.Sandbox("alpine\x00latest")


def test_options_mirror_the_builder() -> None:
    sb = (ml.Sandbox("img").with_cpus(2).allow_host("a").add_host("h", "10.0.0.1").with_dns_servers("1.1.1.1")
          .with_dns_servers("8.8.8.8").with_port_forward(8080, 80).with_user("u").with_entrypoint("sh"))
    o = sb.options()
    assert o.cpus == 2 and o.allowed_hosts == ["a"] and o.add_hosts == [ml.HostIPMapping("h", "10.0.0.1")]
    assert o.dns_servers == ["1.1.1.1", "8.8.8.8"]
    assert o.port_forwards == [ml.PortForward(8080, 80)]
    assert o.image_config == ml.ImageConfig(user="u", entrypoint=["sh"])
    assert sb.params()["network"]["dns_servers"] == ["1.1.1.1", "8.8.8.8"]


def test_dataclass_rules_render() -> None:
    p = ml.Sandbox("img").with_network_interception(ml.NetworkInterceptionConfig(rules=[
        ml.NetworkHookRule(name="b", hosts=["x.com"], action="block"),
        ml.NetworkHookRule(name="m", phase="after", body_replacements=[ml.NetworkBodyTransform("a", "b")]),
    ])).params()
    rules = p["network"]["interception"]["rules"]
    assert rules[0]["action"] == "block" and rules[1]["body_replacements"] == [{"find": "a", "replace": "b"}]
    p = (ml.Sandbox("img").with_workspace("/w").mount_memory("/w")
         .with_vfs_interception(ml.VFSInterceptionConfig(emit_events=True, rules=[
             ml.VFSHookRule(name="n", phase="before", ops=["create"], path="/w/x", action="block")])).params())
    assert p["vfs"]["interception"]["rules"][0]["action"] == "block"
    with pytest.raises(ml.InvalidVFSHookError, match="phase=after"):
        ml.Sandbox("img").with_vfs_interception(ml.VFSInterceptionConfig(rules=[ml.VFSHookRule(hook=print)]))


def test_mount_owner_overrides() -> None:
    """As the official package: keyword arguments, MountConfig fields, sent
    only when set, range-checked (ValueError) at construction."""
    sb = ml.Sandbox("img").mount_host_dir("/data", "/host/data", owner_uid=1000, owner_gid=2000)
    m = sb.options().mounts["/data"]
    assert (m.type, m.host_path, m.owner_uid, m.owner_gid) == ("host_fs", "/host/data", 1000, 2000)
    assert sb.params()["vfs"]["mounts"]["/data"] == {"type": "host_fs", "host_path": "/host/data",
                                                      "owner_uid": 1000, "owner_gid": 2000}
    ro = ml.Sandbox("img").mount_host_dir_readonly("/cfg", "/host/cfg", owner_gid=0)
    assert ro.params()["vfs"]["mounts"]["/cfg"] == {"type": "host_fs", "host_path": "/host/cfg", "readonly": True,
                                                    "owner_gid": 0}
    plain = ml.Sandbox("img").mount_host_dir("/data", "/host/data").options().mounts["/data"]
    assert plain.owner_uid is None and plain.owner_gid is None
    assert ml.MountConfig(type="host_fs", host_path="/d", owner_uid=1, owner_gid=2).to_dict() == {
        "type": "host_fs", "host_path": "/d", "owner_uid": 1, "owner_gid": 2}
    assert "owner_uid" not in ml.MountConfig(type="host_fs", host_path="/d").to_dict()
    for kw, bad in (("owner_uid", -1), ("owner_uid", 2**32), ("owner_gid", -1), ("owner_gid", 4294967296),
                    ("owner_uid", 2**80)):
        with pytest.raises(ValueError, match=rf"^{kw} must be in \[0, 4294967295\], got {bad}$") as ei:
            ml.MountConfig(type="host_fs", host_path="/data", **{kw: bad})
        assert isinstance(ei.value, ml.InvalidMountOwnerError)
        assert ei.value.upstream_name == "InvalidMountOwner"
        with pytest.raises(ml.InvalidMountOwnerError, match=kw):
            ml.Sandbox("img").mount_host_dir("/data", "/host/data", **{kw: bad})
    with pytest.raises(TypeError):
        ml.MountConfig(type="host_fs", host_path="/d", owner_uid="1")  # type: ignore[arg-type]


def test_client_not_started_and_types() -> None:
    c = ml.Client(ml.Config(binary_path="/bin/true"))
    with pytest.raises(TypeError):
        c.create(42)  # type: ignore[arg-type]
    c.close()
    with pytest.raises(ml.ClosedError):
        c.exec("true")
