"""node.py: node sizes, separators, the longest key, and decoding a node page."""
from __future__ import annotations

import pytest
from fakes import MemoryPager

from pagestore import format as fmt
from pagestore import nodes
from pagestore.errors import CorruptionError
from pagestore.node import INTERNAL_COST, LEAF_COST, Node, decode, max_key_len, node_size, separator


def test_max_key_len_keeps_three_largest_leaf_entries_in_a_page() -> None:
    assert max_key_len(4096) == 1336 and max_key_len(512) == 141  # as its docstring says
    for ps in (512, 1024, 4096, 65536):
        k = max_key_len(ps)
        assert 3 * (LEAF_COST + k) <= ps - fmt.HEADER_SIZE < 3 * (LEAF_COST + k + 17)


def test_node_size_counts_entries_and_slots() -> None:
    keys = [b"a", b"bcd", b""]
    assert node_size(True, keys) == 3 * LEAF_COST + 4
    assert node_size(False, keys) == 4 * INTERNAL_COST + 4  # one more child than keys
    assert node_size(True, []) == 0 and node_size(False, []) == INTERNAL_COST
    assert Node(7, True, list(keys), [(1, 0)] * 3).size == node_size(True, keys)
    assert Node(7, True, [b"x"], [(1, 0)], size=99).size == 99  # a size given is kept


@pytest.mark.parametrize("left, right, sep", [
    (b"apple", b"apricot", b"apr"),
    (b"a", b"b", b"b"),
    (b"ab", b"abc", b"abc"),  # left a prefix of right: all of right
    (b"", b"x", b"x"),
    (b"k\x00", b"k\x01zzz", b"k\x01"),
])
def test_separator_is_the_shortest_prefix_of_right_above_left(left: bytes, right: bytes, sep: bytes) -> None:
    got = separator(left, right)
    assert got == sep
    assert left < got <= right and right.startswith(got)
    assert all(not (left < right[:n]) for n in range(len(got)))  # no shorter prefix separates


def test_decode_round_trips_a_built_node_page() -> None:
    pager = MemoryPager(512)
    leaf = pager.allocate(fmt.PAGE_LEAF)
    keys = [b"a", b"bb", b"ccc"]
    rids = [(10, 0), (10, 1), (11, 5)]
    nodes.build(leaf, leaf.pgno, True, keys, rids)
    n = decode(leaf.pgno, bytes(leaf.buffer))
    assert (n.pgno, n.leaf, n.keys, n.vals, n.size) == (leaf.pgno, True, keys, rids, node_size(True, keys))
    inner = pager.allocate(fmt.PAGE_INTERNAL)
    nodes.build(inner, inner.pgno, False, [b"m"], [3, 4])
    n = decode(inner.pgno, bytes(inner.buffer))
    assert (n.leaf, n.keys, n.vals) == (False, [b"m"], [3, 4])
    assert "internal" in repr(n) and f"pgno={inner.pgno}" in repr(n)


def test_decode_refuses_a_page_that_is_not_a_node() -> None:
    pager = MemoryPager(512)
    heap = pager.allocate(fmt.PAGE_HEAP)
    heap.insert(b"a record")
    with pytest.raises(CorruptionError) as exc:
        decode(heap.pgno, bytes(heap.buffer))
    assert exc.value.pgno == heap.pgno
