"""Train one run of the study with ``model.fit`` and Keras callbacks.

The run's spec (see :func:`cnnopt.config.grid.run_spec`) says everything: model, optimizer,
schedule, epochs, batch size, seed. Call :func:`cnnopt.common.runtime.configure` first.
:func:`train` puts together the batches (:mod:`cnnopt.train.batches`), the callbacks
(:mod:`cnnopt.train.callbacks`), the resumable checkpoint (:mod:`cnnopt.train.checkpoint`)
and the finished outputs kept for a retry (:mod:`cnnopt.train.store`), and what each epoch is
logged to besides history.csv: TensorBoard event files (:mod:`cnnopt.train.tensorboard`) and,
with tracking on, an MLflow run (:mod:`cnnopt.common.tracking`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from pathlib import Path

import keras
import pandas as pd

from cnnopt.common import files, runtime
from cnnopt.common.errors import CnnoptError, Interrupted
from cnnopt.common.tracking import tracker
from cnnopt.data import cifar10 as data
from cnnopt.data import splits
from cnnopt.train import batches, callbacks, checkpoint, models, optimizers, store
from cnnopt.train.tensorboard import EventFiles

log = logging.getLogger("cnnopt.train.loop")


def train(spec: dict, arrays: Path, outputs: dict, resume_dir: Path | None = None,
          retry: bool = False, tensorboard: Path | None = None, tracking: object = None,
          start_from: Path | None = None, keep_state: Path | None = None) -> dict:
    """Train the run ``spec`` on the cached arrays; write ``outputs``; return the metrics.

    ``outputs`` maps "model" (the last epoch's), "history", "metrics" and "spec" to file
    paths, and optionally "best_model": the model of the epoch with the highest validation
    accuracy (the last epoch's where the validation set is the test set, which chooses
    nothing). Each file is written atomically once training has finished. The test set is not
    scored here: rule ``evaluate`` scores each run once (``cnnopt.evaluate.scoring``), and a
    learning-rate candidate (``score_test`` false) never. With a ``resume_dir`` folder, every
    epoch is checkpointed there, and a killed run started again resumes after its last saved
    epoch (or batch, if it was told to stop). Once the outputs are written, the folder keeps
    only links to them: a ``retry`` (a later attempt of the same job) restores them if the job
    was stopped after that point; a first attempt (a new job) discards them and trains afresh.

    Each epoch also goes to the TensorBoard event files in the folder ``tensorboard`` (if
    given) and, where ``tracking`` (the config's ``tracking``) names an MLflow store, to the
    run's MLflow run. Each start (fresh, resumed or restored) first writes them the history
    recorded so far: the event files anew, MLflow the epochs after its last logged one.

    A rung of a learning-rate search (``cnnopt.tuning.halving``) goes on from the previous
    rung's final state, ``start_from`` (a folder ``keep_state`` of that run), and trains only
    the epochs after it; with ``keep_state`` the run's own final state is exported there for
    the next rung. Both need a ``resume_dir``.
    """
    if (start_from is not None or keep_state is not None) and resume_dir is None:
        raise CnnoptError(f"run {spec['run_id']}: continuing or keeping a state needs a resume folder")
    sinks = [s for s in (None if tensorboard is None else EventFiles(tensorboard, spec),
                         tracker(tracking, spec)) if s is not None]
    try:
        return _train(spec, arrays, outputs, resume_dir, retry, sinks, start_from, keep_state)
    except BaseException as error:
        for sink in sinks:
            sink.end("KILLED" if isinstance(error, Interrupted | KeyboardInterrupt) else "FAILED")
        raise


def _train(spec: dict, arrays: Path, outputs: dict, resume_dir: Path | None, retry: bool,
           sinks: list, start_from: Path | None = None, keep_state: Path | None = None) -> dict:
    kept = None if resume_dir is None else store.FinishedOutputs(resume_dir,
                                                                  checkpoint.fingerprint(spec))
    if kept is not None and (restored := _restored(kept, outputs, retry)) is not None:
        history = pd.read_csv(outputs["history"]).to_dict("records")
        for sink in sinks:
            sink.start(history)
            sink.end("FINISHED", restored)
        return restored
    if start_from is not None:
        checkpoint.adopt_state(start_from, resume_dir, spec)
    keras.utils.set_random_seed(spec["seed"])
    if spec.get("deterministic"):
        runtime.deterministic()
    sets, num_classes = _splits(spec, arrays)
    steps = math.ceil(len(sets["x_train"]) / spec["batch_size"])
    model = _compiled_model(spec, num_classes, steps, len(sets["x_train"]))
    with contextlib.ExitStack() as scratch:
        best = callbacks.BestWeights(_best_dir(resume_dir, scratch),
                                     select=bool(spec["validation_size"]))
        recorder = callbacks.EpochRecorder(spec["epochs"])
        saver = (None if resume_dir is None
                 else checkpoint.Checkpoint(resume_dir, spec, recorder, steps, best))
        diverged_epoch = _fit(spec, sets, model, steps, recorder, best, saver, sinks)
        history = recorder.frame()
        metrics = _metrics(spec, len(sets["x_train"]), model, history, best.epoch, diverged_epoch)
        _write_outputs(outputs, spec, model, history, best, metrics)
    if saver is not None:  # the finished outputs take the place of the epoch state
        if keep_state is not None:
            checkpoint.export_state(resume_dir, keep_state)
        kept.record(outputs)
        saver.clear()
    for sink in sinks:
        sink.end("FINISHED", metrics)
    return metrics


def convergence_epoch(val_accuracy: pd.Series, tolerance_points: float) -> int | None:
    """First epoch whose validation accuracy is within ``tolerance_points`` of the best."""
    values = val_accuracy.dropna()
    if values.empty:
        return None
    best = values.max()
    return int(values.index[values >= best - tolerance_points / 100][0]) + 1


def _restored(kept: store.FinishedOutputs, outputs: dict, retry: bool) -> dict | None:
    """On a ``retry``, the metrics of the kept outputs, put back in place (None: none are kept).
    On a first attempt the kept outputs are discarded."""
    restored = kept.restore(outputs) if retry else None
    if restored is not None:
        log.info("the previous attempt had finished this training and written its outputs "
                 "before it was stopped: they are restored, nothing is trained again")
        return restored
    kept.discard()
    return None


def _splits(spec: dict, arrays: Path) -> tuple[dict, int]:
    """The spec's training, validation and test sets of the cached arrays, and the number of
    classes. With label smoothing the labels are one-hot (Keras' sparse loss takes none)."""
    ds = data.load(arrays)
    num_classes = len(ds["class_names"])
    sets = splits.for_run(ds, spec)
    if spec["model"].get("label_smoothing", 0.0):
        sets |= {k: keras.utils.to_categorical(sets[k], num_classes)
                 for k in ("y_train", "y_val", "y_test")}
    log.info("%d training, %d validation (%s), %d test images", len(sets["x_train"]),
             len(sets["y_val"]), "held out" if spec["validation_size"] else "the test set",
             len(sets["y_test"]))
    return sets, num_classes


def _compiled_model(spec: dict, num_classes: int, steps: int, n_train: int) -> keras.Model:
    """The spec's model, compiled with its optimizer and schedule (``steps`` batches an epoch)."""
    smoothing = spec["model"].get("label_smoothing", 0.0)
    model = models.build(spec["model"], num_classes=num_classes, seed=spec["seed"])
    model.compile(
        optimizer=optimizers.build(spec["optimizer_config"], spec["schedule"], steps),
        loss=(keras.losses.CategoricalCrossentropy(label_smoothing=smoothing) if smoothing
              else "sparse_categorical_crossentropy"),
        metrics=["accuracy"],
    )
    log.info("run %s: %s, %d parameters, %d training images, backend %s on %s",
             spec["run_id"], model.name, model.count_params(), n_train,
             keras.backend.backend(), runtime.device())
    return model


def _best_dir(resume_dir: Path | None, scratch: contextlib.ExitStack) -> Path:
    """Where the best epoch's weights go: the resume folder, else a folder gone with ``scratch``."""
    if resume_dir is not None:
        return resume_dir
    return Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="cnnopt-best-")))


