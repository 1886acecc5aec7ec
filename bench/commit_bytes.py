"""commit_bytes: what one durable single put writes to the log, and what bytes cost a sync (issue 23).

    python bench/commit_bytes.py [--records 20000] [--puts 1000] [--syncs 2000] [--values small|mixed] [--dir DIR]

Loads ``--records`` records, reopens with sync=True and makes ``--puts``
single durable puts (new 16-byte keys; values of 1-200 bytes, or with
``--values mixed`` pagestore.bench's mix, a twentieth of them 4-20 KiB, as
compare.py's durable puts: their overflow pages are logged whole), recording every
frame the log's ``log_append`` builds: per commit, how many frames of each
page type (heap, leaf, free-space map, header), their payload bytes (a
delta, or the whole page every MAX_CHAIN + 1 frames of a page) and the
frame headers. Then ``--syncs`` rounds of (write N bytes + ``fdatasync``)
into a file zero-written ahead (as the log's space is, ``wal.GROW_BYTES``),
N taking turns among 512 B to 16 KiB so the disk's drift hits them alike:
the median and 10th percentile of each say what a commit's bytes cost its
sync on this disk. SQLite writes one 4 KiB frame (plus 24 bytes) per small
commit.
"""
from __future__ import annotations

import argparse
import array
import collections
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any, DefaultDict, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import _native, bench, wal  # noqa: E402
from pagestore import format as fmt  # noqa: E402

SIZES = (512, 2048, 4096, 8192, 16384)
TYPES = {fmt.PAGE_HEAP: "heap", fmt.PAGE_LEAF: "leaf", fmt.PAGE_INTERNAL: "internal", fmt.PAGE_FSM: "fsm map",
         fmt.PAGE_OVERFLOW: "overflow"}


class _Recording:
    """_Recording: ``_native.fast`` with ``log_append`` wrapped to note each frame (page type, payload size).

    ``log_append`` returns each frame's shared-index entry (two little-endian u64: ``pgno | n << 32``
    and the offset), so the payload size ``n`` of each frame is read from there."""

    def __init__(self, fast: Any, log: List[List[Tuple[str, int]]]) -> None:
        self._fast, self._log = fast, log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fast, name)

    def log_append(self, frames: List[Tuple[int, Any, Any]], *args: Any) -> Any:
        out, crc, entries = self._fast.log_append(frames, *args)
        words = array.array("Q", entries)
        if sys.byteorder != "little":  # pragma: no cover
            words.byteswap()
        sizes = [w >> 32 for w in words[0::2]]
        self._log.append([("header" if pgno == 0 else TYPES.get(page[fmt.OFF_TYPE], "other"), n)
                          for (pgno, page, _), n in zip(frames, sizes)])
        return out, crc, entries


def _value(rng: random.Random, mix: Tuple[Tuple[float, int, int], ...]) -> bytes:
    x = rng.random()
    for share, lo, hi in mix:
        if x < share:
            return rng.randbytes(rng.randint(lo, hi))
        x -= share
    return rng.randbytes(rng.randint(mix[-1][1], mix[-1][2]))


def frames_per_put(records: int, puts: int, dirpath: str, values: str) -> None:
    mix = bench.VALUE_DISTS[values]
    d = tempfile.mkdtemp(dir=dirpath)
    try:
        path = os.path.join(d, "s.ps")
        rng = random.Random(0)
        db = pagestore.open(path, sync=False)
        for b in range(0, records, 1000):
            with db.transaction() as txn:
                for _ in range(min(1000, records - b)):
                    txn[rng.randbytes(rng.randint(8, 40))] = rng.randbytes(rng.randint(1, 200))
        db.close()
        db = pagestore.open(path, sync=True)
        for _ in range(puts):  # warm: the log's chains past their first whole images
            db[rng.randbytes(16)] = _value(rng, mix)
        log: List[List[Tuple[str, int]]] = []
        real = _native.fast
        _native.fast = _Recording(real, log)
        try:
            for _ in range(puts):
                db[rng.randbytes(16)] = _value(rng, mix)
        finally:
            _native.fast = real
        db.close()
    finally:
        shutil.rmtree(d)
    by: DefaultDict[str, List[int]] = collections.defaultdict(list)
    for commit in log:
        for kind, n in commit:
            by[kind].append(n)
    frames = sum(len(c) for c in log)
    payload = sum(n for c in log for _, n in c)
    print(f"{len(log)} durable one-put commits ({values} values), store of {records} records:")
    print(f"  {frames / len(log):.2f} frames per commit, {payload / len(log):.0f} payload bytes "
          f"+ {wal.FRAME_HEADER_SIZE * frames / len(log):.0f} of frame headers = "
          f"{(payload + wal.FRAME_HEADER_SIZE * frames) / len(log):.0f} bytes per commit")
    for kind, ns in sorted(by.items()):
        whole = sum(1 for n in ns if n >= 4096)
        print(f"  {kind:8s} {len(ns) / len(log):4.2f} per commit, mean payload {sum(ns) / len(ns):6.0f} B, "
              f"whole images {whole / len(ns):5.1%}, mean delta {sum(n for n in ns if n < 4096) / max(1, len(ns) - whole):5.0f} B")


def sync_cost(count: int, dirpath: str) -> None:
    fd, path = tempfile.mkstemp(prefix="syncbytes-", dir=dirpath)
    try:
        total = 8 << 20
        os.pwrite(fd, bytes(total), 0)
        os.fsync(fd)
        buf = os.urandom(max(SIZES))
        took: Dict[int, List[float]] = {n: [] for n in SIZES}
        off = 0
        for i in range(count):
            n = SIZES[i % len(SIZES)]
            if off + n > total:
                off = 0
            t = time.perf_counter()
            os.pwrite(fd, buf[:n], off)
            os.fdatasync(fd)
            took[n].append(time.perf_counter() - t)
            off += n
    finally:
        os.close(fd)
        os.unlink(path)
    print(f"write + fdatasync into zero-written space, {count} in turns, in {os.path.abspath(dirpath)}:")
    for n, ts in took.items():
        ts.sort()
        print(f"  {n:6d} B  median {ts[len(ts) // 2] * 1e6:7.0f} us  p10 {ts[len(ts) // 10] * 1e6:6.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--puts", type=int, default=1000)
    ap.add_argument("--syncs", type=int, default=2000)
    ap.add_argument("--values", choices=sorted(bench.VALUE_DISTS), default="small")
    ap.add_argument("--dir", default=os.environ.get("DIR", "."))
    args = ap.parse_args()
    frames_per_put(args.records, args.puts, args.dir, args.values)
    if args.syncs:
        sync_cost(args.syncs, args.dir)


if __name__ == "__main__":
    main()
