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
