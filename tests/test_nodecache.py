"""nodecache.py: the tree's LRU of nodes, raw or decoded, its weights, flush, trim and forget,
on a MemoryPager (whose pages are never mapped, so every miss reads through the pager)."""
from __future__ import annotations

from typing import List

import pytest
from fakes import MemoryPager

from pagestore import format as fmt
from pagestore import nodes
from pagestore.errors import CorruptionError
from pagestore.node import Node, decode
from pagestore.nodecache import DECODED_WEIGHT, NodeCache


def _leaves(pager: MemoryPager, n: int) -> List[int]:
    out = []
    for i in range(n):
        page = pager.allocate(fmt.PAGE_LEAF)
        nodes.build(page, page.pgno, True, [b"k%d" % i], [(100 + i, 0)])
        out.append(page.pgno)
    return out


def test_a_miss_caches_raw_and_load_decodes_in_place() -> None:
    pager = MemoryPager(512)
    (p,) = _leaves(pager, 1)
    cache = NodeCache(pager, 10)
    e = cache.entry(p)
    assert e.raw is not None and e.node is None and e.leaf and cache.weight == 1
    reads = pager.reads
    node = cache.load(p)
    assert node.keys == [b"k0"] and e.node is node and e.raw is None
    assert cache.weight == DECODED_WEIGHT and pager.reads == reads  # a hit: no read
    assert cache.check() == {"entries": 1, "decoded": 1, "dirty": 0, "weight": DECODED_WEIGHT}


def test_view_and_peek_leave_a_raw_leaf_raw() -> None:
    pager = MemoryPager(512)
    a, b = _leaves(pager, 2)
    cache = NodeCache(pager, 10)
    cache.entry(a)
    assert cache.view(a).keys == [b"k0"] and cache.lru[a].raw is not None
    assert cache.peek(b).keys == [b"k1"] and b not in cache.lru  # a walk does not flood the LRU
    assert cache.cached(b) is None and cache.cached(a) is not None


def test_flush_builds_dirty_nodes_and_keeps_leaves_raw_again() -> None:
    pager = MemoryPager(512)
    (p,) = _leaves(pager, 1)
    cache = NodeCache(pager, 10)
    node = cache.load(p)
    node.keys.append(b"zz")
    node.vals.append((7, 1))
    node.size += 12 + 2
    cache.mark_dirty(node)
    cache.check()
    cache.flush()
    assert cache.dirty == set() and cache.lru[p].raw is not None and cache.weight == 1
    assert decode(p, bytes(pager.raw(p))).keys == [b"k0", b"zz"]


def test_adopt_and_release() -> None:
    pager = MemoryPager(512)
    page = pager.allocate(fmt.PAGE_LEAF)
    cache = NodeCache(pager, 10)
    cache.adopt(Node(page.pgno, True, [b"a"], [(1, 1)]))
    assert page.pgno in cache.dirty and cache.weight == DECODED_WEIGHT
    cache.release(page.pgno)
    assert page.pgno not in cache.lru and page.pgno not in pager.live_pages() and cache.weight == 0


def test_trim_evicts_the_least_recent_and_writes_dirty_ones_out() -> None:
    pager = MemoryPager(512)
    pgnos = _leaves(pager, 6)
    cache = NodeCache(pager, 3)
    first = cache.load(pgnos[0])  # decoded: weighs DECODED_WEIGHT
    first.keys[0] = b"changed"
    first.size += len(b"changed") - 2
    cache.mark_dirty(first)
    for p in pgnos[1:]:
        cache.entry(p)
    cache.trim()
    assert cache.weight <= 3 and pgnos[0] not in cache.lru
    assert list(cache.lru) == pgnos[-3:]  # the most recent stay
    assert decode(pgnos[0], bytes(pager.raw(pgnos[0]))).keys == [b"changed"]  # written on eviction
    cache.check()


def test_forget_and_reset() -> None:
    pager = MemoryPager(512)
    a, b = _leaves(pager, 2)
    cache = NodeCache(pager, 10)
    cache.load(a)
    cache.entry(b)
    cache.forget([a, 999])
    assert list(cache.lru) == [b] and cache.weight == 1
    cache.reset()
    assert not cache.lru and cache.weight == 0 and not cache.dirty


def test_misses_refuse_page_zero_and_a_page_that_is_not_a_node() -> None:
    pager = MemoryPager(512)
    heap = pager.allocate(fmt.PAGE_HEAP)
    cache = NodeCache(pager, 10)
    with pytest.raises(CorruptionError, match="page 0") as exc:
        cache.entry(0)
    assert exc.value.pgno == 0
    with pytest.raises(CorruptionError) as exc:
        cache.entry(heap.pgno)
    assert exc.value.pgno == heap.pgno
    with pytest.raises(ValueError):
        NodeCache(pager, 0)


def test_check_catches_broken_bookkeeping() -> None:
    pager = MemoryPager(512)
    (p,) = _leaves(pager, 1)
    cache = NodeCache(pager, 10)
    cache.entry(p)
    cache.weight += 1
    with pytest.raises(AssertionError, match="weight"):
        cache.check()
    cache.weight -= 1
    cache.dirty.add(p)  # dirty but raw
    with pytest.raises(AssertionError, match="dirty page"):
        cache.check()


def _internal(pager: MemoryPager, children: List[int]) -> int:
    page = pager.allocate(fmt.PAGE_INTERNAL)
    nodes.build(page, page.pgno, False, [b"k%d" % i for i in range(1, len(children))], children)
    return page.pgno


def test_a_clean_internal_node_keeps_its_page_image_until_it_changes() -> None:
    """A decoded internal node keeps the bytes it came from (a get's descent searches them in C)
    while clean: counted as one page more, dropped by mark_dirty, the built bytes kept by flush;
    check() compares the image with the node. A decoded leaf keeps none."""
    pager = MemoryPager(512)
    leaves = _leaves(pager, 3)
    p = _internal(pager, leaves)
    cache = NodeCache(pager, 20)
    node = cache.load(p)
    e = cache.lru[p]
    assert e.image is not None and decode(p, e.image).vals == leaves == node.vals
    assert cache.weight == DECODED_WEIGHT + 1
    cache.check()
    node.keys.append(b"z")
    node.vals.append(leaves[0])
    cache.mark_dirty(node)
    assert e.image is None and cache.weight == DECODED_WEIGHT
    cache.check()
    cache.flush()
    assert e.image is not None and decode(p, e.image).keys == [b"k1", b"k2", b"z"]
    assert cache.weight == DECODED_WEIGHT + 1 and e.node is node
    cache.check()
    cache.load(leaves[0])
    assert cache.lru[leaves[0]].image is None
    cache.forget([p])
    assert cache.weight == DECODED_WEIGHT and cache.check()["entries"] == 1


def test_check_catches_an_image_that_disagrees_with_its_node() -> None:
    pager = MemoryPager(512)
    leaves = _leaves(pager, 3)
    p = _internal(pager, leaves)
    cache = NodeCache(pager, 20)
    node = cache.load(p)
    node.keys[0] = b"k0"  # changed without mark_dirty: the image no longer says what the node holds
    with pytest.raises(AssertionError, match="image and node disagree"):
        cache.check()
