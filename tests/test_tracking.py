"""TensorBoard event files and MLflow tracking of real trainings on tiny arrays, read back with
tensorboard's own reader and from a real MLflow file store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from datasets import tiny_spec, write_arrays
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnopt.common import files, tracking
from cnnopt.common.errors import Interrupted
from cnnopt.evaluate.scoring import evaluate
from cnnopt.train.loop import train
from cnnopt.train.share import share
from cnnopt.train.tensorboard import SCALARS, EventFiles

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    return write_arrays(tmp_path_factory.mktemp("data") / "arrays.npz", 20, 10, seed=3)


def outputs_in(folder: Path) -> dict:
    return {"model": folder / "model.keras", "best_model": folder / "model_best.keras",
            "history": folder / "history.csv", "metrics": folder / "metrics.json",
            "spec": folder / "run.json"}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar event of the run folder, in file order. No purging: a step written twice
    shows twice."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0},
                           purge_orphaned_data=False)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_events_equal_history(folder: Path, history: pd.DataFrame) -> None:
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    got = scalars(folder)
    assert sorted(got) == sorted(SCALARS)
    for tag in SCALARS:
        assert [step for step, _ in got[tag]] == list(history["epoch"]), tag
        assert [value for _, value in got[tag]] == pytest.approx(history[tag].tolist(), rel=1e-6)


@contextlib.contextmanager
def sigterm_after_epoch(checkpoint: Path, epoch: int):
    """Send this process a SIGTERM once the checkpoint in ``checkpoint`` holds ``epoch``
    epochs: the training saves at the end of its current batch and raises Interrupted (a
    SLURM time limit, scancel). Outside the training a late signal does nothing."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    done = threading.Event()

    def watch():
        state = checkpoint / "state.json"
        while not done.is_set():
            with contextlib.suppress(OSError, ValueError):
                if json.loads(state.read_text())["epoch"] >= epoch:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGTERM, previous)


def stopped(spec, arrays, folder: Path, **kwargs) -> list[dict]:
    """Train ``spec`` until a SIGTERM after epoch 2; return the checkpoint's history."""
    with sigterm_after_epoch(folder / "checkpoint", 2), pytest.raises(Interrupted):
        train(spec, arrays, outputs_in(folder), resume_dir=folder / "checkpoint", **kwargs)
    return files.read_json(folder / "checkpoint" / "state.json")["history"]


