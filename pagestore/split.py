"""split: splits, merges and redistributions, which keep every B+tree node between its minimum and a page.

The tree calls ``Balancer.fix_up`` after a change left a decoded node too
big for its page or below its minimum; everything here works on decoded
nodes (``node.Node``) taken from and given back to the node cache, and
allocates or frees pages through the pager. Where a node is cut
(``choose_split``) is the split policy; nothing here knows how the cache
weighs or evicts nodes.

MINIMUMS: every node except the root uses at least a quarter of its usable
bytes (leaves) or a sixth (internal nodes); ``choose_split`` says why these
fractions can always be kept.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from . import format as fmt
from .node import INTERNAL_COST, LEAF_COST, Node, node_size, separator
from .nodecache import NodeCache, TreePager

#: A descent's record: (internal node, index of the child taken), root first.
Path = List[Tuple[Node, int]]


def choose_split(leaf: bool, keys: List[bytes], append: bool, usable: int, minimum: int) -> int:
    """choose_split picks where a run of entries is cut in two. O(entries).

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
    if leaf:
        cost = LEAF_COST
        total = cost * len(keys) + sum(map(len, keys))
    else:
        cost = INTERNAL_COST
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


def merged_size(a: Node, b: Node, sep: bytes) -> int:
    """merged_size: the bytes of a and b as one node (internal nodes pull the parent's separator down)."""
    return a.size + b.size if a.leaf else a.size + b.size + len(sep)


class Balancer:
    """Balancer restores the size invariants of a tree after a change. Callers: the BTree only."""

    def __init__(self, pager: TreePager, cache: NodeCache) -> None:
        self.pager = pager
        self.cache = cache
        self.usable = pager.page_size - fmt.HEADER_SIZE
        self.min_leaf = self.usable // 4
        self.min_internal = self.usable // 6

    def minimum(self, leaf: bool) -> int:
        """minimum: the fewest bytes a non-root node of this kind may use."""
        return self.min_leaf if leaf else self.min_internal

    def fix_up(self, path: Path, node: Node, append: bool = False) -> None:
        """fix_up restores the size invariants from ``node`` up to the root.

        At each level the changed child is split if it overflows its page or
        rebalanced with a sibling if it is underfull; either changes its
        parent, which is examined next. A level where nothing changes ends the
        walk. At the root, an overflow grows the tree by one level and an
        internal root left with one child is replaced by that child.
        ``append``: the change was an insert at the end of the node, so a
        split keeps the left node full (ascending bulk loads).
        """
        usable = self.usable
        cache = self.cache
        child = node
        while path:
            parent, i = path.pop()
            if child.size > usable:
                sep, right = self.split(child, append)
                append = append and i == len(parent.keys)
                parent.keys.insert(i, sep)
                parent.vals.insert(i + 1, right.pgno)
                parent.size += INTERNAL_COST + len(sep)
            elif child.size < self.minimum(child.leaf):
                self.rebalance(parent, i, child)
            else:
                return
            cache.mark_dirty(parent)
            child = parent
        meta = self.pager.meta
        if child.size > usable:
            sep, right = self.split(child, append)
            page = self.pager.allocate(fmt.PAGE_INTERNAL)
            root = Node(page.pgno, False, [sep], [child.pgno, right.pgno])
            cache.adopt(root)
            meta.root = root.pgno
            meta.tree_height += 1
        while not child.leaf and len(child.vals) == 1:
            only = child.vals[0]
            cache.release(child.pgno)
            meta.root = only
            meta.tree_height -= 1
            child = cache.load(only)

    def split(self, node: Node, append: bool) -> Tuple[bytes, Node]:
        """split moves the upper part of an overflowing node to a new right sibling.

        Returns the separator for the parent and the new node.
        """
        keys, vals = node.keys, node.vals
        m = choose_split(node.leaf, keys, append, self.usable, self.minimum(node.leaf))
        page = self.pager.allocate(fmt.PAGE_LEAF if node.leaf else fmt.PAGE_INTERNAL)
        if node.leaf:
            right = Node(page.pgno, True, keys[m:], vals[m:])
            sep = separator(keys[m - 1], keys[m])
            del keys[m:]
            del vals[m:]
        else:
            # children 0..m-1 stay, key m-1 (the separator before child m) moves up
            right = Node(page.pgno, False, keys[m:], vals[m:])
            sep = keys[m - 1]
            del keys[m - 1 :]
            del vals[m:]
        node.size = node_size(node.leaf, keys)
        self.cache.mark_dirty(node)
        self.cache.adopt(right)
        return sep, right

    def rebalance(self, parent: Node, i: int, child: Node) -> None:
        """rebalance fixes an underfull child i of ``parent``: merge with a sibling if the two fit one page,
        else redistribute entries between them (which always leaves both at or above the minimum)."""
        usable = self.usable
        vals = parent.vals
        left: Optional[Node] = None
        right: Optional[Node] = None
        if i > 0:
            left = self.cache.load(vals[i - 1])
            if merged_size(left, child, parent.keys[i - 1]) <= usable:
                self.merge(parent, i - 1, left, child)
                return
        if i + 1 < len(vals):
            right = self.cache.load(vals[i + 1])
            if merged_size(child, right, parent.keys[i]) <= usable:
                self.merge(parent, i, child, right)
                return
        if right is not None:
            self.redistribute(parent, i, child, right)
        else:
            assert left is not None, "a non-root node always has a sibling"
            self.redistribute(parent, i - 1, left, child)

    def merge(self, parent: Node, j: int, a: Node, b: Node) -> None:
        """merge appends b (child j+1) to a (child j) and frees b's page."""
        sep = parent.keys[j]
        a.size = merged_size(a, b, sep)
        if not a.leaf:
            a.keys.append(sep)
        a.keys.extend(b.keys)
        a.vals.extend(b.vals)
        del parent.keys[j]
        del parent.vals[j + 1]
        parent.size -= INTERNAL_COST + len(sep)
        self.cache.mark_dirty(a)
        self.cache.release(b.pgno)

    def redistribute(self, parent: Node, j: int, a: Node, b: Node) -> None:
        """redistribute re-cuts children j and j+1 of ``parent`` evenly and replaces their separator."""
        old_sep = parent.keys[j]
        vals = a.vals + b.vals
        if a.leaf:
            keys = a.keys + b.keys
            m = choose_split(True, keys, False, self.usable, self.min_leaf)
            sep = separator(keys[m - 1], keys[m])
            a.keys, a.vals = keys[:m], vals[:m]
            b.keys, b.vals = keys[m:], vals[m:]
        else:
            keys = a.keys + [old_sep] + b.keys
            m = choose_split(False, keys, False, self.usable, self.min_internal)
            sep = keys[m - 1]
            a.keys, a.vals = keys[: m - 1], vals[:m]
            b.keys, b.vals = keys[m:], vals[m:]
        a.size = node_size(a.leaf, a.keys)
        b.size = node_size(b.leaf, b.keys)
        parent.keys[j] = sep
        parent.size += len(sep) - len(old_sep)
        self.cache.mark_dirty(a)
        self.cache.mark_dirty(b)
