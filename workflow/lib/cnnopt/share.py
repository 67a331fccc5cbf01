"""A run whose training equals another's (cnnopt.config.shared_runs) is trained once: its
folder is a copy of the trained run's, under its own name.

The model and history are copied byte for byte; run.json is the run's own spec and
metrics.json the trained run's metrics with the run's own names, both with ``shared_with``
naming the run that trained it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from . import io
from .config import IDENTITY_KEYS
from .errors import CnnoptError

log = logging.getLogger(__name__)


def share(source: dict[str, Path], spec: dict, outputs: dict[str, Path]) -> None:
    """Write the run ``spec`` from the trained run's files ``source`` (keys model, history,
    metrics, spec; best_model where the rule has it) to ``outputs`` (the same keys)."""
    trained = io.read_json(source["spec"])
    names = {k: spec[k] for k in IDENTITY_KEYS if k in spec}
    mismatch = sorted(k for k in set(trained) | set(spec)
                      if k not in IDENTITY_KEYS and trained.get(k) != spec.get(k))
    if mismatch:
        raise CnnoptError(f"run {spec['run_id']} cannot share {trained.get('run_id')}'s training: "
                          f"they differ in {', '.join(mismatch)}")
    for name in ("model", "best_model", "history"):
        if name not in outputs:
            continue
        with io.atomic_path(outputs[name]) as tmp:
            shutil.copyfile(source[name], tmp)
    metrics = io.read_json(source["metrics"])
    io.write_json(outputs["metrics"], metrics | {k: v for k, v in names.items() if k in metrics}
                  | {"shared_with": trained["run_id"]})
    io.write_json(outputs["spec"], spec | {"shared_with": trained["run_id"]})
    log.info("run %s shares the training of %s (identical spec): copied, not trained",
             spec["run_id"], trained["run_id"])
