"""nodes: the Python face of native/node.c, B+tree node pages searched, decoded and built in C.

The B+tree (btree.py) keeps clean nodes as their raw page bytes and searches
them here in one C call per level; it decodes a node into Python lists only
to change it, and builds the page back in one call. Before this, every node
that missed the tree's cache was decoded entry by entry in Python, which a
profile showed was 40% of a point read on a store larger than the cache.

The record layout is documented in native/pagestore.h (NODE PAGES) and
docs/format.md. Raw node bytes must come from a page the pager verified
(checksum and page structure); ``check`` then verifies what is particular to
nodes, and the C search still bounds-checks every slot it follows.

    >>> raw = bytes(built_leaf_page.buffer)
    >>> check(raw, pgno)                       # raises CorruptionError
    >>> search(raw, b"apple", False)           # (index, equal, pgno, slot)
    (3, True, 17, 2)
"""
from __future__ import annotations

import threading
from array import array
from operator import itemgetter
from typing import Any, List, Optional, Sequence, Tuple

from . import format as fmt
from ._native import EFULL, OK, MapHandle, fast, ffi, lib, raise_for, scratch
from .page import SlottedPage

_node_search = lib.ps_node_search
_map_search = lib.ps_map_node_search
_map_decode = lib.ps_map_node_decode
_LEAF = fmt.PAGE_LEAF
_INTERNAL = fmt.PAGE_INTERNAL
_tls = threading.local()
_first = itemgetter(0)
_second = itemgetter(1)


def is_leaf(raw: bytes) -> bool:
    """is_leaf: the raw node's page type is PS_PAGE_LEAF."""
    return raw[fmt.OFF_TYPE] == fmt.PAGE_LEAF


def search(raw: bytes, key: bytes, after: bool, pgno: Optional[int] = None) -> Tuple[int, bool, int, int]:
    """search returns ``(index, equal, pgno, slot)`` for ``key`` in a raw node. One C call.

    ``after`` False: index = first key >= ``key`` (bisect_left) and ``equal``
    says whether that key is ``key``; True: first key > ``key``
    (bisect_right), ``equal`` always False. The returned ``pgno``/``slot``:
    for a leaf the rid at ``index`` ((0, 0) past the end), for an internal
    node the page of child ``index``.

    Raises:
        CorruptionError: the bytes are not a sound node (names ``pgno``, the
            node's page number, which the caller knows and the bytes are not
            trusted to say).
    """
    u32, eq, u16 = scratch()
    rc = _node_search(raw, len(raw), key, len(key), after, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "node search")
    found: Tuple[int, bool, int, int] = (u32[0], bool(eq[0]), u32[1], u16[0])
    return found


def child(raw: bytes, key: bytes, pgno: Optional[int] = None) -> int:
    """child returns the page of the child of internal node ``raw`` whose range holds ``key``.

    ``search(raw, key, True)[2]``, for the descent: a point read takes one
    per level, and building search's whole tuple cost a fifth of the call.

    Raises:
        CorruptionError: as ``search``.
    """
    u32, eq, u16 = scratch()
    rc = _node_search(raw, len(raw), key, len(key), True, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "node search")
    child_pgno: int = u32[1]
    return child_pgno


def check(raw: bytes, pgno: int) -> None:
    """check verifies what makes a verified page a sound node: type, dense live slots,
    record lengths, strictly ascending keys, no child page 0.

    Raises:
        CorruptionError: naming ``pgno``.
    """
    rc = lib.ps_node_decode(raw, len(raw), ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, 0, scratch()[0])
    if rc != OK:
        raise_for(rc, pgno)


