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
    from pagestore import pagecache

    monkeypatch.setattr(pagecache, "WRITEBACK_BYTES", 16 * PAGE)
    monkeypatch.setattr(pagecache, "WRITEBACK_LAG", 8)
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


# ---- the log restart, partial checkpoints, failed syncs ----
#
# The workload above never restarts a log longer than KEEP_BYTES (4 MiB), so it
# never reached the restart's shortening of the log, where a crash once brought
# back an old transaction (issue 20, finding 1). This one does: KEEP_BYTES is
# made 3,000 bytes, snapshots hold the log across commits (so checkpoints copy only
# part of it, and the log grows long before it restarts), a third of the
# commits are sync=False, and one transaction spills past the cache.

#: the functions whose I/O events the restart sweeps count (faultfs tags)
WATCH = ("reset", "_restart_log", "_backfill")
#: the kinds of event the restart sweeps must reach: the restart's own (cutting the data
#: file's tail, then the log's new header, its sync, the shortening) and the copy's
MUST_REACH = {"_restart_log:truncate", "_restart_log:sync", "reset:write", "reset:sync", "reset:truncate",
              "_backfill:write", "_backfill:sync"}

Step = Tuple[str, object]  # ("txn", (ops, sync)) / ("snap", None) / ("release", None) / ("abort", None)


class _Abandon(Exception):
    """_Abandon: the input of an ``update()`` that fails half-way (the "abort" step)."""


def _abandoned_input(n: int):
    """_abandoned_input yields ``n`` large new values, then raises: update() rolls them back, after
    the pager wrote their pages straight into the data file past its committed end (a spill of
    new pages in a durable store), so the next restart cuts that tail (Checkpointer._restart_log, Pager.cut_tail)."""
    for i in range(n):
        yield b"gone%02d" % i, bytes([i]) * 5000
    raise _Abandon


def build_restart_steps(seed: int) -> Tuple[List[Step], List[List[Op]], List[bool]]:
    """build_restart_steps: the steps of the restart workload, its transactions, and each one's sync flag."""
    txns = build_txns(seed, n=24)
    syncs = [t % 3 != 1 for t in range(len(txns))]
    steps: List[Step] = []
    for t, ops in enumerate(txns):
        if t in (3, 13):
            steps.append(("snap", None))
        if t in (8, 20):
            steps.append(("release", None))
        if t == 16:
            steps.append(("abort", None))
        steps.append(("txn", (ops, syncs[t])))
    return steps, txns, syncs


def run_steps(path: str, steps: List[Step], opener, acked: List[int], durable: List[int],
              refused: Optional[List[int]] = None) -> None:
    """run_steps applies ``steps`` on a store at ``path``. After each commit returns, its count goes
    to ``acked`` (and to ``durable`` if it was a durable commit).

    With ``refused`` (an EIO sweep), a write that raises is not the end: the count of each
    transaction tried after the first failure goes to ``refused``, each of which must raise
    StorePoisonedError; the store is closed at the end (it must write and raise nothing).
    """
    from pagestore.errors import StorePoisonedError

    try:
        db = Store(path, _opener=opener, **OPTS)
    except OSError:
        if refused is None:
            raise
        return  # the open (the new file's header) failed: nothing was acknowledged
    snap = None
    failed: Optional[BaseException] = None
    t = 0
    for kind, arg in steps:
        if kind == "snap":
            snap = db.snapshot()
            continue
        if kind == "release":
            assert snap is not None
            snap.close()
            snap = None
            continue
        if kind == "abort":
            try:
                db.update(_abandoned_input(20))
            except _Abandon:
                pass
            except (OSError, StorePoisonedError) as exc:
                if refused is None:
                    raise
                assert failed is None or isinstance(exc, StorePoisonedError), repr(exc)
                failed = failed or exc
            continue
        ops, sync = arg  # type: ignore[misc]
        t += 1
        if failed is not None:
            # The model's state is not the store's any more: a delete may name a key the
            # failed commit made. Only puts, which the store must refuse.
            ops = [(k, v) for k, v in ops if v is not None] or [(b"refused", b"x")]
        try:
            if len(ops) == 1 and ops[0][1] is not None:
                db.put_many([ops[0]], sync=sync)
            else:
                with db.transaction(sync=sync) as txn:
                    for k, v in ops:
                        if v is None:
                            del txn[k]
                        else:
                            txn[k] = v
        except (OSError, StorePoisonedError) as exc:
            if refused is None:
                raise
            if failed is not None:
                assert isinstance(exc, StorePoisonedError), f"txn {t} after a failure raised {exc!r}"
                refused.append(t)
            failed = exc
            continue
        assert failed is None, f"txn {t} committed after a failed write or sync ({failed!r})"
        acked.append(t)
        if sync:
            durable.append(t)
    if snap is not None:
        snap.close()
    if refused is not None and failed is not None:
        with pytest.raises(StorePoisonedError):
            db.sync()
        before = getattr(opener, "__self__").events
        db.close()  # writes nothing, raises nothing
        assert getattr(opener, "__self__").events == before
        return
    try:
        db.close()
    except OSError:
        if refused is None:
            raise
        # the first failure is the close's own checkpoint: the log keeps every commit


