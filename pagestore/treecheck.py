"""treecheck: the B+tree's full consistency check, read afresh from the pages.

A TREE IS VALID if and only if: every leaf is at depth meta.tree_height
(the root is at depth 1); keys are strictly ascending within a node and lie
inside the bounds their ancestors' separators give (lo < separator < hi for
separators); an internal node has at least two children; every node except
the root uses at least a minimum of its usable bytes (a quarter for leaves,
a sixth for internal nodes: see ``split.choose_split`` for why these
fractions can always be kept); no page appears twice. ``meta.root == 0``
(with height 0) is the empty tree before the first put; after that the tree
shrinks at most to one empty root leaf.

Callers: ``BTree.check`` only, after it has flushed the node cache.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from .errors import CorruptionError
from .node import Node, decode
from .nodecache import NodeCache, TreePager
from .split import Balancer


def check_tree(pager: TreePager, cache: NodeCache, balancer: Balancer) -> Dict[str, int]:
    """check_tree verifies every invariant of the tree (module docstring) and returns its counts. O(pages).

    Every node page is decoded afresh and checked: page structure
    (``page.check``) and stamped number, node type by depth, key order and
    bounds, children, fill, no page visited twice, and that each cached
    node equals its page. Then the cache's own bookkeeping
    (``NodeCache.check``).

    Returns:
        ``{"pages", "leaves", "internal", "entries", "height", "used_bytes"}``.

    Raises:
        CorruptionError: the first violation found, naming its page.
    """
    meta = pager.meta
    root, height = meta.root, meta.tree_height
    stats = {"pages": 0, "leaves": 0, "internal": 0, "entries": 0, "height": height, "used_bytes": 0}
    if not root:
        if height:
            raise CorruptionError(None, f"tree height is {height} but there is no root")
        cache.check()
        return stats
    if height < 1:
        raise CorruptionError(root, f"tree height {height} with a root page")
    seen: Set[int] = set()
    # (pgno, depth, lo, hi): lo inclusive, hi exclusive, None unbounded
    stack: List[Tuple[int, int, Optional[bytes], Optional[bytes]]] = [(root, 1, None, None)]
    while stack:
        pgno, depth, lo, hi = stack.pop()
        node = _check_node(pager, cache, balancer, pgno, depth, height, lo, hi, seen)
        stats["pages"] += 1
        stats["used_bytes"] += node.size
        if node.leaf:
            stats["leaves"] += 1
            stats["entries"] += len(node.keys)
            continue
        stats["internal"] += 1
        bounds: List[Optional[bytes]] = [lo, *node.keys, hi]
        for i in range(len(node.vals) - 1, -1, -1):
            stack.append((node.vals[i], depth + 1, bounds[i], bounds[i + 1]))
    cache.check()
    return stats


def _check_node(
    pager: TreePager,
    cache: NodeCache,
    balancer: Balancer,
    pgno: int,
    depth: int,
    height: int,
    lo: Optional[bytes],
    hi: Optional[bytes],
    seen: Set[int],
) -> Node:
    if pgno in seen:
        raise CorruptionError(pgno, "page is reachable twice in the tree")
    if pgno == 0:
        raise CorruptionError(0, "a tree pointer names page 0")
    seen.add(pgno)
    page = pager.read(pgno)
    try:
        page.check()
    except CorruptionError as exc:
        raise CorruptionError(pgno, exc.detail) from exc
    if page.pgno != pgno:
        raise CorruptionError(pgno, f"page is stamped with number {page.pgno}")
    node = decode(pgno, bytes(page.buffer))  # decoding checks it as a node
    want_leaf = depth == height
    if node.leaf != want_leaf:
        kind = "leaf" if node.leaf else "internal node"
        raise CorruptionError(pgno, f"{kind} at depth {depth} of a tree of height {height}")
    cached = cache.cached(pgno)
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
        minimum = balancer.minimum(node.leaf)
        if node.size < minimum:
            raise CorruptionError(pgno, f"underfull: {node.size} bytes used, minimum {minimum}")
    if node.size > balancer.usable:
        raise CorruptionError(pgno, f"node needs {node.size} bytes, a page has {balancer.usable}")
    return node