def decode(raw: bytes, pgno: int) -> Tuple[bool, List[bytes], List[Any]]:
    """decode returns ``(leaf, keys, vals)`` of a raw node, checking it as ``check`` does.

    Leaf: ``vals[i]`` is the rid ``(pgno, slot)`` of ``keys[i]``. Internal:
    ``vals`` are the child page numbers, one more than the keys.

    Raises:
        CorruptionError: naming ``pgno``.
    """
    if not fmt.is_valid_page_size(len(raw)):
        raise ValueError(f"a node page is a power of two from 512 to 65536 bytes, got {len(raw)}")
    n = min(raw[fmt.OFF_NSLOTS] | raw[fmt.OFF_NSLOTS + 1] << 8, fmt.MAX_SLOTS)
    # array.array + from_buffer + tolist beat ffi.new + ffi.unpack about 3x here
    starts = array("I", bytes(4 * n))
    ends = array("I", bytes(4 * n))
    pgnos = array("I", bytes(4 * n))
    slots = array("H", bytes(2 * n))
    count = scratch()[0]
    rc = lib.ps_node_decode(raw, len(raw), _ptr32(starts), _ptr32(ends), _ptr32(pgnos),
                            ffi.from_buffer("uint16_t[]", slots), n, count)
    if rc != OK:
        raise_for(rc, pgno)
    c = count[0]
    leaf = raw[fmt.OFF_TYPE] == fmt.PAGE_LEAF
    nkeys = c if leaf else c - 1
    keys = [raw[a:b] for a, b in zip(starts.tolist()[:nkeys], ends.tolist()[:nkeys])]
    if leaf:
        return True, keys, list(zip(pgnos.tolist()[:c], slots.tolist()[:c]))
    return False, keys, pgnos.tolist()[:c]


def _ptr32(arr: "array[int]") -> Any:
    return ffi.from_buffer("uint32_t[]", arr)


def build(page: SlottedPage, pgno: int, leaf: bool, keys: List[bytes], vals: List[Any]) -> None:
    """build writes a whole node into ``page`` (header, then entries in order). One C call.

    ``keys``/``vals`` as ``decode`` returns them. Raises PageFullError when
    they do not fit (the page is then untouched).
    """
    if len(keys) != (len(vals) if leaf else len(vals) - 1) or not (leaf or vals):
        kind = "a leaf needs one key per rid" if leaf else "an internal node needs one key fewer than its children"
        raise ValueError(f"{kind}: got {len(keys)} keys and {len(vals)} values")
    klens = array("I", map(len, keys))
    if leaf:
        pgnos = array("I", map(_first, vals))
        slots = ffi.from_buffer("uint16_t[]", array("H", map(_second, vals)))
        ptype = fmt.PAGE_LEAF
    else:
        pgnos = array("I", vals)
        slots = ffi.NULL
        ptype = fmt.PAGE_INTERNAL
    rc = lib.ps_node_build(page.cdata, page.page_size, pgno, ptype, b"".join(keys), _ptr32(klens), _ptr32(pgnos),
                           slots, len(vals))
    if rc != OK:
        raise_for(rc, pgno, f"node of {len(vals)} entries")


def build_leaf(page: SlottedPage, pgno: int, keys: List[bytes], pgnos: Sequence[int], slots: Sequence[int]) -> None:
    """build_leaf is ``build`` of a leaf whose rids come as two columns: entry i is
    ``keys[i]`` -> ``(pgnos[i], slots[i])``. One C call.

    For the bottom-up build (bulk.py), which keeps a leaf's rids so rather
    than as a tuple per record.

    Raises:
        ValueError: the three columns differ in length.
        PageFullError: the entries do not fit (the page is then untouched).
    """
    n = len(keys)
    if len(pgnos) != n or len(slots) != n:
        raise ValueError(f"a leaf needs one rid per key: got {n} keys, {len(pgnos)} pages and {len(slots)} slots")
    klens = array("I", map(len, keys))
    rc = lib.ps_node_build(page.cdata, page.page_size, pgno, _LEAF, b"".join(keys), _ptr32(klens),
                           _ptr32(array("I", pgnos)), ffi.from_buffer("uint16_t[]", array("H", slots)), n)
    if rc != OK:
        raise_for(rc, pgno, f"node of {n} entries")


