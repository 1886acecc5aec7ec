"""Power loss at every I/O event of a small workload, through tests/faultfs.py.

The workload (20 transactions on 512-byte pages with a 32-page cache and a
6 KiB log limit, so overflow chains, cache spills, checkpoints, a
close/reopen and a compaction all happen) runs once per cut point k, stopping with exactly
I/O events 1..k-1 done. The disk then loses its unsynced writes ("drop"),
keeps a torn prefix of them ("tear"), or a random subset of sectors
("scramble"); the durable files are written out as real files and reopened
with the real pagestore. The store must pass check() and hold exactly the
state after transaction j, for j the last acknowledged commit or the one in
flight: no acknowledged commit lost, nothing partial visible.
"""
from __future__ import annotations

import errno
import os
import random
import shutil
from typing import Dict, List, Optional, Tuple

import pytest

from faultfs import Disk, PowerCut
from pagestore.store import Store

#: every test here runs with the data file mapped and without (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("read_mode")

PAGE = 512
OPTS = dict(page_size=PAGE, cache_size=PAGE * 32, wal_limit=6 * 1024, sync=True)

Op = Tuple[bytes, Optional[bytes]]  # (key, value); None deletes


def build_txns(seed: int, n: int = 20) -> List[List[Op]]:
    """build_txns returns ``n`` transactions of puts, overwrites and deletes over 40 keys.

    Transaction 6 writes five 5 KB values at once (about 55 overflow pages,
    more than the cache holds), so it spills; transaction 13 deletes them.
    """
    rng = random.Random(seed)
    keys = [b"key%03d" % i for i in range(40)]
    live: Dict[bytes, bytes] = {}
    txns: List[List[Op]] = []
    for t in range(n):
        ops: List[Op] = []
        if t == 6:
            ops = [(b"big%d" % i, rng.randbytes(5000)) for i in range(5)]
        elif t == 13:
            ops = [(b"big%d" % i, None) for i in range(5)]
        else:
            for _ in range(rng.choice([1, 1, 2, 3, 5, 8])):
                small = sorted(k for k in live if k.startswith(b"key"))
                if small and rng.random() < 0.25:
                    k = rng.choice(small)
                    ops.append((k, None))
                    live.pop(k)
                else:
                    k = rng.choice(keys)
                    v = b"%d:" % t + rng.randbytes(rng.choice([0, 7, 60, 200, 300, 700, 1400, 2600]))
                    ops.append((k, v))
                    live[k] = v
        for k, v in ops:
            if v is None:
                live.pop(k, None)
            else:
                live[k] = v
        txns.append(ops)
    return txns


def model_states(txns: List[List[Op]]) -> List[Dict[bytes, bytes]]:
    """model_states[j] is the expected contents after the first j transactions."""
    states = [{}]
    for ops in txns:
        s = dict(states[-1])
        for k, v in ops:
            if v is None:
                s.pop(k, None)
            else:
                s[k] = v
        states.append(s)
    return states


def run_workload(path: str, txns: List[List[Op]], opener, acked: List[int]) -> None:
    """run_workload applies ``txns``; after each commit returns it appends the count to ``acked``.

    Single-op transactions go through ``db[k] = v`` / ``del db[k]``, the rest
    through ``db.transaction()``. The store is closed and reopened halfway,
    and compacted (rewritten into a new file renamed over it) near the end.
    """
    db = Store(path, _opener=opener, **OPTS)
    for i, ops in enumerate(txns):
        if i == len(txns) // 2:
            db.close()
            db = Store(path, _opener=opener, **OPTS)
        if len(ops) == 1:
            k, v = ops[0]
            if v is None:
                del db[k]
            else:
                db[k] = v
        else:
            with db.transaction() as txn:
                for k, v in ops:
                    if v is None:
                        del txn[k]
                    else:
                        txn[k] = v
        acked.append(i + 1)
        if i == len(txns) - 4:
            db.compact()  # a new file renamed over the old one, mid-workload
    db.close()


def verify_reopened(path: str, states: List[Dict[bytes, bytes]], acked: int) -> int:
    """verify_reopened opens the store at ``path`` and returns j, the transaction count it holds.

    Fails unless check() passes and the contents equal states[acked] or
    states[acked + 1].
    """
    with Store(path, **OPTS) as db:
        db.check()
        got = dict(db.items())
        assert len(db) == len(got)
        for k, v in got.items():
            assert db[k] == v
    for j in (acked, acked + 1):
        if j < len(states) and got == states[j]:
            return j
    close = min(range(len(states)), key=lambda j: len(set(got.items()) ^ set(states[j].items())))
    raise AssertionError(
        f"reopened state matches no committed state at or after acknowledged txn {acked} "
        f"(closest: txn {close}, {len(set(got.items()) ^ set(states[close].items()))} entries differ)"
    )


