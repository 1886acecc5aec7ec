"""PageCache (pagecache.py), through the pager it is a base class of: a page read in passing is
not cached, the budget holds but for
the operation's pinned pages, a dirty page evicted is spilled and read back whole, a loan
(``lend``) grows and shrinks the budget, ``memory`` counts the cache, and new pages past the
committed end go straight into the data file (``_write_direct``, ``write_run``).

Pages are plain heap pages with one marker record each, as in test_pager.py.
"""
from __future__ import annotations

from pagestore import format as fmt
from pagestore.pagecache import PageCache, _Frame, _unshared_refcounts
from pagestore.pager import MIN_CACHE_PAGES, Pager

PS = 512


def open_pager(tmp_path, **kw) -> Pager:
    return Pager(str(tmp_path / "p.ps"), page_size=PS, cache_size=MIN_CACHE_PAGES * PS, wal_limit=1 << 30, **kw)


def test_the_pager_is_a_page_cache(tmp_path):
    pager = open_pager(tmp_path)
    assert isinstance(pager, PageCache) and pager.cache_pages == pager.own_pages == MIN_CACHE_PAGES
    pager.begin_operation()
    page = pager.allocate(fmt.PAGE_HEAP)
    assert isinstance(pager.cache[page.pgno], _Frame) and pager.cache[page.pgno].page is page
    pager.close()


def test_the_budget_holds_and_evicted_dirty_pages_read_back(tmp_path):
    pager = open_pager(tmp_path)
    pgnos = []
    for i in range(4 * MIN_CACHE_PAGES):
        pager.begin_operation()  # each page is pinned only by its own operation
        page = pager.allocate(fmt.PAGE_HEAP)
        page.insert(b"page %d" % i)
        pgnos.append(page.pgno)
        assert len(pager.cache) <= pager.cache_pages
    assert pager.memory()["cache_bytes"] == len(pager.cache) * PS
    pager.check()
    pager.begin_operation()
    assert [pager.read(p).read(0) for p in pgnos] == [b"page %d" % i for i in range(len(pgnos))]
    pager.commit()
    pager.check()
    pager.close()
    pager = open_pager(tmp_path)
    pager.begin_operation()
    assert [pager.read(p).read(0) for p in pgnos] == [b"page %d" % i for i in range(len(pgnos))]
    pager.close()


def test_pinned_pages_stay_past_the_budget(tmp_path):
    pager = open_pager(tmp_path)
    pager.begin_operation()
    pages = [pager.allocate(fmt.PAGE_HEAP) for _ in range(2 * MIN_CACHE_PAGES)]
    # One operation pinned them all: none may leave while the caller may hold it.
    assert len(pager.cache) == len(pages) > pager.cache_pages
    assert all(pager.cache[p.pgno].page is p for p in pages)
    pager.begin_operation()
    pager.allocate(fmt.PAGE_HEAP)
    assert len(pager.cache) <= pager.cache_pages
    pager.rollback()
    pager.close()


def test_lend_grows_and_shrinks_the_budget(tmp_path):
    pager = open_pager(tmp_path)
    pager.lend(3 * MIN_CACHE_PAGES)
    assert pager.cache_pages == 4 * MIN_CACHE_PAGES
    for _ in range(3 * MIN_CACHE_PAGES):
        pager.begin_operation()
        pager.allocate(fmt.PAGE_HEAP)
    pager.commit()
    assert len(pager.cache) == 3 * MIN_CACHE_PAGES
    pager.begin_operation()
    pager.lend(0)  # the loan called back: the cache shrinks at once
    assert pager.cache_pages == pager.own_pages and len(pager.cache) <= pager.own_pages
    pager.check()
    pager.close()


