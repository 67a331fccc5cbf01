"""The workflow on every Keras backend: the smoke DAG under KERAS_BACKEND=jax and =torch.

TensorFlow runs the whole test suite; JAX and PyTorch (requirements-jax.txt,
requirements-torch.txt, CPU wheels; CI installs both) each run the smoke DAG here, every rule
from the download to the report, and the kill-and-resume test (tests/test_resume.py).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from datasets import make_canonical_python_archive
from workflow_helpers import OTHER_BACKENDS, ROOT, config_args, copy_workflow, run_ids, snakemake

pytestmark = [pytest.mark.backends, pytest.mark.dag, pytest.mark.slow]

SMALL_GRID = str(ROOT / "tests" / "configs" / "small_grid.yaml")


@pytest.fixture(scope="module", params=OTHER_BACKENDS)
def backend_run(request, tmp_path_factory):
    backend = request.param
    root = tmp_path_factory.mktemp(backend)
    archive = root / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=60, n_test_per_class=20)
    wf = copy_workflow(root / "wf")
    args = ["--configfile", "config/smoke.yaml", SMALL_GRID, *config_args(
        data_source=archive, data_checksum=f"md5:{md5}", validation_size=100,
        max_train_images=0, max_test_images=0, threads=1)]
    proc = snakemake(wf, "--cores", "2", *args, env={"KERAS_BACKEND": backend})
    assert proc.returncode == 0, proc.stdout[-4000:]
    return backend, wf


def test_the_smoke_dag_runs_every_rule_on_the_backend(backend_run):
    backend, wf = backend_run
    expected = run_ids("config/smoke.yaml", SMALL_GRID)
    assert len(expected) == 5
    for rid in expected:
        metrics = json.loads((wf / f"results/runs/{rid}/metrics.json").read_text())
        assert metrics["backend"] == backend and metrics["device"].startswith("cpu")
        assert metrics["versions"][backend]  # the backend's version is recorded
        assert json.loads((wf / f"results/runs/{rid}/evaluation.json").read_text())["test_accuracy"] > 0.1
    runs = pd.read_csv(wf / "results/tables/runs.csv")
    assert set(runs["backend"]) == {backend}
    page = (wf / "results/report/report.html").read_text()
    assert backend in page and "data:image/png;base64," in page
