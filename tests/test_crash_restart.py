"""The three ways issue 20 found to lose acknowledged commits, each replayed on tests/faultfs.py.

1. A crash inside the log restart (WAL.reset shortened the log before it wrote
   the new header): the issue's own reproduction, at the real sizes (4 KiB
   pages, KEEP_BYTES 4 MiB, a log of 7 MiB), killed at each I/O event of the
   restart.
2. A failed sync inside the restart, swallowed: memory kept the old salt while
   the file had the new one, and later commits went under the old salt.
3. A failed fsync, then more durable commits (PostgreSQL's "fsyncgate"): on
   Linux the failed fsync forgets the pages it did not write, and the next
   one succeeds without them, so later commits sit behind a hole in the log.

And the group commit: a shared commit whose sync fails fails all its writes,
with no retry one by one.

Each fails on the code before the fix (see the commit that added this file)
and passes after it: no acknowledged commit lost, check() clean on reopen,
and after a failed write or sync every later write raises StorePoisonedError.
"""
from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional, Tuple

import pytest

import helpers
from faultfs import Disk, PowerCut
from pagestore import wal as wal_mod
from pagestore.errors import StorePoisonedError
from pagestore.store import Store

BIG = dict(page_size=4096, sync=True)  # the real constants: KEEP_BYTES 4 MiB, wal_limit 16 MiB
N_KEYS = 850
VALUE = 3500  # one value per heap page: a commit rewriting all of them logs about 3.6 MB


def finding1_workload(path: str, opener, acked: List[str]) -> None:
    """The issue's reproduction: commit A (about 3.6 MB of log), take a snapshot, commit B (the
    log passes 7 MB; the checkpoint after it copies only A's frames: the snapshot reads them),
    close the snapshot, write C: before C changes a page the log is checkpointed and restarted,
    and the restart shortens a log far longer than KEEP_BYTES."""
    db = Store(path, _opener=opener, **BIG)
    keys = [b"k%04d" % i for i in range(N_KEYS)]
    db.update((k, b"0" * VALUE) for k in keys)  # a bulk build: straight into the data file
    acked.append("setup")
    for name in ("A", "B"):
        if name == "B":
            snap = db.snapshot()
        with db.transaction() as txn:
            for k in keys:
                txn[k] = name.encode() * VALUE
        acked.append(name)
    assert db.stats()["wal_size"] > 1.6 * wal_mod.KEEP_BYTES  # about 7 MB
    snap.close()
    db[b"c"] = b"C"
    acked.append("C")
    db.close()


def expect(path: str, acked: List[str]) -> None:
    """expect: the store at ``path`` reopens clean and holds the last acknowledged commit, or the one after it."""
    with Store(path, page_size=4096) as db:
        db.check()
        values = {v[:1] for k, v in db.items() if k != b"c"}
        c = db.get(b"c")
    last = acked[-1] if acked else None
    if last is None:  # cut while the new store was being opened
        assert values <= {b"0"} and c is None
    elif last in ("B", "C"):
        assert values == {b"B"}, f"acknowledged commit B lost: the values are {sorted(values)}"
        assert c in ((b"C", None) if last == "B" else (b"C",))
    else:
        assert values <= {b"0", b"A", b"B"} and len(values) == 1


def test_finding1_a_crash_at_each_event_of_a_long_log_restart(tmp_path):
    """Killed (every write the process made survives, as kill -9 leaves it) or powered off
    ("tear": a prefix of the unsynced operations survives) at each I/O event of the restart
    of a 7 MB log. Before the fix, a kill right after the shortening of the log left the old
    header over its first 4 MiB: every value read back as A's, check() passed, B was gone."""
    tmp = str(tmp_path)
    root = os.path.join(tmp, "count")
    os.makedirs(root)
    probe = Disk(root, watch=("reset", "_restart_log"))
    finding1_workload(os.path.join(root, "db.ps"), probe.opener, [])
    restart = sorted(probe.tags)
    kinds = [probe.kinds[k] for k in restart]
    # the log's restart with its shortening, at the real sizes (the reopen's restarts come after)
    assert "truncate" in kinds and "sync" in kinds and "write" in kinds
    shutil.rmtree(root)
    cuts = 0
    for k in restart:
        for mode in ("kill", "tear"):
            root = os.path.join(tmp, f"r{k}{mode}")
            os.makedirs(root)
            disk = Disk(root, seed=k, fail_at=k)
            acked: List[str] = []
            with pytest.raises(PowerCut):
                finding1_workload(os.path.join(root, "db.ps"), disk.opener, acked)
            disk.crash(mode)
            out = os.path.join(tmp, "out")
            disk.materialise(out)
            try:
                expect(os.path.join(out, "db.ps"), acked)
            except BaseException as exc:
                raise AssertionError(f"{mode} at I/O event {k} ({probe.tags[k]}, {probe.kinds[k]}): {exc}") from exc
            shutil.rmtree(out)
            shutil.rmtree(root)
            cuts += 1
    print(f"\nfinding 1: {cuts} cuts at the {len(restart)} I/O events of the restarts ({kinds})")


