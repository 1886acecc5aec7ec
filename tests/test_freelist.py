"""The free list of format 4 (pagestore/freelist.py): extents in trunk pages, never the freed pages.

- a hypothesis state machine drives a Pager's allocate / free / free_many /
  free_all_but / commit / rollback / reopen against a set model;
- clear() and delete_range() write a few pages, whatever the store held, and
  the space comes back to the next inserts;
- a format-3 file (a chain of free pages) opens, reads, and is rewritten as
  trunks by its first commit; killed at every I/O event of that commit (and of
  a clear()) under tests/faultfs.py, the store reopens clean with every
  acknowledged commit;
- hostile trunks raise CorruptionError naming the trunk, and walks are bounded;
- snapshots (in this process and in a reader process) taken before clear() and
  delete_range() read their records.
"""
from __future__ import annotations

import errno
import os
import shutil
import struct
from typing import Dict, List, Optional, Set

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import helpers
from faultfs import Disk, PowerCut
from pagestore import format as fmt
from pagestore.errors import CorruptionError, PageStoreError, VersionMismatchError
from pagestore.freelist import extents_per_trunk
from pagestore.page import SlottedPage
from pagestore.pager import Pager
from pagestore.store import Store

PS = 512  # 58 extents per trunk: a fragmented list takes several


# ---- helpers ----


def free_set(pager: Pager) -> Set[int]:
    pages = list(pager.freelist())
    assert len(pages) == len(set(pages)) == pager.meta.freelist_count
    return set(pages)


def make_format3(path: str) -> List[int]:
    """make_format3 rewrites the closed store at ``path`` as format 3 wrote it: its free pages
    chained through ``next`` as empty PAGE_FREE pages, the header version 3 with the chain's head
    and length (and offset 52 zero). Returns the chain, head first."""
    with Store(path) as db:
        pages = sorted(helpers.pager_of(db).freelist(), reverse=True)
    with open(path, "r+b") as f:
        head = f.read(fmt.FILE_HEADER_SIZE)
        meta = fmt.decode_meta(head)
        ps = meta.page_size
        for i, pgno in enumerate(pages):
            page = SlottedPage.new(ps, pgno, fmt.PAGE_FREE)
            page.next = pages[i + 1] if i + 1 < len(pages) else 0
            page.lsn = meta.lsn
            page.set_checksum()
            f.seek(pgno * ps)
            f.write(bytes(page.buffer))
        meta.freelist_head = pages[0] if pages else 0
        meta.freelist_count = len(pages)
        meta.freelist_trunks = 0
        f.seek(0)
        f.write(bytes(meta.encode(3)))
    return pages


def version_of(path: str) -> int:
    with open(path, "rb") as f:
        return fmt.stored_version(f.read(fmt.FILE_HEADER_SIZE))


def fill(db: Store, n: int, size: int = 60, prefix: bytes = b"k") -> Dict[bytes, bytes]:
    items = {prefix + b"%05d" % i: bytes([i % 251]) * (size + i % 7) for i in range(n)}
    with db.transaction() as t:
        for k, v in items.items():
            t[k] = v
    return items


# ---- the state machine: the pager's free list against a set ----


