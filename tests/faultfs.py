"""faultfs: a power-loss double for pagestore's File seam (pagestore/fileio.py).

A ``Disk`` keeps, for every file opened through its ``opener``, the bytes that
are durable and the writes (and truncates) not yet synced, in order. Reads see
durable + pending. ``sync`` makes that file's pending operations durable.
``crash(mode)`` then turns the disk into what a power cut would leave:

    "drop"      every unsynced operation is lost
    "tear"      per file, a random prefix of the unsynced operations survives,
                the last one torn at a 512-byte sector boundary (a sector is
                atomic, a write is not)
    "scramble"  per file, each unsynced write keeps a random subset of its
                sectors and each unsynced truncate survives or not: a disk
                cache that reorders freely between two syncs
    "kill"      every operation survives: the process died (kill -9), the
                kernel did not, and it holds every write the process made

All randomness comes from the seed, so a failing case replays exactly.

Counting: every write, sync and truncate is an I/O event, numbered from 1.
``Disk(fail_at=k)`` raises ``PowerCut`` from event k *before* it takes effect,
so the workload stops with exactly events 1..k-1 done; the caller then calls
``crash()``. ``Disk(eio_at=k)`` instead fails event k alone with
``OSError(EIO)`` and carries on, as a flaky device does. After a crash every
file handle opened before it is dead (any call raises ``PowerCut``), and locks
are gone.

What a failed event leaves, ``Disk(model=...)``:

    "linux"  (the default) what Linux does. A failed fsync (Linux 4.13+, the
             PostgreSQL "fsyncgate" of 2018) writes a random subset of the
             file's pending sectors to the disk and marks ALL of them clean:
             reads still see every write (the page cache holds them), but the
             rest are lost at the next crash, even if a later fsync succeeds,
             for that fsync has nothing left to write. A failed write may have
             written a prefix of its data (whole sectors) before it failed. A
             failed truncate changes nothing.
             The failure is also REPORTED as Linux's errseq reports it (4.13+,
             ``mapping->wb_err``): once to every open file description (FaultFile)
             that was open when it happened, at its next sync, which raises
             EIO although it wrote what it had (its pending writes are durable);
             a handle opened afterwards never hears of it, unless nobody had
             been told yet (then the next opener is). Its sync that follows
             succeeds, with the dropped sectors still lost.
    "kind"   the failed event changes nothing, and pending writes stay pending
             until a later sync makes them durable: kinder than any real
             kernel; kept only to show what it used to hide.

Tags: ``Disk(watch=(name, ...))`` records, for each I/O event, the innermost
function of the call stack whose name is in ``watch`` (``Disk.tags``: event
number -> name; ``Disk.kinds``: "write", "sync" or "truncate"), so that a
test can show which events of, say,
``WAL.reset`` its cut points reached.

Locks: ``FaultFile.lock`` is flock's rule among the handles of one Disk; the
byte-range calls (``lock_range``, ``try_lock_range``, ``unlock_range``,
``range_held_by_others``) are open-file-description locks' rule among them
(each handle an open file: shared ranges coexist, an exclusive one conflicts
with any other handle's overlapping range; a handle's own lock is converted in
place), and an exclusive range on a read-only handle fails with EBADF, as
Linux's does. A wait for a range another handle holds would never end in one
thread: ``lock_range`` raises AssertionError then. Locks are not I/O events.

Maps: ``FaultFile.map`` serves the file's bytes as an anonymous memory map
kept in step with every later write, as a shared map of a real file is. A
truncate below the end of a live map raises AssertionError: on a real file
the next read of the map would kill the process (SIGBUS).

Names: the contents live in memory, but each file also exists as an empty
placeholder on the real file system (the pager calls ``os.path.exists`` and
the store ``os.replace`` / ``os.unlink``). Contents are keyed by the
placeholder's inode, so a rename moves a file's contents with it and an unlink
drops them. Directory operations are treated as durable at once (pagestore
syncs the directory after the ones it relies on).

After a crash, either reopen through the same ``opener`` (the durable bytes
are served from memory) or ``materialise(dest)`` real files and open those
with the real ``fileio.File``.

``limit`` caps the total bytes of all files: a write that would pass it writes
what fits and raises ``OSError(ENOSPC)``, as a full disk does.
"""
from __future__ import annotations

import errno
import mmap
import os
import random
import shutil
import sys
from typing import Dict, Iterable, List, Optional, Tuple