@pytest.fixture(scope="module")
def trained(arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    spec = tiny_spec(epochs=3)
    train(spec, arrays, outputs_in(folder), tensorboard=folder / "tb")
    return spec, folder


def test_each_epoch_is_one_step_of_the_event_files_equal_to_the_history(trained):
    spec, folder = trained
    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert_events_equal_history(folder / "tb", history)
    acc = EventAccumulator(str(folder / "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    assert "_hparams_/session_start_info" in acc.Tags()["tensors"]  # the HParams tab
    (text,) = acc.Tensors("spec")
    assert text.step == 0
    shown = text.tensor_proto.string_val[0].decode()
    assert "sgd-initial-s0" in shown and '"momentum": 0.9' in shown


def test_a_shared_run_writes_its_own_event_files_from_the_copied_history(trained, tmp_path):
    spec, folder = trained
    twin = spec | {"run_id": "sgd-twin-s0", "variant": "twin"}
    outputs = outputs_in(tmp_path)
    share(outputs_in(folder), twin, outputs, tensorboard=tmp_path / "tb")
    assert_events_equal_history(tmp_path / "tb", pd.read_csv(outputs["history"]))
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    shown = acc.Tensors("spec")[0].tensor_proto.string_val[0].decode()
    assert "sgd-twin-s0" in shown and '"shared_with": "sgd-initial-s0"' in shown


def test_a_stopped_and_resumed_training_continues_its_curves_without_duplicates(arrays, tmp_path):
    spec = tiny_spec(epochs=5)
    board = tmp_path / "tb"
    saved = stopped(spec, arrays, tmp_path, tensorboard=board)
    assert 2 <= len(saved) < 5
    # an epoch reaches the events once saved; a stop right after a save skips that one
    written = len(scalars(board)["loss"])
    assert len(saved) - 1 <= written <= len(saved)
    assert_events_equal_history(board, pd.DataFrame(saved[:written]))
    # what a SIGKILL can leave besides: an epoch the checkpoint never saved, in a second file
    # of a killed attempt, and a step written twice
    stale = tmp_path / "stale"
    EventFiles(stale, spec).start([row | {"loss": 99.0} for row in saved[:1]]
                                  + [saved[-1] | {"epoch": len(saved) + 1, "loss": 99.0}])
    (stale_file,) = stale.glob("events.out.tfevents.*")
    stale_file.rename(board / (stale_file.name + ".killed"))
    assert len(scalars(board)["loss"]) == written + 2

    train(spec, arrays, outputs_in(tmp_path), resume_dir=tmp_path / "checkpoint", retry=True,
          tensorboard=board)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert_events_equal_history(board, history)  # steps 1..5, each once, the final values
    pd.testing.assert_frame_equal(history.iloc[:len(saved)][list(SCALARS)],
                                  pd.DataFrame(saved)[list(SCALARS)], check_exact=False)

    # a retry after the outputs were written restores them, and the events once more
    for old in board.glob("events.out.tfevents.*"):
        old.unlink()
    train(spec, arrays, outputs_in(tmp_path), resume_dir=tmp_path / "checkpoint", retry=True,
          tensorboard=board)
    assert_events_equal_history(board, history)


def _mlflow_metric_steps(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_mlflow_logs_a_retried_training_and_its_evaluation_as_one_run(arrays, tmp_path,
                                                                      monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    settings = {"mlflow": store, "configfiles": ["config/smoke.yaml"]}
    spec = tiny_spec(epochs=5)
    client = mlflow.tracking.MlflowClient(store)
    saved = stopped(spec, arrays, tmp_path, tracking=settings)

    (first,) = mlflow.search_runs(experiment_names=["cnnopt"], output_format="list")
    assert first.info.status == "KILLED"
    logged = [s for s, _ in _mlflow_metric_steps(client, first.info.run_id, "loss")]
    assert logged in (list(range(1, len(saved))), list(range(1, len(saved) + 1)))

    train(spec, arrays, outputs_in(tmp_path), resume_dir=tmp_path / "checkpoint", retry=True,
          tracking=settings)
    outputs = outputs_in(tmp_path)
    evaluation = evaluate(outputs["model"], arrays, tmp_path / "evaluation.json", spec,
                          best_model_path=outputs["best_model"], best_epoch=None)
    tracking.log_evaluation(settings, outputs["spec"], outputs["history"], evaluation)

    (run,) = mlflow.search_runs(experiment_names=["cnnopt"], output_format="list")
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert run.info.run_name == "sgd-initial-s0"
    tags = run.data.tags
    assert tags["cnnopt.run_id"] == "sgd-initial-s0"
    assert tags["cnnopt.spec_sha256"] == tracking.spec_hash(spec)
    assert tags["cnnopt.config"] == "config/smoke.yaml"
    assert tags["cnnopt.git_commit"].startswith(tags["mlflow.source.git.commit"])
    assert run.data.params == {k: str(v) for k, v in tracking.flat(spec).items()}
    assert run.data.metrics["test_accuracy"] == pytest.approx(evaluation["test_accuracy"])
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(
        files.read_json(outputs["metrics"])["best_val_accuracy"])
    history = pd.read_csv(outputs["history"])
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        logged = _mlflow_metric_steps(client, run.info.run_id, key)
        assert [s for s, _ in logged] == [1, 2, 3, 4, 5], key  # each epoch once
        assert [v for _, v in logged] == pytest.approx(history[key].tolist(), rel=1e-9)

    # the same spec trained again from epoch 1 (a new job): a new MLflow run, the newest,
    # which a resumed training and evaluate then find
    tracking.tracker(settings, spec).start([])
    runs = mlflow.search_runs(experiment_names=["cnnopt"], output_format="list",
                              order_by=["attributes.start_time DESC"])
    assert len(runs) == 2 and runs[1].info.run_id == first.info.run_id
    tracking.log_evaluation(settings, outputs["spec"], outputs["history"], evaluation)
    newest = runs[0].info.run_id
    assert [s for s, _ in _mlflow_metric_steps(client, newest, "loss")] == [1, 2, 3, 4, 5]
    assert len(mlflow.search_runs(experiment_names=["cnnopt"], output_format="list")) == 2
