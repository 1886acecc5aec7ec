"""pagemap: the data file's clean pages, mapped read-only, and which of them are verified.

``PageMap`` is the pager's map of the data file (``fileio.File.map``, read-only and
shared). A page whose newest committed image is in the data file can be read in place
by the layers above, through its C description (``_native.MapHandle``, which the
``nodes``/``page`` map calls open; this module holds it whole and never looks inside)
and ``map`` (sliced into ``bytes``), with no pread, no copy
and no cache entry. Which pages that is not true of (the pager's ``overlaid``) is the
pager's business, not the map's.

Verified bits: a mapped page is verified (checksum, stamped number, structure) the
first time this open store reads it, and its bit set in ``verified`` (a bit a page,
which C reads and sets too); ``unverify`` clears the bit of a page whose bytes in the
file are about to change (a checkpoint, a direct write); ``trust`` sets it again once a
checkpoint's copy of a page that is not a node is synced (the copy is an image the pager
verified, or made itself).

Lifecycle: ``remap`` replaces the map when the file grew past it; the replaced map is
kept (``_retire``) while a snapshot may still read it, and closed when nothing else
refers to it. ``unmap`` closes every map, after clearing the C description and releasing the
buffers C saw, before anything could shrink the file. Only the C calls see a pointer
into a map, and only through the description: no view into a replaced mapping survives
(``mmap.close`` refuses while one exists).

The pager owns one ``PageMap`` for its life (so callers may keep ``handle`` and ``calls``); this
module does no I/O of its own but ``File.map``.
"""
from __future__ import annotations

import mmap as _mmap
import sys
from typing import Any, Callable, List, Optional, Tuple

from . import fileio, nodes
from ._native import MapHandle
from .errors import PageStoreError
from .page import RecordLookup

_refcount: Optional[Callable[[object], int]] = getattr(sys, "getrefcount", None)


