"""WAL through its own interface: commit, append, recover, torn tails, reset, a failed commit undone.

Each test writes a log with ``WAL`` alone (no pager), reopens it as a new
``WAL`` and checks what ``recover`` keeps, and calls ``WAL.check``. A
hypothesis test runs random commits and abandoned transactions against a
dict of the newest committed image of each page.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagestore import fileio
from pagestore.errors import CorruptionError
from pagestore.wal import FRAME_HEADER_SIZE, WAL, WAL_HEADER_SIZE, log_path, remove_log

PS = 512
FILE_ID = 0x1234


def image(pgno: int, fill: int) -> bytes:
    return bytes([fill]) * (PS - 4) + pgno.to_bytes(4, "little")


def open_log(path: str, generation: int = 0, **kw: object) -> WAL:
    wal = WAL(path, PS, FILE_ID, **kw)  # type: ignore[arg-type]
    wal.recover(generation)
    return wal


def logged_images(wal: WAL) -> Dict[int, bytes]:
    """logged_images: every page's newest committed image in the log (page 0, the header, left out)."""
    return {p: wal.read_frame(off, p) for p, off in wal.index.items() if p}


def reopened_images(wal: WAL, path: str) -> Dict[int, bytes]:
    """reopened_images syncs and closes ``wal``, recovers the log afresh, checks it and returns its images."""
    wal.sync()
    wal.close()
    again = open_log(path)
    try:
        again.check()
        return logged_images(again)
    finally:
        again.close()


def commit(wal: WAL, pages: Dict[int, bytes], txn: int, durable: bool = True) -> None:
    frames = [(p, img, None) for p, img in sorted(pages.items())] + [(0, image(0, txn & 0xFF), None)]
    wal.commit(frames, txn, 10, durable=durable)


def test_log_path_is_the_one_name(tmp_path):
    store = str(tmp_path / "s.ps")
    assert log_path(store) == store + "-wal"
    open(log_path(store), "wb").close()
    remove_log(store)
    assert not os.path.exists(log_path(store))
    remove_log(store)  # a missing log is no error


