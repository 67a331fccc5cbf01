"""TensorBoard event files of a training, so that ``tensorboard --logdir results/tensorboard``
compares every run of the study.

Each run's folder (``results/tensorboard/<run id>/``) holds one event file: per epoch (step =
the epoch number, 1-based like history.csv's ``epoch`` column) the scalars ``loss``,
``accuracy``, ``val_loss``, ``val_accuracy`` and ``learning_rate``, and once (step 0) the
resolved spec, as text (tab "Text") and as HParams (tab "HParams": the study's runs side by
side). :class:`EventFiles` writes them; each start of a training (fresh, resumed from a
checkpoint, or restored from a finished attempt) replaces the folder's events with the history
recorded so far, so whatever a kill left behind, the files hold each epoch exactly once.

Only the ``tensorboard`` package is used, never TensorFlow: the JAX and PyTorch backends write
the same files. (tensorboard's own ``EventFileWriter`` would import TensorFlow where it is
installed, through ``tf.io.gfile``; the records are written here with its ``RecordWriter`` to
a plain file instead.) The event files are not rule outputs: nothing depends on them.

:class:`cnnopt.train.callbacks.EpochLogs` is the Keras callback that hands each finished
epoch's history row to the event files (and to an MLflow run of :mod:`cnnopt.common.tracking`,
which takes the same calls). This module does not import Keras: rule ``share_run`` writes a
shared run's event files without starting a framework.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.record_writer import RecordWriter

from cnnopt.common.tracking import flat

log = logging.getLogger("cnnopt.train.tensorboard")

#: The history columns written as scalars, under the same names.
SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
EVENTS = "events.out.tfevents."  # TensorBoard reads the files whose names contain "tfevents"


class EventFiles:
    """The event files of the run ``spec`` in ``folder``."""

    def __init__(self, folder: str | os.PathLike, spec: Mapping):
        self.folder, self.spec = Path(folder), dict(spec)
        self.path: Path | None = None

    def start(self, rows: Iterable[Mapping]) -> None:
        """Replace the folder's events with the spec and the history ``rows`` recorded so far.

        The new file is written whole under a name TensorBoard does not read, then the old
        event files are removed and it is renamed: a kill at any point leaves one complete
        set of events, and the next start writes them again from its history.
        """
        rows = list(rows)
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"{EVENTS}{int(now):010d}.{socket.gethostname()}.{os.getpid()}.cnnopt"
        partial = self.folder / ".cnnopt-events.part"  # not read: no "tfevents" in its name
        last = float(rows[-1].get("elapsed", 0.0)) if rows else 0.0
        events = [event_pb2.Event(wall_time=now, file_version="brain.Event:2"),
                  *self._spec_events(now - last)]
        for row in rows:  # wall times as the training went (its elapsed seconds), ending now
            events += self._epoch_events(row, now - (last - float(row.get("elapsed", last))))
        _write(partial, events, mode="wb")
        for old in self.folder.glob(f"{EVENTS}*"):
            old.unlink()
        self.path = partial.replace(self.folder / name)

    def log_epochs(self, rows: Iterable[Mapping]) -> None:
        """Append the scalars of the finished epochs ``rows`` (after :meth:`start`)."""
        if self.path is None:
            self.start([])
        events = [e for row in rows for e in self._epoch_events(row, time.time())]
        _write(self.path, events, mode="ab")

    def end(self, status: str = "FINISHED", summary: Mapping | None = None) -> None:
        """Nothing to close: every event is on disk when its call returns."""

    def _epoch_events(self, row: Mapping, wall_time: float) -> list:
        values = [summary_pb2.Summary.Value(tag=key, simple_value=float(row[key]))
                  for key in SCALARS if row.get(key) is not None]
        return [event_pb2.Event(wall_time=wall_time, step=int(row["epoch"]),
                                summary=summary_pb2.Summary(value=values))]

    def _spec_events(self, wall_time: float) -> list:
        text = "\n".join("    " + line for line in json.dumps(self.spec, indent=2,
                                                             sort_keys=True).splitlines())
        run_id = str(self.spec.get("run_id", self.folder.name))
        summaries = [text_pb("spec", f"Run `{run_id}`, its resolved spec:\n\n{text}"),
                     hparams_pb(flat(self.spec), trial_id=run_id, start_time_secs=int(wall_time))]
        return [event_pb2.Event(wall_time=wall_time, step=0, summary=s) for s in summaries]


def _write(path: Path, events: list, mode: str) -> None:
    with open(path, mode) as fh:
        writer = RecordWriter(fh)
        for event in events:
            writer.write(event.SerializeToString())
        fh.flush()
