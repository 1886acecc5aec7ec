"""Outside attack, seventh round: what a stranger's permissions, hostile side files, forks,
interrupted command lines and writers killed beside readers found after
tests/test_outside_attack4.py and test_outside_attack5.py.

Each test names what it did and what happened before its fix.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

import pagestore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A writer that commits one put and is killed (kill -9) with the store open: its log and shared
# index stay beside the store, the put in the log only.
_KILLED_WITH_A_PUT = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import pagestore
db = pagestore.open(sys.argv[1])
db[b"late"] = b"1"
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_with_a_put(path: str) -> None:
    r = subprocess.run([sys.executable, "-c", _KILLED_WITH_A_PUT, path, ROOT], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == -9, r.stderr[-2000:]
    assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")


@pytest.mark.parametrize("readonly", [True, False])
def test_close_in_a_directory_this_user_may_not_write_leaves_the_side_files_raises_nothing(
        tmp_path, monkeypatch, readonly):
    """A store whose directory this user may read but not write (``/var/lib/app``, mode 755, of
    another user), with the log and shared index a killed writer left there, writable by all
    (mode 666). Found (run as ``nobody``): the open read, or wrote and committed, and then
    ``close()`` (the end of the ``with``) raised PermissionError: as the last one out it
    unlinks the shared index (a reader) or the emptied log and the index (a writer), which a
    directory not writable refuses (EACCES). The commit stood, but the program saw its close
    fail. Now a side file the directory will not let go of stays, as a killed writer's does
    (the next open rebuilds the index and finds the log empty or replays it), and close
    raises nothing. Here unlink's EACCES is injected (root is not refused by file modes)."""
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    _killed_with_a_put(path)
    real_unlink = os.unlink
    refused = []

    def unlink(p, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.dirname(os.path.abspath(p)) == str(tmp_path):
            refused.append(os.path.basename(p))
            raise PermissionError(errno.EACCES, "Permission denied", p)
        return real_unlink(p, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with pagestore.open(path, readonly=readonly) as db:
        assert db[b"late"] == b"1"
        if not readonly:
            db[b"b"] = b"2"
    assert refused, "the close tried to remove nothing: nothing was attacked"
    monkeypatch.setattr(os, "unlink", real_unlink)
    with pagestore.open(path) as db:
        assert db[b"late"] == b"1" and db[b"a"] == b"1"
        assert db.get(b"b") == (None if readonly else b"2")
        db.check()
    assert sorted(os.listdir(tmp_path)) == ["s.ps"]


def test_a_reader_refused_the_log_is_told_it_may_not_read_it(tmp_path):
    """A read-only open (``pagestore get``) of a store whose log a killed writer of another user
    left readable by that user only (mode 600). Found (run as ``nobody``): "the store's log
    exists and this process may not write it": a reader writes no log, and the user went
    looking for write permission it does not need. Now a reader is told it may not read it;
    a writer is still told it may not write it."""
    from pagestore import fileio
    from pagestore.store import Store

    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    _killed_with_a_put(path)

    def opener(p: str, *, create: bool = False, readonly: bool = False) -> fileio.File:
        if p.endswith("-wal"):
            raise PermissionError(errno.EACCES, "Permission denied", p)
        return fileio.open_file(p, create=create, readonly=readonly)

    for readonly, verb in ((True, "read"), (False, "write")):
        with pytest.raises(PermissionError) as exc:
            Store(path, readonly=readonly, _opener=opener)
        assert exc.value.filename == path + "-wal", exc.value
        assert f"this process may not {verb} it" in str(exc.value), exc.value
    with pagestore.open(path, readonly=True) as db:
        assert db[b"late"] == b"1"


@pytest.mark.parametrize("side", ["-wal", "-shm"])
@pytest.mark.parametrize("writer_open", [False, True])
def test_a_backup_named_as_the_stores_own_log_or_index_is_refused(tmp_path, side, writer_open):
    """``pagestore backup s.ps s.ps-wal`` (a slip of tab completion) or ``db.backup(path +
    "-shm", overwrite=True)``. Found: the backup to ``-wal`` said "1,000 records backed up", and
    the next ``pagestore put s.ps ...`` opened, took the copy for a log it could not use and
    removed it at close: the backup gone without a word. With ``--force`` to ``-shm`` (the
    reader had made the index) the copy was renamed over the live index and removed by the
    last one out, and the command said "s.ps-shm: No such file or directory". Now both names
    are refused as the store itself is, through a symbolic link too, and nothing is written."""
    path = str(tmp_path / "s.ps")
    with pagestore.open(path) as db:
        db.update({b"k%d" % i: b"v" * 100 for i in range(1000)})
    os.symlink("s.ps" + side, str(tmp_path / "alias"))
    writer = pagestore.open(path) if writer_open else None
    try:
        with pagestore.open(path, readonly=True) as db:
            for dest in (path + side, str(tmp_path / "alias")):
                with pytest.raises(pagestore.PageStoreError, match="is the store's (log|shared index)"):
                    db.backup(dest, overwrite=True)
        if not writer_open:
            assert sorted(os.listdir(tmp_path)) == ["alias", "s.ps"]
        r = subprocess.run([sys.executable, "-m", "pagestore", "backup", "--force", path, path + side],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
        assert r.returncode == 1 and "is the store's" in r.stderr, r.stderr[-2000:]
    finally:
        if writer is not None:
            writer[b"after"] = b"1"
            writer.close()
    with pagestore.open(path) as db:
        assert len(db) == 1000 + writer_open
        db.check()


_WRITE_ON = r"""
import sys
sys.path.insert(0, sys.argv[3])
import pagestore
db = pagestore.open(sys.argv[1], readonly=sys.argv[2] == "ro")
print("OPEN", flush=True)
acked = 0
for line in sys.stdin:
    if sys.argv[2] == "rw":
        db[b"w%05d" % acked] = b"1"
        acked += 1
    print("ACK", acked, flush=True)
db.close()
"""


@pytest.mark.parametrize("other", ["rw", "ro", "here"])
def test_a_backup_over_a_store_some_open_has_is_refused(tmp_path, other):
    """``pagestore backup a.ps b.ps --force`` (or ``a.backup("b.ps", overwrite=True)``) while a
    server has b.ps open and writes. Found: the copy was renamed over b.ps and b.ps-wal removed;
    the server went on acknowledging commits, into the file renamed away: 154 acknowledged in
    3 s, none of them in b.ps afterwards. ``pagestore.remove`` refuses a store some open has,
    for the same reason. Now the backup does too (StoreLockedError, nothing written, no
    temporary file left), whether the other open writes, reads, or is in this process; once it
    is closed the backup goes through."""
    src = str(tmp_path / "a.ps")
    dest = str(tmp_path / "b.ps")
    with pagestore.open(src) as db:
        db.update({b"a%d" % i: b"A" for i in range(100)})
    pagestore.open(dest).close()
    proc = here = None
    if other == "here":
        here = pagestore.open(dest)
    else:
        proc = subprocess.Popen([sys.executable, "-c", _WRITE_ON, dest, other, ROOT], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "OPEN\n"

    def ack() -> None:
        if proc is not None:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().startswith("ACK")
        elif here is not None:
            here[b"w%05d" % len(here)] = b"1"

    try:
        ack()
        with pagestore.open(src, readonly=True) as db:
            with pytest.raises(pagestore.StoreLockedError, match="cannot back up over it"):
                db.backup(dest, overwrite=True)
        r = subprocess.run([sys.executable, "-m", "pagestore", "backup", "--force", src, dest], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
        assert r.returncode == 1 and "cannot back up over it" in r.stderr, r.stderr[-2000:]
        ack()
    finally:
        if proc is not None:
            proc.communicate(timeout=60)
        if here is not None:
            here.close()
    assert sorted(os.listdir(tmp_path)) == ["a.ps", "b.ps"]
    with pagestore.open(dest) as db:
        assert len(db) == (0 if other == "ro" else 2)
    with pagestore.open(src) as db:
        assert db.backup(dest, overwrite=True) == 100
    with pagestore.open(dest) as db:
        assert len(db) == 100
        db.check()


def test_salvage_of_an_open_store_reads_one_commit_while_writes_go_on(tmp_path):
    """``pagestore dump --salvage db.ps > rescue.jsonl`` while the application still writes
    db.ps (or ``db.salvage()`` beside the application's writes). Found: of 3,000 records
    (none deleted, none damaged) 2,857 to 2,999 came out, exit 0, no page named: salvage read
    each page at the newest commit, so a key found in a leaf before a commit lost its value
    when the record moved to another heap page after it. Here one process: the sweep's first
    record read (pass 1, every leaf, done), then every value rewritten at another size.
    Now the sweep reads every page as of the commit before the call, and yields exactly what
    ``items()`` yielded then."""
    path = str(tmp_path / "s.ps")
    with pagestore.open(path, page_size=1024) as db:
        db.update({b"k%05d" % i: b"v%d" % i * (1 + i % 40) for i in range(3000)})
        before = list(db.items())
        damaged: list = []
        sweep = db.salvage(damaged)
        first = next(sweep)
        for i in range(3000):
            db[b"k%05d" % i] = b"w" * (300 - i % 200)
        with db.transaction() as t:
            t[b"new"] = b"1"
        assert [first, *sweep] == before and damaged == []
        assert list(db.salvage()) == list(db.items())  # after the sweep: the newest commit
        db.check()


def test_threads_opening_one_store_at_once_get_one_writer(tmp_path):
    """Four threads of a web server's start-up each call ``pagestore.open(path)`` at the same
    moment (each meant to share the first, and docs/api.md says a second writable open in a
    process is refused: "share that Store between threads"). Found: in 15 of 30 rounds all four
    opens succeeded, in the other 15 two did: the check of the opens here ran before any of
    them had registered. Now opens of one file in a process run one at a time through that
    check: one writer, three StoreLockedError, in every round; two read-only opens beside it
    still share."""
    import threading

    path = str(tmp_path / "s.ps")
    pagestore.open(path).close()
    for _ in range(20):
        barrier = threading.Barrier(6)
        opened: list = []
        refused: list = []

        def go(readonly: bool) -> None:
            barrier.wait()
            try:
                opened.append(pagestore.open(path, readonly=readonly))
            except pagestore.StoreLockedError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=go, args=(i >= 4,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        try:
            writers = [db for db in opened if not db.readonly]
            assert len(writers) == 1 and len(opened) == 3, (len(writers), len(opened), refused)
            assert len(refused) == 3 and all("already open in this process" in r for r in refused), refused
            writers[0][b"k"] = b"1"
        finally:
            for db in opened:
                db.close()
    with pagestore.open(path) as db:
        assert db[b"k"] == b"1"
        db.check()


_STDIO_CLOSED = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import pagestore
db = pagestore.open(sys.argv[1])
db[b"a"] = b"1"
fds = [db._pager.file.fd, db._pager.wal.file.fd]
os.write(2, b"*** a C library complains on stderr ***\n")  # EBADF, or /dev/null: nowhere
db[b"b"] = b"2"
for fd in (0, 1, 2):
    try:
        os.write(fd, b"\xff" * 100)
    except OSError:
        pass
with open(sys.argv[3], "w") as f:
    f.write(" ".join(map(str, fds)))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_started_with_stdio_closed_keeps_its_store_off_descriptors_0_to_2(tmp_path):
    """A daemon that closed stdin, stdout and stderr (or ``app 2>&-``) opens a store: the data
    file took descriptor 0 and the log 1 (the lowest free numbers). Found: a stray write to
    stderr (a C library's complaint, a crash handler, a child that inherits it) went into the
    data file at offset 0, its header, and after a kill -9 the store did not open: "not a
    pagestore file (bad magic)", its two acknowledged commits with it. Now the store's files
    never hold descriptors 0 to 2 (they are moved up and the free low numbers opened on
    /dev/null, as SQLite does); the writes go nowhere and the store opens whole."""
    path = str(tmp_path / "s.ps")
    out = str(tmp_path / "fds")
    r = subprocess.run([sys.executable, "-c", _STDIO_CLOSED, path, ROOT, out], stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: [os.close(fd) for fd in (0, 1, 2)], timeout=60)
    assert r.returncode == -9
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"a": b"1", b"b": b"2"}
        db.check()
    with open(out) as f:
        assert all(int(fd) > 2 for fd in f.read().split())


@pytest.mark.parametrize("args,closed", [(["put", "{db}", "k"], 0), (["load", "{db}"], 0), (["dump", "{db}"], 1),
                                         (["get", "{db}", "a"], 1), (["check", "{db}"], 1)])
def test_the_cli_with_stdin_or_stdout_closed_says_so_in_one_line(tmp_path, args, closed):
    """``pagestore put db k <&-`` (a cron line, a supervisor that starts it without stdin) or
    ``pagestore dump db >&-``. Found: tracebacks (AttributeError: 'NoneType' object has no
    attribute 'isatty' / 'flush'; click's RuntimeError "Was not able to determine binary stream
    for sys.stdin"), exit 1. Now one line naming the stream, exit 1, as coreutils report "Bad
    file descriptor"; the store is as it was."""
    path = str(tmp_path / "db.ps")
    with pagestore.open(path) as db:
        db[b"a"] = b"1"
    r = subprocess.run([sys.executable, "-m", "pagestore", *[a.format(db=path) for a in args]],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       preexec_fn=lambda: os.close(closed), timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    name = "stdin" if closed == 0 else "stdout"
    assert r.returncode == 1 and r.stderr == f"pagestore: error: {name}: closed (Bad file descriptor)\n", r.stderr
    with pagestore.open(path) as db:
        assert dict(db.items()) == {b"a": b"1"}


_BACKUP_STOPPED = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[3])
import pagestore
from pagestore import snapshot
real, runs = snapshot.Backup.copy, []
def copy(self, n=snapshot.BACKUP_RUN):
    real(self, n)
    runs.append(1)
    if len(runs) == 3:
        print("COPYING", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)  # killed (SIGKILL) or continued here
snapshot.Backup.copy = copy
with pagestore.open(sys.argv[1], readonly=True) as db:
    db.backup(sys.argv[2], overwrite=True)
print("DONE", flush=True)
"""


def test_a_killed_backups_temporary_copy_is_removed_by_the_next_backup(tmp_path):
    """A nightly ``pagestore backup --force db.ps /backups/db.ps`` killed by its timeout (SIGKILL)
    half way. Found: its temporary file ``db.ps.backup-<pid>``, a copy as large as the store,
    stayed for good; every killed night added one. Now the next backup to that destination
    removes it; a temporary file of a backup still running (its process alive, its lock held)
    is left alone, and that backup finishes."""
    src = str(tmp_path / "db.ps")
    dest = str(tmp_path / "copy.ps")
    with pagestore.open(src, page_size=512) as db:
        db.update({b"k%05d" % i: b"v" * 200 for i in range(3000)})

    def start() -> "subprocess.Popen[str]":
        p = subprocess.Popen([sys.executable, "-c", _BACKUP_STOPPED, src, dest, ROOT], stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout is not None and p.stdout.readline() == "COPYING\n"
        return p

    killed = start()
    killed.kill()
    killed.wait()
    leftover = f"{dest}.backup-{killed.pid}"
    assert os.path.getsize(leftover) >= 3 * 64 * 512  # three runs of 64 pages
    running = start()  # stopped in its copy: alive, its temporary file locked
    try:
        with pagestore.open(src, readonly=True) as db:
            assert db.backup(dest, overwrite=True) == 3000
        assert not os.path.exists(leftover)
        assert os.path.exists(f"{dest}.backup-{running.pid}")
        os.kill(running.pid, signal.SIGCONT)
        out, _ = running.communicate(timeout=60)
        assert out == "DONE\n" and running.returncode == 0
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert sorted(os.listdir(tmp_path)) == ["copy.ps", "db.ps"]
    with pagestore.open(dest) as db:
        assert len(db) == 3000
        db.check()


_KILLED_AFTER_PUTS = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import pagestore
db = pagestore.open(sys.argv[1], page_size=1024, wal_limit=int(sys.argv[3]))
for i in range(int(sys.argv[4])):
    db[b"k%05d" % (i * 7 % 2000)] = sys.argv[5].encode() * (1 + i % 90)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_after_puts(path: str, wal_limit: int, n: int, tag: str) -> None:
    r = subprocess.run([sys.executable, "-c", _KILLED_AFTER_PUTS, path, ROOT, str(wal_limit), str(n), tag],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr[-2000:]


@pytest.mark.parametrize("case", ["old log beside a newer file", "newer log beside a restored file"])
def test_a_log_of_another_time_beside_a_copy_of_its_file_is_not_replayed(tmp_path, case):
    """A developer copies the production store (``cp prod/data.ps dev/``) over a dev copy whose
    last run crashed and left ``data.ps-wal``; or an operator restores last night's ``data.ps``
    and leaves today's log beside it. The log names the same file (a copy keeps its file id).
    Found: the old log's frames were replayed over the newer file: 1,026 of 1,000 keys read back
    otherwise (deleted ones back, old values), then check() failed ("heap page has 15 live
    records but 6 are referenced"), and a writer would have checkpointed the mixture into the
    file; the other way round the open failed with CorruptionError naming a page. A log of
    generation g belongs to a data file whose checkpoint_seq is g or g + 1; another one now
    counts for nothing, as a log of another file does: the open reads the data file as it is."""
    path = str(tmp_path / "data.ps")
    with pagestore.open(path, page_size=1024) as db:
        db.update({b"k%05d" % i: b"a" * (1 + i % 50) for i in range(2000)})
    if case == "old log beside a newer file":
        _killed_after_puts(path, 1 << 30, 500, "b")  # the crashed run: a log of 500 commits
        os.replace(path + "-wal", str(tmp_path / "old-wal"))
        with pagestore.open(path, page_size=1024, wal_limit=4096) as db:  # the newer copy: many checkpoints
            for i in range(3000):
                db[b"k%05d" % (i % 2000)] = b"c" * (1 + i % 70)
            db.delete_range(b"k01000", b"k02000")
        os.replace(str(tmp_path / "old-wal"), path + "-wal")
    else:
        with open(path, "rb") as f:
            last_night = f.read()
        _killed_after_puts(path, 1 << 16, 3000, "n")  # today: checkpoints, then a crash
        with open(path, "wb") as f:
            f.write(last_night)
        os.unlink(path + "-shm")
    with open(path, "rb") as f:
        image = f.read()
    alone = str(tmp_path / "alone" / "data.ps")  # the data file without any log beside it
    os.mkdir(os.path.dirname(alone))
    with open(alone, "wb") as f:
        f.write(image)
    with pagestore.open(alone, readonly=True) as db:
        expected = dict(db.items())
    assert expected and os.path.getsize(path + "-wal") > 1000
    for readonly in (True, False, True):
        with pagestore.open(path, readonly=readonly) as db:
            assert dict(db.items()) == expected
            db.check()
    with open(path, "rb") as f:
        assert f.read()[1024:] == image[1024:]  # no page but the header written over



_CTRL_C_IN_LOG_RESTART = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import pagestore
from pagestore import wal as wal_mod
where = sys.argv[3]
real_round, fired, armed = wal_mod.WAL._sync_round, [], []
def sync_round(self, *args, **kw):
    if where == "header" and args[3] == "reset" and armed and not fired:
        fired.append(1)
        raise KeyboardInterrupt  # a Ctrl-C at the header write's call, before it ran
    return real_round(self, *args, **kw)
wal_mod.WAL._sync_round = sync_round
from pagestore import pager as pager_mod
real_restarted = pager_mod.Pager.log_restarted
def log_restarted(self, seq):
    real_restarted(self, seq)
    if where == "settle" and armed and not fired:
        fired.append(1)
        raise KeyboardInterrupt  # as it returns: the rest of the restart's bookkeeping cut
pager_mod.Pager.log_restarted = log_restarted
db = pagestore.open(sys.argv[1], page_size=1024, wal_limit=0)  # the log restarts at every commit
armed.append(1)
i = 0
while not fired:
    try:
        db[b"k%d" % i] = b"v"
    except KeyboardInterrupt:
        pass
    i += 1
db.check()
snap = db.snapshot()  # (an iteration elsewhere, say): no restart while it is open
for j in range(30):
    db[b"after%02d" % j] = b"%d" % j  # acknowledged
print("ACKED", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("where", ["header", "settle"])
def test_a_ctrl_c_in_a_log_restart_loses_no_later_commit(tmp_path, where):
    """Ctrl-C at a random moment of single puts (a SIGALRM raising KeyboardInterrupt every few
    milliseconds; docs/api.md promises a write interrupted at any moment is whole or absent, the
    store writable). With ``wal_limit=0`` every put checkpoints and restarts the log. Found, in 6
    of 6 runs of 4,000 puts: check() then failed ("log header is not the one this log was started
    with", or "checkpointer: 5 frames copied of a log of 0"), and in one, after 30 acknowledged
    puts and a kill -9, the store did not open ("page 12: checksum mismatch"). Cause: a Ctrl-C
    at the call of the new header's write left memory on the new salt (WAL.reset's ``finally``)
    and the file on the old header: later frames were written under a salt recovery takes for
    the log's end; and one landing in the restart's ``finally`` left ``backfilled`` at the old
    log's count. Now the header is written and synced whole before the interrupt goes on, and
    the bookkeeping runs through (interrupts.run_through). Here each moment is hit on purpose,
    and a snapshot is open for the 30 puts after it (no restart writes a header meanwhile)."""
    path = str(tmp_path / "s.ps")
    r = subprocess.run([sys.executable, "-c", _CTRL_C_IN_LOG_RESTART, path, ROOT, where], capture_output=True,
                       text=True, timeout=120)
    assert r.stdout == "ACKED\n" and r.returncode == -9, r.stderr[-3000:]
    with pagestore.open(path) as db:
        assert [db.get(b"after%02d" % j) for j in range(30)] == [b"%d" % j for j in range(30)]
        db.check()


@pytest.mark.parametrize("where", ["commit", "rollback"])
def test_a_ctrl_c_at_a_transactions_edges_leaves_the_write_lock_free(tmp_path, monkeypatch, where):
    """The same SIGALRM storm over ``with db.transaction() as t: ...`` blocks. Found: an interrupt
    at the call of ``commit()`` or ``rollback()`` in the block's ``__exit__`` left the
    transaction open, holding the write lock: every later write of the thread raised
    ReentrantWriteError. Now the interrupt goes on, the lock is free, the transaction's writes
    are not committed, and the store takes writes at once."""
    from pagestore import store as store_mod

    path = str(tmp_path / "s.ps")
    db = pagestore.open(path, timeout=1)
    db[b"a"] = b"1"
    fired: list = []
    real = getattr(store_mod.Transaction, where)

    def cut(self):  # type: ignore[no-untyped-def]
        if not fired:
            fired.append(1)
            raise KeyboardInterrupt  # at the call, before its first line
        return real(self)

    monkeypatch.setattr(store_mod.Transaction, where, cut)
    try:
        with pytest.raises(KeyboardInterrupt):
            with db.transaction() as t:
                t[b"t"] = b"1"
                if where == "rollback":
                    raise ValueError("the block fails")
    except ValueError:
        pass
    assert fired
    db[b"b"] = b"2"  # at once: the lock is free, no transaction of this thread open
    with db.transaction() as t:
        t[b"c"] = b"3"
    assert b"t" not in db and db[b"b"] == b"2" and db[b"c"] == b"3"
    db.check()
    db.close()
