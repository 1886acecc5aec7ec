"""pagerfiles: the pager's files: their opening (the data file's lock, the log, the shared index), a compacted copy adopted.

``PagerFiles`` is the part of ``Pager`` (its base class: the same object, its code in a
file of its own) that opens a store: it opens and locks the data file (a writer's
``flock``, shared by writers that take turns, else exclusive, and ``LOCK_DMS``; a reader's
shared one, or a seat beside a writer through the shared index), creates a new store's header, opens and recovers the log
(under ``LOCK_RECOVER`` for a writer with a shared index), reads the committed header
and checks it against the file (``_check_extent``), and checkpoints what recovery found.
It also answers what the shared index's rebuild asks of the data file
(``readers.DataSide``: ``lock_data_shared``, ``unlock_data``, ``disk_meta``, ``open_log``).
It replaces the data file by a compacted copy and goes on serving it (``compaction_path``,
``adopt``: the move itself is ``storefiles.move_into_place``), makes a backup's temporary
file through the pager's opener (``create_copy``), and answers the files' sizes and whether
another open shares them (``file_size``, ``bytes_written``, ``alone``).

The pager's state it sets is declared here and documented in ``Pager.__init__``.
"""
from __future__ import annotations

import errno
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set, Tuple

from . import fileio
from . import format as fmt
from . import readers as shared_log
from . import storefiles
from .checkpointer import Checkpointer
from .locks import deadline_after
from .errors import CorruptionError, DurabilityUnknownError, InvalidFileError, PageStoreError, StoreLockedError
from .pagemap import PageMap
from .readers import LOCK_WRITERS, DataLock, Marks, ReadMark, SharedLog, remove_shm, shm_path
from .wal import WAL, log_path

if TYPE_CHECKING:
    from .pagecache import _Frame


class _SoleWriter:
    """_SoleWriter is a writer's proof, for one sync of its log, that no other writer has the store
    open (``wal.SoleLock``; ``WAL._sync_alone``): its data file lock's LOCK_WRITERS turned
    exclusive for the sync (``DataLock.try_sole``), or, for a writer that does not take turns
    (an exclusive ``flock`` on the data file, which no other writer can share), no call at all."""

    __slots__ = ("_files", "_held")

    def __init__(self, files: "PagerFiles") -> None:
        self._files = files
        self._held: Optional[DataLock] = None  # the lock ``enter`` turned exclusive (``adopt`` may replace the pager's)

    def enter(self) -> bool:
        files = self._files
        lock = files._data_lock
        if lock is None:
            return False
        if not files.turns:
            return True
        if not lock.try_sole():
            return False
        self._held = lock
        return True

    def leave(self) -> None:
        lock, self._held = self._held, None
        if lock is not None:
            lock.end_sole()