SMALL = dict(helpers.SMALL, wal_limit=6 * 1024, sync=True)


def _puts(db: Store, n: int, acked: Dict[bytes, bytes], refused: List[BaseException],
          sync: Optional[List[bool]] = None, start: int = 0) -> None:
    """_puts writes keys ``start``.. one commit each; acknowledged ones go to ``acked``, the errors
    of those that raised to ``refused``."""
    for i in range(start, start + n):
        k, v = b"key%03d" % (i % 40), b"%d:" % i + bytes([i % 251]) * 300
        try:
            db.put_many([(k, v)], sync=None if sync is None else sync[i % len(sync)])
        except (OSError, StorePoisonedError) as exc:
            refused.append(exc)
            continue
        acked[k] = v


def test_finding2_a_failed_sync_in_the_restart_poisons_the_store(tmp_path, monkeypatch):
    """The sync of the restart's new header fails (the Linux model: the header stays in the
    page cache, may or may not be on the disk). Before the fix the error was swallowed, memory
    kept the old salt, the next commits were appended under it and acknowledged, and a kill
    lost them all (the file's header had the new salt). Now the write that ran into the
    failure raises it, every later one raises StorePoisonedError, and a kill loses nothing
    acknowledged."""
    monkeypatch.setattr(wal_mod, "KEEP_BYTES", 3000)
    tmp = str(tmp_path)
    root = os.path.join(tmp, "count")
    os.makedirs(root)
    probe = Disk(root, watch=("reset",))
    db = Store(os.path.join(root, "db.ps"), _opener=probe.opener, **SMALL)
    opened = probe.events
    _puts(db, 40, {}, [])
    syncs = [k for k, name in probe.tags.items() if k > opened and probe.kinds[k] == "sync"]
    db.close()
    assert len(syncs) >= 3, "expected restarts among the 40 commits"
    for k in syncs:
        for mode in ("kill", "drop"):
            root = os.path.join(tmp, f"r{k}{mode}")
            os.makedirs(root)
            disk = Disk(root, seed=k, eio_at=k)
            db = Store(os.path.join(root, "db.ps"), _opener=disk.opener, **SMALL)
            acked: Dict[bytes, bytes] = {}
            refused: List[BaseException] = []
            snap = None
            for i in range(40):
                _puts(db, 1, acked, refused, start=i)
                if disk.failures and snap is None:
                    # A reader from here on: the checkpoints after the next commits copy
                    # nothing of them (they would otherwise hide the lost salt by copying
                    # each commit into the data file at once).
                    snap = db.snapshot()
            assert snap is not None
            _puts(db, 3, acked, refused, start=100)
            disk.crash(mode)  # no close: killed
            out = os.path.join(tmp, "out")
            disk.materialise(out)
            with Store(os.path.join(out, "db.ps"), **SMALL) as again:
                again.check()
                got = dict(again.items())
            lost = [k2 for k2, v in acked.items() if got.get(k2) != v]
            assert not lost, f"EIO at the restart's sync (event {k}), {mode}: acknowledged commits lost: {lost}"
            # The restart ran in a commit's checkpoint (that commit stands: it is in the log)
            # or before a write (which raises the EIO); every write after it is refused.
            assert len(refused) > 1 and all(isinstance(e, StorePoisonedError) for e in refused[1:])
            first = refused[0].original if isinstance(refused[0], StorePoisonedError) else refused[0]
            assert isinstance(first, OSError) and "injected I/O error" in str(first)
            shutil.rmtree(out)
            shutil.rmtree(root)


def test_finding3_no_durable_commit_behind_a_failed_fsync(tmp_path):
    """sync=False commits, then a durable commit whose fsync fails (Linux: the unwritten pages
    are marked clean), then more durable commits. Before the fix those later commits were
    acknowledged, and their fsync wrote only their own frames: after a power cut the log had a
    hole where the earlier frames should have been, recovery stopped there, and the later
    acknowledged commits were gone. Now they raise StorePoisonedError; reopening recovers
    every durable acknowledged commit."""
    tmp = str(tmp_path)
    pattern = [True, False, False, True]  # durable, two sync=False, durable: the failure lands on either
    total = 0
    for seed in range(12):
        root = os.path.join(tmp, f"s{seed}")
        os.makedirs(root)
        probe = Disk(root)
        db = Store(os.path.join(root, "db.ps"), _opener=probe.opener, **dict(SMALL, wal_limit=1 << 24))
        _puts(db, 8, {}, [], sync=pattern)
        base = probe.events
        db.close()
        shutil.rmtree(root)
        os.makedirs(root)
        disk = Disk(root, seed=seed)
        db = Store(os.path.join(root, "db.ps"), _opener=disk.opener, **dict(SMALL, wal_limit=1 << 24))
        durable: Dict[bytes, bytes] = {}
        acked: Dict[bytes, bytes] = {}
        refused: List[BaseException] = []
        _puts(db, 8, acked, refused, sync=pattern)
        assert disk.events == base and not refused
        durable.update(acked)
        disk.eio_at = disk.events + 3 + seed % 5  # inside the next few commits (writes and syncs)
        for i in range(8, 24):
            one: Dict[bytes, bytes] = {}
            _puts(db, 1, one, refused, sync=pattern, start=i)
            acked.update(one)
            if one and pattern[i % len(pattern)]:
                durable = dict(acked)  # a durable commit makes every commit before it durable
        assert disk.failures == 1 and refused
        assert all(isinstance(e, StorePoisonedError) for e in refused[1:])
        disk.crash("drop")
        out = os.path.join(tmp, f"out{seed}")
        disk.materialise(out)
        with Store(os.path.join(out, "db.ps"), **SMALL) as again:
            again.check()
            got = dict(again.items())
        lost = [k for k, v in durable.items() if got.get(k) != v and acked.get(k) == v]
        assert not lost, f"seed {seed}: durable acknowledged commits lost after a failed fsync: {lost}"
        total += 1
    assert total == 12


