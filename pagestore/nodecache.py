"""nodecache: the B+tree's bounded LRU of nodes, each kept raw or decoded.

A clean node is kept as its raw page bytes (checked once by ``nodes.check``
when it enters the cache) and searched in C, one call per level
(``nodes.search``, ``nodes.child``). A node is decoded into a ``Node``
(Python lists) only when a change needs it (``decoded``). A put or delete
that neither overflows nor underfills its leaf changes the leaf's page in
place in C and keeps the new raw bytes (``changed_in_place``), so most
writes decode nothing. Splits, merges and redistributions change decoded
nodes only, and ``flush()`` builds every dirty node back into
``pager.write(pgno)`` (one C call, ``nodes.build``) and keeps a leaf's raw
bytes again. An internal node a change decoded stays decoded (with its page
image while clean, which a get searches in C); one a get meets is taken in
raw and searched so (btree.py's ``get``), never decoded by a read. A dirty node evicted from the LRU is built on the way
out.

WEIGHT: the capacity is counted in raw pages; a decoded node weighs what
its Python objects take, in pages (``decoded_weight``: from its entry count
and ``Node.size``, at least ``DECODED_WEIGHT``), weighed when it is decoded,
changed (``mark_dirty``) and built (``flush``). Pages the pager hands back are never kept: they may be
evicted and re-read, so the cache keeps its own copy of the bytes.

Callers: btree.py (operations and descent), split.py (structure changes),
treecheck.py (comparing cached nodes with their pages).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Iterable, Optional, Protocol, Set

from . import format as fmt
from . import nodes
from ._native import MapCalls
from .errors import CorruptionError
from .node import Node, decode
from .page import SlottedPage

#: What a decoded node weighs in the node cache at least, in raw pages (``decoded_weight``).
DECODED_WEIGHT = 4
#: Bytes a decoded node takes in Python beyond its page bytes (``Node.size``: keys, slots,
#: children or rids), per entry, as CPython 3.11 on 64 bits allocates them: the key's
#: ``bytes`` header (33, in 16-byte blocks) and its slot in ``keys`` (8), the value's slot in
#: ``vals`` (8) and the value, a child's ``int`` (32) or a leaf's rid tuple (64) and its page's
#: ``int`` (32). Measured at 10^7 records (bench/memwhere.py): a decoded internal node of
#: 4 KiB pages took 20 to 24 KB, not the 16 KiB that a fixed weight of four pages counted.
ENTRY_BYTES_INTERNAL = 88
ENTRY_BYTES_LEAF = 150
#: the Node and its two lists
NODE_BYTES = 250


def decoded_weight(node: Node, page_size: int) -> int:
    """decoded_weight: the pages a decoded node counts against the cache, from its entries and
    page bytes (O(1): ``Node.size`` is kept by every change), at least ``DECODED_WEIGHT``.

    Its Python objects take about ``NODE_BYTES`` plus ``ENTRY_BYTES_*`` per entry more than
    its page bytes: three to seven times the page for a full node of short keys.
    """
    per = ENTRY_BYTES_LEAF if node.leaf else ENTRY_BYTES_INTERNAL
    need = NODE_BYTES + per * len(node.vals) + node.size
    return max(DECODED_WEIGHT, -(-need // page_size))


class TreePager(Protocol):
    """TreePager is what the B+tree needs of a pager (pager.Pager, or a test double).

    ``lend`` is only called when the tree was made with ``lend=True``.
    """

    page_size: int
    meta: fmt.Meta
    #: the data file mapped read-only (pager.Pager with mmap), or None
    map: Optional[Any]
    #: the lean calls on the map (``_native.MapCalls``), for the tree's reads of mapped leaves
    map_calls: MapCalls
    #: pages whose newest image is not the data file's: never read from the map
    overlaid: Set[int]
    #: the current operation (a get's map hint is valid for a put in the same one)
    epoch: int

    def read(self, pgno: int) -> SlottedPage: ...

    def map_node(self, pgno: int) -> bytes: ...

    def write(self, pgno: int) -> SlottedPage: ...

    def write_image(self, pgno: int, image: bytes) -> SlottedPage: ...

    def allocate(self, page_type: int) -> SlottedPage: ...

    def free(self, pgno: int) -> None: ...

    def lend(self, pages: int) -> None: ...


class CacheEntry:
    """CacheEntry is one cached node: exactly one of ``raw`` and ``node`` is set.

    ``raw``: the page bytes (clean; searched in C). ``node``: the decoded
    form (maybe dirty: see ``NodeCache.dirty``). ``leaf``: the node's kind,
    known from either form, so the descent never reads a header byte.
    ``image``: of a decoded internal node while it is clean, the page bytes
    it was decoded from or last built into (None otherwise): a get's descent
    searches them in C (``_native.fast.node_child``), a step cheaper than
    bisecting the decoded keys once the store outgrows the CPU's caches (the
    keys are objects all over the heap, a dependent miss a probe; the page is
    one block, fetched at once). ``NodeCache.mark_dirty`` drops it.
    """

    __slots__ = ("pgno", "raw", "node", "leaf", "image", "decoded_pages")

    def __init__(self, pgno: int, raw: Optional[bytes], node: Optional[Node], leaf: bool) -> None:
        self.pgno = pgno
        self.raw = raw
        self.node = node
        self.leaf = leaf
        self.image: Optional[bytes] = None
        #: what the decoded form counts (``decoded_weight`` when it was last weighed)
        self.decoded_pages = DECODED_WEIGHT

    @property
    def weight(self) -> int:
        """weight: what the entry counts against the capacity (an internal node's image: one page more)."""
        if self.raw is not None:
            return 1
        return self.decoded_pages if self.image is None else self.decoded_pages + 1

    def __repr__(self) -> str:
        form = "raw" if self.raw is not None else "decoded"
        return f"<CacheEntry pgno={self.pgno} {form} {'leaf' if self.leaf else 'internal'}>"


class NodeCache:
    """NodeCache holds up to ``capacity`` pages' worth of nodes, least recently used first out.

    ``lru`` is read by the tree's descent directly (``get`` + ``move_to_end``
    is ``entry``'s hit path, inlined where a point read pays for every call);
    everything that adds, drops or changes an entry goes through a method.
    """

    def __init__(self, pager: TreePager, capacity: int, *, lend: bool = False) -> None:
        """``capacity``: in raw pages. ``lend``: lend the unused part of it to the
        pager's cache (``Pager.lend``), when the two share one budget."""
        if capacity < 1:
            raise ValueError(f"node_cache must be at least 1, got {capacity}")
        self.pager = pager
        self.page_size = pager.page_size
        self.capacity = capacity
        self.lru: "OrderedDict[int, CacheEntry]" = OrderedDict()
        self.weight = 0
        self.dirty: Set[int] = set()  # decoded nodes changed since their page was last built
        # the weight at the end of the last trim: a get that loads nothing trims only when it moved
        self.settled = 0
        self._lend, self._lent = lend, -1

    # ---- finding nodes ----

    def entry(self, pgno: int) -> CacheEntry:
        """entry returns the cache entry of ``pgno``, reading the page raw on a miss.

        Raises:
            CorruptionError: the page is damaged or not a node (names ``pgno``).
        """
        lru = self.lru
        e = lru.get(pgno)
        if e is not None:
            lru.move_to_end(pgno)
            return e
        raw = self.read_raw(pgno)
        e = lru[pgno] = CacheEntry(pgno, raw, None, nodes.is_leaf(raw))
        self.weight += 1
        return e

    def decoded(self, e: CacheEntry) -> Node:
        """decoded returns the Node of a cache entry, decoding a raw entry in place."""
        node = e.node
        if node is None:
            assert e.raw is not None
            node = e.node = decode(e.pgno, e.raw)
            if not e.leaf:
                e.image = e.raw  # clean: a get's descent searches these bytes (see CacheEntry)
            e.raw = None
            e.decoded_pages = decoded_weight(node, self.page_size)
            self.weight += e.weight - 1
        return node

    def load(self, pgno: int) -> Node:
        """load returns the decoded node of ``pgno``, decoding it in the cache if it was raw."""
        return self.decoded(self.entry(pgno))

    def view(self, pgno: int) -> Node:
        """view: ``load`` for reading only: a raw leaf is decoded for the caller and stays raw in the cache.

        Internal nodes are always decoded in the cache: a scan's path keeps
        them, and there are few of them.
        """
        e = self.entry(pgno)
        if e.raw is not None and e.leaf:
            return decode(pgno, e.raw)
        return self.decoded(e)

    def peek(self, pgno: int) -> Node:
        """peek returns the decoded node without caching it (whole-tree walks must not flood the LRU)."""
        e = self.lru.get(pgno)
        if e is None:
            return decode(pgno, self.read_raw(pgno))
        if e.node is not None:
            return e.node
        assert e.raw is not None
        return decode(pgno, e.raw)

    def cached(self, pgno: int) -> Optional[Node]:
        """cached returns the node as the cache holds it (decoded afresh if raw), or None; no LRU move."""
        e = self.lru.get(pgno)
        if e is None:
            return None
        if e.node is not None:
            return e.node
        assert e.raw is not None
        return decode(pgno, e.raw)

    def read_raw(self, pgno: int) -> bytes:
        """read_raw returns the bytes of node page ``pgno``, verified by the pager and checked as a node.

        A page whose newest image is in the mapped data file is copied from the map (verified
        there once, node check included); any other is read through the pager.
        """
        if not pgno:
            raise CorruptionError(0, "a tree pointer names page 0")
        pager = self.pager
        mm = pager.map
        if mm is not None and pgno not in pager.overlaid:
            return pager.map_node(pgno)  # one copy, no pager frame
        raw = bytes(self.pager.read(pgno).buffer)
        nodes.check(raw, pgno)  # every status it can return is a CorruptionError naming pgno
        return raw

    # ---- changing what is cached ----

    def changed_in_place(self, e: CacheEntry, page: SlottedPage) -> bytes:
        """changed_in_place keeps the new bytes of a raw entry's page, which the caller changed in C.

        Returns them (the new raw form).
        """
        assert e.raw is not None
        raw = e.raw = bytes(page.buffer)
        return raw

    def changed_to(self, e: CacheEntry, raw: bytes) -> None:
        """changed_to is ``changed_in_place`` for a caller that has the page's new bytes already
        (``nodes.leaf_insert_raw`` and ``leaf_remove_raw``, which copy them in the same C call as
        the change)."""
        assert e.raw is not None
        e.raw = raw

    def mark_dirty(self, node: Node) -> None:
        """mark_dirty records that a decoded, cached node changed: ``flush`` builds its page.

        Every change to a node's lists is followed by this call within the same
        operation, before any read of the tree: it drops the entry's image, which
        no longer says what the node holds."""
        self.dirty.add(node.pgno)
        e = self.lru.get(node.pgno)
        if e is not None:
            if e.image is not None:
                e.image = None
                self.weight -= 1
            self._reweigh(e, node)

    def _reweigh(self, e: CacheEntry, node: Node) -> None:
        """_reweigh counts a decoded entry's node as it is now (a change grew or shrank it)."""
        pages = decoded_weight(node, self.page_size)
        if pages != e.decoded_pages:
            self.weight += pages - e.decoded_pages
            e.decoded_pages = pages

    def adopt_raw(self, pgno: int, page: "SlottedPage | bytes") -> None:
        """adopt_raw caches the bytes of leaf ``pgno``, which the caller read in the map and then
        changed in place in ``page`` (``pager.write``), or those bytes themselves: the node was
        checked in the map."""
        assert pgno not in self.lru
        raw = page if type(page) is bytes else bytes(page.buffer)  # type: ignore[union-attr]
        self.lru[pgno] = CacheEntry(pgno, raw, None, True)
        self.weight += 1

    def adopt(self, node: Node) -> None:
        """adopt caches a node created in memory (its page freshly allocated) as dirty."""
        e = self.lru[node.pgno] = CacheEntry(node.pgno, None, node, node.leaf)
        e.decoded_pages = decoded_weight(node, self.page_size)
        self.weight += e.decoded_pages
        self.dirty.add(node.pgno)

    def release(self, pgno: int) -> None:
        """release forgets a node and gives its page back to the pager."""
        e = self.lru.pop(pgno, None)
        if e is not None:
            self.weight -= e.weight
        self.dirty.discard(pgno)
        self.pager.free(pgno)

    def write_node(self, node: Node) -> bytes:
        """write_node builds ``node`` into its page and returns the page's raw bytes."""
        page = self.pager.write(node.pgno)
        nodes.build(page, node.pgno, node.leaf, node.keys, node.vals)
        return bytes(page.buffer)

    def flush(self) -> None:
        """flush builds every dirty node into its page (``pager.write``) and keeps a leaf raw again.

        An internal node stays decoded: a get bisects it there, and making it
        raw at every commit would have the next get decode it again.
        """
        lru = self.lru
        for pgno in sorted(self.dirty):
            e = lru[pgno]
            assert e.node is not None
            raw = self.write_node(e.node)
            if e.leaf:
                self.weight -= e.weight - 1
                e.raw = raw
                e.node = None
            else:
                self._reweigh(e, e.node)
                if e.image is None:
                    e.image = raw  # clean again: what a get's descent searches (see CacheEntry)
                    self.weight += 1
        self.dirty.clear()

    def forget(self, pgnos: Iterable[int]) -> None:
        """forget drops the cached nodes of ``pgnos``: their pages changed under a reader (pager.on_change)."""
        lru = self.lru
        for pgno in pgnos:
            e = lru.pop(pgno, None)
            if e is not None:
                self.weight -= e.weight
                self.dirty.discard(pgno)

    def reset(self) -> None:
        """reset forgets every cached node, dirty ones included (after a rollback)."""
        self.lru.clear()
        self.weight = 0
        self.dirty.clear()

    def trim(self) -> None:
        """trim evicts least recently used nodes beyond the capacity, building dirty ones.

        Callers: the tree, only at the end of a public operation, so nodes an
        operation holds are never evicted under it.
        """
        lru, dirty = self.lru, self.dirty
        while self.weight > self.capacity and lru:
            pgno, e = lru.popitem(last=False)
            self.weight -= e.weight
            if e.node is not None and pgno in dirty:
                self.write_node(e.node)
                dirty.discard(pgno)
        # The share of the memory budget the nodes do not use yet is the
        # pager's to use (a store whose leaves fit leaves most of it idle).
        spare = self.capacity - self.weight
        if spare != self._lent and self._lend:
            self._lent = spare
            self.pager.lend(max(0, spare))
        self.settled = self.weight

    def check(self) -> Dict[str, int]:
        """check verifies the cache's own bookkeeping and returns its counts. O(entries).

        Every entry holds exactly one form, under its own page number, with
        the kind of node it holds; every dirty page is cached decoded; the
        weight is the sum of the entries'.

        Raises:
            AssertionError: a violation (the cache's state is the tree's own, never bytes from disk).
        """
        weight = 0
        decoded = 0
        for pgno, e in self.lru.items():
            assert e.pgno == pgno, f"entry of page {e.pgno} cached under {pgno}"
            assert (e.raw is None) != (e.node is None), f"page {pgno}: entry must hold exactly one form"
            if e.node is not None:
                assert e.node.pgno == pgno and e.node.leaf == e.leaf, f"page {pgno}: entry and node disagree"
                decoded += 1
                assert e.decoded_pages == decoded_weight(e.node, self.page_size), (
                    f"page {pgno}: counted as {e.decoded_pages} pages, weighs {decoded_weight(e.node, self.page_size)}")
                if e.image is not None:
                    assert not e.leaf and pgno not in self.dirty, f"page {pgno}: an image of a leaf or a dirty node"
                    shown = decode(pgno, e.image)
                    assert (shown.keys, shown.vals) == (e.node.keys, e.node.vals), f"page {pgno}: image and node disagree"
            else:
                assert e.raw is not None and nodes.is_leaf(e.raw) == e.leaf, f"page {pgno}: wrong kind"
                assert e.image is None, f"page {pgno}: a raw entry with an image"
            weight += e.weight
        for pgno in self.dirty:
            e2 = self.lru.get(pgno)
            assert e2 is not None and e2.node is not None, f"dirty page {pgno} is not cached decoded"
        assert weight == self.weight, f"weight {self.weight} != {weight} summed"
        return {"entries": len(self.lru), "decoded": decoded, "dirty": len(self.dirty), "weight": weight}
