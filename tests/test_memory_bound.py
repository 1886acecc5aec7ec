"""Private memory stays bounded by cache_size, whatever the store's size (issue 22).

Measured with tracemalloc, not timed: the store's Python memory after a load and a pass of
gets over every key, at two store sizes with one cache_size, and the node cache's real bytes
against what it counts. At 10^7 records (bench/memwhere.py) a decoded internal node of a
4 KiB page took 20 to 24 KB where the node cache counted it as 16 KiB (four pages, five with
its image): the cache's half of the budget held 3 to 4 MiB more than it counted, a share that
grows with the store as internal nodes take the place of leaves in it.
"""
from __future__ import annotations

import gc
import random
import tracemalloc
from typing import List, Tuple

from pagestore.node import decode
from pagestore.store import Store

PAGE = 512
CACHE = PAGE * 256  # 128 KiB: half for the node cache (128 pages), half for the page cache


def _keys(n: int) -> List[bytes]:
    # random 8-byte keys: internal nodes hold short separators (2 to 3 bytes), so a full one
    # holds 30 to 40 children, as many Python objects as its page has bytes / 14
    rng = random.Random(n)
    return [rng.getrandbits(64).to_bytes(8, "big") for _ in range(n)]


def _load_and_read(path: str, n: int, *, reads: bool = True) -> Tuple[int, int, Store]:
    """_load_and_read: (traced bytes held once loaded and read, page count, the open store)."""
    keys = _keys(n)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        db = Store(path, page_size=PAGE, cache_size=CACHE, sync=False)
        for lo in range(0, n, 500):
            with db.transaction() as txn:
                for k in keys[lo : lo + 500]:
                    txn[k] = b"v"
        random.Random(1).shuffle(keys)
        for k in keys if reads else ():
            assert db[k] == b"v"
        db.checkpoint()  # the log's index empty at both sizes: it is bounded by the log (wal_limit)
        pages = db._pager.meta.page_count
        del keys
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held, pages, db


def _decoded_bytes(db: Store) -> Tuple[int, int]:
    """_decoded_bytes: (bytes the node cache's decoded entries really hold, bytes it counts for them)."""
    nc = db._tree.nodes
    real = counted = 0
    for pgno, e in nc.lru.items():
        if e.raw is not None:
            continue
        counted += e.weight * PAGE
        image = e.image if e.image is not None else nc.write_node(e.node)  # pragma: no branch
        gc.collect()
        tracemalloc.start()
        try:
            node = decode(pgno, image)
            real += tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert node.keys == e.node.keys
        if e.image is not None:
            real += len(e.image)
    return real, counted


def test_node_cache_counts_what_its_decoded_nodes_weigh(tmp_path):
    """The node cache's real bytes (raw pages, and decoded nodes as tracemalloc sees a decode)
    stay within what it counts: the internal nodes the load's changes decoded, each counted
    as four pages (five with its image) before, took more."""
    _, _, db = _load_and_read(str(tmp_path / "s"), 30_000, reads=False)
    try:
        with db._lock:
            db._begin()
            nc = db._tree.nodes
            decoded = sum(1 for e in nc.lru.values() if e.node is not None and not e.leaf)
            assert decoded >= 4, "too few decoded internal nodes: no test"
            real, counted = _decoded_bytes(db)
            assert nc.weight <= nc.capacity
            assert real <= counted * 1.1, (real, counted)
            nc.check()
    finally:
        db.close()


def test_private_memory_does_not_grow_with_the_store(tmp_path):
    """The store's Python memory at a fixed cache_size: ten times the records (and pages) adds
    only what is documented to grow with the file, a byte and a bit a page (the free-space
    map, in the budget, and the map's verified bits), plus at most a tenth of the cache."""
    small, small_pages, db = _load_and_read(str(tmp_path / "a"), 3_000)
    db.close()
    large, large_pages, db = _load_and_read(str(tmp_path / "b"), 30_000)
    try:
        assert large_pages > 8 * small_pages
        grown = large - small
        per_page = 2 * (large_pages - small_pages)  # a byte and a bit a page, with room
        assert grown <= per_page + CACHE // 10, (small, large, grown, per_page)
        # the cache's pages, and its bookkeeping: a frame, a page object and an LRU entry of
        # some 400 bytes a cached page, most of a 512-byte page (a tenth of a 4 KiB one)
        assert large <= CACHE * 2, (large, CACHE)
    finally:
        db.close()


def test_gets_keep_internal_nodes_raw(tmp_path):
    """A get takes the internal nodes it meets into the node cache raw (one page each) and
    searches them in C; it decodes none. Decoded, each weighed four to seven pages: once the
    internal nodes outgrew the cache's half, gets decoded them again and again (a get took
    2.4x as long at 10^6 records with a 3 MiB cache, and the same at 10^7 with 32 MiB)."""
    path = str(tmp_path / "s")
    keys = _keys(20_000)
    with Store(path, page_size=PAGE, cache_size=CACHE, sync=False) as db:
        for lo in range(0, len(keys), 1000):
            with db.transaction() as txn:
                for k in keys[lo : lo + 1000]:
                    txn[k] = b"v"
    with Store(path, cache_size=CACHE) as db:
        for k in keys[:3000]:
            assert db[k] == b"v"
        nc = db._tree.nodes
        internal = [e for e in nc.lru.values() if not e.leaf]
        assert len(internal) > 10
        assert all(e.raw is not None for e in internal)
        assert nc.weight == len(nc.lru)
        nc.check()
        with db.transaction() as txn:  # a change decodes its path, as before
            txn[keys[0]] = b"w"
        assert any(e.node is not None for e in nc.lru.values() if not e.leaf)
        assert db[keys[0]] == b"w" and db[keys[1]] == b"v"
        nc.check()
