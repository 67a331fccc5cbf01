"""Quiet, honest logs: a healthy training's log holds no framework error line, a real one stays.

Each test runs a script in a child process that sets up a rule log the way
workflow/scripts/train.py does (logs.setup, gpus.claim, runtime.configure) and reads the log
file it leaves; the frameworks are real, nothing is mocked. Two real trainings in one child
also show what tracking does to a job: off, it imports nothing; to a store that does not
answer, it is one warning line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from datasets import tiny_spec, write_arrays
from workflow_helpers import ROOT

from cnnopt.common import gpus

# one worker builds this file's module fixtures (the trainings in a child process) once: with
# `--dist loadgroup` (the quick run in the README) its tests stay together
pytestmark = pytest.mark.xdist_group("logs")

LIB = ROOT / "workflow" / "lib"
# a line that begins like an error: absl's "E0000 ..."/"F1202 ...", "ERROR...", a traceback,
# or a log record of level ERROR or CRITICAL
ERROR_LINE = re.compile(r"^(?:[EF]\d{4} |ERROR|Traceback|\S+ \S+ (?:ERROR|CRITICAL) )")
# what TensorFlow prints on a machine without a GPU (TensorFlow 2.21, no CUDA driver)
CUINIT = ("E0000 00:00:1712345678.123456    4321 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
REAL_ERROR = ("E0000 00:00:1712345678.223456    4321 cuda_dnn.cc:535] Could not create cudnn "
              "handle: CUDNN_STATUS_INTERNAL_ERROR")
FATAL = "F0000 00:00:1712345678.323456    4321 tensor_shape.cc:48] Check failed: size >= 0"

PRELUDE = """
import os, subprocess, sys, warnings
sys.path.insert(0, {lib!r})
from cnnopt.common import gpus, logs, runtime
log = logs.setup({log!r})
"""


def run_script(tmp_path, body: str, gpu: int = 0, timeout: float = 120, **env):
    """Run PRELUDE + ``body`` in a fresh Python; return the process and its log's text."""
    log = tmp_path / "rule.log"
    script = textwrap.dedent(PRELUDE).format(lib=str(LIB), log=str(log)) + textwrap.dedent(body)
    base = {k: v for k, v in os.environ.items()
            if k not in ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL",
                         "CNNOPT_LOG_FILTER", "KERAS_BACKEND", gpus.DEVICES_ENV)}
    base |= {gpus.LOCK_DIR_ENV: str(tmp_path / "locks"), "KERAS_BACKEND": "tensorflow"}
    if gpu:
        base[gpus.DEVICES_ENV] = "0"  # a fake device list: the job is given GPU 0
    proc = subprocess.run([sys.executable, "-c", script.replace("GPU", str(gpu))],
                          capture_output=True, text=True, timeout=timeout, env=base | env)
    return proc, log.read_text(encoding="utf-8")


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if ERROR_LINE.match(line)]


TRAINING = """
import json
from pathlib import Path

with gpus.claim(GPU):
    runtime.configure(1)
    from cnnopt.train.loop import train

    spec, out = json.loads({spec!r}), Path({out!r})

    def outputs(name):
        return {{n: out / name / f"{{n}}.out" for n in ("history", "metrics", "spec")}} | {{
            "model": out / name / "model.keras"}}

    train(spec, Path({arrays!r}), outputs("off"), tensorboard=out / "tb")
    print("mlflow imported:", "mlflow" in sys.modules, flush=True)
    warnings.warn("real warning")
    train(spec, Path({arrays!r}), outputs("unreachable"),
          tracking={{"mlflow": "http://127.0.0.1:9"}})
log.info("done")
"""


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
    """Two real trainings in one child process set up as workflow/scripts/train.py sets up a
    job: the first with tracking off, the second tracked to a store that does not answer (no
    server on port 9). Returns the process and its rule log."""
    tmp = tmp_path_factory.mktemp("trainings")
    arrays = write_arrays(tmp / "arrays.npz", 20, 10, seed=3)
    body = TRAINING.format(spec=json.dumps(tiny_spec(epochs=1)), out=str(tmp), arrays=str(arrays))
    proc, log = run_script(tmp, body, timeout=300, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                           MLFLOW_HTTP_REQUEST_TIMEOUT="2")
    assert proc.returncode == 0, log + proc.stderr
    assert (tmp / "unreachable" / "metrics.out").exists()  # the tracked training went through
    return proc, log