def test_commit_then_recover(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    assert wal.check()["frames"] == 0
    commit(wal, {3: image(3, 1), 5: image(5, 2)}, txn=1)
    commit(wal, {3: image(3, 9)}, txn=2)
    assert wal.check() == {"frames": 3, "txn_frames": 0, "generation": 0, "end": wal.end}
    wal.close()
    again = open_log(path)
    assert set(again.index) == {0, 3, 5}
    assert again.read_frame(again.index[3], 3) == image(3, 9)
    assert again.read_frame(again.index[5], 5) == image(5, 2)
    again.check()
    with pytest.raises(CorruptionError):
        again.read_frame(again.index[3], 5)  # a frame names its page
    again.close()


def test_frames_without_a_commit_frame_are_dropped(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    commit(wal, {2: image(2, 1)}, txn=1)
    wal.append(7, image(7, 3), 2)  # a page spilled by a transaction that never commits
    wal.append_many([(2, image(2, 4), None)], 2, 0)
    assert set(wal.txn_index) == {2, 7}
    wal.check()
    wal.sync()
    wal.close()
    again = open_log(path)
    assert set(again.index) == {0, 2} and not again.txn_index
    assert again.read_frame(again.index[2], 2) == image(2, 1)
    assert again.end == again.committed_end == WAL_HEADER_SIZE + 2 * (FRAME_HEADER_SIZE + PS)
    again.check()


def test_rollback_forgets_the_open_transaction(tmp_path):
    wal = open_log(str(tmp_path / "x-wal"))
    commit(wal, {2: image(2, 1)}, txn=1)
    end = wal.end
    wal.append(4, image(4, 1), 2)
    wal.rollback()
    assert not wal.txn_index and wal.end == end
    commit(wal, {4: image(4, 5)}, txn=2)  # overwrites the abandoned frame; the chain still holds
    wal.close()
    again = open_log(str(tmp_path / "x-wal"))
    assert again.read_frame(again.index[4], 4) == image(4, 5)


@pytest.mark.parametrize("cut", [1, FRAME_HEADER_SIZE, PS // 2, FRAME_HEADER_SIZE + PS - 1])
def test_torn_tail_keeps_the_last_whole_commit(tmp_path, cut):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    commit(wal, {2: image(2, 1)}, txn=1)
    first_end = wal.end
    commit(wal, {2: image(2, 2), 3: image(3, 2)}, txn=2)
    wal.close()
    # the second commit's commit frame (its last frame) is torn mid-write
    with open(path, "r+b") as f:
        f.truncate(first_end + 2 * (FRAME_HEADER_SIZE + PS) + cut)
    again = open_log(path)
    assert set(again.index) == {0, 2}
    assert again.read_frame(again.index[2], 2) == image(2, 1)
    assert again.committed_end == first_end
    assert os.path.getsize(path) == first_end  # a writer cuts the torn tail away
    again.check()


def test_a_damaged_frame_ends_the_log(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    commit(wal, {2: image(2, 1)}, txn=1)
    first_end = wal.end
    commit(wal, {2: image(2, 2)}, txn=2)
    commit(wal, {2: image(2, 3)}, txn=3)
    wal.close()
    with open(path, "r+b") as f:  # one bit in the second commit's page image
        f.seek(first_end + FRAME_HEADER_SIZE + 100)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 1]))
    again = open_log(path)
    # the chained checksum fails there, so the third commit (intact) is not trusted either
    assert again.read_frame(again.index[2], 2) == image(2, 1)
    again.check()


def test_reset_starts_a_generation_old_frames_fail(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    commit(wal, {2: image(2, 1)}, txn=1)
    old_salt = wal.salt
    wal.reset(1)
    assert wal.generation == 1 and wal.salt != old_salt and not wal.index
    assert wal.end == WAL_HEADER_SIZE
    wal.check()
    wal.close()
    again = open_log(path, generation=1)
    assert not again.index and again.generation == 1  # the old frames lie there, but fail the salt
    commit(again, {6: image(6, 6)}, txn=2)
    again.close()
    assert set(open_log(path, generation=1).index) == {0, 6}


def test_log_of_another_file_counts_for_nothing(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    commit(wal, {2: image(2, 1)}, txn=1)
    wal.close()
    other = WAL(path, PS, FILE_ID + 1)
    other.recover(0)
    assert not other.index and other.check()["frames"] == 0


class FlakyFile:
    """FlakyFile wraps a real File; ``fail`` names the call ("write" or "sync") that raises OSError next."""

    def __init__(self, inner: fileio.File) -> None:
        self.inner = inner
        self.fail: Optional[str] = None

    def write(self, offset: int, data: bytes) -> None:
        if self.fail == "write":
            self.fail = None
            raise OSError(5, "injected write error")
        self.inner.write(offset, data)

    def sync(self) -> None:
        if self.fail == "sync":
            self.fail = None
            raise OSError(5, "injected sync error")
        self.inner.sync()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.parametrize("where", ["write", "sync"])
def test_failed_commit_leaves_the_log_as_it_was(tmp_path, where):
    files: List[FlakyFile] = []

    def opener(path: str, *, create: bool = False, readonly: bool = False) -> FlakyFile:
        f = FlakyFile(fileio.open_file(path, create=create, readonly=readonly))
        files.append(f)
        return f

    path = str(tmp_path / "x-wal")
    wal = open_log(path, opener=opener)
    commit(wal, {2: image(2, 1)}, txn=1)
    wal.append(9, image(9, 1), 2)  # a spilled page of the transaction about to fail
    before = (dict(wal.index), dict(wal.txn_index), wal.end, wal.committed_end, wal.committed_crc)
    files[-1].fail = where
    with pytest.raises(OSError):
        commit(wal, {2: image(2, 2), 3: image(3, 2)}, txn=2)
    assert (dict(wal.index), dict(wal.txn_index), wal.end, wal.committed_end, wal.committed_crc) == before
    wal.check()
    wal.rollback()
    if where == "sync":
        # After a failed sync no later sync is believed (Linux dropped the dirty pages and
        # reports the next fsync as a success): the log refuses to sync again, so a group
        # commit syncing on another thread cannot acknowledge a commit behind the hole.
        with pytest.raises(OSError, match="an earlier sync of the log failed"):
            commit(wal, {3: image(3, 7)}, txn=2)
        wal.close()
        again = open_log(path)
        assert again.read_frame(again.index[2], 2) == image(2, 1)
        return
    commit(wal, {3: image(3, 7)}, txn=2)  # the log goes on from its last good commit
    wal.close()
    again = open_log(path)
    assert set(again.index) == {0, 2, 3}
    assert again.read_frame(again.index[2], 2) == image(2, 1)
    assert again.read_frame(again.index[3], 3) == image(3, 7)


def test_check_catches_a_bad_index(tmp_path):
    wal = open_log(str(tmp_path / "x-wal"))
    commit(wal, {2: image(2, 1), 3: image(3, 1)}, txn=1)
    wal.index[2] = wal.index[3]  # the index serves page 3's frame for page 2
    with pytest.raises(CorruptionError) as err:
        wal.check()
    assert err.value.pgno == 2
    wal.index[2] = wal.end + FRAME_HEADER_SIZE + PS  # past the committed end
    with pytest.raises(CorruptionError):
        wal.check()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(st.integers(1, 12), st.integers(0, 255), min_size=1, max_size=5),
                          st.booleans()), min_size=1, max_size=12))
def test_recover_keeps_exactly_the_committed_images(tmp_path_factory, txns):
    path = str(tmp_path_factory.mktemp("wal") / "x-wal")
    wal = open_log(path)
    model: Dict[int, bytes] = {}
    for n, (pages, committed) in enumerate(txns, start=1):
        images = {p: image(p, fill) for p, fill in pages.items()}
        if committed:
            commit(wal, images, txn=n, durable=False)
            model.update(images)
        else:
            wal.append_many([(p, img, None) for p, img in sorted(images.items())], n, 0)
            wal.rollback()
        wal.check()
    assert reopened_images(wal, path) == model


def test_failed_spill_leaves_the_open_transaction_as_it_was(tmp_path):
    files: List[FlakyFile] = []

    def opener(path: str, *, create: bool = False, readonly: bool = False) -> FlakyFile:
        f = FlakyFile(fileio.open_file(path, create=create, readonly=readonly))
        files.append(f)
        return f

    wal = open_log(str(tmp_path / "x-wal"), opener=opener)
    commit(wal, {2: image(2, 1)}, txn=1)
    for p in range(3, 40):
        wal.append(p, image(p, 2), 2)
    wal.append(5, image(5, 3), 2)  # spilled again: its newest frame counts
    before = (dict(wal.index), dict(wal.txn_index), wal.end, wal.committed_end, wal.committed_crc)
    files[-1].fail = "write"
    with pytest.raises(OSError):
        wal.append_many([(7, image(7, 4), None), (50, image(50, 4), None)], 2, 0)
    assert (dict(wal.index), dict(wal.txn_index), wal.end, wal.committed_end, wal.committed_crc) == before
    wal.append(50, image(50, 5), 2)
    commit(wal, {2: image(2, 6)}, txn=2)
    assert wal.read_frame(wal.index[5], 5) == image(5, 3)
    assert wal.read_frame(wal.index[50], 50) == image(50, 5)
    wal.check()


def test_a_spill_saves_for_undo_only_the_pages_it_writes(tmp_path, monkeypatch):
    # Each append of the open transaction (a page spilled from a full cache) copied the
    # whole transaction's index to undo a failure: O(pages spilled so far) per spill,
    # O(n^2) for a large update(): 400,000 bulk-loaded records took 23 s (200,000: 3 s).
    from pagestore import wal as wal_mod

    saved: List[int] = []
    real_mark = wal_mod._Mark

    class CountingMark(real_mark):  # type: ignore[misc, valid-type]
        def __init__(self, wal: WAL, pgnos: List[int], *args: object, **kw: object) -> None:
            super().__init__(wal, pgnos, *args, **kw)
            saved.append(len(self.replaced) + len(self.txn_index or ()) + len(getattr(self, "txn_prev", None) or ()))

    monkeypatch.setattr(wal_mod, "_Mark", CountingMark)
    wal = open_log(str(tmp_path / "x-wal"))
    for p in range(1, 500):
        wal.append(p, image(p, 1), 1)
    assert max(saved) <= 2, max(saved)
    commit(wal, {600: image(600, 1)}, txn=1)  # a commit may save the transaction whole, once
    assert set(wal.index) == set(range(1, 500)) | {0, 600}


# ---- deltas: a page's frames after its first whole image in a generation ----


def edited(base: bytes, edits: Dict[int, int]) -> bytes:
    out = bytearray(base)
    for off, val in edits.items():
        out[off % PS] = val
    return bytes(out)


def test_a_small_change_is_logged_as_a_delta_and_read_back_whole(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    first = image(3, 1)
    wal.commit([(3, first, None), (0, image(0, 1), None)], 1, 10, durable=True)
    whole = wal.end
    second = edited(first, {10: 7, 11: 8, 300: 9})
    wal.commit([(3, second, first), (0, image(0, 2), None)], 2, 10, durable=True)
    # header + runs (10..11 and 300: two runs) instead of a whole image
    assert wal.end - whole < 2 * FRAME_HEADER_SIZE + PS + 40
    assert wal.read_frame(wal.index[3], 3) == second
    wal.check()
    wal.close()
    again = open_log(path)
    assert again.read_frame(again.index[3], 3) == second
    assert again.depth[again.index[3]] == 1
    again.check()


def test_the_first_frame_of_a_generation_is_whole(tmp_path):
    wal = open_log(str(tmp_path / "x-wal"))
    first = image(3, 1)
    # the caller kept an image, but the page has no frame in this log: written whole
    wal.commit([(3, edited(first, {5: 5}), first), (0, image(0, 1), None)], 1, 10, durable=False)
    assert wal.depth[wal.index[3]] == 0
    wal.reset(1)
    wal.commit([(3, edited(first, {6: 6}), first), (0, image(0, 2), None)], 2, 10, durable=False)
    assert wal.depth[wal.index[3]] == 0


def test_a_chain_is_cut_at_max_chain_and_a_large_change_is_whole(tmp_path):
    from pagestore.wal import MAX_CHAIN

    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    img = image(4, 1)
    wal.commit([(4, img, None), (0, image(0, 0), None)], 1, 10, durable=False)
    depths = []
    for n in range(2, MAX_CHAIN + 5):
        new = edited(img, {n: n})
        wal.commit([(4, new, img), (0, image(0, n), None)], n, 10, durable=False)
        img = new
        depths.append(wal.depth[wal.index[4]])
    assert max(depths) == MAX_CHAIN and depths[MAX_CHAIN] == 0  # whole again after MAX_CHAIN deltas
    big = image(4, 2)  # every byte changed: more than half the page
    wal.commit([(4, big, img), (0, image(0, 99), None)], 99, 10, durable=False)
    assert wal.depth[wal.index[4]] == 0
    wal.sync()
    wal.close()
    again = open_log(path)
    assert again.read_frame(again.index[4], 4) == big
    again.check()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(st.integers(1, 6), st.dictionaries(st.integers(0, PS - 1), st.integers(0, 255),
                                                                               max_size=40),
                                          min_size=1, max_size=4),
                          st.booleans(), st.booleans()), min_size=1, max_size=30),
       st.integers(0, 10**6))
