"""treecheck.check_tree catches each invariant its docstring claims: a tree is built on a
MemoryPager, one node page is corrupted, and a fresh tree's check must fail naming the page."""
from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
from fakes import MemoryPager

from pagestore import format as fmt
from pagestore import nodes
from pagestore.btree import BTree
from pagestore.errors import CorruptionError
from pagestore.node import Node, decode
from pagestore.treecheck import check_tree

PAGE = 512


def _key(i: int) -> bytes:
    return b"key" + b"-" * 40 + b"%05d" % i  # long separators: internal nodes fill, the tree is 3 deep


def _tree(n: int = 400) -> Tuple[MemoryPager, BTree]:
    pager = MemoryPager(PAGE)
    tree = BTree(pager)
    for i in range(n):
        tree.put(_key(i), (1000 + i, i % 7))
    tree.flush()
    assert pager.meta.tree_height >= 3  # internal nodes under the root, leaves under them
    return pager, tree


def _node(pager: MemoryPager, pgno: int) -> Node:
    return decode(pgno, bytes(pager.raw(pgno)))


def _rewrite(pager: MemoryPager, pgno: int, leaf: bool, keys: List[bytes], vals: List[object]) -> None:
    nodes.build(pager.write(pgno), pgno, leaf, keys, vals)


def _levels(pager: MemoryPager) -> Dict[str, int]:
    """_levels names pages to corrupt: an internal node above the leaves (not the root) and two of its leaves."""
    inner = _node(pager, pager.meta.root)
    while not _node(pager, inner.vals[1]).leaf:
        inner = _node(pager, inner.vals[1])
    assert inner.pgno != pager.meta.root
    return {"inner": inner.pgno, "leaf": inner.vals[1], "leaf_before": inner.vals[0]}


def _fails(pager: MemoryPager, pgno: object, match: str) -> None:
    fresh = BTree(pager)  # nothing cached: the check reads the corrupted pages
    with pytest.raises(CorruptionError, match=match) as exc:
        fresh.check()
    assert exc.value.pgno == pgno


def test_a_sound_tree_passes_and_counts() -> None:
    pager, tree = _tree()
    stats = check_tree(tree.pager, tree.nodes, tree.balancer)
    assert stats["entries"] == 400 and stats["height"] == pager.meta.tree_height
    assert stats["pages"] == stats["leaves"] + stats["internal"]
    assert BTree(pager).check() == stats


def test_height_without_root() -> None:
    pager = MemoryPager(PAGE)
    pager.meta.tree_height = 2
    _fails(pager, None, "no root")


def test_root_with_height_zero() -> None:
    pager, _ = _tree()
    pager.meta.tree_height = 0
    _fails(pager, pager.meta.root, "height 0")


def test_leaf_at_the_wrong_depth() -> None:
    pager, _ = _tree()
    pager.meta.tree_height += 1
    _fails(pager, _first_leaf(pager), "leaf at depth")


def _first_leaf(pager: MemoryPager) -> int:
    pgno = pager.meta.root
    while True:
        n = _node(pager, pgno)
        if n.leaf:
            return pgno
        pgno = n.vals[0]


def test_a_page_reachable_twice() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    inner = _node(pager, p["inner"])
    vals = list(inner.vals)
    vals[1] = vals[0]
    _rewrite(pager, inner.pgno, False, inner.keys, vals)
    _fails(pager, vals[0], "reachable twice")


def test_a_pointer_to_page_zero() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    inner = _node(pager, p["inner"])
    vals = list(inner.vals)
    vals[1] = 0
    _rewrite(pager, inner.pgno, False, inner.keys, vals)
    # Decoding the node refuses a child of 0 already (so treecheck's own "names page 0" test
    # is a second line): the error names the node that holds the pointer.
    _fails(pager, inner.pgno, "not dense and live")


def test_a_page_stamped_with_another_number() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    pager.raw(p["leaf"])[:] = pager.raw(p["leaf_before"])  # a copy of its neighbour, stamped with its number
    _fails(pager, p["leaf"], "stamped")


def test_a_page_whose_structure_is_broken() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    page = pager.write(p["leaf"])
    off = fmt.HEADER_SIZE  # the first slot's record offset: point it past the page
    pager.raw(p["leaf"])[off:off + 2] = (PAGE + 8).to_bytes(2, "little")
    assert page.pgno == p["leaf"]
    _fails(pager, p["leaf"], "slot points outside")


def test_a_key_below_its_separator() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    leaf = _node(pager, p["leaf"])
    keys = list(leaf.keys)
    keys[0] = b"key"  # below every separator but the leftmost leaf's bound
    _rewrite(pager, leaf.pgno, True, keys, leaf.vals)
    _fails(pager, leaf.pgno, "below the separator")


def test_a_key_not_below_the_next_separator() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    leaf = _node(pager, p["leaf_before"])
    keys = list(leaf.keys)
    keys[-1] = _key(99999)
    _rewrite(pager, leaf.pgno, True, keys, leaf.vals)
    _fails(pager, leaf.pgno, "not below the separator")


def test_an_internal_node_with_one_child() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    inner = _node(pager, p["inner"])
    _rewrite(pager, inner.pgno, False, [], inner.vals[:1])
    _fails(pager, inner.pgno, "1 child")


def test_an_underfull_node() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    leaf = _node(pager, p["leaf"])
    _rewrite(pager, leaf.pgno, True, leaf.keys[:1], leaf.vals[:1])
    _fails(pager, leaf.pgno, "underfull")


def test_a_leaf_above_an_internal_level() -> None:
    pager, _ = _tree()
    p = _levels(pager)
    inner = _node(pager, p["inner"])
    _rewrite(pager, inner.pgno, True, inner.keys, [(1, 1)] * len(inner.keys))  # a leaf where a node belongs
    _fails(pager, inner.pgno, "leaf at depth")


def test_a_cached_node_that_differs_from_its_page() -> None:
    pager, tree = _tree()
    p = _levels(pager)
    leaf = tree.nodes.load(p["leaf"])  # cached, decoded
    leaf_page = _node(pager, p["leaf"])
    vals = list(leaf_page.vals)
    vals[0] = (9999, 9)
    _rewrite(pager, leaf_page.pgno, True, leaf_page.keys, vals)  # the page changes under the cache
    assert tree.nodes.cached(leaf.pgno) is not None
    with pytest.raises(CorruptionError, match="cached node differs") as exc:
        check_tree(tree.pager, tree.nodes, tree.balancer)
    assert exc.value.pgno == leaf.pgno
