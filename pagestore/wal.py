"""wal: the write-ahead log, which makes every commit atomic and durable.

A commit appends to the log the image of every page it changed, then page 0
(the file header) as the commit frame, then syncs the log. A page's first frame
in a log generation is its whole image; after that, a frame may hold only the
byte ranges that changed since the page's previous frame (a delta, as
PostgreSQL writes a full page image only at a page's first change after a
checkpoint): a leaf that gains one key changes a few hundred of its bytes.
Page 0, the commit frame, follows the same rule (its counters, LSN and
checksum change).
Pages inside the committed file are only written by a checkpoint, which copies
the newest image of each logged page into place, syncs the data file, and
starts a new log generation (``reset``: the new header written and synced
before the file is shortened; docs/format.md says what each step leaves on
disk). So a page in the data file is never trusted
half-written: any page a crash could have torn mid-checkpoint still has its
whole image in the log (its first frame of the generation), with the deltas
after it, and recovery reads it from there. (The pager writes a large
transaction's NEW pages, past the committed end of the file, straight into
the data file and syncs it before the commit frame: no committed header
reaches them until that frame is durable. See Pager._write_direct.)

LOG FILE LAYOUT (``<store>-wal``: ``log_path`` is the one place that says so), little-endian

    +------------+---------+---------+-----+
    | log header | frame 0 | frame 1 | ... |      frame = 44-byte header + payload
    +------------+---------+---------+-----+

LOG HEADER (WAL_HEADER_SIZE = 40 bytes)

    OFFSET  SIZE  DESCRIPTION
       0      8   magic b"psWAL\\r\\n\\x00"
       8      4   log format version (2; version 1 had whole images only)
      12      4   page size (must equal the data file's)
      16      8   file_id of the data file this log belongs to
      24      8   generation: checkpoints completed when this log began
      32      4   salt: random, new for every generation
      36      4   checksum: CRC32C of bytes [0, 36)

FRAME HEADER (FRAME_HEADER_SIZE = 44 bytes), followed by ``size`` bytes of payload

    OFFSET  SIZE  DESCRIPTION
       0      4   pgno: the page this frame belongs to
       4      4   commit: 0 inside a transaction; in its last frame (always
                  page 0), the page count of the file after the commit
       8      8   txn: the transaction id (the pages' LSN)
      16      8   offset: this frame's own byte offset in the log
      24      4   salt: copy of the log header's salt
      28      4   size: payload bytes; page_size for a whole image, fewer for a delta
      32      8   base: 0 for a whole image; for a delta, the offset of this
                  page's previous frame, whose image the delta changes
      40      4   checksum: CRC32C of frame bytes [0, 40) and the payload,
                  continued from the previous frame's checksum (the first
                  frame continues from the log header's checksum)

A DELTA PAYLOAD is a sequence of runs (offset u16, length u16, the bytes):
native/delta.c. A page's image at a frame is its base frame's image with the
runs written over it; a chain of deltas goes back to a whole image at most
MAX_CHAIN frames earlier, in the same generation.

A FRAME IS VALID if and only if its salt equals the header's, its offset is
where it lies, its pgno is below 2**31, its size is page_size for a whole
image and below it for a delta, and its checksum matches, given that every
frame before it is valid. Recovery reads frames in order, stops at the
first invalid one, and keeps the frames up to the last valid commit frame;
everything after it (an uncommitted or torn transaction) is discarded and
later overwritten. A stale frame from an earlier generation fails the salt;
one moved or left over from a rolled-back tail fails the chain. A valid
delta whose base is not its page's previous frame is corruption, not a torn
tail: recovery raises CorruptionError naming the page.
"""
from __future__ import annotations

import errno
import functools
import os
import struct
import threading
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Protocol, Sequence, Set, Tuple, Union

from . import fileio
from . import _native
from ._native import crc32c, delta_apply
from .errors import CorruptionError, DurabilityUnknownError, StoreLockedError, VersionMismatchError
from .interrupts import run_through
from .locks import deadline_after

from .shm import FAILURES_OFFSET

class SoleLock(Protocol):
    """SoleLock: how a writer proves, for one sync of its log, that no other writer has the store
    open (``WAL._sync_alone``; the pager's LOCK_WRITERS, shm.py ``DataLock.try_sole``)."""

    def enter(self) -> bool:
        """enter: True when no other writer has the store open, and none can open it until ``leave``."""

    def leave(self) -> None:
        """leave ends what ``enter`` began (others may open the store again)."""


if TYPE_CHECKING:  # pragma: no cover
    from .shm import SharedIndex

WAL_MAGIC = b"psWAL\r\n\x00"
WAL_VERSION = 2
WAL_HEADER_SIZE = 40
FRAME_HEADER_SIZE = 44
_HDR = struct.Struct("<8sIIQQI")  # magic, version, page_size, file_id, generation, salt
_FRAME = struct.Struct("<IIQQIIQ")  # pgno, commit, txn, offset, salt, size, base
_FRAME_V1 = struct.Struct("<IIQQI")  # version 1: pgno, commit, txn, offset, salt; checksum at 28
_U32 = struct.Struct("<I")

#: The log file grows in zero-filled steps of this many bytes, and keeps up to
#: KEEP_BYTES across checkpoints: fdatasync after overwriting blocks already
#: in the file flushes data only, while one after an append must also commit
#: the file's new size (measured here: about 1.6x slower per commit).
GROW_BYTES = 256 * 1024
#: append_many writes a commit's frames in writes of about this many bytes.
WRITE_CHUNK = 1024 * 1024
KEEP_BYTES = 4 * 1024 * 1024
#: At most this many deltas in a row for one page, so that reading a page from the log
#: takes at most MAX_CHAIN + 1 frames (a checkpoint, or a reader in another process).
MAX_CHAIN = 8
#: A delta larger than page_size // DELTA_SHARE is written as a whole image instead.
DELTA_SHARE = 2
#: Page images rebuilt from the log kept for the next read (by frame offset), so that a page
#: whose next frame is a delta from one read before costs one frame, not its whole chain:
#: a reader beside a busy writer re-reads each changed page that way.
IMAGE_CACHE = 256
#: ... and at most this many bytes of them (at least 16 images): 256 images of 64 KiB pages
#: were 16 MiB outside ``cache_size``, half its default (issue 22's memory audit).
IMAGE_CACHE_BYTES = 1 << 20
#: A writer catching up reads the frames other processes committed since its last turn in one
#: read, when they take at most this many bytes (``_adopt``), and reads the pages it then
#: rebuilds from those bytes (``_frame_bytes``, ``advance``), not with a read of the file per
#: frame. 64 KiB held about 30 one-put commits of 4 writers, whole frames among them (every
#: MAX_CHAIN + 1 of a page): a writer back after a burst of the others' found its pages' frames
#: outside it (a third of the catch-ups, 4 stores in one process taking 10 turns each in a row).
WINDOW_BYTES = 256 * 1024

Buffer = Union[bytes, bytearray, memoryview]
#: A frame to append: (page number, the page image, and the image of the page's newest
#: frame in the log when the caller kept it, else None). With that image the log may write
#: only what changed since (a delta); it decides, by the chain's length and the delta's size.
Frame = Tuple[int, Buffer, Optional[Buffer]]


def _payload_fits(n: int, base: int, offset: int, page_size: int) -> bool:
    """_payload_fits: whether a frame at ``offset`` may say ``size`` n and ``base``: a whole image
    (base 0) is page_size bytes; a delta is fewer, from a frame before it."""
    return n == page_size if base == 0 else n < page_size and base < offset


def log_path(path: str) -> str:
    """log_path returns the name of the log of the store at ``path``: ``<path>-wal``.

    The one place that knows it; everything else asks here.
    """
    return path + "-wal"


class EarlierSyncFailed(OSError):
    """EarlierSyncFailed: a sync of the log refused because an earlier one failed (``first``)."""

    def __init__(self, first: OSError) -> None:
        super().__init__(first.errno, f"an earlier sync of the log failed ({first})")
        self.first = first


#: a mark's empty map (read only: ``_restore`` iterates it)
_NONE: Dict[int, Optional[int]] = {}


class _Mark:
    """_Mark is what an append may change in a WAL's memory, saved so a failed one can be undone.

    A commit moves the whole open transaction's index into ``index``: its mark
    saves both (O(transaction), once per commit). Frames of the open
    transaction (spilled pages) change ``txn_index`` at their own pages only,
    so their mark saves just those (``txn_prev``): a copy of the whole
    transaction per spill made a large transaction O(n^2).
    """

    __slots__ = ("end", "crc", "committed_end", "committed_crc", "committed_frames", "frames", "synced",
                 "txn_index", "txn_prev", "replaced", "appended")

    def __init__(self, wal: "WAL", frames: "Sequence[Frame]", commits: bool = True, syncs: bool = True) -> None:
        self.end, self.crc, self.synced = wal.end, wal._crc, wal._appends == wal._synced_appends  # ``_synced``
        self.committed_end, self.committed_crc = wal.committed_end, wal.committed_crc
        self.committed_frames, self.frames = wal.committed_frames, len(wal.frame_pgnos)
        self.txn_index: Optional[Dict[int, int]] = None
        self.txn_prev: Dict[int, Optional[int]] = _NONE
        self.replaced: Dict[int, Optional[int]] = _NONE
        self.appended = frames  # a reference: what ``_restore`` needs if an interrupt cut the index's update
        if commits:
            self.txn_index = dict(wal.txn_index)
            if syncs:
                # ``index`` changes only at the end of a commit's append, after its last write: a
                # failure can reach it there only from the sync after (``commit`` with ``durable``).
                index = wal.index
                self.replaced = {p: index.get(p) for p in (*self.txn_index, *(f[0] for f in frames))}
        else:
            txn_index = wal.txn_index
            self.txn_prev = {f[0]: txn_index.get(f[0]) for f in frames}


class _Reader:
    """_Reader reads a file front to back in large blocks (recovery), so that a frame costs
    no system call of its own."""

    BLOCK = 1 << 20

    def __init__(self, file: fileio.File, block: int = BLOCK) -> None:
        self.file = file
        self.block = block
        self.start = 0
        self.buf = b""

    def read(self, offset: int, n: int) -> bytes:
        lo = offset - self.start
        if lo < 0 or lo + n > len(self.buf):
            self.start = offset
            self.buf = self.file.read(offset, max(n, self.block))
            lo = 0
        return self.buf[lo : lo + n]