from pagestore.errors import StoreLockedError

SECTOR = 512


class PowerCut(BaseException):
    """PowerCut stops a workload at the chosen I/O event.

    A BaseException so no ``except Exception`` in the code under test can
    swallow it and carry on writing."""


class _Content:
    """_Content is one file's bytes: durable, plus pending ops ("w", off, data) / ("t", size)."""

    def __init__(self, durable: bytes = b"") -> None:
        self.durable = bytearray(durable)
        self.pending: List[Tuple] = []
        self.view = bytearray(durable)  # durable with pending applied: what reads see
        self.maps: List[mmap.mmap] = []  # live maps of the view (FaultFile.map)
        # Linux's errseq_t for the file (``mapping->wb_err``): failed syncs counted, and whether
        # a handle has been told of the last one (``FaultFile.sync``).
        self.wb_err = 0
        self.wb_seen = False

    def wb_sample(self) -> int:
        """wb_sample: what a handle opened now remembers (errseq_sample): the current count once
        someone was told of it, else one less (so that the opener is told)."""
        return self.wb_err if self.wb_seen or not self.wb_err else self.wb_err - 1

    def apply(self, op: Tuple) -> None:
        self.pending.append(op)
        _apply(self.view, op)
        if self.maps:
            self._mirror(op)

    def _mirror(self, op: Tuple) -> None:
        """_mirror carries an operation into every live map, as a shared map sees a write."""
        self.maps = [m for m in self.maps if not m.closed]
        for m in self.maps:
            if op[0] == "w":
                _, off, data = op
                end = min(len(m), off + len(data))
                if off < end:
                    m[off:end] = data[: end - off]
            elif op[1] < len(m):
                raise AssertionError(f"file truncated to {op[1]} bytes under a live map of {len(m)}")

    def sync(self) -> None:
        # Pending operations onto the durable bytes, not a copy of the view: after a
        # failed sync (Linux) the view holds writes that are no longer pending and
        # that no later sync writes.
        # Taken in one step: a group commit syncs on one thread while another appends, and
        # an operation appended meanwhile must stay pending, not be cleared unsynced.
        ops, self.pending = self.pending, []
        for op in ops:
            _apply(self.durable, op)

    def fail_sync(self, rng: random.Random) -> None:
        """fail_sync is a failed fsync on Linux: some pending sectors reach the disk, and every
        pending operation is forgotten (marked clean) while reads keep seeing it."""
        ops, self.pending = self.pending, []
        if self.wb_seen or not self.wb_err:  # errseq_set: errors nobody was told of count as one
            self.wb_err += 1
            self.wb_seen = False
        for op in ops:
            if op[0] == "w":
                for off, data in _sector_pieces(op[1], op[2]):
                    if rng.random() < 0.5:
                        _apply(self.durable, ("w", off, data))
            elif rng.random() < 0.5:
                _apply(self.durable, op)


def _apply(buf: bytearray, op: Tuple) -> None:
    if op[0] == "w":
        _, off, data = op
        end = off + len(data)
        if len(buf) < off:
            buf.extend(bytes(off - len(buf)))
        buf[off:end] = data
    else:
        _, size = op
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))


