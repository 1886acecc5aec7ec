"""A transaction's durable commit syncs the log after letting the write lock go (issue 21), on tests/faultfs.py.

The commit writes its frames under the lock with the sync deferred
(``Pager.commit(defer=True)``, ``pager.owed``), lets the write lock go, and only
then syncs (``CommitQueue.commit_holding`` with ``release``): the next
transaction applies while this one's sync runs. ``commit()`` returns only after
that sync; a failed sync poisons the store, so no transaction written after the
last good sync is ever acknowledged, and a reopen finds each whole or absent.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Tuple

import pytest

import faultfs
import helpers
from faultfs import Disk, PowerCut
from pagestore.errors import PageStoreError, StorePoisonedError
from pagestore.store import Store

OPTS = dict(helpers.SMALL, wal_limit=1 << 24, sync=True)


def _bump(db: Store, key: bytes) -> int:
    """_bump: one small transaction, a read-modify-write of the counter ``n`` and one put of ``key``
    holding the counter's new value; returns that value once the commit has returned."""
    with db.transaction() as txn:
        n = int(txn.get(b"n", b"0")) + 1
        txn[b"n"] = b"%d" % n
        txn[key] = b"%d" % n
    return n


def test_a_transaction_whose_deferred_sync_fails_raises_and_the_next_one_is_not_acknowledged(tmp_path, monkeypatch):
    """Transaction A's log sync blocks (a slow disk) after A has let the write lock go; meanwhile
    transaction B, on another thread, takes the lock and writes its frames to the log. Then A's
    sync fails (Linux: the dirty pages are dropped). A's commit raises that error, B's raises too
    (it is not acknowledged behind a failed sync), the store is poisoned, and after a power cut
    every acknowledged transaction is there, and A and B each whole or absent."""
    root = str(tmp_path)
    disk = Disk(root, seed=11)
    db = Store(os.path.join(root, "db.ps"), _opener=disk.opener, **OPTS)
    for i in range(20):
        _bump(db, b"k%03d" % i)
    in_sync, release, armed = helpers.block_then_fail_log_sync(monkeypatch)
    outcome: Dict[str, Any] = {}

    def txn(name: bytes) -> None:
        try:
            outcome[name.decode()] = _bump(db, name)
        except (OSError, PageStoreError) as exc:
            outcome[name.decode()] = exc

    armed["on"] = True
    a = threading.Thread(target=txn, args=(b"A",))
    b = threading.Thread(target=txn, args=(b"B",))
    try:
        a.start()
        assert in_sync.wait(10)
        b.start()
        # B takes the write lock A let go and writes its frames while A's sync runs.
        for _ in range(300):
            if armed["log_writes_while_blocked"]:
                break
            b.join(0.01)
        assert armed["log_writes_while_blocked"] > 0, "the next transaction did not apply while the sync ran"
        assert "B" not in outcome, "B returned before any sync covered its frames"
    finally:
        release.set()
        a.join(10)
        b.join(10)
    first = outcome["A"]
    assert isinstance(first, OSError) and "injected sync failure" in str(first)
    assert isinstance(outcome["B"], (OSError, StorePoisonedError)), "B acknowledged behind a failed sync"
    if isinstance(outcome["B"], StorePoisonedError):
        assert outcome["B"].original is first
    # Written, not acknowledged: both stay visible until the store is reopened, as single writes do.
    assert db[b"n"] == b"22" and db[b"A"] == b"21" and db[b"B"] == b"22"
    with pytest.raises(StorePoisonedError) as err:
        _bump(db, b"C")
    assert err.value.original is first
    with pytest.raises(StorePoisonedError):
        db[b"D"] = b"d"
    armed["restore"]()
    db.close()  # writes nothing, raises nothing
    disk.crash("drop")
    with Store(os.path.join(root, "db.ps"), _opener=disk.opener, **OPTS) as again:
        again.check()
        got = dict(again.items())
    n = int(got[b"n"])
    assert n in (20, 21, 22)
    assert all(got[b"k%03d" % i] == b"%d" % (i + 1) for i in range(20)), "an acknowledged transaction was lost"
    assert (b"A" in got) == (n >= 21) and (b"B" in got) == (n >= 22), f"a half transaction: {got}"


def _threaded_transactions(db: Store, threads: int, per_thread: int, acked: List[Tuple[bytes, int]]) -> None:
    """Durable small transactions from ``threads`` threads until the process is killed; records each acknowledged one."""
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(per_thread):
            key = b"t%d-%03d" % (t, i)
            try:
                n = _bump(db, key)
            except (PowerCut, PageStoreError, OSError):
                return
            with lock:
                acked.append((key, n))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()


def test_a_kill_at_every_io_event_of_threads_transactions_leaves_each_whole_or_absent(tmp_path):
    """Four threads of durable small transactions (counter read-modify-write plus one put); the
    process is killed at each I/O event in turn (faultfs "kill": every write made survives), so
    that cuts land inside a commit's frames and between a transaction's frames and its deferred
    sync. After a reopen every acknowledged transaction is there, and none is there in half:
    the counter says n, and exactly the transactions that set it to 1..n are present."""
    hits = 0
    k = 1
    while True:
        root = str(tmp_path / f"k{k}")
        os.makedirs(root)
        disk = Disk(root, seed=k, watch=("commit", "_finish"))
        db = Store(os.path.join(root, "db.ps"), _opener=disk.opener, **OPTS)
        start = disk.events
        disk.fail_at = start + k
        acked: List[Tuple[bytes, int]] = []
        _threaded_transactions(db, 4, 6, acked)
        if disk.fail_at is not None and disk.events < disk.fail_at:
            disk.fail_at = None
            db.close()
            break  # the workload ended before event k: every event has been cut at
        cut = disk.events
        if disk.tags.get(cut) == "_finish" and disk.kinds.get(cut) == "sync":
            hits += 1  # a transaction's sync outside the lock: its frames written, not yet synced
        disk.crash("kill")
        with Store(os.path.join(root, "db.ps"), _opener=disk.opener, **OPTS) as again:
            again.check()
            got = dict(again.items())
        n = int(got.get(b"n", b"0"))
        present = sorted(int(v) for key, v in got.items() if key != b"n")
        assert present == list(range(1, n + 1)), f"cut at event {k}: a half transaction (n={n}, present={present})"
        lost = [key for key, m in acked if got.get(key) != b"%d" % m]
        assert not lost, f"cut at event {k}: acknowledged transactions lost: {lost[:5]}"
        k += 1
    assert k > 20, f"only {k} I/O events"
    print(f"\nkilled at {k - 1} I/O events; {hits} between a transaction's frames and its sync")
    assert hits >= 3, f"only {hits} cuts landed on a transaction's sync outside the lock"
