"""BTree: the ordered index of a pagestore, mapping keys to record ids.

The tree is a B+tree over slotted pages. It never sees byte offsets: values
are record ids ``rid = (pgno, slot)`` handed out by the heap, and pages come
from the pager through four calls (``read``, ``write``, ``allocate``,
``free``) plus ``pager.meta.root`` / ``pager.meta.tree_height``.

NODE PAGES

A node is one slotted page (see native/pagestore.h for the page header and
slot array). Slot i holds entry i; slots are dense (no free slots) because a
node is always written whole: ``page.init`` then one ``append_many``. All
integers are LITTLE-ENDIAN. Keys are byte strings ordered bytewise (as
Python compares ``bytes``), 0 to ``max_key_len(page_size)`` bytes long.

LEAF PAGE (page type PS_PAGE_LEAF = 2): slot i = i-th entry in key order

  OFFSET  SIZE  DESCRIPTION
     0      4   rid page number (u32)
     4      2   rid slot (u16)
     6      n   the key (n = record length - 6)

INTERNAL PAGE (page type PS_PAGE_INTERNAL = 3): n children, n - 1 keys

  slot 0:
  OFFSET  SIZE  DESCRIPTION
     0      4   leftmost child page number (u32); the record is exactly 4 bytes

  slot i, 0 < i < n:
  OFFSET  SIZE  DESCRIPTION
     0      4   child i page number (u32)
     4      k   separator key i (k = record length - 4)

  Child i holds the keys k with sep_i <= k < sep_(i+1) (sep_0 = -infinity,
  sep_n = +infinity). A leaf separator is the shortest prefix of the right
  node's first key that is still greater than the left node's last key.

      internal:  [c0] [c1|s1] [c2|s2]
                   |      |       |
                 k < s1  s1 <= k < s2  s2 <= k

A TREE IS VALID if and only if: every leaf is at depth meta.tree_height
(the root is at depth 1); keys are strictly ascending within a node and lie
inside the bounds their ancestors' separators give (lo < separator < hi for
separators); an internal node has at least two children; every node except
the root uses at least a minimum of its usable bytes (a quarter for leaves,
a sixth for internal nodes: see ``_choose_split`` for why these fractions
can always be kept); no page appears twice. ``meta.root == 0`` (with height
0) is the empty tree before the first put; after that the tree shrinks at
most to one empty root leaf.

SPACE

Usable bytes U = page_size - 40. An entry costs its record plus its 6-byte
slot: 12 + len(key) in a leaf, 10 + len(key) in an internal node. A node
fits a page if and only if the sum of its entry costs is at most U.
``max_key_len`` keeps three largest entries in a page, which is what lets a
split always produce two halves that fit and are not underfull.

CACHING

The tree keeps nodes in a bounded LRU keyed by page number, in one of two
forms. A clean node is kept as its raw page bytes (checked once by
``nodes.check`` when it enters the cache) and searched in C, one call per
level (``nodes.search``). A node is decoded into a ``_Node`` (Python lists)
only when a change needs it. A put or delete that neither overflows nor
underfills its leaf changes the leaf's page in place in C
(``nodes.leaf_insert``, ``leaf_remove``, ``leaf_set_rid``) and keeps the new
raw bytes, so most writes decode nothing. Splits, merges and
redistributions change decoded nodes only, and
``flush()`` builds every dirty node back into ``pager.write(pgno)`` (one C
call, ``nodes.build``) and keeps the raw bytes again. A dirty node evicted
from the LRU is built on the way out. The capacity is counted in raw pages;
a decoded node weighs ``_DECODED_WEIGHT``. Pages the pager hands back are
never kept: they may be evicted and re-read.

Who calls what: the store calls ``flush()`` before every commit (and before
anything that reads pages directly, such as a checkpoint), and ``reset()``
after a rollback, when the pager has thrown away uncommitted pages.
"""
from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Set, Tuple, Union

from . import format as fmt
from . import nodes
from .errors import CorruptionError, PageStoreError
from .page import SlottedPage

Rid = Tuple[int, int]

#: What a decoded node weighs in the node cache, in raw pages: its keys, rid
#: tuples and lists take about four times the bytes of the page they came from.
_DECODED_WEIGHT = 4
_OFF_TYPE = fmt.OFF_TYPE

_LEAF_COST = fmt.SLOT_SIZE + fmt.NODE_RID_SIZE  # 12 bytes per leaf entry, before the key
_INTERNAL_COST = fmt.SLOT_SIZE + fmt.NODE_CHILD_SIZE  # 10 bytes per child, before its key


def max_key_len(page_size: int) -> int:
    """max_key_len returns the longest key a tree on ``page_size`` pages accepts.

    (page_size - 40) // 3 - 16: three largest leaf entries (12 bytes + key)
    fit in one page with room to spare, which is what makes every split and
    every redistribution end with two nodes that fit and are not underfull.
    4096 -> 1336, 512 -> 141.
    """
    return (page_size - fmt.HEADER_SIZE) // 3 - 16


