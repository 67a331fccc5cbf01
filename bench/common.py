"""Helpers shared by the benchmark driver (``bench/run.py``) and its workers (``bench/worker.py``).

Nothing here imports Keras at module level: thread pools must be configured first, in the
worker process, by ``cnnopt.runtime.configure``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "workflow" / "lib"
if str(LIB) not in sys.path:
    sys.path.insert(0, str(LIB))

PYTHON = sys.executable


def synthetic_arrays(path: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A cached-array file in the format of ``cnnopt.data.prepare`` (uniform noise images).

    Throughput does not depend on pixel values, so the speed benchmarks need no real data.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.int64) % 10,
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.int64) % 10,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, class_names=np.array([f"c{i}" for i in range(10)]), **arrays)
    return path


def load_config(*files: str | Path, overrides: dict | None = None) -> dict:
    """The workflow's validated config from config files layered as Snakemake does."""
    import yaml

    from cnnopt import config as cnnconfig

    raw: dict = {}
    for name in files:
        with open(ROOT / name, encoding="utf-8") as fh:
            raw = cnnconfig.deep_merge(raw, yaml.safe_load(fh) or {})
    return cnnconfig.validate(cnnconfig.deep_merge(raw, overrides))


def run_worker(args: list[str], timeout: float = 900, env: dict | None = None) -> dict:
    """Run ``bench/worker.py ARGS`` in a fresh process (``env``: extra environment variables,
    e.g. KERAS_BACKEND); return the JSON it prints last."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run([PYTHON, str(ROOT / "bench" / "worker.py"), *args], cwd=ROOT,
                          env=env, text=True, capture_output=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def start_workers(arg_lists: list[list[str]]) -> list[subprocess.Popen]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return [subprocess.Popen([PYTHON, str(ROOT / "bench" / "worker.py"), *args], cwd=ROOT,
                             env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for args in arg_lists]


def collect(procs: list[subprocess.Popen], timeout: float = 900) -> list[dict]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"worker failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
        out.append(json.loads(lines[-1]))
    return out


def provenance() -> dict:
    """Commit, host, platform, time and Snakemake version, as the workflow's report records them."""
    from importlib.metadata import version

    from cnnopt.provenance import collect_provenance

    return collect_provenance(ROOT, version("snakemake"))


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
