"""Checkpointer through the pager that owns it: how far a checkpoint copies under a read
mark, when the log restarts, and ``check``, its invariants (run by ``Pager.check``).

Pages are plain heap pages with one marker record each, as in test_pager.py.
"""
from __future__ import annotations

import pytest

from pagestore import format as fmt
from pagestore.errors import PageStoreError
from pagestore.page import SlottedPage
from pagestore.pager import Pager

PS = 512


def commit_page(pager: Pager, data: bytes) -> int:
    pager.begin_operation()
    page = pager.allocate(fmt.PAGE_HEAP)
    page.insert(data)
    pager.commit()
    return page.pgno


def test_a_mark_bounds_the_copy_and_holds_the_restart(tmp_path):
    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30)
    cp = pager.checkpointer
    assert pager.wal is not None
    commit_page(pager, b"one")
    mark = pager.read_mark()
    at_mark = pager.wal.committed_frames
    commit_page(pager, b"two")
    frames = pager.wal.committed_frames
    assert frames > at_mark
    pager.checkpoint()
    # Copied up to the mark, not past it, and the log is not restarted under it.
    assert cp.backfilled == pager.backfilled == at_mark
    assert pager.wal.committed_frames == frames and pager.meta.checkpoint_seq == 0
    pager.check()
    pager.release(mark)
    pager.checkpoint()
    assert cp.backfilled == 0 and pager.wal.committed_frames == 0  # all copied, then restarted
    assert pager.meta.checkpoint_seq == 1 and not pager.overlaid
    pager.check()
    pager.close()


def test_check_refuses_a_count_past_the_log(tmp_path):
    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30)
    commit_page(pager, b"one")
    pager.check()
    cp = pager.checkpointer
    assert pager.wal is not None
    cp.backfilled = pager.wal.committed_frames + 1  # as a restart that forgot to reset it would leave it
    with pytest.raises(PageStoreError, match="frames copied of a log of"):
        pager.check()
    cp.backfilled = 0
    cp.next_try = -1
    with pytest.raises(PageStoreError, match="next try"):
        cp.check()
    cp.next_try = 0
    pager.check()
    pager.close()


def test_a_reader_copies_nothing(tmp_path):
    path = str(tmp_path / "p.ps")
    writer = Pager(path, page_size=PS, wal_limit=1 << 30)
    commit_page(writer, b"one")
    reader = Pager(path, readonly=True)
    reader.checkpoint()  # a reader's checkpoint is a no-op
    assert reader.checkpointer.backfilled == 0 and reader.backfilled == 0
    reader.checkpointer.check()
    reader.end_operation()
    reader.close()
    writer.close()


def test_the_threshold_is_an_eighth_of_the_data_within_its_bounds(tmp_path):
    """A commit checkpoints once the log passes an eighth of the data file (a sixteenth before
    issue 23: a page changed again before the checkpoint is then a delta in the log and one copy
    into the data file), never below the log's kept 4 MiB, never above ``wal_limit``."""
    from pagestore.pager import DEFAULT_WAL_LIMIT
    from pagestore.wal import KEEP_BYTES

    assert DEFAULT_WAL_LIMIT == 32 * 1024 * 1024
    pager = Pager(str(tmp_path / "p.ps"), page_size=4096, wal_limit=1 << 30)
    try:
        assert pager.checkpoint_threshold() == KEEP_BYTES  # a small store keeps the log's floor
        pager.begin_operation()
        assert pager.allocate_run(40_000)  # numbers 160 MB of pages, writes none
        assert pager.checkpoint_threshold() == pager.meta.page_count * 4096 // 8
        pager.wal_limit = 8 * 1024 * 1024
        assert pager.checkpoint_threshold() == 8 * 1024 * 1024
    finally:
        pager.rollback()
        pager.close()


def test_a_checkpoint_writes_a_lone_page_as_it_is_and_the_file_holds_every_page(tmp_path, monkeypatch):
    # Pages 2, 4, 6, ... changed: every run of the copy is one page, written from its cached
    # frame as it is, not joined into a new bytes object (issue 23: a churn's checkpoint is
    # some 5,000 scattered pages); and the data file then holds each page's newest image.
    from pagestore import fileio

    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30)
    pgnos = [commit_page(pager, b"page %d" % i) for i in range(12)]
    pager.checkpoint()
    pager.begin_operation()
    for pgno in pgnos[::2]:
        pager.write(pgno).insert(b"changed %d" % pgno)
    pager.commit()
    images = {pgno: bytes(pager.read(pgno).buffer) for pgno in pgnos}
    writes = []
    real = fileio.File.write

    def spy(f, offset, data):
        if not f.path.endswith("-wal"):
            writes.append((offset, type(data), len(data)))
        real(f, offset, data)

    monkeypatch.setattr(fileio.File, "write", spy)
    pager.checkpoint()
    lone = [(off, t) for off, t, n in writes if off and n == PS]
    assert sorted(off // PS for off, _ in lone) == pgnos[::2]
    assert all(t is bytearray for _, t in lone)  # the cached frame itself: no copy
    with open(str(tmp_path / "p.ps"), "rb") as f:
        data = f.read()
    for pgno in pgnos:
        assert data[pgno * PS : (pgno + 1) * PS] == images[pgno]
    pager.check()
    pager.close()


def test_a_checkpoint_leaves_its_copies_of_pages_that_are_not_nodes_verified(tmp_path, monkeypatch):
    # Issue 23 (churn): a checkpoint copies, into the data file, images the pager verified or
    # made itself; the next read of such a heap page (a churn's delete) need not check it again.
    # A node page's bit promises the node check too: it stays clear.
    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30)
    heap = commit_page(pager, b"one")
    pager.begin_operation()
    leaf = pager.allocate(fmt.PAGE_LEAF).pgno
    pager.commit()
    pager.checkpoint()  # the file grows, and the map with it
    for pgno in (heap, leaf):
        pager.begin_operation()
        pager.write(pgno)
        pager.commit()
    pm = pager.pagemap
    assert not pm.is_verified(heap) and not pm.is_verified(leaf)  # in the log, newer than the file
    pager.checkpoint()
    assert pm.is_verified(heap) and not pm.is_verified(leaf)
    pager.cache.clear()
    calls = []
    real = SlottedPage.verify
    monkeypatch.setattr(SlottedPage, "verify", lambda self, pgno: calls.append(pgno) or real(self, pgno))
    pager.begin_operation()
    assert pager.read(heap).read(0) == b"one"
    assert calls == []
    pager.check()
    pager.close()


def test_a_checkpoint_whose_sync_fails_leaves_its_copies_unverified(tmp_path):
    # A failed sync may drop the copies (Linux drops the dirty pages): the map would show the
    # file's older bytes under a bit set before it.
    pager = Pager(str(tmp_path / "p.ps"), page_size=PS, wal_limit=1 << 30)
    heap = commit_page(pager, b"one")
    pager.checkpoint()
    pager.begin_operation()
    pager.write(heap)
    pager.commit()
    assert pager.file is not None

    def failing_sync() -> None:
        raise OSError(5, "EIO")

    pager.file.sync = failing_sync  # type: ignore[method-assign]
    with pytest.raises(OSError):
        pager.checkpoint()
    assert not pager.pagemap.is_verified(heap)
    pager.close()
