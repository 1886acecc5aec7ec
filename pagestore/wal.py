"""wal: the write-ahead log, which makes every commit atomic and durable.

A commit appends the full image of every page it changed to the log, then
page 0 (the file header) as the commit frame, then syncs the log. Pages inside
the committed file are only written by a checkpoint, which copies the newest
image of each logged page into place, syncs the data file, and starts a new
log generation. So a page in the data file is never trusted half-written: any
page a crash could have torn mid-checkpoint still has its full image in the
log, and recovery reads it from there. (The pager writes a large
transaction's NEW pages, past the committed end of the file, straight into
the data file and syncs it before the commit frame: no committed header
reaches them until that frame is durable. See Pager._write_direct.)

LOG FILE LAYOUT (``<store>-wal``: ``log_path`` is the one place that says so), little-endian

    +------------+---------+---------+-----+
    | log header | frame 0 | frame 1 | ... |      frame = 32-byte header + page image
    +------------+---------+---------+-----+

LOG HEADER (WAL_HEADER_SIZE = 40 bytes)

    OFFSET  SIZE  DESCRIPTION
       0      8   magic b"psWAL\\r\\n\\x00"
       8      4   log format version (1)
      12      4   page size (must equal the data file's)
      16      8   file_id of the data file this log belongs to
      24      8   generation: checkpoints completed when this log began
      32      4   salt: random, new for every generation
      36      4   checksum: CRC32C of bytes [0, 36)

FRAME HEADER (FRAME_HEADER_SIZE = 32 bytes), followed by page_size bytes

    OFFSET  SIZE  DESCRIPTION
       0      4   pgno: the page this image belongs to
       4      4   commit: 0 inside a transaction; in its last frame (always
                  page 0), the page count of the file after the commit
       8      8   txn: the transaction id (the pages' LSN)
      16      8   offset: this frame's own byte offset in the log
      24      4   salt: copy of the log header's salt
      28      4   checksum: CRC32C of frame bytes [0, 28) and the page image,
                  continued from the previous frame's checksum (the first
                  frame continues from the log header's checksum)

A FRAME IS VALID if and only if its salt equals the header's, its offset is
where it lies, its pgno is below 2**31, and its checksum matches, given that
every frame before it is valid. Recovery reads frames in order, stops at the
first invalid one, and keeps the frames up to the last valid commit frame;
everything after it (an uncommitted or torn transaction) is discarded and
later overwritten. A stale frame from an earlier generation fails the salt;
one moved or left over from a rolled-back tail fails the chain.
"""
from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

from . import fileio
from ._native import crc32c
from .errors import CorruptionError

if TYPE_CHECKING:  # pragma: no cover
    from .shm import SharedIndex

WAL_MAGIC = b"psWAL\r\n\x00"
WAL_VERSION = 1
WAL_HEADER_SIZE = 40
FRAME_HEADER_SIZE = 32
_HDR = struct.Struct("<8sIIQQI")  # magic, version, page_size, file_id, generation, salt
_FRAME = struct.Struct("<IIQQI")  # pgno, commit, txn, offset, salt
_U32 = struct.Struct("<I")

#: The log file grows in zero-filled steps of this many bytes, and keeps up to
#: KEEP_BYTES across checkpoints: fdatasync after overwriting blocks already
#: in the file flushes data only, while one after an append must also commit
#: the file's new size (measured here: about 1.6x slower per commit).
GROW_BYTES = 256 * 1024
#: append_many writes a commit's frames in writes of about this many bytes.
WRITE_CHUNK = 1024 * 1024
KEEP_BYTES = 4 * 1024 * 1024

#: A frame to append: (page number, the page image).
Frame = Tuple[int, Union[bytes, bytearray, memoryview]]


def log_path(path: str) -> str:
    """log_path returns the name of the log of the store at ``path``: ``<path>-wal``.

    The one place that knows it; everything else asks here.
    """
    return path + "-wal"