def _fit(spec: dict, sets: dict, model: keras.Model, steps: int,
         recorder: callbacks.EpochRecorder, best: callbacks.BestWeights,
         saver: checkpoint.Checkpoint | None, sinks: list) -> int | None:
    """Fit ``model`` up to the spec's last epoch; return the epoch at which it diverged, if it did.

    With a checkpoint (``saver``), its saved state is restored first and the run goes on from
    its epoch and batch; a stop signal then saves and stops at the end of a batch. The
    ``sinks`` (event files, MLflow) start from the history restored, then get each epoch once
    it is saved (their callback comes after the checkpoint's).
    """
    divergence = callbacks.StopOnDivergence()
    used = [divergence, recorder, best]  # best before the checkpoint, which records it
    done = skip = 0
    if saver is not None:
        done = saver.restore(model, (sets["x_train"][:1], sets["y_train"][:1]))
        skip = saver.resume_step
        used.append(saver)
    for sink in sinks:
        sink.start(recorder.rows)
    if sinks:
        used.append(callbacks.EpochLogs(recorder, sinks))

    def fit(start: int, skip: int, epochs: int, steps_per_epoch: int) -> None:
        sequence = batches.EpochShuffled(sets["x_train"], sets["y_train"], spec["batch_size"],
                                         spec["seed"], epochs, start=start, skip=skip)
        model.fit(sequence, epochs=epochs, initial_epoch=start, steps_per_epoch=steps_per_epoch,
                  shuffle=False, validation_data=(sets["x_val"], sets["y_val"]),
                  validation_batch_size=max(spec["batch_size"], 256), verbose=0, callbacks=used)

    with checkpoint.stop_requests(None if saver is None else saver.request_stop):
        if skip and not callbacks.diverged(recorder.rows):  # first the rest of the interrupted epoch
            fit(done, skip, done + 1, steps - skip)
            done = len(recorder.rows)
        if done < spec["epochs"] and not callbacks.diverged(recorder.rows) and not divergence.epoch:
            fit(done, 0, spec["epochs"], steps)
    diverged_epoch = divergence.epoch or callbacks.diverged(recorder.rows)
    if diverged_epoch:
        log.warning("run %s diverged at epoch %d: training loss not finite or above %g",
                    spec["run_id"], diverged_epoch, callbacks.DIVERGED_LOSS)
    return diverged_epoch


