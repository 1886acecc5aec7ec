"""The one module that owns the C bindings: the cffi ``lib``, and ``fast``.

The two Python faces of the C core, ``page.py`` and ``nodes.py``, call ``lib``
with cdata they get from here (``ffi`` buffers, ``scratch`` out-parameters);
each wrapper is: validate -> call -> check the status code -> return, and
hands Python objects and exceptions up. One piece of cdata travels further
today: the pager's map description (``MapHandle.struct``, a ``ps_map_t *``),
which ``MapHandle`` keeps (``struct``); pagemap.py holds the ``MapHandle``
whole and hands it, unopened, to the ``nodes``/``page`` map calls. The layers above ask their page source for
Python values instead: the heap and the node cache through ``Pager.fast_map``,
``map_node`` and ``map_records``; the tree through ``MapCalls`` (the pager's
``map_calls``), which binds ``fast``'s map calls to one map, so the tree reads
mapped leaves by page number and holds no cdata. ``fast`` takes and returns
Python objects only.

TWO BINDINGS OF THE SAME C. cffi builds the whole page API. The read path's
hot calls (a node search per level, a value read, a leaf's run of a scan) are
also built as ``pagestore._fastpage``, a CPython extension module of
METH_FASTCALL functions over the same page-local C (native/fastpage.c): a
cffi call pays for every argument it converts and every out-parameter read
back, which made the binding, not the Python descent, the cost of a get
(bench/binding.py measures both). ``fast`` is that module, or, where it is
absent, on PyPy, or with the environment variable ``PAGESTORE_NATIVE=cffi``,
``CffiPage``: the same functions with the same answers through cffi's lean
signatures (``ps_map_child``, ``ps_map_leaf_find``, ``ps_map_value``).
``BINDING`` says which ("fastpage" or "cffi"); ``PAGESTORE_NATIVE=fastpage``
refuses to fall back. A map handle (``map_handle``) is what ``fast``'s map
calls take for the pager's ``ps_map_t``.
"""
from __future__ import annotations

import os
import platform
import struct
import sys
import threading
from array import array
from functools import partial
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

from .errors import CorruptionError, NotFoundError, PageFullError, PageStoreError

try:
    from ._native_cffi import ffi as ffi, lib as lib  # Any: no stubs (pyproject's [tool.mypy]); re-exported
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "pagestore's C core is not built: install the package with `pip install .` "
        "(or `pip install -e .` for development)"
    ) from exc

#: The ABI version this Python code was written against.
EXPECTED_NATIVE_VERSION = 9

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
    """crc32c returns the CRC32C of a bytes-like object (continuing from ``crc``): through
    ``fast`` once it is loaded (``_fastpage``'s holds the GIL: a commit computes two or three,
    and each release through cffi let another thread of a group commit in)."""
    out: int = _crc32c(data, crc)
    return out


def _cffi_crc32c(data: "bytes | bytearray | memoryview", crc: int = 0) -> int:
    buf = ffi.from_buffer(data)
    out: int = lib.ps_crc32c(crc, buf, len(buf))
    return out


_crc32c: Callable[[Any, int], int] = _cffi_crc32c


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

    __slots__ = ("struct", "_bufs", "calls", "fast")

    def __init__(self, page_size: int) -> None:
        self.struct: Any = ffi.new("ps_map_t *")
        self.struct.page_size = page_size
        self._bufs: Tuple[Any, ...] = ()
        #: the lean calls on this map, for the layers above (they never see ``struct``)
        self.calls = MapCalls(self.struct)
        #: what ``fast``'s map calls take for this map (``map_handle``)
        self.fast: Any = map_handle(self.struct)

    def set_page_size(self, page_size: int) -> None:
        """set_page_size sets the page size the description gives C (the file's, once known)."""
        self.struct.page_size = page_size

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


# ---- the read path's hot calls: _fastpage, or the same through cffi ----

RunResult = Tuple[int, int, int, List[bytes], List[int], List[int]]
_STUB = struct.Struct("<II")  # an overflow stub's head: the value's total length, its first overflow page