class PageMap:
    """PageMap is the data file mapped read-only, its C description and its verified bits;
    see the module docstring."""

    def __init__(self, page_size: int, use: bool = True) -> None:
        #: whether to map at all (``mmap=False``: every read goes through the pager's cache)
        self.use = use
        #: the data file mapped read-only, or None (not used, or nothing to map yet)
        self.map: Optional[_mmap.mmap] = None
        # One ps_map_t for the pager's life: its fields change when the map
        # does, so callers may keep the pointer. base NULL and len 0 when unmapped.
        self._handle = MapHandle(page_size)
        #: the lean calls on this map for the tree (``_native.MapCalls``)
        self.calls = self._handle.calls
        #: what ``_native.fast``'s map calls take for the map: an int with _fastpage, the C
        #: description through cffi (``MapHandle.fast``). The same for the map's life.
        self.handle: Any = self._handle.fast
        self._lookup = RecordLookup()  # C out-parameters of ``find_records``
        self.page_size = page_size
        self.verified = bytearray()  # bit pgno: page pgno of the map has been verified
        self._retired: List[_mmap.mmap] = []  # replaced maps a snapshot may still read (_retire)

    def set_page_size(self, page_size: int) -> None:
        """set_page_size sets the page size (the file's, known once it is open); it cannot change under a map."""
        assert self.map is None or page_size == self.page_size
        self.page_size = page_size
        self._handle.set_page_size(page_size)

    def remap(self, file: fileio.File, page_size: int) -> Optional[_mmap.mmap]:
        """remap maps ``file``'s whole pages (of ``page_size`` bytes), replacing the map if the file
        grew past it; returns the map now in use (None: not mapped).

        Verified bits carry over: pages the map covered are the same bytes in
        the new map (a checkpoint clears the bits of the pages it rewrites).
        The old map is not closed here: a snapshot may still read it (it is
        closed when the last reference goes); only ``unmap`` closes it,
        before anything could shrink the file.
        """
        if not self.use:
            return None
        if page_size != self.page_size:
            self.set_page_size(page_size)
        ps = page_size
        size = file.size() // ps * ps
        if self.map is not None and len(self.map) == size:
            return self.map
        self._handle.detach()
        if self.map is not None:
            self._retire(self.map)
        self.map = None
        if size < 2 * ps:  # only the header: no slotted page to map yet
            return None
        self.map = file.map(size)
        bits = bytearray((size // ps + 7) // 8)
        bits[: len(self.verified)] = self.verified[: len(bits)]
        self.verified = bits
        self._handle.attach(self.map, self.verified, ps)
        return self.map

    def _retire(self, mm: _mmap.mmap) -> None:
        """_retire keeps a replaced map until no snapshot reads it, then closes it; closes the
        retired maps nobody else refers to any more.

        Closed, not left to the garbage collector: a map holds a duplicate of the
        file's descriptor, and with it the writer's ``flock``, so a map still
        alive after ``close`` kept the store locked against the next open.
        """
        self._retired.append(mm)
        keep = []
        for old in self._retired:
            # held only by the list, this loop and getrefcount's argument
            if not (_refcount is not None and _refcount(old) <= 3 and _close_map(old)):
                keep.append(old)
        del old
        self._retired = keep

    def unmap(self) -> None:
        """unmap closes the map, first clearing its C description and releasing the buffers C saw,
        and every retired map (``_retire``): the file is closing or about to shrink, and the
        snapshots that read them are over. The verified bits stay (the file's bytes do).

        Raises:
            BufferError: something still holds a view into the map (a bug:
                nothing above the pager may keep one).
        """
        self._handle.detach()
        retired, self._retired = self._retired, []
        for old in retired:
            _close_map(old)
        if self.map is not None:
            mm, self.map = self.map, None
            mm.close()

    def unverify(self, pgno: int) -> None:
        """unverify clears page ``pgno``'s verified bit: its bytes in the file are about to change."""
        i = pgno >> 3
        if i < len(self.verified):
            self.verified[i] &= ~(1 << (pgno & 7)) & 0xFF

    def trust(self, pgnos: List[int]) -> None:
        """trust sets the verified bits of pages ``pgnos``, whose bytes in the file are now images
        the caller verified or made itself, synced (a checkpoint's copies), so that the next read
        of one does not check it again. Not for node pages: their bit also promises the node
        check, which is the map's or the tree's to make."""
        verified = self.verified
        n = len(verified)
        for pgno in pgnos:
            i = pgno >> 3
            if i < n:
                verified[i] |= 1 << (pgno & 7)

    def unverify_all(self) -> None:
        """unverify_all clears every verified bit (in place: C holds the buffer)."""
        self.verified[:] = bytes(len(self.verified))

    def forget(self) -> None:
        """forget drops the verified bits of an unmapped file: the next file is another (``Pager.adopt``)."""
        assert self.map is None
        self.verified = bytearray()

    def is_verified(self, pgno: int) -> bool:
        """is_verified: whether page ``pgno`` of the map has been verified by this open store."""
        i = pgno >> 3
        return i < len(self.verified) and bool(self.verified[i] >> (pgno & 7) & 1)

    def node(self, pgno: int) -> bytes:
        """node returns a copy of node page ``pgno`` from the map, verified (once) and checked as a
        node (``nodes.map_raw``). For a page whose newest image is in the data file.

        Raises:
            CorruptionError: naming ``pgno``: damaged, not a node, or outside the map.
        """
        return nodes.map_raw(self._handle, self.map, pgno)

    def find_records(self, pgnos: List[int], slots: List[int], page_type: int) -> Tuple[List[int], List[int], List[int]]:
        """find_records finds record ``slots[i]`` of page ``pgnos[i]`` of the map, for every i, in one C
        call (``RecordLookup.map_find_many``; page number 0: skipped): offsets from the map's start,
        lengths and states, a state of 0 where there is no live record of ``page_type`` there (or
        the page is damaged: the caller reads it through the pager, which names it)."""
        return self._lookup.map_find_many(self._handle, [], pgnos, slots, page_type)

    def mapped_bytes(self) -> int:
        """mapped_bytes: the bytes of the data file mapped now."""
        return len(self.map) if self.map is not None else 0

    def check(self) -> None:
        """check verifies that the C description describes the current map (base, length, page size, and
        the verified bits, one for each page of the map, at least). Callers: ``Pager.check``.

        Raises:
            PageStoreError: the description and the map differ.
        """
        length = self.mapped_bytes()
        sound = self._handle.describes(length, self.page_size, len(self.verified))
        if length and len(self.verified) < (length // self.page_size + 7) // 8:
            sound = False
        if not sound:
            raise PageStoreError("pager: the map's C description does not match the map")


def _close_map(mm: _mmap.mmap) -> bool:
    """_close_map closes a retired map; False if a view into it is still alive (then the GC will)."""
    try:
        mm.close()
    except BufferError:  # pragma: no cover - a view into it is alive
        return False
    return True
