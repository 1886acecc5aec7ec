"""BTree: the ordered index of a pagestore, mapping keys to record ids.

The tree is a B+tree over slotted pages. It never sees byte offsets: values
are record ids ``rid = (pgno, slot)`` handed out by the heap, and pages come
from the pager through five calls (``read``, ``write``, ``write_image``: a
write of a leaf whose raw bytes the node cache holds, ``allocate``, ``free``)
plus ``pager.meta.root`` / ``pager.meta.tree_height``.

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

The tree's shape is kept valid (see treecheck.py for the exact rule) by
split.py; node sizes and the decoded form are node.py; the nodes live in
nodecache.py's LRU, raw or decoded. This file holds the operations: get,
put, delete, range batches, and the one descent they share (``_descend``:
a get bisects internal nodes and moves nothing in the LRU; a change or a
scan also records its path). Leaves in the data file are read in the map
through the pager's ``map_calls`` (``_native.MapCalls``: page numbers and
keys in, Python values out); nothing here holds C data.

Who calls what: the store calls ``flush()`` before every commit (and before
anything that reads pages directly, such as a checkpoint), and ``reset()``
after a rollback, when the pager has thrown away uncommitted pages.
"""
from __future__ import annotations

import operator
import struct
from bisect import bisect_left, bisect_right
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from . import _native
from . import format as fmt
from . import nodes
from .errors import CorruptionError
from .node import INTERNAL_COST, LEAF_COST, Node, Rid, decode, max_key_len
from .nodecache import CacheEntry, NodeCache, TreePager
from .split import Balancer, Path

_NLIVE = struct.Struct("<H")
from .treecheck import check_tree

__all__ = ["BTree", "Rid", "max_key_len"]

_fast = _native.fast
_node_child = _fast.node_child


def _first(keys: List[bytes], key: object) -> int:
    """_first: the descent's choice of the first child (a scan from the start)."""
    return 0


def _last(keys: List[bytes], key: object) -> int:
    """_last: the descent's choice of the last child (a reverse scan from the end)."""
    return len(keys)