class CffiPage:
    """CffiPage: ``pagestore._fastpage``'s functions through cffi, the fallback binding.

    Same arguments, answers and exceptions as native/fastpage.c documents;
    a map handle is the pager's ``ps_map_t *`` itself. The out-parameters
    are per thread (cffi releases the GIL during a C call).
    """

    @property
    def _cells(self) -> Tuple[Any, Any, Any, Any, Any, Any, Any]:
        try:
            c: Tuple[Any, Any, Any, Any, Any, Any, Any] = _tls.cells
            return c
        except AttributeError:
            n = MAX_SLOTS
            _tls.cells = c = (ffi.new("uint32_t[4]"), ffi.new("uint8_t *"), ffi.new("uint16_t *"),
                              ffi.new("uint32_t[]", n), ffi.new("uint32_t[]", n), ffi.new("uint32_t[]", n),
                              ffi.new("uint16_t[]", n))
            return c

    # ---- the write path's: a page frame changed in place ----

    @staticmethod
    def _frame(frame: bytearray, pgno: int) -> Any:
        if type(frame) is not bytearray:
            raise TypeError(f"frame must be a bytearray, not {type(frame).__name__}")
        if not MIN_PAGE_SIZE <= len(frame) <= MAX_PAGE_SIZE:
            raise_for(EINVAL, pgno, "frame size")
        return ffi.from_buffer("uint8_t[]", frame, require_writable=True)

    @staticmethod
    def crc32c(data: "bytes | bytearray | memoryview", crc: int) -> int:
        return _cffi_crc32c(data, crc)

    def log_frames(self, frames: List[Tuple[int, Any, Any, int]], txn: int, salt: int, offset: int, crc: int,
                   commit_page_count: int, page_size: int, seal: int) -> Tuple[bytearray, int, List[int]]:
        if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise_for(EINVAL, 0, "page size")
        if seal:
            for pgno, image, _, _ in frames:
                if pgno:
                    page = self._frame(image, pgno)
                    rc = lib.ps_page_seal_many(page, page_size, 1, seal) if len(image) == page_size else EINVAL
                    if rc != OK:
                        raise_for(rc, pgno, "frame seal")
        out = bytearray()
        sizes: List[int] = []
        cap = page_size // 2
        last = len(frames) - 1
        for i, (pgno, image, before, base) in enumerate(frames):
            if len(image) != page_size:
                raise_for(EINVAL, pgno, "frame image size")
            payload = image
            used = 0
            if base and before is not None:
                if len(before) != page_size:
                    raise_for(EINVAL, pgno, "frame delta")
                delta = delta_make(before, image, cap)
                if delta is not None:
                    payload, used = delta, base
            n = len(payload)
            head = _LOG_FRAME.pack(pgno, commit_page_count if i == last else 0, txn, offset, salt, n, used)
            crc = crc32c(payload, crc32c(head, crc))
            out += head
            out += crc.to_bytes(4, "little")
            out += payload
            sizes.append(n)
            offset += 44 + n
        return out, crc, sizes

    def log_append(self, frames: List[Tuple[int, Any, Any]], txn: int, salt: int, offset: int, crc: int,
                   commit_page_count: int, page_size: int, seal: int, txn_index: Dict[int, int],
                   index: Dict[int, int], depth: Dict[int, int], pgnos: List[int], offsets: List[int],
                   max_chain: int) -> Tuple[bytearray, int, bytes]:
        chunk = []
        for pgno, image, before in frames:
            base = 0
            if before is not None:
                prev = txn_index.get(pgno)
                if prev is None:
                    prev = index.get(pgno)
                if prev is not None and depth[prev] < max_chain:
                    base = prev
            chunk.append((pgno, image, before, base))
        out, crc, sizes = self.log_frames(chunk, txn, salt, offset, crc, commit_page_count, page_size, seal)
        entries = array("Q")
        for (pgno, _, _, base), n in zip(chunk, sizes):
            depth[offset] = depth[base] + 1 if base and n != page_size else 0
            txn_index[pgno] = offset
            pgnos.append(pgno)
            offsets.append(offset)
            entries.append(pgno | n << 32)
            entries.append(offset)
            offset += 44 + n
        if sys.byteorder != "little":  # pragma: no cover
            entries.byteswap()
        return out, crc, entries.tobytes()

    def log_adopt(self, entries: "Sequence[int]", end: int, page_size: int, index: Dict[int, int],
                  depth: Dict[int, int], max_chain: int) -> Optional[Tuple[Any, ...]]:
        words = array("Q", entries)
        if not words or len(words) % 2:
            return None
        pgnos: List[int] = []
        offsets: List[int] = []
        chains: Dict[int, List[Optional[int]]] = {}
        latest: Dict[int, int] = {}
        new_depth: Dict[int, int] = {}
        pgno = off = size = 0
        for i in range(0, len(words), 2):
            word, off = words[i], words[i + 1]
            pgno, size = word & 0xFFFFFFFF, word >> 32
            if off != end or not 0 < size <= page_size:
                return None
            pgnos.append(pgno)
            offsets.append(off)
            prev = latest.get(pgno)
            if prev is None:
                prev = index.get(pgno)
                chains[pgno] = [prev, off]
            else:
                chains[pgno].append(off)
            d = 0
            if size != page_size:
                known = new_depth.get(prev, depth.get(prev)) if prev is not None else None
                if known is None or known >= max_chain:
                    return None
                d = known + 1
            new_depth[off] = d
            latest[pgno] = off
            end = off + 44 + size
        return pgnos, offsets, chains, latest, new_depth, end, pgno, off, size

    def log_advance(self, image: bytearray, window: "bytes | bytearray | memoryview", start: int,
                    chain: List[Optional[int]], pgno: int, salt: int, page_size: int) -> bool:
        if type(image) is not bytearray:
            raise TypeError("image must be a bytearray and chain a list")
        view = memoryview(window).cast("B")
        if len(chain) < 2 or len(image) != page_size:
            return False
        prev = chain[0]
        for off in chain[1:]:
            assert off is not None
            rel = off - start
            if rel < 0 or len(view) - rel < 44:
                return False
            fpgno, own, fsalt, n, base = (int.from_bytes(view[rel : rel + 4], "little"),
                                          int.from_bytes(view[rel + 16 : rel + 24], "little"),
                                          int.from_bytes(view[rel + 24 : rel + 28], "little"),
                                          int.from_bytes(view[rel + 28 : rel + 32], "little"),
                                          int.from_bytes(view[rel + 32 : rel + 40], "little"))
            rel += 44
            if fpgno != pgno or own != off or fsalt != salt or len(view) - rel < n:
                return False
            if not base:
                if n != page_size:
                    return False
                image[:] = view[rel : rel + n]
            elif n >= page_size or base >= off or prev is None or base != prev \
                    or lib.ps_delta_apply(ffi.from_buffer(image), page_size, ffi.from_buffer(view[rel : rel + n]), n) != OK:
                return False
            prev = off
        return True

    def page_insert_room(self, frame: bytearray, record: bytes, state: int, pgno: int) -> Tuple[int, int]:
        _check_bytes(record, "record")
        page = self._frame(frame, pgno)
        if len(record) > MAX_RECORD:
            raise_for(EFULL, pgno, "record longer than a page holds")
        u32, _, u16 = self._cells[:3]
        rc = lib.ps_page_insert(page, len(frame), record, len(record), state, u16)
        if rc != OK:
            raise_for(rc, pgno, "record insert")
        rc = lib.ps_page_free_space(page, len(frame), u32, u32 + 1, u32 + 2)
        if rc != OK:
            raise_for(rc, pgno, "free space")
        return u16[0], u32[2]

    def leaf_insert(self, frame: bytearray, index: int, key: bytes, rid_pgno: int, rid_slot: int,
                    pgno: int) -> Optional[bytes]:
        _check_bytes(key, "key")
        page = self._frame(frame, pgno)
        rc = lib.ps_node_leaf_insert(page, len(frame), index, key, len(key), rid_pgno, rid_slot)
        if rc == EFULL:
            return None
        if rc != OK:
            raise_for(rc, pgno, "leaf insert")
        return bytes(frame)

    def leaf_remove(self, frame: bytearray, index: int, pgno: int) -> Tuple[bytes, int]:
        page = self._frame(frame, pgno)
        u32 = self._cells[0]
        rc = lib.ps_node_leaf_remove(page, len(frame), index, u32)
        if rc != OK:
            raise_for(rc, pgno, "leaf remove")
        return bytes(frame), u32[0]

    def _record(self, frame: bytearray, slot: int, pgno: int, what: str) -> Tuple[Any, int, int, int]:
        """_record locates slot ``slot``'s record in ``frame`` for record_delete and record_patch:
        (the cffi page, its offset, its length, its slot kind)."""
        page = self._frame(frame, pgno)
        if not 0 <= slot <= 0xFFFF:
            if slot < 0:
                raise OverflowError("slot is negative")
            raise_for(ENOSLOT, pgno, "slot")
        u32, u8 = self._cells[:2]
        rc = lib.ps_page_read(page, len(frame), slot, u32, u32 + 1, u8)
        if rc != OK:
            raise_for(rc, pgno, what)
        return page, u32[0], u32[1], u8[0]

    def record_delete(self, frame: bytearray, slot: int, pgno: int) -> Tuple[int, Optional[bytes], int, int]:
        page, off, n, kind = self._record(frame, slot, pgno, "record delete")
        u32 = self._cells[0]
        stub = bytes(frame[off : off + n]) if kind == lib.PS_SLOT_OVERFLOW else None
        rc = lib.ps_page_delete(page, len(frame), slot)
        if rc == OK:
            rc = lib.ps_page_free_space(page, len(frame), u32, u32 + 1, u32 + 2)
        if rc != OK:
            raise_for(rc, pgno, "record delete")
        nlive = frame[lib.PS_OFF_NLIVE] | frame[lib.PS_OFF_NLIVE + 1] << 8
        return n, stub, nlive, u32[2]

    def record_patch(self, frame: bytearray, slot: int, length: int, changes: List[Tuple[int, int]], pgno: int) -> int:
        _, off, n, _ = self._record(frame, slot, pgno, "record patch")
        if n != length:
            return n
        for at, value in changes:
            if not (0 <= at < n and 0 <= value <= 255):
                raise ValueError(f"patch of byte {at} = {value} does not lie inside the {n}-byte record in slot {slot}")
        for at, value in changes:
            frame[off + at] = value
        return n

    # ---- the read path's ----

    def map_child(self, h: Any, pgno: int, key: bytes) -> int:
        r: int = lib.ps_map_child(h, pgno, key, len(key))
        if r < 0:
            raise_for(-r, pgno, "internal node")
        return r

    def map_find(self, h: Any, pgno: int, key: bytes) -> Tuple[int, bool, int, int]:
        r: int = lib.ps_map_leaf_find(h, pgno, key, len(key))
        if r < 0:
            raise_for(-r, pgno, "leaf")
        return (r >> 1) & 0x3FFF, bool(r & 1), r >> 31, (r >> 15) & 0xFFFF

    def map_get(self, h: Any, pgno: int, key: bytes) -> Optional[Tuple[int, int]]:
        _, equal, p, s = self.map_find(h, pgno, key)
        return (p, s) if equal else None

    def node_get(self, raw: bytes, key: bytes, pgno: int) -> Optional[Tuple[int, int]]:
        _, equal, p, s = self._search(raw, key, False, pgno)
        return (p, s) if equal else None

    def _search(self, raw: bytes, key: bytes, after: bool, pgno: int) -> Tuple[int, bool, int, int]:
        _check_bytes(raw, "raw")
        _check_bytes(key, "key")
        u32, eq, u16 = self._cells[:3]
        rc = lib.ps_node_search(raw, len(raw), key, len(key), after, u32, eq, u32 + 1, u16)
        if rc != OK:
            raise_for(rc, pgno, "node search")
        return u32[0], bool(eq[0]), u32[1], u16[0]

    def node_child(self, raw: bytes, key: bytes, pgno: int) -> int:
        return self._search(raw, key, True, pgno)[2]

    def node_find(self, raw: bytes, key: bytes, after: bool, pgno: int) -> Tuple[int, bool, int, int]:
        return self._search(raw, key, after, pgno)

    def node_find_many(self, raw: bytes, keys: List[bytes], lo: int, hi: int, out: List[Any], pgno: int) -> None:
        if lo < 0 or hi > len(keys) or hi > len(out):
            raise IndexError("find_many: bounds outside the lists")
        _check_bytes(raw, "raw")
        if not MIN_PAGE_SIZE <= len(raw) <= MAX_PAGE_SIZE:
            raise_for(EINVAL, pgno, "leaf size")
        if raw[OFF_TYPE] != PAGE_LEAF:
            raise_for(lib.PS_ETYPE if raw[OFF_TYPE] == PAGE_INTERNAL else lib.PS_ENODE_TYPE, pgno, "leaf")
        for t in range(lo, hi):
            _, equal, p, s = self._search(raw, keys[t], False, pgno)
            if equal:
                out[t] = (p, s)

    def map_find_many(self, h: Any, pgno: int, keys: List[bytes], lo: int, hi: int, out: List[Any]) -> None:
        if lo < 0 or hi > len(keys) or hi > len(out):
            raise IndexError("find_many: bounds outside the lists")
        for t in range(lo, hi):
            _, equal, p, s = self.map_find(h, pgno, keys[t])
            if equal:
                out[t] = (p, s)

    def map_value(self, h: Any, pgno: int, slot: int) -> "bytes | Tuple[int, int, int] | None":
        n = self._cells[0]
        off: int = lib.ps_map_value(h, pgno, slot, n)
        if off >= 0:
            value: bytes = ffi.buffer(h.base + off, n[0])[:]
            return value
        found = self.map_record(h, pgno, slot, lib.PS_PAGE_HEAP)
        if found is None or found[2] != lib.PS_SLOT_OVERFLOW or found[1] < 8:
            return None
        total, first = _STUB.unpack(ffi.buffer(h.base + found[0], 8)[:])
        return total, first, found[1] - 8

    def map_chain_value(self, h: Any, first: int, count: int, step: int, pgno: int, slot: int) -> Optional[bytes]:
        head = self.map_chain_run(h, first, count, step)
        found = self.map_record(h, pgno, slot, lib.PS_PAGE_HEAP)
        if head is None or found is None or found[2] != lib.PS_SLOT_OVERFLOW or found[1] < 8:
            return None
        stub: bytes = ffi.buffer(h.base + found[0], found[1])[:]
        total, at = _STUB.unpack(stub[:8])
        if at != first or len(head) + len(stub) - 8 != total:
            return None
        return head + stub[8:]

    def map_record(self, h: Any, pgno: int, slot: int, want_type: int) -> Optional[Tuple[int, int, int, int]]:
        off, n, st, nx = self._record_cells
        if lib.ps_map_page_read(h, pgno, slot, want_type, off, n, st, nx) != OK:
            return None
        return off[0], n[0], st[0], nx[0]

    def map_chunk(self, h: Any, pgno: int) -> Optional[Tuple[bytes, int]]:
        found = self.map_record(h, pgno, 0, lib.PS_PAGE_OVERFLOW)
        if found is None:
            return None
        off, n, _, nx = found
        data: bytes = ffi.buffer(h.base + off, n)[:]
        return data, nx

    def map_chain_run(self, h: Any, first: int, count: int, step: int) -> Optional[bytes]:
        if step not in (1, -1):
            raise ValueError("map_chain_run: step must be 1 or -1")
        if count <= 0 or (step < 0 and first < count) or (step > 0 and first + count > 0xFFFFFFFF):
            return None
        parts: List[bytes] = []
        for i in range(count):
            pgno = first + i * step
            found = self.map_chunk(h, pgno)
            if found is None or found[1] != (0 if i + 1 == count else pgno + step):
                return None
            parts.append(found[0])
        return b"".join(parts)

    @property
    def _record_cells(self) -> Tuple[Any, Any, Any, Any]:
        try:
            c: Tuple[Any, Any, Any, Any] = _tls.record_cells
            return c
        except AttributeError:
            _tls.record_cells = c = (ffi.new("uint64_t *"), ffi.new("uint32_t *"), ffi.new("uint8_t *"),
                                     ffi.new("uint32_t *"))
            return c

    def page_value(self, buf: Any, slot: int) -> Optional[bytes]:
        size = len(buf)
        if not MIN_PAGE_SIZE <= size <= MAX_PAGE_SIZE or buf[OFF_TYPE] != lib.PS_PAGE_HEAP:
            return None
        off, n, st, _ = self._record_cells
        u32 = self._cells[0]
        if lib.ps_page_read(ffi.from_buffer("uint8_t[]", buf), size, slot, u32, u32 + 1, st) != OK:
            return None
        if st[0] != lib.PS_SLOT_LIVE:
            return None
        value = bytes(buf[u32[0] : u32[0] + u32[1]])
        return value

    def map_values(self, h: Any, pgnos: List[int], slots: List[int]) -> List[Optional[bytes]]:
        if len(pgnos) != len(slots):
            raise TypeError("map_values: pgnos and slots must be lists of one length")
        n = len(pgnos)
        if n == 0:
            return []
        offs, lens = ffi.new("uint64_t[]", n), ffi.new("uint32_t[]", n)
        states, status = ffi.new("uint8_t[]", n), ffi.new("int32_t[]", n)
        rc = lib.ps_map_read_many(h, ffi.NULL, ffi.new("uint32_t[]", pgnos), ffi.new("uint16_t[]", slots), n,
                                  lib.PS_PAGE_HEAP, offs, lens, states, status)
        if rc != OK:
            return [None] * n
        buf = ffi.buffer(h.base, h.len)
        live = lib.PS_SLOT_LIVE
        return [buf[o : o + k] if st == OK and s == live else None
                for o, k, s, st in zip(ffi.unpack(offs, n), ffi.unpack(lens, n), ffi.unpack(states, n),
                                        ffi.unpack(status, n))]

    def _run(self, page: Any, size: int, pgno: int, start: Optional[bytes], after: bool, stop: Optional[bytes],
             limit: int) -> RunResult:
        if page[OFF_TYPE] != PAGE_LEAF:
            raise_for(lib.PS_ETYPE if page[OFF_TYPE] == PAGE_INTERNAL else lib.PS_ENODE_TYPE, pgno, "leaf")
        u32, _, _, offs, ends, pgnos, slots = self._cells
        count = u32 + 3
        rc = lib.ps_node_decode(page, size, offs, ends, pgnos, slots, MAX_SLOTS, count)
        if rc != OK:
            raise_for(rc, pgno, "leaf")
        c = count[0]
        i = 0 if start is None else self._search_page(page, size, start, after, pgno)
        j = c if stop is None else max(i, self._search_page(page, size, stop, False, pgno))
        if 0 <= limit < j - i:
            j = i + limit
        buf = ffi.buffer(page, size)
        keys = [buf[offs[t] : ends[t]] for t in range(i, j)]
        return i, j, c, keys, [pgnos[t] for t in range(i, j)], [slots[t] for t in range(i, j)]

    def _search_page(self, page: Any, size: int, key: bytes, after: bool, pgno: int) -> int:
        _check_bytes(key, "key")
        u32, eq, u16 = self._cells[:3]
        rc = lib.ps_node_search(page, size, key, len(key), after, u32, eq, u32 + 1, u16)
        if rc != OK:
            raise_for(rc, pgno, "leaf")
        i: int = u32[0]
        return i

    def map_leaf_run(self, h: Any, pgno: int, start: Optional[bytes], after: bool, stop: Optional[bytes],
                     limit: int) -> RunResult:
        rc = lib.ps_map_check(h, pgno)
        if rc != OK:
            raise_for(rc, pgno, "leaf")
        size = h.page_size
        return self._run(ffi.cast("uint8_t *", h.base) + pgno * size, size, pgno, start, after, stop, limit)

    def leaf_run(self, raw: bytes, pgno: int, start: Optional[bytes], after: bool, stop: Optional[bytes],
                 limit: int) -> RunResult:
        _check_bytes(raw, "raw")
        if not MIN_PAGE_SIZE <= len(raw) <= MAX_PAGE_SIZE:
            raise_for(EINVAL, pgno, "leaf size")
        return self._run(ffi.from_buffer("uint8_t[]", raw), len(raw), pgno, start, after, stop, limit)


