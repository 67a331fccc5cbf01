"""Where and from what code a result was made: cnnopt's version and git commit, host,
platform and time.

The report's reproducibility appendix and the benchmarks both record this; both call
``collect_provenance``. The code is the cnnopt package that runs: an installed copy is named
by its version (a release tag), an editable install from a clone by its commit too.
"""

from __future__ import annotations

import datetime as _dt
import platform
import socket
import subprocess
from pathlib import Path

from cnnopt import __version__

#: The folder of the cnnopt package that runs (this module lives in cnnopt/common/).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
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


def code_commit() -> str | None:
    """The commit of the cnnopt code that runs, when the package is a git checkout's tracked
    files (an editable install from a clone); None for an installed copy, even one whose
    site-packages lies inside some other checkout."""
    if _git(PACKAGE_DIR, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    return git_commit(PACKAGE_DIR)


def collect_provenance(workdir=None, snakemake_version: str | None = None) -> dict:
    """cnnopt's version, the commit, host, platform and time (keys ``version``, ``commit``,
    ``hostname``, ``platform``, ``generated``, ``snakemake_version``). ``commit`` is that of
    ``workdir`` when given (a benchmark's checkout), else of the cnnopt code that runs
    (:func:`code_commit`); None outside a git checkout."""
    return {"version": __version__,
            "commit": git_commit(workdir) if workdir is not None else code_commit(),
            "hostname": socket.gethostname(), "platform": platform.platform(),
            "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "snakemake_version": snakemake_version}