class FreeListMachine(RuleBasedStateMachine):
    """Pages in use (``used``) and the file's length are the model; every page of [1, page_count)
    not in use is on the free list. Committed copies of both come back on rollback and reopen."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "fl.ps")
        self.pager = Pager(self.path, page_size=PS, sync=False)
        self.used: Set[int] = set()
        self.count = 1
        self.saved = (set(self.used), self.count)

    def teardown(self) -> None:
        self.pager.close()
        shutil.rmtree(self.dir)

    def _free_model(self) -> Set[int]:
        return set(range(1, self.count)) - self.used

    @rule(n=st.integers(1, 40))
    def allocate(self, n: int) -> None:
        self.pager.begin_operation()
        for _ in range(n):
            free = self._free_model()
            page = self.pager.allocate(fmt.PAGE_HEAP)
            if free:
                # the lowest free page; the file does not grow while the list has one
                assert page.pgno == min(free) or page.pgno in free
                assert self.pager.meta.page_count == self.count
            else:
                assert page.pgno == self.count
                self.count += 1
            page.insert(b"%d" % page.pgno)
            self.used.add(page.pgno)

    @precondition(lambda self: self.used)
    @rule(data=st.data())
    def free_one(self, data: st.DataObject) -> None:
        pgno = data.draw(st.sampled_from(sorted(self.used)))
        self.pager.free(pgno)
        self.used.discard(pgno)
        with pytest.raises(CorruptionError, match="freed twice"):
            self.pager.free(pgno)

    @precondition(lambda self: self.used)
    @rule(data=st.data())
    def free_many(self, data: st.DataObject) -> None:
        pgnos = data.draw(st.sets(st.sampled_from(sorted(self.used)), max_size=30))
        self.pager.free_many(pgnos)
        self.used -= pgnos

    @rule(data=st.data())
    def clear(self, data: st.DataObject) -> None:
        keep = data.draw(st.sets(st.sampled_from(sorted(self.used)), max_size=3)) if self.used else set()
        self.pager.free_all_but(keep)
        self.used &= keep

    @rule()
    def commit(self) -> None:
        self.pager.commit()
        self.saved = (set(self.used), self.count)

    @rule()
    def rollback(self) -> None:
        self.pager.rollback()
        self.used, self.count = set(self.saved[0]), self.saved[1]

    @rule()
    def reopen(self) -> None:
        self.pager.commit()
        self.saved = (set(self.used), self.count)
        self.pager.close()
        self.pager = Pager(self.path, page_size=PS, sync=False)

    @invariant()
    def agrees(self) -> None:
        pager = self.pager
        assert pager.meta.page_count == self.count
        assert free_set(pager) == self._free_model()
        pager.check()
        for pgno in sorted(self.used)[:5]:  # pages in use keep what was written
            assert pager.read(pgno).read(0) == b"%d" % pgno
        if not pager.in_transaction:
            # every trunk is a page of the list (check() compared the trunks' bytes with memory)
            assert pager.meta.freelist_trunks <= pager.meta.freelist_count


FreeListMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck))
test_free_list_against_a_set = FreeListMachine.TestCase


class FreeListSoak(FreeListMachine):
    """The same machine, longer runs: behind the slow marker."""


FreeListSoak.TestCase.settings = settings(
    max_examples=400, stateful_step_count=80, deadline=None, suppress_health_check=list(HealthCheck))
test_free_list_soak = pytest.mark.slow(FreeListSoak.TestCase)


# ---- what clear() and delete_range() write, and the space coming back ----


def test_clear_writes_a_few_pages_and_the_refill_reuses_the_file(tmp_path):
    path = str(tmp_path / "c.ps")
    with Store(path, page_size=4096) as db:
        items = fill(db, 6000, size=300)
        db[b"big"] = bytes(50_000)  # an overflow chain
        pages = db.stats()["page_count"]
        before = db.stats()["bytes_written"]
        db.clear()
        written = db.stats()["bytes_written"] - before
        # the trunk, the free-space map's page(s) and the header: never the ~500 pages of records
        assert written < 8 * 4096, written
        assert len(db) == 0 and db.check()["free_pages"] == pages - 2
        s = db.stats()
        assert s["page_types"].keys() == {"free", "fsm"} and s["free_pages"] == pages - 2
        fill(db, 6000, size=300)
        db[b"big"] = bytes(50_000)
        assert db.stats()["page_count"] == pages  # the refill took the freed pages: no growth
        db.check()
    with Store(path) as db:
        assert len(db) == len(items) + 1 and db.check()


def test_delete_range_frees_whole_leaves_and_heap_pages_unwritten(tmp_path):
    path = str(tmp_path / "d.ps")
    with Store(path, page_size=4096) as db:
        fill(db, 8000, size=100)
        model = dict(db.items())
        before = db.stats()["bytes_written"]
        n = db.delete_range(b"k01000", b"k07000")
        written = db.stats()["bytes_written"] - before
        assert n == 6000
        # two boundary leaves and heap pages, internal nodes, the map, a trunk, the header
        assert written < 40 * 4096, written
        for k in list(model):
            if b"k01000" <= k < b"k07000":
                del model[k]
        assert dict(db.items()) == model
        db.check()
        pages = db.stats()["page_count"]
        fill(db, 5000, size=100, prefix=b"n")
        assert db.stats()["page_count"] <= pages + 2
        db.check()


def test_delete_range_with_overflow_values_and_odd_ranges(tmp_path):
    """Small pages: overflow chains, leaves partly and wholly covered, heap pages shared by
    leaves; every range against a dict."""
    path = str(tmp_path / "o.ps")
    with Store(path, **helpers.SMALL) as db:
        model = {}
        with db.transaction() as t:
            for i in range(1500):
                k = b"%05d" % (i * 7 % 1500)
                v = bytes([i % 256]) * (10 + (i * 37) % 900)
                t[k] = v
                model[k] = v
        for lo, hi in ((b"00100", b"00900"), (None, b"00050"), (b"01400", None), (b"00000", b"01500")):
            n = db.delete_range(lo, hi)
            gone = [k for k in model if (lo is None or k >= lo) and (hi is None or k < hi)]
            assert n == len(gone)
            for k in gone:
                del model[k]
            assert dict(db.items()) == model
            db.check()


# ---- format 3: read as it is, rewritten as trunks by the first commit ----


def _format3_store(path: str) -> Dict[bytes, bytes]:
    with Store(path, **helpers.SMALL) as db:
        items = fill(db, 400, size=50)
        db.delete_range(b"k00100", b"k00300")  # free pages
        for k in list(items):
            if b"k00100" <= k < b"k00300":
                del items[k]
    return items


def test_a_format3_free_list_is_read_and_rewritten_by_the_first_commit(tmp_path):
    path = str(tmp_path / "v3.ps")
    items = _format3_store(path)
    chain = make_format3(path)
    assert len(chain) > 10 and version_of(path) == 3
    with Store(path, readonly=True) as db:  # a reader reads the chain as it is
        assert dict(db.items()) == items and db.check()["free_pages"] == len(chain)
    assert version_of(path) == 3
    with Store(path) as db:
        assert version_of(path) == 3  # a chain stays under a version 3 header until a commit
        assert set(helpers.pager_of(db).freelist()) == set(chain)
        db[b"new"] = b"value"  # the first commit: the chain becomes trunks, the header version 4
        items[b"new"] = b"value"
        pager = helpers.pager_of(db)
        assert pager.meta.version == 4 and pager.meta.freelist_trunks >= 1
        assert db.check()
    assert version_of(path) == 4
    with Store(path) as db:
        assert dict(db.items()) == items and db.check()
        assert len(chain) - 1 <= db.stats()["free_pages"] <= len(chain)  # the new record may have taken one


def test_an_older_pagestore_refuses_a_format4_file(tmp_path, monkeypatch):
    """What a format-3 pagestore does with this file: its version check (format.read_fixed_header)
    sees a newer version and raises VersionMismatchError, before any page is read."""
    path = str(tmp_path / "v4.ps")
    with Store(path) as db:
        db[b"a"] = b"1"
        del db[b"a"]
    assert version_of(path) == 4
    monkeypatch.setattr(fmt, "FORMAT_VERSION", 3)
    with pytest.raises(VersionMismatchError, match="format version 4"):
        Store(path, readonly=True)


def _crash_sweep(tmp: str, workload, prepare, expect, modes=("kill", "drop", "tear")) -> int:
    """_crash_sweep runs ``workload(path, opener, acked)`` on a store ``prepare(path)`` made,
    killed at each I/O event in each mode, and calls ``expect(path, acked)`` on what is left."""
    root = os.path.join(tmp, "count")
    os.makedirs(root)
    prepare(os.path.join(root, "db.ps"))
    base = open(os.path.join(root, "db.ps"), "rb").read()
    probe = Disk(root)
    workload(os.path.join(root, "db.ps"), probe.opener, [])
    total = probe.events
    shutil.rmtree(root)
    cuts = 0
    for mode in modes:
        for k in range(1, total + 1):
            root = os.path.join(tmp, f"r-{mode}-{k}")
            os.makedirs(root)
            with open(os.path.join(root, "db.ps"), "wb") as f:
                f.write(base)
            disk = Disk(root, seed=k, fail_at=k)
            acked: List[str] = []
            with pytest.raises(PowerCut):
                workload(os.path.join(root, "db.ps"), disk.opener, acked)
            disk.crash(mode)
            out = os.path.join(tmp, "out")
            disk.materialise(out)
            try:
                expect(os.path.join(out, "db.ps"), acked)
            except BaseException as exc:
                raise AssertionError(f"{mode} at I/O event {k} of {total}: {exc!r}") from exc
            shutil.rmtree(out)
            shutil.rmtree(root)
            cuts += 1
    return cuts


def test_the_format3_upgrade_survives_a_crash_at_every_io_event(tmp_path):
    tmp = str(tmp_path)
    made: Dict[str, object] = {}

    def prepare(path: str) -> None:
        made["items"] = _format3_store(path)
        made["chain"] = make_format3(path)

    def workload(path: str, opener, acked: List[str]) -> None:
        db = Store(path, _opener=opener, sync=True, **helpers.SMALL)
        db[b"new"] = b"value"  # converts the free list
        acked.append("new")
        db.close()

    def expect(path: str, acked: List[str]) -> None:
        items = dict(made["items"])  # type: ignore[call-overload]
        assert version_of(path) in (3, 4)
        with Store(path, **helpers.SMALL) as db:
            got = dict(db.items())
            if acked:
                items[b"new"] = b"value"
                assert got == items
            else:
                assert got in (items, dict(items, new=b"value"), {**items, b"new": b"value"})
            counts = db.check()
            chain = made["chain"]
            assert len(chain) - 1 <= counts["free_pages"] <= len(chain)  # type: ignore[arg-type]

    cuts = _crash_sweep(tmp, workload, prepare, expect)
    assert cuts > 20


def test_clear_survives_a_crash_at_every_io_event(tmp_path):
    tmp = str(tmp_path)
    made: Dict[str, Dict[bytes, bytes]] = {}

    def prepare(path: str) -> None:
        with Store(path, **helpers.SMALL) as db:
            made["items"] = fill(db, 300, size=40)
            db[b"big"] = bytes(3000)
            made["items"][b"big"] = bytes(3000)

    def workload(path: str, opener, acked: List[str]) -> None:
        db = Store(path, _opener=opener, sync=True, **helpers.SMALL)
        db.clear()
        acked.append("clear")
        db[b"after"] = b"1"
        acked.append("after")
        db.close()

    def expect(path: str, acked: List[str]) -> None:
        with Store(path, **helpers.SMALL) as db:
            got = dict(db.items())
            states = [made["items"], {}, {b"after": b"1"}]
            done = len(acked)
            assert got in states[done:done + 2], (acked, len(got))
            db.check()

    cuts = _crash_sweep(tmp, workload, prepare, expect)
    assert cuts > 20


def test_delete_range_survives_a_crash_at_every_io_event(tmp_path):
    tmp = str(tmp_path)
    made: Dict[str, Dict[bytes, bytes]] = {}

    def prepare(path: str) -> None:
        with Store(path, **helpers.SMALL) as db:
            made["items"] = fill(db, 300, size=40)
            db[b"k00150"] = bytes(3000)  # an overflow chain in the range
            made["items"][b"k00150"] = bytes(3000)

    def workload(path: str, opener, acked: List[str]) -> None:
        db = Store(path, _opener=opener, sync=True, **helpers.SMALL)
        db.delete_range(b"k00020", b"k00280")
        acked.append("deleted")
        db[b"k00100"] = b"again"  # on a freed page
        acked.append("again")
        db.close()

    def expect(path: str, acked: List[str]) -> None:
        before = made["items"]
        after = {k: v for k, v in before.items() if not b"k00020" <= k < b"k00280"}
        states = [before, after, {**after, b"k00100": b"again"}]
        with Store(path, **helpers.SMALL) as db:
            got = dict(db.items())
            done = len(acked)
            assert got in states[done:done + 2], (acked, len(got))
            db.check()

    cuts = _crash_sweep(tmp, workload, prepare, expect)
    assert cuts > 20


# ---- hostile trunks ----


def _trunk_store(path: str) -> int:
    """_trunk_store: a closed store whose free list has one trunk; returns the trunk's page."""
    with Store(path, **helpers.SMALL) as db:
        fill(db, 300, size=40)
        db.delete_range(b"k00050", b"k00250")
        pager = helpers.pager_of(db)
        assert pager.meta.freelist_trunks == 1
        return pager.meta.freelist_head


