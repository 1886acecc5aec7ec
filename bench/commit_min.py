"""commit_min: the floor of a durable one-put commit's commit path, built lean (issue 23's floor study).

    python bench/commit_min.py [--records 20000] [--puts 3000] [--real-sync]

A throwaway, not the store's code path: it measures what the commit of a
one-put change costs when written with the fewest calls that still write the
same formats and keep the same rules. Each put is applied by today's code
(``Store._put``, then ``BTree.flush`` and ``Heap.flush``: timed apart as
"apply"); then ``lean_commit`` does what ``Pager.commit``, ``WAL._append``,
the shared index's publish and ``WAL._sync_shared`` do for it:

- page 0 encoded (``Meta.encode``) and every dirty page built into log frames
  (deltas against their newest frames, the checksum chain, the LSN stamped)
  in ONE ``log_frames`` call, written with ONE ``pwrite``;
- the frames' entries and the header published in the shared index
  (``<store>-shm``: the same words, copy 1 then copy 0);
- the sync under LOCK_SYNC with the unsynced / failures / durable words
  (one fcntl each way, one read of the words, three stores), then
  ``fdatasync`` (a no-op unless ``--real-sync``).

No queue, no write lock, no poison bookkeeping, no checkpoint: those are what
the lean path leaves out, and why it is a floor, not a replacement. The
result is checked the hard way: the process that wrote it is abandoned
without a close (a crash), and a fresh process opens the store, recovers
the log and must find every put.

Run against today's path (``bench/commit_floor.py``): the difference is the
commit path's overhead above this floor.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pagestore  # noqa: E402
from pagestore import _native, fileio, shm  # noqa: E402
from pagestore.wal import FRAME_HEADER_SIZE, MAX_CHAIN  # noqa: E402

_WORDS = struct.Struct("<QIIIIIIQII")
_U64 = struct.Struct("<Q")
_HDR = struct.Struct("<8sIIQQIIIQ")
_U32 = struct.Struct("<I")


class Lean:
    """Lean is the writer state a lean commit needs, taken over from an open store's log."""

    def __init__(self, db: Any, real_sync: bool) -> None:
        pager = db._pager
        wal = pager.wal
        self.db, self.pager, self.wal = db, pager, wal
        self.fd = wal.file.fd
        self.index: Dict[int, int] = dict(wal.index)
        self.depth: Dict[int, int] = dict(wal.depth)
        self.end, self.crc, self.salt = wal.committed_end, wal.committed_crc, wal.salt
        self.frames = wal.committed_frames
        self.generation = wal.generation
        sharing = pager.sharing
        self.idx = sharing.index
        self.shm_fd = sharing.index.fd
        self.backfilled = pager.backfilled
        self.page_size = pager.page_size
        self.file_id = pager.meta.file_id
        self.header_before: Any = None
        self.header_at = 0
        self.sync = os.fdatasync if real_sync else (lambda fd: None)
        flock = fileio._FLOCK
        self.lock_arg = flock.pack(fcntl.F_WRLCK, os.SEEK_SET, shm.LOCK_SYNC, 1, 0)
        self.unlock_arg = flock.pack(fcntl.F_UNLCK, os.SEEK_SET, shm.LOCK_SYNC, 1, 0)
        self.change = sharing.index.read_header().change
        # The log's file written with zeros ahead, as the log keeps it (``WAL._reserve``): a write
        # past the end of the file would cost the floor an extension per commit the log never pays.
        size = os.fstat(self.fd).st_size
        want = self.end + (64 << 20)
        if size < want:
            os.pwrite(self.fd, bytes(want - size), size)

    def commit(self) -> None:
        """commit: the pager's dirty pages and page 0 as one durable commit (see the module docstring)."""
        pager = self.pager
        meta = pager.meta
        txn = meta.lsn = meta.lsn + 1
        dirty = pager.dirty
        index, depth = self.index, self.depth
        chunk: List[Tuple[int, Any, Any, int]] = []
        for pgno in sorted(dirty):
            f = dirty[pgno]
            before = f.base
            prev = index.get(pgno) if before is not None else None
            chunk.append((pgno, f.buf, before, prev if prev is not None and depth[prev] < MAX_CHAIN else 0))
            f.dirty = False
            f.base = None
        header = meta.encode()
        prev = self.header_at
        chunk.append((0, header, self.header_before, prev if prev and depth[prev] < MAX_CHAIN else 0))
        dirty.clear()
        offset = self.end
        out, crc, sizes = _native.fast.log_frames(chunk, txn, self.salt, offset, self.crc, meta.page_count,
                                                  self.page_size, txn)
        os.pwrite(self.fd, out, offset)
        entries = array("Q")
        for (pgno, _, _, base), n in zip(chunk, sizes):
            depth[offset] = depth[base] + 1 if base and n != self.page_size else 0
            index[pgno] = offset
            entries.append(pgno | n << 32)
            entries.append(offset)
            offset += FRAME_HEADER_SIZE + n
        self.header_before, self.header_at = header, index[0]
        idx = self.idx
        idx.reserve(self.frames + len(sizes))  # grows the file 4,096 frames at a time
        mm = idx.map
        at = shm.ARRAY_OFFSET + shm.ENTRY_SIZE * self.frames
        mm[at : at + 8 * len(entries)] = entries
        self.frames += len(sizes)
        committed_end = self.end = offset
        self.crc = crc
        self.change += 1
        body = _HDR.pack(shm.SHM_MAGIC, shm.SHM_VERSION, self.page_size, self.file_id, self.generation, self.salt,
                         self.frames, self.backfilled, self.change)
        raw = body + _U32.pack(_native.crc32c(body))
        mm[shm.COPY_SIZE : shm.COPY_SIZE + shm.HEADER_SIZE] = raw
        mm[0 : shm.HEADER_SIZE] = raw
        pager.committed = meta.copy()
        # the sync: LOCK_SYNC, the words, fdatasync, the words
        fcntl.fcntl(self.shm_fd, fcntl.F_OFD_SETLKW, self.lock_arg)
        try:
            from_word, _fsalt, _t, _a, _failures, _u, durable_end, _dsalt, _z = _WORDS.unpack_from(mm, shm.UNSYNCED_OFFSET)[:9]
            if from_word:
                raise RuntimeError("a failed sync's frames to write again: not the floor's case")
            _U64.pack_into(mm, shm.UNSYNCED_OFFSET + 8, self.salt)
            _U64.pack_into(mm, shm.UNSYNCED_OFFSET, durable_end + 1 if durable_end else 1)
            self.sync(self.fd)
            _U64.pack_into(mm, shm.DURABLE_OFFSET + 8, self.salt)
            _U64.pack_into(mm, shm.DURABLE_OFFSET, committed_end)
            _U64.pack_into(mm, shm.UNSYNCED_OFFSET, 0)
        finally:
            fcntl.fcntl(self.shm_fd, fcntl.F_OFD_SETLK, self.unlock_arg)


