"""Train one run of the study with ``model.fit`` and Keras callbacks.

The run's spec (see :func:`cnnopt.config.run_spec`) says everything: model, optimizer,
schedule, epochs, batch size, seed. Call :func:`cnnopt.runtime.configure` first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from . import data, io, models, optimizers, runtime, splits
from .errors import Interrupted

log = logging.getLogger("cnnopt.train")

#: A mean training loss above this (cross-entropy of 10 classes starts near 2.3) is divergence.
DIVERGED_LOSS = 1e4

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                   "seconds", "elapsed"]


class EpochShuffled(keras.utils.PyDataset):
    """Mini-batches of in-memory arrays for epochs ``start`` to ``epochs``, one long sequence.

    Batch *i* of the sequence is step ``i % steps`` of epoch ``start + i // steps``, and each
    epoch's order is a permutation drawn from ``(seed, epoch)`` alone. So the batches of an
    epoch never depend on what ran before: a run resumed at epoch *k* sees exactly the batches
    an uninterrupted run saw from epoch *k* on. Fit it with ``steps_per_epoch=steps`` and
    ``shuffle=False``. ``skip`` leaves out the first batches of epoch ``start`` (those a run
    interrupted mid-epoch has already trained on).
    """

    def __init__(self, x, y, batch_size: int, seed: int, epochs: int, start: int = 0,
                 skip: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epochs, self.start, self.skip = epochs, start, skip
        self.steps = math.ceil(len(x) / batch_size)
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.x))}
        return self._orders[epoch]

    def __len__(self) -> int:
        return self.steps * (self.epochs - self.start) - self.skip

    def __getitem__(self, index: int):
        epoch, step = divmod(self.start * self.steps + self.skip + index, self.steps)
        idx = np.sort(self.order(epoch)[step * self.batch_size:(step + 1) * self.batch_size])
        return self.x[idx], self.y[idx]


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
        if _divergent(float((logs or {}).get("loss", 0.0)), self.limit):
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
        with io.atomic_path(self.path) as tmp:
            self.model.save_weights(tmp)

    def clean(self) -> None:
        """Remove every best-epoch file but the current one."""
        for old in self.folder.glob("best-epoch-*.weights.h5"):
            if old != self.path:
                old.unlink()


class Checkpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state and history after every epoch, crash-consistently.

    Keras' ``BackupAndRestore`` writes its weights and then its epoch counter in place, so a
    kill between the two leaves them disagreeing. Here each epoch's weights go to a new file
    (moved into place whole), and only then ``state.json`` (moved into place whole) points
    at it: whenever the process dies, ``state.json`` names a complete epoch. The weights file
    holds the optimizer's state and the dropout layers' seed-generator state, and the
    training batches depend only on (seed, epoch), so a resumed run continues exactly where
    the killed one stood. A checkpoint of other settings (another spec) is discarded.

    Told to stop (``request_stop``, called by a SIGTERM or SLURM's warning signal), it saves
    at the end of the current batch: the epoch's step and its running metrics go with the
    weights, so a retry finishes that epoch from the next batch (``resume_step``) and loses
    nothing; then it raises :class:`Interrupted`.
    """

    def __init__(self, folder: Path, spec: dict, recorder: EpochRecorder, steps: int,
                 best: BestWeights | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.recorder = recorder
        self.best = best
        self.steps = steps
        self.fingerprint = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        self.stop_signal: str | None = None
        self.resume_step = 0
        self._partial: dict | None = None  # the interrupted epoch's state, until it resumes
        self._offset = 0

    def request_stop(self, signum, frame=None) -> None:
        """A signal handler: stop after the current batch, with a checkpoint."""
        self.stop_signal = signal.Signals(signum).name

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def restore(self, model: keras.Model) -> int:
        """Load the last finished epoch into ``model``; return how many epochs are done."""
        if not self.state_path.exists():
            return 0
        state = io.read_json(self.state_path)
        if state.get("fingerprint") != self.fingerprint:
            log.info("discarding checkpoint %s: it belongs to other settings", self.folder)
            shutil.rmtree(self.folder)
            return 0
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.folder / state["weights"])
        for variable in _seed_states(model):  # save_weights leaves these out
            variable.assign(np.asarray(state["seed_states"][variable.path], dtype=variable.dtype))
        self.recorder.resume(state["history"])
        if self.best is not None:
            self.best.resume(state)
        self.resume_step = int(state.get("step", 0))
        if self.resume_step:
            self._partial = state["partial"]
            log.info("resuming from the checkpoint in epoch %d, after step %d of %d",
                     state["epoch"] + 1, self.resume_step, self.steps)
        else:
            log.info("resuming from the checkpoint after epoch %d", state["epoch"])
        return int(state["epoch"])

    def on_epoch_begin(self, epoch, logs=None):
        # runs after Keras has reset the metrics and after the recorder's on_epoch_begin
        self._offset = 0
        if self._partial is not None:
            for variable, value in zip(self.model.metrics_variables, self._partial["metrics"],
                                       strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))
            self.recorder.learning_rate = self._partial["learning_rate"]
            self.recorder.started -= self._partial["seconds"]
            self._offset, self._partial = self.resume_step, None

    def on_train_batch_end(self, batch, logs=None):
        step = self._offset + batch + 1
        if self.stop_signal and step < self.steps:
            epoch = len(self.recorder.rows)  # epochs finished before this one
            self._save(epoch, step, {
                "metrics": [keras.ops.convert_to_numpy(v).tolist() for v in self.model.metrics_variables],
                "learning_rate": self.recorder.learning_rate,
                "seconds": time.perf_counter() - self.recorder.started,
            })
            raise Interrupted(f"{self.stop_signal} in epoch {epoch + 1}: stopped after step {step} of "
                              f"{self.steps} with a checkpoint; running the job again resumes there")

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1)
        if self.stop_signal:
            raise Interrupted(f"{self.stop_signal}: stopped after epoch {epoch + 1} with a "
                              "checkpoint; running the job again resumes there")

    def _save(self, epochs_done: int, step: int = 0, partial: dict | None = None) -> None:
        if hasattr(self.model, "jax_state_sync"):  # JAX keeps the live state outside the variables
            self.model.jax_state_sync()
        weights = f"epoch-{epochs_done:04d}-step-{step:06d}.weights.h5"
        with io.atomic_path(self.folder / weights) as tmp:
            self.model.save_weights(tmp)
        seeds = {v.path: keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)}
        state = {"fingerprint": self.fingerprint, "epoch": epochs_done, "weights": weights,
                 "seed_states": seeds, "history": self.recorder.rows}
        if step:
            state |= {"step": step, "partial": partial}
        if self.best is not None and self.best.epoch is not None:
            state |= {"best_epoch": self.best.epoch, "best_val_accuracy": self.best.best}
        io.write_json(self.state_path, state)
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights:
                old.unlink()
        if self.best is not None:
            self.best.clean()

    @property
    def finished_path(self) -> Path:
        return self.folder / "finished"

    def finish(self, outputs: dict) -> None:
        """Keep the written outputs (hard links) in place of the epoch state.

        A job can be stopped after its training has written everything and before Snakemake
        has seen it end (a time limit that lands then, as SLURM's does). Its retry then
        restores these outputs (:meth:`restore_outputs`) instead of training again.
        """
        tmp = self.folder / "finished.part"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, path in outputs.items():
            _link_or_copy(Path(path), tmp / name)
        io.write_json(tmp / "state.json", {"fingerprint": self.fingerprint})
        shutil.rmtree(self.finished_path, ignore_errors=True)
        tmp.rename(self.finished_path)
        self.state_path.unlink(missing_ok=True)
        for old in self.folder.glob("*.weights.h5"):
            old.unlink()

    def restore_outputs(self, outputs: dict) -> dict | None:
        """Put a finished training's outputs back; return its metrics (None: nothing kept)."""
        state = self.finished_path / "state.json"
        if not state.exists() or io.read_json(state).get("fingerprint") != self.fingerprint:
            return None
        for name, path in outputs.items():
            with io.atomic_path(path) as tmp:
                tmp.unlink()
                _link_or_copy(self.finished_path / name, tmp)
        return io.read_json(outputs["metrics"])


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