def _rewrite_trunk(path: str, pgno: int, record: Optional[bytes] = None, nxt: Optional[int] = None,
                   page_type: int = fmt.PAGE_FREE) -> None:
    with open(path, "r+b") as f:
        f.seek(pgno * PS)
        page = SlottedPage(bytearray(f.read(PS)), validate=False)
        old, old_next = page.read(0), page.next
        page.init(pgno, page_type)
        page.insert(old if record is None else record)
        page.next = old_next if nxt is None else nxt
        page.set_checksum()
        f.seek(pgno * PS)
        f.write(bytes(page.buffer))


def _extents(path: str, pgno: int) -> List[tuple]:
    with open(path, "rb") as f:
        f.seek(pgno * PS)
        page = SlottedPage(bytearray(f.read(PS)), validate=False)
        return list(struct.iter_unpack("<II", page.read(0)))


@pytest.mark.parametrize("damage", ["past-end", "overlap", "zero-count", "self", "type", "cycle", "longer", "ragged"])
def test_a_hostile_trunk_raises_corruption_naming_it(tmp_path, damage):
    path = str(tmp_path / "h.ps")
    trunk = _trunk_store(path)
    ext = _extents(path, trunk)
    assert ext
    pack = lambda e: b"".join(struct.pack("<II", a, b) for a, b in e)  # noqa: E731
    if damage == "past-end":
        _rewrite_trunk(path, trunk, pack(ext[:-1] + [(ext[-1][0], 10**6)]))
    elif damage == "overlap":
        _rewrite_trunk(path, trunk, pack(ext + [ext[0]]))
    elif damage == "zero-count":
        _rewrite_trunk(path, trunk, pack([(ext[0][0], 0)] + ext[1:]))
    elif damage == "self":
        _rewrite_trunk(path, trunk, pack([(trunk, 1)]))
    elif damage == "type":
        _rewrite_trunk(path, trunk, page_type=fmt.PAGE_HEAP)
    elif damage == "cycle":
        _rewrite_trunk(path, trunk, nxt=trunk)
    elif damage == "longer":
        _rewrite_trunk(path, trunk, nxt=ext[0][0])
    elif damage == "ragged":
        _rewrite_trunk(path, trunk, pack(ext) + b"xyz")
    with Store(path, **helpers.SMALL) as db:
        with pytest.raises(CorruptionError) as err:
            db.check()
        assert err.value.pgno in (trunk, 0) or damage in ("longer",), err.value
        with pytest.raises(CorruptionError):
            db[b"new"] = b"x" * 400  # a write that needs a page (an overflow chain) reads the list: refused, rolled back
        assert db[b"k00000"]  # reads go on


