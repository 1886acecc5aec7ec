"""Write transactions serialized by the store's write lock (issue 21), no re-entrant writes
(issue 20, finding 4), the atomic helpers and the one-commit bulk deletes."""
from __future__ import annotations

import os
import queue
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pagestore
from pagestore import codecs
from pagestore.errors import ReentrantWriteError, StoreLockedError


def _run_threads(targets: List[Callable[[], None]], limit: float = 60.0) -> None:
    """_run_threads runs each target in a thread and re-raises the first error any of them raised."""
    errors: List[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(limit)
        assert not th.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def _open(tmp_path: Any, name: str = "db", **kw: Any) -> pagestore.Store:
    kw.setdefault("page_size", 512)
    kw.setdefault("sync", False)
    return pagestore.open(os.path.join(str(tmp_path), name), **kw)


# ---- serialized transactions ----


def test_counter_four_threads_500_increments_each_is_exactly_2000(tmp_path):
    """The issue's first report: the counter ended at 1,697, not 2,000 (the later commit won)."""
    db = _open(tmp_path)
    db[b"n"] = b"0"

    def worker() -> None:
        for _ in range(500):
            with db.transaction() as t:
                t[b"n"] = b"%d" % (int(t[b"n"]) + 1)

    _run_threads([worker] * 4)
    assert db[b"n"] == b"2000"
    db.check()
    db.close()


def test_transfers_keep_the_total_and_equal_a_serial_replay(tmp_path):
    """4 threads move money between accounts with read-modify-write transactions; 2 more sum
    snapshots meanwhile. Every sum is the total, and the final balances are those of a serial
    replay of the committed transfers in their commit order."""
    db = _open(tmp_path, values="json")
    accounts = [b"acct%02d" % i for i in range(10)]
    db.update((a, 100) for a in accounts)
    total = 100 * len(accounts)
    committed: List[Tuple[bytes, bytes, int, bool]] = []  # in commit order: appended while the write lock is held
    stop = threading.Event()
    sums: List[int] = []

    def mover(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            src, dst = rng.sample(accounts, 2)
            amount = rng.randint(1, 60)
            with db.transaction() as t:
                ok = t[src] >= amount  # no overdraft: the decision depends on what was read
                if ok:
                    t[src] = t[src] - amount
                    t[dst] = t[dst] + amount
                committed.append((src, dst, amount, ok))

    def summer() -> None:
        while not stop.is_set():
            with db.snapshot() as snap:
                sums.append(sum(v for _, v in snap.items()))

    readers = [threading.Thread(target=summer) for _ in range(2)]
    for r in readers:
        r.start()
    try:
        _run_threads([lambda s=s: mover(s) for s in range(4)])
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert sums and all(s == total for s in sums), sorted(set(sums))
    replay = {a: 100 for a in accounts}
    for src, dst, amount, ok in committed:
        assert ok == (replay[src] >= amount), "a transfer decided on a balance another commit had changed"
        if ok:
            replay[src] -= amount
            replay[dst] += amount
    assert len(committed) == 600
    assert dict(db.items()) == replay
    db.check()
    db.close()


def test_a_reader_is_not_blocked_by_another_threads_open_transaction(tmp_path):
    db = _open(tmp_path)
    db[b"k"] = b"old"
    opened, done = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction() as t:
            t[b"k"] = b"new"
            opened.set()
            assert done.wait(10)

    th = threading.Thread(target=writer)
    th.start()
    try:
        assert opened.wait(10)
        t0 = time.monotonic()
        assert db[b"k"] == b"old"  # the committed state, not the open transaction's write
        assert dict(db.items()) == {b"k": b"old"} and len(db) == 1 and b"k" in db
        assert time.monotonic() - t0 < 1.0
    finally:
        done.set()
        th.join()
    assert db[b"k"] == b"new"
    db.close()


def test_single_writes_queued_behind_a_transaction_join_its_commit(tmp_path):
    """Group commit's leader waits for the write lock, not the other way round: the writes
    queued meanwhile commit with the transaction, one commit, and nothing deadlocks."""
    db = _open(tmp_path)
    opened, go = threading.Event(), threading.Event()

    def txn() -> None:
        with db.transaction() as t:
            t[b"t"] = b"1"
            opened.set()
            assert go.wait(10)

    th = threading.Thread(target=txn)
    th.start()
    assert opened.wait(10)
    lsn = db.snapshot().lsn
    writers = [threading.Thread(target=lambda i=i: db.__setitem__(b"w%d" % i, b"x")) for i in range(6)]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 10
    while len(db._commits._queue) < 6 and time.monotonic() < deadline:
        time.sleep(0.002)
    go.set()
    th.join(10)
    for w in writers:
        w.join(10)
    assert sorted(db.keys()) == [b"t"] + [b"w%d" % i for i in range(6)]
    with db.snapshot() as snap:
        assert snap.lsn == lsn + 1, "the six queued writes should have joined the transaction's commit"
    db.check()
    db.close()


def test_a_transaction_waiting_past_its_timeout_gets_store_locked(tmp_path):
    db = _open(tmp_path, timeout=0.1)
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with db.transaction() as t:
            t[b"a"] = b"1"
            held.set()
            assert done.wait(10)

    th = threading.Thread(target=holder)
    th.start()
    assert held.wait(10)
    outcomes: List[Any] = []

    def waiter() -> None:
        t0 = time.monotonic()
        for attempt in (lambda: db.transaction(timeout=0.2), lambda: db.transaction(), lambda: db.__setitem__(b"b", b"2"),
                        lambda: db.update({b"c": b"3"}), lambda: db.clear()):
            t0 = time.monotonic()
            try:
                attempt()
                outcomes.append("no error")
            except StoreLockedError:
                outcomes.append(time.monotonic() - t0)

    try:
        _run_threads([waiter])
    finally:
        done.set()
        th.join()
    assert all(isinstance(o, float) for o in outcomes), outcomes  # every attempt timed out
    assert 0.19 <= outcomes[0] < 2.0 and all(0.09 <= o < 2.0 for o in outcomes[1:]), outcomes
    assert dict(db.items()) == {b"a": b"1"}
    with db.transaction(timeout=0) as t:  # free now: a zero timeout does not wait, and need not
        t[b"d"] = b"4"
    db.close()


def test_a_transaction_may_commit_on_another_thread(tmp_path):
    """The lock belongs to the transaction, not the thread: committing it elsewhere does not wait for itself."""
    db = _open(tmp_path, timeout=1.0)
    t = db.transaction()
    t[b"a"] = b"1"
    _run_threads([t.commit])
    assert dict(db.items()) == {b"a": b"1"}
    with db.transaction(timeout=0) as t2:  # released
        t2[b"b"] = b"2"
    db.close()


def test_a_dropped_transaction_lets_the_lock_go(tmp_path):
    db = _open(tmp_path, timeout=1.0)
    t = db.transaction()
    t[b"a"] = b"1"
    del t  # neither committed nor rolled back
    with db.transaction(timeout=0) as t2:
        t2[b"b"] = b"2"
    assert dict(db.items()) == {b"b": b"2"}
    db.close()


def test_open_checks_its_timeout(tmp_path):
    with pytest.raises(TypeError):
        _open(tmp_path, timeout="5")
    with pytest.raises(ValueError):
        _open(tmp_path, timeout=-1)
    db = _open(tmp_path, timeout=None)
    assert db.timeout is None
    db.close()
    db = _open(tmp_path, timeout=float("inf"))
    assert db.timeout is None
    with db.transaction(timeout=float("inf")) as t:
        t[b"a"] = b"1"
    db.close()


# ---- no re-entrant writes (issue 20, finding 4) ----


def test_a_write_through_db_inside_the_threads_own_transaction_raises_and_nothing_commits(tmp_path):
    db = _open(tmp_path)
    db[b"a"] = b"0"
    with pytest.raises(ReentrantWriteError, match="write through the transaction"):
        with db.transaction() as t:
            t[b"a"] = b"1"
            t[b"b"] = b"1"
            db[b"c"] = b"1"
    for call in (lambda: db.__delitem__(b"a"), lambda: db.update({b"c": b"1"}), lambda: db.put_many({b"c": b"1"}),
                 lambda: db.clear(), lambda: db.delete_range(b"a"), lambda: db.incr(b"n"), lambda: db.pop(b"a"),
                 lambda: db.setdefault(b"z", b"1"), lambda: db.popitem(), lambda: db.transaction(), lambda: db.compact()):
        with db.transaction() as t:
            t[b"x"] = b"1"
            with pytest.raises(ReentrantWriteError):
                call()
            t.rollback()
    assert dict(db.items()) == {b"a": b"0"}
    db.check()
    db.close()


@pytest.mark.parametrize("populated", [True, False], ids=["item-by-item", "bulk"])
def test_update_whose_input_writes_to_the_store_commits_nothing(tmp_path, populated):
    """Today an inner ``db[k] = v`` from update()'s input committed the outer, half-built
    commit (2,500 of 5,000 items), and on an empty store (the bulk path) corrupted it."""
    path = os.path.join(str(tmp_path), "db")
    db = pagestore.open(path, page_size=512, sync=True)
    if populated:
        db[b"existing"] = b"x"
    before = dict(db.items())

    def items() -> Any:
        for i in range(5000):
            if i == 2500:
                db[b"inner"] = b"y"
            yield b"k%05d" % i, b"v" * 40

    with pytest.raises(ReentrantWriteError):
        db.update(items())
    assert dict(db.items()) == before
    db.check()
    db.close()
    with pagestore.open(path) as again:
        assert dict(again.items()) == before
        again.check()
        again.update((b"k%05d" % i, b"v") for i in range(100))  # and the store is usable after
        again.check()


def test_a_write_from_another_thread_inside_a_transaction_waits_its_turn(tmp_path):
    """Only the thread that holds the lock is refused; another thread's write waits and lands after."""
    db = _open(tmp_path)
    done: List[str] = []
    with db.transaction() as t:
        t[b"a"] = b"1"
        th = threading.Thread(target=lambda: (db.__setitem__(b"a", b"2"), done.append("w")))
        th.start()
        time.sleep(0.05)
        assert done == []
    th.join(10)
    assert done == ["w"] and db[b"a"] == b"2"
    db.close()


# ---- atomic helpers ----


def test_setdefault_pop_incr_from_8_threads_match_a_model(tmp_path):
    db = _open(tmp_path, values="json")
    db.update((b"p%03d" % i, i) for i in range(200))
    popped: List[Tuple[bytes, int]] = []
    defaults: Dict[bytes, List[int]] = {}
    lock = threading.Lock()

    def worker(t: int) -> None:
        rng = random.Random(t)
        for i in range(150):
            op = rng.randrange(3)
            if op == 0:
                k = b"c%d" % rng.randrange(4)
                db.incr(k, 2)
            elif op == 1:
                k = b"s%d" % rng.randrange(10)
                got = db.setdefault(k, t)
                with lock:
                    defaults.setdefault(k, []).append(got)
            else:
                k = b"p%03d" % rng.randrange(200)
                v = db.pop(k, None)
                if v is not None:
                    with lock:
                        popped.append((k, v))

    _run_threads([lambda t=t: worker(t) for t in range(8)])
    # every increment counted: the counters hold 2 x the number of incr calls
    calls = 0
    for t in range(8):
        rng = random.Random(t)
        for i in range(150):
            op = rng.randrange(3)
            calls += op == 0
            rng.randrange(4 if op == 0 else 10 if op == 1 else 200)
    assert sum(db.get(b"c%d" % i, 0) for i in range(4)) == 2 * calls
    # setdefault: every caller of a key got the one value stored
    for k, got in defaults.items():
        assert len(set(got)) == 1 and db[k] == got[0]
    # pop: each popped once, with its value, and gone
    assert len({k for k, _ in popped}) == len(popped)
    assert all(v == int(k[1:]) for k, v in popped)
    assert all(k not in db for k, _ in popped)
    assert len([k for k in db.keys(prefix=b"p")]) == 200 - len(popped)
    db.check()
    db.close()


def test_incr_by_value_codec(tmp_path):
    with _open(tmp_path, "b") as db:
        assert db.incr(b"n") == 1 and db.incr(b"n", 41) == 42 and db[b"n"] == b"42"
        assert db.incr(b"m", -1, default=10) == 9
        db[b"bad"] = b"x1"
        with pytest.raises(codecs.CodecError, match="not an int"):
            db.incr(b"bad")
        with pytest.raises(TypeError):
            db.incr(b"n", 1.5)  # type: ignore[arg-type]
        assert db[b"n"] == b"42"
    with _open(tmp_path, "s", values="str") as db:
        assert db.incr(b"n", 3) == 3 and db[b"n"] == "3"
    with _open(tmp_path, "j", values="json") as db:
        assert db.incr(b"n", 2**70) == 2**70 and db[b"n"] == 2**70
        db[b"f"] = 1.5
        with pytest.raises(codecs.CodecError):
            db.incr(b"f")
    pytest.importorskip("numpy")
    with _open(tmp_path, "np", values="numpy") as db:
        with pytest.raises(codecs.CodecError, match="values are ints"):
            db.incr(b"n")


def test_helpers_are_one_commit_each(tmp_path):
    db = _open(tmp_path)
    db.update({b"a": b"1", b"b": b"2"})

    def lsn() -> int:
        with db.snapshot() as s:
            return s.lsn

    n = lsn()
    assert db.setdefault(b"c", b"3") == b"3" and lsn() == n + 1
    assert db.setdefault(b"c", b"9") == b"3" and lsn() == n + 1  # present: no commit
    assert db.pop(b"a") == b"1" and lsn() == n + 2
    assert db.popitem() == (b"b", b"2") and lsn() == n + 3
    assert db.pop(b"zz", None) is None and lsn() == n + 3
    with pytest.raises(KeyError):
        db.pop(b"zz")
    assert db.popitem() == (b"c", b"3")
    with pytest.raises(KeyError):
        db.popitem()
    db.update({b"x": b"1", b"y": b"2"})
    assert lsn() == n + 5
    db.check()
    db.close()


# ---- clear and delete_range ----


def _fill(db: pagestore.Store, n: int, rng: random.Random) -> Dict[bytes, bytes]:
    model = {}
    for i in range(n):
        k = b"k%05d" % i
        size = rng.choice([1, 10, 100, 300, 2000])  # 2000 > half of a 512-byte page: overflow chains
        model[k] = bytes([i % 251]) * size
    db.update(model)
    return model


@pytest.mark.usefixtures("read_mode")
def test_clear_is_one_commit_frees_every_page_and_keeps_snapshots(tmp_path):
    db = _open(tmp_path)
    model = _fill(db, 3000, random.Random(1))
    with db.snapshot() as before:
        pages = db.stats()["page_count"]
        lsn = before.lsn
        t0 = time.perf_counter()
        db.clear()
        elapsed = time.perf_counter() - t0
        assert len(db) == 0 and list(db.items()) == []
        assert dict(before.items()) == model  # a snapshot taken before still reads every record
    with db.snapshot() as after:
        assert after.lsn == lsn + 1
    counts = db.check()
    assert counts["records"] == 0 and counts["tree_pages"] == 0 and counts["heap_pages"] == 0
    assert set(db.stats()["page_types"]) == {"free", "fsm"}  # every page of records went to the free list
    assert elapsed < 2.0
    _fill(db, 3000, random.Random(1))  # the space is reused: the file does not grow
    assert db.stats()["page_count"] <= pages
    db.check()
    db.close()


@pytest.mark.usefixtures("read_mode")
def test_delete_range_matches_a_model(tmp_path):
    db = _open(tmp_path)
    rng = random.Random(2)
    model = _fill(db, 2000, rng)
    for _ in range(12):
        a, b = sorted(rng.sample(range(2100), 2))
        lo, hi = b"k%05d" % a, b"k%05d" % b
        with db.snapshot() as s:
            lsn = s.lsn
        gone = [k for k in model if lo <= k < hi]
        assert db.delete_range(lo, hi) == len(gone)
        for k in gone:
            del model[k]
        with db.snapshot() as s:
            assert s.lsn == lsn + (1 if gone else 0)
        db.check()
        assert len(db) == len(model)
    assert dict(db.items()) == model
    for k in [b"k00%d" % d for d in range(10)]:
        gone = [x for x in model if x.startswith(k)]
        assert db.delete_range(prefix=k) == len(gone)
        for x in gone:
            del model[x]
    assert db.delete_range(start=b"k01500") == len([k for k in model if k >= b"k01500"])
    model = {k: v for k, v in model.items() if k < b"k01500"}
    assert db.delete_range(stop=b"k01000") == len([k for k in model if k < b"k01000"])
    model = {k: v for k, v in model.items() if k >= b"k01000"}
    assert dict(db.items()) == model
    db.check()
    assert db.delete_range() == len(model) and len(db) == 0
    db.check()
    db.close()


@pytest.mark.usefixtures("read_mode")
def test_bulk_deletes_never_delete_key_by_key(tmp_path, monkeypatch):
    """clear() and delete_range() go a page and a leaf at a time: the one-key paths are never taken."""
    db = _open(tmp_path)
    model = _fill(db, 2000, random.Random(3))

    def refuse(*args: Any) -> None:
        raise AssertionError("a bulk delete took the one-key path")

    monkeypatch.setattr(db._tree, "delete", refuse)
    monkeypatch.setattr(db._heap, "delete", refuse)
    monkeypatch.setattr(db, "_delete", refuse)
    assert db.delete_range(b"k00100", b"k01900") == 1800
    assert list(db.keys()) == [k for k in model if not b"k00100" <= k < b"k01900"]
    db.check()
    db.clear()
    assert len(db) == 0
    db.check()
    db.close()


def test_delete_range_with_codecs_and_rollback_on_error(tmp_path):
    db = _open(tmp_path, keys="int", values="json")
    db.update((i, {"i": i}) for i in range(1000))
    assert db.delete_range(100, 900) == 800
    assert list(db.keys()) == list(range(100)) + list(range(900, 1000))
    with pytest.raises(ValueError):
        db.delete_range(prefix=1)  # int keys have no prefixes; nothing deleted
    assert len(db) == 200
    db.check()
    db.close()


# ---- transactions interleaved at chosen points, against a serial model ----


class _Worker:
    """_Worker is a thread that runs the calls it is sent, one at a time, and reports each outcome."""

    def __init__(self) -> None:
        self.inbox: "queue.Queue[Optional[Callable[[], Any]]]" = queue.Queue()
        self.outbox: "queue.Queue[Tuple[bool, Any]]" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            fn = self.inbox.get()
            if fn is None:
                return
            try:
                self.outbox.put((True, fn()))
            except BaseException as exc:
                self.outbox.put((False, exc))

    def send(self, fn: Callable[[], Any]) -> None:
        self.inbox.put(fn)

    def result(self, wait: float = 20.0) -> Tuple[bool, Any]:
        return self.outbox.get(timeout=wait)

    def call(self, fn: Callable[[], Any]) -> Any:
        self.send(fn)
        ok, value = self.result()
        if not ok:
            raise value
        return value


KEYS = [b"a", b"b", b"c"]


class InterleavedTransactions(RuleBasedStateMachine):
    """Three threads, each opening transactions that read and write three counters, and single
    writes from threads with no transaction, interleaved step by step as hypothesis chooses. The
    model is serial: the store's committed state; a transaction sees it as of its start (nothing
    else may commit while it is open) plus its own writes; a single write that arrives while a
    transaction is open commits after it."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.db = pagestore.open(os.path.join(self.dir, "db"), page_size=512, sync=False, values="json", timeout=None)
        self.db.update({k: 0 for k in KEYS})
        self.committed = {k: 0 for k in KEYS}
        self.workers = [_Worker() for _ in range(3)]
        self.txn: List[Any] = [None] * 3  # the open transaction of each thread
        self.mine: List[Dict[bytes, int]] = [{} for _ in range(3)]  # its writes so far
        self.holder: Optional[int] = None
        self.pending: Optional[Tuple[int, bytes, int]] = None  # a single write waiting for the lock
        self.waiter: Optional[int] = None  # a thread whose db.transaction() waits for the lock

    def teardown(self) -> None:
        for i, w in enumerate(self.workers):
            if self.txn[i] is not None:
                w.call(self.txn[i].rollback)
        if self.pending is not None:
            self.workers[self.pending[0]].result()
        if self.waiter is not None:
            ok, txn = self.workers[self.waiter].result()
            assert ok, txn
            self.workers[self.waiter].call(txn.rollback)
        for w in self.workers:
            w.inbox.put(None)
            w.thread.join(10)
        self.db.check()
        self.db.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    def _free(self, t: int) -> bool:
        return self.txn[t] is None and (self.pending is None or self.pending[0] != t) and self.waiter != t

    @rule(t=st.integers(0, 2))
    def begin_and_wait(self, t: int) -> None:
        """A transaction that waits for the holder's end, then reads what the holder committed."""
        if not self._free(t) or self.holder is None or self.waiter is not None or self.pending is not None:
            return
        self.workers[t].send(lambda: self.db.transaction(timeout=None))
        time.sleep(0.002)
        assert self.workers[t].outbox.empty(), "a transaction began while another was open"
        self.waiter = t

    @rule(t=st.integers(0, 2))
    def begin(self, t: int) -> None:
        if not self._free(t):
            return
        self.workers[t].send(lambda: self.db.transaction(timeout=0))
        ok, value = self.workers[t].result()
        if self.holder is not None:
            assert not ok and isinstance(value, StoreLockedError), value
            return
        assert ok, value
        self.txn[t], self.mine[t], self.holder = value, {}, t

    @rule(t=st.integers(0, 2), key=st.sampled_from(KEYS), delta=st.integers(-3, 3))
    def read_modify_write(self, t: int, key: bytes, delta: int) -> None:
        txn = self.txn[t]
        if txn is None:
            return

        def rmw() -> int:
            old = txn[key]
            txn[key] = old + delta
            return int(old)

        old = self.workers[t].call(rmw)
        assert old == self.mine[t].get(key, self.committed[key])
        self.mine[t][key] = old + delta

    @rule(t=st.integers(0, 2))
    def commit(self, t: int) -> None:
        txn = self.txn[t]
        if txn is None:
            return
        self.workers[t].call(txn.commit)
        self.committed.update(self.mine[t])
        self._end(t)

    @rule(t=st.integers(0, 2))
    def rollback(self, t: int) -> None:
        txn = self.txn[t]
        if txn is None:
            return
        self.workers[t].call(txn.rollback)
        self._end(t)

    def _end(self, t: int) -> None:
        self.txn[t], self.mine[t], self.holder = None, {}, None
        if self.pending is not None:  # the single write that waited commits now (or joined the commit)
            w, key, value = self.pending
            ok, err = self.workers[w].result()
            assert ok, err
            self.committed[key] = value
            self.pending = None
        if self.waiter is not None:  # the waiting transaction holds the lock now
            w, self.waiter = self.waiter, None
            ok, txn = self.workers[w].result()
            assert ok, txn
            self.txn[w], self.mine[w], self.holder = txn, {}, w

    @rule(t=st.integers(0, 2), key=st.sampled_from(KEYS), value=st.integers(0, 9))
    def single_write(self, t: int, key: bytes, value: int) -> None:
        if self.pending is not None or self.waiter == t or (self.waiter is not None and self.txn[t] is None):
            return
        if self.txn[t] is not None:  # its own transaction is open: refused, nothing written
            ok, err = self._single(t, key, value, wait=True)
            assert not ok and isinstance(err, ReentrantWriteError), err
            return
        if self.holder is None:
            ok, err = self._single(t, key, value, wait=True)
            assert ok, err
            self.committed[key] = value
            return
        self._single(t, key, value, wait=False)  # waits for the holder (a leader waiting for the write lock)
        deadline = time.monotonic() + 10
        while not self.db._commits._queue and time.monotonic() < deadline:
            time.sleep(0.001)
        assert self.db._commits._queue, "the single write should be queued behind the transaction"
        self.pending = (t, key, value)

    def _single(self, t: int, key: bytes, value: int, wait: bool) -> Tuple[bool, Any]:
        self.workers[t].send(lambda: self.db.__setitem__(key, value))
        return self.workers[t].result() if wait else (True, None)

    @rule(t=st.integers(0, 2))
    def read_outside(self, t: int) -> None:
        """A read from a thread with no transaction sees the committed state and is never blocked."""
        if not self._free(t):
            return
        got = self.workers[t].call(lambda: ({k: self.db[k] for k in KEYS}, dict(self.db.items())))
        assert got[0] == self.committed and got[1] == self.committed

    @invariant()
    def one_holder(self) -> None:
        assert sum(t is not None for t in self.txn) <= 1


TestInterleavedTransactions = InterleavedTransactions.TestCase
TestInterleavedTransactions.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_incr_reads_and_writes_only_plain_decimal(tmp_path):
    """incr on a "bytes" or "str" store takes the value as b"%d" writes it, nothing looser, and a sum
    past int->str's digit limit is a CodecError with the value left alone, not a ValueError from inside
    the commit (which would also fail every write sharing its group commit)."""
    with _open(tmp_path, "b") as db:
        for loose in (b" 5\n", b"+5", b"1_000", b"5 "):
            db[b"n"] = loose
            with pytest.raises(codecs.CodecError, match="not an int"):
                db.incr(b"n")
            assert db[b"n"] == loose
        db[b"n"] = b"-7"
        assert db.incr(b"n") == -6 and db[b"n"] == b"-6"
        with pytest.raises(codecs.CodecError, match="cannot be stored"):
            db.incr(b"n", 10 ** 5000)
        assert db[b"n"] == b"-6"
        db.check()
    with _open(tmp_path, "j", values="json") as db:
        db[b"n"] = 1
        with pytest.raises(codecs.CodecError, match="cannot be stored"):
            db.incr(b"n", 10 ** 5000)
        assert db[b"n"] == 1


@pytest.mark.parametrize("fail_at", [1, 40, 700])
def test_an_apply_that_fails_after_in_place_edits_leaves_the_committed_store(tmp_path, fail_at):
    """A transaction's apply changes leaves and heap pages in place in their frames (inserts at
    lookup's index, lean removes and record deletes); when it fails part way, the rollback must
    leave every committed page, cached node and free-space entry as the last commit left them."""
    rng = random.Random(fail_at)
    path = str(tmp_path / "db")
    with pagestore.open(path, page_size=512, sync=False) as db:
        model = {rng.randbytes(rng.randint(1, 20)): rng.randbytes(rng.choice([0, 10, 100, 300, 2000]))
                 for _ in range(1500)}
        with db.transaction() as txn:
            for k, v in model.items():
                txn[k] = v
        for k in list(model)[:30]:
            _ = db[k]  # leaves and heap pages in the caches, clean
        heap = db._heap
        calls = {"n": 0}
        insert = heap.insert

        def failing(value: bytes) -> Any:
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError("injected")
            return insert(value)

        heap.insert = failing  # type: ignore[method-assign]
        doomed = list(model)[::3]
        with pytest.raises(OSError):
            with db.transaction() as txn:
                for k in doomed:
                    del txn[k]  # record deletes and leaf removes, in place
                for _ in range(1000):
                    txn[rng.randbytes(rng.randint(1, 20))] = rng.randbytes(rng.choice([0, 10, 100, 300]))
        heap.insert = insert  # type: ignore[method-assign]
        db.check()
        assert dict(db.items()) == model
        with db.transaction() as txn:  # and the store writes on from there
            for k in doomed:
                del txn[k]
                del model[k]
        db.check()
        assert dict(db.items()) == model
    with pagestore.open(path, page_size=512) as db:
        db.check()
        assert dict(db.items()) == model


def test_a_transactions_delete_of_a_bytes_key_skips_the_key_conversions(tmp_path, monkeypatch):
    # del txn[k] of bytes on a store without codecs: no Store._key (its conversions and copy
    # were a share of every buffered delete of a churn, issue 23), and a key missing, deleted
    # already in the transaction or put in it answers as before.
    db = pagestore.open(tmp_path / "s.ps", create=True)
    db.update({b"a": b"1", b"b": b"2", b"c": b"3"})
    calls = []
    real = pagestore.Store._key

    def spy(self, key):
        calls.append(key)
        return real(self, key)

    monkeypatch.setattr(pagestore.Store, "_key", spy)
    with db.transaction() as txn:
        del txn[b"a"]
        with pytest.raises(KeyError):
            del txn[b"a"]  # deleted already in this transaction
        with pytest.raises(KeyError):
            del txn[b"zz"]  # never there
        txn[b"new"] = b"4"
        del txn[b"new"]  # put in this transaction
        del txn[bytearray(b"b")]  # not bytes: converted, as before
    assert calls == [bytearray(b"b")]
    monkeypatch.undo()
    assert dict(db.items()) == {b"c": b"3"}
    db.check()
    db.close()


def test_a_large_transactions_overflow_chains_go_straight_to_the_data_file(tmp_path, monkeypatch):
    # Once a durable transaction has allocated DIRECT_CHAINS pages for values, its chains are
    # built in one C call and written into the data file (Pager.write_run), as its commit
    # writes its new pages there anyway (issue 23: a quarter less CPU per large value); a
    # small transaction's chain stays in the log (a direct write would cost it a second sync).
    # Either way every value reads back, before and after a reopen, and check() is clean.
    from pagestore.pager import Pager

    runs = []
    real = Pager.write_run

    def spy(self, first, pages):
        runs.append(first)
        return real(self, first, pages)

    monkeypatch.setattr(Pager, "write_run", spy)
    path = tmp_path / "s.ps"
    db = pagestore.open(path, create=True, sync=True, page_size=1024)
    rng = random.Random(5)
    model = {}
    with db.transaction() as txn:  # small: one chain, logged
        txn[b"one"] = model[b"one"] = rng.randbytes(3000)
    assert runs == []
    with db.transaction() as txn:
        for i in range(100):  # past DIRECT_CHAINS pages of values
            k = b"k%03d" % i
            txn[k] = model[k] = rng.randbytes(rng.choice([10, 3000, 5000]))
    assert runs, "no chain of the large transaction went straight to the data file"
    assert dict(db.items()) == model
    del runs[:]

    def failing():  # a stream into a store with records: one put each, rolled back at the raise
        for i in range(100):
            yield b"r%03d" % (99 - i), rng.randbytes(5000)
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        db.update(failing())
    assert runs  # rolled back after its chains were written
    assert dict(db.items()) == model
    db.check()
    with db.transaction() as txn:  # the rolled-back pages are numbered again
        for i in range(100):
            k = b"n%03d" % i
            txn[k] = model[k] = rng.randbytes(rng.choice([10, 3000, 5000]))
    assert dict(db.items()) == model
    db.check()
    db.close()
    db = pagestore.open(path)
    assert dict(db.items()) == model
    db.check()
    db.close()