class _Node:
    """_Node is the decoded, in-memory form of one node page.

    Leaf: ``keys[i]`` maps to ``vals[i]`` (a rid tuple). Internal: ``vals``
    are child page numbers, ``keys`` the separators, ``len(vals) ==
    len(keys) + 1``; child i holds keys in [keys[i-1], keys[i]). ``size`` is
    the number of page bytes the node needs past the header (entries plus
    slots), kept up to date by every mutation.
    """

    __slots__ = ("pgno", "leaf", "keys", "vals", "size")

    def __init__(self, pgno: int, leaf: bool, keys: List[bytes], vals: list, size: int) -> None:
        self.pgno = pgno
        self.leaf = leaf
        self.keys = keys
        self.vals = vals
        self.size = size

    def __repr__(self) -> str:
        kind = "leaf" if self.leaf else "internal"
        return f"<_Node {kind} pgno={self.pgno} n={len(self.vals)} size={self.size}>"


def _node_size(leaf: bool, keys: List[bytes]) -> int:
    """_node_size computes a node's byte size from scratch (splits, decoding, check)."""
    if leaf:
        return _LEAF_COST * len(keys) + sum(map(len, keys))
    return _INTERNAL_COST * (len(keys) + 1) + sum(map(len, keys))


def _separator(left: bytes, right: bytes) -> bytes:
    """_separator returns the shortest prefix of ``right`` that is greater than ``left`` (left < right).

    Any s with left < s <= right separates the two leaves; the shortest
    keeps internal nodes small.
    """
    n = min(len(left), len(right))
    i = 0
    while i < n and left[i] == right[i]:
        i += 1
    return right[: i + 1]


def _decode(pgno: int, raw: bytes) -> _Node:
    """_decode builds a _Node from a node page's raw bytes, trusting nothing it reads.

    Raises:
        CorruptionError: wrong page type, a slot that is free or overflow, a
            record too short for its kind, keys out of order (names ``pgno``).
    """
    leaf, keys, vals = nodes.decode(raw, pgno)
    return _Node(pgno, leaf, keys, vals, _node_size(leaf, keys))


def _named(raw: bytes, exc: PageStoreError) -> CorruptionError:
    """_named: a node search's error as a CorruptionError naming the node's page (nodes.py cannot know it)."""
    pgno = int.from_bytes(raw[fmt.OFF_PGNO : fmt.OFF_PGNO + 4], "little")
    return CorruptionError(pgno, getattr(exc, "detail", str(exc)))


