"""pytest-benchmark micro-benchmarks of one slotted page (SlottedPage over the C core).

    python -m pytest bench/test_bench_page.py --benchmark-enable

Fill, read back and compact pages of 4 KiB and 64 KiB with variable-length
records (1 to 2000 bytes, seeded), and the fixed cost of one call across the
cffi boundary. pyproject's addopts disable benchmarking, so without
``--benchmark-enable`` each runs once as a smoke test. ``extra_info["records"]``
is the records handled per round: records/s = records / mean.
"""
from __future__ import annotations

import random
from typing import List

import pytest

from pagestore import PageFullError, SlottedPage
from pagestore import nodes
from pagestore._native import EXPECTED_NATIVE_VERSION, lib

PAGE_SIZES = (4096, 65536)
#: records per round, spread over as many pages as they need
RECORDS = 4000


@pytest.fixture(scope="module")
def records() -> List[bytes]:
    rnd = random.Random(20240601)
    return [rnd.randbytes(rnd.randint(1, 2000)) for _ in range(RECORDS)]


def fill_pages(page_size: int, records: List[bytes]) -> List[SlottedPage]:
    """fill_pages inserts records one by one, starting a new page when one is full."""
    pages = [SlottedPage.new(page_size)]
    page = pages[0]
    for record in records:
        try:
            page.insert(record)
        except PageFullError:
            page = SlottedPage.new(page_size, pgno=len(pages))
            pages.append(page)
            page.insert(record)
    return pages


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_fill_insert(benchmark, records, page_size):
    pages = benchmark(fill_pages, page_size, records)
    benchmark.extra_info.update(records=len(records), pages=len(pages))
    assert sum(len(p) for p in pages) == len(records)


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_fill_append_many(benchmark, records, page_size):
    """The batch path: one C call per page (records split into page-sized runs beforehand)."""
    runs, run, used = [], [], 40
    for record in records:
        if used + len(record) + 6 > page_size:
            runs.append(run)
            run, used = [], 40
        run.append(record)
        used += len(record) + 6
    runs.append(run)

    def fill():
        pages = []
        for i, batch in enumerate(runs):
            page = SlottedPage.new(page_size, pgno=i)
            page.append_many(batch)
            pages.append(page)
        return pages

    pages = benchmark(fill)
    benchmark.extra_info.update(records=len(records), pages=len(pages))
    assert sum(len(p) for p in pages) == len(records)


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_read_back(benchmark, records, page_size):
    pages = fill_pages(page_size, records)

    def read_all():
        n = 0
        for page in pages:
            for slot in range(page.nslots):
                n += len(page.read(slot))
        return n

    total = benchmark(read_all)
    benchmark.extra_info.update(records=len(records))
    assert total == sum(map(len, records))


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_read_back_items(benchmark, records, page_size):
    """Reading through records()/items(): one C call per page for the slot table."""
    pages = fill_pages(page_size, records)
    total = benchmark(lambda: sum(len(v) for page in pages for _, v in page.items()))
    benchmark.extra_info.update(records=len(records))
    assert total == sum(map(len, records))


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_compact(benchmark, records, page_size):
    """Compact pages with every other record deleted (fresh copies each round)."""
    holed = []
    for page in fill_pages(page_size, records):
        for slot in range(0, page.nslots - 1, 2):
            page.delete(slot)
        holed.append(bytes(page.buffer))
    live = sum(len(SlottedPage.wrap(bytearray(b))) for b in holed)

    def setup():
        return ([SlottedPage.wrap(bytearray(b), validate=False) for b in holed],), {}

    def compact_all(pages):
        for page in pages:
            page.compact()

    benchmark.pedantic(compact_all, setup=setup, rounds=50, warmup_rounds=2)
    benchmark.extra_info.update(records=live, pages=len(holed))


# ---- per-call overhead ----


@pytest.fixture
def tiny_page():
    page = SlottedPage.new(4096)
    slot = page.insert(b"tiny")
    return page, slot


def test_call_read_tiny(benchmark, tiny_page):
    page, slot = tiny_page
    assert benchmark(page.read, slot) == b"tiny"


def test_call_view_tiny(benchmark, tiny_page):
    page, slot = tiny_page
    assert benchmark(page.view, slot) == b"tiny"


def test_call_free_space(benchmark, tiny_page):
    page, _ = tiny_page
    assert benchmark(lambda: page.free_space) > 0


def test_call_native_version(benchmark):
    """The floor: one cffi call that does nothing."""
    assert benchmark(lib.ps_native_version) == EXPECTED_NATIVE_VERSION


def test_call_insert_delete_tiny(benchmark, tiny_page):
    page, _ = tiny_page

    def insert_delete():
        page.delete(page.insert(b"x"))

    benchmark(insert_delete)
    page.check()


# ---- B+tree node pages (native/node.c): what one tree level costs ----


@pytest.fixture(scope="module")
def leaf():
    """A 4 KiB leaf of ~110 entries with 8-40 byte keys, as the benchmark's tree has."""
    rnd = random.Random(7)
    keys = sorted({rnd.randbytes(rnd.randint(8, 40)) for _ in range(110)})
    vals = [(rnd.randrange(1, 1 << 20), rnd.randrange(200)) for _ in keys]
    page = SlottedPage.new(4096, pgno=9)
    nodes.build(page, 9, True, keys, vals)
    return page, keys, vals


def test_node_search(benchmark, leaf):
    page, keys, vals = leaf
    raw = bytes(page.buffer)
    assert benchmark(nodes.search, raw, keys[55], False) == (55, True) + vals[55]


def test_node_decode(benchmark, leaf):
    page, keys, vals = leaf
    raw = bytes(page.buffer)
    assert benchmark(nodes.decode, raw, 9) == (True, keys, vals)


def test_node_build(benchmark, leaf):
    page, keys, vals = leaf
    benchmark(nodes.build, page, 9, True, keys, vals)
    assert nodes.decode(bytes(page.buffer), 9) == (True, keys, vals)


def test_node_leaf_insert_remove(benchmark, leaf):
    page, keys, vals = leaf
    probe = keys[40] + b"\x00"  # sorts right after keys[40]

    def insert_remove():
        assert nodes.leaf_insert(page, 41, probe, 5, 5)
        nodes.leaf_remove(page, 41)

    benchmark(insert_remove)
    assert nodes.decode(bytes(page.buffer), 9) == (True, keys, vals)
