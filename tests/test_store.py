"""Store against a plain dict: every operation, reopen, compact, check() always.

The 512-byte page fixture makes splits, merges, overflow chains, cache spills
and checkpoints happen within a few dozen operations.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pagestore
from pagestore import snapshot as snapshot_mod
from pagestore import store as store_mod
from pagestore.errors import CorruptionError
from pagestore.store import Store, prefix_end

KEYS = st.binary(min_size=0, max_size=24) | st.sampled_from([b"", b"a", b"ab", b"b", b"\xff", b"\xff\xff", b"a\x00"])
VALUES = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=100, max_size=400),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(500, 5000), st.integers(0, 255)),
)
BOUND = st.none() | KEYS
#: A small log limit: checkpoints every few commits, deferred while snapshots are open.
WAL_LIMIT = 8 * 1024


def model_range(model, lo, hi, prefix, reverse):
    keys = sorted(model)
    out = []
    for k in keys:
        if lo is not None and k < lo:
            continue
        if hi is not None and k >= hi:
            continue
        if prefix is not None and not k.startswith(prefix):
            continue
        out.append((k, model[k]))
    return out[::-1] if reverse else out


class StoreMachine(RuleBasedStateMachine):
    page_size = 512
    mmap = True  # the data file mapped (the default); the NoMap classes read every page into the cache

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="ps-store-")
        self.path = os.path.join(self.dir, "t.ps")
        # Snapshots' caches as small as they go, so that their reads reach the log and
        # the data file (which checkpoints must then leave alone) rather than a copy.
        self._saved = (snapshot_mod.SNAPSHOT_CACHE_PAGES, store_mod._VIEW_NODE_CACHE)
        snapshot_mod.SNAPSHOT_CACHE_PAGES, store_mod._VIEW_NODE_CACHE = 1, 1
        self.db = Store(self.path, page_size=self.page_size, cache_size=self.page_size * 40, sync=False,
                        wal_limit=WAL_LIMIT, strict=True, mmap=self.mmap)
        self.model: dict = {}
        # open snapshots, each with the model as it was when it was taken
        self.snaps: list = []

    def teardown(self) -> None:
        for snap, _ in self.snaps:
            snap.close()
        self.db.close()
        snapshot_mod.SNAPSHOT_CACHE_PAGES, store_mod._VIEW_NODE_CACHE = self._saved
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(k=KEYS, v=VALUES)
    def put(self, k, v):
        self.db[k] = v
        self.model[k] = v

    @precondition(lambda self: self.model)
    @rule(data=st.data(), v=VALUES)
    def overwrite(self, data, v):
        k = data.draw(st.sampled_from(sorted(self.model)))
        self.db[k] = v
        self.model[k] = v

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        k = data.draw(st.sampled_from(sorted(self.model)))
        del self.db[k]
        del self.model[k]

    @rule(k=KEYS)
    def delete_missing(self, k):
        if k in self.model:
            return
        with pytest.raises(KeyError):
            del self.db[k]
        with pytest.raises(pagestore.PageStoreError):
            del self.db[k]

    @rule(k=KEYS)
    def get(self, k):
        assert self.db.get(k) == self.model.get(k)
        assert (k in self.db) == (k in self.model)

    @rule(lo=BOUND, hi=BOUND, prefix=st.none() | KEYS, reverse=st.booleans())
    def scan(self, lo, hi, prefix, reverse):
        want = model_range(self.model, lo, hi, prefix, reverse)
        assert list(self.db.items(lo, hi, prefix=prefix, reverse=reverse)) == want
        assert list(self.db.keys(lo, hi, prefix=prefix, reverse=reverse)) == [k for k, _ in want]

    @rule(lo=BOUND, hi=BOUND, prefix=st.none() | KEYS, reverse=st.booleans(), limit=st.integers(0, 80), k=KEYS)
    def scan_limited(self, lo, hi, prefix, reverse, limit, k):
        # limit=: the first ``limit`` entries of the range in its order (SQL's LIMIT), whether the
        # scan reads them in one hold of the lock (up to 64) or in runs
        want = model_range(self.model, lo, hi, prefix, reverse)[:limit]
        items = self.db.items(lo, hi, prefix=prefix, reverse=reverse, limit=limit)
        assert list(items) == want
        assert list(self.db.keys(lo, hi, prefix=prefix, reverse=reverse, limit=limit)) == [k for k, _ in want]
        assert list(self.db.values(lo, hi, prefix=prefix, reverse=reverse, limit=limit)) == [v for _, v in want]
        assert list(reversed(items)) == want[::-1]
        assert len(items) == len(want)
        assert (k in self.db.keys(lo, hi, prefix=prefix, reverse=reverse, limit=limit)) == (k in dict(want))

    @rule(puts=st.lists(st.tuples(KEYS, VALUES), max_size=8), dels=st.integers(0, 3), fail=st.booleans())
    def transaction(self, puts, dels, fail):
        staged = dict(self.model)
        victims = sorted(self.model)[:dels]

        class Boom(Exception):
            pass

        try:
            with self.db.transaction() as txn:
                for k, v in puts:
                    txn[k] = v
                    staged[k] = v
                    assert txn[k] == v
                for k in victims:
                    if k in staged:
                        del txn[k]
                        del staged[k]
                assert len(txn) == len(staged)
                assert list(txn.items()) == sorted(staged.items())
                assert list(txn.items(limit=3)) == sorted(staged.items())[:3]
                assert list(txn.keys(reverse=True, limit=2)) == sorted(staged, reverse=True)[:2]
                # Outside readers see only the committed state.
                assert len(self.db) == len(self.model)
                with self.db.snapshot() as snap:
                    assert dict(snap.items()) == self.model
                if fail:
                    raise Boom()
        except Boom:
            pass
        if not fail:
            self.model = staged

    # ---- snapshots: each equals the model as of its step, whatever happened since ----

    @precondition(lambda self: len(self.snaps) < 4)
    @rule()
    def take_snapshot(self):
        self.snaps.append((self.db.snapshot(), dict(self.model)))

    @precondition(lambda self: self.snaps)
    @rule(data=st.data(), lo=BOUND, hi=BOUND, prefix=st.none() | KEYS, reverse=st.booleans(), k=KEYS)
    def read_snapshot(self, data, lo, hi, prefix, reverse, k):
        snap, then = data.draw(st.sampled_from(self.snaps))
        assert len(snap) == len(then)
        want = model_range(then, lo, hi, prefix, reverse)
        assert list(snap.items(lo, hi, prefix=prefix, reverse=reverse)) == want
        assert list(snap.keys(lo, hi, prefix=prefix, reverse=reverse)) == [k for k, _ in want]
        for limit in (0, 1, 5, 70):
            assert list(snap.items(lo, hi, prefix=prefix, reverse=reverse, limit=limit)) == want[:limit]
        assert snap.get(k) == then.get(k) and (k in snap) == (k in then)
        if then:
            some = data.draw(st.sampled_from(sorted(then)))
            assert snap[some] == then[some]

    @precondition(lambda self: self.snaps)
    @rule(data=st.data())
    def close_snapshot(self, data):
        i = data.draw(st.integers(0, len(self.snaps) - 1))
        snap, then = self.snaps.pop(i)
        assert dict(snap.items()) == then
        snap.close()
        with pytest.raises(pagestore.StoreClosedError):
            snap.get(b"a")

    def _end_snapshots(self):
        """_end_snapshots: the store closed under the open snapshots; each now says so."""
        for snap, _ in self.snaps:
            with pytest.raises(pagestore.StoreClosedError):
                len(snap)
        self.snaps.clear()

    @rule()
    def reopen(self):
        self.db.close()
        self._end_snapshots()
        self.db = Store(self.path, cache_size=self.page_size * 40, sync=False, wal_limit=WAL_LIMIT, strict=True,
                        mmap=self.mmap)
        assert self.db._pager.page_size == self.page_size

    @rule()
    def crash_and_reopen(self):
        # Leave the log behind as a crash would: copy both files while open.
        crash = os.path.join(self.dir, "crash.ps")
        self.db._pager.wal.sync()
        shutil.copyfile(self.path, crash)
        shutil.copyfile(self.path + "-wal", crash + "-wal")
        other = Store(crash, mmap=self.mmap)
        try:
            assert dict(other.items()) == self.model
            other.check()
        finally:
            other.close()
            os.unlink(crash)

    @rule()
    def compact(self):
        if self.snaps:  # it would replace the file the snapshots read
            with pytest.raises(pagestore.PageStoreError, match="snapshots"):
                self.db.compact()
            return
        self.db.compact()

    @invariant()
    def consistent(self):
        assert len(self.db) == len(self.model)
        self.db.check()
        # every scan released its snapshot; only the machine's own are held
        assert len(self.db._pager.readers) == len(self.snaps)
        for snap, then in self.snaps:
            assert dict(snap.items()) == then


StoreMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestStore512 = StoreMachine.TestCase


class StoreMachine4096(StoreMachine):
    page_size = 4096


StoreMachine4096.TestCase.settings = settings(
    max_examples=15, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestStore4096 = StoreMachine4096.TestCase


class StoreMachineNoMap(StoreMachine):
    mmap = False


StoreMachineNoMap.TestCase.settings = StoreMachine.TestCase.settings
TestStore512NoMap = StoreMachineNoMap.TestCase


class StoreMachine4096NoMap(StoreMachine4096):
    mmap = False


StoreMachine4096NoMap.TestCase.settings = StoreMachine4096.TestCase.settings
TestStore4096NoMap = StoreMachine4096NoMap.TestCase


def test_prefix_end():
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


@pytest.mark.usefixtures("read_mode")
def test_api_basics(tmp_path):
    path = tmp_path / "db.ps"
    with pagestore.open(path) as db:
        db[b"k"] = bytearray(b"v")
        db[memoryview(b"m")] = memoryview(b"w")
        assert db[b"k"] == b"v" and db[b"m"] == b"w"
        assert len(db) == 2 and list(db) == [b"k", b"m"]
        with pytest.raises(TypeError, match="bytes-like"):
            db["text"] = b"x"
        with pytest.raises(TypeError, match="bytes-like"):
            db[b"x"] = 5
        with pytest.raises(ValueError, match="maximum"):
            db[b"x" * (db.max_key + 1)] = b""
        with pytest.raises(KeyError):
            db[b"missing"]
        assert db.max_key >= 1024
        st_ = db.stats()
        for key in ("page_size", "file_size", "page_count", "free_pages", "records", "tree_height",
                    "average_fill", "overflow_pages", "wal_size"):
            assert key in st_
        assert st_["records"] == 2
    with pytest.raises(pagestore.StoreClosedError):
        db[b"k"]
    with pagestore.open(path, readonly=True) as db:
        assert dict(db.items()) == {b"k": b"v", b"m": b"w"}
        with pytest.raises(pagestore.ReadOnlyError):
            db[b"z"] = b"z"


def test_limit_refuses_what_is_not_a_count(tmp_path):
    with pagestore.open(tmp_path / "l.ps") as db:
        db[b"a"] = b"1"
        for bad in ("3", 1.5, True):
            with pytest.raises(TypeError, match="limit"):
                db.items(limit=bad)
        with pytest.raises(ValueError, match="limit"):
            db.keys(limit=-1)
        assert list(db.values(limit=0)) == [] and len(db.items(limit=0)) == 0


@pytest.mark.usefixtures("read_mode")
def test_limited_scan_reads_at_its_first_item_in_one_lock_round(tmp_path, monkeypatch):
    # 512-byte pages: 50 entries span several leaves; still one read of values and no snapshot
    with Store(tmp_path / "r.ps", page_size=512, sync=False) as db:
        db.put_many((b"k%03d" % i, b"v%d" % i * (1 + i % 7)) for i in range(300))
        snaps, runs = [], []
        monkeypatch.setattr(Store, "snapshot", lambda self, f=Store.snapshot: snaps.append(1) or f(self))
        read_run = db._heap.read_run
        monkeypatch.setattr(db._heap, "read_run", lambda p, s: runs.append(len(p)) or read_run(p, s))
        it = iter(db.items(b"k100", limit=50))
        db[b"k1005"] = b"written before the first item"  # so it is seen
        first = next(it)
        db[b"k1006"] = b"written after it"  # so it is not
        got = [first] + list(it)
        want = [(b"k%03d" % i, b"v%d" % i * (1 + i % 7)) for i in range(100, 150)]
        want.insert(1, (b"k1005", b"written before the first item"))
        assert got == want[:50]
        assert runs == [50] and snaps == []
        assert list(db.keys(b"k299", limit=5)) == [b"k299"]
        # past 64, runs as an unlimited scan's (a snapshot), stopping at the limit
        assert [k for k in db.keys(b"k200", limit=70)] == [b"k%03d" % i for i in range(200, 270)]  # (list() asks len())
        assert snaps == [1]
        assert len(db._pager.readers) == 0


def test_list_of_a_range_view_scans_once_and_len_counts_right(tmp_path, monkeypatch):
    # list(view) asks len() first (the length hint); a range view's len() scanned the range's
    # keys, so list() read them twice. It is now the tree's count, one C call a leaf.
    with Store(tmp_path / "c.ps", page_size=512, sync=False) as db:
        keys = [b"k%03d" % i for i in range(0, 600, 2)]
        db.put_many((k, b"v" * (1 + len(k) % 5)) for k in keys)
        scans = []
        real_scan = Store._scan
        monkeypatch.setattr(Store, "_scan", lambda self, *a: scans.append(a) or real_scan(self, *a))
        got = list(db.items(b"k100", b"k500"))
        assert [k for k, _ in got] == [k for k in keys if b"k100" <= k < b"k500"]
        assert len(scans) == 1
        bounds = [None, b"", b"k", b"k000", b"k001", b"k0995", b"k299", b"k300", b"k5989", b"k598", b"k599", b"l"]
        with db.snapshot() as snap:
            db[b"k301"] = b"after the snapshot"
            for lo in bounds:
                for hi in bounds:
                    want = [k for k in keys if (lo is None or k >= lo) and (hi is None or k < hi)]
                    assert len(snap.keys(lo, hi)) == len(want), (lo, hi)
                    assert len(db.values(lo, hi, reverse=True)) == len(want) + (
                        (lo is None or b"k301" >= lo) and (hi is None or b"k301" < hi)), (lo, hi)
                    assert len(db.items(lo, hi, limit=7)) == min(7, len(want) + (
                        (lo is None or b"k301" >= lo) and (hi is None or b"k301" < hi))), (lo, hi)
            assert len(snap.keys(prefix=b"k29")) == 5
        scans.clear()
        assert len(db.keys(b"k1", b"k2")) == 50 and scans == []


def test_transaction_closed(tmp_path):
    with pagestore.open(tmp_path / "t.ps") as db:
        txn = db.transaction()
        txn[b"a"] = b"1"
        txn.commit()
        assert db[b"a"] == b"1"
        with pytest.raises(pagestore.TransactionClosedError):
            txn[b"b"] = b"2"


def test_transaction_clear_scans_the_store_once(tmp_path, monkeypatch):
    # MutableMapping.clear pops one item at a time, and each popitem started a new
    # merged scan that stepped over every key deleted so far: 8,000 keys took 13 s,
    # each doubling four times longer.
    with pagestore.open(str(tmp_path / "db"), keys="int", values="str") as db:
        db.update((i, "v%d" % i) for i in range(300))
        scans = []
        real_scan = Store._scan

        def counting_scan(self, *args):
            scans.append(args)
            return real_scan(self, *args)

        monkeypatch.setattr(Store, "_scan", counting_scan)
        with db.transaction() as txn:
            txn[1000] = "new"  # a key only the transaction has
            del txn[5]
            txn.clear()
            assert len(txn) == 0 and list(txn.items()) == [] and 7 not in txn and 1000 not in txn
            assert len(scans) <= 2  # the clear's one scan and the items() above
            assert len(db) == 300  # nothing committed before the block ends
            txn[7] = "kept"
        monkeypatch.undo()
        assert dict(db.items()) == {7: "kept"}
        db.check()


@pytest.mark.usefixtures("read_mode")
def test_space_is_reused(tmp_path):
    """Load, then delete and insert in rounds: the file stops growing."""
    import random

    rng = random.Random(7)
    path = tmp_path / "reuse.ps"
    sizes = []
    with pagestore.open(path, sync=False) as db:
        live = {}
        for round_ in range(8):
            with db.transaction() as txn:
                for _ in range(1500):
                    k = rng.randbytes(rng.randint(8, 24))
                    v = rng.randbytes(rng.choice([10, 50, 200, 900, 3000, 9000]))
                    txn[k] = v
                    live[k] = v
            if round_ >= 1:
                with db.transaction() as txn:
                    for k in rng.sample(sorted(live), 1500):
                        del txn[k]
                        del live[k]
            db._pager.checkpoint()
            sizes.append(db.stats()["page_count"])
        db.check()
        assert dict(db.items()) == live
    # After the first rounds the live data is steady, and so is the file.
    assert max(sizes[4:]) <= sizes[3] * 1.1, sizes


def test_strict_mode_checks_after_every_commit(tmp_path):
    # bbolt's StrictMode: a bookkeeping bug is caught at the commit that makes it
    for strict in (False, True):
        with pagestore.open(tmp_path / f"s{strict}.ps", strict=strict) as db:
            checks = []
            real = db.check
            db.check = lambda: checks.append(1) or real()  # type: ignore[method-assign]
            db[b"a"] = b"1"
            db[b"b"] = b"2"
            del db[b"a"]
            with db.transaction() as txn:
                txn[b"c"] = b"3"
            assert len(checks) == (4 if strict else 0)
            db._pager.meta.live_bytes += 1  # the kind of slip a layer could make
            if strict:
                with pytest.raises(CorruptionError, match="live bytes"):
                    db[b"d"] = b"4"
            else:
                db[b"d"] = b"4"  # committed silently: only an explicit check would see it
            assert db[b"d"] == b"4"  # the commit itself stands either way


def test_a_bytes_put_skips_the_conversions_and_others_still_convert(tmp_path, monkeypatch):
    # issue 23: ``db[k] = v`` with bytes of a store without codecs goes straight to the commit
    # (as ``db[k]`` does): _key and _value (as_bytes_like, a copy each) cost a lone put four
    # Python calls. Anything else (a bytearray, a bytes subclass, too long) still converts or raises.
    path = str(tmp_path / "db")
    with Store(path) as db:
        calls = []
        real_key, real_value = Store._key, Store._value
        monkeypatch.setattr(Store, "_key", lambda self, k: calls.append("key") or real_key(self, k))
        monkeypatch.setattr(Store, "_value", lambda self, v: calls.append("value") or real_value(self, v))
        db[b"k"] = b"v"
        assert calls == [] and db[b"k"] == b"v"

        class B(bytes):
            pass

        db[bytearray(b"a")] = B(b"b")
        assert calls == ["key", "value"] and db[b"a"] == b"b" and type(db[b"a"]) is bytes
        with pytest.raises(ValueError, match="exceeds the maximum"):
            db[b"x" * (db.max_key + 1)] = b"v"
        with pytest.raises(TypeError):
            db[b"k"] = 5
        assert db[b"k"] == b"v" and len(db) == 2
