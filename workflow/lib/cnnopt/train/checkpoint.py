"""A training's resumable state: saved after every epoch, and at a batch when told to stop.

:class:`Checkpoint` (a Keras callback) keeps weights, optimizer state and history in a folder;
:func:`stop_requests` routes the stop signals (SIGTERM, SLURM's warning) to it. The outputs of
a finished training are kept apart, by :mod:`cnnopt.train.store`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import signal
import threading
import time
from pathlib import Path

import keras
import numpy as np

from cnnopt.common import files
from cnnopt.common.errors import Interrupted
from cnnopt.train.callbacks import BestWeights, EpochRecorder

log = logging.getLogger("cnnopt.train.checkpoint")

#: Signals that ask a training to stop with a checkpoint: SIGTERM (scancel, a time limit, a
#: preemption; SLURM sends SIGKILL a grace period later) and SIGUSR1 (a warning that SLURM can
#: be asked to send before the limit, sbatch --signal=USR1@<seconds>).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def fingerprint(spec: dict) -> str:
    """What a checkpoint (or kept output) of ``spec`` is recognised by: a hash of its settings."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


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
        self.fingerprint = fingerprint(spec)
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

    def restore(self, model: keras.Model, sample: tuple) -> int:
        """Load the last saved state into ``model``; return how many epochs are done.

        ``sample`` is one training batch ``(x, y)``: the compiled metrics get their variables
        on first use, so they are made on it (in inference mode: no weight, statistic or
        random state changes) before a state is loaded.
        """
        if not self.state_path.exists():
            return 0
        model.evaluate(*sample, verbose=0)
        state = files.read_json(self.state_path)
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

    def clear(self) -> None:
        """Remove the saved state and every weights file (the training has finished)."""
        self.state_path.unlink(missing_ok=True)
        for old in self.folder.glob("*.weights.h5"):
            old.unlink()

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
        with files.atomic_path(self.folder / weights) as tmp:
            self.model.save_weights(tmp)
        seeds = {v.path: keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)}
        state = {"fingerprint": self.fingerprint, "epoch": epochs_done, "weights": weights,
                 "seed_states": seeds, "history": self.recorder.rows}
        if step:
            state |= {"step": step, "partial": partial}
        if self.best is not None and self.best.epoch is not None:
            state |= {"best_epoch": self.best.epoch, "best_val_accuracy": self.best.best}
        files.write_json(self.state_path, state)
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != weights:
                old.unlink()
        if self.best is not None:
            self.best.clean()


def export_state(folder: Path, out: Path) -> None:
    """Copy the last saved state of the checkpoint ``folder`` (state.json and the weights files
    it names) to the folder ``out``, whole or not at all: what a later rung continues from."""
    state = files.read_json(Path(folder) / "state.json")
    names = [state["weights"], *(p.name for p in Path(folder).glob("best-epoch-*.weights.h5"))]
    with files.atomic_dir(out) as tmp:
        for name in names:
            shutil.copyfile(Path(folder) / name, tmp / name)
        files.write_json(tmp / "state.json", state)


def adopt_state(source: Path, folder: Path, spec: dict) -> bool:
    """Start the checkpoint ``folder`` of the run ``spec`` from another run's exported state
    (``export_state``: an earlier rung of the same candidate), so its training goes on after the
    epochs that run trained and trains none of them again. A folder that already holds this
    run's own state (a retry) keeps it. Returns whether the state was adopted."""
    folder = Path(folder)
    own = folder / "state.json"
    if own.exists() and files.read_json(own).get("fingerprint") == fingerprint(spec):
        return False
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    state = files.read_json(Path(source) / "state.json")
    for path in Path(source).glob("*.weights.h5"):
        shutil.copyfile(path, folder / path.name)
    files.write_json(own, state | {"fingerprint": fingerprint(spec)})
    log.info("continuing from %s after epoch %d (its state, adopted: no epoch is trained again)",
             source, state["epoch"])
    return True


@contextlib.contextmanager
def stop_requests(handler):
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