class PagerFiles:
    """PagerFiles opens a pager's files (see the module docstring); ``Pager`` is its one subclass."""

    path: str
    readonly: bool
    page_size: int
    _opener: fileio.Opener
    file: Optional[fileio.File]
    _read_into: Optional[Callable[[int, bytearray], int]]
    wal: Optional[WAL]
    meta: fmt.Meta
    committed: fmt.Meta
    overlaid: Set[int]
    readers: List[ReadMark]
    sharing: Optional[SharedLog]
    shared: bool
    _data_lock: Optional[DataLock]
    _solo_lock: Optional[DataLock]
    _made_log: bool
    poisoned: Optional[BaseException]
    turns: bool
    writing: bool
    _share_writes: bool
    #: seconds a write waits for another process (the store's ``timeout``; None: no limit): here,
    #: a writer's open for LOCK_WRITERS, and the log's syncs for those beside them (``WAL.timeout``)
    timeout: Optional[float]
    owed: int
    pagemap: PageMap
    cache: "OrderedDict[int, _Frame]"
    dirty: Dict[int, "_Frame"]
    _spare: Optional["_Frame"]
    marks: Marks
    checkpointer: Checkpointer

    if TYPE_CHECKING:  # the pager's, for mypy only: at run time a stub here would hide them

        @property
        def in_transaction(self) -> bool: ...

        def check_writable(self) -> None: ...

        def _remap(self) -> None: ...

        def _unmap(self) -> None: ...

        def _publish(self) -> None: ...

        def rollback(self) -> None: ...

        def _take_turn(self, wait: float) -> bool: ...

        def _sync_deferred(self) -> None: ...

    def checkpoint(self, wait: float = 0.0) -> None:  # pragma: no cover - Pager's
        raise NotImplementedError

    def _open(self, path: str, create: bool, readonly: bool, page_size: int, opener: fileio.Opener) -> None:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory (a store is a file)", path)
        exists = os.path.exists(path)
        if not exists and (readonly or not create):
            raise FileNotFoundError(2, "No such store", path)
        if not exists and not fmt.is_valid_page_size(page_size):
            raise ValueError(f"page_size must be a power of two from 512 to 65536, got {page_size}")
        self.file = opener(path, create=create and not readonly, readonly=readonly)
        self._read_into = getattr(self.file, "read_into", None)
        if not readonly:
            self._lock_writer(self._share_writes and shared_log.SUPPORTED)
        elif not self._shared_possible():
            self._lock_solo_reader()  # one process at a time, as without a shared index
        if self.file.size() == 0:
            if readonly:
                raise InvalidFileError(f"{path}: empty file, not a pagestore file")
            if self.turns and self._data_lock is not None:
                # Writers that take turns open the file together: one of them writes its header
                # (LOCK_CREATE serializes the look and the write; the others find it written).
                with self._data_lock.section(shared_log.LOCK_CREATE, self._deadline()):
                    if self.file.size() == 0:
                        self._create(page_size)
            else:
                self._create(page_size)
        disk_meta = self._read_disk_meta()
        self.page_size = disk_meta.page_size
        self._made_log = not readonly and not os.path.lexists(log_path(path))
        self.wal = WAL(log_path(path), self.page_size, disk_meta.file_id, readonly=readonly, opener=opener)
        self.wal.timeout = self.timeout
        if readonly and self._data_lock is not None:
            if self._open_shared_reader(disk_meta):
                return
            self._lock_solo_reader()  # no shared index here: one process at a time
        if not readonly and self._data_lock is not None:
            self.sharing = shared_log.open_index_for_writer(path, self.page_size, disk_meta.file_id, self, self.readers)
            self.sharing.timeout = self.timeout
            self._claim_name()
            self.sharing.attach(self.wal, _SoleWriter(self))
            if self.turns:
                if not self._first_turn():
                    # Another writer is in its turn: join without recovering (its log is whole and
                    # published); the first operation reads the latest commit (``begin_operation``).
                    self.meta = disk_meta
                    self.committed = disk_meta.copy()
                    self.overlaid = set()
                    return
                disk_meta = self._read_disk_meta()  # the last writer to hold it may have checkpointed
            # under LOCK_RECOVER: no reader rebuilds it
            self.sharing.recover(self.wal, disk_meta.checkpoint_seq, alone=self._data_lock.alone())
        else:
            self.wal.recover(disk_meta.checkpoint_seq)
        header = self.wal.newest_frame(0)
        if header is not None:
            self.meta = fmt.decode_meta(self.wal.read_frame(header, 0), path)
            if self.meta.file_id != disk_meta.file_id:
                raise CorruptionError(0, "the log's copy of the header belongs to another file")
        else:
            self.meta = disk_meta
        self._check_extent(self.meta)
        self.committed = self.meta.copy()
        self.overlaid = self.wal.pages()
        if not readonly and self.wal.has_frames():
            try:
                self.checkpoint()
            except OSError:
                # A full disk (the data file cannot grow) or a failed sync: the checkpoint has
                # poisoned the pager (_poison). The log is whole and reads come from it; writes
                # raise StorePoisonedError naming the error, close writes nothing, and the next
                # open checkpoints. Failing the open instead left nothing to read the store with.
                pass
            except (DurabilityUnknownError, StoreLockedError):
                # Its log sync waited past the timeout for another process's (stopped in it, or
                # a hung disk), or its log restart did, before writing anything: no checkpoint
                # now; the open goes on (a writer's next checkpoint).
                pass
        if not readonly and self.poisoned is None:
            self._upgrade_header()
            self._discard_abandoned_copy()

    def _check_extent(self, meta: fmt.Meta) -> int:
        """_check_extent checks the header's ``page_count`` against the pages there are: every page
        past the data file's end must have a frame in the log (the header ``format.decode_meta``
        accepted is checked against itself only).

        The log may legitimately hold pages past the file's end: a commit's new pages stay in
        the log until a checkpoint copies them (a crash before it, or a reader beside the
        writer, sees them there). Nothing else does: pages a large commit writes straight
        into the data file are synced before its commit frame. A page the file holds only
        part of (a file cut short) counts as there: reading it reports it.

        This bounds every loop and table sized by ``page_count`` (the map's overlaid pages,
        a walk's visited bits, a chain's length) by the bytes on disk.

        Returns the data file's size, as read for the check (``_follow`` maps by it).

        Raises:
            CorruptionError: naming the first page that is neither in the file nor in the log.
        """
        assert self.file is not None and self.wal is not None
        size = self.file.size()
        have = -(-size // self.page_size)
        count = meta.page_count
        if count <= have:
            return size
        # Every page from ``have`` on must have a frame: the look stops at the first that has
        # none, so it looks at no more pages than the log holds, plus one.
        # (Not a set of the log's pages built first: a writer catching up checks this at every
        # turn, and while new pages wait in the log for a checkpoint, that set was O(log) a turn.)
        if self.wal.has_frames_for(have, count):
            return size
        newest = self.wal.newest_frame
        for pgno in range(have, count):
            if newest(pgno) is None:
                raise CorruptionError(
                    pgno, f"page {pgno} is past the end of the data file ({size} bytes) and in no log frame, "
                          f"but the header's page_count is {count}")
        return size

    def _upgrade_header(self) -> None:
        """_upgrade_header writes page 0 in the current format version when the data file's is
        older and the log holds nothing (so page 0 is the whole committed header), in place and
        synced, as a checkpoint writes it: an older pagestore must refuse the file before this
        writer logs a delta it would take for another file's log (docs/format.md)."""
        assert self.file is not None and self.wal is not None
        # A format-3 free list (a chain) stays under a format-3 header until the first commit
        # writes it as trunks (freelist.py); an empty one is the same in either format.
        target = fmt.FORMAT_VERSION
        if self.meta.version < fmt.TRUNK_FORMAT_VERSION and self.meta.freelist_count:
            target = fmt.TRUNK_FORMAT_VERSION - 1
        if self.wal.has_frames() or fmt.stored_version(self.file.read(0, fmt.FILE_HEADER_SIZE)) >= target:
            return
        self.file.write(0, bytes(self.meta.encode(target)))
        self.file.sync()
        self.meta.version = self.committed.version = target

    def _discard_abandoned_copy(self) -> None:
        """_discard_abandoned_copy removes the copy (and its log) that a compaction killed
        before its rename left at ``compaction_path``; only ``compact`` would remove it otherwise.

        This writer holds the store's lock, so no compaction of it is running: a copy
        there is abandoned, unless some open holds it (a store of that name in its own
        right), which is then left alone.
        """
        storefiles.discard_abandoned_copy(self._opener, storefiles.compaction_path(self.path))

    def _deadline(self) -> Optional[float]:
        """_deadline: when a wait for another process begun now ends (the store's ``timeout``
        from now, as a ``time.monotonic()``); None: no limit."""
        return deadline_after(self.timeout)

    def _lock_writer(self, turns: bool) -> None:
        """_lock_writer takes the writer's lock on the data file, and LOCK_DMS (shm.py).

        ``turns``: writers in several processes take turns on LOCK_WRITE (``try_lock_write``),
        so the file's lock is shared: it keeps out only a pagestore that writes alone (an
        older one, or one where the locks are missing). Otherwise the lock is exclusive: one
        writing process at a time.

        A reader rebuilding the shared index holds a shared lock on the file for a
        moment (``_rebuild_shared``): the exclusive lock is retried for a short while.

        Raises:
            StoreLockedError: another process writes the store alone; the message says why
                this one cannot join it. Or the only other writer's sync in sole mode held
                LOCK_WRITERS for the whole ``timeout``.
        """
        assert self.file is not None
        deadline = time.monotonic() + 0.25
        while True:
            try:
                self.file.lock(exclusive=not turns)
                break
            except StoreLockedError as exc:
                if time.monotonic() > deadline or not os.path.exists(shm_path(self.path)):
                    if not (self._share_writes and shared_log.SUPPORTED):
                        raise StoreLockedError(
                            f"{exc}; writers in several processes take turns only where fcntl's "
                            "open-file-description locks work (Linux, on a local file system), and "
                            "they are missing here: one process writes at a time") from exc
                    raise StoreLockedError(
                        f"{exc}; a pagestore that writes alone (an older version, or one without "
                        "open-file-description locks) has it open") from exc
                time.sleep(0.002)
        if shared_log.SUPPORTED:
            self._data_lock = DataLock(self.path, write=True, opener=self._opener, timeout=self.timeout)
            if turns:
                # A reader without the shared index reads alone: it and this writer refuse each
                # other (each holds its byte first, then looks at the other's: one of two that
                # open at once sees the other). A writer's sync in sole
                # mode holds LOCK_WRITERS exclusively across its fdatasync: waited for no longer
                # than the timeout (that process may be stopped in it, or its disk hung).
                if not self._data_lock.hold(shared_log.LOCK_WRITERS, self._deadline()):
                    raise StoreLockedError(
                        f"{self.path}: another writer's log sync (in sole mode: it had the store to "
                        f"itself) kept this open out for the store's timeout of {self.timeout} s: that "
                        "process is stopped in its sync, or the disk hangs; try again")
                if self._data_lock.others(shared_log.LOCK_SOLO):
                    raise StoreLockedError(
                        f"{self.path}: a reader that cannot use the shared index (it may not write "
                        f"{shm_path(self.path)}) has the store open, and reads it alone")
        self.turns = turns

    def _lock_solo_reader(self) -> None:
        """_lock_solo_reader: a read-only open without the shared index reads alone, as before the
        index existed: a shared lock on the file keeps out a writer that writes alone, and
        LOCK_SOLO the writers that take turns (``_lock_writer``).

        Raises:
            StoreLockedError: a writer has the store open.
        """
        assert self.file is not None
        self.file.lock(exclusive=False)
        if not shared_log.SUPPORTED:
            return
        try:
            solo = DataLock(self.path, write=False, opener=self._opener, start=shared_log.LOCK_SOLO)
        except OSError:
            return  # no lock to be had here (a read-only file system): the file's lock alone
        self._solo_lock = solo
        if solo.others(shared_log.LOCK_WRITERS):
            raise StoreLockedError(f"{self.path}: a writer has the store open, and this reader cannot "
                                   f"use the shared index ({shm_path(self.path)}) to read beside it")

    # ---- writers in several processes: turns on LOCK_WRITE ----

    def _first_turn(self) -> bool:
        """_first_turn takes LOCK_WRITE for the open's recovery and checkpoint, if it is free
        (released at the end of ``__init__``); False if another writer holds it.

        Raises:
            StoreLockedError: the file system does not lock (a network file system), said so.
        """
        assert self.sharing is not None
        try:
            self.writing = self.sharing.try_lock_write()
        except OSError as exc:
            raise StoreLockedError(
                f"{self.path}: cannot take the write lock writers in several processes share "
                f"(fcntl open-file-description lock on {shm_path(self.path)}: {exc.strerror or exc}); "
                "a network file system does not provide them") from exc
        return self.writing

    def _shared_possible(self) -> bool:
        """_shared_possible: for a read-only open, takes LOCK_DMS and opens the shared index, so that
        this reader can read beside a writer. False (nothing taken) where it cannot: no locks of the
        kind it needs, or no way to write the index beside the store (a read-only directory)."""
        if not shared_log.SUPPORTED:
            return False
        for _ in range(20):
            try:
                lock = DataLock(self.path, write=False, opener=self._opener, timeout=self.timeout)
            except OSError:
                return False
            # A compaction may have renamed a new file over the path while this open
            # waited for the lock: then read the new one.
            ino = lock.identity()[1]
            fd = getattr(self.file, "fd", None)
            if os.stat(self.path).st_ino == ino and (fd is None or os.fstat(fd).st_ino == ino):
                self._data_lock = lock
                break
            lock.close()
            if self.file is not None and fd is not None:
                self.file.close()
                self.file = self._opener(self.path, create=False, readonly=True)
                self._read_into = getattr(self.file, "read_into", None)
        else:
            raise StoreLockedError(f"{self.path}: the store file keeps being replaced; try again")
        return True

    def _claim_name(self) -> None:
        """_claim_name: this open holds its shared index's byte of the data file's LOCK_NAMES range
        (shm.py), and refuses if another index's byte is held: the same data file open in another
        process under another name (a hard link), with a log and a shared index of that name's.
        Two such writers would each take turns only with their own name's, and a commit through
        one would be lost when the other checkpoints or cleans up (SQLite's "How To Corrupt"
        2.5); so the second name's open is refused. (Two names in one process share the first
        open's files: ``store._files_of_open_here``.)

        Raises:
            StoreLockedError: the data file is open under another name.
        """
        assert self._data_lock is not None and self.sharing is not None
        if not self._data_lock.claim_name(self.sharing.index.identity()):
            raise StoreLockedError(
                f"{self.path}: this data file is open in another process under another name (a hard "
                f"link): the log and shared index are named from the name it was opened by, so "
                f"writers and readers by two names would not see each other's commits; open it by "
                f"one name")

    def _read_disk_meta(self) -> fmt.Meta:
        """_read_disk_meta decodes the data file's header. A reader beside a writer retries a
        header that fails its checksum: the writer may be rewriting it at that moment."""
        assert self.file is not None
        tries = 50 if ((self.readonly or self.turns) and self._data_lock is not None) else 1
        for i in range(tries):
            try:
                return fmt.decode_meta(self.file.read(0, fmt.FILE_HEADER_SIZE), self.path)
            except CorruptionError:
                if i == tries - 1:
                    raise
                time.sleep(0.001)
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_shared_reader(self, disk_meta: fmt.Meta) -> bool:
        """_open_shared_reader finishes a read-only open beside a possible writer: the shared index
        is opened (made if missing) and checked (rebuilt from the log by the first process to open
        the store); the view is taken by the first ``begin_operation``. False, with LOCK_DMS let
        go, where the index cannot be written (a read-only directory)."""
        assert self._data_lock is not None
        try:
            self.sharing = SharedLog.open(self.path, self.page_size, disk_meta.file_id, self, self.readers)
            self.sharing.timeout = self.timeout
        except OSError:
            self._data_lock.close()
            self._data_lock = None
            return False
        self.shared = True
        self._claim_name()
        self.meta = disk_meta
        self.committed = disk_meta.copy()
        self.overlaid = set()
        if self._data_lock.alone():
            try:
                self.sharing.rebuild(force=True)  # what a crash left there is not to be trusted
            except OSError:
                # No room to grow the index for the log's frames (a full disk): read without
                # one, one process at a time, as where the index cannot be written at all.
                self.sharing.close()
                self.sharing = None
                self.shared = False
                self._data_lock.close()
                self._data_lock = None
                return False
        return True

    # ---- what the shared index's rebuild asks of the data file (readers.DataSide) ----

    def lock_data_shared(self) -> bool:
        """lock_data_shared takes a shared lock on the data file, so that no writer starts; False
        if a writer holds the store. Callers: ``SharedLog.rebuild``."""
        assert self.file is not None
        if self.turns:
            return True  # a writer taking turns holds it shared already (LOCK_WRITE tells who writes)
        try:
            self.file.lock(exclusive=False)
        except StoreLockedError:
            return False
        return True

    def unlock_data(self) -> None:
        """unlock_data lets go of ``lock_data_shared``'s lock."""
        if self.turns:
            return
        unlock = getattr(self.file, "unlock", None)
        if unlock is not None:
            unlock()

    def disk_meta(self) -> fmt.Meta:
        """disk_meta: the data file's header (retried while a writer may be rewriting it)."""
        return self._read_disk_meta()

    def open_log(self, file_id: int) -> WAL:
        """open_log opens the store's log read-only, for a file of ``file_id`` (not recovered)."""
        return WAL(log_path(self.path), self.page_size, file_id, readonly=True, opener=self._opener)

    def _create(self, page_size: int) -> None:
        """_create writes the header of a new, empty store and makes it durable."""
        assert self.file is not None
        meta = fmt.Meta(page_size, page_count=1, file_id=int.from_bytes(os.urandom(8), "little") or 1)
        self.file.write(0, bytes(meta.encode()))
        self.file.sync()
        fileio.sync_directory(self.path)

    # ---- replacing the file ----

    def compaction_path(self) -> str:
        """compaction_path returns where a compacted copy of this store is built, beside it,
        with any leftover of an earlier, interrupted compaction removed. Give the finished
        copy to ``adopt``, or to ``discard`` if building it failed."""
        self.check_writable()
        path = storefiles.compaction_path(self.path)
        storefiles.discard(path)
        return path

    def adopt(self, path: str) -> None:
        """adopt replaces this store's data file with the finished store at ``path`` and goes on
        serving it: the pager object stays, its cache starts empty, its log starts a new
        generation for the new file.

        ``path`` must be a closed, checkpointed store of the same page size
        (its log gone), such as one built at ``compaction_path()``. The
        order keeps a crash harmless: the new file is locked before it is
        renamed over the old one (no other process can slip in between), the
        directory is synced after the rename, and the old log, whose header
        names the old file, counts for nothing once the new file is in place.
        Callers above the pager (the store's ``compact``) must drop what
        they cached of the old file.

        Raises:
            PageStoreError: a transaction is open.
            InvalidFileError, VersionMismatchError: ``path`` is not a store of this page size.
            OSError: the new file cannot be opened, locked or renamed (this store is then unchanged).
        """
        assert self.file is not None and self.wal is not None
        self.check_writable()
        if self.in_transaction:
            raise PageStoreError("adopt inside a transaction")
        if self.readers:
            raise PageStoreError(f"{self.path}: cannot replace the file while {len(self.readers)} snapshots are open")
        if self._data_lock is not None and not self._data_lock.try_exclusive():
            raise PageStoreError(f"{self.path}: cannot replace the file while other processes have the store open")
        try:
            self._adopt(path)
        except BaseException:
            if self._data_lock is not None:
                self._data_lock.share()
            raise
        if self._data_lock is not None:
            # Held exclusively across the rename: an opener that waited meanwhile finds
            # the new file when it looks again (``_shared_possible``). Now the new file's.
            old_lock = self._data_lock
            self._data_lock = DataLock(self.path, write=True, opener=self._opener)
            old_lock.close()
            if self.turns:
                # The new file's locks as an open of it takes them (``_lock_writer``): other
                # writers join it as they joined the old one.
                self._data_lock.hold(LOCK_WRITERS)
                assert self.file is not None
                self.file.lock(exclusive=False)
            if self.sharing is not None:
                self._data_lock.claim_name(self.sharing.index.identity())

    def _adopt(self, path: str) -> None:
        assert self.file is not None and self.wal is not None
        self.checkpoint()
        new, meta = storefiles.move_into_place(self._opener, path, self.path, self.page_size)
        self._unmap()  # no view of the old file's map may outlive it
        self.pagemap.forget()
        old, self.file = self.file, new
        self._read_into = getattr(new, "read_into", None)
        old.close()
        self.cache.clear()
        self.dirty.clear()
        self._spare = None
        self.meta = meta
        self.committed = meta.copy()
        self.wal.close()
        self.wal = WAL(log_path(self.path), self.page_size, meta.file_id, opener=self._opener)
        self.wal.timeout = self.timeout
        self.owed = 0  # the old log's append count; the checkpoint above made its commits durable
        self.wal.recover(meta.checkpoint_seq)  # the old file's log: not this file's, so started afresh
        self.overlaid = self.wal.pages()
        self.marks.forget_last()
        self.checkpointer.forget()
        if self.sharing is not None:
            self.sharing.set_file_id(meta.file_id)
            self.sharing.attach(self.wal, _SoleWriter(self))
            self._publish()
        self._remap()

    def create_copy(self, dest: str) -> Tuple[str, fileio.File]:
        """create_copy makes the temporary file, beside ``dest``, that a copy of this store to be
        installed at ``dest`` is written into (a backup: ``snapshot.Backup``), through this pager's
        opener; returns its path and the open file. Give the path to ``storefiles.install_copy``
        when the copy is written and synced, or to ``storefiles.remove_copy``."""
        storefiles.discard_abandoned_copies(dest, self._opener)
        tmp = storefiles.copy_path(dest)
        return tmp, storefiles.create_copy(tmp, self._opener)

    # ---- sizes and locks ----

    def file_size(self) -> int:
        assert self.file is not None
        return self.file.size()

    def alone(self) -> bool:
        """alone: no other open of this store (in any process) has it open now, as far as the locks tell."""
        return self._data_lock is None or self._data_lock.alone()

    def bytes_written(self) -> int:
        """bytes_written: bytes written to the data file and the log since they were opened."""
        data = int(getattr(self.file, "written", 0))
        return data + (self.wal.bytes_written() if self.wal is not None else 0)

    # ---- closing ----

    def close(self, checkpoint: bool = True) -> None:
        """close checkpoints (unless told not to), removes the emptied log and releases the files.

        A poisoned pager (``_poison``) writes nothing and raises nothing here: it rolls an
        open transaction back in memory and lets go of its files, log and shared index left
        as they are; the next open recovers from them. So does a close whose checkpoint's log
        sync waited past the timeout for another process's sync (``DurabilityUnknownError``)."""
        self.marks.drop_all()
        try:
            if self.wal is not None and self.file is not None and not self.readonly:
                # Commits that deferred their sync (group commit: ``commit(defer=True)``) are
                # acknowledged when their caller's sync returns, which may come after this close:
                # synced here, while this open still holds the log (and LOCK_WRITE, a turn it
                # keeps), since the caller's sync finds no log then. A failure poisons the
                # pager, and that caller raises StorePoisonedError.
                self._sync_deferred()
                if self.in_transaction:
                    self.rollback()
                if self.turns and not self.writing and checkpoint and self.poisoned is None:
                    # The checkpoint is a write turn: taken if no other writer holds it now
                    # (one that does checkpoints, and the last one out removes the files).
                    checkpoint = self._take_turn(0.05)
                if checkpoint and self.poisoned is None:
                    try:
                        self.checkpoint()
                    except (DurabilityUnknownError, StoreLockedError):
                        # Its log sync waited past the timeout for another process's (stopped in
                        # it, or a hung disk), or its log restart did, before writing anything:
                        # no checkpoint. The log and the index stay for the other writer, or
                        # the next open, to settle; close raises nothing for it.
                        return
                    # The log and the shared index go only when the log is empty and no
                    # other process has the store open (one that has keeps reading them).
                    if not self.wal.has_frames() and (self._data_lock is None or self._data_lock.try_exclusive()):
                        _unless_refused(self.wal.remove)
                        if self.sharing is not None:
                            _unless_refused(lambda: remove_shm(self.path))
            elif (self.shared and self._data_lock is not None and self.sharing is not None
                  and not self.sharing.unsynced() and self._data_lock.try_exclusive()):
                # The last one out (no writer): the next open rebuilds it. Not while it says a
                # sync of the log failed: the next writer's open writes those frames again.
                _unless_refused(lambda: remove_shm(self.path))
        finally:
            self._close_files()
            self.cache.clear()
            self.dirty.clear()
            self._spare = None

    def _close_files(self) -> None:
        self._unmap()
        if self.sharing is not None:
            self.sharing.close()
            self.sharing = None
            self.shared = False
        if self._data_lock is not None:
            self._data_lock.close()
            self._data_lock = None
        if self._solo_lock is not None:
            self._solo_lock.close()
            self._solo_lock = None
        if self.wal is not None:
            self.wal.close()
            self.wal = None
        if self.file is not None:
            self.file.close()
            self.file = None


def _unless_refused(remove: Callable[[], None]) -> None:
    """_unless_refused runs a close's removal of a side file (the emptied log, the shared index)
    and leaves the file where the directory refuses to let go of it: not writable by this user
    (EACCES, EPERM) or on a file system mounted read-only (EROFS). Such a file is what a killed
    writer leaves: the next open finds the log empty (or replays it) and rebuilds the index. The
    store is closed whole either way; a close that raised here told its caller it had failed."""
    try:
        remove()
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