def test_hostile_free_list_counts_in_the_header(tmp_path):
    from test_hostile import set_header

    path = str(tmp_path / "h.ps")
    trunk = _trunk_store(path)
    with open(path, "rb") as f:
        meta = fmt.decode_meta(f.read(fmt.FILE_HEADER_SIZE))
    for fields in (dict(freelist_trunks=0), dict(freelist_trunks=meta.freelist_count + 1),
                   dict(freelist_trunks=2), dict(freelist_count=meta.freelist_count + 1),
                   dict(freelist_count=meta.freelist_count - 1)):
        bad = str(tmp_path / "bad.ps")
        shutil.copy(path, bad)
        set_header(bad, **fields)
        with pytest.raises(CorruptionError) as err:
            with Store(bad, **helpers.SMALL) as db:
                db.check()
        assert err.value.pgno in (0, trunk), (fields, err.value)


def test_extents_per_trunk():
    assert extents_per_trunk(512) == 58 and extents_per_trunk(4096) == 506


# ---- snapshots taken before a clear() or delete_range() ----


def test_snapshots_before_clear_and_delete_range_read_their_records(tmp_path):
    path = str(tmp_path / "s.ps")
    with Store(path, **helpers.SMALL) as db:
        items = fill(db, 800, size=80)
        snap = db.snapshot()
        db.clear()
        fill(db, 500, size=120, prefix=b"x")  # reuses the freed pages
        assert dict(snap.items()) == items
        snap2 = db.snapshot()
        after = dict(db.items())
        db.delete_range(b"x00100", b"x00400")
        fill(db, 300, size=200, prefix=b"y")
        assert dict(snap2.items()) == after and dict(snap.items()) == items
        snap.close()
        snap2.close()
        db.check()


