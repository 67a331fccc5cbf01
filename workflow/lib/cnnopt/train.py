"""Train one run of the study with ``model.fit`` and Keras callbacks.

The run's spec (see :func:`cnnopt.config.run_spec`) says everything: model, optimizer,
schedule, epochs, batch size, seed. Call :func:`cnnopt.runtime.configure` first.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from . import data, io, models, optimizers, runtime, splits

log = logging.getLogger("cnnopt.train")

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                   "seconds", "elapsed"]


class EpochShuffled(keras.utils.PyDataset):
    """Mini-batches of in-memory arrays, reshuffled each epoch from ``(seed, epoch)``.

    The order of epoch *k* depends on the seed and *k* only, so the batches a run sees do not
    depend on what happened before: the same run gives the same batches every time.
    """

    def __init__(self, x, y, batch_size: int, seed: int, epoch: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        idx.sort()
        return self.x[idx], self.y[idx]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


class EpochRecorder(keras.callbacks.Callback):
    """Adds learning rate and wall seconds to each epoch's logs and logs one progress line."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.rows: list[dict] = []
        self.elapsed = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = time.perf_counter() - self.started
        self.elapsed += seconds
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
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


def convergence_epoch(val_accuracy: pd.Series, tolerance_points: float) -> int | None:
    """First epoch whose validation accuracy is within ``tolerance_points`` of the best."""
    values = val_accuracy.dropna()
    if values.empty:
        return None
    best = values.max()
    return int(values.index[values >= best - tolerance_points / 100][0]) + 1


def train(spec: dict, arrays: Path, outputs: dict) -> dict:
    """Train the run ``spec`` on the cached arrays; write ``outputs``; return the metrics.

    ``outputs`` maps "model", "history", "metrics" and "spec" to file paths. Each file is
    written atomically once training has finished.
    """
    keras.utils.set_random_seed(spec["seed"])
    if spec.get("deterministic") and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    ds = data.load(arrays)
    class_names = list(ds["class_names"])
    sets = splits.select(ds, spec)
    x_train, y_train = sets["x_train"], sets["y_train"]
    validation = (sets["x_val"], sets["y_val"])
    log.info("%d training, %d validation (%s), %d test images", len(x_train),
             len(validation[1]), "held out" if spec["validation_size"] else "the test set",
             len(sets["y_test"]))

    batches = EpochShuffled(x_train, y_train, spec["batch_size"], spec["seed"])
    model = models.build(spec["model"], num_classes=len(class_names))
    model.compile(
        optimizer=optimizers.build(spec["optimizer_config"], spec["schedule"], len(batches)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    log.info("run %s: %s, %d parameters, %d training images, backend %s on %s",
             spec["run_id"], model.name, model.count_params(), len(x_train),
             keras.backend.backend(), runtime.device())

    recorder = EpochRecorder(spec["epochs"])
    model.fit(batches, epochs=spec["epochs"], validation_data=validation,
              validation_batch_size=max(spec["batch_size"], 256), verbose=0,
              callbacks=[recorder, keras.callbacks.TerminateOnNaN()])
    history = recorder.frame()

    diverged_epoch = None
    bad = ~np.isfinite(history["loss"].to_numpy(dtype=float))
    if bad.any():
        diverged_epoch = int(history["epoch"][bad].iloc[0])
        log.warning("run %s diverged at epoch %d (loss is not finite)", spec["run_id"], diverged_epoch)
    test_loss, test_accuracy = model.evaluate(sets["x_test"], sets["y_test"], batch_size=256, verbose=0)
    train_seconds = float(history["seconds"].sum())
    metrics = {
        "run_id": spec["run_id"], "optimizer": spec["optimizer"], "variant": spec["variant"],
        "seed": spec["seed"], "role": spec["role"],
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "train_seconds": train_seconds,
        "images_per_second": len(x_train) * len(history) / train_seconds if train_seconds else None,
        "epochs": spec["epochs"], "epochs_run": int(len(history)),
        "convergence_epoch": convergence_epoch(history["val_accuracy"], spec["patience"]),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "params": int(model.count_params()),
        "backend": keras.backend.backend(), "device": runtime.device(),
        "versions": runtime.versions(),
        "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch,
    }
    log.info("run %s: test accuracy %.2f %%, %.1f s of training, %.0f images/s",
             spec["run_id"], 100 * test_accuracy, train_seconds, metrics["images_per_second"] or 0)

    with io.atomic_path(outputs["model"]) as tmp:
        model.save(tmp)
    io.write_csv(outputs["history"], history)
    io.write_json(outputs["spec"], spec)
    io.write_json(outputs["metrics"], metrics)
    return metrics
