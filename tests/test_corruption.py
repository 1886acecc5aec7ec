"""Damaged files: pagestore returns exactly the right data or raises CorruptionError, nothing else.

Data file: a closed store gets bits flipped, a 512-byte sector zeroed or
overwritten with noise, or its tail cut off, at a random place. Then open,
a full scan, a get of every key and check() must each either return exactly
the model's data or raise CorruptionError naming the damaged page. Every
page from 1 on is checksummed whole, as are bytes [24, 512) of page 0 (its
first 24 bytes are the magic, version and page size, where damage may also
show as InvalidFileError or VersionMismatchError; bytes past 512 of page 0
are unused), so all such damage must be detected.

Log: a store is copied while open, as a crash would leave it, and its log is
damaged at a random byte. Recovery must keep exactly the commits whose frames
all lie before the damage and discard the rest, without an error.
"""
from __future__ import annotations

import os
import random
import shutil
from typing import Dict, List, Optional, Tuple

import pytest

import helpers
from pagestore.errors import CorruptionError, InvalidFileError, VersionMismatchError
from pagestore.store import Store
from pagestore.wal import WAL_HEADER_SIZE

#: every test here runs with the data file mapped and without (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("read_mode")

SECTOR = 512


def build(path: str, page_size: int, seed: int) -> Dict[bytes, bytes]:
    """build makes a closed store with small, medium and overflowing values, and free pages from deletes."""
    rng = random.Random(seed)
    model: Dict[bytes, bytes] = {}
    with Store(path, page_size=page_size, cache_size=page_size * 64) as db:
        for batch in range(6):
            with db.transaction() as txn:
                for _ in range(60):
                    k = b"key%05d" % rng.randrange(400)
                    v = rng.randbytes(rng.choice([0, 5, 50, 300, page_size // 3, page_size * 2, page_size * 5]))
                    txn[k] = v
                    model[k] = v
            with db.transaction() as txn:
                for k in rng.sample(sorted(model), 10):
                    del txn[k]
                    del model[k]
        db.check()
    return model


def verify(path: str, model: Dict[bytes, bytes], readonly: bool = False) -> Optional[BaseException]:
    """verify opens the store and reads everything; returns the error it raised (None: all correct).

    Fails the test on wrong data: a scan that yields anything but a prefix of
    the model, a get that returns a wrong value or misses a present key, or
    an error other than CorruptionError (InvalidFileError and
    VersionMismatchError are returned for the caller to judge).
    """
    want = sorted(model.items())
    try:
        with Store(path, readonly=readonly, create=False) as db:
            got: List[Tuple[bytes, bytes]] = []
            try:
                for item in db.items():
                    got.append(item)
            finally:
                assert got == want[: len(got)], "the scan returned wrong data before failing"
            assert len(got) == len(want), "the scan missed entries"
            for k, v in want:
                assert db[k] == v, f"get({k!r}) returned wrong data"
            assert len(db) == len(want)
            db.check()
    except (CorruptionError, InvalidFileError, VersionMismatchError) as exc:
        return exc
    return None


def damage(data: bytearray, page_size: int, rng: random.Random, kind: str) -> Tuple[int, int]:
    """damage changes ``data`` in place and returns (page, first changed offset); (-1, -1) if nothing changed."""
    npages = len(data) // page_size
    pgno = rng.randrange(npages)
    base = pgno * page_size
    span = SECTOR if pgno == 0 else page_size  # page 0: the header sector
    before = bytes(data)
    if kind == "bitflip":
        for _ in range(rng.choice([1, 1, 2, 3])):
            off = base + rng.randrange(span)
            data[off] ^= 1 << rng.randrange(8)
    elif kind in ("zero", "noise"):
        off = base + rng.randrange(span // SECTOR) * SECTOR
        data[off : off + SECTOR] = bytes(SECTOR) if kind == "zero" else rng.randbytes(SECTOR)
    elif kind == "truncate":
        cut = rng.randrange(SECTOR, len(data))
        del data[cut:]
        return cut // page_size, cut
    else:
        raise ValueError(kind)
    changed = [i for i in range(base, base + page_size) if data[i] != before[i]]
    if not changed:
        return -1, -1
    return pgno, changed[0]


@pytest.mark.parametrize("page_size", [512, 4096])
def test_data_file_damage_is_detected(tmp_path, page_size):
    trials = 160 if page_size == 512 else 100
    root = str(tmp_path)
    clean = os.path.join(root, "clean.ps")
    model = build(clean, page_size, seed=page_size)
    with open(clean, "rb") as f:
        pristine = f.read()
    assert not os.path.exists(clean + "-wal")
    # Free pages (format 4: listed in the free list's trunks, never written) hold nothing and
    # nothing reads them: damage there loses no data and need not be noticed (SQLite's free
    # leaf pages alike). The reads must still return exactly the model's data (verify).
    with Store(clean, readonly=True) as db:
        unread = {p for first, n in helpers.pager_of(db).free_extents() for p in range(first, first + n)}
    assert unread
    rng = random.Random(99 + page_size)
    injected = detected = header_invalid = harmless = 0
    path = os.path.join(root, "hurt.ps")
    for trial in range(trials):
        kind = ("bitflip", "zero", "noise", "bitflip", "truncate")[trial % 5]
        data = bytearray(pristine)
        pgno, off = damage(data, page_size, rng, kind)
        if pgno < 0:
            continue
        with open(path, "wb") as f:
            f.write(data)
        for stale in (path + "-wal",):
            if os.path.exists(stale):
                os.unlink(stale)
        injected += 1
        err = verify(path, model, readonly=trial % 2 == 1)
        where = f"trial {trial}: {kind} in page {pgno} at byte {off}"
        if err is None and kind != "truncate" and pgno in unread:
            harmless += 1
            continue
        assert err is not None, f"{where} went unnoticed"
        if pgno == 0 and off < 24:
            # magic, version, page size: not checksummed, but never taken on trust either
            header_invalid += isinstance(err, (InvalidFileError, VersionMismatchError))
        elif isinstance(err, (InvalidFileError, VersionMismatchError)):
            raise AssertionError(f"{where} raised {err!r}")
        elif kind == "truncate":
            assert err.pgno is not None and err.pgno >= pgno, f"{where}: {err!r}"
        else:
            assert err.pgno == pgno, f"{where}: the error names page {err.pgno}: {err}"
        detected += 1
    print(
        f"\ncorruption ({page_size}-byte pages, {len(pristine) // page_size} pages): "
        f"{injected} injected, {detected} detected ({header_invalid} as a foreign or newer file), "
        f"{harmless} in free pages, unread"
    )
    assert injected > trials * 0.9
    assert detected + harmless == injected and harmless < injected / 4


def test_header_sector_damage_is_detected(tmp_path):
    """Flip a bit in every byte of page 0's header sector in turn (one bit per byte, cycling)."""
    path = str(tmp_path / "db")
    model = build(path, 512, seed=2)
    with open(path, "rb") as f:
        pristine = f.read()
    kinds: Dict[str, int] = {}
    for off in range(0, 512):
        data = bytearray(pristine)
        data[off] ^= 1 << (off % 8)
        with open(path, "wb") as f:
            f.write(data)
        err = verify(path, model, readonly=off % 2 == 1)
        assert err is not None, f"bit flip at header byte {off} went unnoticed"
        if off >= 16:  # all but the magic is under the checksum (format version 2): header damage, page 0
            assert isinstance(err, CorruptionError) and err.pgno == 0, f"header byte {off}: {err!r}"
        else:
            assert isinstance(err, InvalidFileError), f"magic byte {off}: {err!r}"
        kinds[type(err).__name__] = kinds.get(type(err).__name__, 0) + 1
    print(f"\nheader: 512 bit flips, all detected: {kinds}")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_failed_open_releases_the_file(tmp_path):
    """A store that fails to open (its free-space map page is damaged) must not keep the file open or locked.

    Regression: Store.__init__ built the tree and heap after the Pager
    without closing the Pager when they raised, so the file descriptors and
    the flock leaked and the next open in the process said StoreLockedError.
    """
    path = str(tmp_path / "db")
    with Store(path, page_size=512) as db:
        for i in range(50):
            db[b"%03d" % i] = b"x" * 100
        fsm = db._pager.meta.fsm_head
    assert fsm
    with open(path, "r+b") as f:
        f.seek(fsm * 512 + 100)
        byte = f.read(1)
        f.seek(fsm * 512 + 100)
        f.write(bytes([byte[0] ^ 1]))
    fds = _open_fds()
    for readonly in (False, False, True, False):
        with pytest.raises(CorruptionError) as exc:
            Store(path, readonly=readonly)
        assert exc.value.pgno == fsm
    assert _open_fds() == fds


def test_unused_header_bytes_do_not_matter(tmp_path):
    """Bytes 512.. of page 0 are not part of the header: damage there must change nothing."""
    path = str(tmp_path / "db")
    model = build(path, 4096, seed=3)
    rng = random.Random(4)
    with open(path, "rb") as f:
        pristine = f.read()
    for _ in range(10):
        data = bytearray(pristine)
        off = rng.randrange(512, 4096)
        data[off] ^= 0xFF
        with open(path, "wb") as f:
            f.write(data)
        assert verify(path, model) is None


def test_page_size_field_damage(tmp_path):
    """A flip of the page-size field, even to another valid size, is header damage on page 0."""
    for page_size in (512, 4096):
        path = str(tmp_path / f"db{page_size}")
        model = build(path, page_size, seed=5)
        with open(path, "rb") as f:
            pristine = f.read()
        for bit in range(32):
            data = bytearray(pristine)
            data[20 + bit // 8] ^= 1 << (bit % 8)
            with open(path, "wb") as f:
                f.write(data)
            err = verify(path, model)
            assert isinstance(err, CorruptionError) and err.pgno == 0, f"bit {bit}: {err!r}"


# ---- the log ----


def build_with_log(root: str, page_size: int, seed: int):
    """build_with_log returns (data, log, ends, states): a crash image whose log holds several commits.

    ``ends[c]`` is the log offset just past commit c's frames (ends[0] is the
    header: no commit), ``states[c]`` the contents after it. A checkpoint runs
    first, so the log also holds a previous generation's frames further on.
    """
    rng = random.Random(seed)
    path = os.path.join(root, "live.ps")
    model: Dict[bytes, bytes] = {}

    def txn_batch(db: Store, n: int) -> None:
        with db.transaction() as txn:
            for _ in range(n):
                k = b"key%04d" % rng.randrange(150)
                if k in model and rng.random() < 0.3:
                    del txn[k]
                    del model[k]
                else:
                    v = rng.randbytes(rng.choice([3, 40, 200, page_size, page_size * 3]))
                    txn[k] = v
                    model[k] = v

    db = Store(path, page_size=page_size, cache_size=page_size * 256, wal_limit=1 << 30)
    try:
        for _ in range(12):
            txn_batch(db, 8)  # a long first generation, so stale frames lie past the new one's end
        db._pager.checkpoint()
        ends, states = [db._pager.wal.committed_end], [dict(model)]
        assert ends[0] == WAL_HEADER_SIZE
        for _ in range(10):
            txn_batch(db, rng.choice([1, 3, 8]))
            ends.append(db._pager.wal.committed_end)
            states.append(dict(model))
        with open(path, "rb") as f:
            data = f.read()
        with open(path + "-wal", "rb") as f:
            log = f.read()
    finally:
        db.close()
    return data, log, ends, states


@pytest.mark.parametrize("page_size", [512, 4096])
def test_log_damage_discards_the_tail(tmp_path, page_size):
    root = str(tmp_path)
    data, log, ends, states = build_with_log(root, page_size, seed=page_size + 1)
    used = ends[-1]
    rng = random.Random(page_size)
    injected = 0
    kept_commits = []
    path = os.path.join(root, "crash.ps")
    for trial in range(60):
        hurt = bytearray(log)
        kind = ("bitflip", "zero", "noise")[trial % 3]
        if kind == "bitflip":
            off = rng.randrange(used)
            hurt[off] ^= 1 << rng.randrange(8)
        else:
            off = rng.randrange(used // SECTOR + 1) * SECTOR
            hurt[off : off + SECTOR] = bytes(SECTOR) if kind == "zero" else rng.randbytes(SECTOR)
        changed = next((i for i in range(len(log)) if hurt[i] != log[i]), None)
        if changed is None:
            continue
        injected += 1
        # Commit c survives iff all its frames lie before the first damaged byte.
        c = max(i for i, end in enumerate(ends) if end <= changed) if changed >= WAL_HEADER_SIZE else 0
        kept_commits.append(c)
        for readonly in (True, False):
            with open(path, "wb") as f:
                f.write(data)
            with open(path + "-wal", "wb") as f:
                f.write(hurt)
            err = verify(path, states[c], readonly=readonly)
            assert err is None, f"trial {trial}: {kind} at log byte {changed} (commit {c} should survive): {err!r}"
    print(
        f"\nlog damage ({page_size}-byte pages): {injected} injected into {len(ends) - 1} commits "
        f"({used} log bytes); recovered to commit {min(kept_commits)}..{max(kept_commits)}"
    )
    assert injected >= 40


def test_undamaged_crash_image_recovers_every_commit(tmp_path):
    root = str(tmp_path)
    data, log, ends, states = build_with_log(root, 512, seed=8)
    path = os.path.join(root, "crash.ps")
    with open(path, "wb") as f:
        f.write(data)
    with open(path + "-wal", "wb") as f:
        f.write(log)
    assert verify(path, states[-1], readonly=True) is None
    assert verify(path, states[-1]) is None
    # A log cut short at every frame boundary keeps exactly the commits before the cut.
    for c, end in enumerate(ends):
        with open(path, "wb") as f:
            f.write(data)
        with open(path + "-wal", "wb") as f:
            f.write(log[: end + 100])
        assert verify(path, states[c]) is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_data_file_damage_many(tmp_path, seed):
    for page_size in (512, 1024, 4096, 16384):
        root = str(tmp_path / f"p{page_size}")
        os.makedirs(root)
        clean = os.path.join(root, "clean.ps")
        model = build(clean, page_size, seed=seed * 31 + page_size)
        with open(clean, "rb") as f:
            pristine = f.read()
        # Free pages (format 4: listed in the free list's trunks, never read) may take damage
        # unnoticed, as in test_data_file_damage_is_detected; the reads must still be exact.
        with Store(clean, readonly=True) as db:
            unread = {p for first, n in helpers.pager_of(db).free_extents() for p in range(first, first + n)}
        rng = random.Random(seed)
        path = os.path.join(root, "hurt.ps")
        injected = harmless = 0
        for trial in range(400):
            data = bytearray(pristine)
            kind = ("bitflip", "zero", "noise", "truncate")[trial % 4]
            pgno, off = damage(data, page_size, rng, kind)
            if pgno < 0:
                continue
            injected += 1
            with open(path, "wb") as f:
                f.write(data)
            err = verify(path, model)
            if err is None and kind != "truncate" and pgno in unread:
                harmless += 1
                continue
            assert err is not None, f"seed {seed}, trial {trial}: {kind} in page {pgno} at byte {off} went unnoticed"
        assert harmless < injected / 4, (harmless, injected)
        shutil.rmtree(root)