class _Mark:
    """_Mark is what an append may change in a WAL's memory, saved so a failed one can be undone.

    A commit moves the whole open transaction's index into ``index``: its mark
    saves both (O(transaction), once per commit). Frames of the open
    transaction (spilled pages) change ``txn_index`` at their own pages only,
    so their mark saves just those (``txn_prev``): a copy of the whole
    transaction per spill made a large transaction O(n^2).
    """

    __slots__ = ("end", "crc", "committed_end", "committed_crc", "synced", "txn_index", "txn_prev", "replaced")

    def __init__(self, wal: "WAL", pgnos: Sequence[int], commits: bool = True) -> None:
        self.end, self.crc, self.synced = wal.end, wal._crc, wal._synced
        self.committed_end, self.committed_crc = wal.committed_end, wal.committed_crc
        self.txn_index: Optional[Dict[int, int]] = None
        self.txn_prev: Dict[int, Optional[int]] = {}
        self.replaced: Dict[int, Optional[int]] = {}
        if commits:
            self.txn_index = dict(wal.txn_index)
            index = wal.index
            self.replaced = {p: index.get(p) for p in (*self.txn_index, *pgnos)}
        else:
            txn_index = wal.txn_index
            self.txn_prev = {p: txn_index.get(p) for p in pgnos}