def convergence_epoch(val_accuracy: pd.Series, tolerance_points: float) -> int | None:
    """First epoch whose validation accuracy is within ``tolerance_points`` of the best."""
    values = val_accuracy.dropna()
    if values.empty:
        return None
    best = values.max()
    return int(values.index[values >= best - tolerance_points / 100][0]) + 1


def train(spec: dict, arrays: Path, outputs: dict, checkpoint: Path | None = None,
          retry: bool = False) -> dict:
    """Train the run ``spec`` on the cached arrays; write ``outputs``; return the metrics.

    ``outputs`` maps "model" (the last epoch's), "history", "metrics" and "spec" to file
    paths, and optionally "best_model": the model of the epoch with the highest validation
    accuracy (the last epoch's where the validation set is the test set, which chooses
    nothing). Each file is written atomically once training has finished. The test set is not scored here: rule
    ``evaluate`` scores each run once (``cnnopt.evaluate``), and a learning-rate candidate
    (``score_test`` false) never. With a ``checkpoint`` folder, every epoch
    is checkpointed there and a killed run started again resumes after its last finished
    epoch. Once the outputs are written, the folder keeps only links to them: a ``retry`` (a
    later attempt of the same job) restores them if the job was stopped after that point; a
    first attempt (a new job) discards them and trains afresh.
    """
    if checkpoint is not None:
        kept = Checkpoint(checkpoint, spec, None, 0)
        restored = kept.restore_outputs(outputs) if retry else None
        if restored is not None:
            log.info("the previous attempt had finished this training and written its outputs "
                     "before it was stopped: they are restored, nothing is trained again")
            return restored
        shutil.rmtree(kept.finished_path, ignore_errors=True)
    keras.utils.set_random_seed(spec["seed"])
    if spec.get("deterministic"):
        runtime.deterministic()
    ds = data.load(arrays)
    class_names = list(ds["class_names"])
    sets = splits.select(ds, spec)
    x_train, y_train = sets["x_train"], sets["y_train"]
    validation = (sets["x_val"], sets["y_val"])
    smoothing = spec["model"].get("label_smoothing", 0.0)
    if smoothing:  # Keras' sparse loss takes no label smoothing: one-hot targets instead
        sets |= {k: keras.utils.to_categorical(sets[k], len(class_names))
                 for k in ("y_train", "y_val", "y_test")}
        y_train, validation = sets["y_train"], (sets["x_val"], sets["y_val"])
    log.info("%d training, %d validation (%s), %d test images", len(x_train),
             len(validation[1]), "held out" if spec["validation_size"] else "the test set",
             len(sets["y_test"]))

    steps = math.ceil(len(x_train) / spec["batch_size"])
    model = models.build(spec["model"], num_classes=len(class_names), seed=spec["seed"])
    model.compile(
        optimizer=optimizers.build(spec["optimizer_config"], spec["schedule"], steps),
        loss=(keras.losses.CategoricalCrossentropy(label_smoothing=smoothing) if smoothing
              else "sparse_categorical_crossentropy"),
        metrics=["accuracy"],
    )
    log.info("run %s: %s, %d parameters, %d training images, backend %s on %s",
             spec["run_id"], model.name, model.count_params(), len(x_train),
             keras.backend.backend(), runtime.device())

    recorder = EpochRecorder(spec["epochs"])
    divergence = StopOnDivergence()
    scratch = contextlib.ExitStack()
    best_dir = checkpoint if checkpoint is not None else Path(
        scratch.enter_context(tempfile.TemporaryDirectory(prefix="cnnopt-best-")))
    best = BestWeights(best_dir, select=bool(spec["validation_size"]))
    callbacks = [divergence, recorder, best]  # best before the checkpoint, which records it
    done = skip = 0
    if checkpoint is not None:
        saver = Checkpoint(checkpoint, spec, recorder, steps, best)
        if saver.state_path.exists():
            # the compiled metrics get their variables on first use: make them now, on one
            # image in inference mode (no weight, statistic or random state changes)
            model.evaluate(x_train[:1], y_train[:1], verbose=0)
        done = saver.restore(model)
        skip = saver.resume_step
        callbacks.append(saver)

    def fit(epochs: int, steps_per_epoch: int) -> None:
        batches = EpochShuffled(x_train, y_train, spec["batch_size"], spec["seed"], epochs,
                                start=done, skip=skip)
        model.fit(batches, epochs=epochs, initial_epoch=done, steps_per_epoch=steps_per_epoch,
                  shuffle=False, validation_data=validation,
                  validation_batch_size=max(spec["batch_size"], 256), verbose=0,
                  callbacks=callbacks)

    with _stop_requests(saver.request_stop if checkpoint is not None else None):
        if skip and not _diverged(recorder.rows):  # first the rest of the interrupted epoch
            fit(done + 1, steps - skip)
            done, skip = len(recorder.rows), 0
        if done < spec["epochs"] and not _diverged(recorder.rows) and not divergence.epoch:
            fit(spec["epochs"], steps)
    history = recorder.frame()

    diverged_epoch = divergence.epoch or _diverged(recorder.rows)
    if diverged_epoch:
        log.warning("run %s diverged at epoch %d: training loss not finite or above %g",
                    spec["run_id"], diverged_epoch, DIVERGED_LOSS)
    train_seconds = float(history["seconds"].sum())
    metrics = {
        "run_id": spec["run_id"], "optimizer": spec["optimizer"], "variant": spec["variant"],
        "seed": spec["seed"], "role": spec["role"],
        "train_seconds": train_seconds,
        "images_per_second": len(x_train) * len(history) / train_seconds if train_seconds else None,
        "epochs": spec["epochs"], "epochs_run": int(len(history)),
        "convergence_epoch": convergence_epoch(history["val_accuracy"], spec["convergence_tolerance"]),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        # the epoch whose weights best_model holds (None: the last, nothing was chosen)
        "best_epoch": best.epoch,
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "params": int(model.count_params()),
        "backend": keras.backend.backend(), "device": runtime.device(),
        "versions": runtime.versions(),
        "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch,
    }
    log.info("run %s: best validation accuracy %.2f %%, %.1f s of training, %.0f images/s",
             spec["run_id"], 100 * metrics["best_val_accuracy"], train_seconds,
             metrics["images_per_second"] or 0)

    with io.atomic_path(outputs["model"]) as tmp:
        model.save(tmp)
    if "best_model" in outputs:
        if best.path is not None and best.epoch != len(history):
            model.load_weights(best.path)
        with io.atomic_path(outputs["best_model"]) as tmp:
            model.save(tmp)
    scratch.close()
    io.write_csv(outputs["history"], history)
    io.write_json(outputs["spec"], spec)
    io.write_json(outputs["metrics"], metrics)
    if checkpoint is not None:
        saver.finish(outputs)
    return metrics


#: Signals that ask a training to stop with a checkpoint: SIGTERM (scancel, a time limit, a
#: preemption; SLURM sends SIGKILL a grace period later) and SIGUSR1 (a warning that SLURM can
#: be asked to send before the limit, sbatch --signal=USR1@<seconds>).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@contextlib.contextmanager
def _stop_requests(handler):
    """Route the stop signals to ``handler`` (None: leave them alone) for the block."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _seed_states(model: keras.Model) -> list:
    """The state variables of the model's random seed generators (dropout masks)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _diverged(rows: list[dict]) -> int | None:
    """The epoch at which a (restored) history diverged, if it did."""
    for row in rows:
        if _divergent(row.get("loss", math.nan)):
            return int(row["epoch"])
    return None


def _divergent(loss: float, limit: float = DIVERGED_LOSS) -> bool:
    return not math.isfinite(loss) or loss > limit
