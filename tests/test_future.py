"""The paper's future work in the DAG (config/future.yaml), run tiny: candidates -> select ->
tuned runs -> tables, figures and the report's "Future work, answered" section."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datasets import make_canonical_python_archive
from workflow_helpers import ROOT, config_args, copy_workflow, snakemake

from cnnopt.config import grid, schema, searches

pytestmark = pytest.mark.dag

FUTURE_SMOKE = str(ROOT / "tests" / "configs" / "future_smoke.yaml")
TINY = {"validation_size": 100, "max_train_images": 0, "max_test_images": 0, "threads": 1}


def merged_config(*files) -> dict:
    cfg: dict = {}
    for path in ("config/config.yaml", *files):
        cfg = grid.deep_merge(cfg, yaml.safe_load((ROOT / path).read_text()))
    return schema.validate(cfg)


@pytest.fixture(scope="module")
def future_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("future")
    archive = root / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=60, n_test_per_class=20)
    wf = copy_workflow(root / "wf")
    args = ["--configfile", "config/smoke.yaml", FUTURE_SMOKE,
            *config_args(data_source=archive, data_checksum=f"md5:{md5}", **TINY)]
    proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return wf, args


def planned_jobs(wf, args) -> dict[str, list[str]]:
    """Rule -> the run (or search/optimizer) of each job ``snakemake -n`` plans."""
    proc = snakemake(wf, "-n", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        wildcards = re.search(r"wildcards: (.*)", block)
        jobs.setdefault(rule, []).append(wildcards.group(1) if wildcards else "")
    return jobs


def test_future_config_plans_candidates_select_and_tuned_runs(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    cfg = merged_config("config/future.yaml")
    tuning = searches.expand_tuning(cfg)
    jobs = planned_jobs(wf, ["--configfile", "config/future.yaml"])
    trained = {re.sub(r"^run=", "", w) for w in jobs["train"]}
    assert set(tuning) <= trained
    assert trained - set(tuning) == set(grid.expand_runs(cfg))  # the study, unchanged
    selections = {f"search={s}, optimizer={o}" for s, search in cfg["tuning"]["searches"].items()
                  for o in search["optimizers"]}
    assert set(jobs["select"]) == selections
    assert {"nadam", "amsgrad", "adam", "sgd", "rmsprop", "adamax"} <= {
        o for s in cfg["tuning"]["searches"].values() for o in s["optimizers"]}
    evaluated = {re.sub(r"^run=", "", w) for w in jobs["evaluate"]}
    assert not {r for r in evaluated if tuning.get(r, {}).get("role") == "candidate"}
    assert set(searches.tuned_runs(tuning)) <= evaluated
    assert len(jobs["tuning_tables"]) == len(jobs["tuning_figures"]) == len(jobs["report"]) == 1


def test_every_output_of_the_tuning_study_exists(future_run):
    wf, _ = future_run
    cfg = merged_config("config/smoke.yaml", FUTURE_SMOKE)
    runs = searches.expand_tuning(cfg)
    for search, block in cfg["tuning"]["searches"].items():
        for opt in block["optimizers"]:
            choice = json.loads((wf / f"results/tuning/{search}/{opt}.json").read_text())
            assert {c["run_id"] for c in choice["candidates"]} == set(
                searches.tuning_candidates(runs, search, opt))
            for rid in searches.tuned_runs(runs, search, opt):  # trained with the chosen rate
                spec = json.loads((wf / f"results/runs/{rid}/run.json").read_text())
                assert spec["optimizer_config"]["learning_rate"] == choice["learning_rate"]
                assert spec["chosen_from"] == choice["run_id"]
                assert (wf / f"results/runs/{rid}/evaluation.json").exists()
        assert (wf / f"results/figures/tuning_{search}.png").read_bytes()[:4] == b"\x89PNG"
    for rid, spec in runs.items():
        if spec["role"] == "candidate":  # chosen on validation: never scored on the test set
            assert "test_accuracy" not in json.loads((wf / f"results/runs/{rid}/metrics.json").read_text())
            assert not (wf / f"results/runs/{rid}/evaluation.json").exists()
    tuned = pd.read_csv(wf / "results/tables/tuned.csv")
    assert len(tuned) == sum(len(b["optimizers"]) for b in cfg["tuning"]["searches"].values())
    claims = pd.read_csv(wf / "results/tables/tuned_claims.csv")
    assert set(claims["id"]) == {"blocks_rank_adam_sgd", "resnet8_rank_adam_sgd"}
    assert set(claims["verdict"]) == {"inconclusive"}  # one seed
    study = pd.read_csv(wf / "results/tables/runs.csv")  # the study's tables hold its runs only
    assert set(study["role"]) == {"initial", "final"}


def test_a_diverging_candidate_is_recorded_and_not_chosen(future_run):
    wf, _ = future_run
    choice = json.loads((wf / "results/tuning/blocks/sgd.json").read_text())
    huge = next(c for c in choice["candidates"] if c["learning_rate"] == 1.0e30)
    assert huge["diverged"] and huge["score"] is None and huge["diverged_epoch"] >= 1
    assert choice["learning_rate"] == 0.03
    table = pd.read_csv(wf / "results/tables/tuning_candidates.csv")
    row = table[(table["optimizer"] == "sgd") & (table["learning_rate"] == 1.0e30)].iloc[0]
    assert bool(row["diverged"]) and not bool(row["chosen"])


def test_the_report_answers_the_future_work(future_run):
    wf, _ = future_run
    page = (wf / "results/report/report.html").read_text()
    section = page[page.index('id="future"'):page.index('id="reproducibility"')]
    assert "6. Future work, answered" in section
    assert section.count("data:image/png;base64,") == 2  # one figure per search
    for label in ("The smoke network", "A CIFAR ResNet of 8 layers", "AMSGrad"):
        assert label in section
    assert 'id="claim-blocks_rank_adam_sgd"' in section and "diverged" in section
    assert "ResNet-8" in section


def test_editing_one_optimizers_candidates_reruns_only_its_search_and_tuned_runs(future_run, tmp_path):
    wf, args = future_run
    cfg = yaml.safe_load(Path(FUTURE_SMOKE).read_text())
    cfg["tuning"]["searches"]["blocks"]["optimizers"]["adam"]["rates"].append(3.0e-3)
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(wf, [a if a != FUTURE_SMOKE else str(edited) for a in args])
    assert sorted(jobs["train"]) == ["run=adam-blocks_lr0.003-s100", "run=adam-blocks_tuned-s0"]
    assert jobs["select"] == ["search=blocks, optimizer=adam"]
    assert jobs["evaluate"] == ["run=adam-blocks_tuned-s0"]
    assert set(jobs) == {"train", "select", "evaluate", "tuning_tables", "tuning_figures",
                         "report", "all"}