def count_events(tmp: str, txns) -> int:
    root = os.path.join(tmp, "count")
    os.makedirs(root)
    disk = Disk(root)
    run_workload(os.path.join(root, "db.ps"), txns, disk.opener, [])
    return disk.events


def cut_once(tmp: str, txns, states, k: int, mode: str, seed: int) -> Tuple[int, int]:
    """cut_once runs the workload with power cut at I/O event k; returns (acked, j)."""
    root = os.path.join(tmp, f"run-{mode}-{k}")
    os.makedirs(root)
    disk = Disk(root, seed=seed * 100003 + k, fail_at=k)
    acked: List[int] = [0]
    try:
        run_workload(os.path.join(root, "db.ps"), txns, disk.opener, acked)
    except PowerCut:
        pass
    else:
        raise AssertionError(f"workload finished before I/O event {k}")
    disk.crash(mode)
    after = os.path.join(tmp, f"after-{mode}-{k}")
    disk.materialise(after)
    try:
        j = verify_reopened(os.path.join(after, "db.ps"), states, acked[-1])
    except BaseException as exc:
        raise AssertionError(f"power cut at I/O event {k} ({mode}, seed {seed}): {exc!r}") from exc
    finally:
        shutil.rmtree(root)
        shutil.rmtree(after)
    return acked[-1], j


def sweep(tmp: str, seed: int, modes, every: int = 1) -> Dict[str, int]:
    txns = build_txns(seed)
    states = model_states(txns)
    total = count_events(tmp, txns)
    tried = 0
    in_flight_seen = 0
    for mode in modes:
        for k in range(1, total + 1, every):
            acked, j = cut_once(tmp, txns, states, k, mode, seed)
            tried += 1
            in_flight_seen += j > acked
    return {"events": total, "cuts": tried, "in_flight_survived": in_flight_seen}


def test_every_cut_point_drop_and_tear(tmp_path):
    r = sweep(str(tmp_path), seed=7, modes=("drop", "tear"))
    print(f"\npowerloss: {r['events']} I/O events, {r['cuts']} cut points tried (drop+tear), "
          f"{r['in_flight_survived']} in which the in-flight commit survived")
    assert r["cuts"] > 100


def test_cut_points_scramble(tmp_path):
    r = sweep(str(tmp_path), seed=11, modes=("scramble",), every=3)
    print(f"\npowerloss: {r['cuts']} cut points tried (scramble, every 3rd event)")
    assert r["cuts"] > 30


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_every_cut_point_many_seeds(tmp_path, seed):
    r = sweep(str(tmp_path), seed=seed * 1000, modes=("drop", "tear", "scramble"))
    print(f"\npowerloss seed {seed}: {r['cuts']} cut points tried")
    assert r["cuts"] > 300


def test_every_cut_point_of_a_durable_bulk_build(tmp_path, monkeypatch):
    """update() into an empty durable store, the bottom-up build: overflow chains go straight
    into the data file (Pager.write_run) and, with the write-back constants made small, the
    older new pages are written back while the build runs (Pager._write_back), some of them
    changed and written again before the one commit. A cut at any I/O event leaves the store
    empty or whole."""
    from pagestore import pager as pager_mod

    monkeypatch.setattr(pager_mod, "WRITEBACK_BYTES", 16 * PAGE)
    monkeypatch.setattr(pager_mod, "WRITEBACK_LAG", 8)
    rng = random.Random(3)
    items = sorted({rng.randbytes(rng.randint(1, 20)): rng.randbytes(rng.choice([5, 60, 300, 1500]))
                    for _ in range(150)}.items())
    states: List[Dict[bytes, bytes]] = [{}, dict(items)]
    tmp = str(tmp_path)

    def workload(path: str, opener, acked: List[int]) -> None:
        db = Store(path, _opener=opener, **OPTS)
        db.update(items)
        acked.append(1)
        db.close()

    root = os.path.join(tmp, "count")
    os.makedirs(root)
    disk = Disk(root)
    workload(os.path.join(root, "db.ps"), disk.opener, [])
    total = disk.events
    outcomes = set()
    for mode in ("drop", "tear"):
        for k in range(1, total + 1):
            root = os.path.join(tmp, f"run-{mode}-{k}")
            os.makedirs(root)
            disk = Disk(root, seed=k, fail_at=k)
            acked: List[int] = [0]
            try:
                workload(os.path.join(root, "db.ps"), disk.opener, acked)
            except PowerCut:
                pass
            disk.crash(mode)
            after = os.path.join(tmp, f"after-{mode}-{k}")
            disk.materialise(after)
            if os.path.exists(os.path.join(after, "db.ps")) and os.path.getsize(os.path.join(after, "db.ps")):
                try:
                    outcomes.add(verify_reopened(os.path.join(after, "db.ps"), states, acked[-1]))
                except BaseException as exc:
                    raise AssertionError(f"power cut at I/O event {k} of {total} ({mode}): {exc!r}") from exc
            shutil.rmtree(root)
            shutil.rmtree(after)
    assert total > 50 and outcomes == {0, 1}


