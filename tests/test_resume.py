"""A training killed with SIGKILL and started again ends as if it had never stopped."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from datasets import write_arrays
from workflow_helpers import OTHER_BACKENDS, assert_same_weights

from cnnopt.config import grid, schema

pytestmark = [pytest.mark.dag, pytest.mark.slow]  # trainings as jobs: killed, resumed, retried

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import json, sys
sys.path.insert(0, {lib!r})
from pathlib import Path
from cnnopt.common import logs, runtime
logs.setup({log!r})
runtime.configure(1)
from cnnopt.train.loop import train
spec = json.loads(Path({spec!r}).read_text())
out = Path({out!r})
train(spec, Path({arrays!r}), {{n: out / f"{{n}}.out" for n in ("history", "metrics", "spec")}}
      | {{"model": out / "model.keras", "best_model": out / "model_best.keras"}}, resume_dir=out / "checkpoint", retry={retry})
"""
COMPARED = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    arrays = write_arrays(root / "arrays.npz", 150, 20, seed=2)
    cfg = schema.validate({
        "validation_size": 100, "deterministic": True,
        "defaults": {"epochs": 4, "batch_size": 32,
                     "model": {"filters": [16, 32], "dense": [32], "dropout": 0.3,
                               "batch_norm": True}},
        "optimizers": {"sgd": {"momentum": 0.9}},
        "variants": {"final": {"role": "final", "schedule": {"type": "exponential",
                                                             "decay_rate": 0.7}}},
        "grid": [{"optimizers": ["sgd"], "variants": ["final"]}],
    })
    spec = root / "spec.json"
    spec.write_text(json.dumps(grid.run_spec(cfg, "sgd", "final", 0)))
    return root, arrays, spec


def backend_env(backend: str = "tensorflow") -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend)


def start(setup, name, backend="tensorflow"):
    root, arrays, spec = setup
    out = root / name
    out.mkdir()
    script = DRIVER.format(lib=str(ROOT / "workflow" / "lib"), log=str(out / "train.log"),
                           spec=str(spec), out=str(out), arrays=str(arrays), retry=False)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=backend_env(backend))
    return proc, out


def finish(setup, name, backend="tensorflow"):
    proc, out = start(setup, name, backend)
    assert proc.wait(timeout=300) == 0, (out / "train.log").read_text()[-2000:]
    return out


def kill_when(proc, out, condition, timeout=300):
    deadline = time.time() + timeout
    while not condition(out):
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def epochs_done(out):
    state = out / "checkpoint" / "state.json"
    return json.loads(state.read_text())["epoch"] if state.exists() else 0


def epoch_started(n):
    """True once epoch ``n`` has been running for a moment (a kill lands mid-epoch)."""
    def check(out):
        log = out / "train.log"
        return log.exists() and f"epoch {n - 1}/" in log.read_text() and time.sleep(0.3) is None
    return check


def assert_same_run(out, twin):
    ours = pd.read_csv(out / "history.out")[COMPARED]
    theirs = pd.read_csv(twin / "history.out")[COMPARED]
    assert len(ours) == len(theirs) == 4
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=0, atol=1e-6)
    assert_same_weights(out / "model.keras", twin / "model.keras")
    # the best validation epoch survives the kill: the same epoch, the same weights
    assert json.loads((out / "metrics.out").read_text())["best_epoch"] == \
        json.loads((twin / "metrics.out").read_text())["best_epoch"]
    assert_same_weights(out / "model_best.keras", twin / "model_best.keras")
    # once the outputs are written, the checkpoint keeps links to them and no epoch state
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == ["finished"]


@pytest.fixture(scope="module")
def twin(setup):
    return finish(setup, "uninterrupted")


@pytest.mark.parametrize("when", ["after_epoch", "mid_epoch"])
def test_sigkill_then_resume_matches_uninterrupted_twin(setup, twin, when):
    proc, out = start(setup, when)
    if when == "after_epoch":
        kill_when(proc, out, lambda o: epochs_done(o) >= 2)
    else:
        kill_when(proc, out, epoch_started(3))
    assert not (out / "metrics.out").exists()
    killed_at = epochs_done(out)
    assert 1 <= killed_at < 4
    log = resume(setup, out)
    assert f"resuming from the checkpoint after epoch {killed_at}" in log
    assert log.count("epoch ") - log.count("resuming") == 4 - killed_at
    assert_same_run(out, twin)


