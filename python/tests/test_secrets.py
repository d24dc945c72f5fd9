"""A secret's value never appears in a message, a repr or an exception's
text, whichever path it takes (issue 23, item 2)."""

from __future__ import annotations

import traceback
from typing import Any

import pytest

import matchlock_native as ml
from matchlock_native import builder as builder_mod
from matchlock_native._native import lib
from matchlock_native.types import CreateOptions, Secret

MARK = "sk-live-7Qz9XwVb3MarkOfTheSecret"


def shows_nothing(*texts: Any) -> None:
    for t in texts:
        assert "sk-live" not in str(t), t
        assert "MarkOfTheSecret" not in str(t), t


def all_texts(e: BaseException) -> list[str]:
    return [str(e), repr(e), repr(e.args), getattr(e, "message", ""),
            "".join(traceback.format_exception(type(e), e, e.__traceback__))]


@pytest.mark.parametrize("value,offset", [
    (MARK + "\0tail", len(MARK)),
    ("\0" + MARK, 0),
    (MARK * 30000 + "\0", len(MARK) * 30000),  # too long to read, and a NUL at the end
])
def test_nul_in_a_secret_value_names_the_offset_not_the_value(value: str, offset: int) -> None:
    sb = ml.Sandbox("alpine:latest")
    with pytest.raises(ml.ValidationError) as ei:
        sb.add_secret("API_KEY", value, "api.example.com")
    for t in all_texts(ei.value):
        shows_nothing(t)
    msg = str(ei.value)
    assert "secret value" in msg
    assert f"byte {offset} of {len(value.encode())}" in msg
    assert ei.value.status == lib.MLK_EINVAL


def test_nul_in_a_secret_through_from_options_and_placeholder() -> None:
    opts = CreateOptions(image="alpine:latest", secrets=[Secret("API_KEY", MARK + "\0", ["api.example.com"])])
    with pytest.raises(ml.ValidationError) as ei:
        ml.Sandbox.from_options(opts)
    for t in all_texts(ei.value):
        shows_nothing(t)
    with pytest.raises(ml.ValidationError) as ei:
        ml.Sandbox("alpine:latest").add_secret_with_placeholder("K", MARK + "\0", "PH", "h")
    for t in all_texts(ei.value):
        shows_nothing(t)


def test_reprs_redact_the_value() -> None:
    s = Secret("API_KEY", MARK, ["api.example.com"], placeholder="PH")
    shows_nothing(repr(s), str(s), f"{s}", f"{s!r}")
    assert "API_KEY" in repr(s) and f"{len(MARK)} characters" in repr(s)
    assert s.value == MARK  # the value itself is still there for the caller
    sb = ml.Sandbox("alpine:latest").add_secret("API_KEY", MARK, "api.example.com")
    shows_nothing(repr(sb), str(sb), repr(sb.options()), str(sb.options()), repr(sb.options().secrets))
    assert sb.options().secrets[0].value == MARK


def test_setter_error_is_read_without_rendering_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The builder asks the core for its first error (mlk_sandbox_error);
    it never renders the create params (secrets included) to read it."""
    rendered: list[int] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            if name == "mlk_sandbox_params_json":
                rendered.append(1)
            return getattr(lib, name)

    sb = ml.Sandbox("alpine:latest").add_secret("API_KEY", MARK, "api.example.com")
    monkeypatch.setattr(builder_mod, "lib", Spy())
    with pytest.raises(ml.MatchlockError) as ei:
        sb.add_secret("OTHER", MARK, "")  # an empty host: the core refuses it
    assert rendered == []
    assert "OTHER" in str(ei.value)
    for t in all_texts(ei.value):
        shows_nothing(t)


def test_validation_errors_at_create_never_show_the_value() -> None:
    sb = ml.Sandbox("alpine:latest").add_secret("API_KEY", MARK + '"\\\n', "api.example.com").with_no_network()
    with pytest.raises(ml.MatchlockError) as ei:
        sb.params_json()
    for t in all_texts(ei.value):
        shows_nothing(t)
    sb = ml.Sandbox("alpine:latest").add_secret("API_KEY", MARK * 1000, "api.example.com").add_host("db", "nope")
    with pytest.raises(ml.MatchlockError) as ei:
        sb.params_json()
    for t in all_texts(ei.value):
        shows_nothing(t)


def test_nul_elsewhere_never_echoes_the_argument() -> None:
    with pytest.raises(ml.ValidationError) as ei:
        ml.Sandbox("alpine:latest").with_env("TOKEN", MARK + "\0")
    for t in all_texts(ei.value):
        shows_nothing(t)
    assert "env value" in str(ei.value)


@pytest.mark.parametrize("call,what", [
    (lambda v: ml.Sandbox("a").add_secret("API_KEY", "value", "api.example.com", v), "secret host[1]"),
    (lambda v: ml.Sandbox("a").with_dns_servers("1.1.1.1", v), "dns server[1]"),
    (lambda v: ml.Sandbox("a").with_entrypoint("sh", "-c", v), "entrypoint[2]"),
    (lambda v: ml.Sandbox("a").with_port_forward_addresses(v), "bind address[0]"),
    (lambda v: ml.Client(ml.Config(launcher=["ssh", v])).start(), "Config.launcher[1]"),
])
def test_nul_inside_a_string_list_is_refused_by_the_core_without_the_value(call: Any, what: str) -> None:
    """A list element with a NUL would end at it as a C string (for a
    secret's hosts: another host than the one meant); the core refuses it
    and names the element and the offset, never the value."""
    value = MARK + "\0.evil.example"
    with pytest.raises(ml.ValidationError) as ei:
        call(value)
    for t in all_texts(ei.value):
        shows_nothing(t)
    msg = str(ei.value)
    assert f"{what} contains a NUL character at byte {len(MARK)} of {len(value)}" in msg, msg
    assert ei.value.status == lib.MLK_EINVAL
