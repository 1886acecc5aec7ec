"""checkpointer: the writer's checkpoints, and the restart of its log.

``Checkpointer`` is the part of the pager (one per ``Pager``, which calls it) that
copies the log's committed pages into the data file (``checkpoint``: as far as the
oldest read mark allows, ``Marks.copy_limit``), records how far it got
(``backfilled``: frames of the log, from the first, whose pages the data file holds),
and starts a new log generation once everything is copied and no reader reads the
log (``_restart_log``; ``restart_if_idle`` when readers held the last try back).

It changes the pager's state through the pager's calls only (``cut_tail``,
``log_restarted``, ``remap``); it reads the pager's log, data file, cache and marks.
Every write and sync it makes runs under the pager's poison guard: a failure poisons
the pager (``Pager._poison``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ContextManager, Dict, List, Union

from . import format as fmt
from .interrupts import run_through
from .errors import PageStoreError, StorePoisonedError
from .wal import KEEP_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from .pager import Pager

_OFF_TYPE = fmt.OFF_TYPE
_NODE_TYPES = (fmt.PAGE_LEAF, fmt.PAGE_INTERNAL)
#: A checkpoint writes at most this many adjacent pages in one write call.
CHECKPOINT_RUN = 64
#: Seconds a write waits, at most, for the reads holding marks on a fully copied log
#: to end, so that the log can start over (``restart_if_idle``).
RESTART_WAIT = 0.002


class Checkpointer:
    """Checkpointer copies a writer's log into its data file and restarts the log; see the module docstring.

    ``guard``: the pager's poison guard (a context manager); ``publish``: shows the
    log's state, ``backfilled`` included, to readers in other processes.
    """

    def __init__(self, pager: "Pager", guard: ContextManager[None], publish: Callable[[], None]) -> None:
        self.pager = pager
        self._guard = guard
        self._publish = publish
        #: frames of the log (from the first) whose pages the data file holds
        self.backfilled = 0
        #: log size at which the next automatic checkpoint is tried (0: at the next commit)
        self.next_try = 0

    def forget(self) -> None:
        """forget: the log started afresh without a checkpoint (``Pager.adopt``): nothing of it is copied."""
        self.backfilled = 0

    def caught_up(self, backfilled: int) -> None:
        """caught_up: a writer taking turns has just caught up (``Pager.begin_write``); another writer
        may have checkpointed since its last turn: ``backfilled`` as the shared index shows it."""
        self.backfilled = backfilled

    def try_soon(self) -> None:
        """try_soon: a read mark was let go, so the next commit tries to checkpoint (``Pager.release``)."""
        self.next_try = 0

    def check(self) -> None:
        """check verifies the checkpointer's own invariants: ``backfilled`` counts frames of the
        log as it is (none past its committed frames, none at all for a reader), and
        ``next_try`` is a size. Callers: ``Pager.check``.

        Raises:
            PageStoreError: naming what is wrong.
        """
        wal = self.pager.wal
        frames = wal.committed_frames if wal is not None and wal.is_open() else 0
        if not 0 <= self.backfilled <= frames:
            raise PageStoreError(f"checkpointer: {self.backfilled} frames copied of a log of {frames}")
        if self.pager.readonly and self.backfilled:
            raise PageStoreError("checkpointer: a reader has copied frames")
        if self.next_try < 0:
            raise PageStoreError(f"checkpointer: next try at {self.next_try} bytes")

    def threshold(self) -> int:
        """threshold: log bytes that trigger an automatic checkpoint.

        An eighth of the data, at most ``wal_limit``: the log is part of the
        store's footprint, so a small store keeps a small log, and a large one
        checkpoints no more often than every ``wal_limit``. An eighth, not a
        sixteenth (and ``wal_limit`` 32 MiB, not 16): a page changed again
        before the next checkpoint is logged as a delta and copied into the
        data file once. Measured (bench/apply_profile.py, 200k records, the
        compare.py workload): bytes written per churn op 10,056 -> 7,535
        (LMDB 5,950), per insert 2,907 -> 1,724, churn's checkpoints 17.5 ->
        11.0 us per op; the file after churn, log included, 1.13x -> 1.22x
        the live bytes (a log at the threshold adds at most an eighth). At least the
        log's ``KEEP_BYTES``, which its file keeps across checkpoints anyway:
        checkpointing sooner would free no disk, and would add two syncs
        every few dozen single-put commits (4 MiB against 1 MiB measured
        -8% wall time per durable put on a small store; SQLite's default is
        1,000 pages, also about 4 MiB).
        """
        pager = self.pager
        data = pager.meta.page_count * pager.page_size
        return min(pager.wal_limit, max(KEEP_BYTES, data // 8))

    def checkpoint(self, wait: float = 0.0) -> None:
        """checkpoint copies the newest committed image of every logged page into the data file,
        as far as readers allow, and starts a new log generation when it got to the end and
        no reader is reading the log.

        Readers: a read mark (a snapshot in this process, or one in another
        process, shm.py) reads the log's frames up to its own point and the
        data file for every other page, so the copy goes only up to the
        oldest mark (SQLite's rule): pages whose newest frame up to that point
        is copied are pages every mark reads from the log. ``backfilled``
        records how far it got. The log restarts only when everything is
        copied and no mark is held (for other processes: while the writer can
        lock the whole mark range; ``wait``: for up to that many seconds).

        Order matters: the log is synced first, then the data file is written
        and synced, and only then does the log start a new generation, whose
        header is written and synced before the log file is shortened
        (``WAL.reset``). A crash anywhere leaves the old log whole, which
        recovery replays (harmless: the data file holds all of it once synced),
        or an empty new one over a whole data file; docs/format.md tables each
        step. A failed write or sync poisons the pager (``_poison``): raises
        its OSError, then StorePoisonedError for any write until reopened.

        Pages are written in page-number order, a run of adjacent pages (up to
        CHECKPOINT_RUN) in one write. The checkpoint's share of an insert's
        time is mostly its two syncs (bench/write_profile.py insert: about 10%
        of the time of 1,000-record durable transactions, of which the page
        writes are a sixth).
        """
        pager = self.pager
        assert pager.wal is not None and pager.file is not None
        if pager.readonly:
            return
        if pager.poisoned is not None:
            raise StorePoisonedError(pager.path, pager.poisoned) from pager.poisoned
        if not pager.wal.has_frames():
            return
        if pager.dirty or pager.wal.txn_index:
            raise PageStoreError("checkpoint inside a transaction")
        with self._guard:
            self._checkpoint(wait)

    def _checkpoint(self, wait: float) -> None:
        pager = self.pager
        assert pager.wal is not None
        wal = pager.wal
        frames = wal.committed_frames
        limit = pager.marks.copy_limit(frames, wal.generation, pager.sharing)
        if limit > self.backfilled:
            wal.sync()
            self._backfill(limit, frames)
        if self.backfilled == frames and not pager.readers:
            self._restart_log(wait)

    def _backfill(self, limit: int, frames: int) -> None:
        """_backfill copies into the data file the newest image, among the log's first ``limit``
        frames, of every page with a frame past ``backfilled``; at the log's end (``limit`` is
        ``frames``), the header too. Syncs the data file.

        A churn's checkpoint (compare.py's workload, 200k records) copies some 3,500-4,900
        pages scattered over the file in as many runs of one or two, so the loop is kept lean
        (issue 23: under cProfile, of its time the loop's own Python was a fifth and the joins
        a twentieth, beside its writes, a fifth, and its sync, two fifths): the log's offsets
        and index are read once, and a run of one page is written as it is, not joined.
        """
        pager = self.pager
        assert pager.wal is not None and pager.file is not None
        wal = pager.wal
        file = pager.file
        latest: Dict[int, int] = {}
        pgnos = wal.frame_pgnos
        for k in range(self.backfilled, limit):
            latest[pgnos[k]] = k
        latest.pop(0, None)
        ps = pager.page_size
        offsets = wal.frame_offsets
        newest = wal.newest_frame
        read_frame = wal.read_frame
        unverify = pager.pagemap.unverify
        cached = pager.cache.get if limit == frames else None
        run: List[Union[bytes, bytearray]] = []
        start = 0
        # pages that are not nodes, copied from images the pager verified (its cache) or
        # checked itself (the log's frames): verified in the file once it is synced
        trusted: List[int] = []
        nodes = _NODE_TYPES
        for pgno in sorted(latest):
            off = offsets[latest[pgno]]
            f = cached(pgno) if cached is not None else None
            data = f.buf if f is not None and newest(pgno) == off else read_frame(off, pgno)
            unverify(pgno)
            if data[_OFF_TYPE] not in nodes:
                trusted.append(pgno)
            if run and (pgno != start + len(run) or len(run) >= CHECKPOINT_RUN):
                file.write(start * ps, run[0] if len(run) == 1 else b"".join(run))
                run = []
            if not run:
                start = pgno
            run.append(data)
        if run:
            file.write(start * ps, run[0] if len(run) == 1 else b"".join(run))
        if limit == frames:
            disk = pager.meta.copy()
            disk.checkpoint_seq += 1
            file.write(0, bytes(disk.encode()))
        file.sync()
        # Only now: a failed sync may have dropped the copies (Linux drops the dirty pages),
        # and the map would show the file's older bytes under a bit set early.
        pager.pagemap.trust(trusted)
        self.backfilled = limit
        self._publish()

    def _restart_log(self, wait: float = 0.0) -> None:
        """_restart_log starts a new log generation once every frame is in the data file and no
        reader reads the log (in another process: the writer holds the whole mark range while
        it restarts, so no reader takes a mark meanwhile). The data file's tail past the
        committed end (pages a rolled-back large transaction wrote) is cut only when this
        is the only process with the store open: another may have it mapped."""
        pager = self.pager
        assert pager.wal is not None and pager.file is not None
        sharing = pager.sharing
        if sharing is not None and not sharing.lock_for_restart(wait):
            return
        try:
            with self._guard:
                if sharing is not None:
                    sharing.invalidate()  # a crash from here to the publish below makes readers rebuild
                seq = pager.meta.checkpoint_seq + 1
                pager.cut_tail()

                def settle() -> None:
                    if pager.wal is not None and pager.wal.generation == seq:
                        # The log in memory is the new, empty generation even if reset
                        # failed part way (see WAL.reset): every page is the data file's.
                        pager.log_restarted(seq)
                        self.backfilled = 0
                        self.next_try = 0

                try:
                    pager.wal.reset(seq)
                finally:
                    # Whole, though a Ctrl-C lands in it: cut after the log restarted and
                    # before ``backfilled`` went to 0, the next checkpoint took the new log
                    # for one it had copied frames of ("5 frames copied of a log of 0").
                    cut = run_through(settle)
                if cut is not None:
                    raise cut
        finally:
            ended = None
            if sharing is not None:
                ended = run_through(lambda: sharing.end_restart(pager.wal, self.backfilled))
            remapped = run_through(pager.remap)
        if ended is not None or remapped is not None:
            raise ended or remapped  # type: ignore[misc]

    def restart_if_idle(self) -> None:
        """restart_if_idle starts a new log if the last checkpoint copied all of it but readers kept
        it from starting over then. Callers: the store, before a write changes any page.

        Readers that began after that checkpoint read the data file only (LOCK_READ0), which
        does not stand in the way; by the next write, the short reads that held marks on the
        old log have usually ended. (SQLite restarts its log at the same moment.) A try that
        readers held back is made again once the log has grown by a quarter of the threshold,
        or at the first write after the last reader let go (``readers_gone``), whichever
        comes first.
        """
        pager = self.pager
        wal = pager.wal
        if wal is None:
            return
        size = wal.end if wal.file is not None else 0  # ``wal.size()``
        # Nothing to do, the common case, first: it runs before every write, and the checks
        # below cost more than these (``in_transaction`` compares the header with the committed one).
        # The threshold is at least the smaller of KEEP_BYTES and ``wal_limit``: below both, not worked out.
        below = size <= KEEP_BYTES and size <= pager.wal_limit
        if below and not (self.backfilled and self.backfilled == wal.committed_frames):
            return
        threshold = self.threshold()
        if not (size > threshold or (self.backfilled and self.backfilled == wal.committed_frames)):
            return
        if pager.readers or pager.readonly or pager.in_transaction or pager.poisoned is not None:
            return
        # A failure raises (and has poisoned the pager): the write that called this fails.
        if size > threshold and (size >= self.next_try or self.readers_gone()):
            # Readers kept the checkpoint after the last commit from finishing (a read
            # begun before that commit held its mark). Now they have moved on: copy the
            # rest, and give the reads that began meanwhile a moment to end.
            self.checkpoint(wait=RESTART_WAIT)
            if wal.size() > threshold:
                # Still held back (a snapshot, most likely): try again after a quarter
                # of the threshold more, not before every write (each try may sync).
                self.next_try = wal.size() + threshold // 4
        elif self.backfilled and self.backfilled == wal.committed_frames:
            self._restart_log()

    def readers_gone(self) -> bool:
        """readers_gone: whether a checkpoint that readers held back (``next_try`` set) may now
        copy the whole log and start it over, because no reader holds anything any more: no
        snapshot of this store, no read mark of another open (another process, or a read-only
        open in this one). Asked only while a try waits, at each write: two lock probes
        of the shared index (F_OFD_GETLK: no lock is taken, nothing is synced)."""
        pager = self.pager
        return bool(self.next_try) and pager.marks.readers_gone(pager.sharing)