def test_deltas_recover_exactly_the_committed_images(tmp_path_factory, txns, cut_seed):
    """Against a dict of the newest image of each page: commits, spills (whole images)
    and rollbacks, every frame offered as a delta from the page's newest frame; then
    the log reopened, and again with its tail cut at a random byte (recovery keeps a
    prefix of the commits, each whole)."""
    path = str(tmp_path_factory.mktemp("wal") / "x-wal")
    wal = open_log(path)
    model: Dict[int, bytes] = {}
    history: List[Tuple[int, Dict[int, bytes]]] = []  # (log end, model) after each commit
    for n, (pages, committed, spill) in enumerate(txns, start=1):
        newest = dict(model)  # the page's image at its newest frame, this transaction's included
        images = {p: edited(newest.get(p, image(p, 0)), e) for p, e in pages.items()}
        if spill:
            for p, img in sorted(images.items()):
                wal.append(p, img, n)
                newest[p] = img
            images = {p: edited(img, {p: n}) for p, img in images.items()}
        frames = [(p, img, newest.get(p)) for p, img in sorted(images.items())]
        if committed:
            wal.commit(frames + [(0, image(0, n & 0xFF), None)], n, 10, durable=False)
            model.update(images)
            history.append((wal.end, dict(model)))
        else:
            wal.append_many(frames, n, 0)
            wal.rollback()
        wal.check()
        assert logged_images(wal) == model
    assert reopened_images(wal, path) == model
    size = os.path.getsize(path)
    cut = WAL_HEADER_SIZE + cut_seed % (size - WAL_HEADER_SIZE + 1)
    with open(path, "r+b") as f:
        f.truncate(cut)
    again = open_log(path)
    expect = {}
    for end, state in history:
        if end <= cut:
            expect = state
    assert logged_images(again) == expect
    again.check()
    again.close()


