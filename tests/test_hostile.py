"""Hostile files and full disks (issue 20, findings 5 to 8, and the hostile-files check).

A file whose checksums all pass may still say anything: a header counter of
2**32 - 1, a child pointer back to the root, a record count of zero over a
full tree. Every open, read, scan, check, write, compact and salvage of such a
file must end, in bounded memory and time, with a result or a PageStoreError
naming the page or field; never a hang, a signal, MemoryError, struct.error
or OverflowError. And a full disk must be an OSError where the store can
handle it, never a SIGBUS from a write through a map of a sparse file.

The tests that would hang or exhaust memory on a store without these checks
run the store in a child process, with an address-space limit and a timeout.
"""
from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from typing import Dict, List

import pytest

import hostile_fuzz
from pagestore import format as fmt
from pagestore import shm as shmlib
from pagestore.errors import CorruptionError
from pagestore.page import SlottedPage
from pagestore.store import Store

#: page 0's fields (docs/format.md): offset, size
HEADER = {name: (off, size) for name, off, size in hostile_fuzz.HEADER_FIELDS}


def set_header(path: str, **fields: int) -> None:
    """set_header writes fields of the data file's page 0 and re-stamps its checksum, as a
    hostile (or buggy) writer would: the header then passes every check but its values'."""
    with open(path, "r+b") as f:
        head = bytearray(f.read(fmt.FILE_HEADER_SIZE))
        for name, value in fields.items():
            off, size = HEADER[name]
            struct.pack_into({4: "<I", 8: "<Q"}[size], head, off, value)
        struct.pack_into("<I", head, fmt.META_CHECKSUM_OFFSET, fmt.header_checksum(head))
        f.seek(0)
        f.write(head)


def set_record(path: str, page_size: int, pgno: int, slot: int, first4: int) -> None:
    """set_record overwrites the first 4 bytes of a record (a child pointer in an internal node)
    and re-stamps the page's checksum."""
    with open(path, "r+b") as f:
        f.seek(pgno * page_size)
        page = bytearray(f.read(page_size))
        sp = SlottedPage(page, validate=False)
        rec = bytearray(sp.read(slot))
        struct.pack_into("<I", rec, 0, first4)
        sp.update(slot, bytes(rec))
        sp.set_checksum()
        f.seek(pgno * page_size)
        f.write(page)


def build(path: str, n: int = 300, page_size: int = 512) -> Dict[bytes, bytes]:
    model = {b"k%05d" % i: b"v%d" % i * 5 for i in range(n)}
    with Store(path, page_size=page_size) as db:
        db.update(sorted(model.items()))
        for k in list(model)[::7]:
            del db[k]
            del model[k]
        db.check()
    return model


def in_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """in_child runs ``code`` in a new interpreter limited to 2 GiB of address space; a hang
    raises TimeoutExpired. The code prints what the test checks."""
    prologue = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


# ---- finding 6: a header page_count of 2**32 - 1 ----


