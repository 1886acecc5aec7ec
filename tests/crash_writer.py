"""crash_writer: the child process of tests/test_crash.py, and the model both sides share.

Run as ``python crash_writer.py PATH SEED PAGE_SIZE``: it opens (or creates)
the store at PATH, reads how many transactions it already holds from the key
``__txn__``, and runs transactions n+1, n+2, ... forever, each one durable
(sync=True). After each commit returns it prints ``ACK n`` (flushed); now and
then it compacts the store. The parent kills it with SIGKILL at a random
moment.

Transaction n is a pure function of (SEED, n, the keys present before it):
its random numbers come from ``random.Random(f"{SEED}:{n}")``, so the parent
can recompute the exact contents after any transaction without talking to
the child, and the child, restarted, needs only the store's keys. Every transaction also sets ``__txn__`` to n, so the reopened store
says which state it claims to be.
"""
from __future__ import annotations

import os
import random
import sys
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

COUNTER = b"__txn__"
NKEYS = 300
Op = Tuple[bytes, Optional[bytes]]


def txn_rng(seed: int, n: int) -> random.Random:
    return random.Random(f"{seed}:{n}")


def txn_ops(seed: int, n: int, keys: Iterable[bytes]) -> List[Op]:
    """txn_ops returns transaction n's writes: puts (new keys and overwrites, values from empty to 5 pages) and deletes.

    ``keys`` are the keys present before it (the model's, or the store's own).
    """
    rng = txn_rng(seed, n)
    ops: List[Op] = []
    live = sorted(keys)
    for _ in range(rng.choice([1, 1, 2, 3, 4, 6, 10, 16])):
        if live and rng.random() < 0.25:
            k = live.pop(rng.randrange(len(live)))  # once: deleting twice would fail
            ops.append((k, None))
        else:
            k = b"k%04d" % rng.randrange(NKEYS)
            size = rng.choice([0, rng.randint(1, 40), rng.randint(100, 500), rng.randint(1000, 3000), rng.randint(4000, 20000)])
            ops.append((k, b"%d/%s/" % (n, k) + rng.randbytes(size)))
    return ops


def wants_compact(seed: int, n: int) -> bool:
    """wants_compact: whether the writer compacts after transaction n (about one in 25)."""
    return txn_rng(seed, n).random() < 0.04


def apply(model: Dict[bytes, bytes], ops: List[Op]) -> None:
    for k, v in ops:
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v


Ops = Callable[[int, int, Iterable[bytes]], List[Op]]


class Model:
    """Model recomputes the contents after transaction n, moving forward only.

    ``ops``: the function that makes transaction n (``txn_ops`` unless another
    writer, such as tests/crash_campaign.py's, makes its own).
    """

    def __init__(self, seed: int, ops: Optional[Ops] = None) -> None:
        self.seed = seed
        self.ops: Ops = ops or txn_ops
        self.n = 0
        self.data: Dict[bytes, bytes] = {}

    def advance(self, n: int) -> Dict[bytes, bytes]:
        if n < self.n:
            raise ValueError(f"the model is at transaction {self.n}; cannot go back to {n}")
        while self.n < n:
            self.n += 1
            apply(self.data, self.ops(self.seed, self.n, self.data))
        return self.data

    def state(self, n: int) -> Dict[bytes, bytes]:
        """state returns every key the store holds after transaction n (the counter too); moves to n."""
        want = dict(self.advance(n))
        if n:
            want[COUNTER] = b"%d" % n
        return want

    def peek(self, n: int) -> Dict[bytes, bytes]:
        """peek returns the contents after transaction n without moving (n >= the model's)."""
        data = dict(self.data)
        for i in range(self.n + 1, n + 1):
            apply(data, self.ops(self.seed, i, data))
        return data


def main(argv: List[str]) -> None:
    path, seed, page_size = argv[1], int(argv[2]), int(argv[3])
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pagestore.store import Store

    db = Store(path, page_size=page_size, cache_size=page_size * 64, wal_limit=64 * page_size, sync=True)
    n = int(db.get(COUNTER, b"0"))
    # The parent has verified that the store holds the model's state after n,
    # so its keys stand in for the model (no replay from the start).
    keys: Set[bytes] = set(db.keys()) - {COUNTER}
    print(f"START {n}", flush=True)
    while True:
        n += 1
        ops = txn_ops(seed, n, keys)
        with db.transaction() as txn:
            for k, v in ops:
                if v is None:
                    del txn[k]
                else:
                    txn[k] = v
            txn[COUNTER] = b"%d" % n
        for k, v in ops:
            if v is None:
                keys.discard(k)
            else:
                keys.add(k)
        print(f"ACK {n}", flush=True)
        if wants_compact(seed, n):
            db.compact()
            print(f"COMPACTED {n}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
