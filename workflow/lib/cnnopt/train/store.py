"""The outputs of a finished training, kept so that a retry of its job need not train again.

A job can be stopped after its training has written everything and before Snakemake has
seen it end (a time limit that lands then, as SLURM's does). :class:`FinishedOutputs` keeps
hard links to the written outputs in the resume folder; the retry restores them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cnnopt.common import files


class FinishedOutputs:
    """The outputs of a finished training of the settings ``fingerprint``, in
    ``folder/finished`` (see :func:`cnnopt.train.checkpoint.fingerprint`)."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.fingerprint = Path(folder), fingerprint

    @property
    def path(self) -> Path:
        return self.folder / "finished"

    def record(self, outputs: dict) -> None:
        """Keep the written ``outputs`` (hard links, else copies), all or none of them."""
        tmp = self.folder / "finished.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, path in outputs.items():
            _link_or_copy(Path(path), tmp / name)
        files.write_json(tmp / "state.json", {"fingerprint": self.fingerprint})
        shutil.rmtree(self.path, ignore_errors=True)
        tmp.rename(self.path)

    def restore(self, outputs: dict) -> dict | None:
        """Put the kept outputs back; return their metrics (None: nothing of these settings kept)."""
        state = self.path / "state.json"
        if not state.exists() or files.read_json(state).get("fingerprint") != self.fingerprint:
            return None
        for name, path in outputs.items():
            with files.atomic_path(path) as tmp:
                tmp.unlink()
                _link_or_copy(self.path / name, tmp)
        return files.read_json(outputs["metrics"])

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)
