"""A run whose training equals another's (cnnopt.config.grid.shared_runs) is trained once: its
folder is a copy of the trained run's, under its own name. So is a tuned run on the seed of its
search's candidates: the winner's search run at the final budget is that training (the keys a
search keeps for its own bookkeeping, ``SEARCH_KEYS``, may differ).

The model and history are copied byte for byte; run.json is the run's own spec and
metrics.json the trained run's metrics with the run's own names, both with ``shared_with``
naming the run that trained it. Its TensorBoard event files are written anew from the copied
history (:mod:`cnnopt.train.tensorboard`): the same curves, under its own run id and with its
own spec (a byte copy would show the trained run's spec and HParams under this run's name).
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError
from cnnopt.common.registry import IDENTITY_KEYS, SEARCH_KEYS
from cnnopt.train.tensorboard import EventFiles

log = logging.getLogger(__name__)


def share(source: dict[str, Path], spec: dict, outputs: dict[str, Path],
          tensorboard: Path | None = None) -> None:
    """Write the run ``spec`` from the trained run's files ``source`` (keys model, history,
    metrics, spec; best_model where the rule has it) to ``outputs`` (the same keys), and its
    event files to the folder ``tensorboard``, if given."""
    trained = files.read_json(source["spec"])
    names = {k: spec[k] for k in IDENTITY_KEYS if k in spec}
    mismatch = sorted(k for k in set(trained) | set(spec)
                      if k not in IDENTITY_KEYS + SEARCH_KEYS and trained.get(k) != spec.get(k))
    if mismatch:
        raise CnnoptError(f"run {spec['run_id']} cannot share {trained.get('run_id')}'s training: "
                          f"they differ in {', '.join(mismatch)}")
    for name in ("model", "best_model", "history"):
        if name not in outputs:
            continue
        with files.atomic_path(outputs[name]) as tmp:
            shutil.copyfile(source[name], tmp)
    metrics = files.read_json(source["metrics"])
    files.write_json(outputs["metrics"], metrics | {k: v for k, v in names.items() if k in metrics}
                  | {"shared_with": trained["run_id"]})
    files.write_json(outputs["spec"], spec | {"shared_with": trained["run_id"]})
    if tensorboard is not None:
        with open(outputs["history"], encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        EventFiles(tensorboard, spec | {"shared_with": trained["run_id"]}).start(
            [{k: float(v) if v else None for k, v in row.items()} for row in rows])
    log.info("run %s shares the training of %s (identical spec): copied, not trained",
             spec["run_id"], trained["run_id"])
