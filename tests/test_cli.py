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
    proc = run("bench", "--records", "300", "--page-size", "1024", "--compare", "sqlite,nosuch",
               "--json", str(out), "--no-progress")
    text = proc.stdout.decode()
    assert "insert" in text and "durable_puts" in text and "file / live bytes" in text
    assert "average fill" in text
    assert "skipped nosuch" in text  # a missing engine is a one-line note, not a failure
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


def test_locked_store(tmp_path):
    path = str(tmp_path / "locked.ps")
    with pagestore.open(path) as store:
        store[b"k"] = b"v"
        proc = run("get", path, "k", ok=False)
        assert "another process" in one_error_line(proc)
        proc = run("put", path, "k", "w", ok=False)
        assert "another process" in one_error_line(proc)


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