def verify_range(path: str, states: List[Dict[bytes, bytes]], lo: int, hi: int) -> int:
    """verify_range opens the store at ``path`` and returns j, the transaction count it holds, which must
    lie in [lo, hi]: no durable acknowledged commit lost, nothing partial, check() clean."""
    with Store(path, **OPTS) as db:
        db.check()
        got = dict(db.items())
        assert len(db) == len(got)
    for j in range(lo, min(hi, len(states) - 1) + 1):
        if got == states[j]:
            return j
    near = min(range(len(states)), key=lambda j: len(set(got.items()) ^ set(states[j].items())))
    raise AssertionError(f"reopened state is no committed state in [{lo}, {hi}] (closest: txn {near})")


@pytest.fixture
def small_keep(monkeypatch):
    """The log keeps 3,000 bytes across a restart (KEEP_BYTES is 4 MiB): restarts of a log longer
    than that, which shorten the file, happen every few commits, and what is kept holds whole
    commits (with 2 KiB, a prefix of the old log held no commit frame, and the old order of
    WAL.reset went unpunished)."""
    from pagestore import wal as wal_mod

    monkeypatch.setattr(wal_mod, "KEEP_BYTES", 3000)
    return 3000


def restart_sweep(tmp: str, seed: int, modes, *, every: int = 1, eio: bool = False,
                  alternate: bool = False) -> Dict[str, object]:
    """restart_sweep runs the restart workload once per I/O event k: power cut at k (or, with
    ``eio``, event k failed with EIO under the Linux model and then a crash), crash in each
    of ``modes`` (``alternate``: every mode at the events of WATCH, one mode in turn at the
    others), reopen with the real pagestore and
    verify. Returns the figures, and which
    I/O events of WAL.reset, Checkpointer._restart_log and Checkpointer._backfill it cut at."""
    steps, txns, _syncs = build_restart_steps(seed)
    states = model_states(txns)
    root = os.path.join(tmp, "count")
    os.makedirs(root)
    probe = Disk(root, watch=WATCH)
    from pagestore.checkpointer import Checkpointer

    copies: List[Tuple[int, int]] = []  # (limit, frames) of each checkpoint's copy
    real_backfill = Checkpointer._backfill

    def counted(self, limit: int, frames: int) -> None:
        copies.append((limit, frames))
        real_backfill(self, limit, frames)

    Checkpointer._backfill = counted  # type: ignore[method-assign]
    try:
        run_steps(os.path.join(root, "db.ps"), steps, probe.opener, [], [])
    finally:
        Checkpointer._backfill = real_backfill  # type: ignore[method-assign]
    partial = sum(limit < frames for limit, frames in copies)
    total = probe.events
    kinds = probe.kinds
    reached: Dict[str, int] = {}
    cuts = lost = 0
    runs = [(mode, k) for k in range(1, total + 1, every) for mode in modes
            if not alternate or k in probe.tags or mode == modes[k % len(modes)]]
    for mode, k in runs:
        root = os.path.join(tmp, f"run-{mode}-{k}")
        os.makedirs(root)
        acked: List[int] = [0]
        durable: List[int] = [0]
        refused: List[int] = []
        if eio:
            disk = Disk(root, seed=seed * 7919 + k, eio_at=k)
            run_steps(os.path.join(root, "db.ps"), steps, disk.opener, acked, durable, refused)
        else:
            disk = Disk(root, seed=seed * 7919 + k, fail_at=k)
            try:
                run_steps(os.path.join(root, "db.ps"), steps, disk.opener, acked, durable)
            except PowerCut:
                pass
            else:
                raise AssertionError(f"workload finished before I/O event {k}")
        disk.crash(mode)
        after = os.path.join(tmp, f"after-{mode}-{k}")
        disk.materialise(after)
        try:
            j = verify_range(os.path.join(after, "db.ps"), states, durable[-1], acked[-1] + 1)
        except BaseException as exc:
            lost += 1
            raise AssertionError(f"{'EIO' if eio else 'power cut'} at I/O event {k} of {total} "
                                 f"({mode}, seed {seed}): {exc!r}") from exc
        finally:
            shutil.rmtree(root)
            shutil.rmtree(after, ignore_errors=True)
        assert j >= durable[-1]
        cuts += 1
        if k in probe.tags:
            name = probe.tags[k]
            reached[f"{name}:{kinds[k]}"] = reached.get(f"{name}:{kinds[k]}", 0) + 1
    return {"events": total, "cuts": cuts, "lost": lost, "reached": reached, "partial": partial,
            "checkpoints": len(copies),
            "tagged": {f"{probe.tags[k]}:{kinds[k]}" for k in probe.tags}}