class BTree:
    """BTree maps byte-string keys to record ids, in key order, over a pager.

    ``get``, ``put`` and ``delete`` are O(height) node visits plus an
    O(entries per node) list insert or delete; height is O(log n). Nodes are
    cached decoded (``node_cache`` of them, LRU); see the module docstring for
    the page format and for when the store must call ``flush`` and ``reset``.

    Example::

        >>> tree = BTree(pager)
        >>> tree.put(b"apple", (7, 0))
        >>> tree.get(b"apple")
        (7, 0)
        >>> tree.range_batch(b"a", b"b")
        [(b'apple', (7, 0))]
    """

    def __init__(self, pager, *, node_cache: int = 256, lend: bool = False) -> None:
        """``node_cache``: the node cache's capacity, in pages (a decoded node
        weighs _DECODED_WEIGHT). ``lend``: lend the unused part of it to the
        pager's cache (``Pager.lend``), when the two share one budget."""
        if node_cache < 1:
            raise ValueError(f"node_cache must be at least 1, got {node_cache}")
        self.pager = pager
        page_size = pager.page_size
        self.max_key = max_key_len(page_size)
        self._usable = page_size - fmt.HEADER_SIZE
        self._min_leaf = self._usable // 4
        self._min_internal = self._usable // 6
        self._capacity = node_cache
        # pgno -> raw page bytes (clean) or _Node (decoded; maybe dirty)
        self._cache: "OrderedDict[int, Union[bytes, _Node]]" = OrderedDict()
        self._weight = 0  # raw pages count 1, decoded nodes _DECODED_WEIGHT
        self._lend, self._lent = lend, -1
        # (key, leaf pgno, leaf raw bytes, index, equal, rid pgno, rid slot) of the last get
        self._hint: Optional[Tuple[bytes, int, bytes, int, bool, int, int]] = None
        self._dirty: Set[int] = set()

    # ---- public operations ----

    def get(self, key: bytes) -> Optional[Rid]:
        """get returns the rid stored under ``key``, or None. O(log n)."""
        key = self._check_key(key)
        meta = self.pager.meta
        if not meta.root:
            return None
        cache = self._cache
        child = meta.root
        entry = self._entry(child)
        for _ in range(meta.tree_height - 1):
            if type(entry) is bytes:
                if entry[_OFF_TYPE] != fmt.PAGE_INTERNAL:
                    raise self._misplaced(entry, meta.tree_height)
                child = self._child_of(entry, key)
            else:
                if entry.leaf:
                    raise self._misplaced(entry, meta.tree_height)
                child = entry.vals[bisect_right(entry.keys, key)]
            # _entry, inlined for the hit: a get is a few of these
            entry = cache.get(child)
            if entry is None:
                entry = self._entry(child)
            else:
                cache.move_to_end(child)
        if type(entry) is bytes:
            if entry[_OFF_TYPE] != fmt.PAGE_LEAF:
                raise self._misplaced(entry, meta.tree_height)
            i, equal, pgno, slot = self._search(entry, key, False)
            found: Optional[Rid] = (pgno, slot) if equal else None
            # A put of the same key next (the store's get-then-put) starts here.
            self._hint = (key, child, entry, i, equal, pgno, slot)
        else:
            if not entry.leaf:
                raise self._misplaced(entry, meta.tree_height)
            keys = entry.keys
            i = bisect_left(keys, key)
            found = entry.vals[i] if i < len(keys) and keys[i] == key else None
        self._trim()
        return found

    def put(self, key: bytes, rid: Rid) -> Optional[Rid]:
        """put maps ``key`` to ``rid`` and returns the rid it replaced, or None. O(log n).

        Raises:
            ValueError: the key is longer than ``max_key``, or the rid is not a
                (u32 pgno, u16 slot) pair.
            TypeError: the key is not bytes-like.
        """
        key = self._check_key(key)
        if len(key) > self.max_key:
            raise ValueError(f"key of {len(key)} bytes exceeds the longest this page size allows ({self.max_key})")
        try:
            pgno, slot = map(operator.index, rid)
            ok = 0 <= pgno <= 0xFFFFFFFF and 0 <= slot <= 0xFFFF
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"rid must be a (pgno, slot) pair of a u32 and a u16, got {rid!r}")
        rid = (pgno, slot)
        meta = self.pager.meta
        if not meta.root:
            page = self.pager.allocate(fmt.PAGE_LEAF)
            node = _Node(page.pgno, True, [], [], 0)
            self._adopt(node)
            meta.root = node.pgno
            meta.tree_height = 1
        path: List[Tuple[_Node, int]] = []
        hint, self._hint = self._hint, None
        if hint is not None and hint[0] == key and self._cache.get(hint[1]) is hint[2]:
            # get() just searched this very leaf object, and nothing has
            # replaced it since (every change to a node replaces its entry).
            _, leaf_pgno, entry, i, equal, old_pgno, old_slot = hint
            self._cache.move_to_end(leaf_pgno)
        else:
            leaf_pgno, entry = self._descend_entry(key, path)
            if type(entry) is bytes:
                i, equal, old_pgno, old_slot = self._search(entry, key, False)
        if type(entry) is bytes:
            # The common case, in place in the page: no decode, no rebuild.
            if equal:
                if (old_pgno, old_slot) != rid:
                    page = self.pager.write(leaf_pgno)
                    nodes.leaf_set_rid(page, i, pgno, slot)
                    self._cache[leaf_pgno] = bytes(page.buffer)
                self._trim()
                return old_pgno, old_slot
            page = self.pager.write(leaf_pgno)
            if nodes.leaf_insert(page, i, key, pgno, slot):
                self._cache[leaf_pgno] = bytes(page.buffer)
                self._trim()
                return None
            if not path:  # came by the hint: the split needs the path
                leaf_pgno, entry = self._descend_entry(key, path)
            entry = self._decoded(leaf_pgno, entry)  # it overflows: decode, then split below
        leaf = entry
        keys = leaf.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            old = leaf.vals[i]
            if old != rid:
                leaf.vals[i] = rid
                self._dirty.add(leaf.pgno)
            self._trim()
            return old
        keys.insert(i, key)
        leaf.vals.insert(i, rid)
        leaf.size += _LEAF_COST + len(key)
        self._dirty.add(leaf.pgno)
        if leaf.size > self._usable:
            self._fix_up(path, leaf, append=i == len(keys) - 1)
        self._trim()
        return None

    def delete(self, key: bytes) -> Optional[Rid]:
        """delete removes ``key`` and returns the rid it mapped to, or None if absent. O(log n)."""
        key = self._check_key(key)
        if not self.pager.meta.root:
            return None
        path: List[Tuple[_Node, int]] = []
        leaf_pgno, entry = self._descend_entry(key, path)
        if type(entry) is bytes:
            i, equal, old_pgno, old_slot = self._search(entry, key, False)
            if not equal:
                self._trim()
                return None
            page = self.pager.write(leaf_pgno)
            used = nodes.leaf_remove(page, i)
            raw = self._cache[leaf_pgno] = bytes(page.buffer)
            if path and used < self._min_leaf:
                self._fix_up(path, self._decoded(leaf_pgno, raw))
            self._trim()
            return old_pgno, old_slot
        leaf = entry
        keys = leaf.keys
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            self._trim()
            return None
        old = leaf.vals.pop(i)
        del keys[i]
        leaf.size -= _LEAF_COST + len(key)
        self._dirty.add(leaf.pgno)
        if path and leaf.size < self._min_leaf:
            self._fix_up(path, leaf)
        self._trim()
        return old

    def range_batch(
        self,
        lo: Optional[bytes],
        hi: Optional[bytes],
        reverse: bool = False,
        resume: Optional[bytes] = None,
    ) -> List[Tuple[bytes, Rid]]:
        """range_batch returns the next run of entries with lo <= key < hi, from at most one leaf.

        Ascending order (descending if ``reverse``); with ``resume``, only keys
        strictly after it in that order. Returns what is left of one leaf,
        moving on to the neighbouring leaf when the current one has nothing
        left; ``[]`` only when the range is exhausted. Every call descends
        from the root, so writes between calls are safe: loop with
        ``resume`` = the last key returned. O(log n + one leaf).
        """
        lo = None if lo is None else self._check_key(lo)
        hi = None if hi is None else self._check_key(hi)
        resume = None if resume is None else self._check_key(resume)
        if not self.pager.meta.root:
            return []
        try:
            if reverse:
                return self._batch_reverse(lo, hi, resume)
            return self._batch_forward(lo, hi, resume)
        finally:
            self._trim()

    def cache_pages(self) -> int:
        """cache_pages: what the node cache holds, in pages (a decoded node weighs _DECODED_WEIGHT)."""
        return self._weight

    def flush(self) -> None:
        """flush encodes every dirty node into its page (``pager.write``). Call before each commit."""
        cache = self._cache
        for pgno in sorted(self._dirty):
            node = cache[pgno]
            cache[pgno] = self._write_node(node)
            self._weight -= _DECODED_WEIGHT - 1
        self._dirty.clear()

    def reset(self) -> None:
        """reset forgets every cached node, dirty ones included. Call after a rollback."""
        self._cache.clear()
        self._weight = 0
        self._hint = None
        self._dirty.clear()

    def pages(self) -> Iterator[int]:
        """pages yields the number of every page the tree uses (root first, depth-first)."""
        root = self.pager.meta.root
        if not root:
            return
        stack = [root]
        while stack:
            pgno = stack.pop()
            yield pgno
            node = self._peek(pgno)
            if not node.leaf:
                stack.extend(reversed(node.vals))

    def entries(self) -> Iterator[Tuple[bytes, Rid]]:
        """entries yields every (key, rid) in key order. Do not write while iterating."""
        root = self.pager.meta.root
        if not root:
            return
        stack = [root]
        while stack:
            node = self._peek(stack.pop())
            if node.leaf:
                yield from zip(node.keys, node.vals)
            else:
                stack.extend(reversed(node.vals))

    def check(self) -> Dict[str, int]:
        """check verifies every invariant of the tree and returns its counts. O(pages).

        Flushes dirty nodes first, then decodes every node page afresh and
        checks: page structure (``page.check``) and stamped number, node type
        by depth, keys strictly ascending and inside their separators'
        bounds, every leaf at depth ``meta.tree_height``, at least two
        children per internal node, no non-root node underfull, no page
        visited twice, and that each cached node equals its page.

        Returns:
            ``{"pages", "leaves", "internal", "entries", "height", "used_bytes"}``.

        Raises:
            CorruptionError: the first violation found, naming its page.
        """
        self.flush()
        meta = self.pager.meta
        root, height = meta.root, meta.tree_height
        stats = {"pages": 0, "leaves": 0, "internal": 0, "entries": 0, "height": height, "used_bytes": 0}
        if not root:
            if height:
                raise CorruptionError(None, f"tree height is {height} but there is no root")
            return stats
        if height < 1:
            raise CorruptionError(root, f"tree height {height} with a root page")
        seen: Set[int] = set()
        # (pgno, depth, lo, hi): lo inclusive, hi exclusive, None unbounded
        stack: List[Tuple[int, int, Optional[bytes], Optional[bytes]]] = [(root, 1, None, None)]
        while stack:
            pgno, depth, lo, hi = stack.pop()
            node = self._check_node(pgno, depth, height, lo, hi, seen)
            stats["pages"] += 1
            stats["used_bytes"] += node.size
            if node.leaf:
                stats["leaves"] += 1
                stats["entries"] += len(node.keys)
                continue
            stats["internal"] += 1
            bounds = [lo] + node.keys + [hi]
            for i in range(len(node.vals) - 1, -1, -1):
                stack.append((node.vals[i], depth + 1, bounds[i], bounds[i + 1]))
        assert self._dirty <= self._cache.keys()
        assert self._weight == sum(1 if type(e) is bytes else _DECODED_WEIGHT for e in self._cache.values())
        return stats

    # ---- descent and scans ----

    @staticmethod
    def _check_key(key: bytes) -> bytes:
        if type(key) is bytes:
            return key
        if isinstance(key, (bytearray, memoryview)):
            return bytes(key)
        raise TypeError(f"key must be bytes-like, not {type(key).__name__}")

    def _descend(self, key: bytes, path: Optional[List[Tuple[_Node, int]]], view: bool = False) -> _Node:
        """_descend returns the leaf whose range holds ``key``, recording (node, child index) in ``path``.

        ``view``: the leaf is only read (a scan), so a raw cached leaf is
        decoded for the caller without replacing its raw form in the cache.
        """
        meta = self.pager.meta
        node = self._load(meta.root)
        for _ in range(meta.tree_height - 1):
            if node.leaf:
                raise self._misplaced(node, meta.tree_height)
            i = bisect_right(node.keys, key)
            if path is not None:
                path.append((node, i))
            node = self._child(node.vals[i], view)
        if not node.leaf:
            raise self._misplaced(node, meta.tree_height)
        return node

    def _descend_entry(self, key: bytes, path: List[Tuple[_Node, int]]) -> Tuple[int, Union[bytes, _Node]]:
        """_descend_entry is ``_descend`` for a change: internal nodes decoded onto ``path``, the
        leaf returned as its page number and cache entry (raw bytes, or a _Node already decoded)."""
        meta = self.pager.meta
        pgno = meta.root
        entry = self._entry(pgno)
        for _ in range(meta.tree_height - 1):
            node = self._decoded(pgno, entry)
            if node.leaf:
                raise self._misplaced(node, meta.tree_height)
            i = bisect_right(node.keys, key)
            path.append((node, i))
            pgno = node.vals[i]
            entry = self._entry(pgno)
        leaf = entry[_OFF_TYPE] == fmt.PAGE_LEAF if type(entry) is bytes else entry.leaf
        if not leaf:
            raise self._misplaced(entry, meta.tree_height)
        return pgno, entry

    def _descend_edge(self, path: List[Tuple[_Node, int]], key: Optional[bytes], last: bool) -> _Node:
        """_descend_edge descends towards ``key`` (bisect_left: towards keys < key) or, when None,
        the first or last leaf; records the path. The leaf is for reading (see ``_descend``)."""
        meta = self.pager.meta
        node = self._load(meta.root)
        for _ in range(meta.tree_height - 1):
            if node.leaf:
                raise self._misplaced(node, meta.tree_height)
            if key is None:
                i = len(node.vals) - 1 if last else 0
            else:
                i = bisect_left(node.keys, key)
            path.append((node, i))
            node = self._child(node.vals[i], True)
        if not node.leaf:
            raise self._misplaced(node, meta.tree_height)
        return node

    def _step(self, path: List[Tuple[_Node, int]], forward: bool) -> Optional[_Node]:
        """_step moves ``path`` to the next (or previous) leaf and returns it, for reading; None past the end."""
        while path:
            node, i = path.pop()
            j = i + 1 if forward else i - 1
            if 0 <= j < len(node.vals):
                path.append((node, j))
                child = self._child(node.vals[j], True)
                while not child.leaf:
                    k = 0 if forward else len(child.vals) - 1
                    path.append((child, k))
                    child = self._child(child.vals[k], True)
                return child
        return None

    def _batch_forward(self, lo, hi, resume) -> List[Tuple[bytes, Rid]]:
        if resume is not None and (lo is None or resume >= lo):
            start, inclusive = resume, False
        else:
            start, inclusive = lo, True
        if start is not None and hi is not None and start >= hi:
            return []
        path: List[Tuple[_Node, int]] = []
        if start is None:
            leaf = self._descend_edge(path, None, last=False)
            i = 0
        else:
            leaf = self._descend(start, path, view=True)
            i = bisect_left(leaf.keys, start) if inclusive else bisect_right(leaf.keys, start)
        while True:
            keys = leaf.keys
            if i < len(keys):
                j = len(keys) if hi is None else bisect_left(keys, hi, i)
                return list(zip(keys[i:j], leaf.vals[i:j]))
            nxt = self._step(path, True)
            if nxt is None:
                return []
            leaf, i = nxt, 0

    def _batch_reverse(self, lo, hi, resume) -> List[Tuple[bytes, Rid]]:
        bound = hi if resume is None or (hi is not None and hi <= resume) else resume
        if bound is not None and lo is not None and bound <= lo:
            return []
        path: List[Tuple[_Node, int]] = []
        leaf = self._descend_edge(path, bound, last=True)
        i = len(leaf.keys) if bound is None else bisect_left(leaf.keys, bound)
        while True:
            if i > 0:
                keys = leaf.keys
                j = 0 if lo is None else bisect_left(keys, lo, 0, i)
                out = list(zip(keys[j:i], leaf.vals[j:i]))
                out.reverse()
                return out
            prev = self._step(path, False)
            if prev is None:
                return []
            leaf, i = prev, len(prev.keys)

    # ---- structure changes ----

    def _fix_up(self, path: List[Tuple[_Node, int]], node: _Node, append: bool = False) -> None:
        """_fix_up restores the size invariants from ``node`` up to the root.

        At each level the changed child is split if it overflows its page or
        rebalanced with a sibling if it is underfull; either changes its
        parent, which is examined next. A level where nothing changes ends the
        walk. At the root, an overflow grows the tree by one level and an
        internal root left with one child is replaced by that child.
        ``append``: the change was an insert at the end of the node, so a
        split keeps the left node full (ascending bulk loads).
        """
        usable = self._usable
        child = node
        while path:
            parent, i = path.pop()
            if child.size > usable:
                sep, right = self._split(child, append)
                append = append and i == len(parent.keys)
                parent.keys.insert(i, sep)
                parent.vals.insert(i + 1, right.pgno)
                parent.size += _INTERNAL_COST + len(sep)
            elif child.size < (self._min_leaf if child.leaf else self._min_internal):
                self._rebalance(parent, i, child)
            else:
                return
            self._dirty.add(parent.pgno)
            child = parent
        meta = self.pager.meta
        if child.size > usable:
            sep, right = self._split(child, append)
            page = self.pager.allocate(fmt.PAGE_INTERNAL)
            root = _Node(page.pgno, False, [sep], [child.pgno, right.pgno], 0)
            root.size = _node_size(False, root.keys)
            self._adopt(root)
            meta.root = root.pgno
            meta.tree_height += 1
        while not child.leaf and len(child.vals) == 1:
            only = child.vals[0]
            self._release(child.pgno)
            meta.root = only
            meta.tree_height -= 1
            child = self._load(only)

    def _split(self, node: _Node, append: bool) -> Tuple[bytes, _Node]:
        """_split moves the upper part of an overflowing node to a new right sibling.

        Returns the separator for the parent and the new node.
        """
        keys, vals = node.keys, node.vals
        m = self._choose_split(node.leaf, keys, append)
        page = self.pager.allocate(fmt.PAGE_LEAF if node.leaf else fmt.PAGE_INTERNAL)
        if node.leaf:
            right = _Node(page.pgno, True, keys[m:], vals[m:], 0)
            sep = _separator(keys[m - 1], keys[m])
            del keys[m:]
            del vals[m:]
        else:
            # children 0..m-1 stay, key m-1 (the separator before child m) moves up
            right = _Node(page.pgno, False, keys[m:], vals[m:], 0)
            sep = keys[m - 1]
            del keys[m - 1 :]
            del vals[m:]
        node.size = _node_size(node.leaf, keys)
        right.size = _node_size(right.leaf, right.keys)
        self._dirty.add(node.pgno)
        self._adopt(right)
        return sep, right

    def _choose_split(self, leaf: bool, keys: List[bytes], append: bool) -> int:
        """_choose_split picks where a run of entries is cut in two.

        For a leaf, entries [0, m) go left and [m, n) right. For an internal
        run (children 0..n, keys[j] between child j and j+1) children [0, m)
        go left, keys[m-1] moves up, children [m, n] go right. Among the cuts
        that leave both sides within [minimum, usable] bytes, pick the most
        even one, or with ``append`` the one that leaves the left side
        fullest.

        Why a valid cut always exists: the run overflows a page by at most
        one entry plus an underfull node, entries are at most E = 12 +
        max_key (a third of a page) and cumulative sizes move in steps of at
        most E, so the first cut whose left side reaches the minimum T leaves
        both sides in range when 2T + E <= U (leaves; T = U/4) or, since an
        internal cut also removes the moved-up key, 2T + 2E - 10 <= U
        (internal; T = U/6). A quarter for internal nodes could be broken by
        runs of near-maximal separators, so they get a sixth.
        """
        usable = self._usable
        if leaf:
            cost, minimum = _LEAF_COST, self._min_leaf
            total = cost * len(keys) + sum(map(len, keys))
        else:
            cost, minimum = _INTERNAL_COST, self._min_internal
            total = cost * (len(keys) + 1) + sum(map(len, keys))
        best, best_score = -1, -1
        # left(m) grows by one entry per step: a leaf's [0, m) is sum_{j<m} (cost + len k_j); an
        # internal left side is its first child (cost, no key) plus (cost + len k_j) for j < m-1,
        # and its right side is what remains less the key that moves up.
        left = 0 if leaf else cost
        n = len(keys) if leaf else len(keys) + 1
        for m in range(1, n):
            if leaf:
                left += cost + len(keys[m - 1])
                right = total - left
            else:
                if m > 1:
                    left += cost + len(keys[m - 2])
                right = total - left - len(keys[m - 1])
            if left > usable:
                break
            if right > usable or left < minimum or right < minimum:
                continue
            score = left if append else min(left, right)
            if score > best_score:
                best, best_score = m, score
        assert best > 0, f"no valid split of {n} entries, {total} bytes"
        return best

    def _rebalance(self, parent: _Node, i: int, child: _Node) -> None:
        """_rebalance fixes an underfull child i of ``parent``: merge with a sibling if the two fit one page,
        else redistribute entries between them (which always leaves both at or above the minimum)."""
        usable = self._usable
        vals = parent.vals
        left = right = None
        if i > 0:
            left = self._load(vals[i - 1])
            if self._merged_size(left, child, parent.keys[i - 1]) <= usable:
                self._merge(parent, i - 1, left, child)
                return
        if i + 1 < len(vals):
            right = self._load(vals[i + 1])
            if self._merged_size(child, right, parent.keys[i]) <= usable:
                self._merge(parent, i, child, right)
                return
        if right is not None:
            self._redistribute(parent, i, child, right)
        else:
            assert left is not None, "a non-root node always has a sibling"
            self._redistribute(parent, i - 1, left, child)

    @staticmethod
    def _merged_size(a: _Node, b: _Node, sep: bytes) -> int:
        # merging internal nodes pulls the parent's separator down as the key of b's first child
        return a.size + b.size if a.leaf else a.size + b.size + len(sep)

    def _merge(self, parent: _Node, j: int, a: _Node, b: _Node) -> None:
        """_merge appends b (child j+1) to a (child j) and frees b's page."""
        sep = parent.keys[j]
        a.size = self._merged_size(a, b, sep)
        if not a.leaf:
            a.keys.append(sep)
        a.keys.extend(b.keys)
        a.vals.extend(b.vals)
        del parent.keys[j]
        del parent.vals[j + 1]
        parent.size -= _INTERNAL_COST + len(sep)
        self._dirty.add(a.pgno)
        self._release(b.pgno)

    def _redistribute(self, parent: _Node, j: int, a: _Node, b: _Node) -> None:
        """_redistribute re-cuts children j and j+1 of ``parent`` evenly and replaces their separator."""
        old_sep = parent.keys[j]
        vals = a.vals + b.vals
        if a.leaf:
            keys = a.keys + b.keys
            m = self._choose_split(True, keys, False)
            sep = _separator(keys[m - 1], keys[m])
            a.keys, a.vals = keys[:m], vals[:m]
            b.keys, b.vals = keys[m:], vals[m:]
        else:
            keys = a.keys + [old_sep] + b.keys
            m = self._choose_split(False, keys, False)
            sep = keys[m - 1]
            a.keys, a.vals = keys[: m - 1], vals[:m]
            b.keys, b.vals = keys[m:], vals[m:]
        a.size = _node_size(a.leaf, a.keys)
        b.size = _node_size(b.leaf, b.keys)
        parent.keys[j] = sep
        parent.size += len(sep) - len(old_sep)
        self._dirty.add(a.pgno)
        self._dirty.add(b.pgno)

    # ---- the node cache ----

    def _entry(self, pgno: int) -> Union[bytes, _Node]:
        """_entry returns the cached form of ``pgno`` (raw bytes or _Node), reading its raw bytes on a miss."""
        cache = self._cache
        entry = cache.get(pgno)
        if entry is not None:
            cache.move_to_end(pgno)
            return entry
        raw = self._read_raw(pgno)
        cache[pgno] = raw
        self._weight += 1
        return raw

    def _load(self, pgno: int) -> _Node:
        """_load returns the decoded node of ``pgno``, decoding it in the cache if it was raw."""
        return self._decoded(pgno, self._entry(pgno))

    def _decoded(self, pgno: int, entry: Union[bytes, _Node]) -> _Node:
        """_decoded returns the _Node of ``pgno``'s current cache entry, decoding a raw one in place."""
        if type(entry) is bytes:
            node = _decode(pgno, entry)
            self._cache[pgno] = node
            self._weight += _DECODED_WEIGHT - 1
            return node
        return entry

    def _child(self, pgno: int, view: bool) -> _Node:
        """_child: ``_load``, or with ``view`` a decoded copy of a raw leaf that leaves the cache raw.

        Internal nodes are always decoded in the cache: a scan's path keeps
        them, and there are few of them.
        """
        if not view:
            return self._load(pgno)
        entry = self._entry(pgno)
        if type(entry) is bytes and entry[_OFF_TYPE] == fmt.PAGE_LEAF:
            return _decode(pgno, entry)
        return self._decoded(pgno, entry)

    def _peek(self, pgno: int) -> _Node:
        """_peek returns the decoded node without caching it (whole-tree walks must not flood the LRU)."""
        entry = self._cache.get(pgno)
        if entry is None:
            entry = self._read_raw(pgno)
        return _decode(pgno, entry) if type(entry) is bytes else entry

    def _read_raw(self, pgno: int) -> bytes:
        """_read_raw returns the bytes of node page ``pgno``, verified by the pager and checked as a node."""
        if not pgno:
            raise CorruptionError(0, "a tree pointer names page 0")
        raw = bytes(self.pager.read(pgno).buffer)
        nodes.check(raw, pgno)  # every status it can return is a CorruptionError naming pgno
        return raw

    @staticmethod
    def _child_of(raw: bytes, key: bytes) -> int:
        """_child_of is ``nodes.child`` with the node's page number in any CorruptionError."""
        try:
            return nodes.child(raw, key)
        except PageStoreError as exc:
            raise _named(raw, exc) from exc

    @staticmethod
    def _search(raw: bytes, key: bytes, after: bool) -> Tuple[int, bool, int, int]:
        """_search is ``nodes.search`` with the node's page number in any CorruptionError."""
        try:
            return nodes.search(raw, key, after)
        except PageStoreError as exc:
            raise _named(raw, exc) from exc

    @staticmethod
    def _misplaced(entry: Union[bytes, _Node], height: int) -> CorruptionError:
        """_misplaced: the error for a leaf above the tree height or an internal node at it."""
        if type(entry) is bytes:
            pgno = int.from_bytes(entry[fmt.OFF_PGNO : fmt.OFF_PGNO + 4], "little")
            leaf = entry[_OFF_TYPE] == fmt.PAGE_LEAF
        else:
            pgno, leaf = entry.pgno, entry.leaf
        if leaf:
            return CorruptionError(pgno, f"leaf above the tree height {height}")
        return CorruptionError(pgno, f"internal node at the tree height {height}")

    def _adopt(self, node: _Node) -> None:
        """_adopt caches a node created in memory (its page freshly allocated) as dirty."""
        self._cache[node.pgno] = node
        self._weight += _DECODED_WEIGHT
        self._dirty.add(node.pgno)

    def _release(self, pgno: int) -> None:
        """_release forgets a node and gives its page back to the pager."""
        entry = self._cache.pop(pgno, None)
        if entry is not None:
            self._weight -= 1 if type(entry) is bytes else _DECODED_WEIGHT
        self._dirty.discard(pgno)
        self.pager.free(pgno)

    def _write_node(self, node: _Node) -> bytes:
        """_write_node builds ``node`` into its page and returns the page's raw bytes."""
        page = self.pager.write(node.pgno)
        nodes.build(page, node.pgno, node.leaf, node.keys, node.vals)
        return bytes(page.buffer)

    def _trim(self) -> None:
        """_trim evicts least recently used nodes beyond the capacity, building dirty ones.

        Called only at the end of a public operation, so nodes an operation
        holds are never evicted under it.
        """
        cache, dirty = self._cache, self._dirty
        while self._weight > self._capacity and cache:
            pgno, entry = cache.popitem(last=False)
            if type(entry) is bytes:
                self._weight -= 1
                continue
            self._weight -= _DECODED_WEIGHT
            if pgno in dirty:
                self._write_node(entry)
                dirty.discard(pgno)
        # The share of the memory budget the nodes do not use yet is the
        # pager's to use (a store whose leaves fit leaves most of it idle).
        spare = self._capacity - self._weight
        if spare != self._lent and self._lend:
            self._lent = spare
            self.pager.lend(max(0, spare))

    # ---- check ----

    def _check_node(
        self,
        pgno: int,
        depth: int,
        height: int,
        lo: Optional[bytes],
        hi: Optional[bytes],
        seen: Set[int],
    ) -> _Node:
        if pgno in seen:
            raise CorruptionError(pgno, "page is reachable twice in the tree")
        if pgno == 0:
            raise CorruptionError(0, "a tree pointer names page 0")
        seen.add(pgno)
        page = self.pager.read(pgno)
        try:
            page.check()
        except CorruptionError as exc:
            raise CorruptionError(pgno, exc.detail) from exc
        if page.pgno != pgno:
            raise CorruptionError(pgno, f"page is stamped with number {page.pgno}")
        node = _decode(pgno, bytes(page.buffer))  # decoding checks it as a node
        want_leaf = depth == height
        if node.leaf != want_leaf:
            kind = "leaf" if node.leaf else "internal node"
            raise CorruptionError(pgno, f"{kind} at depth {depth} of a tree of height {height}")
        cached = self._cache.get(pgno)
        if type(cached) is bytes:
            cached = _decode(pgno, cached)
        if cached is not None:
            if cached.leaf != node.leaf or cached.keys != node.keys or cached.vals != node.vals:
                raise CorruptionError(pgno, "cached node differs from its page")
            if cached.size != node.size:
                raise CorruptionError(pgno, f"cached node size {cached.size} != {node.size} computed")
        keys = node.keys
        if keys:
            if lo is not None and keys[0] < lo or lo is not None and not node.leaf and keys[0] == lo:
                raise CorruptionError(pgno, "first key is below the separator that bounds this node")
            if hi is not None and keys[-1] >= hi:
                raise CorruptionError(pgno, "last key is not below the separator that bounds this node")
        if not node.leaf and len(node.vals) < 2:
            raise CorruptionError(pgno, f"internal node has {len(node.vals)} child")
        if depth > 1:
            minimum = self._min_leaf if node.leaf else self._min_internal
            if node.size < minimum:
                raise CorruptionError(pgno, f"underfull: {node.size} bytes used, minimum {minimum}")
        if node.size > self._usable:
            raise CorruptionError(pgno, f"node needs {node.size} bytes, a page has {self._usable}")
        return node