class WAL:
    """WAL is the log file of one store. Callers: the pager only.

    ``index`` maps each page with a committed image in the log to the offset
    of its newest committed frame; ``txn_index`` does the same for frames the
    current transaction has written but not yet committed (pages spilled from
    a full cache).
    """

    def __init__(
        self,
        path: str,
        page_size: int,
        file_id: int,
        *,
        readonly: bool = False,
        opener: fileio.Opener = fileio.open_file,
    ) -> None:
        self.path = path
        self.page_size = page_size
        self.file_id = file_id
        self.readonly = readonly
        self._opener = opener
        self.frame_size = FRAME_HEADER_SIZE + page_size
        self.index: Dict[int, int] = {}
        self.txn_index: Dict[int, int] = {}
        self.generation = 0
        self.salt = 0
        self.end = WAL_HEADER_SIZE  # where the next frame goes
        self.committed_end = WAL_HEADER_SIZE
        self.committed_crc = 0
        self._crc = 0
        self._synced = True
        self.allocated = 0  # bytes the log file holds (frames in use and zeros beyond)
        #: the shared index (shm.py) the writer records each frame's page number in, or None
        self.shm: Optional["SharedIndex"] = None
        #: the page number of every frame of this generation, in log order (the writer's; for checkpoints)
        self.frame_pgnos: List[int] = []
        self.file: Optional[fileio.File]
        if readonly and not os.path.exists(path):
            self.file = None
        else:
            self.file = opener(path, create=not readonly, readonly=readonly)

    # ---- header ----

    def _header_bytes(self, generation: int, salt: int) -> bytes:
        body = _HDR.pack(WAL_MAGIC, WAL_VERSION, self.page_size, self.file_id, generation, salt)
        return body + _U32.pack(crc32c(body))

    def _read_header(self) -> Optional[Tuple[int, int, int]]:
        """_read_header returns (generation, salt, header checksum), or None for a log that is
        empty, torn, or belongs to another file (its frames then count for nothing)."""
        assert self.file is not None
        raw = self.file.read(0, WAL_HEADER_SIZE)
        if len(raw) < WAL_HEADER_SIZE:
            return None
        magic, version, page_size, file_id, generation, salt = _HDR.unpack_from(raw, 0)
        (stored,) = _U32.unpack_from(raw, 36)
        if magic != WAL_MAGIC or crc32c(raw[:36]) != stored:
            return None
        if version != WAL_VERSION or page_size != self.page_size or file_id != self.file_id:
            return None
        return generation, salt, stored

    # ---- recovery ----

    def recover(self, generation: int) -> None:
        """recover rebuilds ``index`` from the committed frames in the log.

        Frames after the last commit frame are dropped (and, for a writer,
        truncated away). A log that is missing, empty or not this file's is
        started afresh at ``generation`` by a writer.
        """
        self.index.clear()
        self.txn_index.clear()
        self.frame_pgnos = []
        if self.file is None:
            return
        head = self._read_header()
        if head is None:
            if not self.readonly:
                self.reset(generation)
            return
        self.generation, self.salt, crc = head
        pending: Dict[int, int] = {}
        pgnos: List[int] = []
        committed_frames = 0
        offset = WAL_HEADER_SIZE
        self.committed_end, self.committed_crc = offset, crc
        size = self.file.size()
        while offset + self.frame_size <= size:
            raw = self.file.read(offset, self.frame_size)
            if len(raw) < self.frame_size:
                break
            pgno, commit, _txn, own_offset, salt = _FRAME.unpack_from(raw, 0)
            (stored,) = _U32.unpack_from(raw, 28)
            if salt != self.salt or own_offset != offset or pgno >= 1 << 31:
                break
            crc = crc32c(memoryview(raw)[28 + 4 :], crc32c(memoryview(raw)[:28], crc))
            if crc != stored:
                break
            pending[pgno] = offset
            pgnos.append(pgno)
            offset += self.frame_size
            if commit:
                self.index.update(pending)
                pending.clear()
                committed_frames = len(pgnos)
                self.committed_end, self.committed_crc = offset, crc
        self.frame_pgnos = pgnos[:committed_frames]
        self.end, self._crc = self.committed_end, self.committed_crc
        if not self.readonly and size > self.committed_end:
            self.file.truncate(self.committed_end)
        self.allocated = self.file.size()

    # ---- writing ----

    def append(self, pgno: int, page: "bytes | bytearray | memoryview", txn: int) -> int:
        """append writes one frame of the open transaction (a page spilled from
        the cache) at the end of the log and returns its offset."""
        offset = self.end
        self.append_many([(pgno, page)], txn, 0)
        return offset

    def commit(self, frames: List[Frame], txn: int, page_count: int, *, durable: bool) -> None:
        """commit appends a transaction's last frames, page 0 last, as its commit frame, and with
        ``durable`` syncs the log. All or nothing: if the write or the sync fails, the log's
        memory (index, end, checksum chain) is as it was before the call, and the error is raised.

        Callers: the pager's commit only.
        """
        mark = _Mark(self, [p for p, _ in frames])
        try:
            self._append(frames, txn, page_count)
            if durable:
                self.sync()
        except BaseException:
            self._restore(mark)
            raise

    def append_many(self, frames: List[Frame], txn: int, commit_page_count: int) -> None:
        """append_many writes page images in as few write calls as it can. All or nothing in memory:
        if a write fails, the log's index, end and checksum chain are as before the call.

        With ``commit_page_count`` the last frame commits the transaction: the
        caller passes page 0 last, then calls ``sync`` if durability is wanted
        (``commit`` does both, undoing both on failure). Without it, the
        frames belong to the open transaction (``txn_index``).
        """
        mark = _Mark(self, [p for p, _ in frames], commits=bool(commit_page_count))
        try:
            self._append(frames, txn, commit_page_count)
        except BaseException:
            self._restore(mark)
            raise

    def _restore(self, mark: _Mark) -> None:
        """_restore puts back what ``_append`` (and a sync) changed in memory since ``mark``.

        The bytes written past the old end stay in the file; they are past the
        committed end, so the next append overwrites them and recovery never
        keeps them (no commit frame after the last valid one is theirs).
        """
        for p, off in mark.replaced.items():
            if off is None:
                self.index.pop(p, None)
            else:
                self.index[p] = off
        if mark.txn_index is not None:
            self.txn_index = mark.txn_index
        for p, prev in mark.txn_prev.items():
            if prev is None:
                self.txn_index.pop(p, None)
            else:
                self.txn_index[p] = prev
        self.end, self._crc, self._synced = mark.end, mark.crc, mark.synced
        self.committed_end, self.committed_crc = mark.committed_end, mark.committed_crc
        del self.frame_pgnos[self.frame_count(self.end):]

    def _append(self, frames: List[Frame], txn: int, commit_page_count: int) -> None:
        assert self.file is not None
        out = bytearray()
        offset = start = self.end
        crc = self._crc
        offsets: List[Tuple[int, int]] = []
        last = len(frames) - 1
        page_size = self.page_size
        self._reserve(start + len(frames) * self.frame_size)
        pgnos = [p for p, _ in frames]
        del self.frame_pgnos[self.frame_count(start):]
        self.frame_pgnos.extend(pgnos)
        if self.shm is not None:
            self.shm.set_frames(self.frame_count(start), pgnos)
        for i, (pgno, page) in enumerate(frames):
            assert len(page) == page_size
            commit = commit_page_count if i == last else 0
            head = _FRAME.pack(pgno, commit, txn, offset, self.salt)
            crc = crc32c(page, crc32c(head, crc))
            out += head
            out += _U32.pack(crc)
            out += page
            offsets.append((pgno, offset))
            offset += self.frame_size
            if len(out) >= WRITE_CHUNK or i == last:
                # Written a chunk at a time: a big commit (a thousand random
                # inserts dirty a thousand leaves) would otherwise hold all its
                # frames twice in memory. A crash between chunks leaves frames
                # without their commit frame, which recovery discards.
                self.file.write(start, out)
                start += len(out)
                out = bytearray()
        self._crc = crc
        self.end = offset
        self._synced = False
        self.txn_index.update(offsets)
        if commit_page_count:
            self.index.update(self.txn_index)
            self.txn_index.clear()
            self.committed_end, self.committed_crc = self.end, crc

    def _reserve(self, end: int) -> None:
        """_reserve extends the file with zeros so that it holds ``end`` bytes.

        Zeros never pass as a frame (the salt is never zero), so recovery stops there.
        """
        assert self.file is not None
        if end <= self.allocated:
            return
        new = -(-end // GROW_BYTES) * GROW_BYTES
        self.file.write(self.allocated, bytes(new - self.allocated))
        self.allocated = new

    def sync(self) -> None:
        """sync makes the log durable up to its end."""
        if self.file is not None and not self._synced:
            self.file.sync()
            self._synced = True

    def rollback(self) -> None:
        """rollback forgets the open transaction's frames; the next append overwrites them."""
        self.txn_index.clear()
        self.end, self._crc = self.committed_end, self.committed_crc
        del self.frame_pgnos[self.frame_count(self.end):]

    def frame_count(self, offset: int) -> int:
        """frame_count: how many frames lie before byte ``offset`` of the log (a frame boundary)."""
        return (offset - WAL_HEADER_SIZE) // self.frame_size

    def frame_offset(self, frame: int) -> int:
        """frame_offset: the byte offset of frame number ``frame`` (from 0)."""
        return WAL_HEADER_SIZE + frame * self.frame_size

    def read_frame(self, offset: int, pgno: int) -> bytes:
        """read_frame returns the page image of the frame at ``offset``.

        Raises:
            CorruptionError: the frame is short, belongs to another page or to another generation of the log.
        """
        if self.file is None:
            raise CorruptionError(pgno, f"log frame at offset {offset}: the log is missing")
        raw = self.file.read(offset, self.frame_size)
        if len(raw) < self.frame_size or _U32.unpack_from(raw, 0)[0] != pgno or _U32.unpack_from(raw, 24)[0] != self.salt:
            raise CorruptionError(pgno, f"log frame at offset {offset} is missing or belongs to another page")
        return raw[FRAME_HEADER_SIZE:]

    def follow(self, generation: int, salt: int, frames: int, pgnos: Sequence[int], first: int) -> None:
        """follow brings a READER's log up to a state the writer published (shm.py):
        ``frames`` committed frames of log generation ``generation``, whose page numbers
        from frame ``first`` on are ``pgnos`` (``first`` 0: a new generation, forget the old).

        Raises:
            CorruptionError: the log file is missing or not that generation.
        """
        assert self.readonly
        if first == 0:
            self.index = {}
            if self.file is None:
                if not os.path.exists(self.path):
                    if frames:
                        raise CorruptionError(None, f"{self.path}: the log the shared index describes is missing")
                    self.generation, self.salt = generation, salt
                    self.end = self.committed_end = WAL_HEADER_SIZE
                    return
                self.file = self._opener(self.path, create=False, readonly=True)
            head = self._read_header()
            if frames and (head is None or head[:2] != (generation, salt)):
                raise CorruptionError(None, f"{self.path}: the log is not the generation the shared index describes")
            self.generation, self.salt = generation, salt
        off = self.frame_offset(first)
        index = self.index
        for pgno in pgnos:
            index[pgno] = off
            off += self.frame_size
        self.end = self.committed_end = self.frame_offset(frames)

    def reset(self, generation: int) -> None:
        """reset starts a new log generation: a fresh header and salt, no frames.

        Callers: the pager, after a checkpoint has made the data file whole and
        synced it, and recovery for a log that was not this file's.
        """
        assert self.file is not None and not self.readonly
        salt = int.from_bytes(os.urandom(4), "little") or 1
        header = self._header_bytes(generation, salt)
        # Old frames fail the new salt, so the file need not be emptied: keep
        # its first KEEP_BYTES allocated for the next commits (see GROW_BYTES).
        self.allocated = min(self.file.size(), KEEP_BYTES)
        self.file.truncate(max(self.allocated, WAL_HEADER_SIZE))
        self.allocated = max(self.allocated, WAL_HEADER_SIZE)
        self.file.write(0, header)
        self.file.sync()
        self.generation, self.salt = generation, salt
        self._crc = _U32.unpack_from(header, 36)[0]
        self.end = self.committed_end = WAL_HEADER_SIZE
        self.committed_crc = self._crc
        self.index.clear()
        self.txn_index.clear()
        self.frame_pgnos = []
        self._synced = True

    def check(self) -> Dict[str, int]:
        """check verifies the log's bookkeeping against its rules and its file. O(indexed frames).

        Every committed frame lies on a frame boundary before the committed
        end and belongs to its page; every frame of the open transaction lies
        between the committed end and the end; the ends are ordered and
        inside the file; the header on disk is this log's.

        Returns:
            ``{"frames", "txn_frames", "generation", "end"}``.

        Raises:
            CorruptionError: a frame or the header does not hold (names the page; the header is page None).
        """
        if self.file is None:
            return {"frames": 0, "txn_frames": 0, "generation": self.generation, "end": 0}
        if not WAL_HEADER_SIZE <= self.committed_end <= self.end <= max(self.allocated, self.file.size()):
            raise CorruptionError(None, f"log ends out of order: committed {self.committed_end}, end {self.end}")
        if self.index or self.txn_index:
            head = self._read_header()
            if head is None or head[:2] != (self.generation, self.salt):
                raise CorruptionError(None, "log header is not the one this log was started with")
        for index, lo, hi in ((self.index, WAL_HEADER_SIZE, self.committed_end),
                              (self.txn_index, self.committed_end, self.end)):
            for pgno, off in index.items():
                if not lo <= off < hi or (off - WAL_HEADER_SIZE) % self.frame_size:
                    raise CorruptionError(pgno, f"log frame offset {off} outside [{lo}, {hi}) or off a frame boundary")
                self.read_frame(off, pgno)  # raises CorruptionError if the frame is another page's
        return {"frames": len(self.index), "txn_frames": len(self.txn_index), "generation": self.generation,
                "end": self.end}

    def size(self) -> int:
        """size: bytes of log in use (header and frames up to the end)."""
        return self.end if self.file is not None else 0

    def disk_size(self) -> int:
        """disk_size: bytes the log file takes on disk, pre-extended space included (a reader's:
        the file's size, which the writer keeps)."""
        if self.file is None:
            return 0
        return self.file.size() if self.readonly else self.allocated

    def bytes_written(self) -> int:
        """bytes_written: bytes written to the log file since it was opened (0 for a File double that does not count)."""
        return int(getattr(self.file, "written", 0))

    def close(self) -> None:
        """close releases the log file (it stays on disk)."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def remove(self) -> None:
        """remove closes the log and deletes its file. Callers: the pager, after a checkpoint at close."""
        self.close()
        _unlink(self.path)


def remove_log(store_path: str) -> None:
    """remove_log deletes the log of the store at ``store_path``, if there is one."""
    _unlink(log_path(store_path))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
