"""The Keras callbacks of a training: its history, divergence and best epoch.

:class:`EpochRecorder` writes the history, :class:`StopOnDivergence` stops a run whose loss
blows up, :class:`BestWeights` keeps the weights of the best validation epoch,
:class:`EpochLogs` hands each epoch to the TensorBoard event files and the MLflow run. A resumed run
continues each from the checkpoint (see :mod:`cnnopt.train.checkpoint`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path

import keras
import pandas as pd

from cnnopt.common import files

log = logging.getLogger("cnnopt.train.callbacks")

#: A mean training loss above this (cross-entropy of 10 classes starts near 2.3) is divergence.
DIVERGED_LOSS = 1e4

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                   "seconds", "elapsed"]


class EpochRecorder(keras.callbacks.Callback):
    """Adds learning rate and wall seconds to each epoch's logs and logs one progress line."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.resume([])

    def resume(self, rows: list[dict]) -> None:
        """Continue after the epochs in ``rows`` (a checkpoint's history)."""
        self.rows = list(rows)
        self.elapsed = self.rows[-1]["elapsed"] if self.rows else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        # the rate this epoch starts with (read at its end, a schedule gives the next epoch's)
        self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = time.perf_counter() - self.started
        self.elapsed += seconds
        lr = self.learning_rate
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
               "learning_rate": lr, "seconds": seconds, "elapsed": self.elapsed}
        self.rows.append(row)
        log.info(
            "epoch %d/%d  loss %.4f  accuracy %.4f  val_loss %.4f  val_accuracy %.4f  lr %.3g  %.1fs",
            epoch + 1, self.epochs, row.get("loss", math.nan), row.get("accuracy", math.nan),
            row.get("val_loss", math.nan), row.get("val_accuracy", math.nan), lr, seconds,
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows).reindex(columns=HISTORY_COLUMNS)


class StopOnDivergence(keras.callbacks.Callback):
    """Stops training once the loss is not finite or beyond ``limit``: the run diverged.

    Keras' ``TerminateOnNaN`` only sees NaN and inf; a clipped cross-entropy can blow up to
    huge finite values instead (SGD with learning rate 10 does), which is divergence too.
    """

    def __init__(self, limit: float = DIVERGED_LOSS):
        super().__init__()
        self.limit = limit
        self.epoch: int | None = None
        self.current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if divergent(float((logs or {}).get("loss", 0.0)), self.limit):
            self.epoch = self.current
            self.model.stop_training = True


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the highest validation accuracy (the paper's "final
    accuracy" is the highest one reached) in ``folder``, one file named by its epoch.

    With ``select`` false (the validation set is the test set, as in the tutorial's protocol)
    nothing is chosen: choosing an epoch on the test set would score it twice. A ``Checkpoint``
    records ``epoch``, ``best`` and ``path`` in its state, and a resumed run continues from them.
    """

    def __init__(self, folder: Path, select: bool = True):
        super().__init__()
        self.folder, self.select = Path(folder), select
        self.best, self.epoch = -math.inf, None

    @property
    def path(self) -> Path | None:
        return None if self.epoch is None else self.folder / f"best-epoch-{self.epoch:04d}.weights.h5"

    def resume(self, state: dict) -> None:
        self.epoch, self.best = state.get("best_epoch"), state.get("best_val_accuracy", -math.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get("val_accuracy", math.nan))
        if not self.select or not math.isfinite(value) or value <= self.best:
            return
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        self.best, self.epoch = value, epoch + 1
        with files.atomic_path(self.path) as tmp:
            self.model.save_weights(tmp)

    def clean(self) -> None:
        """Remove every best-epoch file but the current one."""
        for old in self.folder.glob("best-epoch-*.weights.h5"):
            if old != self.path:
                old.unlink()


class EpochLogs(keras.callbacks.Callback):
    """Hands each epoch's history row, as ``recorder`` (an :class:`EpochRecorder`, earlier in
    the callback list) records it, to each of ``sinks`` (``log_epochs([row])``): the event
    files of :mod:`cnnopt.train.tensorboard`, the MLflow run of :mod:`cnnopt.common.tracking`.

    Put it after the checkpoint callback: an epoch reaches the sinks once it is saved, so a
    run resumed from the checkpoint and a sink that logs only epochs after its last (MLflow)
    agree.
    """

    def __init__(self, recorder, sinks: Iterable):
        super().__init__()
        self.recorder, self.sinks = recorder, list(sinks)

    def on_epoch_end(self, epoch, logs=None):
        row = self.recorder.rows[-1] if self.recorder.rows else None
        if row is None or int(row["epoch"]) != epoch + 1:
            return
        for sink in self.sinks:
            sink.log_epochs([row])


def diverged(rows: list[dict]) -> int | None:
    """The epoch at which a (restored) history diverged, if it did."""
    for row in rows:
        if divergent(row.get("loss", math.nan)):
            return int(row["epoch"])
    return None


def divergent(loss: float, limit: float = DIVERGED_LOSS) -> bool:
    return not math.isfinite(loss) or loss > limit
