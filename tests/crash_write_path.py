"""crash_write_path: child processes of tests/test_crash_write_path.py (group commit, bulk load).

    python crash_write_path.py group PATH SEED   # THREADS threads of durable single puts
    python crash_write_path.py bulk  DIR  SEED   # one db.update() of a whole dataset per store file

group: thread t writes keys ``t:000000``, ``t:000001``, ... in order, each its
own durable put (the commits are shared by group commit), and prints ``ACK t
i`` after put i returns. Restarted, each thread resumes after the last key of
its own it finds. So after a SIGKILL, thread t's keys must be exactly 0..m-1
with m at least its last ACK + 1 and at most one more (the put in flight).

bulk: round r makes store file ``DIR/r.ps`` and fills it with ``update`` of
ROUND_ITEMS records, in key order (the bottom-up build) on even rounds and
shuffled (one put per item, still one commit) on odd ones, then prints ``ACK
r``. Restarted, it skips the rounds whose file is complete. After a SIGKILL,
every acknowledged round's file holds its whole dataset; the one in flight
holds all of it or nothing.

Values are pure functions of (SEED, thread or round, index), so the parent
recomputes them without talking to the child.
"""
from __future__ import annotations

import os
import random
import sys
import threading
from typing import List, Tuple

THREADS = 4
ROUND_ITEMS = 1500
PAGE_SIZE = 512


def group_value(seed: int, t: int, i: int) -> bytes:
    rng = random.Random(f"{seed}:{t}:{i}")
    return b"%d:%d:" % (t, i) + rng.randbytes(rng.choice([0, 10, 100, 300, 1200]))


def group_key(t: int, i: int) -> bytes:
    return b"%d:%06d" % (t, i)


def round_items(seed: int, r: int) -> List[Tuple[bytes, bytes]]:
    rng = random.Random(f"{seed}:round:{r}")
    keys = sorted({rng.randbytes(rng.randint(1, 24)) for _ in range(ROUND_ITEMS)})  # sorted: sets iterate by hash
    return [(k, rng.randbytes(rng.choice([0, 5, 50, 200, 700, 3000]))) for k in keys]


def run_group(path: str, seed: int) -> None:
    from pagestore.store import Store

    db = Store(path, page_size=PAGE_SIZE, cache_size=PAGE_SIZE * 64, wal_limit=64 * PAGE_SIZE, sync=True)
    out = threading.Lock()
    starts = []
    for t in range(THREADS):
        mine = list(db.keys(prefix=b"%d:" % t))
        starts.append(len(mine))
    print("START " + " ".join(map(str, starts)), flush=True)

    def worker(t: int) -> None:
        i = starts[t]
        while True:
            db[group_key(t, i)] = group_value(seed, t, i)
            with out:
                print(f"ACK {t} {i}", flush=True)
            i += 1

    for t in range(THREADS):
        threading.Thread(target=worker, args=(t,), daemon=True).start()
    threading.Event().wait()


def run_bulk(root: str, seed: int) -> None:
    from pagestore.store import Store

    r = 0
    while os.path.exists(os.path.join(root, f"{r}.ps")):
        if not os.path.getsize(os.path.join(root, f"{r}.ps")):
            break  # killed between creating the file and writing its header
        with Store(os.path.join(root, f"{r}.ps"), page_size=PAGE_SIZE) as db:
            if len(db) == 0:
                break
        r += 1
    print(f"START {r}", flush=True)
    while True:
        items = round_items(seed, r)
        if r % 2:
            random.Random(r).shuffle(items)
        with Store(os.path.join(root, f"{r}.ps"), page_size=PAGE_SIZE, cache_size=PAGE_SIZE * 64, sync=True) as db:
            db.update(items)
            print(f"ACK {r}", flush=True)
        r += 1


def main(argv: List[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    mode, path, seed = argv[1], argv[2], int(argv[3])
    if mode == "group":
        run_group(path, seed)
    else:
        run_bulk(path, seed)


if __name__ == "__main__":
    main(sys.argv)