def test_a_reader_process_keeps_its_snapshot_across_clear(tmp_path):
    from test_readers import WAL_LIMIT, Peer

    path = str(tmp_path / "r.ps")
    r = None
    try:
        with Store(path, wal_limit=WAL_LIMIT, sync=False) as db:
            items = fill(db, 500, size=200)
            r = Peer(path, readonly=True)
            assert r.error is None, r.opened
            snap = r.call("snap")
            db.clear()
            fill(db, 400, size=300, prefix=b"x")  # on the freed pages
            assert r.items(snap) == items
            assert r.call("len") == 400
            db.delete_range(b"x00000", b"x00200")
            assert r.call("len") == 200 and r.items(snap) == items
            r.call("close_snap", snap=snap)
            assert r.exit() == 0
            db.check()
    finally:
        if r is not None:
            r.cleanup()


def test_salvage_does_not_bring_back_what_clear_and_delete_range_freed(tmp_path):
    """A freed page keeps its old bytes (nothing writes it): salvage, which reads every page, skips
    the pages an intact free list owns, or the deleted records would come back."""
    from pagestore.salvage import salvage_path

    path = str(tmp_path / "v.ps")
    with Store(path, **helpers.SMALL) as db:
        fill(db, 400, size=50)
        db.clear()
        kept = fill(db, 100, size=50, prefix=b"n")
        db.delete_range(b"n00010", b"n00090")
        kept = {k: v for k, v in kept.items() if not b"n00010" <= k < b"n00090"}
        assert dict(db.salvage()) == kept
    assert dict(salvage_path(path)) == kept


