"""SlottedPage: a Python view of one slotted page, backed by the C core.

The page owns no memory of its own: it wraps a writable buffer (a bytearray,
or a memoryview of a cached page) and every operation runs in C on that
buffer. Records are addressed by slot id; a slot id never changes while its
record lives, whatever compaction does to the bytes.

Example::

    >>> from pagestore import SlottedPage
    >>> page = SlottedPage.new(4096)
    >>> slot = page.insert(b"hello")
    >>> page.read(slot)
    b'hello'
    >>> page.update(slot, b"hello, world")   # same slot id, bytes moved
    >>> page.delete(slot); len(page)
    0
"""
from __future__ import annotations

import struct
from array import array
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

from . import format as fmt
from ._native import EINVAL, OK, MapHandle, fast, ffi, lib, raise_for, scratch, strerror
from .errors import CorruptionError, PageFullError

BytesLike = Union[bytes, bytearray, memoryview]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_BYTES_TYPE = {bytes}


def as_bytes_like(data: object, what: str = "data") -> BytesLike:
    """as_bytes_like checks that ``data`` is bytes-like and returns a flat view of it.

    Raises:
        TypeError: ``data`` is not bytes, bytearray or a contiguous memoryview.
    """
    if type(data) is bytes or type(data) is bytearray:
        return data
    if isinstance(data, str) or data is None:
        raise TypeError(f"{what} must be bytes-like (bytes, bytearray or memoryview), not {type(data).__name__}")
    try:
        mv = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{what} must be bytes-like (bytes, bytearray or memoryview), not {type(data).__name__}"
        ) from None
    if not mv.c_contiguous:
        raise TypeError(f"{what} must be a contiguous buffer")
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