def test_write_run_goes_into_the_data_file(tmp_path):
    pager = open_pager(tmp_path)
    pager.begin_operation()
    n = 5
    first = pager.allocate_run(n)
    assert first > 0
    pages = bytearray(n * PS)
    from pagestore.page import SlottedPage
    for i in range(n):
        view = SlottedPage(memoryview(pages)[i * PS : (i + 1) * PS], validate=False, pgno=first + i)
        view.init(first + i, fmt.PAGE_HEAP)
        view.insert(b"run %d" % i)
    log_before = pager.log_size()
    pager.write_run(first, pages)
    assert pager.file_size() >= (first + n) * PS and pager.log_size() == log_before  # not the log
    assert all(p in pager.overlaid for p in range(first, first + n))
    pager.commit()
    pager.check()
    # committed, in the file, in no log frame: the map serves them from now on (they stayed
    # overlaid until the next checkpoint, and every read of them went through the pager)
    assert not any(p in pager.overlaid for p in range(first, first + n))
    assert pager.map is not None and len(pager.map) >= (first + n) * PS
    pager.begin_operation()
    assert [pager.read(first + i).read(0) for i in range(n)] == [b"run %d" % i for i in range(n)]
    pager.close()


def _direct_pages(pager) -> list:
    """_direct_pages begins an operation and allocates more new heap pages than DIRECT_PAGES, page
    i holding ``b"direct i"``, so that a durable commit writes them straight into the data file;
    returns their page numbers (not committed yet)."""
    from pagestore.pager import DIRECT_PAGES
    pager.begin_operation()
    pgnos = []
    for i in range(DIRECT_PAGES + 10):
        page = pager.allocate(fmt.PAGE_HEAP)
        page.insert(b"direct %d" % i)
        pgnos.append(page.pgno)
    return pgnos


def test_a_large_durable_commit_leaves_its_direct_pages_to_the_map(tmp_path):
    """A durable commit of more than DIRECT_PAGES new pages writes them straight into the data
    file: once it is committed the map serves them (none stays ``overlaid``), a page also
    logged stays overlaid, and every read gives the committed bytes."""
    pager = open_pager(tmp_path)
    pgnos = _direct_pages(pager)
    pager.commit(True)
    pager.check()
    assert not any(p in pager.overlaid for p in pgnos)
    pager.begin_operation()
    pager.write(pgnos[3]).insert(b"logged")  # a log frame now: overlaid again
    pager.commit(True)
    assert pgnos[3] in pager.overlaid and pgnos[4] not in pager.overlaid
    pager.check()
    pager.begin_operation()
    assert [pager.read(p).read(0) for p in pgnos] == [b"direct %d" % i for i in range(len(pgnos))]
    assert pager.read(pgnos[3]).read(1) == b"logged"
    pager.close()


def test_unshared_refcounts_measures_a_lone_frame():
    counts = _unshared_refcounts()
    assert counts is None or all(c > 0 for c in counts)


def test_read_passing_leaves_the_cache_alone(tmp_path):
    pager = open_pager(tmp_path)
    pager.begin_operation()
    page = pager.allocate(fmt.PAGE_HEAP)
    page.insert(b"passing")
    pgno = page.pgno
    pager.commit()
    pager.close()
    pager = open_pager(tmp_path)
    pager.begin_operation()
    assert pager.read_passing(pgno).read(0) == b"passing" and pgno not in pager.cache
    assert pager.read(pgno).read(0) == b"passing" and pgno in pager.cache
    assert pager.read_raw(pgno) == bytes(pager.cache[pgno].buf)
    pager.close()


def test_a_failed_remap_after_a_direct_commit_leaves_the_commit_made(tmp_path, monkeypatch):
    """The remap after a commit that wrote pages into the file (``_map_direct``) may fail (mmap's
    ENOMEM): the commit is in the log already, so it succeeds, and the pager reads every page
    itself (no map) until the next remap."""
    pager = open_pager(tmp_path)
    pgnos = _direct_pages(pager)

    def no_memory() -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(pager, "_remap", no_memory)
    assert pager.commit(True)
    assert pager.map is None
    monkeypatch.undo()
    pager.check()
    pager.begin_operation()
    assert [pager.read(p).read(0) for p in pgnos] == [b"direct %d" % i for i in range(len(pgnos))]
    pager.close()