def _metrics(spec: dict, n_train: int, model: keras.Model, history: pd.DataFrame,
             best_epoch: int | None, diverged_epoch: int | None) -> dict:
    """The run's metrics (everything but the test accuracy, which rule ``evaluate`` adds)."""
    train_seconds = float(history["seconds"].sum())
    metrics = {
        "run_id": spec["run_id"], "optimizer": spec["optimizer"], "variant": spec["variant"],
        "seed": spec["seed"], "role": spec["role"],
        "train_seconds": train_seconds,
        "images_per_second": n_train * len(history) / train_seconds if train_seconds else None,
        "epochs": spec["epochs"], "epochs_run": int(len(history)),
        "convergence_epoch": convergence_epoch(history["val_accuracy"], spec["convergence_tolerance"]),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        # the epoch whose weights best_model holds (None: the last, nothing was chosen)
        "best_epoch": best_epoch,
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "params": int(model.count_params()),
        "backend": keras.backend.backend(), "device": runtime.device(),
        "versions": runtime.versions(),
        "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch,
    }
    log.info("run %s: best validation accuracy %.2f %%, %.1f s of training, %.0f images/s",
             spec["run_id"], 100 * metrics["best_val_accuracy"], train_seconds,
             metrics["images_per_second"] or 0)
    return metrics


def _write_outputs(outputs: dict, spec: dict, model: keras.Model, history: pd.DataFrame,
                   best: callbacks.BestWeights, metrics: dict) -> None:
    """Write each output atomically; "best_model" gets the best epoch's weights."""
    with files.atomic_path(outputs["model"]) as tmp:
        model.save(tmp)
    if "best_model" in outputs:
        if best.path is not None and best.epoch != len(history):
            model.load_weights(best.path)
        with files.atomic_path(outputs["best_model"]) as tmp:
            model.save(tmp)
    files.write_csv(outputs["history"], history)
    files.write_json(outputs["spec"], spec)
    files.write_json(outputs["metrics"], metrics)
