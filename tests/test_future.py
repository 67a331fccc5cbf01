"""The paper's future work in the DAG (config/future.yaml), run tiny: candidates -> select ->
tuned runs -> tables, figures and the report's "Future work, answered" section."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT, copy_workflow, jobs_of, run_tiny, snakemake

from cnnopt.config import grid, schema, searches

pytestmark = pytest.mark.dag

FUTURE_SMOKE = str(ROOT / "tests" / "configs" / "future_smoke.yaml")
SEARCHES_ONLY = str(ROOT / "tests" / "configs" / "searches_only.yaml")


def merged_config(*files) -> dict:
    cfg: dict = {}
    for path in ("config/config.yaml", *files):
        cfg = grid.deep_merge(cfg, yaml.safe_load((ROOT / path).read_text()))
    return schema.validate(cfg)


@pytest.fixture(scope="module")
def future_run(tmp_path_factory):
    return run_tiny(tmp_path_factory.mktemp("future"), FUTURE_SMOKE)


def planned_jobs(wf, args) -> dict[str, list[str]]:
    """Rule -> the run (or search/optimizer) of each job ``snakemake -n`` plans."""
    proc = snakemake(wf, "-n", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    jobs: dict[str, list[str]] = {}
    for rule, wildcards in jobs_of(proc.stdout):
        jobs.setdefault(rule, []).append(wildcards)
    return jobs


@pytest.mark.parametrize("configs", [
    ["config/future.yaml"], ["config/future_resnet.yaml"],
    ["config/future.yaml", "config/future_hand_tuned.yaml"],
    ["config/future_resnet.yaml", "config/future_resnet_hand_tuned.yaml"]])
def test_a_future_config_plans_its_searches_and_only_the_study_runs_its_claims_read(tmp_path, configs):
    from cnnopt.tuning import tables

    wf = copy_workflow(tmp_path / "wf")
    cfg = merged_config(*configs)
    tuning = searches.expand_tuning(cfg)
    jobs = planned_jobs(wf, ["--configfile", *configs])
    trained = {re.sub(r"^run=", "", w) for w in jobs["train"] + jobs["train_keep"]}
    # before any rung is scored: every candidate's first rung, and the tuned runs on the seeds
    # the winners' search runs do not cover (those are adopted once chosen)
    firsts = {ids[0] for s, search in cfg["tuning"]["searches"].items() for o in search["optimizers"]
              for rate, ids in searches.search_rates(tuning, s, o).items()
              if not tuning[ids[0]].get("extension")}
    tuned = set(searches.tuned_runs(tuning))
    adopted = {r for r in tuned if tuning[r]["seed"] == cfg["tuning"]["seed"]}
    assert trained & set(tuning) == firsts | (tuned - adopted)
    assert {re.sub(r"^run=", "", w) for w in jobs["adopt"]} == adopted
    # of the default study, only the runs that the future work's claims read
    study = trained - set(tuning)
    assert study == set(grid.expand_runs(cfg))
    read = set()
    for s, search in cfg["tuning"]["searches"].items():
        present = list(search["optimizers"])
        arms = {f"{o}/{search['budget']}" for o in present}
        for claim in (tables.ranking_claims(s, s, present) + tables.newer_claims(s, s, present)
                      + tables.hand_tuned_claims(s, s, present, search["budget"], arms)):
            read |= {a for a in (claim.get("a"), claim.get("b"), *claim.get("members", []),
                                 *claim.get("others", [])) if a}
    assert {f"{tuning_spec['optimizer']}/{tuning_spec['variant']}"
            for tuning_spec in (grid.expand_runs(cfg)[r] for r in study)} <= read
    selections = {f"search={s}, optimizer={o}" for s, search in cfg["tuning"]["searches"].items()
                  for o in search["optimizers"]}
    assert {", ".join(sorted(w.split(", "))) for w in jobs["select"]} == \
        {", ".join(sorted(w.split(", "))) for w in selections}
    evaluated = {re.sub(r"^run=", "", w) for w in jobs["evaluate"]}
    assert not {r for r in evaluated if tuning.get(r, {}).get("role") == "candidate"}
    assert tuned <= evaluated
    assert len(jobs["tuning_tables"]) == len(jobs["tuning_figures"]) == len(jobs["report"]) == 1
    # alone, a study of searches: no table, calibration or figure of the paper's grid
    study_rules = {"aggregate", "calibrate", "figures"}
    assert (study_rules & set(jobs)) == (study_rules if study else set())


def test_a_study_of_searches_alone_reports_the_future_work_only(tmp_path):
    wf, args = run_tiny(tmp_path, SEARCHES_ONLY)
    results = wf / "results"
    assert not (results / "tables" / "claims.csv").exists()
    assert not (results / "tables" / "calibration.csv").exists()
    assert {p.name for p in (results / "runs").iterdir()} >= {"adam-blocks_tuned-s0", "sgd-blocks_tuned-s0"}
    tuned = pd.read_csv(results / "tables" / "tuned.csv")
    assert set(tuned["optimizer"]) == {"adam", "sgd"}
    claims = pd.read_csv(results / "tables" / "tuned_claims.csv")
    assert "hand_tuned" not in set(claims["family"])  # no reference runs: no such claim
    html = (results / "report" / "report.html").read_text()
    assert "4. Future work, answered" in html and "judged</h2>" not in html
    assert "This study trains no grid of the paper" in html
    assert "Tuning the learning rate (the future work)" in html  # its deviation row
    assert "Architecture of the initial and final runs" not in html  # the grid's rows are not
    assert "adam-blocks_tuned-s0" in html  # the tuned runs are the runs it describes
    assert "Nothing to be done" in snakemake(wf, "-n", *args).stdout
    # a deleted table and figure come back, and nothing trains again
    (results / "tables" / "tuned.csv").unlink()
    (results / "figures" / "tuning_blocks.png").unlink()
    proc = snakemake(wf, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (results / "tables" / "tuned.csv").exists()
    assert (results / "figures" / "tuning_blocks.png").exists()
    assert not [job for job in jobs_of(proc.stdout) if job[0] in ("train", "train_keep", "evaluate")]


def test_every_output_of_the_tuning_study_exists(future_run):
    wf, _ = future_run
    cfg = merged_config("config/smoke.yaml", FUTURE_SMOKE)
    runs = searches.expand_tuning(cfg)
    for search, block in cfg["tuning"]["searches"].items():
        for opt in block["optimizers"]:
            choice = json.loads((wf / f"results/tuning/{search}/{opt}.json").read_text())
            declared = searches.candidate_rates(block["optimizers"][opt]["rates"])
            assert {c["learning_rate"] for c in choice["candidates"]} == {*declared, *choice["extensions"]}
            chains = searches.search_rates(runs, search, opt)
            assert {c["run_id"] for c in choice["candidates"]} <= {r for ids in chains.values() for r in ids}
            for rid in searches.tuned_runs(runs, search, opt):  # trained with the chosen rate
                spec = json.loads((wf / f"results/runs/{rid}/run.json").read_text())
                assert spec["optimizer_config"]["learning_rate"] == choice["learning_rate"]
                assert spec["chosen_from"] == choice["run_id"]
                assert (wf / f"results/runs/{rid}/evaluation.json").exists()
        assert (wf / f"results/figures/tuning_{search}.png").read_bytes()[:4] == b"\x89PNG"
    for rid, spec in runs.items():
        if spec["role"] == "candidate" and (wf / f"results/runs/{rid}").exists():
            # chosen on validation: never scored on the test set (a rung no candidate reached,
            # or an extension no choice asked for, is not trained at all)
            assert "test_accuracy" not in json.loads((wf / f"results/runs/{rid}/metrics.json").read_text())
            assert not (wf / f"results/runs/{rid}/evaluation.json").exists()
    tuned = pd.read_csv(wf / "results/tables/tuned.csv")
    assert len(tuned) == sum(len(b["optimizers"]) for b in cfg["tuning"]["searches"].values())
    assert set(tuned["model"]) == {"last"}  # tuning.metric last_epoch: the last epoch's model
    claims = pd.read_csv(wf / "results/tables/tuned_claims.csv")
    assert set(claims["id"]) == {"blocks_rank_adam_sgd", "halved_rank_adam_sgd", "resnet8_rank_adam_sgd",
                                 "blocks_amsgrad_beats_adam"}  # the newer optimizer of the smoke searches
    assert set(claims["family"]) == {"ranking", "newer"}
    time = pd.read_csv(wf / "results/tables/time_to_target.csv")
    assert len(time) == len(tuned) and set(time["target"]) == {cfg["verdicts"]["val_target"]}
    assert (wf / "results/figures/performance_profile.png").read_bytes()[:4] == b"\x89PNG"
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
    assert section.count("data:image/png;base64,") == 4  # one figure per search, the profile
    assert "Performance profile" in section and "Time to" in section
    for label in ("The smoke network", "A CIFAR ResNet of 8 layers", "AMSGrad"):
        assert label in section
    assert 'id="claim-blocks_rank_adam_sgd"' in section and "diverged" in section
    assert "ResNet-8" in section
    # the tuned comparison names the model it reads: the one the searches chose on
    assert "of the last epoch's model (the one the searches chose on" in html.unescape(section)


def test_editing_one_optimizers_candidates_reruns_only_its_search_and_tuned_runs(future_run, tmp_path):
    wf, args = future_run
    cfg = yaml.safe_load(Path(FUTURE_SMOKE).read_text())
    cfg["tuning"]["searches"]["blocks"]["optimizers"]["adam"]["rates"].append(3.0e-3)
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(wf, [a if a != FUTURE_SMOKE else str(edited) for a in args])
    assert jobs["train"] == ["run=adam-blocks_lr0.003-s0"]
    # the tuned run on the candidates' seed is the winner's search run, copied once chosen
    assert jobs["adopt"] == ["run=adam-blocks_tuned-s0"]
    assert jobs["rung"] == ["k=0, optimizer=adam, search=blocks"] or \
        jobs["rung"] == ["search=blocks, optimizer=adam, k=0"]
    assert len(jobs["choose"]) == len(jobs["select"]) == 1 and "search=blocks" in jobs["select"][0]
    assert jobs["evaluate"] == ["run=adam-blocks_tuned-s0"]
    assert set(jobs) == {"train", "rung", "choose", "select", "adopt", "evaluate", "tuning_tables",
                         "tuning_figures", "report", "all"}


def test_successive_halving_promotes_continues_adopts_and_extends(future_run):
    wf, _ = future_run
    cfg = merged_config("config/smoke.yaml", FUTURE_SMOKE)
    runs = searches.expand_tuning(cfg)
    for opt in ("adam", "sgd"):
        rung0 = json.loads((wf / f"results/tuning/halved/{opt}/rung0.json").read_text())
        rung1 = json.loads((wf / f"results/tuning/halved/{opt}/rung1.json").read_text())
        assert len(rung0["entrants"]) == 2 and len(rung0["promoted"]) == 1  # keep 0.5
        promoted = rung0["promoted"][0]
        [entrant] = rung1["entrants"]
        assert runs[entrant["run_id"]]["continues"] == promoted and rung1["promoted"] == []
        # the promoted candidate went on from its checkpoint: epoch 1 is the rung-0 run's, as trained
        first = pd.read_csv(wf / f"results/runs/{promoted}/history.csv")
        second = pd.read_csv(wf / f"results/runs/{entrant['run_id']}/history.csv")
        assert list(second["epoch"]) == [1, 2]
        pd.testing.assert_frame_equal(second.iloc[:1], first)
        assert "continuing from" in (wf / f"results/logs/train/{entrant['run_id']}.log").read_text()
        # two candidates: the winner sits at an edge, so one rate beyond it was tried at the final
        # budget (trained through both rungs) and the choice made again; none is left after it
        round0 = json.loads((wf / f"results/tuning/halved/{opt}/round0.json").read_text())
        assert round0["at_edge"] and round0["extend_to"] is not None
        chain = searches.search_rates(runs, "halved", opt)[round0["extend_to"]]
        assert all((wf / f"results/runs/{rid}/metrics.json").exists() for rid in chain)
        choice = json.loads((wf / f"results/tuning/halved/{opt}.json").read_text())
        assert choice["extensions"] == [round0["extend_to"]] and choice["extend_to"] is None
        assert choice["round"] == 1 and len(choice["candidates"]) == 3
        # the tuned run on the candidates' seed is the winner's final-budget run, copied
        tuned = json.loads((wf / f"results/runs/{opt}-halved_tuned-s0/run.json").read_text())
        assert tuned["shared_with"] == choice["run_id"] and tuned["chosen_from"] == choice["run_id"]
        assert tuned["optimizer_config"]["learning_rate"] == choice["learning_rate"]
        assert (wf / f"results/runs/{opt}-halved_tuned-s0/evaluation.json").exists()
