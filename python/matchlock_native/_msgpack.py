"""msgpack for the values that cross the libmatchlock ABI (maps given to
the builder, file listings, port-forward bindings, allow-list updates,
volumes, events, hook requests and answers): the `msgpack` package.  It
replaced a hand-written pure-Python codec that was 4-9x slower on these
documents (docs/benchmarks.md, "msgpack").

Shapes: str <-> str (invalid UTF-8 is replaced, never an error), bytes <->
bin, list/tuple -> array, dict <-> map (any key type), int, float, bool,
None; extension types decode as None.
"""

from __future__ import annotations

from typing import Any, NoReturn

import msgpack

__all__ = ["packb", "unpackb"]


def _unsupported(o: Any) -> NoReturn:
    raise TypeError(f"cannot encode a {type(o).__name__} as msgpack (use str, int, float, bool, "
                    "bytes, list, dict or None)")


def packb(o: Any) -> bytes:
    """Encode o as one msgpack document."""
    return msgpack.packb(o, use_bin_type=True, default=_unsupported)  # type: ignore[no-any-return]


def unpackb(b: bytes) -> Any:
    """Decode one msgpack document (bytes after it are ignored)."""
    u = msgpack.Unpacker(raw=False, unicode_errors="replace", strict_map_key=False,
                         ext_hook=lambda code, data: None, max_buffer_size=max(len(b), 1 << 20))
    u.feed(b)
    try:
        return u.unpack()
    except msgpack.OutOfData:
        raise ValueError("truncated msgpack document") from None
