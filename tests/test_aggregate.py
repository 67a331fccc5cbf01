"""Aggregation: Table 1, ablation and summary computed from synthetic run folders."""

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

import fakeruns
from cnnopt import aggregate as agg
from cnnopt.errors import CnnoptError
from cnnopt.paper import PAPER_BASELINE, PAPER_TABLE1


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    return fakeruns.make_runs(tmp_path_factory.mktemp("runs"))


def _metrics(run_dirs):
    return {d.name: json.loads((d / "metrics.json").read_text()) for d in run_dirs}


def _expected(metrics, opt, role):
    accs = [100 * m["test_accuracy"] for m in metrics.values()
            if m["optimizer"] == opt and m["role"] == role and not m["diverged"]]
    return statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else math.nan), len(accs)


def test_table1_matches_hand_computed_means(run_dirs):
    metrics = _metrics(run_dirs)
    table = agg.table1(agg.collect_runs(run_dirs)).set_index("optimizer")
    assert list(table.index) == ["adam", "sgd", "rmsprop", "adamax"]
    for opt in table.index:
        for role in ("initial", "final"):
            mean, std, n = _expected(metrics, opt, role)
            assert table.loc[opt, role] == pytest.approx(mean)
            if math.isnan(std):
                assert math.isnan(table.loc[opt, f"{role}_std"])
            else:
                assert table.loc[opt, f"{role}_std"] == pytest.approx(std)
        assert table.loc[opt, "seeds"] == _expected(metrics, opt, "final")[2]
    assert table.loc["adam", "seeds"] == 2 and not math.isnan(table.loc["adam", "final_std"])


def test_table1_differences_against_paper(run_dirs):
    table = agg.table1(agg.collect_runs(run_dirs)).set_index("optimizer")
    for opt, paper in PAPER_TABLE1.items():
        assert table.loc[opt, "paper_initial"] == paper["initial"]
        assert table.loc[opt, "paper_final"] == paper["final"]
        assert table.loc[opt, "final_diff"] == pytest.approx(table.loc[opt, "final"] - paper["final"])
        assert table.loc[opt, "initial_diff"] == pytest.approx(table.loc[opt, "initial"] - paper["initial"])


def test_diverged_run_kept_but_excluded(run_dirs):
    metrics = _metrics(run_dirs)
    runs = agg.collect_runs(run_dirs)
    div = runs[runs["diverged"]]
    assert list(div["run_id"]) == ["rmsprop-final-s1"]
    assert div["diverged_epoch"].iloc[0] == 3
    table = agg.table1(runs).set_index("optimizer")
    ok = 100 * metrics["rmsprop-final-s0"]["test_accuracy"]
    assert table.loc["rmsprop", "final"] == pytest.approx(ok)
    assert table.loc["rmsprop", "seeds"] == 1 and table.loc["rmsprop", "diverged"] == 1
    summ = agg.summary(runs)
    assert summ["n_diverged"] == 1
    assert summ["diverged"] == [{"run_id": "rmsprop-final-s1", "diverged_epoch": 3}]


def test_ablation_grouping(run_dirs):
    metrics = _metrics(run_dirs)
    abl = agg.ablation(agg.collect_runs(run_dirs)).set_index("variant")
    assert set(abl.index) == {"noreg", "dropout", "l2", "batchnorm"}
    mean, std, n = _expected({k: m for k, m in metrics.items() if m["variant"] == "dropout"}, "adam", "ablation")
    assert abl.loc["dropout", "seeds"] == n == 2
    assert abl.loc["dropout", "test_accuracy"] == pytest.approx(mean)
    assert abl.loc["dropout", "test_accuracy_std"] == pytest.approx(std)
    assert (abl["reference"] == "noreg").all()
    ref = 100 * metrics["adam-noreg-s0"]["test_accuracy"]
    assert abl.loc["l2", "delta"] == pytest.approx(100 * metrics["adam-l2-s0"]["test_accuracy"] - ref)


def test_summary_baseline_best_and_ranking(run_dirs):
    metrics = _metrics(run_dirs)
    summ = agg.summary(agg.collect_runs(run_dirs))
    base = 100 * metrics["adam-baseline-s0"]["test_accuracy"]
    assert summ["baseline"]["test_accuracy"] == pytest.approx(base)
    assert summ["baseline"]["paper"] == PAPER_BASELINE
    assert summ["baseline"]["diff"] == pytest.approx(base - PAPER_BASELINE)
    assert summ["baseline"]["std"] is None
    scored = {k: m["test_accuracy"] for k, m in metrics.items() if m["test_accuracy"] is not None}
    assert summ["best"]["run_id"] == max(scored, key=scored.get)
    assert summ["n_runs"] == len(run_dirs)
    assert summ["ranking"]["ours"][0] == summ["best_final"]["optimizer"]


def test_aggregate_writes_four_files(run_dirs, tmp_path):
    out = {n: tmp_path / f"{n}.csv" for n in ("runs", "table1", "ablation")}
    agg.aggregate(run_dirs, out["runs"], out["table1"], out["ablation"], tmp_path / "summary.json")
    runs = pd.read_csv(out["runs"])
    for col in agg.RUN_COLUMNS:
        assert col in runs.columns
    assert len(runs) == len(run_dirs)
    assert bool(runs.set_index("run_id").loc["rmsprop-final-s1", "diverged"]) is True
    table = pd.read_csv(out["table1"])
    assert list(table.columns[:14]) == agg.TABLE1_COLUMNS[:14]
    summary = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: no NaN
    assert "NaN" not in (tmp_path / "summary.json").read_text()
    assert summary["baseline"]["paper"] == PAPER_BASELINE


def test_missing_metrics_is_a_one_line_error(run_dirs, tmp_path):
    broken = tmp_path / "adam-final-s9"
    broken.mkdir()
    (broken / "run.json").write_text((run_dirs[0] / "run.json").read_text())
    with pytest.raises(CnnoptError, match="metrics.json") as exc:
        agg.aggregate([*run_dirs, broken], tmp_path / "r.csv", tmp_path / "t.csv",
                      tmp_path / "a.csv", tmp_path / "s.json")
    assert "\n" not in str(exc.value)
    assert not any(tmp_path.glob("*.csv")) and not (tmp_path / "s.json").exists()


def test_empty_input_is_an_error(tmp_path):
    with pytest.raises(CnnoptError, match="empty"):
        agg.collect_runs([])
