"""crash_clear: kill -9 a writer that clears and range-deletes while two reader processes read.

The writer goes round generations g = 1, 2, ...; each is three commits:

``fill``   one transaction: keys k0000..k0299, each value ``g/i/`` and padding (some
           past a page: overflow chains), and ``__gen__`` = g;
``range``  ``delete_range(b"k0050", b"k0250")``: 100 keys are left;
``clear``  ``clear()``: the store is empty.

So every state a reader may see names itself: empty, or generation G whole
(300 keys), or G range-deleted (100 keys), every value of generation G. The
refill of the next ``fill`` takes its pages off the free list that ``clear`` and
``delete_range`` filled. Readers (read-only processes) loop over snapshots,
some held across the writer's commits (the held one must not change), and
report ``BAD ...`` for a state that is none of these or a generation gone back.

The parent SIGKILLs the writer at a random moment, stops the readers, opens the
store: ``check()`` must pass and the state must be the last acknowledged
commit's (``ACK idx``, idx = 3 (g - 1) + step) or the next one's. The next round
goes on from there.

``python tests/crash_clear.py --rounds N --seed S`` (also test_freelist's slow test).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = b"__gen__"
KEYS = [b"k%04d" % i for i in range(300)]
LO, HI = b"k0050", b"k0250"
KEPT = [k for k in KEYS if not LO <= k < HI]
PS = 1024


def value(g: int, i: int) -> bytes:
    size = [10, 200, 900, 3000][(g * 7 + i) % 4]
    return b"%d/%d/" % (g, i) + bytes([i % 251]) * size


def state_of(items: Dict[bytes, bytes]) -> Tuple[Optional[int], str]:
    """state_of names a state: (None, "empty"), (g, "fill") or (g, "range"); raises ValueError for any other."""
    if not items:
        return None, "empty"
    g = int(items.get(GEN, b"-1"))
    keys = sorted(k for k in items if k != GEN)
    if keys == KEYS:
        step = "fill"
    elif keys == KEPT:
        step = "range"
    else:
        raise ValueError(f"gen {g}: {len(keys)} keys, neither whole nor range-deleted")
    for k in keys:
        i = int(k[1:])
        if items[k] != value(g, i):
            raise ValueError(f"gen {g}: key {k!r} holds {items[k][:20]!r}")
    return g, step


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def writer(path: str) -> None:
    from pagestore.store import Store

    db = Store(path, page_size=PS, cache_size=PS * 64, wal_limit=48 * PS, sync=True)
    g, step = state_of(dict(db.items()))
    gen = g or 0
    if step == "fill":
        todo = ["range", "clear"]
    elif step == "range":
        todo = ["clear"]
    else:
        todo = []
    out(f"START {gen} {step}")
    while True:
        for s in todo:
            if s == "range":
                db.delete_range(LO, HI)
                out(f"ACK {3 * (gen - 1) + 1}")
            else:
                db.clear()
                out(f"ACK {3 * (gen - 1) + 2}")
        gen += 1
        with db.transaction() as txn:
            for i, k in enumerate(KEYS):
                txn[k] = value(gen, i)
            txn[GEN] = b"%d" % gen
        out(f"ACK {3 * (gen - 1)}")
        todo = ["range", "clear"]


def reader(path: str, stop: str, seed: int) -> None:
    from pagestore.errors import CorruptionError, PageStoreError
    from pagestore.store import Store

    rng = random.Random(seed)
    db = Store(path, readonly=True, create=False)
    out("START 0")
    rounds, last = 0, 0

    def judge(way: str, items: Dict[bytes, bytes]) -> Tuple[Optional[int], str]:
        nonlocal last
        try:
            g, step = state_of(items)
        except ValueError as exc:
            out(f"BAD {way}: {exc}")
            return None, "bad"
        if g is not None:
            if g < last:
                out(f"BAD backwards {way}: gen {g} after {last}")
            last = max(last, g)
        return g, step

    while not os.path.exists(stop):
        r = rng.random()
        try:
            if r < 0.3:
                with db.snapshot() as snap:
                    first = dict(snap.items())
                    judge("held", first)
                    time.sleep(rng.uniform(0.02, 0.3))
                    if dict(snap.items()) != first:
                        out("BAD held snapshot changed")
            elif r < 0.6:
                with db.snapshot() as snap:
                    judge("snapshot", dict(snap.items()))
            else:
                judge("items", dict(db.items()))
        except CorruptionError as exc:
            out(f"BAD {type(exc).__name__}: {exc}".replace("\n", " "))
        except PageStoreError as exc:
            out(f"ERR {type(exc).__name__}: {exc}".replace("\n", " "))
            time.sleep(0.01)
        except Exception:
            out("BAD " + traceback.format_exc().replace("\n", " | "))
            time.sleep(0.01)
        rounds += 1
    db.close()
    out(f"DONE {rounds}")


def _spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _index(g: Optional[int], step: str) -> Optional[int]:
    return None if g is None else 3 * (g - 1) + (0 if step == "fill" else 1)


def run(tmp: str, rounds: int, seed: int, max_delay: float = 1.5) -> Dict[str, int]:
    """run: ``rounds`` kill -9 rounds on one store in ``tmp``; returns counts; raises AssertionError on a failure."""
    from pagestore.store import Store

    rng = random.Random(seed)
    path = os.path.join(tmp, "db.ps")
    stats = {"rounds": 0, "acks": 0, "reads": 0, "empty": 0, "fill": 0, "range": 0}
    for rnd in range(rounds):
        stop = os.path.join(tmp, f"stop{rnd}")
        w = _spawn("writer", path)
        assert w.stdout is not None
        first = w.stdout.readline()
        if not first.startswith("START"):
            w.kill()
            raise AssertionError(f"round {rnd}: writer failed: {first} {w.communicate()[1]}")
        readers = [_spawn("reader", path, stop, str(seed * 100 + rnd * 2 + j)) for j in range(2)]
        time.sleep(rng.uniform(0.3, max_delay))
        os.kill(w.pid, signal.SIGKILL)
        wout, werr = w.communicate()
        open(stop, "w").close()
        for r in readers:
            rout, rerr = r.communicate(timeout=120)
            bad = [line for line in rout.splitlines() if line.startswith("BAD")]
            assert not bad and r.returncode == 0, f"round {rnd}: reader: {bad[:3]} {rerr[-2000:]}"
            stats["reads"] += sum(int(line.split()[1]) for line in rout.splitlines() if line.startswith("DONE"))
        acks = [int(line.split()[1]) for line in wout.splitlines() if line.startswith("ACK")]
        stats["acks"] += len(acks)
        with Store(path, page_size=PS) as db:
            db.check()
            g, step = state_of(dict(db.items()))
        got = _index(g, step)
        if acks:
            last = acks[-1]
            ok = got in (last, last + 1) if got is not None else last % 3 in (1, 2)
            assert ok, f"round {rnd}: last ack {last}, store at {got} ({g}, {step})"
        stats["rounds"] += 1
        stats[step] += 1
    return stats


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(run(tmp, a.rounds, a.seed))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "writer":
        writer(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "reader":
        reader(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main())