def _unlock_sync(shm: "SharedIndex") -> None:
    """_unlock_sync lets LOCK_SYNC go whatever lands meanwhile: a Ctrl-C cutting it short would leave
    it held by an idle process, and every other process's sync waits for it without a timeout.
    The interrupt is raised once the lock is let go (``interrupts.run_through``)."""
    cut = run_through(shm.unlock_sync)
    if cut is not None:
        raise cut


class WAL:
    """WAL is the log file of one store. Callers: the pager only.

    ``index`` maps each page with a committed image in the log to the offset
    of its newest committed frame; ``txn_index`` does the same for frames the
    current transaction has written but not yet committed (pages spilled from
    a full cache). Frames vary in size (a delta is smaller than a whole image),
    so the writer keeps each frame's offset (``frame_offsets``) beside its page
    number (``frame_pgnos``), and each frame's place in its page's chain of
    deltas (``depth``, by offset; 0 for a whole image).
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
        self.index: Dict[int, int] = {}
        self.txn_index: Dict[int, int] = {}
        self.generation = 0
        self.salt = 0
        self.end = WAL_HEADER_SIZE  # where the next frame goes
        self.committed_end = WAL_HEADER_SIZE
        self.committed_crc = 0
        self.committed_frames = 0  # frames before committed_end
        self._crc = 0
        # Appends counted against the count the last sync covered (``_synced``): the
        # store's group commit syncs outside its lock (group.py), on another thread
        # than the next group's appends, so a flag one thread sets after its sync
        # could hide an append the sync did not cover. ``_sync_lock`` runs one sync
        # at a time; ``_sync_failed`` is the first sync's error, raised by every later
        # sync (after a failed fsync, Linux reports the next one as a success).
        self._appends = 0
        self._synced_appends = 0
        self._sync_lock = threading.Lock()
        self._sync_failed: Optional[OSError] = None
        #: syncs of the log made by ``sync`` (for tests and bench: how many commits share one)
        self.syncs = 0
        #: syncs of the log found done by another process's sync (shm.py's ``durable``)
        self.shared_syncs = 0
        self.rides = 0  # syncs that waited for another's fsync instead of their own (``_ride``)
        #: syncs made in sole mode (``_sync_alone``: no other writer had the store open)
        self.sole_syncs = 0
        #: seconds a sync waits for other processes' syncs that ran beside it (``_sync_round``'s
        #: step 5, ``_ride``) before it gives up with ``DurabilityUnknownError`` (the store's
        #: ``timeout``, set by the pager); None: as long as they take
        self.timeout: Optional[float] = None
        #: a round of the running ``reset`` has written the new header (a later round's timeout
        #: then leaves the restart's outcome unknown: ``_timed_out``)
        self._header_written = False
        # Where the bytes a sync has made durable end, in this generation (a committed end:
        # no writer ever writes below it again). Before each sync the shared index is told
        # that the log may be unwritten from there (``SharedIndex.mark_unsynced``): if the
        # sync fails, the next sync, here or in another process, writes it again (``_sync_shared``).
        self._durable_end = WAL_HEADER_SIZE
        # The shared index's count of failed syncs as of this log's last good one (``_sync_shared``).
        self._failures_seen = 0
        self.allocated = 0  # bytes the log file holds (frames in use and zeros beyond)
        #: the shared index (shm.py) the writer records each frame's page number in, or None
        self.shm: Optional["SharedIndex"] = None
        # the writer's proof that no other writer has the store open (``_sync_alone``), or None
        self._sole: Optional[SoleLock] = None
        #: the page number and offset of every frame of this generation, in log order (the writer's)
        self.frame_pgnos: List[int] = []
        self.frame_offsets: List[int] = []
        #: frame offset -> deltas since the page's whole image (the writer's; 0: a whole image)
        self.depth: Dict[int, int] = {}
        #: committed frame offset -> (page number, its image), the last ``_image_cap`` rebuilt
        self._images: "OrderedDict[int, Tuple[int, bytes]]" = OrderedDict()
        self._image_cap = max(16, min(IMAGE_CACHE, IMAGE_CACHE_BYTES // max(1, page_size)))
        #: the committed frames the last catch-up read at once (``_adopt``): (generation, salt,
        #: offset of its first byte, offset past its last frame, the bytes), or None
        self._window: Optional[Tuple[int, int, int, int, bytes]] = None
        #: how long this process's last sync beside other processes took, its waits included
        #: (store.py: a writer keeps its turn for a batch of writes only while its syncs are fast)
        self.sync_seconds = 0.0
        # The frames the last ``_adopt`` took, by page: [the page's newest frame before them
        # (None: it had none), then their offsets in order], with the committed end they
        # brought the log to; for ``advance``. None when they were not read in one window.
        self._taken: Optional[Tuple[int, int, int, Dict[int, List[Optional[int]]]]] = None
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
        empty, torn, or belongs to another file (its frames then count for nothing).

        Raises:
            VersionMismatchError: this file's log, in another log format, with frames in it.
        """
        assert self.file is not None
        raw = self.file.read(0, WAL_HEADER_SIZE)
        if len(raw) < WAL_HEADER_SIZE:
            return None
        magic, version, page_size, file_id, generation, salt = _HDR.unpack_from(raw, 0)
        (stored,) = _U32.unpack_from(raw, 36)
        if magic != WAL_MAGIC or crc32c(raw[:36]) != stored:
            return None
        if page_size != self.page_size or file_id != self.file_id:
            return None
        if version != WAL_VERSION:
            if version == 1 and not self._v1_has_frame(salt, stored):
                return None  # nothing in it to lose: started afresh
            raise VersionMismatchError(
                f"{self.path}: the log holds commits in log format version {version}, and this "
                f"pagestore reads version {WAL_VERSION}; open the store with the pagestore that "
                "wrote it and close it (its checkpoint empties the log), then open it here"
            )
        return generation, salt, stored

    def _v1_has_frame(self, salt: int, crc: int) -> bool:
        """_v1_has_frame: whether a version-1 log's first frame is valid (its frames were whole
        images behind a header of _FRAME_V1's fields and a checksum)."""
        assert self.file is not None
        fields = _FRAME_V1.size
        head = fields + _U32.size
        raw = self.file.read(WAL_HEADER_SIZE, head + self.page_size)
        if len(raw) < head + self.page_size:
            return False
        _pgno, _commit, _txn, offset, fsalt = _FRAME_V1.unpack_from(raw, 0)
        if fsalt != salt or offset != WAL_HEADER_SIZE:
            return False
        view = memoryview(raw)
        return bool(crc32c(view[head:], crc32c(view[:fields], crc)) == _U32.unpack_from(raw, fields)[0])

    # ---- recovery ----

    def recover(self, generation: Optional[int]) -> None:
        """recover rebuilds ``index`` from the committed frames in the log.

        Frames after the last commit frame are dropped (and, for a writer,
        truncated away). A log that is missing, empty or not this file's (another
        file's, or of a generation other than ``generation``, the data file's
        ``checkpoint_seq``, or one less) is started afresh at ``generation`` by a writer.
        ``generation`` None (salvage, which cannot trust the data file's header): no
        generation is held against the log's, and a readonly log is read as it is.

        Raises:
            CorruptionError: a valid frame's delta does not follow its page's previous frame.
            VersionMismatchError: a log of another format with frames in it.
        """
        self.index.clear()
        self.txn_index.clear()
        self.frame_pgnos, self.frame_offsets, self.depth = [], [], {}
        self.committed_frames = 0
        self._images.clear()
        if self.file is None:
            return
        head = self._read_header()
        if head is not None and generation is not None and not head[0] <= generation <= head[0] + 1:
            # This file's log, but not of this version of it: a log of generation g is written
            # over a data file whose checkpoint_seq is g, and a checkpoint of it makes that g + 1
            # before the next generation starts (docs/format.md, "Restart order"). Another
            # number is a log left from another time beside a copy of the file (a newer copy
            # over a crashed run's log, or an old log restored beside a newer file): its frames
            # replayed over this file mixed two states of the store, found as corruption only
            # later. It counts for nothing, as a log of another file does.
            head = None
        if head is None:
            if not self.readonly:
                assert generation is not None
                self.reset(generation)
            return
        self.generation, self.salt, crc = head
        self.committed_end, self.committed_crc = WAL_HEADER_SIZE, crc
        self._durable_end = WAL_HEADER_SIZE  # what an earlier open left may be in the page cache only
        self._scan(None, _Reader(self.file))
        if not self.readonly and self.file.size() > self.committed_end:
            self.file.truncate(self.committed_end)
        self.allocated = self.file.size()

    def _scan(self, frames: Optional[int], reader: _Reader) -> List[int]:
        """_scan reads the log's frames from ``committed_end`` on (the chain's checksum going on from
        ``committed_crc``) and adds each transaction's to the index at its commit frame, up to the
        last valid commit frame, or (``frames``) until ``committed_frames`` reaches that count.
        Returns the page numbers of the committed frames added. Recovery, and a writer catching up
        (``catch_up``): what lies past the last commit frame (a torn or abandoned transaction) is
        never taken.

        Raises:
            CorruptionError: a valid frame's delta does not follow its page's previous frame.
        """
        assert self.file is not None
        pending: Dict[int, int] = {}
        pgnos, offsets, depth = self.frame_pgnos, self.frame_offsets, self.depth
        committed_frames = first = self.committed_frames
        offset, crc = self.committed_end, self.committed_crc
        size = self.file.size()
        ps = self.page_size
        added: Dict[int, int] = {}
        while offset + FRAME_HEADER_SIZE <= size and (frames is None or committed_frames < frames):
            raw = reader.read(offset, FRAME_HEADER_SIZE)
            if len(raw) < FRAME_HEADER_SIZE:
                break
            pgno, commit, _txn, own_offset, salt, n, base = _FRAME.unpack_from(raw, 0)
            if salt != self.salt or own_offset != offset or pgno >= 1 << 31:
                break
            if not _payload_fits(n, base, offset, ps):
                break
            payload = reader.read(offset + FRAME_HEADER_SIZE, n)
            if len(payload) < n:
                break
            crc = crc32c(payload, crc32c(memoryview(raw)[:40], crc))
            if crc != _U32.unpack_from(raw, 40)[0]:
                break
            d = 0
            if base:
                prev = pending.get(pgno, self.index.get(pgno))
                if prev != base or depth[base] >= MAX_CHAIN:
                    raise CorruptionError(pgno, f"log frame at offset {offset}: a delta from the frame at "
                                                f"{base}, but the page's previous frame is at {prev}")
                d = depth[base] + 1
            depth[offset] = d
            pending[pgno] = offset
            pgnos.append(pgno)
            offsets.append(offset)
            offset += FRAME_HEADER_SIZE + n
            if commit:
                self.index.update(pending)
                added.update(pending)
                pending.clear()
                committed_frames = len(pgnos)
                self.committed_end, self.committed_crc = offset, crc
        for off in offsets[committed_frames:]:
            del depth[off]
        del pgnos[committed_frames:]
        del offsets[committed_frames:]
        self.committed_frames = committed_frames
        self.end, self._crc = self.committed_end, self.committed_crc
        if committed_frames > first:
            self._synced = False  # frames another process wrote, maybe with sync=False: the next sync covers them
        return list(added)

    def catch_up(self, frames: Optional[int], same_log: bool = False, published: int = 0,
                 entries: Optional[Callable[[int, int], "array[int]"]] = None) -> Optional[List[int]]:
        """catch_up brings a WRITER's log up to the commits other processes appended since it last
        looked (writers in several processes take turns: pager.py ``catch_up``): the frames past
        ``committed_end`` are read and checked as recovery reads them, up to the last valid commit
        frame (the caller holds the write lock: a writer killed after its commit frame keeps its
        commit, one killed before leaves frames no one takes), or until ``frames`` committed frames
        (a read mark on that published state). Nothing is truncated or written.

        Returns the page numbers whose newest frame changed, or None when the log is another
        generation now (another writer restarted it): its index is then rebuilt from the file,
        and any page may have changed. ``same_log``: the caller knows the log is still this
        generation (the shared index publishes it, and a restart invalidates that first), so
        its header is not read again. ``published``, ``entries``: with ``same_log``, the shared
        index publishes that many committed frames and lists them (``SharedIndex.frame_entries``):
        those are taken from the list, as a reader takes them (``_adopt``: no frame read, no
        checksum), and only what lies past them is read from the file.

        A mark on a state with no frame of the log (``frames`` 0) does not need its header: a
        log without one yet (a writer in its first turn made the file and is recovering it)
        leaves the log in memory empty, generation and salt 0, and returns None.

        Raises:
            CorruptionError: the log's header is unreadable (``frames`` not 0), a delta does not
                follow its page's previous frame, or the log holds fewer than ``frames``
                committed frames.
        """
        assert not self.readonly and self.file is not None and not self.txn_index
        # Most catch-ups find a few small frames, or none: a first read of one whole frame.
        reader = _Reader(self.file, FRAME_HEADER_SIZE + self.page_size)
        head = None if same_log else self._read_header()
        if head is None and not same_log:
            if frames != 0:
                raise CorruptionError(None, f"{self.path}: the log's header is unreadable")
            # A mark on a state that holds no frame of the log (the data file's whole), published
            # by a reader's rebuild or a close while the log was missing, and the log has no
            # header yet: a writer in its first turn made the file and is recovering it (it
            # writes the header, then publishes). Nothing of the log is read; the header is read
            # again at the next catch-up (generation and salt 0: a salt no log has).
            self._forget_log(0, 0, 0)
            self.end, self._crc = self.committed_end, self.committed_crc
            self.allocated = max(self.allocated, self.file.size())
            return None
        added: Optional[List[int]]
        if head is None or head[:2] == (self.generation, self.salt):
            added = []
            after: Optional[bytes] = None  # what follows the committed end, when already read
            if same_log and entries is not None and self.committed_frames < published:
                upto = published if frames is None else min(frames, published)
                added, after = self._adopt(entries(self.committed_frames, upto), upto)
            if after is None:
                after = self.file.read(self.committed_end, FRAME_HEADER_SIZE)
            # Frames past the published ones (a writer killed between its commit and its
            # publication) are read from the file; most catch-ups find none: one short read
            # tells, not a size and a page's worth.
            if self._begins_frame(after, self.committed_end):
                added += self._scan(frames, reader)
        else:
            self._forget_log(*head)
            self._scan(frames, reader)
            added = None
        if frames is not None and self.committed_frames < frames:
            raise CorruptionError(None, f"{self.path}: the log holds {self.committed_frames} committed frames, "
                                        f"fewer than the {frames} the shared index publishes")
        # Never zero-fill over what the others appended (``_reserve`` grows from ``allocated``).
        # Nothing taken (no commit since this writer's last look, the turn back to it after its
        # own, most turns of a burst): nothing of theirs lies past its committed end, whatever
        # a writer that committed nothing left there (a system call fewer a turn).
        if added is None or added:
            self.allocated = max(self.allocated, self.file.size())
        return added

    def unwritten(self) -> bool:
        """unwritten: the log file is empty: no header was ever written to it (it was made by an
        open whose recovery did not get to write one). A writer's, between its turns or in one."""
        return self.file is not None and self.file.size() == 0

    def _forget_log(self, generation: int, salt: int, crc: int) -> None:
        """_forget_log: a WRITER's log in memory is generation ``generation`` (``salt``, its header's
        checksum ``crc``) with no frame yet (``catch_up``, when the log is another generation;
        ``reset``, which starts one: the one place that empties the log's memory, so the two
        cannot drift apart)."""
        self.index.clear()
        self.frame_pgnos, self.frame_offsets, self.depth = [], [], {}
        self.committed_frames = 0
        self._images.clear()
        self.generation, self.salt = generation, salt
        self.committed_end, self.committed_crc = WAL_HEADER_SIZE, crc
        self._durable_end = WAL_HEADER_SIZE  # the restart synced its header; nothing more is known

    def _begins_frame(self, raw: bytes, offset: int) -> bool:
        """_begins_frame: ``raw``, read at ``offset``, may be the header of a frame of this log (its
        salt and its own offset; ``_scan`` checks the rest). Zeros, a short read or an older
        generation's frame are not."""
        if len(raw) < FRAME_HEADER_SIZE:
            return False
        _pgno, _commit, _txn, own, salt, _n, _base = _FRAME.unpack_from(raw, 0)
        return bool(salt == self.salt and own == offset)

    def _adopt(self, entries: "Sequence[int]", frames: int) -> Tuple[List[int], Optional[bytes]]:
        """_adopt takes the committed frames from ``committed_frames`` to ``frames`` from the shared
        index's list of them (``entries``: two integers a frame, as ``entries`` makes them), as
        a reader trusts it, instead of reading and checking each in the file: a writer catching
        up with what the others published (``catch_up``). Each frame's place in its page's chain
        of deltas follows from the log's rule (a delta's base is its page's previous frame); the
        checksum chain goes on from the last frame's, read with its header, which must be the
        commit frame it says. Returns the page numbers taken, [] (nothing taken) when the list
        does not end where it should (the caller reads the file instead: ``_scan``), and the
        bytes that follow the last frame taken (a frame header's length or less; None when
        nothing was taken), read with it. O(frames taken) in memory, one read; the walk over the
        entries in one C call (native/fastpage.c ``log_adopt``: about 1.5 us a frame in Python)."""
        assert self.file is not None
        first = self.committed_frames
        if len(entries) != 2 * (frames - first) or not entries:
            return [], None
        ps = self.page_size
        self._taken = None
        walked = _native.fast.log_adopt(entries, self.committed_end, ps, self.index, self.depth, MAX_CHAIN)
        if walked is None:
            return [], None
        pgnos, offsets, chains, latest, new_depth, end, pgno, off, n = walked
        start, span = self.committed_end, off - self.committed_end
        if span <= WINDOW_BYTES:
            # Every frame taken, the last one and the next header, in one read: the pages the
            # caller rebuilds next (the header, the map's, the tree's) read their new frames
            # from these bytes (``_frame_bytes``), not one read of the file each.
            whole = self.file.read(start, span + 2 * FRAME_HEADER_SIZE + n)
            raw: "bytes | memoryview" = memoryview(whole)[span:]
        else:
            whole, raw = b"", self.file.read(off, 2 * FRAME_HEADER_SIZE + n)  # the last frame and the next header
        if len(raw) < FRAME_HEADER_SIZE:
            return [], None
        fpgno, commit, _txn, own, salt, size, _base = _FRAME.unpack_from(raw, 0)
        if (fpgno, own, salt, size) != (pgno, off, self.salt, n) or not commit:
            return [], None
        self.depth.update(new_depth)
        self.frame_pgnos += pgnos
        self.frame_offsets += offsets
        self.index.update(latest)
        self.committed_end, self.committed_crc = end, _U32.unpack_from(raw, 40)[0]
        self.committed_frames = frames
        self.end, self._crc = end, self.committed_crc
        self._synced = False  # frames another process wrote, maybe with sync=False: the next sync covers them
        self._window = (self.generation, self.salt, start, end, whole) if whole else None
        self._taken = (self.generation, self.salt, end, chains) if whole else None
        return list(latest), bytes(raw[FRAME_HEADER_SIZE + n :])

    def advance(self, pgno: int, image: bytearray, known: Optional[int] = -1) -> bool:
        """advance brings ``image``, page ``pgno``'s image as of its frame at offset ``known`` (None:
        the data file's, no frame), to the page's newest committed image, from the frames the last
        catch-up took (``_adopt``) and read in one window: each whole frame copied over it, each
        delta applied, in log order, as ``read_frame`` would apply them down a chain, but from the
        image the caller holds instead of the chain's whole frame, and with no read. ``known`` -1:
        the image is of the page's newest frame before that catch-up (a writer's clean cached
        page: the pager's invariant, ``Pager.write``'s base). A writer taking its turn brings the
        pages it holds (the header, the free-space map's, the shared heap page) up to the others'
        commits this way instead of dropping them and reading each through its chain of deltas.

        Returns False, ``image`` maybe half changed (the caller drops it), when it cannot: the
        catch-up took no frame of ``pgno`` or not in one window, the log changed since (a commit,
        a scan, another generation), ``known`` is not where the taken frames begin, or a frame
        in the window is not the one its entry says (another page's, another offset, a delta
        whose base is not the page's frame before it, a delta that does not fit the page).
        O(bytes of the page's taken frames), in one C call (native/fastpage.c ``log_advance``)."""
        taken, win = self._taken, self._window
        if taken is None or win is None or taken[2] != self.committed_end \
                or (taken[0], taken[1]) != (self.generation, self.salt) or win[3] != taken[2]:
            return False
        chain = taken[3].get(pgno)
        if chain is None or (known != -1 and chain[0] != known) or len(image) != self.page_size:
            return False
        return bool(_native.fast.log_advance(image, win[4], win[2], chain, pgno, self.salt, self.page_size))

    def _frame_bytes(self, off: int) -> bytes:
        """_frame_bytes: what ``read_frame`` reads of the frame at ``off``: the frame whole (its header
        and payload) from the bytes the last catch-up read (``_adopt``), if they hold it and are
        this log generation's (committed frames never change within one); else a page's worth
        from ``off``, read from the file. O(1) reads."""
        win = self._window
        if win is not None and win[2] <= off and off + FRAME_HEADER_SIZE <= win[3] \
                and (win[0], win[1]) == (self.generation, self.salt):
            rel = off - win[2]
            size = _FRAME.unpack_from(win[4], rel)[5]
            if off + FRAME_HEADER_SIZE + size <= win[3]:
                return win[4][rel : rel + FRAME_HEADER_SIZE + size]
        assert self.file is not None
        return self.file.read(off, FRAME_HEADER_SIZE + self.page_size)

    def _rewrite(self, start: int, end: int) -> None:
        """_rewrite writes the log again from byte ``start`` to ``end`` (a committed end), for a
        sync to make durable: a sync failed or did not return there (in this process or
        another), and Linux marks the pages of a failed fsync clean without writing them, so
        no later fsync writes them. Each frame from ``start`` is read and checked as recovery
        checks it (its chain of checksums going on from the frame before ``start``) and written
        back as read (dirty again in the page cache). ``start`` not where a frame begins (or
        past ``end``): from the log's header, byte 0. O(bytes rewritten). Committed frames
        never change: another thread may append past ``end`` meanwhile. Callers hold
        ``_sync_lock`` and a sync slot (``_sync_round``).

        Raises:
            CorruptionError: the header or a frame does not check (the page cache lost it, or
                never had it): the log is not to be built on. What checked is written back.
            OSError: a write failed.
        """
        assert not self.readonly and self.file is not None
        head = self._read_header()
        if head is None or head[:2] != (self.generation, self.salt):
            raise CorruptionError(None, f"{self.path}: the log's header is not the one of the frames it holds")
        offsets = self.frame_offsets
        i = bisect_left(offsets, start)
        at_frame = start == WAL_HEADER_SIZE or start == end or (i < len(offsets) and offsets[i] == start)
        if not at_frame or start > end:
            start = i = 0
        if start < WAL_HEADER_SIZE:
            start, pos, crc = 0, WAL_HEADER_SIZE, head[2]
            out = bytearray(self.file.read(0, WAL_HEADER_SIZE))
        else:
            pos, out = start, bytearray()
            crc = head[2] if i == 0 else _U32.unpack_from(self.file.read(offsets[i - 1] + 40, 4), 0)[0]
        at = start
        reader = _Reader(self.file)
        ps = self.page_size
        while pos < end:
            raw = reader.read(pos, FRAME_HEADER_SIZE)
            bad = len(raw) < FRAME_HEADER_SIZE
            if not bad:
                pgno, _commit, _txn, own, salt, n, base = _FRAME.unpack_from(raw, 0)
                bad = salt != self.salt or own != pos or pgno >= 1 << 31 or not _payload_fits(n, base, pos, ps)
            if not bad:
                payload = reader.read(pos + FRAME_HEADER_SIZE, n)
                crc = crc32c(payload, crc32c(memoryview(raw)[:40], crc)) if len(payload) == n else -1
                bad = crc != _U32.unpack_from(raw, 40)[0]
            if bad or pos + FRAME_HEADER_SIZE + n > end:
                if out:
                    self.file.write(at, bytes(out))
                raise CorruptionError(None, f"{self.path}: the log frame at offset {pos}, after a failed sync of "
                                            "another writer, does not read back whole")
            out += raw
            out += payload
            pos += FRAME_HEADER_SIZE + n
            if len(out) >= WRITE_CHUNK:
                self.file.write(at, bytes(out))
                at += len(out)
                out = bytearray()
        if out:
            self.file.write(at, bytes(out))

    # ---- writing ----

    def append(self, pgno: int, page: Buffer, txn: int) -> int:
        """append writes one whole-image frame of the open transaction (a page spilled from
        the cache) at the end of the log and returns its offset."""
        offset = self.end
        self.append_many([(pgno, page, None)], txn, 0)
        return offset

    def commit(self, frames: List[Frame], txn: int, page_count: int, *, durable: bool, seal: bool = False) -> None:
        """commit appends a transaction's last frames, page 0 last, as its commit frame, and with
        ``durable`` syncs the log. All or nothing: if the write or the sync fails, the log's
        memory (index, end, checksum chain) is as it was before the call, and the error is raised.

        ``seal``: each page frame but page 0's (a pager frame: a bytearray) is first stamped
        with ``txn`` as its LSN and with its checksum, in place, in the same C call that
        builds the frames.

        Callers: the pager's commit only.
        """
        mark = _Mark(self, frames, syncs=durable)
        try:
            self._append(frames, txn, page_count, seal)
            if durable:
                self.sync()
        except BaseException as exc:
            if (durable and (not isinstance(exc, Exception) or isinstance(exc, DurabilityUnknownError))
                    and self.committed_frames != mark.committed_frames):
                # DurabilityUnknownError: written and its fsync done, only another process's
                # outcome not waited for: kept, as below (the pager makes it: ``Pager.commit``).
                # A Ctrl-C in the sync (or as the append returned): the commit stays. Undone, the
                # next commit wrote over its frames, and the shared index's durable word, which
                # this sync may already have moved past them, let the next sync skip them.
                raise
            try:
                self._restore(mark)
            except KeyboardInterrupt:  # a second Ctrl-C never leaves it half undone
                run_through(lambda: self._restore(mark))
                raise
            raise

    def append_many(self, frames: List[Frame], txn: int, commit_page_count: int) -> None:
        """append_many writes frames in as few write calls as it can. All or nothing in memory:
        if a write fails, the log's index, end and checksum chain are as before the call.

        With ``commit_page_count`` the last frame commits the transaction: the
        caller passes page 0 last, then calls ``sync`` if durability is wanted
        (``commit`` does both, undoing both on failure). Without it, the
        frames belong to the open transaction (``txn_index``).
        """
        mark = _Mark(self, frames, commits=bool(commit_page_count))
        try:
            self._append(frames, txn, commit_page_count)
        except BaseException:
            try:
                self._restore(mark)
            except KeyboardInterrupt:  # a second Ctrl-C never leaves it half undone
                run_through(lambda: self._restore(mark))
                raise
            raise

    def _restore(self, mark: _Mark) -> None:
        """_restore puts back what ``_append`` (and a sync) changed in memory since ``mark``.

        The bytes written past the old end stay in the file; they are past the
        committed end, so the next append overwrites them and recovery never
        keeps them (no commit frame after the last valid one is theirs).
        """
        if mark.txn_index is not None and mark.replaced is _NONE:
            self._unindex(mark)
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
        self.committed_frames = mark.committed_frames
        for off in [o for o in self._images if o >= self.committed_end]:
            del self._images[off]
        del self.frame_pgnos[mark.frames :]
        del self.frame_offsets[mark.frames :]

    def _unindex(self, mark: _Mark) -> None:
        """_unindex puts back the index entries of the pages of a commit whose append an interrupt cut
        after it updated the index (a Ctrl-C lands after a call into C returns: ``index.update``,
        ``txn_index.clear()``), for a mark that saved none (``_Mark``: no sync). Each such page's
        entry goes back to its newest frame committed before, found in ``frame_pgnos`` (O(frames
        of the log), on this path only). Half undone, the index kept frames past the committed
        end, which the next append wrote over ("log frame at offset ... is missing or belongs to
        another page")."""
        index, before = self.index, mark.committed_end
        stale: Set[int] = set()
        for p in (*(mark.txn_index or ()), *(f[0] for f in mark.appended)):
            off = index.get(p)
            if off is not None and off >= before:
                stale.add(p)
        if not stale:
            return
        newest: Dict[int, int] = {}
        pgnos, offsets = self.frame_pgnos, self.frame_offsets
        for i in range(min(mark.committed_frames, len(pgnos)) - 1, -1, -1):
            p = pgnos[i]
            if p in stale and p not in newest:
                newest[p] = offsets[i]
                if len(newest) == len(stale):
                    break
        for p in stale:
            if p in newest:
                index[p] = newest[p]
            else:
                index.pop(p, None)

    def _append(self, frames: List[Frame], txn: int, commit_page_count: int, seal: bool = False) -> None:
        file = self.file
        assert file is not None
        offset = start = self.end
        crc = self._crc
        page_size = self.page_size
        txn_index = self.txn_index
        pgnos = self.frame_pgnos
        first = len(pgnos)
        total = len(frames)
        shm = self.shm
        if shm is not None and first + total > shm._capacity:  # ``reserve``'s test, inline
            shm.reserve(first + total)  # a full disk fails here, before the log holds any of it
        # Frames are built a chunk at a time, each chunk in one C call (log_append: each frame's
        # base chosen, headers, deltas, the checksum chain, and the bookkeeping: txn_index, depth,
        # frame_pgnos / frame_offsets and the shared index's entries; issue 23) and written in
        # one write: a big commit (a thousand random inserts dirty a thousand leaves) would
        # otherwise hold all its frames twice in memory. A crash between chunks leaves frames
        # without their commit frame, which recovery discards. A small commit is one chunk: its
        # frames as given, no slicing, one C call and one write.
        per_chunk = max(1, WRITE_CHUNK // (FRAME_HEADER_SIZE + page_size))
        build = _native.fast.log_append
        salt, index, depth, offsets = self.salt, self.index, self.depth, self.frame_offsets
        stamp = txn if seal else 0
        if total <= per_chunk:
            data, crc, entries = build(frames, txn, salt, offset, crc, commit_page_count, page_size, stamp,
                                       txn_index, index, depth, pgnos, offsets, MAX_CHAIN)
            offset += len(data)
            if offset > self.allocated:
                self._reserve(offset)
            file.write(start, data)
        else:
            parts: List[bytearray] = []
            chunks: List[bytes] = []
            held = 0
            lo = 0
            while lo < total:
                hi = lo + per_chunk
                last = hi >= total
                out, crc, got = build(frames[lo:hi], txn, salt, offset, crc, commit_page_count if last else 0,
                                      page_size, stamp, txn_index, index, depth, pgnos, offsets, MAX_CHAIN)
                chunks.append(got)
                offset += len(out)
                lo = hi
                # Written WRITE_CHUNK bytes at a time, as before the C call: chunks of deltas are
                # small, and a write past the file's end by less than GROW_BYTES writes zeros first.
                parts.append(out)
                held += len(out)
                if held < WRITE_CHUNK and not last:
                    continue
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                parts, held = [], 0
                if start + len(data) > self.allocated:
                    self._reserve(start + len(data))
                file.write(start, data)
                start += len(data)
            entries = b"".join(chunks)
        self._crc = crc
        self.end = offset
        self._appends += 1
        if shm is not None:
            shm.set_frames(first, entries)
        if commit_page_count:
            index.update(txn_index)
            txn_index.clear()
            self.committed_end, self.committed_crc = offset, crc
            self.committed_frames = len(pgnos)

    def _reserve(self, end: int) -> None:
        """_reserve extends the file with zeros so that it holds ``end`` bytes.

        Zeros never pass as a frame (the salt is never zero), so recovery stops there.
        """
        assert self.file is not None
        if end <= self.allocated:
            return
        if end - self.allocated >= GROW_BYTES:
            # A large append extends the file itself: the one sync after it commits the
            # new size once, and zeros written first would double the bytes written.
            self.allocated = end
            return
        new = -(-end // GROW_BYTES) * GROW_BYTES
        self.file.write(self.allocated, bytes(new - self.allocated))
        self.allocated = new

    @property
    def _synced(self) -> bool:
        """_synced: whether a sync has covered every append so far."""
        return self._appends == self._synced_appends

    @_synced.setter
    def _synced(self, value: bool) -> None:
        if value:
            self._synced_appends = self._appends
        else:
            self._appends += 1

    def synced_through(self, count: int) -> bool:
        """synced_through: whether a sync has covered the appends up to ``count`` (an ``append_count``)."""
        return self._synced_appends >= count

    def append_count(self) -> int:
        """append_count: appends so far (a number that only grows), for ``sync(upto=...)``."""
        return self._appends

    def sync(self, upto: int = 0, begun: Optional[Callable[[], None]] = None) -> None:
        """sync makes the log durable up to the end it had when the call began; with ``upto``
        (an ``append_count``), only if a sync since that append has not done so already.

        Thread-safe against appends on another thread (group commit syncs outside the
        store's lock): what an append writes after the sync began may be left for the
        next sync. Syncs run one at a time; after one failed, every later one raises
        an OSError naming that failure (the first) without syncing: a successful fsync
        after a failed one proves nothing (the failed one dropped the dirty pages).

        ``begun``: called right before the fdatasync, after every step that may let the GIL
        go (LOCK_SYNC's fcntl, a slot's, frames written again); not called if no fdatasync runs. The
        commit queue's next leader waits for it (group.py ``_sync_begun``).
        """
        if upto and self._synced_appends >= upto:
            return
        with self._sync_lock:
            if upto and self._synced_appends >= upto:
                return  # a sync that ran meanwhile (another group's, a checkpoint's) covered it
            if self._sync_failed is not None:
                raise EarlierSyncFailed(self._sync_failed)
            n = self._appends
            if self.file is not None and n != self._synced_appends:
                shm = self.shm
                if shm is None:
                    self._fsync(n, None, begun)
                    return
                began = time.monotonic()
                try:
                    sole = self._sole
                    # sole mode first, as ``_sync_shared`` tries it, without that call's frame (a lone put's path)
                    if sole is None or not self._sync_alone(n, shm, sole, begun):
                        self._sync_shared(n, shm, begun, False)
                finally:
                    self.sync_seconds = time.monotonic() - began

    def _fsync(self, n: int, first: Optional[Callable[[], object]] = None,
               begun: Optional[Callable[[], None]] = None) -> None:
        """_fsync is a sync of the log with no other process beside it (no shared index: ``sync``,
        ``reset``; beside others, ``_sync_round``) and its outcome's bookkeeping. ``first``: writes
        this sync is to make durable (a new log's header); their failure is the sync's. A failure
        poisons the log: ``_sync_failed`` keeps the first error, which every later sync raises
        (after a failed fsync Linux reports the next one as a success); the error is raised. A
        success makes the appends up to ``n`` (an ``append_count`` taken before the writes it
        covers) durable. Callers hold ``_sync_lock``.

        Raises:
            OSError: the sync, or a write of ``first``, failed.
        """
        file = self.file
        assert file is not None
        try:
            if first is not None:
                first()
            if begun is not None:
                begun()
            file.sync()
        except OSError as exc:
            self._sync_failed = exc
            raise
        self._synced_appends = n
        self.syncs += 1

    def _rewrite_for_sync(self, start: int, end: int) -> None:
        """_rewrite_for_sync: ``_rewrite`` for a sync that must make those frames durable (``_sync_shared``):
        frames that no longer read back whole are a failed sync (EIO), not a refusal to build on them."""
        try:
            self._rewrite(start, end)
        except CorruptionError as exc:
            raise OSError(errno.EIO, f"cannot make the log durable again: {exc.detail}", self.path) from exc

    def _sync_shared(self, n: int, shm: "SharedIndex", begun: Optional[Callable[[], None]] = None,
                     sole_first: bool = True) -> None:
        """_sync_shared is ``sync`` beside other processes (shm.py, "Unsynced"): rounds of
        ``_sync_round`` until one ends with no other process's sync having failed (or died)
        beside it. Syncs of several processes overlap; each waits, after its own fsync, for the
        outcome of those that ran beside it.

        The waits for other processes' syncs end at the store's timeout (``timeout``, one
        deadline for the whole call): a process stopped (SIGSTOP) in its fsync, or a hung disk,
        never holds this one's commit longer.

        Raises:
            OSError: the sync failed, or the frames to write again no longer read back whole
                (EIO); either way every later sync refuses (``_sync_failed``).
            DurabilityUnknownError: this sync's fsync succeeded, but a sync of another process
                that ran beside it did not end by the deadline: nothing is acknowledged,
                nothing poisoned (``_sync_round``'s step 5).
        """
        sole = self._sole
        if sole_first and sole is not None and self._sync_alone(n, shm, sole, begun):
            return  # (``sole_first`` False: ``sync`` has tried it)
        deadline = deadline_after(self.timeout)
        if self._ride(n, shm, begun, deadline):
            return
        while not self._sync_round(n, shm, begun, "sync", deadline=deadline):
            pass

    def _sync_alone(self, n: int, shm: "SharedIndex", sole: "SoleLock", begun: Optional[Callable[[], None]]) -> bool:
        """_sync_alone is ``sync`` in sole mode (docs/format.md, "Sole mode"): while ``sole.enter``
        holds (LOCK_WRITERS exclusive: no other writer has the store open, and none opens it
        until ``sole.leave``), no other process writes, syncs or reads the words of "Unsynced",
        so the round's slot lock and LOCK_SYNC prove nothing more: the record in a slot (a
        process killed in the fsync leaves it, counted as a failed sync as any), the fsync,
        and the outcome, with no lock call but the two of ``sole``. False (nothing done):
        another writer has the store open, or the words say a failure or a dead sync is to be
        made good first (the rounds do that, writing again). A failure is recorded as a
        round's step 4 records it, and poisons.

        Raises:
            OSError: the fsync failed (``_sync_failed`` keeps it; every later sync refuses).
        """
        if not sole.enter():
            return False
        try:
            end, tail, salt = self.committed_end, self.end, self.salt
            begun_at = shm.begin_alone(salt, self._failures_seen, self._durable_end)
            if begun_at is None:
                return False
            slot, durable = begun_at
            if durable < tail:  # else another process's sync, before, made these frames durable
                file = self.file
                assert file is not None
                try:
                    if begun is not None:
                        begun()
                    file.sync()
                except OSError as exc:
                    # Step 4 of a failed round: the next sync, here or in another process, writes
                    # the log again from the record's *from*; the record goes last (a kill before
                    # leaves it set: a dead sync, counted as failed, the same).
                    rec = shm.slot(slot)
                    assert rec is not None
                    shm.mark_unsynced(salt, rec[1])
                    shm.bump(FAILURES_OFFSET, 0)
                    shm.clear_slot(slot)
                    self._sync_failed = exc
                    raise
                except BaseException:
                    shm.clear_slot(slot)  # a Ctrl-C: no fsync failed, nothing acknowledged
                    raise
                shm.end_alone(slot, salt, durable, end if tail == end else 0)
                self.syncs += 1
                self.sole_syncs += 1
            else:
                shm.clear_slot(slot)
            self._synced_appends = n
            self._durable_end = max(self._durable_end, end)
            return True
        finally:
            try:
                sole.leave()  # ``run_through`` only when a Ctrl-C cut it: a call fewer on every sync
            except KeyboardInterrupt as exc:
                run_through(sole.leave)
                raise exc

    def _ride(self, n: int, shm: "SharedIndex", begun: Optional[Callable[[], None]],
              deadline: Optional[float] = None) -> bool:
        """_ride: a sync in another process (or on another thread), begun after this process's frames
        were published, is in flight (its slot's *covers* word reaches past them: shm.py
        "Unsynced"): wait for its outcome instead of an fsync of this process's own, as group
        commit across processes. The acknowledgement is the one that sync's own steps 5 and 6
        make: its fsync returned success (its record cleared with *covers* kept, under
        LOCK_SYNC), and every sync busy since then ended without a failure counted (waited for
        here, dead ones counted as failed). True: the appends up to ``n`` are durable. False
        (nothing in flight covers them, or a failure was counted, or a sync beside it died): the
        caller runs a sync round of its own, which writes again where a failure says; so too
        when a sync it waits for has not ended by ``deadline`` (a ``time.monotonic()``; None: no
        limit): that round, with the same deadline, tries each busy one once more after its fsync.
        Holds no slot, and LOCK_SYNC only for its two looks: no cycle with the syncs it waits for."""
        end, tail, salt = self.committed_end, self.end, self.salt
        if tail != end or not end:
            return False  # frames of an open transaction: nobody else publishes past them
        j = shm.covering(salt, tail)
        if j is None:
            return False
        if begun is not None:
            begun()  # the wait below stands for this sync's fsync
        held: List[int] = []
        try:
            if not shm.wait_slot(j, deadline):  # that sync recorded its outcome (step 4), or died
                return False  # still in its fsync at the deadline: a round of this process's own
            held.append(j)
            if not shm.lock_sync(deadline):
                return False  # held by a stopped process: the round, with the same deadline, says so
            try:
                from_word, _, failures, durable_end, durable_salt = shm.sync_words()
                if from_word or failures != self._failures_seen:
                    return False  # the round writes again from where the failure says
                if durable_end >= tail and durable_salt == salt:
                    others = []  # acknowledged already (that sync's step 6, or a later one's)
                elif shm.covered(j, salt, tail):
                    others = shm.busy_slots()  # its step 5, for this process: every sync busy since
                else:
                    return False  # it failed, was interrupted or died
            finally:
                _unlock_sync(shm)
            if others:
                for i in others:
                    if i not in held:
                        if not shm.wait_slot(i, deadline):
                            return False
                        held.append(i)
                if not shm.lock_sync(deadline):
                    return False
                try:
                    if shm.fold_dead(others, probe=False) or shm.word(FAILURES_OFFSET) != failures:
                        return False
                finally:
                    _unlock_sync(shm)
        finally:
            for i in held:
                run_through(functools.partial(shm.release_slot, i))
        self._synced_appends = n
        self._durable_end = max(self._durable_end, end)
        self.rides += 1
        return True

    def _sync_round(self, n: int, shm: "SharedIndex", begun: Optional[Callable[[], None]], mode: str,
                    header: bytes = b"", deadline: Optional[float] = None) -> bool:
        """_sync_round is one attempt of a sync of the log beside other processes (shm.py, "Unsynced"),
        in six steps; LOCK_SYNC is held only for steps 2-3's bookkeeping and writes (writes only
        after a failure) and 4 and 6's bookkeeping, never across an fsync, so that the fsyncs of
        several processes overlap:

        1. claim a sync slot (its lock, exclusive);
        2. under LOCK_SYNC: a dead process's record left in the slot counts as a failed sync
           (``fold_dead``); read the words; decide from where the log is written again (the
           unsynced word, or this log's durable end if a failure was counted since its last good
           sync), or that another process's sync already covered it (nothing to do); record in
           the slot from where this sync may drop bytes if it fails (the log's durable end), and
           its *covers* word: up to where it makes the log durable (the published end);
        3. write again (``_rewrite``; still under LOCK_SYNC, which a log restart's header write
           takes too), and fsync (without it);
        4. under LOCK_SYNC: a failure moves the unsynced word down to the slot's offset and
           counts itself; the slot is cleared (its *covers* word too, unless the fsync returned
           success: what a rider, ``_ride``, takes as the proof) and let go; the slots busy now are noted (none:
           step 6 at once, in the same hold);
        5. wait for each of them to end (``wait_slot``): any sync that began before this fsync
           returned, whose failure might have dropped bytes this one relied on; no longer than
           ``deadline`` (a ``time.monotonic()``; None: no limit). Past it (that process stopped
           in its fsync, a hung disk): ``DurabilityUnknownError``, with nothing recorded but
           this round's own step 4 (its fsync's success, as any): the frames stay written and
           published, not acknowledged; the next sync of this log (or a reopen) settles them;
        6. under LOCK_SYNC: if a failure was counted since step 2, or one of them died in its
           sync, this round proves nothing: False (the caller runs another, which writes again
           from the unsynced word). Else the durable word moves up to what this sync covered and
           the unsynced word moves up past what it wrote again.

        ``mode``: "sync" (``sync``), "repair" (``repair``: only where the unsynced word says, and
        frames that no longer read back raise CorruptionError, not a failed sync), "reset"
        (``reset``: ``header``, a new log's, is written at 0 first; the word is cleared).
        Returns True when done. Callers hold ``_sync_lock``.

        Raises:
            OSError: the write or the fsync failed (``_sync_failed`` keeps it; every later sync
                refuses), or ("sync") the frames to write again do not read back whole (EIO).
            CorruptionError: ("repair") they do not read back whole; nothing is poisoned.
            DurabilityUnknownError: ("sync") a wait (the slot, LOCK_SYNC, step 5) reached
                ``deadline``; nothing is poisoned (``_timed_out``).
            StoreLockedError: ("repair", or "reset" before its header is written) the same.
            TimeoutError: ("reset") the same once its header is written; the log is poisoned.
        """
        file = self.file
        assert file is not None
        end, tail = self.committed_end, self.end
        salt = self.salt if mode != "reset" else _U32.unpack_from(header, 32)[0]
        slot = shm.claim_slot(deadline)
        if slot is None:
            raise self._timed_out(mode, "a sync slot (every one held by a sync that did not end)", written=False)
        failed: Optional[OSError] = None
        stuck = False  # step 4 or 6 could not take LOCK_SYNC by the deadline
        try:
            if not shm.lock_sync(deadline):
                # Nothing recorded, nothing written: the slot goes as it came.
                raise self._timed_out(mode, "LOCK_SYNC", written=False)
            try:
                shm.fold_dead((slot,), probe=False)  # its last holder died in its sync
                from_word, from_salt, failures, durable_end, durable_salt = shm.sync_words()
                start: Optional[int] = None
                if mode == "reset":
                    start = 0
                else:
                    if from_word:
                        start = from_word - 1 if from_salt == salt else 0
                    if failures != self._failures_seen and mode == "sync":
                        start = self._durable_end if start is None else min(start, self._durable_end)
                    if start is None and (mode == "repair" or (
                            durable_end and durable_salt == salt and durable_end >= tail)):
                        if mode == "sync":
                            # A sync in another process, begun after these frames were written,
                            # made them durable (``durable``, shm.py "Unsynced"); nothing failed
                            # since this process's last good sync: nothing to do.
                            self._synced_appends = n
                            self._durable_end = max(self._durable_end, end)
                            if tail == end:
                                self._failures_seen = failures
                            self.shared_syncs += 1
                        return True
                    if start is not None and mode == "sync":
                        head = self._read_header()
                        if head is None or head[:2] != (self.generation, salt):
                            # Another writer restarted the log since this process's turn (the new
                            # header is written under LOCK_SYNC): it did so only once a checkpoint
                            # had copied every published frame into the data file and synced it,
                            # so this process's commits are durable there. Nothing to write again
                            # (it would land on the new log's frames), nothing to sync.
                            self._synced_appends = n
                            return True
                # Every frame published before the fsync below begins was written before it: the
                # fsync makes them durable too, whichever process wrote them.
                last = shm.last_frame(salt)
                published = last[0] + FRAME_HEADER_SIZE + last[1] if last is not None else 0
                low = durable_end if durable_end and durable_salt == salt else self._durable_end
                if start is not None:
                    low = min(low, start)
                shm.set_slot(slot, salt, low, published)
                # The writes, under LOCK_SYNC (rare: after a failure, or a new log's header): a
                # restart of the log by the writer in its turn writes its new header under it,
                # so frames of the old log written again never land on the new one's (``_rewrite``
                # checks the header first).
                try:
                    if mode == "reset":
                        self._header_written = True  # from here a timeout is past step 1 (``_timed_out``)
                        file.write(0, header)
                    elif start is not None:
                        if mode == "repair":
                            self._rewrite(start, end)
                        else:
                            self._rewrite_for_sync(start, end)
                except OSError as exc:
                    failed = exc
                except BaseException:  # a repair's frames do not read back (CorruptionError), a Ctrl-C:
                    shm.clear_slot(slot)  # nothing was dropped that was not before
                    raise
            finally:
                _unlock_sync(shm)
            try:
                if failed is None:
                    if begun is not None:
                        begun()
                    file.sync()
            except OSError as exc:
                failed = exc
            except BaseException:
                # A Ctrl-C: no fsync failed.
                run_through(lambda: self._end_slot(shm, slot))
                raise
            # Step 4; with no other sync busy now, step 6 under the same hold (nothing to wait for).
            done: Optional[bool] = None
            others: List[int] = []
            if not shm.lock_sync(deadline):
                # The outcome cannot be recorded: the record stays set under a lock let go below,
                # which the next sync (or turn) of any process counts as a sync that failed
                # (``fold_dead``), writing the log again from its offset: whatever this fsync did.
                stuck = True
            else:
                try:
                    if failed is not None:
                        # The next sync, here or in another process, writes the log again from ``low``.
                        shm.mark_unsynced(salt, low)
                        shm.bump(FAILURES_OFFSET, 0)
                    shm.clear_slot(slot, synced=failed is None)
                    others = shm.busy_slots(slot)
                    if failed is None and not others:
                        done = shm.word(FAILURES_OFFSET) == failures
                        if done:
                            self._settle(shm, mode, salt, start, end, tail, published, failures)
                finally:
                    _unlock_sync(shm)
        finally:
            run_through(lambda: shm.release_slot(slot))
        if failed is not None:
            self._sync_failed = failed
            raise failed
        self.syncs += 1
        if stuck:
            raise self._timed_out(mode, "LOCK_SYNC", written=True)
        if done is None:
            held: List[int] = []
            try:
                for j in others:  # step 5
                    if not shm.wait_slot(j, deadline):
                        raise self._timed_out(mode, f"sync slot {j}", written=True)
                    held.append(j)
                if not shm.lock_sync(deadline):
                    raise self._timed_out(mode, "LOCK_SYNC", written=True)
                try:
                    # Only the syncs busy when this fsync returned: one that began after cannot have
                    # dropped what it wrote (a dead one is counted by whoever next waits for it).
                    dead = shm.fold_dead(held, probe=False)
                    done = not dead and shm.word(FAILURES_OFFSET) == failures
                    if done:
                        self._settle(shm, mode, salt, start, end, tail, published, failures)
                finally:
                    _unlock_sync(shm)
            finally:
                for j in held:
                    run_through(functools.partial(shm.release_slot, j))
        if done:
            self._synced_appends = n
        return done

    def _timed_out(self, mode: str, what: str, *, written: bool) -> BaseException:
        """_timed_out: the error of a ``_sync_round`` whose wait for ``what`` (a sync slot, LOCK_SYNC,
        another process's sync) reached its deadline: another process holds it, stopped
        (SIGSTOP) or on a hung disk. ``written``: this round's writes and fsync were done (its
        fsync succeeded: a failed one raises its own error), only their outcome is not
        confirmed beside the others'; else nothing was done. By ``mode``:

        - "sync": ``DurabilityUnknownError`` either way: the commits are written and published,
          not known durable; the next sync that completes (or a reopen) settles them; nothing
          poisoned.
        - "repair" (a writer's turn, before it builds on frames a failed sync left):
          ``StoreLockedError``; the unsynced word stays, for the next turn's repair.
        - "reset" (a new log's header): nothing written: ``StoreLockedError``, the log not
          restarted (``reset`` leaves memory as it was). Written: the header's durability is
          unknown and every later commit would stand on it, so the log is poisoned
          (``_sync_failed``: every later sync refuses, the pager poisons) and a
          ``TimeoutError`` (ETIMEDOUT) is raised.
        """
        if mode == "reset" and self._header_written:
            written = True  # an earlier round of this restart wrote the header (it proved nothing)
        store = self.path[:-4] if self.path.endswith("-wal") else self.path
        held = (f"{what} was held by another process for the store's timeout of {self.timeout} s (a "
                "process stopped, or a hung disk)")
        if mode == "sync":
            if written:
                why = (f"its log sync succeeded, then waited for the outcome of the syncs beside it, whose "
                       f"failure could undo it: {held}")
            else:
                why = f"its log sync could not begin: {held}"
            return DurabilityUnknownError(
                store,
                f"{store}: the commit is written to the log and published, but its durability is not "
                f"confirmed: {why}; the next sync that completes (sync(), the next durable commit) or a "
                "reopen settles it")
        if mode == "repair" or not written:
            task = ("write the log again where another writer's sync failed, before this writer builds on it"
                    if mode == "repair" else "start a new log after its checkpoint")
            return StoreLockedError(f"{store}: this writer could not {task}: {held}; nothing of this write "
                                    "was written; try again")
        err = TimeoutError(errno.ETIMEDOUT, f"the log's restart is written, but its durability is not "
                                            f"confirmed: {held}; the store is poisoned for writing until "
                                            "reopened", self.path)
        self._sync_failed = err
        return err

    def _end_slot(self, shm: "SharedIndex", slot: int) -> None:
        """_end_slot clears slot ``slot``'s record (under LOCK_SYNC): a sync that ends with no fsync
        failed (a Ctrl-C)."""
        if not shm.lock_sync(deadline_after(self.timeout)):
            return  # the record stays: counted as a failed sync by the next (``fold_dead``)
        try:
            shm.clear_slot(slot)
        finally:
            _unlock_sync(shm)

    def _settle(self, shm: "SharedIndex", mode: str, salt: int, start: Optional[int], end: int, tail: int,
                published: int, failures: int) -> None:
        """_settle: step 6 of ``_sync_round`` when no failure was counted beside it: what this sync
        made durable goes into the shared words, each only ever moved up (another process's
        sync may have moved it further meanwhile). Under LOCK_SYNC."""
        if mode == "reset":
            # Every old frame is in the data file, synced: an old failure is moot now, and none
            # was counted since step 2.
            self._failures_seen = failures
            shm.clear_unsynced()
            return
        self._durable_end = max(self._durable_end, end)
        if tail == end:
            # Frames of an open transaction past the committed end (``tail``) were not written
            # again: a failure counted before this sync still concerns them.
            self._failures_seen = failures
        head = shm.read_header()
        mine = head is None or head.salt == salt  # not a log another process has since restarted
        claim: Optional[int] = None  # the unsynced word's new offset; None: clear it
        durable = max(tail, published) if tail == end else end
        if start is not None and published > end:
            # Written again up to this process's committed end only: frames other processes
            # published past it may be ones a failed sync dropped. They stay unsynced, for the
            # next sync (or turn) that knows them; only up to ``end`` is known durable.
            claim = durable = end
        if mine and (tail == end or claim is not None):
            shm.set_durable(salt, durable)
        word = shm.unsynced()
        if word is None or start is None:
            return  # clear (or, with nothing written again, not this sync's to move)
        covered = start <= word[1] if word[0] == salt else (start == 0 and mine)
        if not covered:
            return
        if claim is None:
            shm.clear_unsynced()
        elif word[0] != salt or claim > word[1]:
            shm.reset_unsynced(salt, claim)

    def count_dead_syncs(self) -> None:
        """count_dead_syncs: a writer that has just taken its turn counts the syncs whose process died in
        them (slots' records left under free locks: ``SharedIndex.fold_dead``) as failed, under
        ``_sync_lock`` as every other bookkeeping of the words in this process: LOCK_SYNC, an
        fcntl lock of one open file description, does not keep this process's own threads
        apart. If a sync of this process runs now (a group commit's, on another thread), it is
        left to count them: its last step probes every busy slot, and a commit built now syncs
        after it. Callers: readers.py ``SharedLog._resync``."""
        shm = self.shm
        if shm is None or not shm.busy_slots():
            return
        if not self._sync_lock.acquire(blocking=False):
            return
        try:
            if not shm.lock_sync(deadline_after(self.timeout)):
                return  # held by a stopped process: the next sync counts them
            try:
                shm.fold_dead()
            finally:
                _unlock_sync(shm)
        finally:
            self._sync_lock.release()

    def repair(self) -> bool:
        """repair writes the log again where a failed sync (the shared index's unsynced word, or a
        process that died in its sync) may have left it unwritten, and syncs it; a writer that
        has just taken its turn (readers.py ``SharedLog.catch_up``), so that it builds on frames
        known durable. Returns True.

        Its waits for other processes (a sync slot, LOCK_SYNC, the syncs beside its own) end at the
        store's timeout (``timeout``, one deadline for the call).

        Raises:
            CorruptionError: the frames to write again do not read back whole (``_rewrite``).
            OSError: a write or the sync failed (every later sync refuses).
            StoreLockedError: a wait reached the deadline (``_timed_out``): the unsynced word
                stays for the next turn's repair; nothing is poisoned.
        """
        shm = self.shm
        assert shm is not None and self.file is not None
        deadline = deadline_after(self.timeout)
        with self._sync_lock:
            if self._sync_failed is not None and shm.unsynced() is not None:
                raise EarlierSyncFailed(self._sync_failed)
            while not self._sync_round(self._appends, shm, None, "repair", deadline=deadline):
                if self._sync_failed is not None:  # pragma: no cover - _sync_round raised it
                    raise EarlierSyncFailed(self._sync_failed)
            return True

    def rollback(self) -> None:
        """rollback forgets the open transaction's frames; the next append overwrites them."""
        self.txn_index.clear()
        self.end, self._crc = self.committed_end, self.committed_crc
        del self.frame_pgnos[self.committed_frames :]
        del self.frame_offsets[self.committed_frames :]

    def record_frames_in(self, shared: "Optional[SharedIndex]", sole: "Optional[SoleLock]" = None) -> None:
        """record_frames_in has the writer record each frame it appends in ``shared`` (readers.py), or stop (None).
        Failed syncs counted there before now concern no frame of this log's (one not yet
        made good is the unsynced word's, which the next sync reads: ``_sync_shared``).
        ``sole``: how the writer proves, for one sync, that no other writer has the store
        open (``_sync_alone``); None: every sync runs the rounds beside other processes."""
        self.shm = shared
        self._sole = sole if shared is not None else None
        if shared is not None:
            self._failures_seen = shared.word(FAILURES_OFFSET)

    def has_frames(self) -> bool:
        """has_frames: whether any committed frame is in the index (a page's newest image is in the log)."""
        return bool(self.index)

    def pages(self) -> Set[int]:
        """pages: the pages with a committed frame in the index."""
        return set(self.index)

    def has_frames_for(self, lo: int, hi: int) -> bool:
        """has_frames_for: every page from ``lo`` to ``hi`` (excluded) has a committed frame. Stops at
        the first that has none: O(min(hi - lo, pages in the index + 1)), one C-level pass."""
        return all(map(self.index.__contains__, range(lo, hi)))

    def newest_frame(self, pgno: int) -> Optional[int]:
        """newest_frame: the offset of page ``pgno``'s newest committed frame, or None."""
        return self.index.get(pgno)

    def index_copy(self) -> Dict[int, int]:
        """index_copy: a copy of the committed index (pgno -> offset of its newest frame), for a read mark."""
        return dict(self.index)

    def forget_frames(self) -> None:
        """forget_frames empties a READER's index: every frame it held is in the data file (LOCK_READ0)."""
        assert self.readonly
        self.index = {}

    def is_open(self) -> bool:
        """is_open: whether the log file exists and is open (a reader's may not, yet)."""
        return self.file is not None

    def frame_count(self, offset: int) -> int:
        """frame_count: how many of the writer's frames begin before byte ``offset`` of the log."""
        return bisect_left(self.frame_offsets, offset)

    def frame_offset(self, frame: int) -> int:
        """frame_offset: the byte offset of frame number ``frame`` (from 0; the writer's)."""
        return self.frame_offsets[frame]

    def entries(self, first: int) -> "array[int]":
        """entries: the shared index's entries (shm.py) for the writer's frames from ``first`` on:
        two integers each, the page number with the payload size above bit 32, and the offset."""
        out = array("Q")
        offsets, pgnos = self.frame_offsets, self.frame_pgnos
        if first >= len(offsets):
            return out
        ends = offsets[first + 1 :] + [self.end]
        for i, end in enumerate(ends, first):
            off = offsets[i]
            out.append(pgnos[i] | (end - off - FRAME_HEADER_SIZE) << 32)
            out.append(off)
        return out

    def read_frame(self, offset: int, pgno: int) -> bytes:
        """read_frame returns the page image of the frame at ``offset``: its whole image, or the
        whole image its chain of deltas begins at with each delta written over it in turn.

        Raises:
            CorruptionError: a frame of the chain is short, belongs to another page or to
                another generation of the log, or a delta does not fit the page.
        """
        if self.file is None:
            raise CorruptionError(pgno, f"log frame at offset {offset}: the log is missing")
        ps = self.page_size
        images = self._images
        deltas: List[bytes] = []
        off = offset
        while True:
            hit = images.get(off)
            if hit is not None and hit[0] == pgno:
                if not deltas:
                    images.move_to_end(off)
                    return hit[1]
                whole = hit[1]
                break
            raw = self._frame_bytes(off)
            if len(raw) < FRAME_HEADER_SIZE:
                raise CorruptionError(pgno, f"log frame at offset {off} is missing")
            fpgno, _commit, _txn, own, salt, n, base = _FRAME.unpack_from(raw, 0)
            if (fpgno != pgno or salt != self.salt or own != off or FRAME_HEADER_SIZE + n > len(raw)
                    or not _payload_fits(n, base, off, ps)):
                raise CorruptionError(pgno, f"log frame at offset {off} is missing or belongs to another page")
            if not base:
                whole = raw[FRAME_HEADER_SIZE:]
                break
            if len(deltas) >= MAX_CHAIN:
                raise CorruptionError(pgno, f"log frame at offset {offset}: more than {MAX_CHAIN} deltas in a row")
            deltas.append(raw[FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + n])
            off = base
        out = whole
        if deltas:  # a whole image is returned as read: one copy, not three
            image = bytearray(whole)
            for delta in reversed(deltas):
                delta_apply(image, delta, pgno)
            out = bytes(image)
        if offset < self.committed_end:  # a committed frame never changes within its generation
            images[offset] = (pgno, out)
            if len(images) > self._image_cap:
                images.popitem(last=False)
        return out

    def follow(self, generation: int, salt: int, frames: int, entries: "Sequence[int]", first: int,
               *, verify: bool = True) -> List[int]:
        """follow brings a READER's log up to a state the writer published (shm.py):
        ``frames`` committed frames of log generation ``generation``, whose entries from
        frame ``first`` on are ``entries`` (``first`` 0: a new generation, forget the old).
        Returns the page numbers of those frames. ``verify`` False: a reader of the data
        file only (LOCK_READ0), under which the writer may already have started a new log,
        so the log file's header is not held to ``generation``.

        Raises:
            CorruptionError: the log file is missing or not that generation.
        """
        assert self.readonly
        if first == 0:
            self.index = {}
            self._images.clear()
            if self.file is None:
                if not os.path.exists(self.path):
                    if frames:
                        raise CorruptionError(None, f"{self.path}: the log the shared index describes is missing")
                    self.generation, self.salt = generation, salt
                    self.end = self.committed_end = WAL_HEADER_SIZE
                    self.committed_frames = 0
                    return []
                self.file = self._opener(self.path, create=False, readonly=True)
            head = self._read_header()
            if verify and frames and (head is None or head[:2] != (generation, salt)):
                raise CorruptionError(None, f"{self.path}: the log is not the generation the shared index describes")
            self.generation, self.salt = generation, salt
            self.end = self.committed_end = WAL_HEADER_SIZE
        index = self.index
        pgnos: List[int] = []
        for i in range(0, len(entries), 2):
            word, off = entries[i], entries[i + 1]
            pgno = word & 0xFFFFFFFF
            index[pgno] = off
            pgnos.append(pgno)
            self.end = off + FRAME_HEADER_SIZE + (word >> 32)
        self.committed_end = self.end
        self.committed_frames = frames
        return pgnos

    def reset(self, generation: int) -> None:
        """reset starts a new log generation: a fresh header and salt, no frames.

        Callers: the pager, after a checkpoint has made the data file whole and
        synced it, and recovery for a log that was not this file's. Either way no
        frame of the old log holds anything the data file lacks, so a crash at any
        step leaves a log recovery may replay or ignore alike (docs/format.md,
        "Restart order"):

        1. write the new header (new salt): every old frame now fails the salt;
        2. sync: the new, empty generation is durable;
        3. shorten the file to KEEP_BYTES (not synced: what a crash leaves past
           it fails the salt too).

        Shortening first (as this did once) let a crash leave the OLD header over a
        prefix of the old frames: recovery replayed that prefix over the newer data
        file and lost every commit after it.

        Memory follows the file whatever fails: from step 1 on, the log in memory is
        the new generation (nothing in it; the data file holds every page), so the
        caller may go on reading after an error; the error is raised. Beside other
        processes, a wait for them that reaches the store's timeout before step 1 raises
        ``StoreLockedError`` with the file and memory as they were (the old log goes on);
        after it, ``TimeoutError`` with the log poisoned (``_sync_round``, ``_timed_out``).
        Memory is emptied by ``_forget_log``, as a catch-up onto another generation does.
        """
        assert self.file is not None and not self.readonly
        salt = self.salt
        while salt in (0, self.salt):  # never zero, never the old salt: old frames must fail it
            salt = int.from_bytes(os.urandom(4), "little")
        header = self._header_bytes(generation, salt)
        if self.shm is not None and self._sync_failed is not None:
            # Nothing done (memory too): a sync after a failed one proves nothing (errseq told
            # this file already), so the new header would never be known durable.
            raise EarlierSyncFailed(self._sync_failed)
        size = self.file.size()
        synced = False
        shm = self.shm
        interrupted: Optional[BaseException] = None
        cut: Optional[BaseException] = None
        untouched = False
        file = self.file
        self._header_written = False  # once, not per try: a second try after a Ctrl-C may time out after the first wrote it

        def write() -> None:
            with self._sync_lock:  # not beside a group's sync on another thread
                if shm is None:
                    self._fsync(self._appends, functools.partial(file.write, 0, header))
                else:
                    # Beside other processes' syncs (shm.py, "Unsynced"): a round whose fsync
                    # overlapped a failed one writes the header again. Its waits for other
                    # processes end at the store's timeout (``_timed_out``).
                    deadline = deadline_after(self.timeout)
                    while not self._sync_round(self._appends, shm, None, "reset", header, deadline=deadline):
                        pass

        def adopt() -> None:
            crc = _U32.unpack_from(header, 36)[0]
            self._forget_log(generation, salt, crc)
            self._crc = crc
            self.end = WAL_HEADER_SIZE
            self.txn_index.clear()
            self._synced = synced
            self.allocated = max(size, WAL_HEADER_SIZE)

        try:
            try:
                write()
            except KeyboardInterrupt as exc:
                # A Ctrl-C before, in or after the header's write or sync: memory becomes the
                # new generation below, so the file must have its header, written and synced
                # whole, or every later commit's frames went under the old header's salt,
                # which recovery takes for the log's end (found: acknowledged commits lost,
                # and the store corrupt after a crash). Written again (the same bytes): then
                # the interrupt goes on. A failure of it goes up as any failed write does.
                interrupted = exc
                run_through(write)
            synced = True
        except StoreLockedError:
            untouched = True  # raised only before the header was written: the old log stays
            raise
        finally:
            if not untouched:
                # Memory follows the file whatever failed; all of it, though a Ctrl-C lands here.
                cut = run_through(adopt)
        if interrupted is not None or cut is not None:
            raise interrupted or cut  # type: ignore[misc]
        # Old frames fail the new salt, so the file need not be emptied: keep
        # its first KEEP_BYTES allocated for the next commits (see GROW_BYTES).
        keep = max(KEEP_BYTES, WAL_HEADER_SIZE)
        if self.allocated > keep:
            self.file.truncate(keep)
            self.allocated = keep

    def check(self) -> Dict[str, int]:
        """check verifies the log's bookkeeping against its rules and its file. O(indexed frames).

        Every committed frame lies before the committed end and is its page's (its
        chain of deltas rebuilds an image); every frame of the open transaction lies
        between the committed end and the end; the ends are ordered and inside the
        file; the header on disk is this log's; the writer's frame lists agree.

        Returns:
            ``{"frames", "txn_frames", "generation", "end"}``.

        Raises:
            CorruptionError: a frame or the header does not hold (names the page; the header is page None).
        """
        if self.file is None:
            return {"frames": 0, "txn_frames": 0, "generation": self.generation, "end": 0}
        # A reader of the data file only (LOCK_READ0: ``forget_frames`` emptied its index) keeps the
        # ends of the log it last followed, but under that lock the writer may restart the log and
        # shorten its file to KEEP_BYTES meanwhile: the ends are then no bound on the file (a
        # readonly check() beside a writer raised "log ends out of order" in CI).
        limit = self.end if self.readonly and not self.index else max(self.allocated, self.file.size())
        if not WAL_HEADER_SIZE <= self.committed_end <= self.end <= limit:
            raise CorruptionError(None, f"log ends out of order: committed {self.committed_end}, end {self.end}")
        if self.index or self.txn_index:
            head = self._read_header()
            if head is None or head[:2] != (self.generation, self.salt):
                raise CorruptionError(None, "log header is not the one this log was started with")
        if not self.readonly:
            offsets = self.frame_offsets
            if len(offsets) != len(self.frame_pgnos) or self.frame_count(self.committed_end) != self.committed_frames:
                raise CorruptionError(None, f"log frame lists disagree: {len(offsets)} offsets, "
                                            f"{len(self.frame_pgnos)} pages, {self.committed_frames} committed")
            if any(b <= a for a, b in zip(offsets, offsets[1:])):
                raise CorruptionError(None, "log frame offsets do not ascend")
        for index, lo, hi in ((self.index, WAL_HEADER_SIZE, self.committed_end),
                              (self.txn_index, self.committed_end, self.end)):
            for pgno, off in index.items():
                if not lo <= off < hi:
                    raise CorruptionError(pgno, f"log frame offset {off} outside [{lo}, {hi})")
                if not self.readonly and off not in self.depth:
                    raise CorruptionError(pgno, f"log frame offset {off} is not where a frame begins")
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
        """close releases the log file (it stays on disk), after a sync running on another thread."""
        with self._sync_lock:
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
