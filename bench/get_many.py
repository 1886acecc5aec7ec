"""get_many.py: Store.get_many of a batch of random keys against a loop of ``db[k]``, in one run.

    python bench/get_many.py --records 100000 --batch 10000 --repeat 3

Loads a store (keys inserted in random order, values of --value-size
bytes, or 1 B to 20 KB with --value-size 0), then times, alternately and --repeat times each: a loop of
``db[k]`` over the batch, and ``db.get_many(batch)``; prints the best rate
of each and their ratio. Does the same on an ``keys="int"`` store with the
batch as a numpy int64 array (skipped without numpy). The two read the
same keys, and the results are compared.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

try:
    import pagestore
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import pagestore


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _size(rng: random.Random, value_size: int) -> int:
    """_size: value_size, or for 0 a size from 1 B to 20 KB, log-uniform (the bench's spread)."""
    return value_size if value_size > 0 else int(2 ** rng.uniform(0, 14.29))


def run(kind: str, path: str, records: int, batch: int, value_size: int, repeat: int, seed: int) -> float:
    rng = random.Random(seed)
    ids = list(range(records))
    rng.shuffle(ids)
    if kind == "bytes":
        db = pagestore.open(path)
        keys = [b"key:%012d" % i for i in ids]
    else:
        db = pagestore.open(path, keys="int")
        keys = [i * 7919 for i in ids]  # spread out, several bytes each
    with db:
        for at in range(0, records, 1000):
            db.put_many((k, rng.randbytes(_size(rng, value_size))) for k in keys[at : at + 1000])
        want = rng.sample(keys, batch)
        if kind == "int":
            import numpy as np

            arg = np.array(want, dtype=np.int64)
        else:
            arg = want
        assert db.get_many(arg) == [db[k] for k in want]

        def loop() -> None:
            for k in want:
                db[k]

        def many() -> None:
            db.get_many(arg)

        t_loop = t_many = float("inf")
        for _ in range(repeat):  # alternate, so both see the same machine
            t_loop = min(t_loop, _best(loop, 1))
            t_many = min(t_many, _best(many, 1))
        ratio = t_loop / t_many
        print(
            f"{kind:>5} keys, {records:,} records of {value_size or '1-20000'} B, batch {batch:,}: "
            f"loop of db[k] {batch / t_loop / 1e3:7.1f}k keys/s, get_many {batch / t_many / 1e3:7.1f}k keys/s, "
            f"ratio {ratio:.2f}x"
        )
        return ratio


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--value-size", type=int, default=100, help="bytes per value; 0: 1 B to 20 KB, log-uniform")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ps-get-many-") as d:
        run("bytes", os.path.join(d, "bytes.ps"), args.records, args.batch, args.value_size, args.repeat, args.seed)
        try:
            import numpy  # noqa: F401
        except ImportError:
            print("int keys: skipped (no numpy)")
            return 0
        run("int", os.path.join(d, "int.ps"), args.records, args.batch, args.value_size, args.repeat, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
