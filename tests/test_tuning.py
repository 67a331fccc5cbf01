"""The learning-rate search: candidate rates, the runs a search expands to, the choice, the
tuned runs' rate, and the tables and verdicts of the tuned comparison."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cnnopt.common.errors import CnnoptError, ConfigError
from cnnopt.config import grid, schema, searches
from cnnopt.judge import claims as judge_claims
from cnnopt.judge.rules import Rules
from cnnopt.tuning import choice
from cnnopt.tuning import select as tuning
from cnnopt.tuning import tables as tuning_tables

ROOT = Path(__file__).resolve().parents[1]


def layered(*files, **overrides) -> dict:
    merged: dict = {}
    for path in ("config/config.yaml", *files):
        merged = grid.deep_merge(merged, yaml.safe_load((ROOT / path).read_text()))
    return grid.deep_merge(merged, overrides)


def future() -> dict:
    return schema.validate(layered("config/future.yaml"))


# ---------------------------------------------------------------- candidate rates
def test_a_log_spaced_grid_spans_low_to_high_in_equal_ratios():
    rates = searches.candidate_rates({"low": 1e-4, "high": 1e-2, "points": 5})
    assert rates == [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2]
    assert np.allclose(np.diff(np.log10(rates)), 0.5, atol=1e-3)


def test_a_random_sample_is_log_uniform_seeded_and_inside_its_bounds():
    spec = {"low": 1e-5, "high": 1.0, "n": 200, "seed": 7}
    rates = searches.candidate_rates(spec)
    assert rates == searches.candidate_rates(spec)  # the seed fixes it
    assert rates != searches.candidate_rates(spec | {"seed": 8})
    assert min(rates) >= 1e-5 and max(rates) <= 1.0
    logs = np.log10(rates)  # log-uniform: about as many per decade
    per_decade = np.histogram(logs, bins=5, range=(-5, 0))[0]
    assert per_decade.min() > 20


def test_a_list_is_sorted_and_rounded_to_three_digits():
    assert searches.candidate_rates([0.1, 0.0123456, 10]) == [0.0123, 0.1, 10.0]


@pytest.mark.parametrize("rates, needle", [
    ({"low": 0.1, "high": 0.01, "points": 3}, "need 0 < low < high"),
    ([0.01, 0.01], "at least two distinct rates"),
])
def test_bad_candidate_rates_are_refused_in_one_line(rates, needle):
    cfg = layered("config/future.yaml")
    cfg["tuning"]["searches"]["blocks"]["optimizers"]["adam"]["rates"] = rates
    with pytest.raises(ConfigError, match=needle) as err:
        schema.validate(cfg)
    assert "tuning/searches/blocks/optimizers/adam/rates" in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- the runs of a search
def test_future_config_expands_to_candidates_and_tuned_runs_of_one_budget():
    cfg = future()
    runs = searches.expand_tuning(cfg)
    blocks = cfg["tuning"]["searches"]["blocks"]
    final = cfg["variants"]["final"]["epochs"]
    for opt, entry in blocks["optimizers"].items():
        chains = searches.search_rates(runs, "blocks", opt)
        declared = searches.candidate_rates(entry["rates"])
        assert len(declared) == 6  # the same trial budget for every optimizer
        assert set(declared) < set(chains) and len(chains) == len(declared) + 2  # + one step beyond each edge
        for rate, ids in chains.items():
            specs = [runs[r] for r in ids]
            assert [s["epochs"] for s in specs] == [*blocks["halving"]["rungs"], final]
            assert all(s["role"] == "candidate" and s["seed"] == cfg["tuning"]["seed"] for s in specs)
            assert all(s["optimizer_config"]["learning_rate"] == rate for s in specs)
            assert all(s["score_test"] is False for s in specs)  # chosen on validation, never scored on test
        tuned = searches.tuned_runs(runs, "blocks", opt)
        assert sorted(runs[r]["seed"] for r in tuned) == cfg["tuning"]["seeds"]
        assert all(runs[r]["optimizer_config"]["learning_rate"] is None for r in tuned)
        assert all(runs[r]["epochs"] == final for r in tuned)  # the final budget
    # only the rate (and the optimizer) differs: one model, schedule and data for all
    budget = {json.dumps({k: s[k] for k in ("model", "batch_size", "schedule", "max_train_images",
                                             "validation_size")}, sort_keys=True)
              for s in runs.values() if s["search"] == "blocks"}
    assert len(budget) == 1
    assert runs["sgd-blocks_tuned-s0"]["optimizer_config"]["momentum"] == 0.9  # the final recipe's
    assert runs["amsgrad-blocks_tuned-s0"]["optimizer_config"] == {
        "name": "adam", "amsgrad": True, "learning_rate": None}


def test_the_resnet_config_tunes_resnet20_at_its_own_final_budget():
    cfg = schema.validate(layered("config/future_resnet.yaml"))
    runs = searches.expand_tuning(cfg)
    model = runs["adam-resnet20_tuned-s1"]["model"]
    assert model["architecture"] == "resnet" and model["depth"] == 20
    assert model["filters"] == [16, 32, 64] and "dropout" not in model
    assert grid.expand_runs(cfg) == {}  # a study of searches alone
    # its hand-tuned layer: the final recipes on ResNet-20 at the search's budget
    study = grid.expand_runs(schema.validate(layered("config/future_resnet.yaml",
                                                     "config/future_resnet_hand_tuned.yaml")))
    assert {s["variant"] for s in study.values()} == {"final_resnet20"}
    assert {s["epochs"] for s in study.values()} == {runs["adam-resnet20_tuned-s1"]["epochs"]}
    assert {o for s in cfg["tuning"]["searches"].values() for o in s["optimizers"]} == {
        "adam", "sgd", "rmsprop", "adamax", "nadam", "amsgrad"}


def test_the_future_configs_stand_alone_and_share_their_reference_runs_with_the_study():
    study = grid.expand_runs(schema.validate(layered()))
    assert grid.expand_runs(future()) == {}  # standalone: nothing of the default study
    future_runs = grid.expand_runs(schema.validate(layered("config/future.yaml",
                                                           "config/future_hand_tuned.yaml")))
    # the hand-tuned layer: the four final recipes (the reference of the hand_tuned claims),
    # the study's own runs, spec for spec: run in the study's folder, they train nothing again
    assert {s["variant"] for s in future_runs.values()} == {"final"}
    assert {s["optimizer"] for s in future_runs.values()} == {"adam", "sgd", "rmsprop", "adamax"}
    assert all(study[rid] == spec for rid, spec in future_runs.items())


@pytest.mark.parametrize("entry, needle", [
    ({"rates": [0.1, 1.0], "optimizer": {"learning_rate": 0.1}}, "learning_rate is what the search chooses"),
    ({"rates": [0.1, 1.0], "optimizer": {"rho": 0.9}}, "adam takes no rho"),
])
def test_a_search_refuses_settings_it_cannot_use(entry, needle):
    cfg = layered("config/future.yaml")
    cfg["tuning"]["searches"]["blocks"]["optimizers"]["adam"] = entry
    with pytest.raises(ConfigError, match=needle):
        schema.validate(cfg)


def test_a_search_of_an_unknown_optimizer_is_refused():
    cfg = layered("config/future.yaml")
    cfg["tuning"]["searches"]["blocks"]["optimizers"]["adagrad"] = {"rates": [0.1, 1.0]}
    with pytest.raises(ConfigError, match="unknown optimizer 'adagrad'"):
        schema.validate(cfg)


def test_a_run_of_a_search_may_not_clash_with_a_run_of_the_grid():
    cfg = layered("config/future.yaml")
    cfg["variants"]["blocks_tuned"] = {"role": "extra"}
    cfg["grid"] = [{"optimizers": ["adam"], "variants": ["blocks_tuned"]}]
    with pytest.raises(ConfigError, match="adam-blocks_tuned-s0' is also a run of the grid"):
        schema.validate(cfg)


def test_an_empty_grid_needs_searches_and_no_sequential_design():
    cfg = future()
    cfg["tuning"]["searches"] = {}
    with pytest.raises(ConfigError) as err:
        schema.validate(cfg)
    assert str(err.value).startswith("config key grid = []: no run to train")
    assert "\n" not in str(err.value)
    cfg = grid.deep_merge(future(), {"verdicts": {"sequential": {"looks": [2, 3]}}})
    with pytest.raises(ConfigError) as err:
        grid.sequential_runs(cfg, grid.expand_runs(cfg))
    assert "the design adds seeds to the grid's arms, and the grid is empty" in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- the choice
def write_metrics(folder: Path, scores: dict[str, tuple]) -> dict[str, Path]:
    """metrics.json per run id: (best_val_accuracy, final_val_accuracy, diverged)."""
    out = {}
    for rid, (best, last, diverged) in scores.items():
        path = folder / rid / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"best_val_accuracy": best, "final_val_accuracy": last,
                                    "diverged": diverged, "diverged_epoch": 1 if diverged else None,
                                    "test_accuracy": None}))
        out[rid] = path
    return out


RATES = {"r1": 0.001, "r2": 0.01, "r3": 0.1, "r4": 10.0}


def test_the_highest_validation_accuracy_wins_and_a_diverged_candidate_never_does(tmp_path):
    metrics = write_metrics(tmp_path, {"r1": (0.60, 0.55, False), "r2": (0.70, 0.69, False),
                                       "r3": (0.72, 0.50, False), "r4": (0.99, math.nan, True)})
    best = tuning.select("s", "sgd", RATES, metrics, "best_epoch", tmp_path / "best.json")
    last = tuning.select("s", "sgd", RATES, metrics, "last_epoch", tmp_path / "last.json")
    assert (best["learning_rate"], last["learning_rate"]) == (0.1, 0.01)
    assert json.loads((tmp_path / "last.json").read_text()) == last
    row = {r["learning_rate"]: r for r in last["candidates"]}
    assert row[10.0]["diverged"] and row[10.0]["score"] is None and row[10.0]["diverged_epoch"] == 1
    assert row[0.01]["score"] == pytest.approx(69.0)
    assert not last["at_edge"]


def test_a_tie_goes_to_the_smaller_rate_and_an_edge_choice_is_flagged(tmp_path):
    metrics = write_metrics(tmp_path, {"r1": (0.7, 0.7, False), "r2": (0.7, 0.7, False),
                                       "r3": (0.5, 0.5, False), "r4": (0.1, 0.1, False)})
    choice = tuning.select("s", "adam", RATES, metrics, "last_epoch", tmp_path / "c.json")
    assert choice["learning_rate"] == 0.001 and choice["at_edge"]


def test_when_every_candidate_diverges_select_fails_in_one_line(tmp_path):
    metrics = write_metrics(tmp_path, {r: (0.1, 0.1, True) for r in RATES})
    with pytest.raises(CnnoptError, match="every candidate rate of sgd diverged") as err:
        tuning.select("s", "sgd", RATES, metrics, "last_epoch", tmp_path / "c.json")
    assert "\n" not in str(err.value) and not (tmp_path / "c.json").exists()


def test_a_tuned_run_takes_the_chosen_rate_and_nothing_else_changes(tmp_path):
    runs = searches.expand_tuning(future())
    metrics = write_metrics(tmp_path, {"a": (0.5, 0.5, False), "b": (0.6, 0.6, False)})
    tuning.select("blocks", "adam", {"a": 0.001, "b": 0.003}, metrics, "last_epoch", tmp_path / "c.json")
    spec = runs["adam-blocks_tuned-s1"]
    tuned = choice.apply_choice(spec, tmp_path / "c.json")
    assert tuned["optimizer_config"]["learning_rate"] == 0.003 and tuned["chosen_from"] == "b"
    assert {k: v for k, v in tuned.items() if k not in ("optimizer_config", "chosen_from")} == \
        {k: v for k, v in spec.items() if k != "optimizer_config"}
    rates = searches.search_rates(runs, "blocks", "adam")
    candidate = rates[min(rates)][-1]  # a candidate's last rung
    assert choice.apply_choice(runs[candidate], tmp_path / "c.json") == runs[candidate]  # it keeps its own rate
    with pytest.raises(CnnoptError, match="not of sgd in blocks"):
        choice.apply_choice(runs["sgd-blocks_tuned-s0"], tmp_path / "c.json")


# ---------------------------------------------------------------- tables and verdicts
def test_the_papers_ranking_becomes_claims_on_the_tuned_runs():
    claims = tuning_tables.ranking_claims("blocks", "B", ["sgd", "nadam", "adam", "rmsprop", "adamax"])
    pairs = [(c["a"], c["b"]) for c in claims if c["kind"] == "greater"]
    assert pairs == [("adam/blocks_tuned", "adamax/blocks_tuned"),
                     ("adamax/blocks_tuned", "rmsprop/blocks_tuned"),
                     ("rmsprop/blocks_tuned", "sgd/blocks_tuned")]
    assert claims[0]["paper"] == pytest.approx(85.50 - 84.79)
    assert claims[-1]["kind"] == "top" and claims[-1]["members"] == ["adam/blocks_tuned", "adamax/blocks_tuned"]
    judge_claims.load_claims(yaml.safe_dump(claims))  # well-formed for the judges
    assert {c["family"] for c in claims} == {"ranking"}
    assert [c["id"] for c in tuning_tables.ranking_claims("r", "R", ["sgd", "adam", "lion"])] == ["r_rank_adam_sgd"]


def test_the_tuned_table_averages_over_seeds_and_ranks_by_test_accuracy():
    runs = pd.DataFrame({
        "run_id": [f"{o}-b_tuned-s{s}" for o in ("adam", "sgd", "nadam") for s in (0, 1)],
        "optimizer": ["adam", "adam", "sgd", "sgd", "nadam", "nadam"],
        "variant": ["b_tuned"] * 6, "seed": [0, 1] * 3, "role": ["tuned"] * 6,
        "test_accuracy": [70.0, 72.0, 74.0, 75.0, 60.0, np.nan],
        "test_accuracy_best": [71.0, 71.0, 73.0, 73.0, 64.0, np.nan],
        "best_val_accuracy": [71.0, 73.0, 75.0, 76.0, 61.0, 62.0],
        "train_seconds": [10.0] * 6, "diverged": [False] * 5 + [True],
    })
    choices = [{"search": "b", "optimizer": o, "learning_rate": r, "at_edge": o == "sgd"}
               for o, r in (("adam", 0.001), ("sgd", 0.1), ("nadam", 0.002))]
    rules = Rules.of(None)
    last = tuning_tables.reading(rules, "last_epoch", runs["role"])
    table = tuning_tables.tuned_table(choices, runs, {"b": "B"}, last).set_index("optimizer")
    assert table.loc["adam", "test_accuracy"] == pytest.approx(71.0)
    assert table.loc["adam", "test_accuracy_std"] == pytest.approx(np.std([70, 72], ddof=1))
    assert table["rank"].to_dict() == {"sgd": 1, "adam": 2, "nadam": 3}
    assert table.loc["sgd", "paper_rank"] == 2 and pd.isna(table.loc["nadam", "paper_rank"])
    assert table.loc["nadam", "seeds"] == 1 and table.loc["nadam", "diverged"] == 1
    assert bool(table.loc["sgd", "at_edge"]) and table.loc["adam", "label"] == "B"
    assert set(table["model"]) == {"last"}
    # searched on the best validation epoch: the table reads that epoch's model
    best = tuning_tables.reading(rules, "best_epoch", runs["role"])
    table = tuning_tables.tuned_table(choices, runs, {"b": "B"}, best).set_index("optimizer")
    assert table.loc["sgd", "test_accuracy"] == pytest.approx(73.0)
    assert table.loc["adam", "test_accuracy_std"] == pytest.approx(0.0)
    assert set(table["model"]) == {"best"}
    with pytest.raises(CnnoptError, match="tuning.metric = 'best'"):
        tuning_tables.reading(rules, "best", runs["role"])


@pytest.mark.parametrize("metric", ["last_epoch", "best_epoch"])
def test_tuned_and_hand_tuned_arms_are_read_alike_in_the_tuning_verdicts(tmp_path, metric):
    """The hand_tuned claims set tuned runs (role tuned) against the final recipes (role final,
    which the study's own claims read at their best validation epoch): both arms read the
    model the searches chose on, the McNemar counts included."""
    import fakeruns

    dirs = []
    for opt, (tuned_acc, final_acc) in {"adam": (0.80, 0.78), "sgd": (0.74, 0.76)}.items():
        for seed in (0, 1):
            dirs.append(fakeruns.write_run(tmp_path / "runs", fakeruns._spec(opt, "b_tuned", "tuned", seed, 12),
                                           tuned_acc + 0.01 * seed, 0.7))
            dirs.append(fakeruns.write_run(tmp_path / "runs", fakeruns._spec(opt, "final", "final", seed, 12),
                                           final_acc + 0.01 * seed, 0.7))
    choices = []
    for opt in ("adam", "sgd"):
        path = tmp_path / f"{opt}.json"
        path.write_text(json.dumps({"search": "b", "optimizer": opt, "learning_rate": 0.001,
                                    "run_id": f"{opt}-b_tuned-s0", "at_edge": False, "candidates": []}))
        choices.append(path)
    out = {k: tmp_path / f"{k}.csv" for k in ("cands", "tuned", "claims", "time")}
    claims = tuning_tables.tables(choices, dirs, {"b": "B"}, *out.values(), budgets={"b": "final"},
                                  metric=metric).set_index("id")

    def accuracy(run_id):
        ev = json.loads((tmp_path / "runs" / run_id / "evaluation.json").read_text())
        return 100 * (ev["best_model"]["test_accuracy"] if metric == "best_epoch" else ev["test_accuracy"])

    for opt in ("adam", "sgd"):
        want = np.mean([accuracy(f"{opt}-b_tuned-s{s}") - accuracy(f"{opt}-final-s{s}") for s in (0, 1)])
        assert claims.loc[f"b_{opt}_tuned_beats_hand", "ours"] == pytest.approx(want, abs=0.006)
    tuned = pd.read_csv(out["tuned"]).set_index("optimizer")
    assert tuned.loc["sgd", "test_accuracy"] == pytest.approx(
        np.mean([accuracy(f"sgd-b_tuned-s{s}") for s in (0, 1)]))
    assert set(tuned["model"]) == {tuning.MODELS[metric]}


# ---------------------------------------------------------------- the report's section 6
@pytest.mark.parametrize("verdict_list, head", [
    (["reproduced", "reproduced"], "The paper's ranking survives equal tuning here"),
    (["reproduced", "contradicted"], "The paper's ranking does not survive equal tuning here"),
    (["reproduced", "inconclusive"], "is not settled here"),
])
def test_the_ranking_sentence_follows_the_verdicts(verdict_list, head):
    from cnnopt.report import future as report_future

    sentence = report_future.ranking_sentence(pd.DataFrame({"verdict": verdict_list}))
    assert head in sentence and f"of its {len(verdict_list)} ranking claims" in sentence
    assert "not tested" in report_future.ranking_sentence(pd.DataFrame({"verdict": []}))


def test_the_budget_of_a_search_is_said_in_words():
    from cnnopt.report import future as report_future

    runs = searches.expand_tuning(future())
    blocks = report_future.budget_text(runs["sgd-blocks_tuned-s0"])
    assert blocks.startswith("the blocks network") and "8 epochs" in blocks
    assert "exponential" in blocks and "batch norm on" in blocks
    assert report_future.budget_text(runs["adam-blocks_tuned-s1"]) == blocks  # one budget per search
    resnet = report_future.budget_text(searches.expand_tuning(
        schema.validate(layered("config/future_resnet.yaml")))["nadam-resnet20_tuned-s0"])
    assert resnet.startswith("ResNet-20 (filters [16, 32, 64])") and "6 epochs" in resnet
    assert "10,000 training images" in resnet
