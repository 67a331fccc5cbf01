"""Run the real Snakemake workflow in a scratch copy of the repository."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
COPIED = ("Snakefile", "workflow", "config", "report", "envs")
#: The other Keras backends, as test parameters that skip where one is not installed
#: (requirements-jax.txt, requirements-torch.txt; CI installs both).
OTHER_BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(
    importlib.util.find_spec(b) is None, reason=f"{b} is not installed (pip install -r requirements-{b}.txt)"))
    for b in ("jax", "torch")]


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (no results) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` (``env``: extra environment variables); return the
    finished process (stdout and stderr merged). In a copy of the workflow (copy_workflow)
    the copy's own library is the cnnopt package that runs, as if installed editable there:
    a test that edits a library module of the copy sees its jobs rerun."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    if (lib := Path(workdir) / "workflow" / "lib" / "cnnopt").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lib.parent), env.get("PYTHONPATH")]))
    return subprocess.run(
        [str(SNAKEMAKE), *args], cwd=workdir, env=env, text=True, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


#: A tiny study: every image of the synthetic archive, 100 of them for validation, one thread.
TINY = {"validation_size": 100, "max_train_images": 0, "max_test_images": 0, "threads": 1}


def run_tiny(root: Path, *config_files: str, **config) -> tuple[Path, list[str]]:
    """A fresh copy of the workflow in ``root``/wf, run on 2 cores over a synthetic CIFAR-10
    archive (60 training and 20 test images per class) with config/smoke.yaml, then
    ``config_files`` layered, ``TINY`` and ``config``: the copy and the arguments that ran it."""
    from datasets import make_canonical_python_archive

    archive = root / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=60, n_test_per_class=20)
    wf = copy_workflow(root / "wf")
    args = ["--configfile", "config/smoke.yaml", *config_files,
            *config_args(data_source=archive, data_checksum=f"md5:{md5}", **TINY, **config)]
    proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return wf, args


def jobs_of(log: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of each job a Snakemake log shows, in order (planned or run)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", log)[1:]:
        rule = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block).group(1)
        wildcards = re.search(r"wildcards: (.*)", block)
        jobs.append((rule, wildcards.group(1) if wildcards else ""))
    return jobs


def run_ids(*config_files: str | Path, **overrides) -> set[str]:
    """The run ids that config/config.yaml layered with ``config_files`` (as --configfile
    does) and ``overrides`` expands to: what a test of that DAG expects to find."""
    import yaml

    from cnnopt.config import grid, schema

    merged: dict = {}
    for path in (ROOT / "config" / "config.yaml", *config_files):
        with open(ROOT / path, encoding="utf-8") as fh:
            merged = grid.deep_merge(merged, yaml.safe_load(fh))
    return set(grid.expand_runs(schema.validate(grid.deep_merge(merged, overrides))))


def config_args(**values) -> list[str]:
    """``--config key=value ...`` for snakemake's command line."""
    return ["--config", *(f"{k}={v}" for k, v in values.items())] if values else []


def assert_same_weights(model_a: Path, model_b: Path, atol: float = 1e-6) -> None:
    """The two saved Keras models hold the same weights (to ``atol``): the same training.
    (What the runs' test accuracies would say, without scoring the test set again.)"""
    import keras
    import numpy as np

    a, b = (keras.saving.load_model(p, compile=False).get_weights() for p in (model_a, model_b))
    assert len(a) == len(b) and len(a) > 0
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=atol)


def rule_scripts(root: Path = ROOT) -> dict[str, Path]:
    """Rule name -> its script, read from the rule modules of the workflow in ``root``."""
    out = {}
    for smk in (root / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^\s*(?:rule|checkpoint) ", smk.read_text(), flags=re.M)[1:]:
            script = re.search(r'"\.\./scripts/(\w+\.py)"', block)
            if script:
                out[block.split(":", 1)[0].strip()] = root / "workflow/scripts" / script.group(1)
    return out


def documented_claims() -> str:
    """The claims file of config/README.md's example (a two-optimizer study's three claims:
    adam_over_sgd, adam_final_value, sgd_faster), as written there."""
    text = (ROOT / "config" / "README.md").read_text(encoding="utf-8")
    return re.search(r"```yaml\n# config/my_claims.yaml\n(.*?)```", text, re.S).group(1)
