"""bulk: build a B+tree and its heap bottom-up from records that arrive in key order.

Callers: the store, inside one write (one pager transaction), for a store
that holds no records. Random inserts descend the tree once per record,
change a leaf in place, split it when it overflows, and leave leaves and
heap pages about two-thirds full. Records that arrive in key order into an
empty tree need none of that: this module fills each page once, in order,
and writes it once.

    builder = Builder(pager, heap, tree)
    for key, value in items:            # strictly ascending keys
        if not builder.add(key, value):
            break                       # out of order: finish, then insert the rest one by one
    builder.finish()                    # the tree is complete and valid from here on

HEAP: small values (at most ``heap.inline_max``) are gathered until the next
one would not fit a page, then written into a fresh heap page with one
``append_many`` (slots 0..n-1 in key order, so a scan reads each heap page
once). A large value goes through ``heap.insert`` (its overflow chain first).

TREE: leaves are filled to the page, internal nodes likewise, one level
above the other. Each level keeps two nodes in memory, the last one it
closed and the one it is filling, so that at the end an underfull last node
can share entries with its full neighbour (every node but the root must
hold at least a quarter of a page for leaves, a sixth for internal nodes;
see btree.py). Memory is bounded by two nodes per level and one heap page
of values, whatever the input's length: finished pages go to the pager,
which spills them to the log when its cache is full.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from . import format as fmt
from . import nodes
from .node import INTERNAL_COST as _INTERNAL_COST
from .node import LEAF_COST as _LEAF_COST
from .node import separator as _separator
from .split import choose_split

if TYPE_CHECKING:
    from .btree import BTree
    from .heap import Heap
    from .pager import Pager

Rid = Tuple[int, int]
#: Large values waiting behind a heap page's worth of small ones: past this
#: many records the page is written part full, so that memory stays bounded.
_MAX_PENDING = 4096


class _Level:
    """_Level builds the nodes of one tree level, left to right.

    ``keys``/``vals`` are the node being filled (a leaf: keys and rids; an
    internal node: separators and child pages, one more child than keys);
    ``low`` is the key that separates it from the node before it (None for
    the first node of the level). ``prev`` is the last node closed, not yet
    written: (keys, vals, low).
    """

    __slots__ = ("leaf", "keys", "vals", "size", "low", "prev", "count")

    def __init__(self, leaf: bool) -> None:
        self.leaf = leaf
        self.keys: List[bytes] = []
        self.vals: List[Any] = []
        self.size = 0
        self.low: Optional[bytes] = None
        self.prev: Optional[Tuple[List[bytes], List[Any], Optional[bytes]]] = None
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
        # values waiting for their heap page: (key, value or None, rid or None)
        self.pending: List[Tuple[bytes, Optional[bytes], Optional[Rid]]] = []
        self.pending_bytes = 0
        self.pending_small = 0
        self.inline_max = heap.inline_max
        self.max_key = tree.max_key
        self.finished = False

    # ---- input ----

    def add(self, key: bytes, value: bytes) -> bool:
        """add takes the next record; False (and nothing changes) if ``key`` is not above the last one.

        Raises:
            ValueError: the key is longer than the tree accepts.
        """
        last = self.last
        if last is not None and key <= last:
            return False
        if len(key) > self.max_key:
            raise ValueError(f"key of {len(key)} bytes exceeds the longest this page size allows ({self.max_key})")
        self.last = key
        meta = self.pager.meta
        meta.record_count += 1
        meta.live_bytes += len(key) + len(value)
        n = len(value)
        if n > self.inline_max:
            self.pager.begin_operation()  # its overflow pages need not stay pinned
            rid = self.heap.insert(value)
            if self.pending:
                self.pending.append((key, None, rid))
                if len(self.pending) >= _MAX_PENDING:
                    self._flush_heap()
            else:
                self._add_entry(0, key, rid)
            return True
        cost = n + fmt.SLOT_SIZE
        if self.pending_bytes + cost > self.usable or self.pending_small >= fmt.MAX_SLOTS:
            self._flush_heap()
        self.pending.append((key, value, None))
        self.pending_bytes += cost
        self.pending_small += 1
        return True

    def _flush_heap(self) -> None:
        """_flush_heap writes the pending small values into one new heap page and passes every pending key to the leaves."""
        pager = self.pager
        pager.begin_operation()  # unpin the pages written so far: the cache may spill them
        pgno = 0
        if self.pending_small:
            page = pager.allocate(fmt.PAGE_HEAP)
            pgno = page.pgno
            page.append_many([v for _, v, _r in self.pending if v is not None])
            self.heap.fsm.set(pgno, page.max_insert)
        slot = 0
        add = self._add_entry
        for key, _, rid in self.pending:
            if rid is None:
                rid = (pgno, slot)
                slot += 1
            add(0, key, rid)
        self.pending.clear()
        self.pending_bytes = self.pending_small = 0

    # ---- levels ----

    def _add_entry(self, depth: int, key: Optional[bytes], val: object) -> None:
        """_add_entry appends to level ``depth``: a leaf entry (key, rid), or a child page
        and the separator below it (None for the level's first child)."""
        level = self.levels[depth]
        if level.leaf:
            assert key is not None
            cost = _LEAF_COST + len(key)
            if level.keys and level.size + cost > self.usable:
                self._close(depth)
                level.low = _separator(level.prev[0][-1], key)  # type: ignore[index]
            level.keys.append(key)
            level.vals.append(val)
            level.size += cost
            return
        if not level.vals:
            level.vals.append(val)
            level.size = _INTERNAL_COST
            level.low = key
            return
        assert key is not None
        cost = _INTERNAL_COST + len(key)
        if level.size + cost > self.usable:
            self._close(depth)
            level.vals.append(val)
            level.size = _INTERNAL_COST
            level.low = key
            return
        level.keys.append(key)
        level.vals.append(val)
        level.size += cost

    def _close(self, depth: int) -> None:
        """_close ends the node being filled at ``depth``: it becomes ``prev``, and the former ``prev`` is written."""
        level = self.levels[depth]
        if level.prev is not None:
            self._emit(depth, *level.prev)
        level.prev = (level.keys, level.vals, level.low)
        level.keys, level.vals, level.size = [], [], 0

    def _emit(self, depth: int, keys: List[bytes], vals: List[Any], low: Optional[bytes]) -> None:
        """_emit writes one node of level ``depth`` into a new page and hands it to the level above."""
        level = self.levels[depth]
        page = self.pager.allocate(fmt.PAGE_LEAF if level.leaf else fmt.PAGE_INTERNAL)
        nodes.build(page, page.pgno, level.leaf, keys, vals)
        level.count += 1
        if depth + 1 == len(self.levels):
            self.levels.append(_Level(False))
        self._add_entry(depth + 1, low, page.pgno)

    def finish(self) -> None:
        """finish writes what is left, level by level, and makes the top node the root.

        After it the tree is valid; the builder takes nothing more.
        """
        if self.finished:
            return
        self.finished = True
        if self.pending:
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
                page = self.pager.allocate(fmt.PAGE_LEAF if level.leaf else fmt.PAGE_INTERNAL)
                nodes.build(page, page.pgno, level.leaf, level.keys, level.vals)
                meta.root, meta.tree_height = page.pgno, depth + 1
                return
            self._finish_level(depth)
            depth += 1
        meta.root, meta.tree_height = 0, 0

    def _finish_level(self, depth: int) -> None:
        """_finish_level writes the last one or two nodes of a level, evening them out when the last is underfull."""
        level = self.levels[depth]
        minimum = self.usable // 4 if level.leaf else self.usable // 6
        cur_keys, cur_vals, cur_low = level.keys, level.vals, level.low
        prev = level.prev
        level.prev = None
        if prev is None:
            if cur_vals:
                self._emit(depth, cur_keys, cur_vals, cur_low)
            return
        pkeys, pvals, plow = prev
        if not cur_vals:
            self._emit(depth, pkeys, pvals, plow)
            return
        if level.size >= minimum and (level.leaf or len(cur_vals) >= 2):
            self._emit(depth, pkeys, pvals, plow)
            self._emit(depth, cur_keys, cur_vals, cur_low)
            return
        # Share the two nodes' entries out evenly (the rule splits use).
        if level.leaf:
            keys, vals = pkeys + cur_keys, pvals + cur_vals
            m = choose_split(True, keys, False, self.usable, minimum)
            self._emit(depth, keys[:m], vals[:m], plow)
            self._emit(depth, keys[m:], vals[m:], _separator(keys[m - 1], keys[m]))
            return
        assert cur_low is not None
        keys, vals = pkeys + [cur_low] + cur_keys, pvals + cur_vals
        m = choose_split(False, keys, False, self.usable, minimum)
        self._emit(depth, keys[: m - 1], vals[:m], plow)
        self._emit(depth, keys[m:], vals[m:], keys[m - 1])

