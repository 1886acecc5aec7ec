"""SIGKILL during group commit and during bulk loads: no acknowledged commit may be lost.

tests/crash_write_path.py runs the writer (see its docstring); the parent
kills it after a random delay and checks the files it left: check() passes,
every acknowledged write is there with its value, and nothing else is but
the one write per thread (or the one load) in flight, whole or not at all.
The next child carries on from what the kill left behind.
"""
from __future__ import annotations

import os
import random
import time
from typing import Dict

import pytest

import crash_write_path as cw
from crashchild import Child
from pagestore.store import Store



def group_loop(tmp: str, cycles: int, seed: int, max_delay: float) -> Dict[str, int]:
    path = os.path.join(tmp, "db.ps")
    rng = random.Random(seed)
    last = [0] * cw.THREADS  # keys each thread had when the cycle began
    stats = {"cycles": 0, "acks": 0, "in_flight_survived": 0}
    for cycle in range(cycles):
        errlog = os.path.join(tmp, f"child{cycle}.err")
        child = Child(["crash_write_path.py", "group", path, str(seed)], errlog)
        assert child.started.wait(60), "writer did not start within 60 s"
        time.sleep(rng.uniform(0.05, max_delay))
        child.kill_expecting_sigkill("writer")
        start = child.start_fields()
        assert start == last, f"the writer resumed from {start}, the parent verified {last}"
        acked = list(last)
        for t, i in child.acks():
            acked[t] = max(acked[t], i + 1)
        stats["acks"] += sum(acked) - sum(last)
        with Store(path, page_size=cw.PAGE_SIZE, create=False) as db:
            db.check()
            for t in range(cw.THREADS):
                keys = list(db.keys(prefix=b"%d:" % t))
                m = len(keys)
                assert keys == [cw.group_key(t, i) for i in range(m)], f"thread {t}: keys not a prefix"
                assert acked[t] <= m <= acked[t] + 1, f"thread {t}: {m} keys, {acked[t]} acknowledged"
                stats["in_flight_survived"] += m - acked[t]
                for i in range(last[t], m):
                    assert db[cw.group_key(t, i)] == cw.group_value(seed, t, i)
                last[t] = m
        stats["cycles"] += 1
    return stats


def bulk_loop(tmp: str, cycles: int, seed: int, max_delay: float) -> Dict[str, int]:
    rng = random.Random(seed)
    done = 0  # rounds verified complete
    stats = {"cycles": 0, "loads_acked": 0, "in_flight_survived": 0}
    for cycle in range(cycles):
        errlog = os.path.join(tmp, f"child{cycle}.err")
        child = Child(["crash_write_path.py", "bulk", tmp, str(seed)], errlog)
        assert child.started.wait(60), "writer did not start within 60 s"
        time.sleep(rng.uniform(0.05, max_delay))
        child.kill_expecting_sigkill("writer")
        start = child.start_txn()
        assert start == done, f"the writer resumed at round {start}, the parent verified {done}"
        acked = max([a[0] + 1 for a in child.acks()], default=start)
        stats["loads_acked"] += acked - start
        r = start
        while os.path.exists(os.path.join(tmp, f"{r}.ps")):
            want = cw.round_items(seed, r)
            got = []
            if os.path.getsize(os.path.join(tmp, f"{r}.ps")):  # else killed between creating the file and its header
                with Store(os.path.join(tmp, f"{r}.ps"), page_size=cw.PAGE_SIZE, create=False) as db:
                    db.check()
                    got = list(db.items())
            if r < acked:
                assert got == want, f"round {r} was acknowledged but holds {len(got)} of {len(want)} records"
            else:
                assert got in ([], want), f"round {r} in flight holds {len(got)} of {len(want)} records"
                stats["in_flight_survived"] += got == want
            if got == want:
                done = r + 1
            r += 1
        stats["cycles"] += 1
    return stats


def test_group_commit_crash_loop(tmp_path):
    stats = group_loop(str(tmp_path), cycles=6, seed=11, max_delay=0.8)
    print(f"\ngroup commit crash loop: {stats}")
    assert stats["acks"] > 0


def test_bulk_load_crash_loop(tmp_path):
    stats = bulk_loop(str(tmp_path), cycles=6, seed=12, max_delay=1.5)
    print(f"\nbulk load crash loop: {stats}")
    assert stats["loads_acked"] > 0


@pytest.mark.slow
def test_group_commit_crash_loop_long(tmp_path):
    stats = group_loop(str(tmp_path), cycles=80, seed=21, max_delay=1.5)
    print(f"\ngroup commit crash loop (long): {stats}")
    assert stats["cycles"] == 80


@pytest.mark.slow
def test_bulk_load_crash_loop_long(tmp_path):
    stats = bulk_loop(str(tmp_path), cycles=60, seed=22, max_delay=3.0)
    print(f"\nbulk load crash loop (long): {stats}")
    assert stats["cycles"] == 60