class BTree:
    """BTree maps byte-string keys to record ids, in key order, over a pager.

    ``get``, ``put`` and ``delete`` are O(height) node visits plus an
    O(entries per node) list insert or delete; height is O(log n). Nodes are
    cached (``node_cache`` pages' worth, LRU; see nodecache.py); see the
    module docstring for the page format and for when the store must call
    ``flush`` and ``reset``.

    Example::

        >>> tree = BTree(pager)
        >>> tree.put(b"apple", (7, 0))
        >>> tree.get(b"apple")
        (7, 0)
        >>> tree.range_batch(b"a", b"b")
        [(b'apple', (7, 0))]
    """

    def __init__(self, pager: TreePager, *, node_cache: int = 256, lend: bool = False) -> None:
        """``node_cache``: the node cache's capacity, in pages (a decoded node
        weighs nodecache.decoded_weight). ``lend``: lend the unused part of it to the
        pager's cache (``Pager.lend``), when the two share one budget."""
        self.pager = pager
        self.max_key = max_key_len(pager.page_size)
        self.nodes = NodeCache(pager, node_cache, lend=lend)
        self.balancer = Balancer(pager, self.nodes)
        self._calls = pager.map_calls  # the lean calls on the pager's map: leaves read by page number
        # (key, leaf entry, its raw bytes then, the key's index there, the rid found or None) of
        # the last ``lookup``: a put of that key changes that leaf at that index, with no descent
        # and no search, while the entry still holds those very bytes (see put_valid)
        self._hint: Optional[Tuple[bytes, CacheEntry, bytes, int, Optional[Rid]]] = None

    # ---- public operations ----

    def get(self, key: bytes) -> Optional[Rid]:
        """get returns the rid stored under ``key``, or None. O(log n).

        The descent (``_descend``'s, inline) searches each internal node in the
        page image its cache entry keeps while the node is clean (one C call;
        bisecting the decoded keys instead cost 1.1x-1.3x as much per get over
        200k records: the keys are objects all over the heap, the image one
        block), or bisects the decoded form of a dirty one. An internal node a get
        meets that is not cached is taken into the node cache raw (its page bytes,
        one page of its budget) and searched so: a get never decodes; a change
        decodes the nodes of its path, which then stay decoded, with their image
        while clean (counted as what they weigh); a read neither moves them in the
        LRU nor tests them against the log: every change to a cached node
        replaces or forgets its entry, or marks it dirty, which drops its image.
        A leaf not in the cache whose newest image is in the data file is
        searched in place in the map, one C call that returns the rid
        (``MapCalls.leaf_get``); any other leaf comes through the cache (a raw
        leaf found there is not moved in its LRU either).
        """
        if type(key) is not bytes:
            key = self._check_key(key)
        pager = self.pager
        meta = pager.meta
        pgno = meta.root
        if not pgno:
            return None
        cache = self.nodes
        lru = cache.lru
        # _descend's loop for a get (no path, nothing moved), inline: the hottest read pays
        # one Python frame less. A clean internal node is searched in its page image, one C
        # call; a dirty one bisected in its decoded form; one not cached is taken in raw and
        # searched so, as one cached raw is: a get never decodes (a decoded node weighs four
        # to seven pages, its page one: once the internal nodes outgrew the node cache's half,
        # at 10^7 records, gets that decoded them were 2.4x as costly, bench/memwhere.py). A
        # leaf where a node belongs goes the general way, which raises.
        for level in range(meta.tree_height - 1):
            entry = lru.get(pgno)
            if entry is None:
                entry = cache.entry(pgno)
            image = entry.image
            if image is not None:
                pgno = _node_child(image, key, pgno)
                continue
            node = entry.node
            if node is not None and not node.leaf:
                pgno = node.vals[bisect_right(node.keys, key)]
                continue
            raw = entry.raw
            if raw is not None and not entry.leaf:
                pgno = _node_child(raw, key, pgno)
                continue
            pgno = self._descend(key, None, bisect_right, pgno, meta.tree_height - 1 - level)
            break
        entry = lru.get(pgno)
        if entry is None:
            if pager.map is not None and pgno not in pager.overlaid:
                found = self._calls.leaf_get(pgno, key)
            else:
                found = self._leaf_get(cache.entry(pgno), key)
        elif entry.leaf and entry.raw is not None:
            # _leaf_get's common case inline (a leaf newest in the log, cached raw: most of
            # them right after writes): one Python frame less per get, and the leaf is not
            # moved in the LRU (OrderedDict.move_to_end was a twentieth of a get): a get
            # leaves the order to the writes and scans that take leaves in, as it does for
            # internal nodes. The cache stays within its bound either way.
            found = _fast.node_get(entry.raw, key, pgno)
        else:
            found = self._leaf_get(entry, key)
        if cache.weight != cache.settled:
            cache.trim()
        return found

    def lookup(self, key: bytes) -> Optional[Rid]:
        """lookup is ``get`` for a write that may follow (the store's get-then-put): the leaf is
        taken into the node cache, where the put changes it, and remembered, so that a
        ``put_valid`` of the same key starts there instead of descending again. O(log n)."""
        if type(key) is not bytes:
            key = self._check_key(key)
        meta = self.pager.meta
        pgno = meta.root
        if not pgno:
            return None
        cache = self.nodes
        entry = self._leaf_entry(key, pgno, meta.tree_height)
        raw = entry.raw
        if raw is None:
            self._hint = None
            found = self._leaf_get(entry, key)
        else:
            # the leaf moved in the LRU above; the search's index goes in the hint, so that
            # the put inserts there without searching the leaf again
            i, equal, rid_pgno, rid_slot = _fast.node_find(raw, key, False, entry.pgno)
            found = (rid_pgno, rid_slot) if equal else None
            self._hint = (key, entry, raw, i, found)
        if cache.weight != cache.settled:
            cache.trim()
        return found

    def _leaf_entry(self, key: bytes, pgno: int, height: int) -> CacheEntry:
        """_leaf_entry: the node cache's entry of the leaf where ``key`` belongs, descended from
        ``pgno`` (the root) in a tree of ``height`` levels, as ``lookup`` and ``delete`` take it for a
        write: internal nodes bisected in their decoded form and not moved in the LRU (a get's
        rule), the leaf taken into the cache and moved to the LRU's end. ``_descend_entry``'s
        walk without its path (one Python frame, not three, on every record a transaction
        writes); a node not decoded in the cache goes the general way from there.

        Raises:
            CorruptionError: the node where the leaf should be is an internal node.
        """
        cache = self.nodes
        lru = cache.lru
        for level in range(height - 1):
            entry = lru.get(pgno)
            node = None if entry is None else entry.node
            if node is None or node.leaf:
                pgno = self._descend(key, None, bisect_right, pgno, height - 1 - level)
                break
            pgno = node.vals[bisect_right(node.keys, key)]
        entry = lru.get(pgno)
        if entry is None:
            entry = cache.entry(pgno)
        else:
            lru.move_to_end(pgno)
        if not entry.leaf:
            raise self._misplaced(pgno, False, height)
        return entry

    def _leaf_get(self, entry: CacheEntry, key: bytes) -> Optional[Rid]:
        """_leaf_get: the rid of ``key`` in a cached leaf (raw: one C call), or None."""
        if not entry.leaf:
            raise self._misplaced(entry.pgno, False, self.pager.meta.tree_height)
        self.nodes.lru.move_to_end(entry.pgno)
        raw = entry.raw
        if raw is not None:
            return _fast.node_get(raw, key, entry.pgno)  # type: ignore[no-any-return]
        node = entry.node
        assert node is not None
        keys = node.keys
        i = bisect_left(keys, key)
        return node.vals[i] if i < len(keys) and keys[i] == key else None

    def get_sorted(self, keys: Sequence[bytes]) -> List[Optional[Rid]]:
        """get_sorted returns the rid of each of ``keys`` (sorted ascending; duplicates allowed), or None.

        ``[get(k) for k in keys]`` with one descent per parent of leaves instead
        of one per key (Store.get_many): the descent to the parent node (the
        last internal level) of the first key not yet looked up also yields
        the parent's upper bound (the nearest separator to its right on the
        path); every key below it is then routed among the parent's children
        by bisection, and each run of keys falling in one leaf is searched
        there in one page-local C call (``node_find_many``). A batch spread
        thin over a large store has a few keys a leaf, so this per-leaf Python
        is much of get_many's time. O(parents touched * height + leaves
        touched + len(keys) * log(entries per leaf)).

        Raises:
            CorruptionError: a node at the wrong depth or a damaged node (names its page).
        """
        out: List[Optional[Rid]] = [None] * len(keys)
        pager = self.pager
        meta = pager.meta
        if not meta.root or not keys:
            return out
        if type(keys) is not list or not set(map(type, keys)) <= {bytes}:  # at C speed
            keys = [self._check_key(k) for k in keys]
        n = len(keys)
        try:
            if meta.tree_height == 1:
                self._find_in_leaf(meta.root, keys, 0, n, out)
                return out
            cache = self.nodes
            lru = cache.lru
            mapped = pager.map is not None
            overlaid = pager.overlaid
            calls = self._calls
            root, levels = meta.root, meta.tree_height - 1
            i = 0
            while i < n:
                # get's descent (no path, nothing moved) to the parent of the leaves, keeping the
                # nearest separator to the right: a deeper one is tighter.
                key, pgno, hi = keys[i], root, None
                for level in range(levels - 1):
                    node = self._internal(pgno)
                    nkeys = node.keys
                    x = bisect_right(nkeys, key)
                    if x < len(nkeys):
                        hi = nkeys[x]
                    pgno = node.vals[x]
                node = self._internal(pgno)
                pkeys, pvals = node.keys, node.vals
                last = len(pkeys)
                stop = n if hi is None else bisect_left(keys, hi, i)  # keys[i] < hi: at least keys[i]
                while i < stop:
                    x = bisect_right(pkeys, keys[i])
                    end = stop if x == last else bisect_left(keys, pkeys[x], i, stop)
                    pgno = pvals[x]
                    entry = lru.get(pgno)
                    if entry is None:
                        if mapped and pgno not in overlaid:
                            calls.leaf_find_many(pgno, keys, i, end, out)
                        else:
                            self._find_in_leaf(pgno, keys, i, end, out)
                    elif entry.leaf and entry.raw is not None:
                        # a leaf cached raw (most, right after writes): searched where it is,
                        # not moved in the LRU (get's rule)
                        _fast.node_find_many(entry.raw, keys, i, end, out, pgno)
                    else:
                        self._find_in_leaf(pgno, keys, i, end, out)
                    i = end
        finally:
            self.nodes.trim()
        return out

    def _internal(self, pgno: int) -> Node:
        """_internal: the decoded internal node ``pgno`` (not moved in the LRU, as a get's descent).

        Raises:
            CorruptionError: a leaf where an internal node must be (names its page).
        """
        entry = self.nodes.lru.get(pgno)
        node = None if entry is None else entry.node
        if node is not None and not node.leaf:
            return node
        cache = self.nodes
        entry = cache.entry(pgno)
        if entry.leaf:
            raise self._misplaced(pgno, True, self.pager.meta.tree_height)
        return cache.decoded(entry)

    def _find_in_leaf(self, pgno: int, keys: List[bytes], i: int, end: int, out: List[Optional[Rid]]) -> None:
        """_find_in_leaf: get_sorted's search of keys[i:end] in leaf ``pgno`` through the node cache
        (a leaf newest in the log, or decoded): out[t] = the rid of keys[t], where found."""
        cache = self.nodes
        pager = self.pager
        if pager.map is not None and pgno not in pager.overlaid and pgno not in cache.lru:
            self._calls.leaf_find_many(pgno, keys, i, end, out)
            return
        entry = cache.entry(pgno)
        if not entry.leaf:
            raise self._misplaced(pgno, False, pager.meta.tree_height)
        raw = entry.raw
        if raw is not None:
            _fast.node_find_many(raw, keys, i, end, out, pgno)
        else:
            leaf = entry.node
            assert leaf is not None
            lkeys, vals = leaf.keys, leaf.vals
            for t in range(i, end):
                k = keys[t]
                x = bisect_left(lkeys, k)
                if x < len(lkeys) and lkeys[x] == k:
                    out[t] = vals[x]
        if cache.weight != cache.settled:
            cache.trim()  # nothing of this leaf is held past here: keep the cache within its bound

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
        return self.put_valid(key, (pgno, slot))

    def put_valid(self, key: bytes, rid: Rid) -> Optional[Rid]:
        """put_valid is ``put`` for a caller that has checked its arguments: ``key`` is ``bytes``
        no longer than ``max_key`` and ``rid`` a (u32, u16) pair of ints (the store, whose keys
        ``Store._key`` checked and whose rids the heap handed out). ``put``'s checks cost a
        third of its own code on the path of every record a transaction writes."""
        pgno, slot = rid
        cache = self.nodes
        hint, self._hint = self._hint, None
        if hint is not None and hint[0] == key:
            entry = hint[1]
            if cache.lru.get(entry.pgno) is entry and entry.raw is hint[2]:
                # lookup() just searched this very leaf, and nothing has changed it since
                # (every change to a leaf replaces its raw bytes, and a leaf dropped from the
                # cache, freed or reset is no longer its page's entry): no descent, and no
                # search: the key is at the hint's index, or goes there. (lookup moved the
                # leaf to the LRU's recent end already.)
                old_rid = hint[4]
                if old_rid is not None:
                    if old_rid != rid:
                        page = self.pager.write_image(entry.pgno, hint[2])
                        nodes.leaf_set_rid(page, hint[3], pgno, slot)
                        cache.changed_in_place(entry, page)
                    cache.trim()
                    return old_rid
                page = self.pager.write_image(entry.pgno, hint[2])
                buf = page.buffer
                if type(buf) is bytearray:  # a pager frame: nodes.leaf_insert_raw's lean call, inline
                    raw = _fast.leaf_insert(buf, hint[3], key, pgno, slot, entry.pgno)
                else:  # pragma: no cover - a frame of another kind (the pager's are bytearrays)
                    raw = nodes.leaf_insert_raw(page, hint[3], key, pgno, slot)
                if raw is not None:
                    cache.changed_to(entry, raw)
                    if cache.weight != cache.settled:
                        cache.trim()
                    return None
                # it overflows: the split needs the path
        meta = self.pager.meta
        if not meta.root:
            page = self.pager.allocate(fmt.PAGE_LEAF)
            cache.adopt(Node(page.pgno, True, [], []))
            meta.root = page.pgno
            meta.tree_height = 1
        path: Path = []
        entry = self._descend_entry(key, path)
        leaf_raw = entry.raw
        if leaf_raw is not None:
            i, equal, old_pgno, old_slot = _fast.node_find(leaf_raw, key, False, entry.pgno)
            # The common case, in place in the page: no decode, no rebuild.
            leaf_pgno = entry.pgno
            if equal:
                if (old_pgno, old_slot) != rid:
                    page = self.pager.write_image(leaf_pgno, leaf_raw)
                    nodes.leaf_set_rid(page, i, pgno, slot)
                    cache.changed_in_place(entry, page)
                cache.trim()
                return old_pgno, old_slot
            page = self.pager.write_image(leaf_pgno, leaf_raw)
            raw = nodes.leaf_insert_raw(page, i, key, pgno, slot)
            if raw is not None:
                cache.changed_to(entry, raw)
                cache.trim()
                return None
        leaf = cache.decoded(entry)  # it overflows (or was decoded already): change the lists
        keys = leaf.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            old: Rid = leaf.vals[i]
            if old != rid:
                leaf.vals[i] = rid
                cache.mark_dirty(leaf)
            cache.trim()
            return old
        keys.insert(i, key)
        leaf.vals.insert(i, rid)
        leaf.size += LEAF_COST + len(key)
        cache.mark_dirty(leaf)
        if leaf.size > self.balancer.usable:
            self.balancer.fix_up(path, leaf, append=i == len(keys) - 1)
        cache.trim()
        return None

    def delete(self, key: bytes) -> Optional[Rid]:
        """delete removes ``key`` and returns the rid it mapped to, or None if absent. O(log n)."""
        if type(key) is not bytes:
            key = self._check_key(key)
        meta = self.pager.meta
        pgno = meta.root
        if not pgno:
            return None
        cache = self.nodes
        height = meta.tree_height
        if height > 1:
            # The common case first, as ``lookup`` descends (no path, internal nodes not moved in
            # the LRU): a raw leaf, changed in place. The path is built only for a leaf the
            # removal underfills (one delete in a few hundred), by a second descent; a leaf
            # decoded already (dirty since a split in this transaction) goes the general way.
            entry = self._leaf_entry(key, pgno, height)
            pgno = entry.pgno
            raw = entry.raw
            if raw is not None:
                i, equal, old_pgno, old_slot = _fast.node_find(raw, key, False, pgno)
                if not equal:
                    if cache.weight != cache.settled:
                        cache.trim()
                    return None
                raw, used = nodes.leaf_remove_raw(self.pager.write_image(pgno, raw), i)
                cache.changed_to(entry, raw)
                if used < self.balancer.min_leaf:
                    # underfull: the rebalance needs the path, which the same key routes to
                    # this very leaf (the descent reads separators only)
                    up: Path = []
                    if self._descend(key, up) != pgno:  # pragma: no cover - the nodes above did not change
                        raise CorruptionError(pgno, "leaf moved between two descents")
                    self.balancer.fix_up(up, cache.decoded(entry))
                if cache.weight != cache.settled:
                    cache.trim()
                return old_pgno, old_slot
        path: Path = []
        entry = self._descend_entry(key, path)
        raw = entry.raw
        if raw is not None:
            i, equal, old_pgno, old_slot = _fast.node_find(raw, key, False, entry.pgno)
            if not equal:
                cache.trim()
                return None
            raw, used = nodes.leaf_remove_raw(self.pager.write_image(entry.pgno, raw), i)
            cache.changed_to(entry, raw)
            if path and used < self.balancer.min_leaf:
                self.balancer.fix_up(path, cache.decoded(entry))
            cache.trim()
            return old_pgno, old_slot
        leaf = cache.decoded(entry)
        keys = leaf.keys
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            cache.trim()
            return None
        old: Rid = leaf.vals.pop(i)
        del keys[i]
        leaf.size -= LEAF_COST + len(key)
        cache.mark_dirty(leaf)
        if path and leaf.size < self.balancer.min_leaf:
            self.balancer.fix_up(path, leaf)
        cache.trim()
        return old

    def delete_run(self, lo: Optional[bytes], hi: Optional[bytes]) -> Tuple[List[bytes], List[Rid]]:
        """delete_run removes the first run of keys with lo <= key < hi, all from one leaf, and returns
        them with their rids; ``([], [])`` when the range holds no key.

        For range deletes (Store.delete_range), called until it returns
        nothing: the run is cut out of its leaf in one go, and the leaf is
        rebalanced once (an emptied leaf is merged into a neighbour, which
        frees its page), so a range costs one descent and at most one merge
        per leaf, not per key. A leaf the range covers whole is not decoded
        at all: its entry is taken out of its parent and its page freed (the
        keys and rids come from the scan, one C call over the leaf), and only
        the parent, once underfull, is rebalanced. O(log n + one leaf).
        """
        scan: Path = []
        keys, pgnos, slots = self.range_leaf(lo, hi, path=scan)
        if not keys:
            return [], []
        scanned = scan[-1][0].vals[scan[-1][1]] if scan else self.pager.meta.root
        cache = self.nodes
        path: Path = []
        try:
            entry = self._descend_entry(keys[0], path)
            if path and entry.pgno == scanned:
                node, raw = entry.node, entry.raw
                if node is not None:
                    count = len(node.keys)
                else:  # a raw node page is dense (nslots == nlive: nodes.check): its entry count is nlive
                    assert raw is not None
                    count = _NLIVE.unpack_from(raw, fmt.OFF_NLIVE)[0]
                if count == len(keys):  # the scan read this leaf, and the run is all of it
                    self._drop_leaf(path, entry.pgno)
                    return keys, list(zip(pgnos, slots))
            leaf = cache.decoded(entry)
            i = bisect_left(leaf.keys, keys[0])
            j = i + len(keys)
            if leaf.keys[i:j] != keys:  # range_leaf read the same leaf: anything else is a damaged tree
                raise CorruptionError(leaf.pgno, "leaf changed between its scan and its descent")
            rids = leaf.vals[i:j]
            del leaf.keys[i:j]
            del leaf.vals[i:j]
            leaf.size -= LEAF_COST * len(keys) + sum(map(len, keys))
            cache.mark_dirty(leaf)
            self._hint = None
            if path and leaf.size < self.balancer.min_leaf:
                self.balancer.fix_up(path, leaf)
        finally:
            cache.trim()
        return keys, rids

    def _drop_leaf(self, path: Path, pgno: int) -> None:
        """_drop_leaf takes leaf ``pgno`` (not the root), whose every key is going, out of its parent
        (the last entry of ``path``) with its separator, frees its page, and rebalances from the
        parent up. The parent's other children keep their keys; the neighbour's bounds widen."""
        parent, i = path.pop()
        sep = parent.keys.pop(i - 1 if i > 0 else 0)
        del parent.vals[i]
        parent.size -= INTERNAL_COST + len(sep)
        cache = self.nodes
        cache.mark_dirty(parent)
        cache.release(pgno)
        self._hint = None
        self._map_hint = None
        self.balancer.fix_up(path, parent)

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
        keys, pgnos, slots = self.range_leaf(lo, hi, reverse, resume)
        return list(zip(keys, zip(pgnos, slots)))

    def range_leaf(
        self,
        lo: Optional[bytes],
        hi: Optional[bytes],
        reverse: bool = False,
        resume: Optional[bytes] = None,
        path: Optional[Path] = None,
        limit: int = -1,
    ) -> Tuple[List[bytes], List[int], List[int]]:
        """range_leaf is ``range_batch`` as three lists: the keys, their rids' pages and slots.

        For scans, which take a leaf at a time: a leaf in the data file is
        read in place from the pager's map (one C call decodes it, one more
        per bound of the run), and only the run's keys are copied out; a
        cached or overlaid leaf comes from the node cache. O(log n + one leaf).

        ``path``: a list the call leaves the descent's path in. Passed back
        on the next call, non-empty, with ``resume`` the last key returned
        and NO write to the tree in between, the scan steps to the next leaf
        without descending from the root. After any write, pass a new list.

        ``limit`` >= 0: at most that many entries, the first ones in the scan's
        order (only those keys are copied out of the leaf). A run cut short by
        it does not end its leaf: the next call must not step from its ``path``.
        """
        lo = None if lo is None else self._check_key(lo)
        hi = None if hi is None else self._check_key(hi)
        resume = None if resume is None else self._check_key(resume)
        if not self.pager.meta.root:
            return [], [], []
        if path is None:
            path = []
        try:
            if reverse:
                return self._leaf_reverse(lo, hi, resume, path, limit)
            return self._leaf_forward(lo, hi, resume, path, limit)
        finally:
            self.nodes.trim()

    def count_range(self, lo: Optional[bytes], hi: Optional[bytes]) -> int:
        """count_range returns how many keys k have ``lo <= k < hi`` (None: unbounded).

        A range view's ``len()``: leaf after leaf, one page-local C call a leaf
        (two for the first) that finds the bound's index and copies no key out
        (``_leaf_run`` with a limit of 0). O(log n + leaves in the range).

        Raises:
            CorruptionError: a node at the wrong depth or a damaged node (names its page).
        """
        lo = None if lo is None else self._check_key(lo)
        hi = None if hi is None else self._check_key(hi)
        if not self.pager.meta.root or (lo is not None and hi is not None and lo >= hi):
            return 0
        path: Path = []
        total = 0
        try:
            pgno: Optional[int] = self._descend(lo, path, bisect_right if lo is not None else _first)
            start = lo
            while pgno is not None:
                i = 0
                if start is not None:
                    i = self._leaf_run(pgno, start, False, None, 0)[0]
                    start = None
                if hi is None:
                    total += self._leaf_run(pgno, None, False, None, 0)[2] - i
                else:
                    end, _, count = self._leaf_run(pgno, hi, False, None, 0)[:3]
                    if end < count:  # hi falls in this leaf: the range ends here
                        return total + max(0, end - i)
                    total += count - i
                pgno = self._step(path, True)
            return total
        finally:
            self.nodes.trim()

    @property
    def changed(self) -> bool:
        """changed: the tree holds changes not yet built into their pages (dirty decoded nodes:
        an apply under way, before ``flush``). A reader of the committed state asks this with
        ``Pager.reads_as_of`` before reading through this tree."""
        return bool(self.nodes.dirty)

    def cache_pages(self) -> int:
        """cache_pages: what the node cache holds, in pages (a decoded node weighs nodecache.decoded_weight)."""
        return self.nodes.weight

    def flush(self) -> None:
        """flush encodes every dirty node into its page (``pager.write``). Call before each commit."""
        self.nodes.flush()

    def forget(self, pgnos: Optional[Set[int]]) -> None:
        """forget drops what the tree cached of ``pgnos`` (None: of every page): a reader beside
        a writer saw them change (``Pager.on_change``)."""
        if pgnos is None:
            self.reset()
            return
        if pgnos:
            self.nodes.forget(pgnos)
            self._hint = None

    def reset(self) -> None:
        """reset forgets every cached node, dirty ones included. Call after a rollback."""
        self.nodes.reset()
        self._hint = None

    def pages(self) -> Iterator[int]:
        """pages yields the number of every page the tree uses (root first, depth-first).

        Raises:
            CorruptionError: a page reached twice, or a node at the wrong depth (``_walk``).
        """
        for pgno, _ in self._walk():
            yield pgno

    def entries(self) -> Iterator[Tuple[bytes, Rid]]:
        """entries yields every (key, rid) in key order. Do not write while iterating.

        Raises:
            CorruptionError: a page reached twice, or a node at the wrong depth (``_walk``).
        """
        for _, node in self._walk():
            if node.leaf:
                yield from zip(node.keys, node.vals)

    def _walk(self) -> Iterator[Tuple[int, Node]]:
        """_walk yields every node of the tree, depth-first from the root, with its page number.

        Bounded on any file: a leaf must sit at ``meta.tree_height`` and an internal
        node above it (so a child pointer that loops back up is caught within the
        height), and no page may be reached twice (one bit per page: a pointer to a
        node already walked would otherwise repeat its whole subtree, once per
        pointer). Memory: the bits, and the stack of one path's siblings.

        Raises:
            CorruptionError: naming the page found twice or at the wrong depth.
        """
        meta = self.pager.meta
        root, height = meta.root, meta.tree_height
        if not root:
            return
        seen = bytearray((meta.page_count >> 3) + 1)
        stack = [(root, 1)]
        while stack:
            pgno, depth = stack.pop()
            if not 0 < pgno < meta.page_count:
                raise CorruptionError(pgno, f"tree pointer to page {pgno}, outside the file ({meta.page_count} pages)")
            if seen[pgno >> 3] & (1 << (pgno & 7)):
                raise CorruptionError(pgno, "page is reachable twice in the tree")
            seen[pgno >> 3] |= 1 << (pgno & 7)
            node = self.nodes.peek(pgno)
            if node.leaf != (depth == height):
                raise self._misplaced(pgno, node.leaf, height)
            yield pgno, node
            if not node.leaf:
                stack.extend([(child, depth + 1) for child in reversed(node.vals)])

    def check(self) -> Dict[str, int]:
        """check verifies every invariant of the tree and returns its counts. O(pages).

        Flushes dirty nodes first, then decodes every node page afresh and
        checks it (treecheck.py: structure, stamped number, node type by
        depth, key order and bounds, fill, no page visited twice, each cached
        node equal to its page), and the node cache's bookkeeping.

        Returns:
            ``{"pages", "leaves", "internal", "entries", "height", "used_bytes"}``.

        Raises:
            CorruptionError: the first violation found, naming its page.
        """
        self.flush()
        return check_tree(self.pager, self.nodes, self.balancer)

    # ---- descent and scans ----

    @staticmethod
    def _check_key(key: bytes) -> bytes:
        if type(key) is bytes:
            return key
        if isinstance(key, (bytearray, memoryview)):
            return bytes(key)
        raise TypeError(f"key must be bytes-like, not {type(key).__name__}")

    @staticmethod
    def _misplaced(pgno: int, leaf: bool, height: int) -> CorruptionError:
        """_misplaced: the error for a leaf above the tree height or an internal node at it."""
        if leaf:
            return CorruptionError(pgno, f"leaf above the tree height {height}")
        return CorruptionError(pgno, f"internal node at the tree height {height}")

    def _descend(
        self,
        key: Optional[bytes],
        path: Optional[Path] = None,
        choose: Callable[[List[bytes], Any], int] = bisect_right,
        pgno: Optional[int] = None,
        levels: int = 0,
    ) -> int:
        """_descend is the tree's one descent: it returns the page number of the leaf below
        ``pgno`` (None: the root, ``levels`` then the tree's internal levels) that ``choose``
        picks at each level: ``bisect_right`` (the leaf whose range holds ``key``: a get, a
        change, a forward scan), ``bisect_left`` (the leaf before the keys >= key: a reverse
        scan), ``_first`` or ``_last`` (no key). The leaf is not read.

        Internal nodes are bisected decoded: the node cache keeps them so, and one met raw
        is decoded there. With ``path`` (a change or a scan), each (node, child index) is
        appended to it and the nodes move to the LRU's recent end; without (a get), nothing
        moves: every change to a cached node replaces or forgets its entry.

        Raises:
            CorruptionError: a leaf above the tree height (names its page).
        """
        if pgno is None:
            meta = self.pager.meta
            pgno, levels = meta.root, meta.tree_height - 1
        cache = self.nodes
        lru = cache.lru
        for _ in range(levels):
            entry = lru.get(pgno)
            if entry is None:
                entry = cache.entry(pgno)
            elif path is not None:
                lru.move_to_end(pgno)
            node = entry.node
            if node is None or node.leaf:
                if entry.leaf:
                    raise self._misplaced(pgno, True, self.pager.meta.tree_height)
                node = cache.decoded(entry)
            i = choose(node.keys, key)
            if path is not None:
                path.append((node, i))
            pgno = node.vals[i]
        return pgno

    @staticmethod
    def _upper_bound(path: Path) -> Optional[bytes]:
        """_upper_bound: the smallest separator to the right of a descent's ``path`` (None: the
        leaf is the last): every key of the leaf it reached is below it. A deeper separator
        is tighter, so the deepest one wins."""
        for node, i in reversed(path):
            if i < len(node.keys):
                return node.keys[i]
        return None

    def _descend_entry(self, key: bytes, path: Optional[Path]) -> CacheEntry:
        """_descend_entry is ``_descend`` for a change: the leaf returned as its cache entry
        (raw, or decoded already), the path on ``path``."""
        pgno = self._descend(key, path)
        entry = self.nodes.entry(pgno)
        if not entry.leaf:
            raise self._misplaced(pgno, False, self.pager.meta.tree_height)
        return entry

    def _step(self, path: Path, forward: bool) -> Optional[int]:
        """_step moves ``path`` to the next (or previous) leaf and returns its page number; None past the end."""
        depth = self.pager.meta.tree_height - 1
        while path:
            node, i = path.pop()
            j = i + 1 if forward else i - 1
            if 0 <= j < len(node.vals):
                path.append((node, j))
                return self._descend(None, path, _first if forward else _last, node.vals[j], depth - len(path))
        return None

    def _leaf_run(
        self, pgno: int, start: Optional[bytes], after: bool, stop: Optional[bytes], limit: int = -1
    ) -> Tuple[int, int, int, List[bytes], List[int], List[int]]:
        """_leaf_run: ``nodes.map_leaf_run`` for leaf ``pgno`` wherever it is, the map or the node cache.

        Entries [i, j): i the first key >= ``start`` (> with ``after``; 0
        without), j the first >= ``stop`` (the count without), and j <= i +
        ``limit`` when ``limit`` >= 0. Returns ``(i, j, count, keys, rid
        pages, rid slots)``, the lists for [i, j).
        """
        pager = self.pager
        cache = self.nodes
        mm = pager.map
        if mm is not None and pgno not in pager.overlaid:
            e = cache.lru.get(pgno)
            if e is None or e.raw is not None:  # a clean cached leaf is the map's bytes too
                return self._calls.leaf_run(pgno, start, after, stop, limit)
        e = cache.entry(pgno)
        if not e.leaf:
            raise self._misplaced(pgno, False, pager.meta.tree_height)
        if e.raw is not None:
            return _fast.leaf_run(e.raw, pgno, start, after, stop, limit)  # type: ignore[no-any-return]
        else:
            node = e.node
            assert node is not None
            keys = node.keys
            pgnos = [v[0] for v in node.vals]
            slots = [v[1] for v in node.vals]
        if start is None:
            i = 0
        else:
            i = bisect_right(keys, start) if after else bisect_left(keys, start)
        j = len(keys) if stop is None else bisect_left(keys, stop, i)
        if 0 <= limit < j - i:
            j = i + limit
        return i, j, len(keys), keys[i:j], pgnos[i:j], slots[i:j]

    def _leaf_forward(
        self, lo: Optional[bytes], hi: Optional[bytes], resume: Optional[bytes], path: Path, limit: int
    ) -> Tuple[List[bytes], List[int], List[int]]:
        start: Optional[bytes]
        if resume is not None and (lo is None or resume >= lo):
            start, inclusive = resume, False
        else:
            start, inclusive = lo, True
        if start is not None and hi is not None and start >= hi:
            return [], [], []
        pgno: Optional[int]
        if path and resume is not None:
            # The last run ended its leaf (or the range): go on to the next leaf.
            pgno, start = self._step(path, True), None
        else:
            del path[:]
            pgno = self._descend(start, path, bisect_right if start is not None else _first)
        while pgno is not None:
            i, j, count, keys, pgnos, slots = self._leaf_run(pgno, start, not inclusive, hi, limit)
            if i < count:
                return keys, pgnos, slots  # empty when hi comes first: the range is done
            pgno = self._step(path, True)
            start = None
        return [], [], []

    def _leaf_reverse(
        self, lo: Optional[bytes], hi: Optional[bytes], resume: Optional[bytes], path: Path, limit: int
    ) -> Tuple[List[bytes], List[int], List[int]]:
        bound = hi if resume is None or (hi is not None and hi <= resume) else resume
        if bound is not None and lo is not None and bound <= lo:
            return [], [], []
        pgno: Optional[int]
        if path and resume is not None:
            pgno, bound = self._step(path, False), None
        else:
            del path[:]
            pgno = self._descend(bound, path, bisect_left if bound is not None else _last)
        while pgno is not None:
            i, j, count, keys, pgnos, slots = self._leaf_run(pgno, lo, False, bound)
            if j > 0:  # keys below the bound here; the run is empty when lo comes first: done
                if 0 <= limit < j - i:  # the last ``limit`` of the run come first backwards
                    del keys[: j - i - limit], pgnos[: j - i - limit], slots[: j - i - limit]
                keys.reverse()
                pgnos.reverse()
                slots.reverse()
                return keys, pgnos, slots
            pgno = self._step(path, False)
            bound = None
        return [], [], []
