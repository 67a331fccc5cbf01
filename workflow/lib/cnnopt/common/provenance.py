"""Where and from what code a result was made: git commit, host, platform and time.

The report's reproducibility appendix and the benchmarks both record this; both call
``collect_provenance``.
"""

from __future__ import annotations

import datetime as _dt
import platform
import socket
import subprocess

DIRTY = " (with uncommitted changes)"


def _git(workdir, *args) -> str | None:
    """The stripped output of ``git args`` in ``workdir``, or None when git fails."""
    try:
        res = subprocess.run(["git", *args], cwd=str(workdir), capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit(workdir=".") -> str | None:
    """The checked-out commit of ``workdir``, with ``DIRTY`` appended when tracked files
    differ from it; None outside a git checkout."""
    commit = _git(workdir, "rev-parse", "HEAD")
    if not commit:
        return None
    if _git(workdir, "status", "--porcelain", "--untracked-files=no"):
        commit += DIRTY
    return commit


def collect_provenance(workdir=".", snakemake_version: str | None = None) -> dict:
    """Commit, host, platform and time (keys ``commit``, ``hostname``, ``platform``,
    ``generated``, ``snakemake_version``); ``commit`` is None outside a git checkout."""
    return {"commit": git_commit(workdir), "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "snakemake_version": snakemake_version}