def _sector_pieces(off: int, data: bytes) -> List[Tuple[int, bytes]]:
    """_sector_pieces cuts a write at absolute 512-byte sector boundaries."""
    out = []
    pos = 0
    while pos < len(data):
        nxt = min(len(data), ((off + pos) // SECTOR + 1) * SECTOR - off)
        out.append((off + pos, data[pos:nxt]))
        pos = nxt
    return out


def _carve(held: List[Tuple[int, int, bool]], start: int, length: int) -> List[Tuple[int, int, bool]]:
    """_carve: the ranges ``held`` with [start, start + length) cut out of them (split where needed)."""
    out = []
    end = start + length
    for s, n, ex in held:
        if s + n <= start or end <= s:
            out.append((s, n, ex))
            continue
        if s < start:
            out.append((s, start - s, ex))
        if end < s + n:
            out.append((end, s + n - end, ex))
    return out


class Disk:
    """Disk is the shared state behind every FaultFile; see the module docstring."""

    def __init__(
        self,
        root: str,
        *,
        seed: int = 0,
        fail_at: Optional[int] = None,
        eio_at: Optional[int] = None,
        limit: Optional[int] = None,
        model: str = "linux",
        watch: Iterable[str] = (),
    ) -> None:
        if model not in ("linux", "kind"):
            raise ValueError(f"unknown fault model {model!r}")
        self.root = root
        self.seed = seed
        self.fail_at = fail_at
        self.eio_at = eio_at
        self.limit = limit
        self.model = model
        self.watch = frozenset(watch)
        self.tags: Dict[int, str] = {}
        self.kinds: Dict[int, str] = {}  # with watch: event number -> "write", "sync" or "truncate"
        self.failures = 0  # events failed with EIO
        self.rng = random.Random(f"{seed}:faults")
        self.events = 0
        self.writes = 0
        self.syncs = 0
        self.crashes = 0
        self.contents: Dict[Tuple[int, int], _Content] = {}
        self.locks: Dict[Tuple[int, int], Dict[int, bool]] = {}  # inode -> {handle id: exclusive}
        #: byte-range locks: inode -> {handle id: [(start, length, exclusive), ...]}
        self.ranges: Dict[Tuple[int, int], Dict[int, List[Tuple[int, int, bool]]]] = {}
        self.handles: List["FaultFile"] = []
        self.dead = False

    # ---- the opener ----

    def opener(self, path: str, *, create: bool = False, readonly: bool = False) -> "FaultFile":
        """opener has the signature of ``fileio.open_file``; pass it as ``_opener=``."""
        if self.dead:
            raise PowerCut("power is off")
        fresh = False
        if not os.path.exists(path):
            if not create or readonly:
                raise FileNotFoundError(errno.ENOENT, "No such file", path)
            with open(path, "xb"):
                pass
            fresh = True
        st = os.stat(path)
        ino = (st.st_dev, st.st_ino)
        if fresh or ino not in self.contents:
            # A new inode number may be a reused one: start it empty. A real
            # file we have never seen contributes its bytes as durable.
            with open(path, "rb") as f:
                self.contents[ino] = _Content(b"" if fresh else f.read())
        h = FaultFile(self, path, ino, self.contents[ino], readonly)
        self.handles.append(h)
        return h

    # ---- events ----

    def _event(self, kind: str) -> bool:
        """_event counts an I/O event; raises PowerCut at ``fail_at``; True when this event is to
        fail with EIO (the caller applies the model's partial effect first)."""
        if self.dead:
            raise PowerCut("power is off")
        self.events += 1
        if self.watch:
            self.kinds[self.events] = kind
            frame = sys._getframe(2)
            while frame is not None:
                if frame.f_code.co_name in self.watch:
                    self.tags[self.events] = frame.f_code.co_name
                    break
                frame = frame.f_back  # type: ignore[assignment]
        if self.fail_at is not None and self.events >= self.fail_at:
            self.dead = True
            raise PowerCut(f"power cut at I/O event {self.events}")
        if self.eio_at is not None and self.events == self.eio_at:
            self.failures += 1
            return True
        return False

    def _eio(self) -> OSError:
        return OSError(errno.EIO, f"injected I/O error at event {self.events}")

    def total_bytes(self) -> int:
        return sum(len(c.view) for c in self.contents.values())

    # ---- power loss ----

    def _kill_stores(self) -> None:
        """_kill_stores: the power cut kills the process too, and the fcntl locks its stores held on
        their shared index (a real file, not this Disk's) die with it, as the Disk's own locks
        do: a writer's LOCK_WRITE above all, which a writer keeping its turn holds between
        writes (issue 26). The stores opened through this Disk left open (the crashed ones) let
        go of every lock on their index's descriptor; they are not to be used again."""
        from pagestore import fileio, store as store_mod

        for s in list(store_mod._open_stores.values()):
            if getattr(s, "_opener", None) != self.opener:
                continue
            turns = getattr(s, "_turns", None)
            if turns is not None:
                turns.kept = False  # its watcher thread ends
            sharing = s._pager.sharing
            if sharing is not None and sharing.index.fd >= 0:
                fileio.unlock(sharing.index.fd, 0, 0)  # the whole file: every byte it held

    def crash(self, mode: str = "drop", seed: Optional[int] = None) -> None:
        """crash replaces every file's contents by what survives a power cut in ``mode``."""
        self._kill_stores()
        rng = random.Random(f"{self.seed if seed is None else seed}:{self.crashes}")
        for ino in sorted(self.contents):
            c = self.contents[ino]
            buf = bytearray(c.durable)
            ops = c.pending
            if mode == "drop":
                pass
            elif mode == "tear":
                keep = rng.randint(0, len(ops))
                for i, op in enumerate(ops[:keep]):
                    if i == keep - 1 and op[0] == "w":
                        pieces = _sector_pieces(op[1], op[2])
                        n = rng.randint(1, len(pieces))
                        for off, data in pieces[:n]:
                            _apply(buf, ("w", off, data))
                    else:
                        _apply(buf, op)
            elif mode == "scramble":
                for op in ops:
                    if op[0] == "w":
                        for off, data in _sector_pieces(op[1], op[2]):
                            if rng.random() < 0.5:
                                _apply(buf, ("w", off, data))
                    elif rng.random() < 0.5:
                        _apply(buf, op)
            elif mode == "kill":
                for op in ops:
                    _apply(buf, op)
            else:
                raise ValueError(f"unknown crash mode {mode!r}")
            self.contents[ino] = _Content(bytes(buf))
        for h in self.handles:
            h.dead = True
            h._unpin()
        self.handles.clear()
        self.locks.clear()
        self.ranges.clear()
        self.crashes += 1
        self.dead = False
        self.fail_at = None

    def durable_files(self) -> Dict[str, bytes]:
        """durable_files maps each name in ``root`` that this disk holds to its durable bytes."""
        out = {}
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if not os.path.isfile(path):
                continue
            st = os.stat(path)
            c = self.contents.get((st.st_dev, st.st_ino))
            if c is not None:
                out[name] = bytes(c.durable)
        return out

    def materialise(self, dest: str) -> None:
        """materialise writes the durable state of every file in ``root`` as real files in ``dest``."""
        os.makedirs(dest, exist_ok=True)
        held = self.durable_files()
        for name in sorted(os.listdir(self.root)):
            src = os.path.join(self.root, name)
            if name in held:
                with open(os.path.join(dest, name), "wb") as f:
                    f.write(held[name])
            elif os.path.isfile(src):
                shutil.copyfile(src, os.path.join(dest, name))


class FaultFile:
    """FaultFile is one open file on a Disk, with the methods of ``fileio.File``."""

    def __init__(self, disk: Disk, path: str, ino: Tuple[int, int], content: _Content, readonly: bool) -> None:
        self.disk = disk
        self.path = path
        self.ino = ino
        self.content = content
        self.readonly = readonly
        self.dead = False
        self.closed = False
        # Hold the placeholder open so its inode number is not reused while we are.
        self._pin = os.open(path, os.O_RDONLY)
        self.wb_err = content.wb_sample()  # the errseq this open file description has seen

    def _live(self) -> None:
        if self.dead or self.disk.dead:
            raise PowerCut("power is off")
        if self.closed:
            raise ValueError(f"{self.path}: I/O on a closed file")

    def read(self, offset: int, n: int) -> bytes:
        self._live()
        return bytes(self.content.view[offset : offset + n])

    def write(self, offset: int, data: bytes) -> None:
        self._live()
        if self.readonly:
            raise OSError(errno.EBADF, "Bad file descriptor (opened read-only)", self.path)
        fail = self.disk._event("write")
        self.disk.writes += 1
        data = bytes(data)
        if fail:
            if self.disk.model == "linux":
                pieces = _sector_pieces(offset, data)
                for off, piece in pieces[: self.disk.rng.randint(0, len(pieces))]:
                    self.content.apply(("w", off, piece))
            raise self.disk._eio()
        limit = self.disk.limit
        if limit is not None:
            cur = len(self.content.view)
            room = max(0, limit - self.disk.total_bytes())
            if offset + len(data) - cur > room:
                # Write what fits, whole sectors only, then fail as a full disk does.
                end = cur + room
                end -= end % SECTOR
                if end > offset:
                    self.content.apply(("w", offset, data[: end - offset]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        self.content.apply(("w", offset, data))

    def sync(self) -> None:
        self._live()
        fail = self.disk._event("sync")
        self.disk.syncs += 1
        content = self.content
        if fail:
            if self.disk.model == "linux":
                self.fail_sync()
            raise self.disk._eio()
        content.sync()
        if self.disk.model == "linux" and self.wb_err != content.wb_err:
            # errseq: a failure since this handle last looked (another handle's sync, maybe in
            # another process) is reported here, once, though this sync wrote what it had.
            self.wb_err, content.wb_seen = content.wb_err, True
            raise OSError(errno.EIO, f"{self.path}: a failed writeback since this file was last synced (errseq)")

    def fail_sync(self) -> None:
        """fail_sync: what a failed fsync on this handle does on Linux (``_Content.fail_sync``), the
        failure reported to this handle (the caller raises EIO) and to every other open one at its
        next sync (errseq)."""
        self.content.fail_sync(self.disk.rng)
        self.wb_err, self.content.wb_seen = self.content.wb_err, True

    def size(self) -> int:
        self._live()
        return len(self.content.view)

    def truncate(self, size: int) -> None:
        self._live()
        if self.readonly:
            raise OSError(errno.EINVAL, "Invalid argument (opened read-only)", self.path)
        if self.disk._event("truncate"):
            raise self.disk._eio()
        limit = self.disk.limit
        if limit is not None and size > len(self.content.view):
            if size - len(self.content.view) > limit - self.disk.total_bytes():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        self.content.apply(("t", size))

    def map(self, size: int) -> mmap.mmap:
        """map: the file's first ``size`` bytes as a map kept in step with later writes (see the module docstring)."""
        self._live()
        if size <= 0 or size > len(self.content.view):
            raise ValueError(f"{self.path}: cannot map {size} bytes of a {len(self.content.view)}-byte file")
        m = mmap.mmap(-1, size)
        m[:] = bytes(self.content.view[:size])
        self.content.maps.append(m)
        return m

    def lock(self, exclusive: bool) -> None:
        """lock: the same conflict rule as flock, among handles of this Disk."""
        self._live()
        held = self.disk.locks.setdefault(self.ino, {})
        others = {k: v for k, v in held.items() if k != id(self)}
        if others and (exclusive or any(others.values())):
            mode = "for writing" if exclusive else "for reading"
            raise StoreLockedError(f"{self.path}: another process has the store open; cannot open it {mode}")
        held[id(self)] = exclusive

    # ---- byte-range locks (see the module docstring) ----

    def _ranges(self) -> Dict[int, List[Tuple[int, int, bool]]]:
        return self.disk.ranges.setdefault(self.ino, {})

    def range_held_by_others(self, start: int, length: int = 1) -> Optional[int]:
        """range_held_by_others: where another handle's lock in [start, start + length) begins, or None."""
        self._live()
        return self._conflict(start, length, True)

    def _conflict(self, start: int, length: int, exclusive: bool) -> Optional[int]:
        found: Optional[int] = None
        for h, held in self._ranges().items():
            if h == id(self):
                continue
            for s, n, ex in held:
                if s < start + length and start < s + n and (exclusive or ex):
                    at = max(s, start)
                    found = at if found is None else min(found, at)
        return found

    def try_lock_range(self, start: int, length: int = 1, *, exclusive: bool = False) -> bool:
        """try_lock_range: as ``fileio.File.try_lock_range``, among this Disk's handles."""
        self._live()
        if exclusive and self.readonly:
            raise OSError(errno.EBADF, "Bad file descriptor (opened read-only)", self.path)
        if self._conflict(start, length, exclusive) is not None:
            return False
        mine = self._ranges().setdefault(id(self), [])
        mine[:] = _carve(mine, start, length) + [(start, length, exclusive)]
        return True

    def lock_range(self, start: int, length: int = 1, *, exclusive: bool = False) -> None:
        """lock_range: ``try_lock_range``, which must succeed (one thread could never wait it out)."""
        if not self.try_lock_range(start, length, exclusive=exclusive):
            raise AssertionError(f"{self.path}: would wait forever for bytes [{start}, {start + length}) "
                                 "locked by another handle of this Disk")

    def unlock_range(self, start: int, length: int = 1) -> None:
        """unlock_range lets go of whatever this handle holds in [start, start + length)."""
        mine = self._ranges().get(id(self))
        if mine is not None:
            mine[:] = _carve(mine, start, length)

    def identity(self) -> Tuple[int, int]:
        """identity: the placeholder's (device, inode), under which the contents are kept."""
        return self.ino

    def _unpin(self) -> None:
        if self._pin >= 0:
            os.close(self._pin)
            self._pin = -1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._unpin()
        held = self.disk.locks.get(self.ino)
        if held is not None:
            held.pop(id(self), None)
        ranges = self.disk.ranges.get(self.ino)
        if ranges is not None:
            ranges.pop(id(self), None)
        if self in self.disk.handles:
            self.disk.handles.remove(self)
