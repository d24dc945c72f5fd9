# Type stub for the cffi extension built from build_ffi.py (the C ABI of
# abi/include/matchlock.h).
from typing import Any, Callable, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

class _FFI:
    NULL: Any
    def def_extern(self, name: str = ..., onerror: Callable[..., Any] | None = ...) -> Callable[[_F], _F]: ...
    def __getattr__(self, name: str) -> Any: ...

ffi: _FFI
lib: Any
