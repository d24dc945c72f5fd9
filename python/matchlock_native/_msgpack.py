"""A small msgpack codec for the values that cross the libmatchlock ABI.

Structured values (maps given to the builder, file listings, port-forward
bindings, allow-list updates, volumes, events) travel as msgpack documents.
They are small, so a pure-Python codec is enough and spares a dependency.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["packb", "unpackb"]


def _pack(o: Any, out: bytearray) -> None:
    if o is None:
        out.append(0xC0)
    elif o is True:
        out.append(0xC3)
    elif o is False:
        out.append(0xC2)
    elif isinstance(o, int):
        if 0 <= o < 0x80:
            out.append(o)
        elif -32 <= o < 0:
            out.append(o & 0xFF)
        elif 0 <= o <= 0xFFFFFFFFFFFFFFFF:
            if o <= 0xFF:
                out += b"\xcc" + struct.pack(">B", o)
            elif o <= 0xFFFF:
                out += b"\xcd" + struct.pack(">H", o)
            elif o <= 0xFFFFFFFF:
                out += b"\xce" + struct.pack(">I", o)
            else:
                out += b"\xcf" + struct.pack(">Q", o)
        elif -(1 << 63) <= o < 0:
            out += b"\xd3" + struct.pack(">q", o)
        else:
            raise OverflowError(f"integer {o} does not fit in 64 bits")
    elif isinstance(o, float):
        out += b"\xcb" + struct.pack(">d", o)
    elif isinstance(o, str):
        b = o.encode("utf-8")
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += b"\xd9" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += b
    elif isinstance(o, (bytes, bytearray, memoryview)):
        b = bytes(o)
        n = len(b)
        if n <= 0xFF:
            out += b"\xc4" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            out += b"\xc5" + struct.pack(">H", n)
        else:
            out += b"\xc6" + struct.pack(">I", n)
        out += b
    elif isinstance(o, (list, tuple)):
        n = len(o)
        if n < 16:
            out.append(0x90 | n)
        elif n <= 0xFFFF:
            out += b"\xdc" + struct.pack(">H", n)
        else:
            out += b"\xdd" + struct.pack(">I", n)
        for x in o:
            _pack(x, out)
    elif isinstance(o, dict):
        n = len(o)
        if n < 16:
            out.append(0x80 | n)
        elif n <= 0xFFFF:
            out += b"\xde" + struct.pack(">H", n)
        else:
            out += b"\xdf" + struct.pack(">I", n)
        for k, v in o.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise TypeError(f"cannot encode a {type(o).__name__} as msgpack (use str, int, float, bool, "
                        "bytes, list, dict or None)")


def packb(o: Any) -> bytes:
    """Encode o as one msgpack document."""
    out = bytearray()
    _pack(o, out)
    return bytes(out)


class _Reader:
    __slots__ = ("b", "i")

    def __init__(self, b: bytes) -> None:
        self.b = b
        self.i = 0

    def take(self, n: int) -> bytes:
        j = self.i + n
        if j > len(self.b):
            raise ValueError("truncated msgpack document")
        s = self.b[self.i:j]
        self.i = j
        return s

    def unpack(self, fmt: str, n: int) -> Any:
        return struct.unpack(fmt, self.take(n))[0]

    def obj(self) -> Any:
        t = self.take(1)[0]
        if t < 0x80:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0xA0 <= t <= 0xBF:
            return self.take(t & 0x1F).decode("utf-8", "replace")
        if 0x90 <= t <= 0x9F:
            return [self.obj() for _ in range(t & 0x0F)]
        if 0x80 <= t <= 0x8F:
            return self.map(t & 0x0F)
        if t == 0xC0:
            return None
        if t == 0xC2:
            return False
        if t == 0xC3:
            return True
        if t in (0xC4, 0xC5, 0xC6):
            n = self.unpack(">" + "BHI"[t - 0xC4], 1 << (t - 0xC4))
            return self.take(n)
        if t == 0xCA:
            return self.unpack(">f", 4)
        if t == 0xCB:
            return self.unpack(">d", 8)
        if 0xCC <= t <= 0xCF:
            k = t - 0xCC
            return self.unpack(">" + "BHIQ"[k], 1 << k)
        if 0xD0 <= t <= 0xD3:
            k = t - 0xD0
            return self.unpack(">" + "bhiq"[k], 1 << k)
        if t in (0xD9, 0xDA, 0xDB):
            k = t - 0xD9
            n = self.unpack(">" + "BHI"[k], 1 << k)
            return self.take(n).decode("utf-8", "replace")
        if t in (0xDC, 0xDD):
            n = self.unpack(">H" if t == 0xDC else ">I", 2 if t == 0xDC else 4)
            return [self.obj() for _ in range(n)]
        if t in (0xDE, 0xDF):
            n = self.unpack(">H" if t == 0xDE else ">I", 2 if t == 0xDE else 4)
            return self.map(n)
        if t in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
            self.take(1 + (1 << (t - 0xD4)))
            return None
        if t in (0xC7, 0xC8, 0xC9):
            k = t - 0xC7
            n = self.unpack(">" + "BHI"[k], 1 << k)
            self.take(1 + n)
            return None
        raise ValueError(f"unsupported msgpack type byte 0x{t:02x}")

    def map(self, n: int) -> dict[Any, Any]:
        d: dict[Any, Any] = {}
        for _ in range(n):
            k = self.obj()
            d[k] = self.obj()
        return d


def unpackb(b: bytes) -> Any:
    """Decode one msgpack document."""
    r = _Reader(b)
    o = r.obj()
    return o
