"""multiproc_floor: the cheapest writers in several processes taking turns, for bench/multiproc.py's floor.

    python bench/multiproc_floor.py [--seconds 2] [--procs 4]

Each process, in a loop, does what a turn of pagestore's must do and nothing else: take an
``fcntl`` open-file-description lock on a byte of a shared file (pagestore's LOCK_WRITE),
read the published end of the log from a shared map, catch up (read the bytes the others
appended since its last turn, and checksum them), append one 200-byte frame (a one-put
commit's deltas: a leaf's, a heap page's, the header's), publish the new end, let the lock go,
then ``fdatasync`` the log outside the lock. No pages, no caches, no tree: Python and system
calls only, as pagestore's. ``--serial-sync``: the syncs take a second lock, one at a time,
and one that finds its frames covered by another's (a shared word: the end the last sync
covered) syncs nothing, as pagestore's do (LOCK_SYNC, the durable word); without it they overlap. Prints commits per second with 1 process and
with ``--procs``, synced and not, their ratio, CPU per commit and voluntary context switches.
What pagestore's turn costs above this is its own work (catch-up, tree, heap, commit), not
the lock's or the wake-ups'.
"""
from __future__ import annotations

import argparse
import fcntl
import mmap
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

F_OFD_SETLK, F_OFD_SETLKW = 37, 38
FRAME = b"k" * 40 + b"v" * 100 + b"h" * 60


def _lock_arg(kind: int, byte: int) -> bytes:
    return struct.pack("hhqqi", kind, 0, byte, 1, 0)


def child(path: str, start_at: float, seconds: float, sync: bool, serial: bool) -> None:
    log = os.open(path + "-wal", os.O_RDWR)
    shm = os.open(path + "-shm", os.O_RDWR)
    mm = mmap.mmap(shm, 4096)
    lock, unlock = _lock_arg(fcntl.F_WRLCK, 100), _lock_arg(fcntl.F_UNLCK, 100)
    slock, sunlock = _lock_arg(fcntl.F_WRLCK, 101), _lock_arg(fcntl.F_UNLCK, 101)
    seen = 0
    time.sleep(max(0.0, start_at - time.time()))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        fcntl.fcntl(shm, F_OFD_SETLKW, lock)
        (published,) = struct.unpack_from("<Q", mm, 0)
        if published > seen:
            zlib.crc32(os.pread(log, published - seen, seen))  # the catch-up: the others' frames
        os.pwrite(log, FRAME, published)
        struct.pack_into("<Q", mm, 0, published + len(FRAME))
        seen = published + len(FRAME)
        fcntl.fcntl(shm, F_OFD_SETLK, unlock)
        if sync:
            if serial:
                fcntl.fcntl(shm, F_OFD_SETLKW, slock)
                # pagestore's durable word: a sync that began after this commit was published
                # covered it; then there is nothing to sync
                if struct.unpack_from("<Q", mm, 8)[0] < seen:
                    upto = struct.unpack_from("<Q", mm, 0)[0]
                    os.fdatasync(log)
                    struct.pack_into("<Q", mm, 8, upto)
                fcntl.fcntl(shm, F_OFD_SETLK, sunlock)
            else:
                os.fdatasync(log)
        n += 1
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print("COUNT", n, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, r1.ru_nvcsw - r0.ru_nvcsw, flush=True)


def run(procs: int, seconds: float, sync: bool, serial: bool) -> float:
    where = tempfile.mkdtemp(prefix="multiproc-floor-")
    try:
        path = os.path.join(where, "s")
        open(path + "-wal", "wb").close()
        with open(path + "-shm", "wb") as f:
            f.write(bytes(4096))
        start_at = time.time() + 0.5 + 0.1 * procs
        args = [repr(start_at), repr(seconds), str(int(sync)), str(int(serial))]
        kids = [subprocess.Popen([sys.executable, __file__, "--role", path, *args], stdout=subprocess.PIPE, text=True)
                for _ in range(procs)]
        counts, user, system, switches = [], 0.0, 0.0, 0
        for k in kids:
            out = k.communicate(timeout=seconds + 60)[0].split("COUNT")[1].split()
            counts.append(int(out[0]))
            user += float(out[1])
            system += float(out[2])
            switches += int(out[3])
    finally:
        shutil.rmtree(where, ignore_errors=True)
    total = sum(counts)
    print(f"floor {procs} process{'es' if procs > 1 else '  '} sync={int(sync)} {total / seconds:9.0f} commits/s   "
          f"user {user / total * 1e6:4.0f} us + sys {system / total * 1e6:4.0f} us a commit   "
          f"{switches / total:.2f} voluntary switches   counts {counts}", flush=True)
    return total / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--serial-sync", action="store_true", help="syncs one at a time under a second lock")
    ap.add_argument("--role", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        path, start, seconds, sync, serial = args.role
        child(path, float(start), float(seconds), sync == "1", serial == "1")
        return
    print(f"load average {os.getloadavg()[0]:.2f}")
    for sync in (True, False):
        # 1, N, 1: the disk's speed drifts on a shared machine
        half = args.seconds / 2
        one = (run(1, half, sync, args.serial_sync) + run(1, half, sync, args.serial_sync)) / 2
        many = run(args.procs, args.seconds, sync, args.serial_sync)
        print(f"  ratio {args.procs}/1 (sync={int(sync)}): {many / one:.2f}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