@pytest.mark.slow  # the trainings fixture: a child process that imports TensorFlow
def test_a_training_without_a_gpu_logs_its_device_and_no_error_line(trainings):
    proc, log = trainings
    assert log.rstrip().endswith("done"), log  # the run went through
    devices = [line for line in log.splitlines() if " device: " in line]
    assert len(devices) == 1 and devices[0].endswith(
        "device: CPU (1 thread), backend tensorflow"), log
    assert "UserWarning: real warning" in log
    assert error_lines(log) == [], log
    # what reaches the terminal (Snakemake's, SLURM's output file) is as quiet
    assert error_lines(proc.stderr) == [], proc.stderr
    assert "UserWarning: real warning" in proc.stderr


@pytest.mark.slow
def test_tracking_off_imports_no_mlflow_and_an_unreachable_store_is_one_warning(trainings):
    """Without a URI nothing imports mlflow; with a store that does not answer the training
    says so in one warning line and succeeds. (Without mlflow installed that line says so
    instead.)"""
    proc, log = trainings
    assert "mlflow imported: False" in proc.stdout
    lines = [line for line in log.splitlines() if "mlflow" in line.lower()]
    assert len(lines) == 1, lines
    assert " WARNING cnnopt.common.tracking: MLflow tracking at http://127.0.0.1:9 is off" in lines[0]


WRITE_TO_FD2 = """
with gpus.claim(GPU):
    runtime.quiet_stderr()  # what runtime.configure does before the framework starts
    # C++ code writes to file descriptor 2, not to sys.stderr: a child process does too
    subprocess.run([sys.executable, "-c", "import os, sys; os.write(2, sys.argv[1].encode())",
                    {lines!r}], check=True)
    os.write(2, b"%s\\n" % {fatal!r}.encode())
"""


@pytest.mark.parametrize("gpu", [0, 1], ids=["no-gpu", "gpu-given"])
def test_the_cuinit_line_is_dropped_only_without_a_gpu_and_real_errors_stay(tmp_path, gpu):
    body = WRITE_TO_FD2.format(lines=f"{CUINIT}\n{REAL_ERROR}\n", fatal=FATAL)
    proc, log = run_script(tmp_path, body, gpu=gpu)
    assert proc.returncode == 0, log + proc.stderr
    for text in (log, proc.stderr):  # the log file and the real stderr alike
        assert REAL_ERROR in text.splitlines() and FATAL in text.splitlines(), text
        assert (CUINIT in text) == bool(gpu), text


def test_nothing_is_dropped_when_the_filter_is_off(tmp_path):
    body = WRITE_TO_FD2.format(lines=f"{CUINIT}\n{REAL_ERROR}\n", fatal=FATAL)
    proc, log = run_script(tmp_path, body, CNNOPT_LOG_FILTER="0")
    assert proc.returncode == 0, log + proc.stderr
    assert CUINIT in log and REAL_ERROR in log


def test_a_line_written_just_before_a_crash_reaches_the_log(tmp_path):
    proc, log = run_script(tmp_path, f"""
        runtime.quiet_stderr()
        os.write(2, b"%s\\n" % {FATAL!r}.encode())
        os.kill(os.getpid(), 9)  # like abort() after absl's fatal line: no atexit, no flush
    """)
    assert proc.returncode == -9
    assert FATAL in log.splitlines() and FATAL in proc.stderr.splitlines()


def test_an_uncaught_error_is_logged_once_with_its_traceback(tmp_path):
    proc, log = run_script(tmp_path, """
        runtime.quiet_stderr()
        raise ValueError("boom")
    """)
    assert proc.returncode == 1
    # one record with its traceback: not a second copy through file descriptor 2
    assert log.count("ValueError: boom") == 2 and log.count("Traceback") == 1, log
    assert "ERROR cnnopt: ERROR: ValueError: boom" in log
    assert proc.stderr.count("Traceback") == 1, proc.stderr
