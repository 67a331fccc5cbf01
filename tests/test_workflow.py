"""The whole workflow, run by the real Snakemake on tiny data and on a slice of the mirror."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd
import pytest

from datasets import (make_canonical_python_archive, make_symlink_tar, make_traversal_tar,
                      serve_directory, truncate)
from workflow_helpers import config_args, copy_workflow, run_ids, snakemake

SMOKE = ["--configfile", "config/smoke.yaml"]
DIVERGE = str(Path(__file__).parent / "configs" / "diverge.yaml")
TINY = {"validation_size": 100, "max_train_images": 0, "max_test_images": 0}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke DAG end to end, data downloaded from a local HTTP server with its md5."""
    served = tmp_path_factory.mktemp("served")
    md5 = make_canonical_python_archive(served / "cifar-10-python.tar.gz",
                                        n_train_per_class=60, n_test_per_class=20)
    wf = copy_workflow(tmp_path_factory.mktemp("wf"))
    with serve_directory(served) as url:
        args = [*SMOKE, DIVERGE, *config_args(threads=1, data_source=f"{url}/cifar-10-python.tar.gz",
                                     data_checksum=f"md5:{md5}", **TINY)]
        proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return wf, args


def test_smoke_dag_produces_every_output(smoke_run):
    wf, _ = smoke_run
    runs = pd.read_csv(wf / "results/tables/runs.csv")
    expected = run_ids("config/smoke.yaml", DIVERGE)
    assert {"sgd-explode-s0", "adam-final_no_batchnorm-s0", "sgd-final_no_momentum-s0"} <= expected
    assert set(runs["run_id"]) == expected
    for rid in expected:
        folder = wf / "results/runs" / rid
        for name in ("model.keras", "history.csv", "metrics.json", "run.json", "evaluation.json"):
            assert (folder / name).stat().st_size > 0, f"{rid}/{name}"
        assert (wf / f"results/logs/train/{rid}.log").read_text().count("epoch ") >= 2
        assert (wf / f"results/benchmarks/train/{rid}.tsv").exists()
    table1 = pd.read_csv(wf / "results/tables/table1.csv")
    assert sorted(table1["optimizer"]) == ["adam", "adamax", "rmsprop", "sgd"]
    assert table1.set_index("optimizer").loc["adam", "paper_final"] == 85.5
    twins = {rid.rsplit("-s", 1)[0] for rid in expected if "-final_no_" in rid}
    assert len(pd.read_csv(wf / "results/tables/ablation.csv")) == len(twins) == 7
    for fig in ("optimizer_adam", "optimizer_sgd", "optimizer_rmsprop", "optimizer_adamax",
                "val_accuracy_vs_epoch", "val_accuracy_vs_seconds", "final_accuracy",
                "lr_schedules", "confusion_best"):
        assert (wf / f"results/figures/{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_diverging_run_is_recorded_and_the_dag_completes(smoke_run):
    wf, _ = smoke_run
    metrics = json.loads((wf / "results/runs/sgd-explode-s0/metrics.json").read_text())
    assert metrics["diverged"] and metrics["diverged_epoch"] >= 1
    runs = pd.read_csv(wf / "results/tables/runs.csv").set_index("run_id")
    assert bool(runs.loc["sgd-explode-s0", "diverged"])
    assert not runs.drop("sgd-explode-s0")["diverged"].astype(bool).any()
    html = (wf / "results/report/report.html").read_text()
    assert "diverged at epoch" in html


def test_smoke_data_came_through_the_download_and_checksum(smoke_run):
    wf, _ = smoke_run
    assert (wf / "results/data/download/cifar-10-python.tar.gz").exists()
    manifest = json.loads((wf / "results/data/manifest.json").read_text())
    assert manifest["format"] == "cifar10-python"
    assert manifest["checksum_verified"].startswith("md5:")
    assert manifest["counts"]["train"]["cat"] == 60


def test_smoke_report_is_self_contained_and_names_the_paper(smoke_run):
    wf, _ = smoke_run
    html = (wf / "results/report/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 9
    assert "85.5" in html and "70.71" in html
    assert 'src="results' not in html and "src='results" not in html


def test_smoke_report_opens_with_every_claim_judged(smoke_run):
    from cnnopt import verdicts

    wf, _ = smoke_run
    ids = [c["id"] for c in verdicts.load_claims()]
    claims = pd.read_csv(wf / "results/tables/claims.csv")
    assert list(claims["id"]) == ids
    # one seed: no claim can be decided, and each row says why
    assert set(claims["verdict"]) <= {"inconclusive", "untested"}
    assert claims["reason"].str.len().min() > 10
    html = (wf / "results/report/report.html").read_text()
    assert html.index('id="claims-table"') < html.index('id="methodology"')
    for cid in ids:
        assert f'id="claim-{cid}"' in html
    assert 'id="deviations"' in html and "reduced scale" in html


def test_the_learned_models_beat_chance(smoke_run):
    wf, _ = smoke_run
    runs = pd.read_csv(wf / "results/tables/runs.csv").set_index("run_id")
    assert runs["test_accuracy"].max() > 30  # 10 classes: chance is 10 %


def test_rerun_with_nothing_changed_plans_nothing(smoke_run):
    wf, args = smoke_run
    proc = snakemake(wf, "-n", *args)  # the server is gone: nothing may need it
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Nothing to be done" in proc.stdout


def test_default_config_plans_the_whole_study(tmp_path):
    wf = copy_workflow(tmp_path)
    proc = snakemake(wf, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = dict(line.split() for line in proc.stdout.splitlines()
                  if line.strip() and line.split()[-1].isdigit() and len(line.split()) == 2)
    planned = len(run_ids())  # one training and one evaluation per run of the default grid
    assert planned == 32 and counts["train"] == counts["evaluate"] == str(planned)
    for rule in ("download_data", "prepare_data", "aggregate", "figures", "report", "all"):
        assert counts[rule] == "1"


def test_lint_is_clean(tmp_path):
    wf = copy_workflow(tmp_path)
    proc = snakemake(wf, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Lints for" not in proc.stdout, proc.stdout[-3000:]


def _fails_cleanly(wf, proc, *needles):
    assert proc.returncode != 0
    for needle in needles:
        assert needle in proc.stdout, proc.stdout[-3000:]
    assert not (wf / "results/data/cifar10.npz").exists()
    assert not (wf / "results/data/manifest.json").exists()
    assert not list((wf / "results").rglob("*.part*")) if (wf / "results").exists() else True


def test_wrong_checksum_fails_and_leaves_nothing(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    make_canonical_python_archive(served / "cifar-10-python.tar.gz")
    wf = copy_workflow(tmp_path / "wf")
    with serve_directory(served) as url:
        proc = snakemake(wf, "--cores", "1", *SMOKE, *config_args(
            data_source=f"{url}/cifar-10-python.tar.gz", data_checksum="md5:" + "0" * 32))
    _fails_cleanly(wf, proc, "checksum")
    assert not (wf / "results/data/download/cifar-10-python.tar.gz").exists()


@pytest.mark.parametrize("kind", ["truncated", "traversal", "symlink"])
def test_bad_archive_fails_and_leaves_nothing(tmp_path, kind):
    archive = tmp_path / "data.tar.gz"
    if kind == "truncated":
        make_canonical_python_archive(archive, n_train_per_class=30)
        truncate(archive, 0.5)
    elif kind == "traversal":
        make_traversal_tar(archive)
    else:
        make_symlink_tar(archive)
    wf = copy_workflow(tmp_path / "wf")
    proc = snakemake(wf, "--cores", "1", *SMOKE, *config_args(data_source=archive))
    _fails_cleanly(wf, proc, "Error in rule prepare_data")
    log = (wf / "results/logs/prepare_data.log").read_text()
    assert "ERROR:" in log and len(log.strip().splitlines()[-1]) < 400
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_optimizer_stops_before_any_job(tmp_path):
    wf = copy_workflow(tmp_path)
    proc = snakemake(wf, "--cores", "1", "--config",
                     "grid=[{'optimizers': ['adagrad'], 'variants': ['initial']}]")
    assert proc.returncode != 0
    assert "unknown optimizer 'adagrad'" in proc.stdout, proc.stdout[-2000:]
    assert not (wf / "results").exists()


def test_real_mirror_subset_learns(tmp_path, mirror):
    """A short run on a real slice of CIFAR-10 must score far above chance."""
    wf = copy_workflow(tmp_path)
    target = "results/runs/adam-baseline-s0/evaluation.json"
    proc = snakemake(wf, target, "--cores", "2", *SMOKE, *config_args(
        data_source=mirror, max_train_images=10000, max_test_images=2000))
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = json.loads((wf / target).read_text())
    assert result["test_accuracy"] > 0.35  # chance is 0.10
    assert sum(map(sum, result["confusion_matrix"])) == 2000


def planned(wf, args):
    """Jobs per rule that ``snakemake -n`` plans (empty when there is nothing to do)."""
    proc = snakemake(wf, "-n", "--quiet", "rules", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()
            and line.split()[0] != "total"}


DOWNSTREAM = {"aggregate": 1, "figures": 1, "report": 1, "all": 1}


def test_editing_one_hyperparameter_reruns_only_that_optimizers_runs(smoke_run):
    wf, args = smoke_run
    # rmsprop's final variant sets rho itself, so only the initial run is touched
    plan = planned(wf, [*args, "optimizers={rmsprop: {rho: 0.8}}"])
    assert plan == {"train": 1, "evaluate": 1, **DOWNSTREAM}
    # Snakemake 9.27's --list-changes params lists every output (its ParamsChange.__or__
    # keeps the files of unchanged jobs); --summary's status column is exact.
    proc = snakemake(wf, "--summary", *args, "optimizers={rmsprop: {rho: 0.8}}")
    changed = {line.split("\t")[0] for line in proc.stdout.splitlines()
               if "params changed" in line}
    assert "results/runs/rmsprop-initial-s0/model.keras" in changed
    runs = {path.split("/")[2] for path in changed if path.startswith("results/runs/")}
    assert runs == {"rmsprop-initial-s0"}
    assert changed - {p for p in changed if p.startswith("results/runs/")} <= {
        "results/report/report.html"}  # the report shows the whole config


def test_adding_a_seed_adds_only_the_new_runs(smoke_run):
    wf, args = smoke_run
    n_runs = len(pd.read_csv(wf / "results/tables/runs.csv"))
    plan = planned(wf, [*args, "seeds=[0,1]"])
    assert plan == {"train": n_runs, "evaluate": n_runs, **DOWNSTREAM}


@contextlib.contextmanager
def appended(path: Path, text: str):
    """``path`` with ``text`` appended for the duration of the block."""
    original = path.read_text()
    path.write_text(original + text)
    try:
        yield
    finally:
        path.write_text(original)


def test_a_training_code_change_reruns_training(smoke_run):
    wf, args = smoke_run
    with appended(wf / "workflow/lib/cnnopt/train.py", "\n# changed\n"):
        plan = planned(wf, args)
    n_runs = len(pd.read_csv(wf / "results/tables/runs.csv"))
    assert plan == {"train": n_runs, "evaluate": n_runs, **DOWNSTREAM}


def test_a_template_change_reruns_only_the_report(smoke_run):
    wf, args = smoke_run
    with appended(wf / "report/template.html.j2", "\n"):
        plan = planned(wf, args)
    assert plan == {"report": 1, "all": 1}
