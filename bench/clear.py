"""clear: ``db.clear()`` and ``db.delete_range()`` of half the records, against sqlite3's ``DELETE FROM``.

    python bench/clear.py [--records 1000000] [--value 100] [--dir DIR]

Each engine gets the same records (16-byte keys in ascending order, values
of ``--value`` bytes), loaded in one transaction, then: delete every record
in one durable commit (``clear()`` / ``DELETE FROM t``), reload, delete the
lower half in one durable commit (``delete_range(stop=mid)`` / ``DELETE FROM
t WHERE k < ?``). Times are wall clock of the delete alone, commit and sync
included (pagestore: the commit's checkpoint too, when the log passed its
threshold; sqlite3: WAL mode, synchronous=FULL, its automatic checkpoint).
"written" is what the process passed to write() meanwhile (/proc/self/io
wchar; pagestore's writes are all write() calls), then the file sizes after.
Issue 21 asks for one commit each at page speed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402


def wchar() -> int:
    """wchar: bytes this process has passed to write() so far (Linux), or 0."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def records(n: int, size: int) -> Iterator[Tuple[bytes, bytes]]:
    value = b"v" * size
    for i in range(n):
        yield b"key%013d" % i, value


def measure(fn: Callable[[], object]) -> Tuple[float, int]:
    w0 = wchar()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, wchar() - w0


def size_of(*paths: str) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p))


def bench_pagestore(d: str, n: int, size: int) -> Dict[str, Tuple[float, int, int, int]]:
    path = os.path.join(d, "p.ps")
    db = pagestore.open(path, sync=True)
    out = {}
    db.update(records(n, size))
    lsn = db.snapshot().lsn
    t, w = measure(db.clear)
    assert len(db) == 0 and db.snapshot().lsn == lsn + 1
    out["clear"] = (t, w, size_of(path, path + "-wal"), 1)
    db.update(records(n, size))
    lsn = db.snapshot().lsn
    counted: List[int] = []
    t, w = measure(lambda: counted.append(db.delete_range(stop=b"key%013d" % (n // 2))))
    assert counted == [n // 2] and len(db) == n - n // 2 and db.snapshot().lsn == lsn + 1
    out["delete half"] = (t, w, size_of(path, path + "-wal"), 1)
    db.close()
    return out


def bench_sqlite(d: str, n: int, size: int) -> Dict[str, Tuple[float, int, int, int]]:
    path = os.path.join(d, "s.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    out = {}

    def load() -> None:
        con.execute("BEGIN")
        con.executemany("INSERT INTO t VALUES (?, ?)", records(n, size))
        con.execute("COMMIT")

    def run(sql: str, *args: object) -> None:
        con.execute("BEGIN")
        con.execute(sql, args)
        con.execute("COMMIT")

    load()
    t, w = measure(lambda: run("DELETE FROM t"))
    out["clear"] = (t, w, size_of(path, path + "-wal"), 1)
    load()
    t, w = measure(lambda: run("DELETE FROM t WHERE k < ?", b"key%013d" % (n // 2)))
    out["delete half"] = (t, w, size_of(path, path + "-wal"), 1)
    con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--dir", default=os.environ.get("DIR", "."))
    args = ap.parse_args()
    d = tempfile.mkdtemp(dir=args.dir)
    try:
        ps = bench_pagestore(d, args.records, args.value)
        sq = bench_sqlite(d, args.records, args.value)
    finally:
        shutil.rmtree(d)
    mib = 1 << 20

    def size(n: int) -> str:
        """size: 11 columns, in MiB, or KiB below one MiB (a clear writes a few pages)."""
        return f"{n / mib:8.1f}MiB" if n >= mib else f"{n / 1024:8.1f}KiB"

    print(f"{args.records:,} records (16-byte keys, {args.value}-byte values), one durable commit per delete")
    print(f"{'':14}{'pagestore':>32}{'sqlite3 DELETE FROM':>34}")
    print(f"{'':14}{'time':>10}{'written':>11}{'files':>11}{'time':>12}{'written':>11}{'files':>11}")
    for op in ("clear", "delete half"):
        (pt, pw, pf, _), (st, sw, sf, _) = ps[op], sq[op]
        print(f"{op:14}{pt:9.3f}s{size(pw)}{size(pf)}{st:11.3f}s{size(sw)}{size(sf)}")


if __name__ == "__main__":
    main()
