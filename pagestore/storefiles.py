"""storefiles: the store's files beside the data file, named, made, renamed and removed.

A store is a data file and, beside it, its log (``wal.log_path``) and its shared index
(``readers.shm_path``). This module holds what the pager does to whole files, rather
than to their bytes: where a compacted copy is built (``compaction_path``) and how it
replaces the data file (``move_into_place``, for ``Pager.adopt``) or is thrown away
(``discard``, ``discard_abandoned_copy``); a backup's copy made, installed or removed
(``copy_path``, ``create_copy``, ``install_copy``, ``remove_copy``, for ``snapshot.Backup``); and the
cleanup of a failed open (``side_file_undo``). Nothing above the pager names, renames or
unlinks a store's files: the store and the snapshot call these.

Every rename is followed by a sync of the directory, so that a crash leaves the old
file or the new one at the name, never neither.
"""
from __future__ import annotations

import os
from typing import Callable, Tuple

from . import fileio
from . import format as fmt
from .errors import InvalidFileError, StoreLockedError
from .readers import remove_shm, shm_path
from .wal import log_path, remove_log


def move_into_place(opener: fileio.Opener, path: str, target: str, page_size: int) -> Tuple[fileio.File, fmt.Meta]:
    """move_into_place opens the finished store at ``path``, locks it exclusively, checks it is
    a store of ``page_size``, removes its log and renames it over ``target``, then syncs the
    directory; returns the open file (the lock held) and its header. Callers: ``Pager.adopt``,
    holding ``target``'s lock: the new file is locked before the rename, so no other process
    slips in between.

    Raises:
        InvalidFileError, VersionMismatchError: ``path`` is not a store of this page size.
        OSError: the file cannot be opened, locked or renamed (``target`` is then unchanged).
    """
    new = opener(path, create=False, readonly=False)
    try:
        new.lock(exclusive=True)
        head = new.read(0, fmt.FILE_HEADER_SIZE)
        if fmt.read_fixed_header(head, path) != page_size:
            raise InvalidFileError(f"{path}: page size differs from {target}'s {page_size}")
        meta = fmt.decode_meta(head, path)
        remove_log(path)
        os.replace(path, target)
    except BaseException:
        new.close()
        raise
    fileio.sync_directory(target)
    return new, meta


def discard_abandoned_copy(opener: fileio.Opener, path: str) -> None:
    """discard_abandoned_copy removes the compacted copy at ``path`` (and its log) that a
    compaction killed before its rename left there, unless some open holds it (a store of
    that name in its own right), which is then left alone. Callers: a writer's open
    (``Pager``), which holds the store's lock, so no compaction of it is running."""
    if not os.path.exists(path):
        if os.path.exists(log_path(path)):
            remove_log(path)
        return
    try:
        copy = opener(path, create=False, readonly=False)
    except OSError:
        return
    try:
        copy.lock(exclusive=True)
        discard(path)
    except StoreLockedError:
        pass
    finally:
        copy.close()


def files_path(path: str) -> str:
    """files_path is the name the store at ``path`` is opened by and its log, shared index and
    compacted copy are named from: a symbolic link's target (followed to the end), else ``path``
    as given. Every name a process opens the store by then meets the same ``-wal`` and ``-shm``
    (else a writer through a link kept a log of its own beside the link: readers there missed
    the others' commits, writers took no turns with them and checkpointed over them), and
    ``compact()`` replaces the file, not the link (as SQLite names its log from the link's
    target). A hard link is another name for the file itself, which no path tells apart."""
    if os.path.islink(path):
        return os.path.realpath(path)
    return path


def compaction_path(path: str) -> str:
    """compaction_path names the copy a compaction of the store at ``path`` builds."""
    return path + ".compact"


def side_file_undo(path: str) -> Callable[[], None]:
    """side_file_undo notes whether the log and the shared index of the store at ``path`` exist
    now, and returns a function that removes whichever did not: the store's cleanup of a
    writable open that failed after the pager made them (docs/api.md: a failed open leaves no
    new file). Call it while the open still holds the store's lock."""
    had = [os.path.lexists(log_path(path)), os.path.lexists(shm_path(path))]

    def undo() -> None:
        if not had[0]:
            remove_log(path)
        if not had[1]:
            remove_shm(path)

    return undo


def discard(path: str) -> None:
    """discard deletes the store file at ``path``, its log and its shared index, if present: a
    compacted copy that will not be adopted. The file must not be open."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    remove_log(path)
    remove_shm(path)


def copy_path(path: str) -> str:
    """copy_path names the temporary file a copy of a store to be installed at ``path`` (a backup)
    is written to, beside it: one per process, so two processes backing up to one path do not
    write into each other's copy."""
    return f"{path}.backup-{os.getpid()}"


def create_copy(path: str, opener: fileio.Opener = fileio.open_file) -> fileio.File:
    """create_copy makes an empty file at ``path`` (through ``opener``) for a copy of a store to be
    written into (a backup's temporary file, ``copy_path``: ``Pager.create_copy``), removing a
    leftover of an interrupted copy first. The file is locked (its whole-file lock, exclusive)
    for as long as it is open, so that ``discard_abandoned_copies`` leaves it alone. Give it to
    ``install_copy`` when written and synced, or to ``remove_copy``."""
    _unlink(path)
    file = opener(path, create=True)
    try:
        file.lock(exclusive=True)
        file.truncate(0)
    except BaseException:
        file.close()
        raise
    return file


def discard_abandoned_copies(dest: str, opener: fileio.Opener = fileio.open_file) -> None:
    """discard_abandoned_copies removes the temporary files of backups to ``dest`` that were
    killed before they finished (``copy_path``: ``<dest>.backup-<pid>``, a whole copy of the
    store each): one whose process is gone and whose lock (``create_copy``) nobody holds.
    Before, each stayed for good: a nightly ``pagestore backup --force`` killed by a timeout
    left a full-size copy beside the backup every night. Callers: ``Pager.create_copy``."""
    folder = os.path.dirname(os.path.abspath(dest))
    prefix = os.path.basename(dest) + ".backup-"
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n[len(prefix):].isdigit()]
    except OSError:
        return
    for name in names:
        pid = int(name[len(prefix):])
        if pid == os.getpid() or _alive(pid):
            continue
        path = os.path.join(folder, name)
        try:
            copy = opener(path, create=False, readonly=True)
        except OSError:
            continue
        try:
            copy.lock(exclusive=True)
            _unlink(path)
        except (StoreLockedError, OSError):
            pass
        finally:
            copy.close()


def _alive(pid: int) -> bool:
    """_alive: a process ``pid`` exists (or may: one this user may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def install_copy(tmp: str, path: str, overwrite: bool) -> None:
    """install_copy renames the finished, synced copy ``tmp`` to ``path`` and syncs the directory:
    ``path`` is then either as it was or the whole copy. A log left at ``path`` (an older file's)
    is removed first. Without ``overwrite`` the copy is linked into place, so that a file that
    appeared there meanwhile is not replaced; ``tmp`` is removed either way.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    remove_log(path)  # a stale log of an older file here names another file id: harmless, but not ours
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            try:
                os.link(tmp, path)  # fails if the destination appeared meanwhile
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if os.path.exists(path):
                    raise FileExistsError(17, "File exists", path) from None
                os.replace(tmp, path)
        finally:
            _unlink(tmp)
    fileio.sync_directory(path)


def remove_copy(tmp: str) -> None:
    """remove_copy deletes an unfinished copy (``create_copy``), if it is there."""
    _unlink(tmp)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