def test_a_delta_from_the_wrong_frame_is_corruption(tmp_path):
    path = str(tmp_path / "x-wal")
    wal = open_log(path)
    a = image(3, 1)
    wal.commit([(3, a, None), (0, image(0, 1), None)], 1, 10, durable=False)
    wal.commit([(3, edited(a, {1: 2}), a), (0, image(0, 2), None)], 2, 10, durable=False)
    wal.sync()
    wal.close()
    # rewrite the delta's base to point at page 0's frame, with a checksum that holds
    import struct as _s
    from pagestore._native import crc32c as _crc

    with open(path, "r+b") as f:
        data = bytearray(f.read())
    first = WAL_HEADER_SIZE
    second = first + 2 * (FRAME_HEADER_SIZE + PS)
    header_frame0 = first + FRAME_HEADER_SIZE + PS
    _s.pack_into("<Q", data, second + 32, header_frame0)
    # recompute the chained checksums of the frames from there on
    crc = _s.unpack_from("<I", data, second - 4 - PS)[0]
    off = second
    while off + FRAME_HEADER_SIZE <= len(data):
        n = _s.unpack_from("<I", data, off + 28)[0]
        crc = _crc(data[off + FRAME_HEADER_SIZE : off + FRAME_HEADER_SIZE + n], _crc(data[off : off + 40], crc))
        _s.pack_into("<I", data, off + 40, crc)
        off += FRAME_HEADER_SIZE + n
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(CorruptionError) as err:
        open_log(path)
    assert err.value.pgno == 3