def test_every_cut_point_with_log_restarts(tmp_path, small_keep):
    """Power cut at every I/O event of the restart workload, the disk keeping nothing unsynced
    ("drop") or everything the process wrote ("kill", as kill -9 leaves it): every I/O event
    of the log restart (WAL.reset: header, sync, shortening) and of the checkpoints, partial
    ones included, is cut at; no durable acknowledged commit is lost."""
    r = restart_sweep(str(tmp_path), seed=5, modes=("drop", "kill"), alternate=True)
    reached = r["reached"]
    assert r["partial"] >= 1, "expected checkpoints that copy part of the log (the snapshots)"
    print(f"\npowerloss (restarts): {r['events']} I/O events, {r['cuts']} cuts, {r['lost']} lost, "
          f"{r['checkpoints']} checkpoints of which {r['partial']} partial; "
          f"restart/checkpoint events cut at: {dict(sorted(reached.items()))}")
    assert r["cuts"] > 100 and r["lost"] == 0
    # the restart's every kind of event was reached, the shortening of the log included
    assert MUST_REACH <= set(reached)
    assert set(reached) == r["tagged"]  # every kind of event there is in them


def test_eio_at_every_event_with_log_restarts(tmp_path, small_keep):
    """Each I/O event of the restart workload failed with EIO as Linux fails it (a failed fsync
    forgets what it did not write; a failed write may have written part), then the rest of
    the workload tried, then a crash: every write after the failure raises StorePoisonedError
    (run_steps checks), close writes nothing, and the reopened store holds every durable
    acknowledged commit ("drop": the power cut after it; "kill": the process killed)."""
    r = restart_sweep(str(tmp_path), seed=9, modes=("drop", "kill"), eio=True, alternate=True)
    reached = r["reached"]
    assert r["partial"] >= 1, "expected checkpoints that copy part of the log (the snapshots)"
    print(f"\nEIO (restarts, linux model): {r['events']} I/O events, {r['cuts']} failures injected, "
          f"{r['checkpoints']} checkpoints of which {r['partial']} partial, "
          f"{r['lost']} lost; restart/checkpoint events failed: {dict(sorted(reached.items()))}")
    assert r["cuts"] > 100 and r["lost"] == 0
    assert MUST_REACH <= set(reached)
    assert set(reached) == r["tagged"]  # every kind of event there is in them


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 9))
def test_restart_soak(tmp_path, small_keep, seed):
    """The restart workload over more seeds: power cut in every mode at every I/O event, and EIO
    at every event followed by a power cut."""
    cut = restart_sweep(str(tmp_path / "cut"), seed=seed * 31, modes=("drop", "tear", "scramble", "kill"))
    eio = restart_sweep(str(tmp_path / "eio"), seed=seed * 37, modes=("drop", "tear", "kill"), eio=True)
    print(f"\nrestart soak seed {seed}: {cut['cuts']} cuts + {eio['cuts']} EIO runs, "
          f"{cut['lost'] + eio['lost']} lost, {cut['checkpoints']} checkpoints ({cut['partial']} partial); "
          f"reached {dict(sorted(cut['reached'].items()))}")
    assert cut["lost"] == eio["lost"] == 0
    assert "reset:truncate" in cut["reached"]


