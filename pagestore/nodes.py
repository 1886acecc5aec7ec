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

from array import array
from operator import itemgetter
from typing import List, Optional, Tuple

from . import format as fmt
from ._native import EFULL, OK, ffi, lib, raise_for
from .page import SlottedPage, _scratch  # the page layer's per-thread out-parameters

_node_search = lib.ps_node_search
_first = itemgetter(0)
_second = itemgetter(1)


def is_leaf(raw: bytes) -> bool:
    """is_leaf: the raw node's page type is PS_PAGE_LEAF."""
    return raw[fmt.OFF_TYPE] == fmt.PAGE_LEAF


def search(raw: bytes, key: bytes, after: bool, pgno: Optional[int] = None) -> Tuple[int, bool, int, int]:
    """search returns ``(index, equal, pgno, slot)`` for ``key`` in a raw node. One C call.

    ``after`` False: index = first key >= ``key`` (bisect_left) and ``equal``
    says whether that key is ``key``; True: first key > ``key``
    (bisect_right), ``equal`` always False. ``pgno``/``slot``: for a leaf the
    rid at ``index`` ((0, 0) past the end), for an internal node the page of
    child ``index``.

    Raises:
        CorruptionError: the bytes are not a sound node (names ``pgno``, the
            node's page number, which the caller knows and the bytes are not
            trusted to say).
    """
    u32, eq, u16 = _scratch()
    rc = _node_search(raw, len(raw), key, len(key), after, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "node search")
    return u32[0], bool(eq[0]), u32[1], u16[0]


def child(raw: bytes, key: bytes, pgno: Optional[int] = None) -> int:
    """child returns the page of the child of internal node ``raw`` whose range holds ``key``.

    ``search(raw, key, True)[2]``, for the descent: a point read takes one
    per level, and building search's whole tuple cost a fifth of the call.

    Raises:
        CorruptionError: as ``search``.
    """
    u32, eq, u16 = _scratch()
    rc = _node_search(raw, len(raw), key, len(key), True, u32, eq, u32 + 1, u16)
    if rc != OK:
        raise_for(rc, pgno, "node search")
    return u32[1]


def check(raw: bytes, pgno: int) -> None:
    """check verifies what makes a verified page a sound node: type, dense live slots,
    record lengths, strictly ascending keys, no child page 0.

    Raises:
        CorruptionError: naming ``pgno``.
    """
    rc = lib.ps_node_decode(raw, len(raw), ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, 0, _scratch()[0])
    if rc != OK:
        raise_for(rc, pgno)


def decode(raw: bytes, pgno: int) -> Tuple[bool, List[bytes], list]:
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
    count = _scratch()[0]
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


def _ptr32(arr: array):
    return ffi.from_buffer("uint32_t[]", arr)


def build(page: SlottedPage, pgno: int, leaf: bool, keys: List[bytes], vals: list) -> None:
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
    rc = lib.ps_node_build(page._ptr, page._size, pgno, ptype, b"".join(keys), _ptr32(klens), _ptr32(pgnos),
                           slots, len(vals))
    if rc != OK:
        raise_for(rc, pgno, f"node of {len(vals)} entries")


def leaf_insert(page: SlottedPage, index: int, key: bytes, pgno: int, slot: int) -> bool:
    """leaf_insert puts a new entry at ``index`` of a leaf page in place; False if it does not fit.

    ``index`` comes from ``search``; the C side refuses (ValueError) a key
    that does not lie strictly between its neighbours.
    """
    rc = lib.ps_node_leaf_insert(page._ptr, page._size, index, key, len(key), pgno, slot)
    if rc == OK:
        return True
    if rc == EFULL:
        return False
    raise_for(rc, page.pgno_hint, f"leaf insert at {index}")


def leaf_remove(page: SlottedPage, index: int) -> int:
    """leaf_remove drops entry ``index`` of a leaf page in place; returns the bytes the rest cost."""
    used = _scratch()[0]
    rc = lib.ps_node_leaf_remove(page._ptr, page._size, index, used)
    if rc != OK:
        raise_for(rc, page.pgno_hint, f"leaf remove at {index}")
    return used[0]


def leaf_set_rid(page: SlottedPage, index: int, pgno: int, slot: int) -> None:
    """leaf_set_rid points entry ``index`` of a leaf page at record (pgno, slot), in place."""
    rc = lib.ps_node_leaf_set_rid(page._ptr, page._size, index, pgno, slot)
    if rc != OK:
        raise_for(rc, page.pgno_hint, f"leaf entry {index}")
