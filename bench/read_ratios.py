"""read_ratios.py: the read phases of bench/compare.py, engines interleaved, for steadier ratios.

    python bench/read_ratios.py --records 200000 --rounds 3

Loads ``pagestore.bench``'s dataset into each engine through the same
adapters and batches as compare.py (1000 records per durable transaction),
keeps every store open, then runs the read phases right after the inserts,
as compare.py does, but interleaved: point reads and ranges alternate
between the engines every 5,000 gets or 100 ranges (each engine's time
summed over its chunks), full scans and get_many round by round, and each
engine's best round counts. On a shared machine a noisy stretch then hits
every engine alike, where compare.py's engines run one after another. Phases: point reads (compare.py's 100,000
random gets), one full scan, 2000 ranges of 50 (``islice`` of
``items(start=k)``), and for pagestore ``get_many`` of 10,000 random keys
against a loop of ``db[k]`` over the same keys (values of 1 B to 20 KB:
the dataset's mix). Prints rates per engine and the ratios the issue's
targets name.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List

try:
    from pagestore import bench
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pagestore import bench


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="pagestore,sqlite,lmdb")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.records
    ds = bench.make_dataset(n, args.seed)
    root = tempfile.mkdtemp(prefix="read-ratios-")
    engines: Dict[str, bench.Adapter] = {}
    try:
        for name in args.engines.split(","):
            if bench.available_engines().get(name) is not None:
                print(f"{name}: skipped ({bench.available_engines()[name]})")
                continue
            a = bench.get_adapter(name)
            os.mkdir(os.path.join(root, name))
            a.open(os.path.join(root, name), durable=True)
            t = time.perf_counter()
            for i in range(0, n, bench.BATCH):
                a.put_batch([ds.record(j) for j in range(i, min(n, i + bench.BATCH))])
            print(f"{name}: loaded {n:,} records in {time.perf_counter() - t:.1f} s", flush=True)
            engines[name] = a
        rng = random.Random(f"{args.seed}:reads")
        probe = [ds.keys[i] for i in rng.sample(range(n), min(n, bench.MAX_READS))]
        rng = random.Random(f"{args.seed}:ranges")
        starts = [ds.keys[rng.randrange(n)] for _ in range(bench.RANGE_SCANS)]
        batch = probe[:10_000]

        # Point reads and ranges alternate between the engines chunk by chunk (5,000 gets, 100
        # ranges), so that every engine reads through the same stretch of machine noise; each
        # engine's time is summed over its chunks, per round, and its best round counts.
        best: Dict[str, Dict[str, float]] = {name: {} for name in engines}

        def interleave(phase: str, items: List[bytes], chunk: int, op: Callable[[bench.Adapter, bytes], object]) -> None:
            for _ in range(args.rounds):
                spent = {name: 0.0 for name in engines}
                for at in range(0, len(items), chunk):
                    part = items[at:at + chunk]
                    for name, a in engines.items():
                        t = time.perf_counter()
                        for k in part:
                            op(a, k)
                        spent[name] += time.perf_counter() - t
                for name in engines:
                    best[name][phase] = max(best[name].get(phase, 0.0), len(items) / spent[name])

        interleave("point_reads", probe, 5000, lambda a, k: a.get(k))
        interleave("ranges_of_50", starts, 100, lambda a, k: a.range_scan(k, bench.RANGE_LEN))
        for _ in range(args.rounds):
            for name, a in engines.items():
                t = time.perf_counter()
                a.scan_all()
                best[name]["full_scan"] = max(best[name].get("full_scan", 0.0), n / (time.perf_counter() - t))
        if "pagestore" in engines:
            db = engines["pagestore"].db  # type: ignore[attr-defined]
            for _ in range(args.rounds):  # alternate, so both see the same machine
                t = time.perf_counter()
                for k in batch:
                    db[k]
                loop = time.perf_counter() - t
                t = time.perf_counter()
                db.get_many(batch)
                many = time.perf_counter() - t
                ps = best["pagestore"]
                ps["get_many"] = max(ps.get("get_many", 0.0), len(batch) / many)
                ps["loop_of_get"] = max(ps.get("loop_of_get", 0.0), len(batch) / loop)
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; best of {args.rounds} rounds, rates per second")
        for name in engines:
            print(f"{name:10} " + "  ".join(f"{p} {r / 1e3:8.1f}k" for p, r in best[name].items()))
        ps = best.get("pagestore", {})
        for other in ("lmdb", "sqlite"):
            if other in best:
                print(f"pagestore / {other}: " + "  ".join(f"{p} {ps[p] / best[other][p]:.2f}x"
                                                        for p in ("point_reads", "full_scan", "ranges_of_50")))
        if "get_many" in ps:
            print(f"pagestore get_many / loop of db[k]: {ps['get_many'] / ps['loop_of_get']:.2f}x")
    finally:
        for a in engines.values():
            a.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
