"""fileio.py: the File the pager and the log do their I/O through (positioned reads and
writes, sync, map, locks), and the fork hook that closes a child's copies."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faultfs import Disk
from pagestore import fileio
from pagestore.errors import StoreLockedError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_positioned_reads_and_writes(tmp_path: Path) -> None:
    f = fileio.open_file(str(tmp_path / "f"), create=True)
    try:
        f.write(10, b"hello")
        f.write(0, memoryview(b"ab"))
        assert f.size() == 15 and f.written == 7
        assert f.read(10, 100) == b"hello"  # short at the end of the file
        assert f.read(0, 3) == b"ab\x00"  # the hole reads as zeros
        buf = bytearray(8)
        assert f.read_into(9, buf) == 6 and bytes(buf[:6]) == b"\x00hello"
        f.start_writeback(0, 15)  # a hint: it returns, and changes nothing
        f.sync()
        f.truncate(12)
        assert f.size() == 12 and f.read(10, 10) == b"he"
    finally:
        f.close()
    f.close()  # twice is harmless
    assert f.fd == -1


def test_open_refuses_a_missing_file_without_create_and_readonly_refuses_writes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fileio.open_file(str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError):
        fileio.open_file(str(tmp_path / "none"), create=True, readonly=True)  # readonly never creates
    (tmp_path / "f").write_bytes(b"x" * 10)
    ro = fileio.open_file(str(tmp_path / "f"), readonly=True)
    try:
        with pytest.raises(OSError):
            ro.write(0, b"y")
        assert ro.read(0, 10) == b"x" * 10
    finally:
        ro.close()


def test_map_sees_writes_and_refuses_sizes_out_of_range(tmp_path: Path) -> None:
    f = fileio.open_file(str(tmp_path / "f"), create=True)
    try:
        f.write(0, b"\x00" * 4096)
        mm = f.map(4096)
        try:
            f.write(100, b"seen")
            assert mm[100:104] == b"seen"  # shared: a write is in the map at once
            with pytest.raises(TypeError):
                mm[0] = 1  # type: ignore[index]  # read-only
        finally:
            mm.close()
        for size in (0, 4097):
            with pytest.raises(ValueError, match="cannot map"):
                f.map(size)
    finally:
        f.close()


def test_locks_conflict_across_open_files(tmp_path: Path) -> None:
    path = str(tmp_path / "f")
    a = fileio.open_file(path, create=True)
    b = fileio.open_file(path)
    try:
        a.lock(exclusive=True)
        with pytest.raises(StoreLockedError, match="for reading"):
            b.lock(exclusive=False)
        a.unlock()
        a.lock(exclusive=False)
        b.lock(exclusive=False)  # shared with shared
        with pytest.raises(StoreLockedError, match="for writing"):
            b.lock(exclusive=True)
    finally:
        a.close()
        b.close()


def _openers(tmp_path: Path):
    """The real opener and faultfs's double: the byte-range calls must behave alike in both."""
    return {"real": fileio.open_file, "faultfs": Disk(str(tmp_path)).opener}


@pytest.mark.skipif(not fileio.OFD_LOCKS, reason="no open-file-description locks here")
@pytest.mark.parametrize("kind", ["real", "faultfs"])
def test_byte_range_locks_belong_to_each_open_file(tmp_path: Path, kind: str) -> None:
    """Byte-range locks (open-file-description locks) conflict between two opens of one file
    in one process, as between processes; they lie past the file's end and are no I/O."""
    opener = _openers(tmp_path)[kind]
    path = str(tmp_path / "f")
    a = opener(path, create=True)
    b = opener(path)
    r = opener(path, readonly=True)
    far = 1 << 40  # where the store's locks live: far past any file's end
    try:
        assert a.size() == 0
        assert a.range_held_by_others(far, 1) is None
        a.lock_range(far)  # shared
        assert b.try_lock_range(far)  # shared with shared
        assert r.range_held_by_others(far, 4) == far  # others hold it; nothing taken
        assert not b.try_lock_range(far, exclusive=True)  # a holds it shared
        a.unlock_range(far)
        assert b.try_lock_range(far, exclusive=True)  # b's own shared lock turned exclusive
        assert not a.try_lock_range(far) and a.range_held_by_others(far - 8, 16) == far
        assert b.range_held_by_others(far, 1) is None  # its own lock is not another's
        assert a.try_lock_range(far + 1, exclusive=True)  # the next byte is free
        b.unlock_range(far, 1)
        assert a.try_lock_range(far)
        with pytest.raises(OSError) as info:
            r.try_lock_range(far + 8, exclusive=True)  # exclusive needs a writable open (Linux: EBADF)
        assert info.value.errno == errno.EBADF
        assert r.try_lock_range(far + 8)  # shared is fine read-only
        assert a.size() == 0 and a.identity() == b.identity() == r.identity()
        b.close()  # closing lets go of its locks
        assert a.range_held_by_others(far, 16) == far + 8  # r's, not b's
    finally:
        a.close()
        b.close()
        r.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_closes_its_copies_and_keeps_the_parents_lock(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os, sys
        from pagestore import fileio
        from pagestore.errors import StoreLockedError
        f = fileio.open_file(sys.argv[1], create=True)
        f.lock(exclusive=True)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if f.fd == -1 else 1)  # the child's copy was closed at fork
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "child kept the descriptor"
        try:
            fileio.open_file(sys.argv[1]).lock(exclusive=False)
        except StoreLockedError:
            print("ok")  # the child's close released nothing of the parent's lock
    """)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "f")], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
