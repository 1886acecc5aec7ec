"""fsync_rates: raw write + fdatasync rates of this disk, the floor under a durable commit.

    python bench/fsync_rates.py [--count 300] [--block 4096,16384] [--dir DIR]

For each block size, four ways to prepare the space a log writes into, each
in a fresh file, ``count`` times (write one block + ``os.fdatasync``):

    append         each write extends the file (the size changes at every sync)
    fallocate      overwrite space reserved by ``posix_fallocate`` (unwritten
                   extents on ext4: the first write to each converts it, which
                   is a metadata change the sync must commit)
    zero-written   overwrite space first filled with zeros by ``write`` and synced
                   (data blocks only: what pagestore's log does, see wal.GROW_BYTES)
    reused         overwrite a file's first blocks again and again, as a log reused
                   from its start after a checkpoint does

A durable commit of one small put writes about 4 pages (heap page, leaf,
free-space map page, header), so 16 KiB is the block size to compare with.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Dict


def rate(dirpath: str, mode: str, count: int, block: int) -> float:
    sync = getattr(os, "fdatasync", os.fsync)
    buf = os.urandom(block)
    fd, path = tempfile.mkstemp(prefix="fsync-", dir=dirpath)
    try:
        if mode == "fallocate":
            os.posix_fallocate(fd, 0, block * count)
            os.fsync(fd)
        elif mode == "zero-written":
            os.pwrite(fd, bytes(block * count), 0)
            os.fsync(fd)
        elif mode == "reused":
            os.pwrite(fd, bytes(block * 16), 0)
            os.fsync(fd)
        t0 = time.perf_counter()
        for i in range(count):
            off = (i % 16) * block if mode == "reused" else i * block
            os.pwrite(fd, buf, off)
            sync(fd)
        return count / (time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)


MODES = ("append", "fallocate", "zero-written", "reused")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--block", default="4096,16384")
    ap.add_argument("--dir", default=os.environ.get("DIR", "."))
    args = ap.parse_args()
    results: Dict[str, Dict[str, float]] = {}
    for block in (int(b) for b in args.block.split(",")):
        results[str(block)] = {m: rate(args.dir, m, args.count, block) for m in MODES}
    print(f"write + fdatasync per second, {args.count} each, in {os.path.abspath(args.dir)}")
    print(f"{'block':>7}  " + "  ".join(f"{m:>12}" for m in MODES))
    for block, row in results.items():
        print(f"{block:>7}  " + "  ".join(f"{row[m]:12.0f}" for m in MODES))


if __name__ == "__main__":
    main()