def test_the_list_follows_a_compacted_file_through_commits_that_do_not_touch_it(tmp_path):
    """Regression (tests/test_crash.py's writer found it): after compact() replaced the file, a
    commit that allocated and freed nothing marked the old file's list as the new one's, and the
    next free wrote a trunk past the new file's end."""
    path = str(tmp_path / "k.ps")
    with Store(path, **helpers.SMALL) as db:
        fill(db, 600, size=60)
        db.delete_range(b"k00000", b"k00500")  # a free list, its trunk near the top of the file
        assert helpers.pager_of(db).meta.freelist_trunks == 1
        db.compact()  # a smaller file, no free list
        db[b"k00550"] = b"x" * 60  # in place: the free list untouched
        db.delete_range(b"k00500", b"k00590")
        db[b"new"] = b"y" * 300
        db.check()
    with Store(path, **helpers.SMALL) as db:
        assert len(db) == 11 and db.check()


def test_a_change_rewrites_the_trunk_it_falls_in_not_every_trunk_after_it(tmp_path):
    """A fragmented list (every other page free: one extent each, a dozen trunks): taking the lowest
    page removes the first extent, which shifted every later extent into the trunk before it when
    trunks were filled in order; each trunk now keeps a range of pages, so one trunk is written."""
    pager = Pager(str(tmp_path / "f.ps"), page_size=PS, sync=False)
    pages = [pager.allocate(fmt.PAGE_HEAP).pgno for _ in range(1000)]
    pager.commit()
    pager.free_many(pages[::2])
    pager.commit()
    assert len(pager.free_extents()) > 450 and pager.meta.freelist_trunks >= 8
    for _ in range(5):
        before = pager.bytes_written()
        pager.begin_operation()
        p = pager.allocate(fmt.PAGE_HEAP)
        assert p.pgno == pager.free_extents()[0][0] - 2  # the lowest free page went
        pager.commit()
        # the page, the first trunk (a delta) and the header (a delta): never a dozen trunks
        assert pager.bytes_written() - before < 3 * PS, pager.bytes_written() - before
    pager.free_many(pages[1::2][100:300])  # merges extents in the middle: those trunks only
    pager.commit()
    pager.check()
    pager.close()
    reopened = Pager(str(tmp_path / "f.ps"), page_size=PS, sync=False)
    assert reopened.check()["free_pages"] == reopened.meta.freelist_count
    reopened.close()


