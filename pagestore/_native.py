"""The one module that owns the cffi ``lib``.

Everything above this module sees Python objects and exceptions, never cdata.
Each wrapper is: validate -> call -> check the status code -> return.
"""
from __future__ import annotations

import threading
from typing import Any, NoReturn, Optional, Tuple

from .errors import CorruptionError, NotFoundError, PageFullError, PageStoreError

try:
    from ._native_cffi import ffi as ffi, lib as lib  # Any: no stubs (pyproject's [tool.mypy]); re-exported
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "pagestore's C core is not built: install the package with `pip install .` "
        "(or `pip install -e .` for development)"
    ) from exc

#: The ABI version this Python code was written against.
EXPECTED_NATIVE_VERSION = 7

if lib.ps_native_version() != EXPECTED_NATIVE_VERSION:  # pragma: no cover
    raise ImportError(
        f"pagestore C core version {lib.ps_native_version()} does not match the Python "
        f"package (expects {EXPECTED_NATIVE_VERSION}); rebuild with `pip install .`"
    )

OK = lib.PS_OK
EFULL = lib.PS_EFULL
ENOSLOT = lib.PS_ENOSLOT
EINVAL = lib.PS_EINVAL
CORRUPTION_CODES = frozenset(
    (
        lib.PS_ECORRUPT_HEADER,
        lib.PS_ECORRUPT_SLOT,
        lib.PS_ECORRUPT_OVERLAP,
        lib.PS_ECORRUPT_SPACE,
        lib.PS_ECHECKSUM,
        lib.PS_EPGNO,
        lib.PS_ENODE_TYPE,
        lib.PS_ECORRUPT_NODE,
        lib.PS_ENODE_ORDER,
        lib.PS_EOUTSIDE,
        lib.PS_ETYPE,
        lib.PS_ECORRUPT_DELTA,
    )
)


def strerror(code: int) -> str:
    """strerror returns the C core's one-line description of a status code."""
    text: str = ffi.string(lib.ps_strerror(code)).decode()
    return text


def raise_for(code: int, pgno: Optional[int] = None, what: str = "") -> NoReturn:
    """raise_for maps a non-OK C status code to its exception (the one table)."""
    msg = strerror(code) + (f": {what}" if what else "")
    if code == EFULL:
        raise PageFullError(msg)
    if code == ENOSLOT:
        raise NotFoundError(msg)
    if code in CORRUPTION_CODES:
        raise CorruptionError(pgno, msg)
    if code == EINVAL:
        raise ValueError(msg)
    raise PageStoreError(msg)


def crc32c(data: "bytes | bytearray | memoryview", crc: int = 0) -> int:
    """crc32c returns the CRC32C of a bytes-like object (continuing from ``crc``)."""
    buf = ffi.from_buffer(data)
    out: int = lib.ps_crc32c(crc, buf, len(buf))
    return out


def delta_make(old: "bytes | bytearray | memoryview", new: "bytes | bytearray | memoryview", cap: int) -> Optional[bytes]:
    """delta_make returns the runs in which page image ``new`` differs from ``old`` (native/delta.c
    has the format), or None when they would take more than ``cap`` bytes."""
    page_size = len(new)
    if len(old) != page_size:
        raise ValueError(f"delta of images of {len(old)} and {page_size} bytes")
    out = getattr(_tls, "delta", None)
    if out is None or len(out) < cap:  # per thread, as scratch(): allocating per call cost a third
        _tls.delta = out = ffi.new("uint8_t[]", max(cap, 32768))
    n = scratch()[0]
    code = lib.ps_delta_make(ffi.from_buffer(old), ffi.from_buffer(new), page_size, out, cap, n)
    if code == EFULL:
        return None
    if code != OK:
        raise_for(code)
    delta: bytes = ffi.buffer(out, n[0])[:]
    return delta


def delta_apply(page: bytearray, delta: "bytes | bytearray | memoryview", pgno: Optional[int] = None) -> None:
    """delta_apply writes a delta's runs into ``page``; a delta that does not fit the page
    raises CorruptionError naming ``pgno`` and leaves the page as it was."""
    code = lib.ps_delta_apply(ffi.from_buffer(page), len(page), ffi.from_buffer(delta), len(delta))
    if code != OK:
        raise_for(code, pgno)


_tls = threading.local()


def scratch() -> Tuple[Any, Any, Any]:
    """scratch returns this thread's out-parameters for the C calls: (uint32_t[3], uint8_t *, uint16_t *).

    For the two Python faces of the C core, page.py and nodes.py, which
    read them back at once. Allocating them per call (ffi.new) was a third
    of a record read's cost. Per thread, because cffi releases the GIL
    during the C call.
    """
    try:
        s: Tuple[Any, Any, Any] = _tls.s
        return s
    except AttributeError:
        _tls.s = s = (ffi.new("uint32_t[3]"), ffi.new("uint8_t *"), ffi.new("uint16_t *"))
        return s


class MapHandle:
    """MapHandle is the C description (``ps_map_t``) of a mapped data file: the one the
    ``ps_map_*`` calls take, so that a page is passed to C as (map, page number).

    The pager owns one for its life and points it at each new map; callers
    (nodes.py, page.py) hand ``struct`` to C unchanged and never look inside.
    Kept here so that the pager, like every module above this one, holds no
    cdata of its own making.
    """

    __slots__ = ("struct", "_bufs")

    def __init__(self, page_size: int) -> None:
        self.struct: Any = ffi.new("ps_map_t *")
        self.struct.page_size = page_size
        self._bufs: Tuple[Any, ...] = ()

    def attach(self, data: Any, verified: bytearray, page_size: int) -> None:
        """attach points the description at ``data`` (the map) and ``verified`` (its bitset, a bit a page)."""
        self.detach()
        self._bufs = (ffi.from_buffer("uint8_t[]", data), ffi.from_buffer("uint8_t[]", verified))
        m = self.struct
        m.base, m.verified = self._bufs
        m.len = len(data)
        m.page_size = page_size
        m.verified_len = len(verified)

    def detach(self) -> None:
        """detach empties the description and releases the buffers C saw: call it before the map closes.

        Raises:
            BufferError: something still holds a view into the map.
        """
        m = self.struct
        m.base = ffi.NULL
        m.len = 0
        m.verified = ffi.NULL
        m.verified_len = 0
        for buf in self._bufs:
            ffi.release(buf)
        self._bufs = ()

    def describes(self, length: int, page_size: int, verified_len: int) -> bool:
        """describes: whether the description matches a map of ``length`` bytes (0: none)."""
        m = self.struct
        if length == 0:
            return bool(m.len == 0 and m.base == ffi.NULL)
        return bool(m.len == length and m.page_size == page_size and m.verified_len == verified_len)
