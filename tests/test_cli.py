"""The pagestore command, run as a user runs it: ``python -m pagestore ...`` in a subprocess.

Every subcommand against a real store in tmp_path, and the one-line errors
(never a traceback). About 40 subprocesses; well under a minute.
"""
from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Dict, List

import pytest

import pagestore
from pagestore import inspect

PAGE_SIZE = 1024


def run(*args: str, input: bytes = b"", ok: bool = True) -> subprocess.CompletedProcess:
    """run runs ``python -m pagestore ARGS`` and checks its exit status (0 when ``ok``, else not 0)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pagestore", *args],
        input=input,
        capture_output=True,
        timeout=120,
    )
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    if ok:
        assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    else:
        assert proc.returncode != 0, proc.stdout.decode(errors="replace")
    return proc


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """one_error_line: stderr is exactly one 'pagestore: error: ...' line; returns it."""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pagestore: error: "), lines
    return lines[0]


@pytest.fixture
def records() -> Dict[bytes, bytes]:
    """Binary keys (0x00, 0xff, newlines, tabs), values from empty to several pages."""
    rng = random.Random(5)
    out = {b"": b"empty key", b"\x00": b"", b"\xff" * 3: b"\n\t\r", b"tab\tkey\n": rng.randbytes(3 * PAGE_SIZE)}
    while len(out) < 400:
        out[rng.randbytes(rng.randint(1, 24))] = rng.randbytes(rng.choice((0, 5, 50, 300, 1500)))
    return out


@pytest.fixture
def db(tmp_path, records) -> str:
    path = str(tmp_path / "data.ps")
    with pagestore.open(path, page_size=PAGE_SIZE) as store:
        with store.transaction() as txn:
            for k, v in records.items():
                txn[k] = v
        for k in list(records)[::7]:  # leave holes, free slots and maybe free pages
            del store[k]
            del records[k]
    return path


def test_bench_small_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("bench", "--records", "300", "--page-size", "1024", "--compare", "sqlite",
               "--json", str(out), "--no-progress")
    text = proc.stdout.decode()
    assert "insert" in text and "durable_puts" in text and "file / live bytes" in text
    assert "average fill" in text
    results = json.loads(out.read_text())
    assert results["meta"]["records"] == 300
    ps = results["engines"]["pagestore"]
    assert set(ps["phases"]) >= {"insert", "point_reads", "full_scan", "range_scans", "churn", "durable_puts"}
    assert ps["phases"]["insert"]["rate"] > 0
    assert "phases" in results["engines"]["sqlite"]


def test_bench_rejects_bad_page_size():
    proc = run("bench", "--records", "10", "--page-size", "1000", ok=False)
    assert proc.returncode == 2
    assert "--page-size" in proc.stderr.decode()


def test_stats(db, records):
    text = run("stats", db).stdout.decode()
    assert f"{len(records):,}" in text and "KiB" in text and "page types" in text
    st = json.loads(run("stats", db, "--json").stdout)
    assert st["records"] == len(records)
    assert st["live_bytes"] == sum(len(k) + len(v) for k, v in records.items())
    assert st["page_size"] == PAGE_SIZE


def test_check_sound(db, records):
    proc = run("check", db)
    assert "OK" in proc.stdout.decode() and f"{len(records):,} records" in proc.stdout.decode()
    assert json.loads(run("check", db, "--json").stdout)["ok"] is True


def _data_page(path: str) -> int:
    with inspect.open_pager(path) as pager:
        for info in inspect.page_infos(pager):
            if info.kind in ("heap", "leaf"):
                return info.pgno
    raise AssertionError("no data page")


def test_check_corrupt_names_the_page(db):
    pgno = _data_page(db)
    with open(db, "r+b") as f:  # the store is closed: flip bytes in the middle of the page
        f.seek(pgno * PAGE_SIZE + PAGE_SIZE // 2)
        b = f.read(8)
        f.seek(pgno * PAGE_SIZE + PAGE_SIZE // 2)
        f.write(bytes(x ^ 0xFF for x in b))
    proc = run("check", db, ok=False)
    line = one_error_line(proc)
    assert f"page {pgno}" in line
    assert f"page {pgno}:" in proc.stdout.decode()
    # inspect keeps going and lists the page; --page decodes it anyway
    text = run("inspect", db).stdout.decode()
    assert "FAIL verification" in text and f"page {pgno}:" in text
    page = json.loads(run("inspect", db, "--page", str(pgno), "--json").stdout)
    assert page["verified"] is False and page["fields"]["pgno"] == pgno


def test_damaged_header_is_one_line(db):
    with open(db, "r+b") as f:  # inside the checksummed part of page 0
        f.seek(40)
        f.write(b"\xff\xff\xff\xff")
    proc = run("check", db, ok=False)
    assert "page 0" in one_error_line(proc)
    for command in ("stats", "inspect", "dump"):
        line = one_error_line(run(command, db, ok=False))
        assert line.startswith(f"pagestore: error: {db}: corruption in page 0")


def test_inspect_summary_page_and_map(db, tmp_path, records):
    text = run("inspect", db).stdout.decode()
    for word in ("page types", "fill distribution", "free list", "log", "leaf", "heap"):
        assert word in text
    summary = json.loads(run("inspect", db, "--json").stdout)
    assert summary["header"]["record_count"] == len(records)
    assert sum(summary["page_types"].values()) == summary["page_count"] - 1
    assert summary["corrupt"] == []

    header = run("inspect", db, "--page", "0").stdout.decode()
    assert "file header" in header and "magic" in header and f"{PAGE_SIZE}" in header

    pgno = _data_page(db)
    text = run("inspect", db, "--page", str(pgno)).stdout.decode()
    assert "slot directory" in text and "offset" in text and "live" in text
    page = json.loads(run("inspect", db, "--page", str(pgno), "--json").stdout)
    assert page["verified"] and page["fields"]["nslots"] == len(page["slots"])
    live = [s for s in page["slots"] if s["state"] != "free"]
    assert len(live) == page["fields"]["nlive"] and all("preview" in s for s in live)

    svg = tmp_path / "map.svg"
    run("inspect", db, "--map", str(svg))
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) >= summary["page_count"]  # one per page, plus the legend

    proc = run("inspect", db, "--page", "999999", ok=False)
    assert "outside the file" in one_error_line(proc)


def test_dump_load_round_trip(db, tmp_path, records):
    dumped = run("dump", db).stdout
    lines = dumped.splitlines()
    assert len(lines) == len(records)
    got = [(base64.b64decode(o["k"]), base64.b64decode(o["v"])) for o in map(json.loads, lines)]
    assert got == sorted(records.items())  # key order, every record

    copy = str(tmp_path / "copy.ps")
    proc = run("load", copy, "--batch", "50", input=dumped)  # creates the store
    assert f"{len(records):,}" in proc.stderr.decode()
    with pagestore.open(copy, readonly=True) as store:
        assert list(store.items()) == sorted(records.items())
    assert run("dump", copy).stdout == dumped
    run("check", copy)


def test_load_bad_line_names_it(tmp_path):
    good = json.dumps({"k": base64.b64encode(b"a").decode(), "v": ""}).encode()
    proc = run("load", str(tmp_path / "x.ps"), input=good + b"\n{nonsense\n", ok=False)
    assert "line 2" in one_error_line(proc)


def test_compact(db, records):
    with pagestore.open(db) as store:
        for k in list(records)[: len(records) // 2]:
            del store[k]
            del records[k]
    before = os.path.getsize(db)
    proc = run("compact", db)
    assert "returned" in proc.stdout.decode()
    assert os.path.getsize(db) <= before
    run("check", db)
    with pagestore.open(db, readonly=True) as store:
        assert dict(store.items()) == records


def test_backup(db, records, tmp_path):
    dest = str(tmp_path / "copy.ps")
    proc = run("backup", db, dest)
    assert f"{len(records):,} records backed up" in proc.stdout.decode()
    run("check", dest)
    with pagestore.open(dest, readonly=True) as store:
        assert dict(store.items()) == records
    proc = run("backup", db, dest, ok=False)  # it exists
    assert "exists (--force replaces it)" in proc.stderr.decode()  # the CLI's option, not the library's argument
    run("backup", db, dest, "--force")
    proc = run("backup", db, db, "--force", ok=False)
    assert "store itself" in proc.stderr.decode()


def test_get_put_delete_scan(tmp_path):
    path = str(tmp_path / "kv.ps")
    run("put", path, "apple", "red")  # creates the store
    run("put", path, "apricot", "orange")
    run("put", path, "banana", "yellow")
    run("put", path, "héllo", "wörld")
    assert run("get", path, "apple").stdout == b"red\n"
    assert run("get", path, "héllo").stdout.decode() == "wörld\n"
    run("put", path, "--hex", "00ff", "0001fe")
    assert run("get", path, "--hex", "00ff").stdout == b"0001fe\n"
    assert run("get", path, "--base64", base64.b64encode(b"\x00\xff").decode()).stdout.strip() == \
        base64.b64encode(b"\x00\x01\xfe")
    assert run("get", path, "--raw", "--hex", "00ff").stdout == b"\x00\x01\xfe"
    run("put", path, "fromstdin", input=b"\x00binary\xff")
    assert run("get", path, "--raw", "fromstdin").stdout == b"\x00binary\xff"

    assert run("scan", path, "--prefix", "ap").stdout == b"apple\tred\napricot\torange\n"
    assert run("scan", path, "--start", "apricot", "--stop", "h", "--keys-only").stdout == b"apricot\nbanana\nfromstdin\n"
    assert run("scan", path, "--reverse", "--limit", "2", "--keys-only").stdout.decode() == "héllo\nfromstdin\n"
    first = run("scan", path, "--hex", "--limit", "1").stdout
    assert first == b"00ff\t0001fe\n"

    run("delete", path, "apple")
    proc = run("get", path, "apple", ok=False)
    assert one_error_line(proc) == "pagestore: error: key not found: 'apple'"
    proc = run("delete", path, "apple", ok=False)
    assert "key not found" in one_error_line(proc)
    proc = run("get", path, "--hex", "zz", ok=False)
    assert "not valid hex" in one_error_line(proc)


@pytest.mark.parametrize("command", [["stats"], ["check"], ["inspect"], ["dump"], ["get", "k"], ["scan"], ["compact"], ["delete", "k"]])
def test_missing_file(tmp_path, command):
    path = str(tmp_path / "nope.ps")
    proc = run(command[0], path, *command[1:], ok=False)
    assert one_error_line(proc) == f"pagestore: error: {path}: no such file"
    assert not os.path.exists(path)


@pytest.mark.parametrize("command", [["stats"], ["check"], ["inspect"], ["get", "k"], ["put", "k", "v"], ["load"]])
def test_not_a_store(tmp_path, command):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, certainly not a pagestore file\n" * 100)
    before = path.read_bytes()
    proc = run(command[0], str(path), *command[1:], ok=False)
    assert "not a pagestore file" in one_error_line(proc)
    assert path.read_bytes() == before  # untouched


def test_store_in_use(tmp_path):
    """A store another process has open for writing: reading commands read it beside the writer, and
    writing ones take turns with it (issue 26); compact refuses, saying why."""
    path = str(tmp_path / "inuse.ps")
    with pagestore.open(path) as store:
        store[b"k"] = b"v"
        assert run("get", path, "k").stdout == b"v\n"
        run("put", path, "k", "w")
        assert store[b"k"] == b"w"
        run("put", path, "gone", "x")
        run("delete", path, "gone")
        assert b"gone" not in store
        run("load", path, input=b'{"k": "YQ==", "v": "MQ=="}\n{"k": "Yg==", "v": "Mg=="}\n')
        assert store[b"a"] == b"1" and store[b"b"] == b"2"
        proc = run("compact", path, ok=False)
        assert "other processes have the store open" in one_error_line(proc)
        store.check()


def test_usage_errors_exit_2():
    proc = run("get", ok=False)
    assert proc.returncode == 2 and "Usage:" in proc.stderr.decode()
    proc = run("no-such-command", ok=False)
    assert proc.returncode == 2


def test_help_everywhere():
    commands: List[str] = ["bench", "stats", "check", "inspect", "dump", "load", "compact", "get", "put", "delete", "scan"]
    text = run("--help").stdout.decode()
    for name in commands:
        assert name in text
    for name in commands:
        assert "Usage: pagestore " + name in run(name, "--help").stdout.decode()


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    eps = entry_points()
    scripts = eps.select(group="console_scripts") if hasattr(eps, "select") else eps.get("console_scripts", [])
    assert any(ep.name == "pagestore" and ep.value == "pagestore.cli:main" for ep in scripts)


# ---- rough edges found by trying it (issue 15) ----


def _bench_fast(*args: str, ok: bool = False) -> subprocess.CompletedProcess:
    """_bench_fast: a bench that must be refused before it runs (the run itself takes seconds even at 200 records)."""
    import time

    t0 = time.monotonic()
    proc = run("bench", "--records", "200", "--no-progress", *args, ok=ok)
    assert "insert" not in proc.stdout.decode()  # refused before running, not after
    assert time.monotonic() - t0 < 30
    return proc


def test_bench_checks_its_options_before_running(tmp_path):
    line = one_error_line(_bench_fast("--compare", "bogus"))
    assert "bogus" in line and "sqlite" in line and "lmdb" in line  # lists the known engines
    line = one_error_line(_bench_fast("--json", str(tmp_path / "nowhere" / "x.json")))
    assert "does not exist" in line
    assert not os.path.exists(str(tmp_path / "nowhere"))


def test_bench_missing_engine_names_the_extra():
    from pagestore import bench

    missing = [name for name, why in bench.available_engines().items() if why is not None and name != "sqlite"]
    if not missing:
        pytest.skip("every engine is installed here")
    line = one_error_line(_bench_fast("--compare", missing[0]))
    assert missing[0] in line and "pagestore-kv[bench]" in line


@pytest.mark.parametrize("command", [["stats"], ["check"], ["inspect"], ["dump"], ["get", "k"], ["scan"],
                                     ["compact"], ["delete", "k"], ["put", "k", "v"], ["load"]])
def test_empty_file_is_not_a_store_for_every_command(tmp_path, command):
    path = tmp_path / "empty.ps"
    path.write_bytes(b"")
    proc = run(command[0], str(path), *command[1:], ok=False)
    assert "not a pagestore file" in one_error_line(proc)
    assert path.read_bytes() == b""  # still empty: not made a store
    assert os.listdir(str(tmp_path)) == ["empty.ps"]


def test_failed_commands_leave_no_new_file(tmp_path):
    path = str(tmp_path / "new.ps")
    proc = run("load", path, input=b"{nonsense\n", ok=False)
    assert "line 1" in one_error_line(proc)
    proc = run("put", path, "k" * 5000, "v", ok=False)  # key over the maximum
    assert "exceeds" in one_error_line(proc)
    assert os.listdir(str(tmp_path)) == []
    # a load that committed batches before its bad line keeps them (documented)
    good = b"".join(json.dumps({"k": base64.b64encode(b"%d" % i).decode(), "v": ""}).encode() + b"\n" for i in range(5))
    run("load", path, "--batch", "2", input=good + b"{nonsense\n", ok=False)
    with pagestore.open(path, readonly=True) as store:
        assert len(store) == 4


def test_missing_directory_is_named(tmp_path):
    path = str(tmp_path / "nowhere" / "db.ps")
    line = one_error_line(run("put", path, "k", "v", ok=False))
    assert "does not exist" in line and "nowhere" in line


@pytest.fixture
def big_db(tmp_path) -> str:
    """A store whose dump and scan are far larger than a pipe's buffer (64 KiB)."""
    path = str(tmp_path / "big.ps")
    with pagestore.open(path) as store:
        with store.transaction() as txn:
            for i in range(3000):
                txn[b"key%06d" % i] = b"v" * 200
    return path