def test_huge_page_count_is_refused_in_bounded_memory(tmp_path):
    """Regression: a page_count of 2**32 - 1 (checksum re-stamped) made a read-only open put every
    page number past the file in a set (24 GB before the kernel killed it), and ``pagestore
    check`` hang. Now every open refuses it, naming the first page that is not there."""
    path = str(tmp_path / "db")
    build(path)
    pages = os.path.getsize(path) // 512
    set_header(path, page_count=2**32 - 1)
    proc = in_child(f"""
        from pagestore.store import Store
        from pagestore.errors import CorruptionError
        for readonly in (True, False):
            for mmap in (True, False):
                try:
                    Store({path!r}, readonly=readonly, mmap=mmap).close()
                    print("opened")
                except CorruptionError as exc:
                    print("refused", exc.pgno, exc.detail)
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith(f"refused {pages} ") for line in lines), proc.stdout
    assert "page_count is 4294967295" in lines[0]
    cli = subprocess.run([sys.executable, "-m", "pagestore", "check", path], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "page_count" in cli.stderr + cli.stdout


def test_page_count_may_reach_past_the_file_into_the_log(tmp_path):
    """The log legitimately holds pages past the data file's end (committed, not yet copied): a
    crash image opens and checks clean. Without its log, the same file is refused, naming the
    first page it lacks."""
    path = str(tmp_path / "db")
    image = str(tmp_path / "image")
    with Store(path, page_size=512, wal_limit=1 << 30) as db:
        for i in range(200):
            db[b"k%04d" % i] = b"x" * 40
        assert db._pager.meta.page_count * 512 > os.path.getsize(path)  # the new pages are in the log only
        shutil.copyfile(path, image)
        shutil.copyfile(path + "-wal", image + "-wal")
    with Store(image, readonly=True) as db:
        assert len(db) == 200 and db.check()["records"] == 200
    with Store(image) as db:
        db.check()
    assert not os.path.exists(image + "-wal")  # the writer checkpointed it and removed it at close
    with Store(image) as db:
        pages = db._pager.meta.page_count
    with open(image, "r+b") as f:
        f.truncate(10 * 512)
    with pytest.raises(CorruptionError) as exc:
        Store(image)
    assert exc.value.pgno == 10 and f"page_count is {pages}" in exc.value.detail


# ---- finding 7: a child pointer that loops ----


def _root_and_children(path: str) -> List[int]:
    with Store(path, readonly=True) as db:
        root = db._pager.meta.root
        assert db._pager.meta.tree_height >= 2
        return [root] + list(db._tree.nodes.peek(root).vals)


def test_compact_and_walks_stop_on_a_child_cycle(tmp_path):
    """Regression: a child pointer back to the root made ``compact()`` loop forever
    (``BTree.entries`` had no depth rule nor visited set). Now every walk raises
    CorruptionError naming a page, in a child process that would otherwise time out."""
    path = str(tmp_path / "db")
    build(path)
    root, *children = _root_and_children(path)
    set_record(path, 512, root, 1, root)
    proc = in_child(f"""
        from pagestore.store import Store
        from pagestore.errors import PageStoreError
        db = Store({path!r})
        for name, fn in [("compact", db.compact), ("check", db.check), ("pages", lambda: list(db._tree.pages())),
                         ("salvage", lambda: list(db.salvage([]))), ("scan", lambda: list(db.items()))]:
            try:
                fn()
                print(name, "ok")
            except PageStoreError as exc:
                print(name, type(exc).__name__, exc.pgno)
        """, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert out["compact"] == f"CorruptionError {root}"
    assert out["pages"] == f"CorruptionError {root}"
    assert out["check"].startswith("CorruptionError")
    assert out["salvage"] == "ok"  # skips the page it has seen, as before


def test_a_subtree_reached_twice_is_corruption(tmp_path):
    """Two child pointers to one subtree: the walk names the page instead of copying (or
    yielding) its records twice; compaction refuses to build a store from it."""
    path = str(tmp_path / "db")
    model = build(path)
    root, first, *rest = _root_and_children(path)
    set_record(path, 512, root, 1, first)
    with Store(path) as db:
        with pytest.raises(CorruptionError) as exc:
            list(db._tree.entries())
        assert exc.value.pgno == first
        with pytest.raises(CorruptionError) as exc:
            db.compact()
        assert exc.value.pgno == first
        salvaged = dict(db.salvage([]))
        assert salvaged and all(model[k] == v for k, v in salvaged.items())


# ---- finding 8: counters too small or too large ----


@pytest.mark.parametrize("fields, field", [
    ({"live_bytes": 1}, "live_bytes"),
    ({"record_count": 1}, "record_count"),
])
def test_counters_too_small_raise_corruption_on_write(tmp_path, fields, field):
    """Regression: a live_bytes or record_count below the truth (checksum re-stamped) made a delete
    raise struct.error when the header was packed. Now the write raises CorruptionError naming
    page 0 and the field, is rolled back, and the store goes on reading."""
    path = str(tmp_path / "db")
    model = build(path, n=50)
    set_header(path, **fields)
    keys = sorted(model)
    with Store(path) as db:
        with pytest.raises(CorruptionError) as exc:
            for k in keys[:5]:
                del db[k]
        assert exc.value.pgno == 0 and field in exc.value.detail
        assert db[keys[-1]] == model[keys[-1]]


def test_free_count_too_small_raises_corruption(tmp_path):
    """Regression: a freelist_count smaller than the free list made allocation take it below zero
    (struct.error at commit). A count of 0 over a list is refused at open; a count of 1 over a
    longer list fails the allocation that takes it below zero, with CorruptionError."""
    path = str(tmp_path / "db")
    model = build(path, n=300)
    with Store(path) as db:
        for k in sorted(model)[:150]:
            del db[k]
        assert db._pager.meta.freelist_count >= 3
    set_header(path, freelist_count=0)
    with pytest.raises(CorruptionError) as exc:
        Store(path)
    assert exc.value.pgno == 0 and "freelist_count" in exc.value.detail
    set_header(path, freelist_count=1)
    with Store(path) as db:
        with pytest.raises(CorruptionError) as exc:
            for i in range(300):
                db[b"new%04d" % i] = b"y" * 100
        assert exc.value.pgno == 0 and "freelist_count" in exc.value.detail


@pytest.mark.parametrize("field, value", [
    ("record_count", 2**63), ("record_count", 10**6), ("live_bytes", 2**64 - 1), ("tree_height", 2**32 - 1),
    ("tree_height", 0), ("lsn", 2**64 - 1), ("checkpoint_seq", 2**64 - 1),
])
def test_impossible_counters_are_refused_at_open(tmp_path, field, value):
    """A counter no file of this size could have is refused when the header is read, naming the
    field. Regression: record_count >= 2**63 made ``len()`` raise OverflowError; an lsn of
    2**64 - 1 made the next commit raise struct.error."""
    path = str(tmp_path / "db")
    build(path, n=50)
    set_header(path, **{field: value})
    for readonly in (True, False):
        with pytest.raises(CorruptionError) as exc:
            with Store(path, readonly=readonly) as db:
                len(db)
                db[b"k"] = b"v"
        assert exc.value.pgno == 0 and field in exc.value.detail


def test_overflow_stub_longer_than_the_file(tmp_path):
    """An overflow stub whose chain loops back on itself is named, however long the stub says the
    value is (MAX_VALUE: a chain longer than the file has pages)."""
    path = str(tmp_path / "db")
    with Store(path, page_size=512) as db:
        db[b"big"] = b"z" * 5000
        (pgno, slot), = [rid for _, rid in db._tree.entries()]
        first = struct.unpack_from("<II", db._heap._record((pgno, slot))[0], 0)[1]
    with open(path, "r+b") as f:  # the chain's first page points at itself
        f.seek(first * 512)
        page = bytearray(f.read(512))
        sp = SlottedPage(page, validate=False)
        sp.next = first
        sp.set_checksum()
        f.seek(first * 512)
        f.write(page)
    for use_map in (True, False):
        with Store(path, mmap=use_map) as db:
            with pytest.raises(CorruptionError) as exc:
                db[b"big"]
            assert exc.value.pgno == first


# ---- finding 5: a full disk ----


def test_shm_grow_failure_is_an_oserror(tmp_path, monkeypatch):
    """The shared index grows with written zeros (shm._grow); when that fails (a full disk) the
    commit that needed it raises OSError before any of its frames is in the log, every earlier
    commit stays, and the store goes on once there is room."""
    path = str(tmp_path / "db")
    real = shmlib._grow
    full = {"on": True, "failed": 0}

    def grow(fd: int, size: int, new: int, where: str) -> None:
        if full["on"] and size > 0:
            full["failed"] += 1
            raise OSError(errno.ENOSPC, "No space left on device (injected)", where)
        real(fd, size, new, where)

    monkeypatch.setattr(shmlib, "_grow", grow)
    model: Dict[bytes, bytes] = {}
    db = Store(path, page_size=512, sync=False, wal_limit=1 << 30)
    with pytest.raises(OSError) as exc:
        for i in range(10000):  # about 2.3 frames a commit: past 4,096 frames, the first grow
            k, v = b"k%03d" % (i % 200), b"v%d" % i
            db[k] = v
            model[k] = v
    assert exc.value.errno == errno.ENOSPC and full["failed"] == 1
    assert dict(db.items()) == model
    db.check()
    full["on"] = False
    db[b"after"] = b"room again"
    model[b"after"] = b"room again"
    db.close()
    with Store(path) as again:
        assert dict(again.items()) == model
        again.check()


def test_readonly_open_without_room_for_the_index(tmp_path, monkeypatch):
    """A read-only open that cannot make the shared index (no room for it) reads without one."""
    path = str(tmp_path / "db")
    model = build(path, n=50)
    assert not os.path.exists(path + "-shm")

    def grow(fd: int, size: int, new: int, where: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (injected)", where)

    monkeypatch.setattr(shmlib, "_grow", grow)
    with Store(path, readonly=True) as db:
        assert dict(db.items()) == model


def test_readonly_open_that_cannot_rebuild_the_index(tmp_path, monkeypatch):
    """A read-only open that is alone rebuilds the shared index from the log; when the log holds
    more frames than the index has room for and it cannot grow (no room on the disk), the open
    reads without an index instead of failing."""
    path = str(tmp_path / "db")
    image = str(tmp_path / "image")
    model: Dict[bytes, bytes] = {}
    with Store(path, page_size=512, sync=False, wal_limit=1 << 30) as db:
        for i in range(2000):
            k, v = b"k%03d" % (i % 150), b"v%d" % i
            db[k] = v
            model[k] = v
        assert db.stats()["log_frames"] > 4096
        db.sync()
        shutil.copyfile(path, image)
        shutil.copyfile(path + "-wal", image + "-wal")
    real = shmlib._grow

    def grow(fd: int, size: int, new: int, where: str) -> None:
        if size > 0:
            raise OSError(errno.ENOSPC, "No space left on device (injected)", where)
        real(fd, size, new, where)

    monkeypatch.setattr(shmlib, "_grow", grow)
    with Store(image, readonly=True) as db:
        assert dict(db.items()) == model
        db.check()
    with pytest.raises(OSError) as exc:  # a writer needs the index: it says so
        Store(image)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == image + "-shm"


def test_reader_does_not_grow_the_index_for_a_header_that_lies(tmp_path):
    """A shared index header (checksum re-stamped) that claims 2**31 frames beside a live writer:
    the reader raises CorruptionError instead of growing the file to 32 GiB to read them."""
    path = str(tmp_path / "db")
    with Store(path, page_size=512) as db:
        for i in range(50):
            db[b"k%03d" % i] = b"v" * 20
        head = db._pager.sharing.index.read_header()
        assert head is not None
        raw = head._replace(frames=2**31, change=head.change + 1).encode()
        fd = os.open(path + "-shm", os.O_RDWR)
        try:
            os.pwrite(fd, raw, shmlib.COPY_SIZE)
            os.pwrite(fd, raw, 0)
        finally:
            os.close(fd)
        size = os.path.getsize(path + "-shm")
        proc = in_child(f"""
            from pagestore.store import Store
            from pagestore.errors import PageStoreError
            try:
                with Store({path!r}, readonly=True) as db:
                    print("read", len(db))
            except PageStoreError as exc:
                print(type(exc).__name__, exc)
            """)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.startswith("CorruptionError") and "2147483648 frames" in proc.stdout, proc.stdout
        assert os.path.getsize(path + "-shm") == size


FULL_DISK_CHILD = """
import errno, os, sys
from pagestore.store import Store
d = sys.argv[1]
p = os.path.join(d, "db")

def fill_disk():
    fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\\1" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    os.close(fd)

# A read-only open on a full disk, with no shared index yet (the writer removed it at close).
with Store(p, page_size=512) as db:
    for i in range(100):
        db[b"k%03d" % i] = b"v" * 20
fill_disk()
with Store(p, readonly=True) as db:
    print("reader", len(db))
os.unlink(os.path.join(d, "filler"))

# A writer on a disk that fills as its shared index is about to grow: fill it when the log
# has room for the commits that take the index past its end (its capacity from its size).
from pagestore.shm import ARRAY_OFFSET, ENTRY_SIZE
db = Store(p, page_size=512, sync=False)
model = dict(db.items())
for i in range(30000):
    st = db.stats()
    frames, slack = st["log_frames"], st["wal_size"] - st["log_size"]
    boundary = (os.path.getsize(p + "-shm") - ARRAY_OFFSET) // ENTRY_SIZE
    if boundary - frames < 60 and slack > 60 * 2000:
        break
    k, v = b"k%03d" % (i % 100), b"w%d" % i
    db[k] = v
    model[k] = v
else:
    sys.exit("never reached a grow of the shared index with room in the log")
fill_disk()
try:
    for j in range(200):
        k, v = b"k%03d" % (j % 100), b"x%d" % j
        db[k] = v
        model[k] = v
    print("writer no error")
except OSError as exc:
    print("writer", errno.errorcode[exc.errno], "shared index" in str(exc))
assert dict(db.items()) == model
db.check()
db.close()
os.unlink(os.path.join(d, "filler"))
with Store(p) as db:
    assert dict(db.items()) == model
    db.check()
print("reopened", len(model))
"""


def test_full_disk_is_an_oserror_not_sigbus(tmp_path):
    """Regression: the shared index grew sparse (ftruncate) and was written through a shared map,
    so on a full disk the writer died of SIGBUS in shm.set_frames, and a read-only open in
    publish. On a real full file system (a 4 MiB tmpfs; skipped where this cannot mount one)
    the writer gets OSError(ENOSPC) naming the shared index and loses nothing, and the reader
    reads without an index."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(mnt)], capture_output=True, text=True,
                              timeout=240, env=env)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stdout}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    assert lines[0] == "reader 100"
    assert lines[1] == "writer ENOSPC True", proc.stdout
    assert lines[2].startswith("reopened")


# ---- the hostile files ----


def test_hostile_files_fast(tmp_path):
    """60 hostile variants (tests/hostile_fuzz.py): every step ends with a result or a PageStoreError."""
    result = hostile_fuzz.run(60, seed=7, root=str(tmp_path))
    print("\n" + hostile_fuzz.summary(result))
    assert not result["failures"], hostile_fuzz.summary(result)
    assert sum(c["error"] for c in result["table"].values()) > 10  # the mutations do reach the checks


@pytest.mark.slow
def test_hostile_files_1000(tmp_path):
    """The issue's check: 1,000 hostile variants, each in a child with 20 s and 2 GiB."""
    result = hostile_fuzz.run(1000, seed=0, root=str(tmp_path))
    print("\n" + hostile_fuzz.summary(result))
    assert not result["failures"], hostile_fuzz.summary(result)