def test_group_commit_a_failed_sync_fails_its_whole_batch_and_every_later_write(tmp_path, monkeypatch):
    """Threads share commits (group.py). The sync of one shared commit fails: every write of
    that batch raises the same OSError, nothing of it is retried one write at a time (as it
    was before: each retry would have committed behind the failed sync), every write after it
    raises StorePoisonedError, and after a power cut every acknowledged write is there."""
    import threading
    import time

    import faultfs

    real_sync = faultfs.FaultFile.sync

    def slow_sync(self: faultfs.FaultFile) -> None:
        time.sleep(0.003)  # a disk's sync: long enough for the other threads to queue up
        real_sync(self)

    monkeypatch.setattr(faultfs.FaultFile, "sync", slow_sync)
    root = str(tmp_path)
    disk = Disk(root, seed=3)
    db = Store(os.path.join(root, "db.ps"), _opener=disk.opener, **dict(SMALL, wal_limit=1 << 24))
    db[b"first"] = b"1"
    disk.eio_at = disk.events + 12  # a few shared commits in
    acked: Dict[bytes, bytes] = {b"first": b"1"}
    outcomes: List[Tuple[int, int, object]] = []  # (thread, i, result or error), in completion order
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(15):
            k, v = b"t%d-%02d" % (t, i), b"v" * 100
            try:
                db[k] = v
            except (OSError, StorePoisonedError) as exc:
                with lock:
                    outcomes.append((t, i, exc))
                continue
            with lock:
                outcomes.append((t, i, None))
                acked[k] = v

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    errors = [e for _, _, e in outcomes if e is not None]
    first = [e for e in errors if isinstance(e, OSError)]
    assert disk.failures == 1 and first, "the injected failure must reach a write"
    assert all(e is first[0] for e in first)  # the batch's one error, not a retry's
    assert all(isinstance(e, StorePoisonedError) and e.original is first[0] for e in errors if e not in first)
    # nothing committed after the failure: per thread, every write after its first error failed too
    for t in range(4):
        mine = [e for tt, _, e in sorted(outcomes, key=lambda o: (o[0], o[1])) if tt == t]
        if any(e is not None for e in mine):
            n = next(i for i, e in enumerate(mine) if e is not None)
            assert all(e is not None for e in mine[n:])
    print(f"\ngroup commit: {len(first)} writes failed with the sync's error, "
          f"{len(errors) - len(first)} refused after it, {len(acked) - 1} acknowledged")
    db.close()
    disk.crash("drop")
    out = os.path.join(root, "out")
    disk.materialise(out)
    with Store(os.path.join(out, "db.ps"), **SMALL) as again:
        again.check()
        got = dict(again.items())
    assert all(got.get(k) == v for k, v in acked.items())


def test_a_writable_open_on_a_full_disk_reads_and_refuses_writes(tmp_path):
    """The open's own checkpoint (of a log a crash left) grows the data file. On a full disk it
    failed the whole open with a bare OSError(ENOSPC), so the store could not be opened to be
    read. Now the open succeeds poisoned, as a failed checkpoint anywhere else leaves the store:
    every acknowledged commit reads back (from the log), a write raises StorePoisonedError naming
    the disk's error, close writes nothing, and an open once there is room checkpoints as usual."""
    root = str(tmp_path)
    disk = Disk(root)
    path = os.path.join(root, "db.ps")
    db = Store(path, _opener=disk.opener, **dict(SMALL, wal_limit=1 << 24))
    acked = {b"k%04d" % i: bytes([i % 251]) * 2000 for i in range(300)}
    for k, v in acked.items():  # one commit each: they stay in the log
        db[k] = v
    disk.crash("kill")  # the writer dies with its commits in the log only
    disk.limit = disk.total_bytes()  # and the disk is full: the data file cannot grow
    again = Store(path, _opener=disk.opener, **SMALL)
    assert dict(again.items()) == acked
    again.check()
    with pytest.raises(StorePoisonedError, match="No space left"):
        again[b"new"] = b"1"
    again.close()
    disk.limit = None
    with Store(path, _opener=disk.opener, **SMALL) as last:
        assert dict(last.items()) == acked
        last[b"new"] = b"1"
        last.check()