@pytest.mark.parametrize("command", [["dump"], ["scan"], ["scan", "--hex"], ["inspect", "--map", "-"]])
def test_closed_pipe_is_a_normal_end(big_db, command):
    proc = subprocess.Popen([sys.executable, "-m", "pagestore", command[0], big_db, *command[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert first and err == ""  # no traceback, no "Exception ignored"


def test_put_without_value_on_a_terminal_refuses(tmp_path):
    import pty

    path = str(tmp_path / "db.ps")
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "pagestore", "put", path, "k"], stdin=slave,
                              capture_output=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1
    assert "give VALUE or pipe it on stdin" in one_error_line(proc)
    assert not os.path.exists(path)


def test_inspect_map_to_stdout_and_damage_drawn_clearly(db, tmp_path):
    pgno = _data_page(db)
    with open(db, "r+b") as f:
        f.seek(pgno * PAGE_SIZE + PAGE_SIZE // 2)
        f.write(b"\xde\xad\xbe\xef")
    proc = subprocess.run([sys.executable, "-m", "pagestore", "inspect", db, "--map", "-"],
                          capture_output=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(str(tmp_path / "-"))
    root = ET.fromstring(proc.stdout)
    ns = "{http://www.w3.org/2000/svg}"
    cells = [r for r in root.iter(ns + "rect") if (r.findtext(ns + "title") or "").startswith(f"page {pgno}:")]
    assert len(cells) == 1
    cell = cells[0]
    assert "corrupt" in cell.findtext(ns + "title")
    assert cell.get("fill-opacity") in (None, "1")  # solid, not shaded by fill
    assert cell.get("stroke")  # outlined
    assert root.find(f".//{ns}pattern[@id='corrupt']") is not None  # hatched
    legend = [t.text for t in root.iter(ns + "text") if t.text and t.text.startswith("corrupt")]
    assert legend and "fails verification" in legend[0]


def test_dump_salvage_skips_damaged_pages(tmp_path):
    path = str(tmp_path / "dmg.ps")
    records = {b"k%05d" % i: (b"%d" % i) * 20 for i in range(2000)}
    with pagestore.open(path, page_size=PAGE_SIZE) as store:
        with store.transaction() as txn:
            for k, v in records.items():
                txn[k] = v
    kinds = _page_kinds(path)  # records went in in key order: the last heap page's keys are in a later leaf
    heap = max(p for p, kind in kinds if kind == "heap")
    leaf = min(p for p, kind in kinds if kind == "leaf")
    with open(path, "r+b") as f:
        for pgno in (heap, leaf):
            f.seek(pgno * PAGE_SIZE + PAGE_SIZE // 2)
            f.write(b"\xde\xad\xbe\xef")
    proc = run("dump", path, ok=False)
    assert proc.returncode == 1 and "corruption in page" in one_error_line(proc)

    proc = run("dump", path, "--salvage", ok=False)
    assert proc.returncode == 3
    err = proc.stderr.decode()
    assert f"{min(heap, leaf)}, {max(heap, leaf)}" in err and "skipped 2 damaged pages" in err
    got = [(base64.b64decode(o["k"]), base64.b64decode(o["v"])) for o in map(json.loads, proc.stdout.splitlines())]
    assert got == sorted(got)
    assert 0 < len(got) < len(records)
    assert all(records[k] == v for k, v in got)  # what it saved is exact
    # sound store: the same as a plain dump, exit 0
    clean = str(tmp_path / "clean.ps")
    run("load", clean, input=proc.stdout)
    assert run("dump", clean, "--salvage").stdout == run("dump", clean).stdout


def _page_kinds(path: str) -> List[tuple]:
    with inspect.open_pager(path) as pager:
        return [(info.pgno, info.kind) for info in inspect.page_infos(pager)]


# ---- rough edges a new user met (issue 25) ----


def test_check_of_a_corrupt_store_fails_even_into_a_closed_pipe(tmp_path):
    """`pagestore check BAD | head -1` exited 0: the closed-pipe rule hid the failed check."""
    path = str(tmp_path / "bad.ps")
    with pagestore.open(path, page_size=PAGE_SIZE) as db:
        db.update((b"k%05d" % i, b"v" * 100) for i in range(2000))
    os.truncate(path, 4 * PAGE_SIZE)
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line
    try:
        proc = subprocess.run([sys.executable, "-m", "pagestore", "check", path], stdout=w,
                              stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(w)
    assert proc.returncode == 1, proc.stderr
    assert b"check failed" in proc.stderr and b"Traceback" not in proc.stderr
    assert b"Exception ignored" not in proc.stderr


def test_cli_errors_name_no_python_arguments(tmp_path):
    empty = str(tmp_path / "empty.ps")
    open(empty, "wb").close()
    for args in (("put", empty, "k", "v"), ("get", empty, "k"), ("get", str(tmp_path / "none.ps"), "k")):
        line = one_error_line(run(*args, ok=False))
        assert "create=True" not in line and "=True" not in line, line


def test_bench_refuses_zero_records():
    proc = run("bench", "-n", "0", ok=False)
    assert proc.returncode == 2 and b"--records" in proc.stderr and b"0 is not in the range" in proc.stderr


def _as_nobody() -> List[str]:
    """_as_nobody: the command prefix that runs a child without the right to write a read-only
    directory: none for an ordinary user, setpriv to user nobody for root."""
    if os.geteuid() != 0:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only directory is writable")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # A clone made under `mktemp -d` (mode 0700, root's) is out of nobody's reach: the child
    # would fail on "No module named pagestore", not on the directory this test is about.
    probe = subprocess.run(prefix + [sys.executable, "-c", "import pagestore"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("user nobody cannot import pagestore from this checkout (its directory is private): "
                    + probe.stderr.decode(errors="replace").strip()[-120:])
    return prefix


def test_put_in_a_read_only_directory_names_the_directory(tmp_path):
    import shutil
    import tempfile

    prefix = _as_nobody()
    base = tempfile.mkdtemp()  # not under tmp_path, whose parent only its owner may enter
    try:
        os.chmod(base, 0o755)
        rodir = os.path.join(base, "rodir")
        os.mkdir(rodir)
        path = os.path.join(rodir, "ref.ps")
        with pagestore.open(path) as db:
            db[b"k"] = b"v"
        os.chmod(path, 0o666)  # the file is writable: only the directory is not
        os.chmod(rodir, 0o555)
        proc = subprocess.run(prefix + [sys.executable, "-m", "pagestore", "put", path, "k", "w"],
                              capture_output=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        line = proc.stderr.decode().strip()
        assert line.startswith(f"pagestore: error: {rodir}: permission denied"), line
        assert "directory is not writable" in line and "ref.ps-wal" in line
        assert sorted(os.listdir(rodir)) == ["ref.ps"]
    finally:
        os.chmod(os.path.join(base, "rodir"), 0o755)
        shutil.rmtree(base)


def test_help_and_version_into_a_closed_pipe_exit_0(tmp_path):
    """`pagestore --help | true` exited 1 with nothing said (click's own EPIPE handling: the
    group's options print before any command runs), while every command exits 0 into a closed
    pipe. Now 0, quietly, as the commands' `--help` does."""
    for args in (["--help"], ["--version"], ["check", "--help"]):
        r, w = os.pipe()
        os.close(r)  # the reader is gone before the first line
        try:
            proc = subprocess.run([sys.executable, "-m", "pagestore", *args], stdout=w,
                                  stderr=subprocess.PIPE, timeout=120)
        finally:
            os.close(w)
        assert proc.returncode == 0, (args, proc.returncode, proc.stderr)
        assert proc.stderr == b"", (args, proc.stderr)