def test_faultfs_linux_model_forgets_what_a_failed_fsync_did_not_write(tmp_path):
    """The Linux model: after a failed fsync, reads still see the writes, a later fsync succeeds,
    and a crash loses what the failed one did not write. The kind model kept them pending."""
    root = str(tmp_path)
    lost_any = False
    for seed in range(20):
        disk = Disk(root, seed=seed)
        f = disk.opener(os.path.join(root, f"a{seed}"), create=True)
        f.write(0, b"x" * 4096)
        f.sync()
        f.write(0, b"y" * 4096)
        disk.eio_at = disk.events + 1
        with pytest.raises(OSError):
            f.sync()
        assert f.read(0, 4096) == b"y" * 4096  # the page cache still holds them
        f.write(8192, b"z" * 512)
        f.sync()  # succeeds, writing only the new write
        disk.crash("drop")
        data = disk.durable_files()[f"a{seed}"]
        assert data[8192:] == b"z" * 512
        assert set(data[:4096]) <= {ord("x"), ord("y")}
        lost_any |= b"x" in data[:4096]
    assert lost_any
    disk = Disk(root, model="kind")
    f = disk.opener(os.path.join(root, "k"), create=True)
    f.write(0, b"y" * 4096)
    disk.eio_at = disk.events + 1
    with pytest.raises(OSError):
        f.sync()
    f.sync()
    disk.crash("drop")
    assert disk.durable_files()["k"] == b"y" * 4096


def test_faultfs_linux_model_reports_a_failed_fsync_once_to_every_file_open_then(tmp_path):
    """errseq (Linux 4.13+): a failed fsync on one open file is reported once to every other open
    file description of it that was open at the time, at its next fsync, which still writes what
    it had; a file opened afterwards is not told; the dropped sectors stay lost however many
    fsyncs succeed after."""
    root = str(tmp_path)
    disk = Disk(root, seed=1)
    path = os.path.join(root, "f")
    a = disk.opener(path, create=True)
    b = disk.opener(path)
    a.write(0, b"x" * 4096)
    a.sync()
    a.write(0, b"y" * 4096)
    disk.eio_at = disk.events + 1
    with pytest.raises(OSError):
        a.sync()
    a.sync()  # a was told already
    late = disk.opener(path)  # opened after a was told: never is
    b.write(8192, b"z" * 512)
    with pytest.raises(OSError, match="errseq"):
        b.sync()  # told once, though it wrote what it had
    b.sync()
    late.write(16384, b"w" * 512)
    late.sync()
    disk.crash("drop")
    data = disk.durable_files()["f"]
    assert data[8192:8704] == b"z" * 512 and data[16384:] == b"w" * 512
    assert set(data[:4096]) <= {ord("x"), ord("y")} and data[:4096] != b"y" * 4096
    # Nobody told yet: the next opener is.
    disk = Disk(root, seed=2)
    path = os.path.join(root, "g")
    a = disk.opener(path, create=True)
    a.write(0, b"y" * 4096)
    a.content.fail_sync(disk.rng)  # a writeback failed with no fsync to report it
    with pytest.raises(OSError, match="errseq"):
        disk.opener(path).sync()


def test_faultfs_linux_model_failed_write_may_write_a_prefix(tmp_path):
    root = str(tmp_path)
    seen = set()
    for seed in range(20):
        disk = Disk(root, seed=seed, eio_at=1)
        f = disk.opener(os.path.join(root, f"w{seed}"), create=True)
        with pytest.raises(OSError):
            f.write(0, b"w" * 2048)
        data = f.read(0, 2048)
        assert data == b"w" * len(data) and len(data) % 512 == 0
        seen.add(len(data))
    assert len(seen) > 1


def test_faultfs_kill_keeps_every_write_and_tags_name_the_caller(tmp_path):
    root = str(tmp_path)
    disk = Disk(root, watch=("tagged_writer",))
    f = disk.opener(os.path.join(root, "a"), create=True)

    def tagged_writer() -> None:
        f.write(0, b"abc")

    tagged_writer()
    f.truncate(2)
    assert disk.tags == {1: "tagged_writer"} and disk.kinds == {1: "write", 2: "truncate"}
    disk.crash("kill")
    assert disk.durable_files() == {"a": b"ab"}