def leaf_insert(page: SlottedPage, index: int, key: bytes, pgno: int, slot: int) -> bool:
    """leaf_insert puts a new entry at ``index`` of a leaf page in place; False if it does not fit.

    ``index`` comes from ``search``; the C side refuses (ValueError) a key
    that does not lie strictly between its neighbours.
    """
    rc = lib.ps_node_leaf_insert(page.cdata, page.page_size, index, key, len(key), pgno, slot)
    if rc == OK:
        return True
    if rc == EFULL:
        return False
    raise_for(rc, page.pgno_hint, f"leaf insert at {index}")


def leaf_insert_raw(page: SlottedPage, index: int, key: bytes, pgno: int, slot: int) -> Optional[bytes]:
    """leaf_insert_raw is ``leaf_insert`` returning the page's new bytes (the node cache's raw form
    of the leaf) instead of True, or None if it does not fit: the insert and the copy in one
    call where the frame is a bytearray (``_native.fast.leaf_insert``), as the pager's are.

    Raises:
        CorruptionError: the page is not a sound leaf (names its page).
        ValueError: ``key`` does not lie strictly between its neighbours at ``index``.
    """
    buf = page.buffer
    hint = page.pgno_hint
    if type(buf) is bytearray and type(key) is bytes and hint is not None:
        raw: Optional[bytes] = fast.leaf_insert(buf, index, key, pgno, slot, hint)
        return raw
    return bytes(buf) if leaf_insert(page, index, key, pgno, slot) else None


def leaf_remove(page: SlottedPage, index: int) -> int:
    """leaf_remove drops entry ``index`` of a leaf page in place; returns the bytes the rest cost."""
    used = scratch()[0]
    rc = lib.ps_node_leaf_remove(page.cdata, page.page_size, index, used)
    if rc != OK:
        raise_for(rc, page.pgno_hint, f"leaf remove at {index}")
    n: int = used[0]
    return n


def leaf_remove_raw(page: SlottedPage, index: int) -> Tuple[bytes, int]:
    """leaf_remove_raw is ``leaf_remove`` that also returns the page's new bytes (the node cache's
    raw form of the leaf): ``(raw, used)``, the removal and the copy in one call where the frame is
    a bytearray (``_native.fast.leaf_remove``), as the pager's are.

    Raises:
        CorruptionError: the page is not a sound leaf (names its page).
    """
    buf = page.buffer
    hint = page.pgno_hint
    if type(buf) is bytearray and hint is not None:
        r: Tuple[bytes, int] = fast.leaf_remove(buf, index, hint)
        return r
    used = leaf_remove(page, index)
    return bytes(buf), used


def leaf_set_rid(page: SlottedPage, index: int, pgno: int, slot: int) -> None:
    """leaf_set_rid points entry ``index`` of a leaf page at record (pgno, slot), in place."""
    rc = lib.ps_node_leaf_set_rid(page.cdata, page.page_size, index, pgno, slot)
    if rc != OK:
        raise_for(rc, page.pgno_hint, f"leaf entry {index}")


def search_many(
    raw: bytes, keys: Sequence[bytes], lo: int, hi: int, out: List[Optional[Tuple[int, int]]], pgno: Optional[int] = None
) -> None:
    """search_many looks ``keys[lo:hi]`` up in one raw leaf: ``out[t] = (pgno, slot)`` for each found.

    ``search`` per key without its per-call Python overhead (BTree.get_sorted
    searches a sorted batch's keys leaf by leaf): one C call per key, each on
    this page only.

    Raises:
        CorruptionError: as ``search`` (names ``pgno``, the leaf's page).
    """
    u32, eq, u16 = scratch()
    rid_pgno = u32 + 1
    n = len(raw)
    for t in range(lo, hi):
        key = keys[t]
        rc = _node_search(raw, n, key, len(key), False, u32, eq, rid_pgno, u16)
        if rc != OK:
            raise_for(rc, pgno, "node search")
        if eq[0]:
            out[t] = (u32[1], u16[0])