_LOG_FRAME = struct.Struct("<IIQQIIQ")  # wal.py's _FRAME: pgno, commit, txn, offset, salt, size, base


def _check_bytes(obj: Any, what: str) -> None:
    if type(obj) is not bytes:
        raise TypeError(f"{what} must be bytes, not {type(obj).__name__}")


MAX_SLOTS: int = lib.PS_MAX_SLOTS
MIN_PAGE_SIZE: int = lib.PS_MIN_PAGE_SIZE
MAX_PAGE_SIZE: int = lib.PS_MAX_PAGE_SIZE
MAX_RECORD = 0xFFFF  # PS_MAX_RECORD: a slot's length field is 16 bits
OFF_TYPE: int = lib.PS_OFF_TYPE
PAGE_LEAF: int = lib.PS_PAGE_LEAF
PAGE_INTERNAL: int = lib.PS_PAGE_INTERNAL


def _load_fast() -> Tuple[Any, str]:
    """_load_fast picks the binding of the hot calls (see the module docstring)."""
    want = os.environ.get("PAGESTORE_NATIVE", "")
    if want not in ("", "cffi", "fastpage"):
        raise ImportError(f"PAGESTORE_NATIVE must be 'cffi' or 'fastpage', got {want!r}")
    if want != "cffi" and platform.python_implementation() == "CPython":
        try:
            from . import _fastpage  # type: ignore[attr-defined]
        except ImportError:
            if want == "fastpage":
                raise
        else:
            # a build of this version from before the newest calls lacks them: stale too
            missing = [name for name in ("map_chain_value", "log_frames", "log_append", "crc32c", "record_delete",
                                                    "record_patch", "log_advance", "log_adopt")
                       if not hasattr(_fastpage, name)]
            if _fastpage.NATIVE_VERSION != EXPECTED_NATIVE_VERSION or missing:  # pragma: no cover
                why = (f"version {_fastpage.NATIVE_VERSION}, the Python package expects {EXPECTED_NATIVE_VERSION}"
                       if _fastpage.NATIVE_VERSION != EXPECTED_NATIVE_VERSION
                       else f"a build from before {', '.join(missing)}")
                raise ImportError(f"pagestore._fastpage is stale ({why}); rebuild with `pip install .`")
            _fastpage.init(raise_for)
            return _fastpage, "fastpage"
    if want == "fastpage":
        raise ImportError("PAGESTORE_NATIVE=fastpage, but pagestore._fastpage is not built here")
    return CffiPage(), "cffi"


