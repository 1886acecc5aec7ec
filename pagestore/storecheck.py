"""storecheck: the store's cross-layer check, what no single layer can see.

A STORE IS VALID if and only if: each layer's own check passes (the B+tree's
with its node cache, ``treecheck.py``; the pager's free list and cache, and
the log's; the heap's free-space map); every record id the tree holds is a
live heap record referenced by exactly one key, and every live heap record
is referenced (a heap page's live count equals its references); each
overflow chain is sound and its pages belong to that record alone; every
page but the header is accounted for exactly once (tree, heap, overflow,
free-space map, free list) and lies inside the file; the free-space map
offers only heap pages; the header's record count, live bytes and free-page
count equal what was counted.

Callers: ``Store.check`` only (with its lock held and an operation begun),
and so ``open(strict=True)`` after every commit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict

from . import format as fmt
from .errors import CorruptionError

if TYPE_CHECKING:
    from .btree import BTree
    from .heap import Heap
    from .pager import Pager


def check_store(pager: Pager, tree: BTree, heap: Heap) -> Dict[str, int]:
    """check_store verifies every invariant of the store (module docstring) and returns its counts. O(pages).

    Memory: one bit per heap slot, and a dict entry per page.

    Raises:
        CorruptionError: naming the first page found wrong.
    """
    meta = pager.meta
    owner: Dict[int, str] = {}

    def claim(pgno: int, what: str) -> None:
        if pgno <= 0 or pgno >= meta.page_count:
            raise CorruptionError(pgno, f"{what} page outside the file")
        if pgno in owner:
            raise CorruptionError(pgno, f"page claimed twice: by {owner[pgno]} and {what}")
        owner[pgno] = what

    tree_stats = tree.check()
    pager.check()
    heap.check()
    for pgno in tree.pages():
        claim(pgno, "tree")
    for pgno in pager.freelist():
        claim(pgno, "free list")
    for pgno in heap.fsm.pages:
        claim(pgno, "free-space map")
    refs: Dict[int, bytearray] = {}
    records = 0
    live_bytes = 0
    for key, rid in tree.entries():
        pager.begin_operation()
        pgno, slot = rid
        length, chain = heap.check_record(rid)
        bits = refs.get(pgno)
        if bits is None:
            claim(pgno, "heap")
            bits = refs[pgno] = bytearray(fmt.MAX_SLOTS // 8 + 1)
        if bits[slot >> 3] & (1 << (slot & 7)):
            raise CorruptionError(pgno, f"record id ({pgno}, {slot}) is referenced by two keys")
        bits[slot >> 3] |= 1 << (slot & 7)
        for p in chain:
            claim(p, "overflow")
        records += 1
        live_bytes += len(key) + length
    for pgno, bits in refs.items():
        pager.begin_operation()
        page = pager.read(pgno)
        referenced = sum(bin(b).count("1") for b in bits)
        if referenced != page.nlive:
            raise CorruptionError(pgno, f"heap page has {page.nlive} live records but {referenced} are referenced")
        heap.check_page(pgno)
    for pgno in range(1, meta.page_count):
        if pgno not in owner:
            pager.begin_operation()
            page = pager.read(pgno)
            raise CorruptionError(pgno, f"page of type {page.page_type} is not accounted for (leaked)")
    for pgno, c in heap.fsm.offered():
        if owner.get(pgno) != "heap" and c:
            raise CorruptionError(pgno, "free-space map offers a page that is not a heap page")
    if not pager.readonly and not heap.fsm.same_as_stored():
        # a writer's map in memory went astray from its pages (another process's commits
        # not caught up with: issue 26)
        raise CorruptionError(meta.fsm_head, "the free-space map in memory differs from its pages")
    if records != meta.record_count:
        raise CorruptionError(0, f"header counts {meta.record_count} records, the tree holds {records}")
    if live_bytes != meta.live_bytes:
        raise CorruptionError(0, f"header counts {meta.live_bytes} live bytes, records hold {live_bytes}")
    free = sum(1 for v in owner.values() if v == "free list")
    if free != meta.freelist_count:
        raise CorruptionError(0, f"header counts {meta.freelist_count} free pages, the list holds {free}")
    return {
        "records": records,
        "pages": meta.page_count,
        "heap_pages": len(refs),
        "free_pages": free,
        "overflow_pages": sum(1 for v in owner.values() if v == "overflow"),
        **{f"tree_{k}": v for k, v in tree_stats.items()},
    }

