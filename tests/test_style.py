"""The code's own checks: ruff (pyproject.toml) on the Python, snakefmt on the rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, text=True, timeout=300,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_ruff_finds_nothing():
    proc = _run("ruff", "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_rules_are_formatted_by_snakefmt():
    proc = _run("snakefmt", "--check", "Snakefile", "workflow/Snakefile", "workflow/rules")
    assert proc.returncode == 0, proc.stdout[-4000:]
