"""Kill a writing process with SIGKILL at random moments; nothing acknowledged may be lost.

tests/crash_writer.py runs durable transactions on a real file and prints
``ACK n`` after each commit returns. The parent kills it after a random
delay, then verifies the store three ways in turn: a copy opened for writing
(recovery with a checkpoint), the file itself opened read-only (recovery read
through the log), and the file itself opened for writing. It must pass
check(), name a transaction n with last_ack <= n <= last_ack + 1, and hold
exactly the model's contents after n: every key read by a scan and by a get.
The next child then recovers whatever the kill left behind and carries on.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import time
from typing import Dict

import pytest

import crash_writer
from crashchild import Child
from pagestore.store import Store



def verify(path: str, how: str, model: crash_writer.Model, last_ack: int, page_size: int) -> int:
    """verify opens the store as ``how`` says and checks it against the model; returns its transaction count."""
    if how == "copy":
        side = path + ".verify"
        shutil.copyfile(path, side)
        if os.path.exists(path + "-wal"):
            shutil.copyfile(path + "-wal", side + "-wal")
        target, readonly = side, False
    else:
        target, readonly = path, how == "readonly"
    with Store(target, readonly=readonly, create=False, page_size=page_size) as db:
        db.check()
        n = int(db.get(crash_writer.COUNTER, b"0"))
        assert last_ack <= n <= last_ack + 1, f"store holds txn {n}, last ACK was {last_ack}"
        want = model.state(n)
        got = dict(db.items())
        if got != want:
            missing = sorted(set(want) - set(got))[:5]
            extra = sorted(set(got) - set(want))[:5]
            wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])[:5]
            raise AssertionError(f"txn {n}: missing {missing}, unexpected {extra}, wrong values {wrong}")
        for k, v in want.items():
            assert db[k] == v
        assert len(db) == len(want)
    if how == "copy":
        for p in (side, side + "-wal"):
            if os.path.exists(p):
                os.unlink(p)
    return n


def crash_loop(tmp: str, cycles: int, seed: int, page_size: int, max_delay: float) -> Dict[str, int]:
    path = os.path.join(tmp, "db.ps")
    rng = random.Random(seed)
    model = crash_writer.Model(seed)
    stats = {"cycles": 0, "records_verified": 0, "acks": 0, "in_flight_survived": 0, "compactions": 0}
    last = 0
    for cycle in range(cycles):
        child = Child(["crash_writer.py", path, str(seed), str(page_size)], os.path.join(tmp, f"child{cycle}.err"))
        if not child.started.wait(60):
            child.kill()
            raise AssertionError("crash_writer did not start within 60 s")
        time.sleep(rng.uniform(0.0, max_delay))
        rc = child.kill()
        if rc != -signal.SIGKILL:
            with open(os.path.join(tmp, f"child{cycle}.err"), "rb") as f:
                raise AssertionError(f"crash_writer exited by itself (rc {rc}):\n{f.read().decode(errors='replace')}")
        start = child.start_txn()
        assert start == last, f"the child started from txn {start}, the parent verified {last}"
        ack = child.last_ack(start)
        how = ("copy", "readonly", "inplace")[cycle % 3]
        n = verify(path, how, model, ack, page_size)
        stats["cycles"] += 1
        stats["records_verified"] += len(model.data)
        stats["acks"] += ack - start
        stats["in_flight_survived"] += n > ack
        stats["compactions"] += child.compactions()
        last = n
    return stats


def report(stats: Dict[str, int], label: str) -> None:
    print(
        f"\ncrash loop {label}: {stats['cycles']} SIGKILL cycles, {stats['acks']} acknowledged txns, "
        f"{stats['records_verified']} records verified, {stats['in_flight_survived']} in-flight commits survived, "
        f"{stats['compactions']} compactions"
    )


def test_model_is_deterministic():
    a, b = crash_writer.Model(5), crash_writer.Model(5)
    assert a.advance(40) == b.peek(40)
    assert a.advance(41) == b.advance(41)
    assert any(len(v) > 4096 for v in a.data.values())
    with pytest.raises(ValueError):
        a.advance(3)


@pytest.mark.parametrize("page_size", [512, 4096])
def test_crash_loop(tmp_path, page_size):
    stats = crash_loop(str(tmp_path), cycles=8, seed=1000 + page_size, page_size=page_size, max_delay=0.6)
    report(stats, f"({page_size}-byte pages)")
    assert stats["cycles"] == 8
    assert stats["acks"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("page_size", [512, 4096])
def test_crash_loop_long(tmp_path, page_size):
    stats = crash_loop(str(tmp_path), cycles=200, seed=7000 + page_size, page_size=page_size, max_delay=1.5)
    report(stats, f"long ({page_size}-byte pages)")
    assert stats["cycles"] == 200