def resume(setup, out, retry=False, backend="tensorflow"):
    (out / "resumed.log").unlink(missing_ok=True)
    resumed = subprocess.run(
        [sys.executable, "-c", DRIVER.format(
            lib=str(ROOT / "workflow" / "lib"), log=str(out / "resumed.log"),
            spec=str(setup[2]), out=str(out), arrays=str(setup[1]), retry=retry)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
        env=backend_env(backend))
    assert resumed.returncode == 0, (out / "resumed.log").read_text()[-2000:]
    return (out / "resumed.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_saves_mid_epoch_and_the_retry_loses_no_batch(setup, twin, signum):
    """SIGTERM (scancel, a time limit) or SLURM's warning signal in the middle of epoch 3:
    the training saves after the current batch and exits with one line; run again, it
    finishes epoch 3 from the next batch and ends equal to the uninterrupted twin."""
    proc, out = start(setup, f"signal-{signum.name}")
    deadline = time.time() + 300
    while not epoch_started(3)(out):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signum)
    assert proc.wait(timeout=120) == 1
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    steps = math.ceil((1500 - 100) / 32)  # training images (validation held out) / batch
    assert state["epoch"] == 2 and 0 < state["step"] < steps
    log = (out / "train.log").read_text()
    assert f"ERROR: {signum.name} in epoch 3: stopped after step {state['step']} of {steps}" in log
    assert not (out / "metrics.out").exists()
    log = resume(setup, out)
    assert f"resuming from the checkpoint in epoch 3, after step {state['step']} of {steps}" in log
    assert log.count("epoch 3/4") == 1 and log.count("epoch 4/4") == 1
    assert_same_run(out, twin)


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_sigkill_then_resume_matches_uninterrupted_twin_on_another_backend(setup, backend):
    """The same kill-and-resume as on TensorFlow, on JAX and on PyTorch: the checkpoint (weights,
    optimizer and seed-generator state) and the batch order do not depend on the backend."""
    twin = finish(setup, f"uninterrupted-{backend}", backend)
    assert f"backend {backend} on cpu" in (twin / "train.log").read_text()
    proc, out = start(setup, f"killed-{backend}", backend)
    kill_when(proc, out, epoch_started(3))
    killed_at = epochs_done(out)
    assert 1 <= killed_at < 4 and not (out / "metrics.out").exists()
    log = resume(setup, out, backend=backend)
    assert f"resuming from the checkpoint after epoch {killed_at}" in log
    assert json.loads((out / "metrics.out").read_text())["backend"] == backend
    assert_same_run(out, twin)


def test_a_retry_of_a_job_stopped_after_its_outputs_were_written_restores_them(setup, twin, tmp_path):
    """SLURM's time limit can land after the training has written its outputs and before
    Snakemake has seen the job end; Snakemake then deletes the outputs and retries. The retry
    restores them from the checkpoint, trains nothing, and a new job (attempt 1) trains afresh."""
    out = tmp_path / "stopped-at-the-end"
    shutil.copytree(twin, out)
    outputs = ["history.out", "metrics.out", "spec.out", "model.keras"]
    written = {name: (out / name).read_bytes() for name in outputs}
    for name in outputs:  # what Snakemake does to the outputs of a failed job
        (out / name).unlink()
    log = resume(setup, out, retry=True)
    assert "they are restored, nothing is trained again" in log
    assert "epoch 1/4" not in log
    assert {name: (out / name).read_bytes() for name in outputs} == written
    assert_same_run(out, twin)

    log = resume(setup, out, retry=False)  # a new job of the same run: trained again
    assert "restored" not in log and "epoch 4/4" in log
    assert_same_run(out, twin)


def test_snakemake_rerun_incomplete_resumes_a_killed_training(tmp_path):
    """Kill the whole snakemake process group mid-training; --rerun-incomplete resumes it."""
    from datasets import make_canonical_python_archive
    from workflow_helpers import SNAKEMAKE, config_args, copy_workflow, snakemake

    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=200, n_test_per_class=20)
    wf = copy_workflow(tmp_path / "wf")
    target = "results/runs/adam-initial-s0/metrics.json"
    args = [target, "--cores", "1", "--configfile", "config/smoke.yaml", *config_args(
        data_source=archive, data_checksum=f"md5:{md5}", validation_size=100,
        max_train_images=0, max_test_images=0, **{"variants": "{initial: {epochs: 6}}"})]
    proc = subprocess.Popen([str(SNAKEMAKE), *args], cwd=wf, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = wf / "results/checkpoints/adam-initial-s0/state.json"
    deadline = time.time() + 300
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
        assert proc.poll() is None and time.time() < deadline, "training ended too early"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (wf / target).exists()

    # a SIGKILL leaves Snakemake's lock behind, as a lost node does: unlock, then rerun
    assert snakemake(wf, "--unlock", *args).returncode == 0
    again = snakemake(wf, "--rerun-incomplete", *args)
    assert again.returncode == 0, again.stdout[-3000:]
    log = (wf / "results/logs/train/adam-initial-s0.log").read_text()
    assert "resuming from the checkpoint after epoch" in log
    history = pd.read_csv(wf / "results/runs/adam-initial-s0/history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert not state.exists() and (state.parent / "finished" / "metrics").exists()