# ---- a full disk: clear(), delete_range(), the refill, the format-3 upgrade ----


def _full_disk_sweep(tmp: str, prepare, workload, steps: range) -> int:
    """_full_disk_sweep runs ``workload(db, model)`` on a store ``prepare(path)`` made, with the
    disk ``delta`` bytes from full for each ``delta`` in ``steps``. A write that fails with
    ENOSPC loses nothing acknowledged: the poisoned store reads what ``model`` holds (the
    workload updates it after each call returns) and checks clean; opened again with room, it
    reads it, checks clean, takes a write, and a power cut after keeps it. Returns the
    number of sweeps that met a full disk."""
    full = 0
    for delta in steps:
        root = os.path.join(tmp, f"d{delta}")
        os.makedirs(root)
        path = os.path.join(root, "db.ps")
        base = prepare(path)
        disk = Disk(root)
        db = Store(path, _opener=disk.opener, sync=True, **helpers.SMALL)
        model: Dict[bytes, bytes] = dict(base)
        disk.limit = disk.total_bytes() + delta
        try:
            workload(db, model)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            full += 1
        except PageStoreError as exc:  # StorePoisonedError: a failed checkpoint after a commit
            assert getattr(exc, "__cause__", None) is not None, exc
            full += 1
        disk.limit = None
        try:
            assert dict(db.items()) == model
            db.check()
            db.close()
            with Store(path, _opener=disk.opener, sync=True, **helpers.SMALL) as again:
                assert dict(again.items()) == model
                again.check()
                again[b"later"] = b"x"
                model[b"later"] = b"x"
                again.check()
            disk.crash("drop")
            with Store(path, _opener=disk.opener, **helpers.SMALL) as again:
                assert dict(again.items()) == model
                again.check()
        except BaseException as exc:
            raise AssertionError(f"{delta} bytes from full: {exc!r}") from exc
        shutil.rmtree(root)
    return full


def test_a_full_disk_during_clear_delete_range_and_the_refill(tmp_path):
    def prepare(path: str) -> Dict[bytes, bytes]:
        with Store(path, **helpers.SMALL) as db:
            items = fill(db, 300, size=40)
            db[b"k00150"] = bytes(3000)  # an overflow chain
            items[b"k00150"] = bytes(3000)
        return items

    def workload(db: Store, model: Dict[bytes, bytes]) -> None:
        db.delete_range(b"k00020", b"k00200")
        for k in [k for k in model if b"k00020" <= k < b"k00200"]:
            del model[k]
        model.update(fill(db, 100, size=300, prefix=b"m"))  # the refill: pages off the list
        db.clear()
        model.clear()
        model.update(fill(db, 200, size=200, prefix=b"n"))

    full = _full_disk_sweep(str(tmp_path), prepare, workload, range(0, 40_000, 1500))
    assert full > 5


def test_a_full_disk_during_the_first_commit_after_a_format3_open(tmp_path):
    def prepare(path: str) -> Dict[bytes, bytes]:
        items = _format3_store(path)
        make_format3(path)
        return items

    def workload(db: Store, model: Dict[bytes, bytes]) -> None:
        db[b"new"] = b"value"  # converts the free list
        model[b"new"] = b"value"
        model.update(fill(db, 150, size=300, prefix=b"m"))

    full = _full_disk_sweep(str(tmp_path), prepare, workload, range(0, 30_000, 1100))
    assert full > 5


@pytest.mark.slow
def test_kill_9_during_clear_delete_range_and_the_refill_with_readers(tmp_path):
    """tests/crash_clear.py: a writer that fills, range-deletes and clears, SIGKILLed at random
    moments while two reader processes check every state they see; each reopen checks clean
    and holds the last acknowledged commit or the next."""
    import crash_clear

    stats = crash_clear.run(str(tmp_path), rounds=12, seed=7)
    assert stats["rounds"] == 12 and stats["acks"] > 50 and stats["reads"] > 20
