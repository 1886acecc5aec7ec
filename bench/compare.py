"""compare.py: run the pagestore.bench workload on several engines and print the table.

    python bench/compare.py --records 200000 --engines pagestore,sqlite,lmdb --json out.json

Engines: pagestore, sqlite, lmdb, rocksdb (rocksdict), leveldb (plyvel); the
ones not installed are skipped with a note. All the work is in
pagestore/bench.py; this file only parses arguments and shows progress.
Exits 1 if an engine failed its checks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

try:
    from pagestore import bench
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pagestore import bench


def _progress_printer(stream):
    """_progress_printer: a callback that rewrites one status line, at most 10 times a second."""
    state = {"last": 0.0, "phase": None}

    def progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == state["phase"] and done < total and now - state["last"] < 0.1:
            return
        state["last"], state["phase"] = now, phase
        pct = 100.0 * done / total if total else 100.0
        stream.write(f"\r{phase:<24} {done:>9}/{total:<9} {pct:5.1f}%\x1b[K")
        stream.flush()

    return progress


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records in the initial load (default 100000)")
    parser.add_argument("--engines", default=",".join(bench.ENGINES),
                        help=f"comma-separated (default: {','.join(bench.ENGINES)})")
    parser.add_argument("--page-size", type=int, default=4096, help="pagestore and sqlite page size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where the temporary stores go (default: system temp dir)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)

    engines = [e for e in args.engines.split(",") if e.strip()]
    show = not args.quiet and sys.stderr.isatty()
    results = bench.run(engines, n=args.records, page_size=args.page_size, seed=args.seed,
                        progress=_progress_printer(sys.stderr) if show else None, workdir=args.workdir)
    if show:
        sys.stderr.write("\r\x1b[K")
    print(bench.format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            f.write(bench.to_json(results))
            f.write("\n")
    return 1 if any("error" in e for e in results["engines"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
