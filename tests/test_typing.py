"""The package's annotations, checked: it ships py.typed, so they are API.

Runs ``mypy --strict pagestore`` (as .ci/run does) and fails on any error in
any module of the package.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_strict_clean(tmp_path):
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "pagestore"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error" in line]
    assert not errors, "\n".join(errors)
    # mypy ran to its summary (a bad config or a crash would pass the check above)
    assert proc.stdout.startswith("Success: no issues") and proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_clean_without_optional_engines(tmp_path):
    """The README's test set-up installs the test extra only, without lmdb, plyvel or
    rocksdict (the bench extra): mypy then sees each of them as Any. Stand in for that
    with stubs that make every name of those modules Any, whatever this environment has."""
    pytest.importorskip("mypy")
    stubs = tmp_path / "stubs"
    for name in ("lmdb", "plyvel", "rocksdict"):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.pyi").write_text(
            "from typing import Any\ndef __getattr__(name: str) -> Any: ...\n")
    env = dict(os.environ, MYPYPATH=str(stubs))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "pagestore"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error" in line]
    assert not errors, "\n".join(errors)
    assert proc.stdout.startswith("Success: no issues") and proc.returncode == 0, proc.stdout + proc.stderr
