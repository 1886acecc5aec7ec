"""multiproc_floor: the cheapest writers in several processes taking turns, for bench/multiproc.py's floor.

    python bench/multiproc_floor.py [--seconds 2] [--procs 4] [--sync overlap,serial,slots,locked,batch]
                                    [--turn-us 0,150] [--alone-us 0,50] [--batch 4] [--nosync] [--dir DIR]

Each process, in a loop, does what a turn of pagestore's must do and nothing else: take an
``fcntl`` open-file-description lock on a byte of a shared file (pagestore's LOCK_WRITE; a
blocking ``F_OFD_SETLKW``, so no nap: the kernel hands the lock over), read the published end
of the log from a shared map, catch up (read the bytes the others appended since its last
turn, and checksum them), burn ``--turn-us`` of CPU (a stand-in for the Python work of
pagestore's turn: its catch-up and its commit), append one 200-byte frame (a one-put
commit's deltas: a leaf's, a heap page's, the header's), publish the new end, let the lock
go, and make the frame durable. How (``--sync``, a list: each is measured):

- ``overlap``: ``fdatasync`` outside the lock, the syncs of several processes overlapping;
- ``serial``: the syncs take a second lock, one at a time, and one that finds its frames
  covered by another's (a shared word: the end the last sync covered) syncs nothing
  (pagestore's LOCK_SYNC and durable word before its syncs overlapped);
- ``slots``: pagestore's sync round today (wal.py ``_sync_round``), its waits only: a slot's
  lock held from before the ``fdatasync`` to its outcome, then a wait for every other slot
  busy when it returned (step 5);
- ``locked``: the ``fdatasync`` under the write lock, as sqlite3's WAL mode does (no
  overlap: the ratio cannot pass 1);
- ``batch``: a turn makes up to ``--batch`` commits of its process in a row, each synced under
  the lock (a writer keeping its turn across its own sync while others wait: what it saves is
  the turn's catch-up and hand-off, paid once a batch; what it costs is the overlap of the
  syncs); ``--turn-us`` is burnt for the turn's first commit, ``--alone-us`` for each other one.

No pages, no caches, no tree: Python and system calls only, as pagestore's. Prints commits
per second with 1 process (which takes and lets go of the lock at every commit too, and burns
``--alone-us``: pagestore's writer alone keeps its turn and pays no catch-up) and with
``--procs``, in the order 1, N, N, 1, their ratio, CPU per commit and voluntary context switches. What pagestore's
4-process ratio lacks against ``slots`` at its own turn's CPU is neither the lock's nor the
wake-ups' nor the sync round's waits.
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
SLOTS = 8
MODES = ("overlap", "serial", "slots", "locked", "batch")
DIR = None  # where the files go (``--dir``; default: a temporary directory)


def _lock_arg(kind: int, byte: int) -> bytes:
    return struct.pack("hhqqi", kind, 0, byte, 1, 0)


def _spin(seconds: float) -> None:
    """_spin burns ``seconds`` of CPU (thread time): a stand-in for the Python work of a turn."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def child(path: str, start_at: float, seconds: float, sync: bool, mode: str, turn_us: float, alone_us: float = 0.0,
          batch: int = 1) -> None:
    log = os.open(path + "-wal", os.O_RDWR)
    shm = os.open(path + "-shm", os.O_RDWR)
    mm = mmap.mmap(shm, 4096)
    lock, unlock = _lock_arg(fcntl.F_WRLCK, 100), _lock_arg(fcntl.F_UNLCK, 100)
    slock, sunlock = _lock_arg(fcntl.F_WRLCK, 101), _lock_arg(fcntl.F_UNLCK, 101)
    seen = 0
    turn = turn_us / 1e6
    me = os.getpid() % SLOTS
    time.sleep(max(0.0, start_at - time.time()))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        fcntl.fcntl(shm, F_OFD_SETLKW, lock)
        (published,) = struct.unpack_from("<Q", mm, 0)
        if published > seen:
            zlib.crc32(os.pread(log, published - seen, seen))  # the catch-up: the others' frames
        if turn:
            _spin(turn)
        if mode == "batch":
            for i in range(batch):  # the turn kept for up to ``batch`` commits, each synced under the lock
                if i:
                    if time.monotonic() >= end:
                        break
                    if alone_us:
                        _spin(alone_us / 1e6)
                os.pwrite(log, FRAME, published)
                published += len(FRAME)
                struct.pack_into("<Q", mm, 0, published)
                if sync:
                    os.fdatasync(log)
                n += 1
            seen = published
            fcntl.fcntl(shm, F_OFD_SETLK, unlock)
            continue
        os.pwrite(log, FRAME, published)
        struct.pack_into("<Q", mm, 0, published + len(FRAME))
        seen = published + len(FRAME)
        if sync and mode == "locked":
            os.fdatasync(log)  # sqlite3's WAL: the sync under the write lock
        fcntl.fcntl(shm, F_OFD_SETLK, unlock)
        if sync and mode == "serial":
            fcntl.fcntl(shm, F_OFD_SETLKW, slock)
            # pagestore's durable word: a sync that began after this commit was published
            # covered it; then there is nothing to sync
            if struct.unpack_from("<Q", mm, 8)[0] < seen:
                upto = struct.unpack_from("<Q", mm, 0)[0]
                os.fdatasync(log)
                struct.pack_into("<Q", mm, 8, upto)
            fcntl.fcntl(shm, F_OFD_SETLK, sunlock)
        elif sync and mode == "slots":
            # pagestore's sync round (wal.py ``_sync_round``), its waits only: a slot held from
            # before the fsync to its outcome; once the fsync returned and its slot is let go, a
            # wait for every other slot busy at that moment (its lock taken shared: step 5).
            mine = 200 + me
            fcntl.fcntl(shm, F_OFD_SETLKW, _lock_arg(fcntl.F_WRLCK, mine))
            mm[16 + me] = 1
            os.fdatasync(log)
            mm[16 + me] = 0
            busy = [i for i in range(SLOTS) if mm[16 + i]]
            fcntl.fcntl(shm, F_OFD_SETLK, _lock_arg(fcntl.F_UNLCK, mine))
            for i in busy:
                fcntl.fcntl(shm, F_OFD_SETLKW, _lock_arg(fcntl.F_RDLCK, 200 + i))
                fcntl.fcntl(shm, F_OFD_SETLK, _lock_arg(fcntl.F_UNLCK, 200 + i))
        elif sync and mode == "overlap":
            os.fdatasync(log)
        n += 1
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print("COUNT", n, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, r1.ru_nvcsw - r0.ru_nvcsw, flush=True)


