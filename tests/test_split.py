"""split.py: the split policy (choose_split) and the Balancer's split, merge and redistribution,
through a BTree on a MemoryPager where a whole tree's shape can be checked after each."""
from __future__ import annotations

import random
from typing import List

import pytest
from fakes import MemoryPager
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import HYPOTHESIS
from pagestore.btree import BTree
from pagestore.node import INTERNAL_COST, LEAF_COST, Node, max_key_len
from pagestore.split import Balancer, choose_split, merged_size

PAGE = 512
USABLE = PAGE - 40


def _sides(leaf: bool, keys: List[bytes], m: int) -> tuple:
    if leaf:
        return (sum(LEAF_COST + len(k) for k in keys[:m]), sum(LEAF_COST + len(k) for k in keys[m:]))
    left = INTERNAL_COST * m + sum(len(k) for k in keys[: m - 1])
    right = INTERNAL_COST * (len(keys) + 1 - m) + sum(len(k) for k in keys[m:])
    return left, right


@settings(max_examples=300, **HYPOTHESIS)
@given(st.booleans(), st.booleans(), st.data())
def test_choose_split_leaves_both_sides_in_range(leaf: bool, append: bool, data: st.DataObject) -> None:
    """A run that overflows one page by at most one entry always has a valid cut, and the one chosen is valid."""
    minimum = USABLE // 4 if leaf else USABLE // 6
    cost = LEAF_COST if leaf else INTERNAL_COST
    keys: List[bytes] = []
    size = 0 if leaf else cost
    while size <= USABLE:
        k = data.draw(st.binary(min_size=0, max_size=max_key_len(PAGE)))
        keys.append(k)
        size += cost + len(k)
    m = choose_split(leaf, keys, append, USABLE, minimum)
    left, right = _sides(leaf, keys, m)
    assert minimum <= left <= USABLE and minimum <= right <= USABLE
    if append:  # the left side as full as any valid cut allows
        for m2 in range(m + 1, len(keys) + (0 if leaf else 1)):
            l2, r2 = _sides(leaf, keys, m2)
            assert not (l2 <= USABLE and minimum <= r2 <= USABLE)


def test_merged_size_pulls_the_separator_down_for_internal_nodes() -> None:
    a, b = Node(1, True, [b"a"], [(1, 1)]), Node(2, True, [b"b"], [(1, 2)])
    assert merged_size(a, b, b"b") == a.size + b.size
    c, d = Node(3, False, [b"a"], [1, 2]), Node(4, False, [b"c"], [5, 6])
    assert merged_size(c, d, b"bb") == c.size + d.size + 2


def _shape(tree: BTree) -> None:
    tree.check()  # fill, order, bounds: what the Balancer must keep


def test_splits_grow_and_merges_shrink_the_tree() -> None:
    pager = MemoryPager(PAGE)
    tree = BTree(pager)
    balancer: Balancer = tree.balancer
    assert balancer.minimum(True) == USABLE // 4 and balancer.minimum(False) == USABLE // 6
    keys = [b"%06d" % i + b"." * 30 for i in range(600)]
    for i, k in enumerate(keys):
        tree.put(k, (i + 1, 0))
    _shape(tree)
    grown = pager.meta.tree_height
    assert grown >= 3
    rng = random.Random(4)
    rng.shuffle(keys)
    for n, k in enumerate(keys[:590]):
        tree.delete(k)
        if n % 50 == 0:
            _shape(tree)
    _shape(tree)
    assert pager.meta.tree_height < grown  # merges emptied levels and the root collapsed
    assert sorted(k for k, _ in tree.entries()) == sorted(keys[590:])


def test_ascending_appends_leave_leaves_full() -> None:
    """``append``: a split of an ascending load keeps the left node full, so the leaves are
    fuller than random inserts leave them."""
    def leaves_after(order: List[int]) -> int:
        pager = MemoryPager(PAGE)
        tree = BTree(pager)
        for i in order:
            tree.put(b"%06d" % i, (i + 1, 0))
        return tree.check()["leaves"]

    ascending = leaves_after(list(range(2000)))
    shuffled = list(range(2000))
    random.Random(1).shuffle(shuffled)
    assert ascending < leaves_after(shuffled)


@pytest.mark.parametrize("seed", range(3))
def test_redistribution_keeps_every_node_in_range(seed: int) -> None:
    """Deleting from one side of a leaf whose sibling is too full to merge with redistributes."""
    pager = MemoryPager(PAGE)
    tree = BTree(pager)
    rng = random.Random(seed)
    live = set()
    for step in range(3000):
        k = b"%05d" % rng.randrange(800) + b"x" * rng.randrange(0, 60)
        if k in live and rng.random() < 0.45:
            tree.delete(k)
            live.discard(k)
        else:
            tree.put(k, (step + 1, 0))
            live.add(k)
        if step % 300 == 0:
            _shape(tree)
    _shape(tree)
    assert [k for k, _ in tree.entries()] == sorted(live)
