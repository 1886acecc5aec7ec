"""fileio: the seam between pagestore and the operating system's files.

The pager (the data file) and the write-ahead log (its log) do their I/O
through a ``File`` their opener makes; tests put a fault-injecting double in
its place (see tests/faultfs.py) to cut power at any write. More users of
store files open a File too, each documented where it is:
``salvage.FileSource`` reads a damaged data file and its log (read-only, no
Pager); ``snapshot.Backup`` writes a backup's copy (through the pager's
opener); ``shm.DataLock`` opens the data file (through the pager's opener)
only to hold a byte-range lock on it. Not through a File, and so not through
an opener's double: the shared index (``shm.SharedIndex``, its own file,
mapped, locked with the same byte-range calls on its descriptor). ``track``
lets such descriptors be closed in a forked child as a File's are.

Locks: ``File.lock`` is a whole-file ``flock`` (the writer's); the byte-range
calls (``lock_range``, ``try_lock_range``, ``unlock_range``,
``range_held_by_others``) are open-file-description ``fcntl`` locks
(``F_OFD_SETLK``: Linux, ``OFD_LOCKS``), held per open file, so that two
opens in one process exclude each other as two processes do. They are also
here as functions on any descriptor, for the shared index.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct
import sys
import weakref
from typing import Any, Callable, Optional, Tuple

from .errors import InvalidFileError, StoreLockedError

_preadv = getattr(os, "preadv", None)
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the dirty pages in the range; do not wait
_sync_file_range: Any = None  # libc's sync_file_range once looked up; False where there is none


def _find_sync_file_range() -> Any:
    """_find_sync_file_range returns libc's sync_file_range (Linux), or False. The os module has no
    binding for it; ctypes is imported only when a large write first asks for it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn

#: Whether this platform has open-file-description byte-range locks (Linux): the
#: byte-range calls below raise OSError elsewhere.
OFD_LOCKS = sys.platform.startswith("linux") and hasattr(fcntl, "F_OFD_SETLK")
# struct flock on Linux (x86_64, aarch64): l_type, l_whence, l_start, l_len, l_pid, padding
_FLOCK = struct.Struct("@hhqqi4x")


# ---- open-file-description locks on any descriptor ----


def _fcntl(fd: int, cmd: int, kind: int, start: int, length: int) -> bytes:
    return fcntl.fcntl(fd, cmd, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))


def try_lock(fd: int, start: int, length: int = 1, *, exclusive: bool = False) -> bool:
    """try_lock takes a lock on bytes [start, start + length) of ``fd``'s file without waiting;
    False when another open holds a conflicting one. A lock this open already holds there is
    converted (shared to exclusive or back).

    Raises:
        OSError: EBADF for an exclusive lock on a descriptor open read-only.
    """
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    try:
        _fcntl(fd, fcntl.F_OFD_SETLK, kind, start, length)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def lock(fd: int, start: int, length: int = 1, *, exclusive: bool = False) -> None:
    """lock takes a lock on bytes [start, start + length) of ``fd``'s file, waiting for it."""
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    while True:
        try:
            _fcntl(fd, fcntl.F_OFD_SETLKW, kind, start, length)
            return
        except InterruptedError:  # pragma: no cover - a signal
            continue


def unlock(fd: int, start: int, length: int = 1) -> None:
    """unlock releases whatever this open holds on bytes [start, start + length) of ``fd``'s file."""
    _fcntl(fd, fcntl.F_OFD_SETLK, fcntl.F_UNLCK, start, length)


def held_by_others(fd: int, start: int, length: int) -> Optional[int]:
    """held_by_others returns where some lock that another open holds in [start, start + length)
    of ``fd``'s file begins (clipped to ``start``), or None when there is none."""
    raw = _fcntl(fd, fcntl.F_OFD_GETLK, fcntl.F_WRLCK, start, length)
    kind, _whence, lstart, _llen, _pid = _FLOCK.unpack(raw)
    if kind == fcntl.F_UNLCK:
        return None
    return max(int(lstart), start)


#: Every File (and shared index, shm.py) this process has open, so that a forked
#: child can let go of them: each has an ``fd``, -1 once closed.
_open_files: "weakref.WeakSet[Any]" = weakref.WeakSet()


