"""The sequential design in the DAG (verdicts.sequential; workflow/rules/sequential.smk), run
tiny: look 1 decides one claim and grows the arms of another, whose new seeds train and look 2
judges; a rerun plans nothing; a lost look resumes at that look; the report says which look
decided what and what the design saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, jobs_of, run_tiny, snakemake

pytestmark = pytest.mark.dag

SMOKE = str(ROOT / "tests" / "configs" / "sequential_smoke.yaml")
CLAIMS = str(ROOT / "tests" / "configs" / "sequential_claims.yaml")
STUDY = {f"{o}-initial-s{s}" for o in ("adam", "sgd", "rmsprop") for s in (0, 1)} | {
    "adam-initial_twin-s0", "adam-initial_twin-s1"}


@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory):
    return run_tiny(tmp_path_factory.mktemp("sequential"), SMOKE, claims=CLAIMS)


def trained(wf) -> set[str]:
    return {p.name for p in (wf / "results" / "runs").iterdir() if (p / "metrics.json").exists()}


def test_the_first_look_decides_one_claim_and_grows_the_arms_of_the_other(sequential_run):
    wf, _ = sequential_run
    first = json.loads((wf / "results/sequential/look1.json").read_text())
    assert first["decided"] == ["far_value"]
    assert [g["id"] for g in first["grown"]] == ["twin"]
    assert first["grow"] == {"adam/initial": [2], "adam/initial_twin": [2]}
    assert first["why"] == {"adam/initial": ["twin"], "adam/initial_twin": ["twin"]}
    assert first["trainings_added"] == 2 and not first["done"]
    second = json.loads((wf / "results/sequential/look2.json").read_text())
    assert second["judged"] == ["twin"] and second["done"]
    assert not (wf / "results/sequential/look3.json").exists()
    # exactly the planned seeds trained: the grown arms' third seed, nothing else
    assert trained(wf) == STUDY | {"adam-initial-s2", "adam-initial_twin-s2"}


def test_the_claims_table_keeps_the_look_that_decided_each_claim(sequential_run):
    wf, _ = sequential_run
    claims = pd.read_csv(wf / "results/tables/claims.csv").set_index("id")
    assert claims.loc["far_value", "verdict"] == "not reproduced"
    assert (claims.loc["far_value", "look"], claims.loc["far_value", "seeds"]) == (1, 2)
    assert (claims.loc["twin", "look"], claims.loc["twin", "seeds"]) == (2, 3)
    assert claims.loc["twin", "n"] == 3
    summary = json.loads((wf / "results/tables/summary.json").read_text())["sequential"]
    assert [look["decided"] for look in summary["looks"]][0] == 1
    assert summary["trainings"] == 10 and summary["trainings_full"] == 12
    assert summary["trainings_saved"] == 2 and summary["hours_saved"] > 0
    runs = pd.read_csv(wf / "results/tables/runs.csv")
    assert len(runs) == 10  # the tables hold every run the looks trained
    for name in ("sequential_calibration", "sequential_power"):
        assert len(pd.read_csv(wf / f"results/tables/{name}.csv"))
    html = (wf / "results/report/report.html").read_text()
    assert 'id="sequential"' in html and "trainings saved" in html


def test_a_rerun_plans_nothing_and_a_lost_look_resumes_there(sequential_run):
    wf, args = sequential_run
    proc = snakemake(wf, "-n", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]
    # a run killed during look 2's trainings: one of its runs, look 2's files and everything
    # after them are missing; the rerun trains that run, judges look 2, and keeps look 1
    shutil.rmtree(wf / "results/runs/adam-initial_twin-s2")
    for path in (*(wf / "results/sequential").glob("look2*"), *(wf / "results/tables").iterdir(),
                 wf / "results/report/report.html"):
        path.unlink()
    look1 = (wf / "results/sequential/look1.json").stat().st_mtime
    before = {p: p.stat().st_mtime for p in (wf / "results/runs").glob("*/metrics.json")}
    proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = jobs_of(proc.stdout)
    assert sorted(j for j in jobs if j[0] in ("train", "look")) == [
        ("look", "k=2"), ("train", "run=adam-initial_twin-s2")], jobs
    assert (wf / "results/sequential/look1.json").stat().st_mtime == look1
    assert {p: p.stat().st_mtime for p in before} == before
    assert json.loads((wf / "results/sequential/look2.json").read_text())["judged"] == ["twin"]
    assert (wf / "results/report/report.html").exists()


def test_editing_the_rule_replans_the_looks_and_trains_nothing_before_they_ask(sequential_run, tmp_path):
    # max_seeds from 3 to 4 (seeds to decide beyond the last look now count too): the looks are
    # judged and planned again; no training is planned before a look asks for it, and the
    # trained runs stay
    wf, args = sequential_run
    edited = tmp_path / "edited.yaml"
    config = yaml.safe_load(Path(SMOKE).read_text(encoding="utf-8"))
    config["verdicts"]["sequential"]["max_seeds"] = 4
    edited.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = snakemake(wf, "-n", *[str(edited) if a == SMOKE else a for a in args])
    assert proc.returncode == 0, proc.stdout[-3000:]
    planned = jobs_of(proc.stdout)
    assert ("look", "k=1") in planned
    assert not [j for j in planned if j[0] in ("train", "evaluate", "prepare_data")], planned