def run(procs: int, seconds: float, sync: bool, mode: str, turn_us: float, alone_us: float = 0.0, batch: int = 1) -> float:
    where = tempfile.mkdtemp(prefix="multiproc-floor-", dir=DIR)
    try:
        path = os.path.join(where, "s")
        open(path + "-wal", "wb").close()
        with open(path + "-shm", "wb") as f:
            f.write(bytes(4096))
        start_at = time.time() + 0.5 + 0.1 * procs
        args = [repr(start_at), repr(seconds), str(int(sync)), mode, repr(turn_us), repr(alone_us), str(batch)]
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
    print(f"floor {procs} process{'es' if procs > 1 else '  '} sync={mode if sync else 0} {total / seconds:9.0f} commits/s   "
          f"user {user / total * 1e6:4.0f} us + sys {system / total * 1e6:4.0f} us a commit   "
          f"{switches / total:.2f} voluntary switches   counts {counts}", flush=True)
    return total / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--sync", default="overlap", help="how the syncs run, a comma-separated list of: " + ", ".join(MODES))
    ap.add_argument("--serial-sync", action="store_true", help="the same as --sync serial")
    ap.add_argument("--turn-us", default="0", help="CPU microseconds burnt in each turn, under the lock "
                                                  "(a comma-separated list): the Python work of pagestore's turn")
    ap.add_argument("--alone-us", default=None, help="CPU microseconds burnt in each commit of the 1-process runs "
                                                      "(a list, paired with --turn-us; default: the same): pagestore's "
                                                      "writer alone keeps its turn and pays no catch-up")
    ap.add_argument("--batch", type=int, default=4, help="--sync batch: commits a turn makes at most")
    ap.add_argument("--nosync", action="store_true", help="also without syncs")
    ap.add_argument("--dir", help="where the files go (/dev/shm: syncs that cost nothing, the CPU-bound regime "
                                  "of a fast disk)")
    ap.add_argument("--role", nargs=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        path, start, seconds, sync, mode, turn_us, alone_us, batch = args.role
        child(path, float(start), float(seconds), sync == "1", mode, float(turn_us), float(alone_us), int(batch))
        return
    global DIR
    DIR = args.dir
    modes = ["serial"] if args.serial_sync else args.sync.split(",")
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"--sync: {mode!r} is none of {', '.join(MODES)}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    cases = [(True, m) for m in modes] + ([(False, "overlap")] if args.nosync else [])
    turns = [float(t) for t in args.turn_us.split(",")]
    alones = [float(t) for t in args.alone_us.split(",")] if args.alone_us is not None else turns
    if len(alones) != len(turns):
        raise SystemExit("--alone-us: as many figures as --turn-us")
    for turn_us, alone_us in zip(turns, alones):
        for sync, mode in cases:
            # 1, N, N, 1: the disk's speed drifts on a shared machine
            half = args.seconds / 2
            # the 1-process runs are the same in every mode: one process keeps its turn (batch: one commit a turn)
            first = run(1, half, sync, mode, alone_us, alone_us, 1)
            many = (run(args.procs, half, sync, mode, turn_us, alone_us, args.batch)
                    + run(args.procs, half, sync, mode, turn_us, alone_us, args.batch)) / 2
            one = (first + run(1, half, sync, mode, alone_us, alone_us, 1)) / 2
            what = f", batch {args.batch}" if mode == "batch" else ""
            print(f"  ratio {args.procs}/1 (sync={mode if sync else 0}{what}, turn {turn_us:.0f} us, alone {alone_us:.0f} us): "
                  f"{many / one:.2f}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