# ---- nodes read in place from the mapped data file (native/map.c) ----
#
# ``m`` is the map's C description (``_native.MapHandle``'s ``struct``; ``map_raw``
# takes the ``MapHandle`` itself) and ``mm`` the map; the page must be
# one whose newest image is in the data file (not in ``pager.overlaid``). C
# verifies the page the first time this store reads it; every error names it.


def map_child(m: Any, pgno: int, key: bytes) -> int:
    """map_child: ``child`` for internal node ``pgno`` read in place from the map. One C call.

    Raises:
        CorruptionError: naming ``pgno``: damaged, not an internal node, or outside the file.
    """
    u32, eq, u16 = scratch()
    rc = _map_search(m, pgno, _INTERNAL, key, len(key), True, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "internal node")
    return int(u32[1])


def map_search(m: Any, pgno: int, key: bytes) -> Tuple[int, bool, int, int]:
    """map_search: ``search(raw, key, False)`` for leaf ``pgno`` read in place from the map. One C call.

    Raises:
        CorruptionError: naming ``pgno``: damaged, not a leaf, or outside the file.
    """
    u32, eq, u16 = scratch()
    rc = _map_search(m, pgno, _LEAF, key, len(key), False, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "leaf")
    return u32[0], bool(eq[0]), u32[1], u16[0]


def map_raw(h: MapHandle, mm: Any, pgno: int) -> bytes:
    """map_raw returns a copy of node page ``pgno`` from the map ``mm`` that ``h`` describes,
    verified (once) and checked as a node.

    Raises:
        CorruptionError: naming ``pgno``: damaged, not a node, or outside the file.
    """
    m = h.struct
    rc = lib.ps_map_check(m, pgno)
    if rc != OK:
        raise_for(rc, pgno)
    size = m.page_size
    raw: bytes = mm[pgno * size : (pgno + 1) * size]
    if raw[fmt.OFF_TYPE] not in (_LEAF, _INTERNAL):
        raise_for(lib.PS_ENODE_TYPE, pgno)
    return raw


def _map_index(m: Any, pgno: int, key: bytes, after: bool) -> int:
    u32, eq, u16 = scratch()
    rc = _map_search(m, pgno, _LEAF, key, len(key), after, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "leaf")
    return int(u32[0])


def _leafscratch() -> Tuple[Any, ...]:
    """_leaf_scratch: this thread's arrays for a whole leaf's offsets, rids and count (PS_MAX_SLOTS each)."""
    try:
        return _tls.leaf  # type: ignore[no-any-return]
    except AttributeError:
        n = fmt.MAX_SLOTS
        offs, ends, pgnos, slots = array("Q", bytes(8 * n)), array("Q", bytes(8 * n)), array("I", bytes(4 * n)), array("H", bytes(2 * n))
        _tls.leaf = t = (offs, ends, pgnos, slots, ffi.from_buffer("uint64_t[]", offs),
                         ffi.from_buffer("uint64_t[]", ends), ffi.from_buffer("uint32_t[]", pgnos),
                         ffi.from_buffer("uint16_t[]", slots), ffi.new("uint32_t *"))
        return t