def _check(path: str, expect: List[Tuple[bytes, bytes]]) -> None:
    """_check: a fresh process opens the abandoned store (recovery) and must find every put."""
    code = (
        "import sys, pickle, pagestore\n"
        "items = pickle.loads(sys.stdin.buffer.read())\n"
        f"db = pagestore.open({path!r})\n"
        "bad = [k for k, v in items if db.get(k) != v]\n"
        "db.check()\n"
        "print(len(items) - len(bad), 'of', len(items), 'lean puts found after recovery; check() clean')\n"
        "sys.exit(1 if bad else 0)\n"
    )
    import pickle

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(expect), env=env, capture_output=True)
    print("  " + (done.stdout.decode().strip() or done.stderr.decode().strip()[-500:]))
    if done.returncode:
        raise SystemExit("the lean commits did not recover")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--puts", type=int, default=3000)
    ap.add_argument("--real-sync", action="store_true")
    args = ap.parse_args()
    d = tempfile.mkdtemp()
    path = os.path.join(d, "s.ps")
    rng = random.Random(0)
    db = pagestore.open(path, sync=False)
    for b in range(0, args.records, 1000):
        with db.transaction() as txn:
            for _ in range(min(1000, args.records - b)):
                txn[rng.randbytes(rng.randint(8, 40))] = rng.randbytes(rng.randint(1, 200))
    db.close()
    db = pagestore.open(path, sync=True)
    db[b"warm"] = b"x"  # a kept write turn, the log's state current
    lean = Lean(db, args.real_sync)
    n = args.puts
    items = [(rng.randbytes(16), rng.randbytes(rng.randint(1, 200))) for _ in range(2 * n)]
    clock = time.thread_time
    apply_t = commit_t = 0.0
    for i, (k, v) in enumerate(items):
        t0 = clock()
        db._pager.begin_operation()
        db._put(k, v)
        db._tree.flush()
        db._heap.flush()
        db._pager._free.flush()
        t1 = clock()
        lean.commit()
        t2 = clock()
        if i >= n:  # the first n warm the caches
            apply_t += t1 - t0
            commit_t += t2 - t1
    print(f"lean durable one-put commits ({'real' if args.real_sync else 'no-op'} sync), store of {args.records} records:")
    print(f"  apply (today's put + flushes) {apply_t / n * 1e6:.1f} us, lean commit {commit_t / n * 1e6:.1f} us, "
          f"whole {(apply_t + commit_t) / n * 1e6:.1f} us CPU per put")
    # abandoned without a close, as a crash leaves it; a fresh process recovers the log
    try:
        _check(path, items)
    finally:
        shutil.rmtree(d)  # never closed: a close would checkpoint from the store's stale memory


if __name__ == "__main__":
    main()
