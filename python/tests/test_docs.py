"""Every public callable of the package has a docstring that help() shows,
and the official package's import paths for the exceptions hold."""

from __future__ import annotations

import inspect
import pydoc

import matchlock_native as ml
import matchlock_native.types as mtypes


def _public_callables() -> list[tuple[str, object]]:
    """(qualified name, object) for every public function, class, method
    and property of the names the package exports."""
    out: list[tuple[str, object]] = []
    for name in ml.__all__:
        obj = getattr(ml, name)
        if inspect.isclass(obj):
            out.append((name, obj))
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    out.append((f"{name}.{attr}", member))
        elif inspect.isfunction(obj):
            out.append((name, obj))
    return out


def test_every_public_callable_has_a_docstring() -> None:
    missing = []
    for qual, obj in _public_callables():
        doc = obj.__doc__ if not isinstance(obj, property) else (obj.fget.__doc__ if obj.fget else None)
        if not doc or not doc.strip():
            missing.append(qual)
    assert not missing, f"{len(missing)} public callables have no docstring: {', '.join(sorted(missing))}"


def test_help_shows_the_docstrings() -> None:
    text = pydoc.render_doc(ml.AsyncClient, renderer=pydoc.plaintext)
    assert inspect.getdoc(ml.AsyncClient.exec_pipe).splitlines()[0] in text
    text = pydoc.render_doc(ml.Sandbox.mount_host_dir, renderer=pydoc.plaintext)
    assert "owner_uid" in text


def test_exceptions_importable_from_types() -> None:
    assert mtypes.MatchlockError is ml.MatchlockError
    assert mtypes.RPCError is ml.RPCError
    assert issubclass(mtypes.RPCError, mtypes.MatchlockError)


def test_user_is_positional_where_the_official_signatures_take_it() -> None:
    for cls in (ml.Client, ml.AsyncClient):
        for meth, index in (("exec_pipe", 7), ("exec_interactive", 9)):
            params = list(inspect.signature(getattr(cls, meth)).parameters.values())
            assert params[index].name == "user", (cls, meth, params)
            assert params[index].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