def test_a_log_of_version_1_with_frames_is_refused_clearly(tmp_path):
    import struct as _s
    from pagestore._native import crc32c as _crc
    from pagestore.errors import VersionMismatchError

    path = str(tmp_path / "x-wal")
    body = _s.pack("<8sIIQQI", b"psWAL\r\n\x00", 1, PS, FILE_ID, 0, 77)
    hcrc = _crc(body)
    head = body + _s.pack("<I", hcrc)
    frame_head = _s.pack("<IIQQI", 0, 10, 1, WAL_HEADER_SIZE, 77)
    page = image(0, 1)
    fcrc = _crc(page, _crc(frame_head, hcrc))
    with open(path, "wb") as f:
        f.write(head + frame_head + _s.pack("<I", fcrc) + page)
    with pytest.raises(VersionMismatchError, match="version 1"):
        open_log(path)
    with open(path, "wb") as f:  # the same header with no frame: nothing to lose, started afresh
        f.write(head + bytes(64))
    wal = open_log(path)
    assert wal.index == {} and wal.salt != 77


def test_a_store_whose_log_is_version_1_is_refused_and_left_as_it_was(tmp_path):
    """The whole store, not just the log: opening for writing or reading raises
    VersionMismatchError naming the log, and leaves the files as they were (no shared index)."""
    import struct as _s

    import pagestore
    from pagestore._native import crc32c as _crc
    from pagestore.errors import VersionMismatchError

    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"k"] = b"v"
        file_id = db._pager.meta.file_id
        ps = db._pager.page_size
    body = _s.pack("<8sIIQQI", b"psWAL\r\n\x00", 1, ps, file_id, 0, 77)
    hcrc = _crc(body)
    frame_head = _s.pack("<IIQQI", 0, 2, 1, WAL_HEADER_SIZE, 77)
    page = bytes(ps)
    with open(log_path(path), "wb") as f:
        f.write(body + _s.pack("<I", hcrc) + frame_head + _s.pack("<I", _crc(page, _crc(frame_head, hcrc))) + page)
    before = sorted(os.listdir(tmp_path))
    for readonly in (False, True):
        with pytest.raises(VersionMismatchError, match="log format version 1"):
            pagestore.open(path, readonly=readonly)
        assert sorted(os.listdir(tmp_path)) == before