class MapCalls:
    """MapCalls: ``fast``'s map calls bound to one map description (a ``MapHandle``'s), so that
    the tree and the heap read mapped pages by page number, Python values in and out, and
    never hold the ``ps_map_t`` itself. Each attribute is ``functools.partial(fast.map_X,
    handle)``: a C-level call, cheaper than a method or than passing the handle each time.

    ``leaf_find(pgno, key)`` -> (index, equal, rid pgno, rid slot) in leaf pgno;
    ``leaf_get(pgno, key)`` -> (rid pgno, rid slot), or None for a key not there;
    ``leaf_find_many(pgno, keys, lo, hi, out)``; ``leaf_run(pgno, start, after, stop, limit)``;
    ``value(pgno, slot)``, ``values(pgnos, slots)``, ``record(pgno, slot, want_type)``,
    ``chunk(pgno)``, ``chain_run(first, count, step)``, ``chain_value(first, count, step, pgno,
    slot)``: as native/fastpage.c documents
    ``map_find``, ``map_get``, ``map_find_many``, ``map_leaf_run``, ``map_value``, ... The
    description must outlive these (the pager keeps its one for its life).
    """

    __slots__ = ("leaf_find", "leaf_get", "leaf_find_many", "leaf_run", "value", "values", "record", "chunk",
                 "chain_run", "chain_value")

    def __init__(self, struct: Any) -> None:
        h = map_handle(struct)
        self.leaf_find: Callable[[int, bytes], Tuple[int, bool, int, int]] = partial(fast.map_find, h)
        self.leaf_get: Callable[[int, bytes], Optional[Tuple[int, int]]] = partial(fast.map_get, h)
        self.leaf_find_many: Callable[[int, List[bytes], int, int, List[Any]], None] = partial(fast.map_find_many, h)
        self.leaf_run: Callable[[int, Optional[bytes], bool, Optional[bytes], int], RunResult] = partial(
            fast.map_leaf_run, h)
        self.value: Callable[[int, int], "bytes | Tuple[int, int, int] | None"] = partial(fast.map_value, h)
        self.chain_value: Callable[[int, int, int, int, int], Optional[bytes]] = partial(fast.map_chain_value, h)
        self.values: Callable[[List[int], List[int]], List[Optional[bytes]]] = partial(fast.map_values, h)
        self.record: Callable[[int, int, int], Optional[Tuple[int, int, int, int]]] = partial(fast.map_record, h)
        self.chunk: Callable[[int], Optional[Tuple[bytes, int]]] = partial(fast.map_chunk, h)
        self.chain_run: Callable[[int, int, int], Optional[bytes]] = partial(fast.map_chain_run, h)


def map_handle(struct: Any) -> Any:
    """map_handle: what ``fast``'s map calls take for the pager's ``ps_map_t *`` (its address for
    _fastpage, the cdata itself for cffi), or None for None. The struct must outlive the handle."""
    if struct is None:
        return None
    if BINDING == "fastpage":
        return int(ffi.cast("uintptr_t", struct))
    return struct


fast: Any
fast, BINDING = _load_fast()
_crc32c = fast.crc32c