def seal_pages(pages: bytearray, page_size: int, lsn: int) -> None:
    """seal_pages stamps ``lsn`` and then the checksum into every page of ``pages`` (whole pages,
    back to back): ``page.lsn = lsn; page.set_checksum()`` for each, in one C call. For the
    pager, on pages built elsewhere and written in one run. O(bytes).

    Raises:
        ValueError: ``page_size`` is not a valid page size.
    """
    rc = lib.ps_page_seal_many(ffi.from_buffer("uint8_t[]", pages, require_writable=True),
                               page_size, len(pages) // page_size, lsn)
    if rc != OK:
        raise ValueError(f"cannot seal pages of {page_size} bytes: {strerror(rc)}")


def build_singles(page_size: int, page_type: int, pgnos: Sequence[int], nexts: Sequence[int],
                  data: bytes, lens: Sequence[int]) -> bytearray:
    """build_singles returns ``len(pgnos)`` pages back to back, page i an empty page of
    ``page_type`` numbered ``pgnos[i]`` with ``next`` = ``nexts[i]``, holding in slot 0 the
    ``lens[i]`` bytes of ``data`` that follow those of the pages before it: what ``init``,
    ``insert`` and ``next =`` give one page at a time, in one C call. Not sealed (lsn 0, no
    checksum: ``seal_pages``). For the heap's overflow chains. O(bytes).

    Raises:
        PageFullError: a record does not fit an empty page.
        ValueError: the arrays differ in length, or ``data`` is shorter than ``lens`` say.
    """
    n = len(pgnos)
    if len(nexts) != n or len(lens) != n or sum(lens) > len(data):
        raise ValueError("build_singles: pgnos, nexts and lens must be as long as each other, and data hold lens bytes")
    pages = bytearray(n * page_size)
    rc = lib.ps_page_build_singles(ffi.from_buffer("uint8_t[]", pages, require_writable=True), page_size, n,
                                   page_type, pgnos, nexts, data, lens)
    if rc != OK:
        raise_for(rc, pgnos[0] if n else None, "a record of an overflow chain")
    return pages


class SlottedPage:
    """SlottedPage wraps one page buffer; see the module docstring.

    Build one with ``SlottedPage.new(page_size)`` (a fresh empty page),
    ``SlottedPage.wrap(buffer)`` (an existing, trusted or validated buffer,
    no copy) or ``SlottedPage.load(data)`` (untrusted bytes: copied, then
    validated; raises ``CorruptionError``).

    Errors: ``PageFullError`` when a record does not fit even after
    compaction; ``NotFoundError`` (a ``KeyError``) for a dead or out-of-range
    slot; ``TypeError`` for data that is not bytes-like.
    """

    __slots__ = ("_buf", "_ptr", "_size", "pgno_hint")

    def __init__(self, buffer: Union[bytearray, memoryview], *, validate: bool = True, pgno: Optional[int] = None):
        size = len(buffer) if not isinstance(buffer, memoryview) else buffer.nbytes
        if not fmt.is_valid_page_size(size):
            raise ValueError(f"page size must be a power of two from 512 to 65536, got {size}")
        self._buf = buffer
        self._ptr = ffi.from_buffer("uint8_t[]", buffer, require_writable=True)
        self._size = size
        self.pgno_hint = pgno
        if validate:
            self.check()

    # ---- construction ----

    @classmethod
    def new(cls, page_size: int = 4096, pgno: int = 0, page_type: int = fmt.PAGE_HEAP) -> "SlottedPage":
        """new returns an empty page of ``page_size`` bytes in a fresh bytearray."""
        if not fmt.is_valid_page_size(page_size):
            raise ValueError(f"page size must be a power of two from 512 to 65536, got {page_size}")
        page = cls(bytearray(page_size), validate=False, pgno=pgno)
        page.init(pgno, page_type)
        return page

    @classmethod
    def wrap(cls, buffer: Union[bytearray, memoryview], *, validate: bool = True) -> "SlottedPage":
        """wrap returns a page over ``buffer`` without copying (validated unless told not to)."""
        return cls(buffer, validate=validate)

    @classmethod
    def load(cls, data: BytesLike, pgno: Optional[int] = None) -> "SlottedPage":
        """load copies untrusted page bytes and validates them.

        With ``pgno`` the checksum and the stamped page number are verified
        too, as the pager does for every page it reads.

        Raises:
            CorruptionError: the bytes are not a valid page (names ``pgno``).
            ValueError: the length is not a valid page size.
        """
        buf = bytearray(as_bytes_like(data))
        if not fmt.is_valid_page_size(len(buf)):
            raise ValueError(f"page size must be a power of two from 512 to 65536, got {len(buf)}")
        page = cls(buf, validate=False, pgno=pgno)
        if pgno is None:
            page.check()
        else:
            page.verify(pgno)
        return page

    def init(self, pgno: int = 0, page_type: int = fmt.PAGE_HEAP) -> None:
        """init empties the page in place and stamps its number and type."""
        rc = lib.ps_page_init(self._ptr, self._size, pgno, page_type)
        if rc != OK:
            raise_for(rc, pgno)

    # ---- records ----

    def insert(self, data: BytesLike, *, state: int = fmt.SLOT_LIVE) -> int:
        """insert stores ``data`` and returns its slot id. O(slots).

        The lowest free slot id is reused before the array grows; when the gap
        is too small but total free space suffices, the page compacts first.

        Raises:
            PageFullError: it does not fit even after compaction.
        """
        return self._insert(data, state, False)[0]

    def insert_room(self, data: BytesLike, state: int = fmt.SLOT_LIVE) -> Tuple[int, int]:
        """insert_room is ``insert`` that also returns ``max_insert`` after it: ``(slot, max_insert)``.

        For the heap, which records every page's room in its free-space map
        after each insert: one call where ``insert`` then ``max_insert`` were
        two, on the path of every record a transaction writes.

        Raises:
            PageFullError: it does not fit even after compaction.
        """
        return self._insert(data, state, True)

    def _insert(self, data: BytesLike, state: int, room: bool) -> Tuple[int, int]:
        if type(data) is not bytes:
            data = as_bytes_like(data)
            n = len(data) if type(data) is not memoryview else data.nbytes
            ptr = ffi.from_buffer(data)
        else:
            n = len(data)
            ptr = data  # cffi passes bytes' own buffer, read-only, without a wrapper
        if n > fmt.MAX_RECORD:
            raise PageFullError(f"record of {n} bytes exceeds the largest a page holds ({fmt.MAX_RECORD})")
        if room and type(data) is bytes and type(self._buf) is bytearray and self.pgno_hint is not None:
            # a pager frame: the insert and the room after it in one lean call (the heap's every record)
            r: Tuple[int, int] = fast.page_insert_room(self._buf, data, state, self.pgno_hint)
            return r
        out, _, slot_out = scratch()
        rc = lib.ps_page_insert(self._ptr, self._size, ptr, n, state, slot_out)
        if rc == EINVAL and state in (fmt.SLOT_LIVE, fmt.SLOT_OVERFLOW):
            # The data lies inside this very page: copy it out and retry.
            rc = lib.ps_page_insert(self._ptr, self._size, bytes(data), n, state, slot_out)
        if rc != OK:
            raise_for(rc, self.pgno_hint, f"{n}-byte record")
        slot: int = slot_out[0]
        if not room:
            return slot, 0
        rc = lib.ps_page_free_space(self._ptr, self._size, out, out + 1, out + 2)
        if rc != OK:
            raise_for(rc, self.pgno_hint)
        free: int = out[2]
        return slot, free

    def _locate(self, slot: int) -> Tuple[int, int, int]:
        if not isinstance(slot, int) or isinstance(slot, bool):
            raise TypeError(f"slot must be an int, not {type(slot).__name__}")
        if slot < 0 or slot > 0xFFFF:
            raise_for(lib.PS_ENOSLOT, self.pgno_hint, f"slot {slot}")
        out, st, _ = scratch()
        rc = lib.ps_page_read(self._ptr, self._size, slot, out, out + 1, st)
        if rc != OK:
            raise_for(rc, self.pgno_hint, f"slot {slot}")
        return out[0], out[1], st[0]

    def view_and_state(self, slot: int) -> Tuple[memoryview, int]:
        """view_and_state returns ``(view(slot), state(slot))`` with one lookup. Raises NotFoundError.

        For the heap, whose record's state says how to read its bytes.
        """
        off, n, state = self._locate(slot)
        return memoryview(self._buf)[off : off + n], state

    def read(self, slot: int) -> bytes:
        """read returns a copy of the record at ``slot``. Raises NotFoundError."""
        off, n, _ = self._locate(slot)
        return bytes(self._buf[off : off + n])

    def view(self, slot: int) -> memoryview:
        """view returns a zero-copy memoryview of the record (valid until the page changes)."""
        off, n, _ = self._locate(slot)
        return memoryview(self._buf)[off : off + n]

    def state(self, slot: int) -> int:
        """state returns the slot's state (SLOT_LIVE or SLOT_OVERFLOW). Raises NotFoundError."""
        return self._locate(slot)[2]

    def update(self, slot: int, data: BytesLike, *, state: int = fmt.SLOT_LIVE) -> None:
        """update replaces the record at ``slot``; the slot id stays the same.

        In place when the new bytes fit where the old ones were, else moved
        inside the page (compacting if needed).

        Raises:
            NotFoundError: no live record at ``slot``.
            PageFullError: the page cannot hold the new record; the old one is kept.
        """
        data = as_bytes_like(data)
        n = len(data) if type(data) is not memoryview else data.nbytes
        if n > fmt.MAX_RECORD:
            self._locate(slot)
            raise PageFullError(f"record of {n} bytes exceeds the largest a page holds ({fmt.MAX_RECORD})")
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0 or slot > 0xFFFF:
            self._locate(slot)
        rc = lib.ps_page_update(self._ptr, self._size, slot, ffi.from_buffer(data), n, state)
        if rc == EINVAL and state in (fmt.SLOT_LIVE, fmt.SLOT_OVERFLOW):
            rc = lib.ps_page_update(self._ptr, self._size, slot, bytes(data), n, state)
        if rc != OK:
            raise_for(rc, self.pgno_hint, f"slot {slot}, {n}-byte record")

    def patch(self, slot: int, offset: int, data: BytesLike) -> None:
        """patch overwrites ``data`` at ``offset`` inside the live record at ``slot``, in place.

        The record's length, slot and position do not change, so nothing
        else on the page moves: for fixed-layout records edited a few bytes
        at a time (the free-space map's one byte per page).

        Raises:
            NotFoundError: no live record at ``slot``.
            ValueError: the bytes would not lie inside the record.
        """
        off, n, _ = self._locate(slot)
        data = as_bytes_like(data)
        size = len(data) if type(data) is not memoryview else data.nbytes
        if offset < 0 or offset + size > n:
            raise ValueError(f"patch of {size} bytes at {offset} does not lie inside the {n}-byte record in slot {slot}")
        self._buf[off + offset : off + offset + size] = data

    def patch_bytes(self, slot: int, changes: "List[Tuple[int, int]]", length: Optional[int] = None,
                    what: str = "record") -> None:
        """patch_bytes sets single bytes inside the live record at ``slot``, in place: ``changes``
        holds (offset in the record, byte value) pairs. ``patch`` for many one-byte edits at
        once (the free-space map's flush): the record is located once. ``length``: the record
        must be that long (the map page's check, in the same lookup), else nothing is changed.

        Raises:
            NotFoundError: no live record at ``slot``.
            CorruptionError: the record is not ``length`` bytes (names the page and ``what``).
            ValueError: an offset outside the record, or a value outside 0..255.
        """
        if length is not None and type(self._buf) is bytearray and self.pgno_hint is not None and type(changes) is list:
            # a pager frame (the free-space map's flush, at every commit): one lean call, which
            # holds the GIL (cffi's lets it go: a switch to another thread in a group's apply)
            n = fast.record_patch(self._buf, slot, length, changes, self.pgno_hint)
            if n != length:
                raise CorruptionError(self.pgno_hint, f"{what} has the wrong length ({n} bytes, not {length})")
            return
        off, n, _ = self._locate(slot)
        if length is not None and n != length:
            raise CorruptionError(self.pgno_hint, f"{what} has the wrong length ({n} bytes, not {length})")
        buf = self._buf
        for at, value in changes:
            if not 0 <= at < n:
                raise ValueError(f"patch of a byte at {at} does not lie inside the {n}-byte record in slot {slot}")
            buf[off + at] = value

    def delete(self, slot: int) -> None:
        """delete frees ``slot`` for reuse; trailing free slots are trimmed. Raises NotFoundError."""
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0 or slot > 0xFFFF:
            self._locate(slot)
        rc = lib.ps_page_delete(self._ptr, self._size, slot)
        if rc != OK:
            raise_for(rc, self.pgno_hint, f"slot {slot}")

    def compact(self) -> None:
        """compact packs live records against the end of the page. No slot id changes."""
        rc = lib.ps_page_compact(self._ptr, self._size)
        if rc != OK:
            raise_for(rc, self.pgno_hint)

    def columns(self) -> Tuple[List[int], List[int], List[int], List[int]]:
        """columns returns the live slots as four lists: slot ids, offsets, lengths, states (one C call).

        The B+tree decodes nodes from these; ``ffi.unpack`` builds each list
        at C speed, where a tuple per record cost most of a node decode.
        """
        n = self.nlive
        if n == 0:
            return [], [], [], []
        slots = ffi.new("uint16_t[]", n)
        offs = ffi.new("uint32_t[]", n)
        lens = ffi.new("uint32_t[]", n)
        states = ffi.new("uint8_t[]", n)
        count = scratch()[0]
        rc = lib.ps_page_read_all(self._ptr, self._size, slots, offs, lens, states, n, count)
        if rc != OK:
            raise_for(rc, self.pgno_hint)
        c = count[0]
        return ffi.unpack(slots, c), ffi.unpack(offs, c), ffi.unpack(lens, c), ffi.unpack(states, c)

    def records(self) -> List[Tuple[int, int, int, int]]:
        """records returns ``(slot, offset, length, state)`` of every live slot, in slot order, in one C call."""
        return list(zip(*self.columns()))

    def items(self) -> Iterator[Tuple[int, bytes]]:
        """items yields ``(slot, bytes)`` for every live record in slot order."""
        buf = self._buf
        for slot, off, n, _ in self.records():
            yield slot, bytes(buf[off : off + n])

    def slots(self) -> List[int]:
        """slots returns the live slot ids in ascending order."""
        return [r[0] for r in self.records()]

    def append_many(self, records: Sequence[BytesLike]) -> None:
        """append_many adds records in new slots at the end of the array, all or none.

        Raises:
            PageFullError: they do not all fit; the page is unchanged.
        """
        # Lengths in bytes, not items: len() of a memoryview over, say, an
        # array('H') counts elements, which would split the joined bytes wrongly.
        # Records that are all bytes (the bulk build's) skip the per-record
        # check: map and max run in C.
        views: Sequence[BytesLike] = records
        if set(map(type, records)) - _BYTES_TYPE:
            views = [as_bytes_like(r, "record") for r in records]
        sizes = list(map(len, views))
        n = len(views)
        if n and max(sizes) > fmt.MAX_RECORD:
            raise PageFullError(f"a record exceeds the largest a page holds ({fmt.MAX_RECORD})")
        lens = ffi.new("uint32_t[]", sizes)
        data = b"".join(views)
        rc = lib.ps_page_append_many(self._ptr, self._size, data, lens, n)
        if rc != OK:
            raise_for(rc, self.pgno_hint, f"{n} records")

    # ---- space ----

    def _space(self) -> Tuple[int, int, int]:
        out = scratch()[0]
        rc = lib.ps_page_free_space(self._ptr, self._size, out, out + 1, out + 2)
        if rc != OK:
            raise_for(rc, self.pgno_hint)
        return out[0], out[1], out[2]

    @property
    def free_space(self) -> int:
        """free_space: bytes free after compaction (page size - header - slot array - live bytes)."""
        return self._space()[1]

    @property
    def contiguous_free_space(self) -> int:
        """contiguous_free_space: the gap between the slot array and the records, usable without compaction."""
        return self._space()[0]

    @property
    def max_insert(self) -> int:
        """max_insert: the largest record ``insert`` accepts now (counting a new slot if none is free)."""
        return self._space()[2]

    # ---- integrity ----

    def check(self) -> None:
        """check verifies every structural invariant of the page. Raises CorruptionError."""
        rc = lib.ps_page_validate(self._ptr, self._size)
        if rc != OK:
            raise_for(rc, self.pgno_hint)

    def set_checksum(self) -> None:
        """set_checksum stamps the CRC32C of the page into its header."""
        lib.ps_page_set_checksum(self._ptr, self._size)

    def verify(self, pgno: int) -> None:
        """verify checks checksum, stamped page number and structure. Raises CorruptionError naming ``pgno``."""
        rc = lib.ps_page_verify(self._ptr, self._size, pgno)
        if rc != OK:
            raise_for(rc, pgno)

    # ---- header fields ----

    @property
    def buffer(self) -> Union[bytearray, memoryview]:
        """buffer: the wrapped page bytes."""
        return self._buf

    @property
    def page_size(self) -> int:
        return self._size

    @property
    def cdata(self) -> Any:
        """cdata: the page's buffer as a cffi ``uint8_t[]``. For nodes.py only, the other
        Python face of the C core (node pages); nothing above those two sees cdata."""
        return self._ptr

    def __len__(self) -> int:
        """len(page): the number of live records."""
        n: int = _U16.unpack_from(self._buf, fmt.OFF_NLIVE)[0]
        return n

    nlive = property(__len__)

    @property
    def nslots(self) -> int:
        v: int = _U16.unpack_from(self._buf, fmt.OFF_NSLOTS)[0]
        return v

    @property
    def lower(self) -> int:
        v: int = _U16.unpack_from(self._buf, fmt.OFF_LOWER)[0]
        return v

    @property
    def upper(self) -> int:
        v: int = _U32.unpack_from(self._buf, fmt.OFF_UPPER)[0]
        return v

    @property
    def frag(self) -> int:
        v: int = _U32.unpack_from(self._buf, fmt.OFF_FRAG)[0]
        return v

    @property
    def checksum(self) -> int:
        v: int = _U32.unpack_from(self._buf, fmt.OFF_CHECKSUM)[0]
        return v

    @property
    def pgno(self) -> int:
        v: int = _U32.unpack_from(self._buf, fmt.OFF_PGNO)[0]
        return v

    @pgno.setter
    def pgno(self, value: int) -> None:
        _U32.pack_into(self._buf, fmt.OFF_PGNO, value)

    @property
    def lsn(self) -> int:
        v: int = _U64.unpack_from(self._buf, fmt.OFF_LSN)[0]
        return v

    @lsn.setter
    def lsn(self, value: int) -> None:
        _U64.pack_into(self._buf, fmt.OFF_LSN, value)

    @property
    def page_type(self) -> int:
        return self._buf[fmt.OFF_TYPE]

    @property
    def next(self) -> int:
        v: int = _U32.unpack_from(self._buf, fmt.OFF_NEXT)[0]
        return v

    @next.setter
    def next(self, value: int) -> None:
        _U32.pack_into(self._buf, fmt.OFF_NEXT, value)

    def __repr__(self) -> str:
        return (
            f"<SlottedPage pgno={self.pgno} type={fmt.PAGE_TYPE_NAMES.get(self.page_type, self.page_type)} "
            f"size={self._size} live={self.nlive} slots={self.nslots} free={self.free_space}>"
        )


class RecordLookup:
    """RecordLookup finds live records with one direct C call: the heap's read path.

    ``SlottedPage._locate`` checks its argument for callers passing arbitrary
    slots; a record id comes from a decoded tree node (a u16 already), so
    this skips straight to ``ps_page_read``, which still bounds-checks the
    slot and the record against the page. It keeps its own out-parameters:
    ``ffi.new`` per call costs as much as the lookup. Not thread-safe: one
    per heap, used under the store's lock (cffi releases the GIL in C, which
    is why SlottedPage keeps its scratch per thread).
    """

    __slots__ = ("_out", "_len", "_state", "_cap", "_many", "_off64", "_next", "_mcap", "_mapped")

    def __init__(self) -> None:
        self._out = ffi.new("uint32_t[2]")
        self._len = self._out + 1
        self._state = ffi.new("uint8_t *")
        self._cap = 0
        self._many: Tuple[Any, ...] = ()
        self._off64 = ffi.new("uint64_t *")
        self._next = ffi.new("uint32_t *")
        self._mcap = 0
        self._mapped: Tuple[Any, ...] = ()


    def values(self, pages: List[SlottedPage], slots: List[int], page_type: int) -> List[Optional[bytes]]:
        """values returns a copy of record ``slots[i]`` of ``pages[i]`` for every i: ``find_many``'s one C call.

        Only a whole live record (SLOT_LIVE) in a page of type ``page_type``
        is returned; any other (a free or out-of-range slot, an overflow
        stub, a page of another type) is None, for the caller to look at
        through its slower, checking path.
        """
        offs, lens, states = self.find_many(pages, slots)
        live = fmt.SLOT_LIVE
        out: List[Optional[bytes]] = []
        add = out.append
        for page, off, n, state in zip(pages, offs, lens, states):
            buf = page._buf
            add(bytes(buf[off : off + n]) if state == live and buf[_OFF_TYPE] == page_type else None)
        return out

    def record(self, page: SlottedPage, slot: int, page_type: int) -> Optional[Tuple[int, bytes]]:
        """record returns ``(state, a copy of the record)`` of live ``slot``, or None when it is not one
        or the page is not of type ``page_type``."""
        buf = page._buf
        if buf[_OFF_TYPE] != page_type:
            return None
        out = self._out
        if _page_read(page._ptr, page._size, slot, out, self._len, self._state) != OK:
            return None
        off: int = out[0]
        state: int = self._state[0]
        return state, bytes(buf[off : off + out[1]])

    def view(self, page: SlottedPage, pgno: int, slot: int, what: str) -> memoryview:
        """view returns a zero-copy view of live record ``slot`` (valid until the page changes).

        Raises:
            CorruptionError: no such live record; names ``pgno`` and ``what``.
        """
        off, n, _ = self.locate(page, pgno, slot, what)
        return memoryview(page._buf)[off : off + n]

    def map_find(self, m: Any, pgno: int, slot: int, page_type: int) -> Optional[Tuple[int, int, int, int]]:
        """map_find: ``find`` on page ``pgno`` of the mapped data file (``m``: the pager's
        ``MapHandle.struct``), for a page whose newest image is there. One C call; verifies the
        page if this store has not yet. Returns ``(offset from the map's start, length,
        state, the page's next field)``, or None when the page is damaged, not of
        ``page_type``, outside the map, or has no live record at ``slot`` (the caller then
        reads it through the pager, which raises the error that names the page).
        """
        if _map_page_read(m, pgno, slot, page_type, self._off64, self._len, self._state, self._next) == OK:
            return self._off64[0], self._len[0], self._state[0], self._next[0]
        return None

    def map_find_many(self, h: MapHandle, pages: List[Optional["SlottedPage"]], pgnos: List[int], slots: List[int],
                      page_type: int) -> Tuple[List[int], List[int], List[int]]:
        """map_find_many is ``map_find`` for every ``(pgnos[i], slots[i])`` of the map ``h`` describes
        (the ``MapHandle`` itself), in one C call: the
        values of a scan's leaf. Where ``pages[i]`` is a page (one that is dirty or in the
        log: the caller read it through the pager), that page is searched instead and the
        offset is from its start. Returns offsets, lengths and states; a failed entry
        (anything ``map_find`` returns None for) has state 0, which no live record has.
        """
        n = len(pgnos)
        if n == 0:
            return [], [], []
        if n > self._mcap:
            self._mcap = max(n, 128)
            c = self._mcap
            self._mapped = (ffi.new("uint64_t[]", c), ffi.new("uint32_t[]", c), ffi.new("uint8_t[]", c),
                            ffi.new("int32_t[]", c))
        offs, lens, states, status = self._mapped
        ptrs = ffi.new("uint8_t *[]", [ffi.NULL if p is None else p._ptr for p in pages]) if pages else ffi.NULL
        rc = _map_read_many(h.struct, ptrs, ffi.from_buffer("uint32_t[]", array("I", pgnos)),
                            ffi.from_buffer("uint16_t[]", array("H", slots)), n, page_type, offs, lens, states, status)
        if rc != OK:
            raise_for(rc, None, "map read_many")
        return ffi.unpack(offs, n), ffi.unpack(lens, n), ffi.unpack(states, n)

    def find_many(self, pages: List[SlottedPage], slots: List[int]) -> Tuple[List[int], List[int], List[int]]:
        """find_many is ``find`` for record ``slots[i]`` of ``pages[i]``, for every i, in one C call.

        Returns three lists, the offsets, lengths and states; where ``find``
        would return None the state is 0, which no live record has. The pages
        must all be one size.
        """
        n = len(pages)
        if n == 0:
            return [], [], []
        if n > self._cap:
            self._cap = max(n, 64)
            self._many = (ffi.new("uint32_t[]", self._cap), ffi.new("uint32_t[]", self._cap),
                          ffi.new("uint8_t[]", self._cap), ffi.new("int32_t[]", self._cap))
        offs, lens, states, status = self._many
        ptrs = ffi.new("uint8_t *[]", [p._ptr for p in pages])
        rc = _page_read_many(ptrs, pages[0]._size, ffi.from_buffer("uint16_t[]", array("H", slots)), n,
                             offs, lens, states, status)
        if rc != OK:
            raise_for(rc, None, "read_many")
        return ffi.unpack(offs, n), ffi.unpack(lens, n), ffi.unpack(states, n)  # C zeroes a failed lookup's state

    def find(self, page: SlottedPage, slot: int) -> Optional[Tuple[int, int, int]]:
        """find returns ``(offset, length, state)`` of live ``slot``, or None when it is not one."""
        out = self._out
        if _page_read(page._ptr, page._size, slot, out, self._len, self._state) == OK:
            found: Tuple[int, int, int] = (out[0], out[1], self._state[0])
            return found
        return None

    def locate(self, page: SlottedPage, pgno: int, slot: int, what: str) -> Tuple[int, int, int]:
        """locate is ``find`` that raises CorruptionError naming ``pgno`` (and ``what``) instead of returning None."""
        out = self._out
        rc = _page_read(page._ptr, page._size, slot, out, self._len, self._state)
        if rc != OK:
            raise CorruptionError(pgno, f"{what}: slot {slot}: {strerror(rc)}")
        found: Tuple[int, int, int] = (out[0], out[1], self._state[0])
        return found


_OFF_TYPE = fmt.OFF_TYPE
_page_read = lib.ps_page_read
_page_read_many = lib.ps_page_read_many
_map_page_read = lib.ps_map_page_read
_map_read_many = lib.ps_map_read_many
