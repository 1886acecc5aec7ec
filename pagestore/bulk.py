"""bulk: build a B+tree and its heap bottom-up from records that arrive in key order.

Callers: the store, inside one write (one pager transaction), for a store
that holds no records. Random inserts descend the tree once per record,
change a leaf in place, split it when it overflows, and leave leaves and
heap pages about two-thirds full. Records that arrive in key order into an
empty tree need none of that: this module fills each page once, in order,
and writes it once.

    builder = Builder(pager, heap, tree)
    refused = builder.extend(pairs)     # bytes pairs, taken while the keys ascend
    builder.finish()                    # the tree is complete and valid from here on
    # refused: None, or the first pair out of order; it and the rest go in one by one

HEAP: small values (at most ``heap.inline_max``) are gathered until the next
one would not fit a page, then written into a fresh heap page with one
``append_many`` (slots 0..n-1 in key order, so a scan reads each heap page
once). A large value has its overflow chain written at once
(``heap.write_chain``) and its stub placed by best fit (``heap.place_stub``)
over the whole free-space map: stubs fill the room the small values' pages leave.
(Gathering stubs with the small values instead skipped the search but made
the file 1.3% larger on the bench's mixed values.)

TREE: leaves are filled to the page, internal nodes likewise, one level
above the other. A heap page's keys go into the leaf being filled as one run
(the keys, and their rids as two columns: heap pages and slots) when they fit
it, which most do; entry by entry otherwise. Each level keeps two nodes in
memory, the last one it closed and the one it is filling, so that at the end
an underfull last node can share entries with its full neighbour (every node
but the root must hold at least a quarter of a page for leaves, a sixth for
internal nodes; see btree.py). Memory is bounded by two nodes per level and
one heap page of records (or _MAX_PENDING keys), whatever the input's length:
finished pages go to the pager, which spills them to the log when its cache
is full.

WHY ``extend`` rather than a call per record: the loop over the input is
this module's, with its state in local variables, and no tuple is made per
record. On 50,000 of the bench's mixed records (``bench/bulk_load.py``) that
took ``update()`` from 0.30 to 0.27 s. Since then (0.20 -> about 0.16 s on
a quiet machine): overflow chains go straight to the data file, built in C
(``heap.write_chain(direct=True)``, ``Pager.write_run``); the build's older
pages are written out and the disk started on them as it goes, so the
commit's sync waits for little (``Pager._write_back``); stubs go by best fit
without the heap's hot-page search; a run of keys straddling two leaves is
bisected. What is left, roughly equal parts: the loop over the input, the
heap pages (allocate, ``append_many``), the chains' C and pwrite, the
kernel's page cache for 45 MiB, checksums, and the commit's syncs.
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Tuple

from . import format as fmt
from . import nodes
from .node import INTERNAL_COST as _INTERNAL_COST
from .node import LEAF_COST as _LEAF_COST
from .node import separator as _separator
from .heap import MAX_VALUE as _MAX_VALUE
from .split import choose_split

if TYPE_CHECKING:
    from .btree import BTree
    from .heap import Heap
    from .pager import Pager

_SLOT_SIZE = fmt.SLOT_SIZE
_MAX_SLOTS = fmt.MAX_SLOTS
#: Keys waiting for their heap page: past this many (a run of large values,
#: whose stubs are placed at once) the page is written part full, so that
#: memory stays bounded.
_MAX_PENDING = 4096
Pair = Tuple[bytes, bytes]


class _Level:
    """_Level builds the nodes of one tree level, left to right.

    ``keys``/``vals`` are the node being filled: a leaf's keys, and in
    ``vals`` and ``slots`` its rids as two columns (heap page, slot); an
    internal node's separators and child pages (one more child than keys,
    ``slots`` unused). ``low`` is the key that separates it from the node
    before it (None for the first node of the level). ``prev`` is the last
    node closed, not yet written: (keys, vals, slots, low).
    """

    __slots__ = ("leaf", "keys", "vals", "slots", "size", "low", "prev", "count")

    def __init__(self, leaf: bool) -> None:
        self.leaf = leaf
        self.keys: List[bytes] = []
        self.vals: List[int] = []
        self.slots: List[int] = []
        self.size = 0
        self.low: Optional[bytes] = None
        self.prev: Optional[Tuple[List[bytes], List[int], List[int], Optional[bytes]]] = None
        self.count = 0  # nodes written at this level


class Builder:
    """Builder fills a tree and heap in key order; see the module docstring.

    The store must hold no records (``meta.record_count == 0``); the builder
    frees the empty root leaf such a store may keep. Every record it accepts
    is counted in ``meta.record_count`` and ``meta.live_bytes``.
    """

    def __init__(self, pager: "Pager", heap: "Heap", tree: "BTree") -> None:
        meta = pager.meta
        if meta.record_count:
            raise ValueError("a bottom-up build needs a store without records")
        self.pager, self.heap, self.tree = pager, heap, tree
        tree.flush()
        if meta.root:
            # The tree shrinks to one empty root leaf, never to nothing: give it back.
            pager.free(meta.root)
            meta.root, meta.tree_height = 0, 0
        tree.reset()
        self.usable = pager.page_size - fmt.HEADER_SIZE
        self.levels: List[_Level] = [_Level(True)]
        self.last: Optional[bytes] = None
        # the run waiting for its heap page, in key order: every key; the small
        # values and the bytes they need; the large values' placed stubs, as
        # (index in batch_keys, rid)
        self.batch_keys: List[bytes] = []
        self.batch_recs: List[bytes] = []
        self.batch_placed: List[Tuple[int, Tuple[int, int]]] = []
        self.batch_bytes = 0
        self.inline_max = heap.inline_max
        self.max_key = tree.max_key
        self.finished = False

    # ---- input ----

    def add(self, key: bytes, value: bytes) -> bool:
        """add takes the next record; False (and nothing changes) if ``key`` is not above the last one.

        ``extend`` of one record; a caller with many records passes them all to ``extend``.

        Raises:
            ValueError: the key is longer than the tree accepts.
        """
        return self.extend(iter(((key, value),))) is None

    def extend(self, pairs: Iterator[Any], convert: Optional[Callable[[Any, Any], Pair]] = None) -> Optional[Pair]:
        """extend takes records from ``pairs`` (bytes keys and values) while their keys ascend.

        With ``convert``, a pair that is not two ``bytes``, or whose key is
        longer than the tree accepts, is replaced by ``convert(key, value)``
        first (the store's codecs and checks, which raise for what it refuses).
        Returns None when ``pairs`` is exhausted, or the first pair whose key
        is not above the last one taken: it is not taken, and the rest of
        ``pairs`` is left unread. O(1) amortised per record, plus its pages.

        Raises:
            ValueError: a key is longer than the tree accepts, or a value
                longer than an overflow stub can say (the records before it
                are taken; the caller's write is then undone).
            whatever ``convert`` raises.
        """
        last = self.last
        max_key, inline_max, room = self.max_key, self.inline_max, self.usable
        # Only a page of 64 KiB has room for more small records than a page has slots.
        few_slots = room // _SLOT_SIZE > _MAX_SLOTS
        keys, recs, placed = self.batch_keys, self.batch_recs, self.batch_placed
        used = self.batch_bytes
        large = 0  # bytes of the large values taken (the rest _flush_heap counts)
        refused: Optional[Pair] = None
        try:
            for key, value in pairs:
                if type(key) is not bytes or type(value) is not bytes or len(key) > max_key:
                    if convert is not None:
                        key, value = convert(key, value)
                    if len(key) > max_key:
                        raise ValueError(
                            f"key of {len(key)} bytes exceeds the longest this page size allows ({max_key})")
                if last is not None and key <= last:
                    refused = (key, value)
                    break
                last = key
                n = len(value)
                if n > inline_max:
                    if n > _MAX_VALUE:
                        raise ValueError(f"value of {n} bytes exceeds the maximum of {_MAX_VALUE}")
                    large += n
                    # Its chain now, its stub by best fit among the heap pages
                    # with room (gaps the page-sized runs below leave); its key
                    # waits in the run, for the leaves take keys in order.
                    self.pager.begin_operation()  # its overflow pages need not stay pinned
                    placed.append((len(keys), self.heap.place_stub(self.heap.write_chain(value, direct=True))))
                    keys.append(key)
                    if len(keys) >= _MAX_PENDING:
                        self._flush_heap()
                        used = 0
                    continue
                used += n + _SLOT_SIZE
                if used > room or (few_slots and len(recs) >= _MAX_SLOTS):
                    self._flush_heap()
                    used = n + _SLOT_SIZE
                keys.append(key)
                recs.append(value)
        finally:
            self.last = last
            self.batch_bytes = used
            self.pager.meta.live_bytes += large
        return refused

    def _flush_heap(self) -> None:
        """_flush_heap writes the waiting values into one new heap page and every waiting key into the leaves.

        It counts the records in ``meta.record_count`` and their keys and small
        values in ``meta.live_bytes`` (``extend`` counts the large values):
        sums over the run, not additions per record.
        """
        keys, recs, placed = self.batch_keys, self.batch_recs, self.batch_placed
        m = len(recs)
        pgno = 0
        key_bytes = sum(map(len, keys))
        meta = self.pager.meta
        meta.record_count += len(keys)
        meta.live_bytes += key_bytes + sum(map(len, recs))
        if m:
            pager = self.pager
            pager.begin_operation()  # unpin the pages written so far: the cache may spill them
            page = pager.allocate(fmt.PAGE_HEAP)
            pgno = page.pgno
            page.append_many(recs)
            self.heap.fsm.set(pgno, page.max_insert)
        n = len(keys)
        if placed:
            # The run's rids as two columns: slots 0.. for the values in this
            # page, in order, and each placed stub's own rid at its index.
            pgnos = [pgno] * n
            slots = [0] * n
            at = done = 0
            for i, (stub_pgno, stub_slot) in placed:
                slots[at:i] = range(done, done + i - at)
                done += i - at
                pgnos[i], slots[i] = stub_pgno, stub_slot
                at = i + 1
            slots[at:] = range(done, done + n - at)
        else:
            pgnos, slots = [pgno] * n, list(range(n))
        level = self.levels[0]
        usable = self.usable
        add = _LEAF_COST * n + key_bytes
        if level.size + add <= usable:
            # The common case: the whole run fits the leaf being filled.
            level.keys += keys
            level.vals += pgnos
            level.slots += slots
            level.size += add
        elif n:
            # The run straddles leaves: as much as fits, then a new leaf for
            # the rest (one page's keys always fit an empty leaf, but a page
            # of 64 KiB with small records may not: then more leaves).
            # Bisection over the run's running cost in place of one
            # _add_leaf call per entry (7,900 calls on bench/bulk_load.py).
            cum = list(accumulate(map(_LEAF_COST.__add__, map(len, keys))))
            i = done = 0
            while i < n:
                j = bisect_right(cum, done + usable - level.size, i)
                if j == i:
                    assert level.keys, "a key too long for an empty leaf"
                    self._close(0)
                    level.low = _separator(level.prev[0][-1], keys[i])  # type: ignore[index]
                    continue
                level.keys += keys[i:j]
                level.vals += pgnos[i:j]
                level.slots += slots[i:j]
                level.size += cum[j - 1] - done
                done = cum[j - 1]
                i = j
        keys.clear()
        recs.clear()
        placed.clear()
        self.batch_bytes = 0

    # ---- levels ----

    def _add_child(self, depth: int, key: Optional[bytes], child: int) -> None:
        """_add_child appends a child page to internal level ``depth``, with the separator
        below it (None for the level's first child)."""
        level = self.levels[depth]
        if not level.vals:
            level.vals.append(child)
            level.size = _INTERNAL_COST
            level.low = key
            return
        assert key is not None
        cost = _INTERNAL_COST + len(key)
        if level.size + cost > self.usable:
            self._close(depth)
            level.vals.append(child)
            level.size = _INTERNAL_COST
            level.low = key
            return
        level.keys.append(key)
        level.vals.append(child)
        level.size += cost

    def _close(self, depth: int) -> None:
        """_close ends the node being filled at ``depth``: it becomes ``prev``, and the former ``prev`` is written."""
        level = self.levels[depth]
        if level.prev is not None:
            self._emit(depth, *level.prev)
        level.prev = (level.keys, level.vals, level.slots, level.low)
        level.keys, level.vals, level.slots, level.size = [], [], [], 0

    def _write_node(self, depth: int, keys: List[bytes], vals: List[int], slots: List[int]) -> int:
        """_write_node writes one node of level ``depth`` into a new page; returns its page number."""
        if self.levels[depth].leaf:
            page = self.pager.allocate(fmt.PAGE_LEAF)
            nodes.build_leaf(page, page.pgno, keys, vals, slots)
        else:
            page = self.pager.allocate(fmt.PAGE_INTERNAL)
            nodes.build(page, page.pgno, False, keys, vals)
        self.levels[depth].count += 1
        return page.pgno

    def _emit(self, depth: int, keys: List[bytes], vals: List[int], slots: List[int], low: Optional[bytes]) -> None:
        """_emit writes one node of level ``depth`` and hands it to the level above."""
        pgno = self._write_node(depth, keys, vals, slots)
        if depth + 1 == len(self.levels):
            self.levels.append(_Level(False))
        self._add_child(depth + 1, low, pgno)

    def finish(self) -> None:
        """finish writes what is left, level by level, and makes the top node the root.

        After it the tree is valid; the builder takes nothing more.
        """
        if self.finished:
            return
        self.finished = True
        self._flush_heap()
        meta = self.pager.meta
        depth = 0
        while depth < len(self.levels):
            level = self.levels[depth]
            top = depth + 1 == len(self.levels) and level.count == 0
            if not level.vals and level.prev is None:
                break  # an empty input
            if top and level.prev is None:
                # One node holds the whole level: it is the root.
                meta.root = self._write_node(depth, level.keys, level.vals, level.slots)
                meta.tree_height = depth + 1
                return
            self._finish_level(depth)
            depth += 1
        meta.root, meta.tree_height = 0, 0

    def _finish_level(self, depth: int) -> None:
        """_finish_level writes the last one or two nodes of a level, evening them out when the last is underfull."""
        level = self.levels[depth]
        minimum = self.usable // 4 if level.leaf else self.usable // 6
        cur_keys, cur_vals, cur_slots, cur_low = level.keys, level.vals, level.slots, level.low
        prev = level.prev
        level.prev = None
        if prev is None:
            if cur_vals:
                self._emit(depth, cur_keys, cur_vals, cur_slots, cur_low)
            return
        pkeys, pvals, pslots, plow = prev
        if not cur_vals:
            self._emit(depth, pkeys, pvals, pslots, plow)
            return
        if level.size >= minimum and (level.leaf or len(cur_vals) >= 2):
            self._emit(depth, pkeys, pvals, pslots, plow)
            self._emit(depth, cur_keys, cur_vals, cur_slots, cur_low)
            return
        # Share the two nodes' entries out evenly (the rule splits use).
        if level.leaf:
            keys, vals, slots = pkeys + cur_keys, pvals + cur_vals, pslots + cur_slots
            m = choose_split(True, keys, False, self.usable, minimum)
            self._emit(depth, keys[:m], vals[:m], slots[:m], plow)
            self._emit(depth, keys[m:], vals[m:], slots[m:], _separator(keys[m - 1], keys[m]))
            return
        assert cur_low is not None
        keys, vals = pkeys + [cur_low] + cur_keys, pvals + cur_vals
        m = choose_split(False, keys, False, self.usable, minimum)
        self._emit(depth, keys[: m - 1], vals[:m], [], plow)
        self._emit(depth, keys[m:], vals[m:], [], keys[m - 1])