def test_a_page_read_again_after_a_delta_reads_one_frame(tmp_path):
    """The images rebuilt from the log are kept by frame offset: a page whose newest frame is a
    delta from a frame read before is rebuilt from that image and one frame, not its chain."""
    reads: List[int] = []

    class Counting(FlakyFile):
        def read(self, offset: int, n: int) -> bytes:
            reads.append(offset)
            return self.inner.read(offset, n)

    def opener(path: str, *, create: bool = False, readonly: bool = False) -> Counting:
        return Counting(fileio.open_file(path, create=create, readonly=readonly))

    wal = open_log(str(tmp_path / "x-wal"), opener=opener)
    img = image(3, 1)
    wal.commit([(3, img, None), (0, image(0, 1), None)], 1, 10, durable=False)
    for n in range(2, 6):
        new = edited(img, {n: n})
        wal.commit([(3, new, img), (0, image(0, n), None)], n, 10, durable=False)
        img = new
    del reads[:]
    assert wal.read_frame(wal.index[3], 3) == img  # the whole chain: 4 deltas and the image
    assert len(reads) == 5
    new = edited(img, {9: 9})
    wal.commit([(3, new, img), (0, image(0, 9), None)], 9, 10, durable=False)
    del reads[:]
    assert wal.read_frame(wal.index[3], 3) == new
    assert len(reads) == 1
    wal.rollback()
    wal.reset(1)  # a new generation reuses offsets: nothing kept from the old one
    other = image(3, 7)
    wal.commit([(3, other, None), (0, image(0, 1), None)], 10, 10, durable=False)
    assert wal.read_frame(wal.index[3], 3) == other


@pytest.mark.parametrize("page_size", [1024, 4096])
def test_a_one_key_commit_logs_the_header_as_a_delta(tmp_path, page_size):
    """Page 0, the commit frame, is logged as a delta of the last commit's header like any
    page: a one-key overwrite logs what it changes, not a whole page for the header (it did:
    4.8 KiB a commit at 4 KiB pages, while a snapshot held the log). Readers see every commit."""
    import pagestore
    from pagestore.store import Store

    path = str(tmp_path / "s")
    with Store(path, page_size=page_size) as db:
        for i in range(300):
            db[b"k%04d" % i] = b"v" * 100
        snap = db.snapshot()  # holds the log: no checkpoint, every frame stays
        before = db.stats()["log_size"]
        for i in range(200):
            db[b"k%04d" % i] = b"w%03d" % i + b"w" * 96
        per_commit = (db.stats()["log_size"] - before) / 200
        assert per_commit < page_size * 0.6, per_commit
        assert snap[b"k0001"] == b"v" * 100
        with pagestore.open(path, readonly=True) as other:  # reads the header through its chain
            assert other[b"k0199"] == b"w199" + b"w" * 96
            assert len(other) == 300
        snap.close()
        db.check()
    with Store(path) as db:
        assert db[b"k0042"] == b"w042" + b"w" * 96
        db.check()