def map_leaf_run(
    m: Any, mm: Any, pgno: int, start: Optional[bytes], after: bool, stop: Optional[bytes]
) -> Tuple[int, int, int, List[bytes], List[int], List[int]]:
    """map_leaf_run returns a run of leaf ``pgno``'s entries, read in place from the map.

    The entries [i, j): i is the first whose key is >= ``start`` (> with
    ``after``; 0 without a start), j the first whose key is >= ``stop`` (the
    leaf's count without a stop; never below i). Returns ``(i, j, count,
    keys, rid pages, rid slots)``, the three lists for [i, j) only. One C call
    decodes (and checks) the whole leaf, one more per bound finds it; only
    the keys of the run are sliced out of the map.

    Raises:
        CorruptionError: naming ``pgno``: damaged, not a leaf, or outside the file.
    """
    offs, ends, pgnos, slots, p_offs, p_ends, p_pgnos, p_slots, count = _leafscratch()
    rc = _map_decode(m, pgno, _LEAF, p_offs, p_ends, p_pgnos, p_slots, fmt.MAX_SLOTS, count)
    if rc != OK:
        raise_for(rc, pgno, "leaf")
    c = count[0]
    i = 0 if start is None else _map_index(m, pgno, start, after)
    j = c if stop is None else max(i, _map_index(m, pgno, stop, False))
    keys = [mm[a:b] for a, b in zip(offs[i:j], ends[i:j])]
    return i, j, c, keys, pgnos[i:j].tolist(), slots[i:j].tolist()


def leaf_run(
    raw: bytes, pgno: int, start: Optional[bytes], after: bool, stop: Optional[bytes]
) -> Tuple[int, int, int, List[bytes], List[int], List[int]]:
    """leaf_run is ``map_leaf_run`` on a raw leaf (a cached copy): the same C calls, page-relative.

    Raises:
        CorruptionError: naming ``pgno``, also when the node is not a leaf.
    """
    if raw[fmt.OFF_TYPE] != _LEAF:
        raise_for(lib.PS_ETYPE if raw[fmt.OFF_TYPE] == _INTERNAL else lib.PS_ENODE_TYPE, pgno, "not a leaf")
    offs, ends, pgnos, slots = _raw_scratch()
    count = scratch()[0]
    rc = lib.ps_node_decode(raw, len(raw), _ptr32(offs), _ptr32(ends), _ptr32(pgnos),
                            ffi.from_buffer("uint16_t[]", slots), fmt.MAX_SLOTS, count)
    if rc != OK:
        raise_for(rc, pgno)
    c = count[0]
    u32, eq, u16 = scratch()
    if start is None:
        i = 0
    else:
        rc = _node_search(raw, len(raw), start, len(start), after, u32, eq, u32 + 1, u16)
        if rc != OK:
            raise_for(rc, pgno, "leaf")
        i = u32[0]
    if stop is None:
        j = c
    else:
        rc = _node_search(raw, len(raw), stop, len(stop), False, u32, eq, u32 + 1, u16)
        if rc != OK:
            raise_for(rc, pgno, "leaf")
        j = max(i, u32[0])
    keys = [raw[a:b] for a, b in zip(offs[i:j], ends[i:j])]
    return i, j, c, keys, pgnos[i:j].tolist(), slots[i:j].tolist()


def _raw_scratch() -> Tuple["array[int]", "array[int]", "array[int]", "array[int]"]:
    """_raw_scratch: this thread's arrays for a whole raw leaf's offsets and rids (PS_MAX_SLOTS each)."""
    try:
        return _tls.raw  # type: ignore[no-any-return]
    except AttributeError:
        n = fmt.MAX_SLOTS
        _tls.raw = t = (array("I", bytes(4 * n)), array("I", bytes(4 * n)), array("I", bytes(4 * n)),
                        array("H", bytes(2 * n)))
        return t


def leaf_columns(raw: bytes, pgno: int) -> Tuple[List[bytes], List[int], List[int]]:
    """leaf_columns: ``decode`` of a raw leaf as three lists, keys, rid pages and rid slots.

    Raises:
        CorruptionError: naming ``pgno`` (as ``decode``), also when the node is not a leaf.
    """
    leaf, keys, vals = decode(raw, pgno)
    if not leaf:
        raise_for(lib.PS_ETYPE, pgno, "not a leaf")
    return keys, [v[0] for v in vals], [v[1] for v in vals]