def test_crash_during_recovery(tmp_path):
    """A second power cut during recovery's own checkpoint loses nothing either."""
    tmp = str(tmp_path)
    txns = build_txns(3)
    states = model_states(txns)
    total = count_events(tmp, txns)
    tried = 0
    for k in range(5, total, max(1, total // 12)):
        root = os.path.join(tmp, f"r{k}")
        os.makedirs(root)
        disk = Disk(root, seed=k, fail_at=k)
        acked: List[int] = [0]
        with pytest.raises(PowerCut):
            run_workload(os.path.join(root, "db.ps"), txns, disk.opener, acked)
        disk.crash("tear")
        # Count recovery's I/O events, then cut at each of them.
        probe = os.path.join(tmp, f"probe{k}")
        disk.materialise(probe)
        before = disk.events
        Store(os.path.join(root, "db.ps"), _opener=disk.opener, **OPTS).close()
        recovery_events = disk.events - before
        for r in range(1, recovery_events + 1):
            shutil.rmtree(root)
            shutil.copytree(probe, root)
            d2 = Disk(root, seed=k * 1000 + r, fail_at=r)
            with pytest.raises(PowerCut):
                Store(os.path.join(root, "db.ps"), _opener=d2.opener, **OPTS).close()
            d2.crash("tear")
            out = os.path.join(tmp, "out")
            d2.materialise(out)
            j = verify_reopened(os.path.join(out, "db.ps"), states, acked[-1])
            assert j in (acked[-1], acked[-1] + 1)
            shutil.rmtree(out)
            tried += 1
        shutil.rmtree(root)
        shutil.rmtree(probe)
    print(f"\npowerloss: {tried} cut points inside recovery")
    assert tried > 0


# ---- the double itself ----


def test_faultfs_drop_tear_and_rename(tmp_path):
    root = str(tmp_path)
    disk = Disk(root, seed=1)
    f = disk.opener(os.path.join(root, "a"), create=True)
    f.write(0, b"x" * 1024)
    f.sync()
    f.write(0, b"y" * 2048)
    assert f.read(0, 4) == b"yyyy" and f.size() == 2048
    disk.crash("drop")
    assert disk.durable_files() == {"a": b"x" * 1024}
    with pytest.raises(PowerCut):
        f.read(0, 1)
    g = disk.opener(os.path.join(root, "a"))
    g.write(0, b"z" * 1536)
    disk.crash("tear")
    data = disk.durable_files()["a"]
    n = len(data) - len(data.lstrip(b"z"))
    assert n in (0, 512, 1024, 1536)
    assert data == b"z" * n + b"x" * max(0, 1024 - n)
    h = disk.opener(os.path.join(root, "b"), create=True)
    h.write(0, b"bbb")
    h.sync()
    h.close()
    os.replace(os.path.join(root, "b"), os.path.join(root, "a"))
    assert disk.durable_files() == {"a": b"bbb"}


def test_faultfs_cut_counts_events(tmp_path):
    disk = Disk(str(tmp_path), fail_at=3)
    f = disk.opener(os.path.join(str(tmp_path), "a"), create=True)
    f.write(0, b"1")
    f.sync()
    with pytest.raises(PowerCut):
        f.write(1, b"2")
    disk.crash("tear")
    assert disk.durable_files() == {"a": b"1"}


def test_faultfs_enospc(tmp_path):
    disk = Disk(str(tmp_path), limit=1000)
    f = disk.opener(os.path.join(str(tmp_path), "a"), create=True)
    f.write(0, b"a" * 600)
    with pytest.raises(OSError) as exc:
        f.write(600, b"b" * 600)
    assert exc.value.errno == errno.ENOSPC
    assert f.size() == 600  # only whole sectors that fit: 1000 rounds down to 512, below 600
    f.write(0, b"c" * 600)  # overwriting needs no room