class Recording:
    """Recording wraps a real File and logs each write, sync and truncate as it happens."""

    def __init__(self, inner: fileio.File, log: List[str]) -> None:
        self.inner = inner
        self.log = log
        self.fail: Optional[str] = None

    def write(self, offset: int, data: bytes) -> None:
        self.log.append(f"write@{offset}")
        if self.fail == "write":
            self.fail = None
            raise OSError(5, "injected write error")
        self.inner.write(offset, data)

    def sync(self) -> None:
        self.log.append("sync")
        if self.fail == "sync":
            self.fail = None
            raise OSError(5, "injected sync error")
        self.inner.sync()

    def truncate(self, size: int) -> None:
        self.log.append(f"truncate@{size}")
        self.inner.truncate(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _long_log(tmp_path, monkeypatch, log: List[str]) -> "tuple[WAL, List[Recording]]":
    from pagestore import wal as wal_mod

    monkeypatch.setattr(wal_mod, "KEEP_BYTES", 4 * (PS + FRAME_HEADER_SIZE))
    files: List[Recording] = []

    def opener(path: str, *, create: bool = False, readonly: bool = False) -> Recording:
        f = Recording(fileio.open_file(path, create=create, readonly=readonly), log)
        files.append(f)
        return f

    wal = open_log(str(tmp_path / "x-wal"), opener=opener)
    for t in range(1, 8):
        commit(wal, {2: image(2, t), 3: image(3, t)}, txn=t)
    assert wal.disk_size() > wal_mod.KEEP_BYTES
    return wal, files


def test_reset_writes_and_syncs_the_new_header_before_it_shortens_the_log(tmp_path, monkeypatch):
    """Issue 20, finding 1: the old order (shorten, then write the header) let a crash between
    them leave the old header over a prefix of the old frames, which recovery replayed."""
    log: List[str] = []
    wal, _ = _long_log(tmp_path, monkeypatch, log)
    old_salt = wal.salt
    del log[:]
    wal.reset(1)
    assert log == ["write@0", "sync", f"truncate@{4 * (PS + FRAME_HEADER_SIZE)}"]
    assert wal.salt not in (0, old_salt) and wal.generation == 1 and not wal.index
    wal.close()
    again = open_log(str(tmp_path / "x-wal"), generation=1)  # (beside a data file of checkpoint_seq 1)
    assert not again.index and again.generation == 1


@pytest.mark.parametrize("where", ["write", "sync"])
def test_a_failed_reset_leaves_memory_as_the_new_empty_generation(tmp_path, monkeypatch, where):
    """Issue 20, finding 2: a failed sync of the new header left memory with the old salt while
    the file had the new one, and later frames went under the old salt. Now memory is the new,
    empty generation whatever failed (the caller's data file holds every page), the error is
    raised, and the log file is not shortened (a reopen replays the old log whole, or finds
    the new header: either way nothing the data file lacks)."""
    log: List[str] = []
    wal, files = _long_log(tmp_path, monkeypatch, log)
    size = wal.disk_size()
    old_salt = wal.salt
    files[-1].fail = where
    with pytest.raises(OSError):
        wal.reset(1)
    assert wal.generation == 1 and wal.salt not in (0, old_salt) and not wal.index
    assert os.path.getsize(str(tmp_path / "x-wal")) == size  # not shortened
    wal.check()
    wal.close()
    again = open_log(str(tmp_path / "x-wal"), generation=1)  # the data file checkpointed (C3): checkpoint_seq 1
    if where == "write":  # the old header is there: the old log, whole
        assert set(again.index) == {0, 2, 3} and again.read_frame(again.index[2], 2) == image(2, 7)
    else:  # the header was written (a failed sync may keep it or not; here the file has it)
        assert not again.index and again.salt == wal.salt


def test_a_large_commit_of_deltas_writes_no_zeros_ahead_of_itself(tmp_path):
    """A commit of many small delta frames past the file's end writes its frames only: the frames
    are built a chunk at a time (one C call each, issue 23), but written WRITE_CHUNK bytes at a
    time, so the log is not first extended with zeros chunk by chunk (each write less than
    GROW_BYTES past the end did that: a quarter more log bytes per byte inserted at 200k records)."""
    from pagestore import wal as wal_mod

    wal = open_log(str(tmp_path / "x-wal"))
    n = 8000  # whole images: 4.4 MB
    wal.commit([(p, image(p, 1), None) for p in range(1, n)] + [(0, image(0, 1), None)], 1, n, durable=False)
    before, end = wal.bytes_written(), wal.end
    # every page changed in one byte: 49-byte delta frames, about 390 KB in all (more than
    # GROW_BYTES), built in several chunks of less than GROW_BYTES each
    frames = []
    for p in range(1, n):
        new = bytearray(image(p, 1))
        new[7] = 2
        frames.append((p, new, image(p, 1)))
    wal.commit(frames + [(0, image(0, 2), None)], 2, n, durable=False)
    assert wal_mod.GROW_BYTES < wal.end - end < wal_mod.WRITE_CHUNK
    assert wal.bytes_written() - before == wal.end - end  # the frames, and no zeros
    wal.check()


@pytest.mark.parametrize("page_size", [4096, 65536])
def test_rebuilt_images_kept_are_bounded_in_bytes(tmp_path, page_size):
    """The log keeps the page images it rebuilt for the next read: the last 256, but at most
    1 MiB of them (16 at least). 256 images of 64 KiB pages were 16 MiB beside cache_size."""
    wal = WAL(str(tmp_path / "x-wal"), page_size, FILE_ID)
    wal.recover(0)
    pages = {p: bytes([p & 0xFF]) * (page_size - 4) + p.to_bytes(4, "little") for p in range(1, 301)}
    frames = [(p, img, None) for p, img in sorted(pages.items())]
    wal.commit(frames + [(0, bytes(page_size), None)], 1, 301, durable=False)
    for p in pages:
        assert wal.read_frame(wal.index[p], p) == pages[p]
    kept = wal._images
    assert len(kept) == (256 if page_size == 4096 else 16)
    assert sum(len(img) for _, img in kept.values()) <= 1 << 20
    wal.close()
