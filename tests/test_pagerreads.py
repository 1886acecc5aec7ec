"""PagerReads (pagerreads.py), through the pager it is a base class of: a page as of a read mark
(``read_as_of``, ``cached_as_of``) stays the mark's while later commits change it, a released
mark lets the checkpoint restart the log, the log's figures follow the commits, and the map's
glue keeps ``map`` the pagemap's.

Pages are plain heap pages with one marker record each, as in test_pager.py.
"""
from __future__ import annotations

import pytest

from pagestore import format as fmt
from pagestore.errors import CorruptionError
from pagestore.page import SlottedPage
from pagestore.pager import Pager
from pagestore.pagerreads import PagerReads

PS = 512


def marker(buf: bytes, pgno: int) -> bytes:
    page = SlottedPage(bytearray(buf), validate=False, pgno=pgno)
    page.verify(pgno)
    return page.read(0)


def test_reads_as_of_a_mark(tmp_path):
    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30)
    assert isinstance(pager, PagerReads)
    pager.begin_operation()
    page = pager.allocate(fmt.PAGE_HEAP)
    page.insert(b"old")
    pgno = page.pgno
    pager.commit()
    mark = pager.read_mark()
    assert len(pager.readers) == 1
    cached = pager.cached_as_of(mark, pgno)
    assert cached is not None and marker(cached, pgno) == b"old"
    pager.begin_operation()
    pager.write(pgno).update(0, b"new")
    assert pager.cached_as_of(mark, pgno) is None  # dirty: not the mark's image
    pager.commit()
    assert pager.cached_as_of(mark, pgno) is None  # stamped after the mark's commit
    assert marker(pager.read_as_of(mark, pgno), pgno) == b"old"
    pager.checkpoint()  # copies no further than the mark: the old image stays readable
    assert marker(pager.read_as_of(mark, pgno), pgno) == b"old"
    with pytest.raises(CorruptionError):
        pager.read_as_of(mark, mark.meta.page_count)
    assert pager.log_state()["log_frames"] == pager.wal.committed_frames > 0
    assert pager.logged_pages() > 0 and pager.log_size() > 0 and pager.wal_size() >= pager.log_size()
    pager.release(mark)
    pager.release(mark)  # twice is harmless
    assert not pager.readers
    pager.checkpoint()
    assert pager.log_state()["log_frames"] == 0 and pager.logged_pages() == 0
    pager.begin_operation()
    assert pager.read(pgno).read(0) == b"new"
    pager.check()
    pager.close()
    assert pager.log_size() == 0 and pager.wal_size() == 0


def test_the_map_glue(tmp_path):
    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30, mmap=True)
    pager.begin_operation()
    for _ in range(4):
        pager.allocate(fmt.PAGE_HEAP).insert(b"x")
    pager.commit()
    pager.checkpoint()  # the pages reach the data file; the map grows over them
    assert pager.map is pager.pagemap.map and pager.map is not None
    assert len(pager.map) >= pager.meta.page_count * PS and not pager.overlaid
    assert pager.verified is pager.pagemap.verified
    pager.check()
    pager._unmap()
    assert pager.map is None and pager.pagemap.map is None
    pager._remap()
    assert pager.map is pager.pagemap.map and pager.map is not None
    pager.check()
    pager.close()
    assert pager.map is None