def map_apart(fd: int, size: int, *, write: bool = False) -> mmap.mmap:
    """map_apart maps the first ``size`` bytes of ``fd``'s file, shared, through an open file
    description of its own (Linux: ``/proc/self/fd``), not ``fd``'s; elsewhere through ``fd``.

    Python's mmap keeps a duplicate of the descriptor it maps, which a forked child inherits
    and never closes (``_forget_files_in_child`` reaches the descriptors, not the maps). An
    fcntl open-file-description lock lives as long as any descriptor of its description: a
    map of the locking descriptor would keep a killed process's locks (its turn, its sync
    slot) held for as long as any child it forked lives, and every writer would wait on them.

    Raises:
        OSError, ValueError: as ``mmap.mmap``.
    """
    own = -1
    try:
        own = os.open(f"/proc/self/fd/{fd}", (os.O_RDWR if write else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # no /proc: the locks' own description it is
        pass
    try:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if write else 0)
        return mmap.mmap(own if own >= 0 else fd, size, flags=mmap.MAP_SHARED, prot=prot)
    finally:
        if own >= 0:
            os.close(own)


def off_stdio(fd: int) -> int:
    """off_stdio returns ``fd``, or when it is 0, 1 or 2 a duplicate of it numbered 3 or more,
    the low one closed and every closed one of 0, 1 and 2 then opened on /dev/null, as SQLite
    does (``SQLITE_MINIMUM_FILE_DESCRIPTOR``).

    A process started with stdin, stdout or stderr closed (a daemon that closed them, a
    service manager, ``2>&-``) hands out that number to the next file opened: the store's
    data file took 2, and a stray write to stderr (a C library's complaint, a crash handler,
    a child process that inherits it) landed in the store at offset 0, its header: "not a
    pagestore file (bad magic)" after a kill, every commit with it. Filling the free low
    numbers keeps the next file opened, and the duplicate Python's ``mmap`` keeps of a mapped
    file's descriptor, off them too. Callers: ``File`` and the shared index (shm.py), every
    descriptor of a store's files.

    Raises:
        OSError: no descriptor numbered 3 or more is free (EMFILE); ``fd`` is closed.
    """
    if fd > 2:
        return fd
    try:
        high: int = fcntl.fcntl(fd, getattr(fcntl, "F_DUPFD_CLOEXEC", fcntl.F_DUPFD), 3)
    finally:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for std in range(3):
            try:
                fcntl.fcntl(std, fcntl.F_GETFD)
            except OSError:
                os.dup2(null, std)  # (inheritable, as the standard streams are)
        if null <= 2:
            os.set_inheritable(null, True)
    finally:
        if null > 2:
            os.close(null)
    return high


def track(obj: Any) -> None:
    """track adds an object holding an OS descriptor in ``obj.fd`` to those a forked child closes."""
    _open_files.add(obj)


class File:
    """File is an open OS file with positioned reads and writes.

    Callers: the pager (data file), the WAL (log file), and the two the module
    docstring names (``salvage.FileSource``, ``snapshot.Backup``).
    """

    def __init__(self, path: str, *, create: bool = False, readonly: bool = False) -> None:
        flags = os.O_RDONLY if readonly else os.O_RDWR
        if create and not readonly:
            flags |= os.O_CREAT
        flags |= getattr(os, "O_CLOEXEC", 0)
        self.path = path
        self.readonly = readonly
        # O_NONBLOCK: a FIFO where a file should be (a hostile or mistaken ``-wal``) would block
        # the open until some writer opened it (forever); it is refused below instead. On a
        # regular file it changes nothing, and it is cleared at once.
        fd = off_stdio(os.open(path, flags | getattr(os, "O_NONBLOCK", 0), 0o644))
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):  # opened read-only (O_RDWR refuses a directory itself)
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
                raise InvalidFileError(f"{path}: not a regular file (a pipe, socket or device), so not a pagestore file")
            if getattr(os, "O_NONBLOCK", 0):
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.written = 0  # bytes written through this File (for the bench's bytes-written figure)
        _open_files.add(self)

    def read(self, offset: int, n: int) -> bytes:
        """read returns up to ``n`` bytes at ``offset`` (fewer at the end of the file)."""
        return os.pread(self.fd, n, offset)

    def read_into(self, offset: int, buf: bytearray) -> int:
        """read_into fills ``buf`` with the bytes at ``offset``; returns how many it read (fewer at the end of the file).

        Optional in a File double: the pager falls back to ``read`` without it.
        """
        if _preadv is not None:
            n: int = _preadv(self.fd, [buf], offset)
            return n
        data = os.pread(self.fd, len(buf), offset)  # pragma: no cover - no preadv
        buf[: len(data)] = data
        return len(data)

    def write(self, offset: int, data: "bytes | bytearray | memoryview") -> None:
        """write writes all of ``data`` at ``offset``."""
        n = os.pwrite(self.fd, data, offset)
        view = memoryview(data)
        self.written += view.nbytes
        if n == view.nbytes:  # the usual case: no view to slice (a bulk build makes 4,000 writes)
            return
        view = view[n:]
        offset += n
        while view:
            n = os.pwrite(self.fd, view, offset)
            view = view[n:]
            offset += n

    def start_writeback(self, offset: int, n: int) -> None:
        """start_writeback asks the OS to start writing the ``n`` bytes at ``offset`` to disk, and returns
        without waiting. It makes nothing durable (``sync`` does): a ``sync`` that follows finds less
        left to write. Linux's sync_file_range(SYNC_FILE_RANGE_WRITE), as RocksDB's
        ``bytes_per_sync``; a no-op elsewhere. A hint: a failure is ignored, for ``sync`` reports it.

        Optional in a File double: the pager does without it.
        """
        global _sync_file_range
        if _sync_file_range is None:
            _sync_file_range = _find_sync_file_range()
        if _sync_file_range:
            _sync_file_range(self.fd, offset, n, _SYNC_FILE_RANGE_WRITE)

    def sync(self) -> None:
        """sync makes every write so far durable (fdatasync)."""
        if hasattr(os, "fdatasync"):
            os.fdatasync(self.fd)
        else:  # pragma: no cover - macOS
            os.fsync(self.fd)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def map(self, size: int) -> mmap.mmap:
        """map returns the file's first ``size`` bytes mapped read-only and shared.

        Shared: a write through ``write`` is seen in the map at once (a local
        file system with a coherent page cache; not network file systems).
        The caller must not let the file shrink below ``size`` while the map
        is open (a read past the end of a file kills the process with
        SIGBUS), and must close it.

        Raises:
            ValueError: ``size`` is 0 or larger than the file.
        """
        if size <= 0 or size > self.size():
            raise ValueError(f"{self.path}: cannot map {size} bytes of a {self.size()}-byte file")
        return map_apart(self.fd, size)  # not the locks' description (LOCK_DMS, LOCK_WRITERS)

    def lock(self, exclusive: bool) -> None:
        """lock takes an advisory whole-file lock without waiting.

        Raises:
            StoreLockedError: another process holds a conflicting lock.
        """
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        try:
            fcntl.flock(self.fd, op)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                mode = "for writing" if exclusive else "for reading"
                raise StoreLockedError(
                    f"{self.path}: another process has the store open; cannot open it {mode}"
                ) from None
            raise

    def unlock(self) -> None:
        """unlock releases the lock ``lock`` took."""
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def try_lock_range(self, start: int, length: int = 1, *, exclusive: bool = False) -> bool:
        """try_lock_range takes a byte-range lock on [start, start + length) of this open file
        without waiting (``try_lock``); False when another open holds a conflicting one. The
        range may lie past the file's end (nothing is read or written there).

        Raises:
            OSError: EBADF for an exclusive lock on a file open read-only.
        """
        return try_lock(self.fd, start, length, exclusive=exclusive)

    def lock_range(self, start: int, length: int = 1, *, exclusive: bool = False) -> None:
        """lock_range takes a byte-range lock on [start, start + length), waiting for it (``lock``)."""
        lock(self.fd, start, length, exclusive=exclusive)

    def unlock_range(self, start: int, length: int = 1) -> None:
        """unlock_range lets go of whatever this open file holds in [start, start + length)."""
        if self.fd >= 0:
            unlock(self.fd, start, length)

    def range_held_by_others(self, start: int, length: int = 1) -> Optional[int]:
        """range_held_by_others: where a lock another open holds in [start, start + length)
        begins (``held_by_others``), or None. Takes no lock."""
        return held_by_others(self.fd, start, length)

    def identity(self) -> Tuple[int, int]:
        """identity: (device, inode) of the open file, to tell whether a path still names it."""
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _forget_files_in_child() -> None:
    """_forget_files_in_child runs in a child after ``os.fork()``: it closes the child's copies of every File's descriptor.

    The parent's store stays the parent's: closing a forked copy of a
    descriptor releases no ``flock`` (the lock belongs to the open file,
    which the parent still holds), writes nothing and removes nothing, and
    the child no longer keeps the parent's lock alive after the parent
    closes the store. The Store refuses to be used in the child (see
    store.Store._begin).
    """
    for f in list(_open_files):
        if f.fd >= 0:
            try:
                os.close(f.fd)
            except OSError:  # pragma: no cover - already gone
                pass
            f.fd = -1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_files_in_child)


#: Opener signature: (path, create, readonly) -> File. Tests pass their own.
Opener = Callable[..., File]


def open_file(path: str, *, create: bool = False, readonly: bool = False) -> File:
    """open_file is the default opener: a real OS file."""
    return File(path, create=create, readonly=readonly)


def sync_directory(path: str) -> None:
    """sync_directory makes a created or renamed entry in ``path``'s directory durable."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)

