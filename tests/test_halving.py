"""Successive halving (cnnopt.tuning.halving): quasirandom candidates, promotion by the declared
fraction, a rung that continues its candidate's checkpoint (no epoch trained twice), and a
choice at the edge that grows the search by one rate and chooses again."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import write_arrays
from workflow_helpers import assert_same_weights

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError, ConfigError
from cnnopt.config import schema, searches
from cnnopt.tuning import halving
from cnnopt.tuning import select as tuning

# ---- candidates ----

def test_quasirandom_rates_are_seeded_reproducible_in_range_and_spread():
    rates = halving.quasirandom_rates(1e-4, 1e-1, 8, seed=3)
    assert rates == halving.quasirandom_rates(1e-4, 1e-1, 8, seed=3)
    assert rates != halving.quasirandom_rates(1e-4, 1e-1, 8, seed=4)
    assert len(rates) == 8 and rates == sorted(rates)
    assert all(1e-4 <= r <= 1e-1 for r in rates)
    # low discrepancy: each quarter of the log range holds two of the eight
    quarters = np.floor((np.log10(rates) + 4) / 0.75).clip(0, 3)
    assert np.bincount(quarters.astype(int), minlength=4).tolist() == [2, 2, 2, 2]
    with pytest.raises(CnnoptError, match="not distinct"):
        halving.quasirandom_rates(1.0, 1.001, 20, seed=0)


def test_a_config_asks_for_quasirandom_rates_with_n_and_seed():
    spec = {"low": 1e-4, "high": 1e-1, "n": 8, "seed": 3}
    assert searches.candidate_rates(spec) == halving.quasirandom_rates(1e-4, 1e-1, 8, 3)


# ---- promotion and choice ----

def rows(scores: dict[float, float | None]) -> list[dict]:
    return [{"run_id": f"r{rate:g}", "learning_rate": rate, "score": score}
            for rate, score in scores.items()]


@pytest.mark.parametrize(("n", "keep", "kept"), [(8, 0.5, 4), (4, 0.5, 2), (2, 0.5, 1), (9, 1 / 3, 3),
                                                  (5, 0.5, 2), (3, 0.25, 1)])
def test_a_rung_promotes_exactly_the_declared_fraction(n, keep, kept):
    scores = {10.0 ** -k: float(k) for k in range(1, n + 1)}  # the smallest rate scores best
    promoted = halving.promote(rows(scores), keep)
    assert len(promoted) == kept == halving.keep_count(n, keep)
    assert promoted == [f"r{rate:g}" for rate in sorted(scores, key=scores.get, reverse=True)[:kept]]


def test_a_diverged_candidate_is_never_promoted_and_a_tie_goes_to_the_smaller_rate():
    promoted = halving.promote(rows({0.1: None, 0.01: 50.0, 0.001: 50.0, 0.0001: 10.0}), 0.5)
    assert promoted == ["r0.001", "r0.01"]
    assert halving.promote(rows({0.1: None, 0.01: None, 0.001: 5.0, 0.0001: None}), 0.5) == ["r0.001"]


def test_a_choice_at_an_edge_asks_for_one_rate_beyond_it_and_one_inside_does_not():
    rates = [1e-4, 1e-3, 1e-2]
    inside = halving.choose(rows({1e-4: 50.0, 1e-3: 60.0, 1e-2: 55.0}), rates, [], extend=2)
    assert (inside["learning_rate"], inside["at_edge"], inside["extend_to"]) == (1e-3, False, None)
    high = halving.choose(rows({1e-4: 50.0, 1e-3: 55.0, 1e-2: 60.0}), rates, [], extend=2)
    assert (high["edge"], high["extend_to"]) == ("high", pytest.approx(0.1))
    low = halving.choose(rows({1e-4: 70.0, 1e-3: 55.0, 1e-2: 60.0}), rates, [], extend=2)
    assert (low["edge"], low["extend_to"]) == ("low", pytest.approx(1e-5))
    # no extension left: still at the edge, flagged, nothing more asked
    spent = halving.choose(rows({1e-4: 50.0, 1e-3: 55.0, 1e-2: 60.0, 0.1: 61.0, 1.0: 62.0}),
                           [*rates, 0.1, 1.0], [0.1, 1.0], extend=2)
    assert (spent["learning_rate"], spent["at_edge"], spent["extend_to"]) == (1.0, True, None)


def write_metrics(folder, scores: dict[str, float | None]) -> dict:
    out = {}
    for rid, score in scores.items():
        path = folder / rid / "metrics.json"
        files.write_json(path, {"final_val_accuracy": math.nan if score is None else score / 100,
                                "best_val_accuracy": math.nan if score is None else score / 100,
                                "diverged": score is None, "diverged_epoch": 1 if score is None else None})
        out[rid] = path
    return out


def test_a_search_whose_winner_sits_at_an_edge_grows_by_one_rate_and_chooses_again(tmp_path):
    # four candidates in two rungs, keep one half; the largest rate wins at the final budget,
    # so round 1 tries one step beyond it; that extension wins too, and with no extension left
    # the choice stays flagged at the edge
    chains = {r: [f"a{r:g}", f"b{r:g}"] for r in (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)}
    first = write_metrics(tmp_path, {"a0.0001": 10.0, "a0.001": 40.0, "a0.01": 30.0, "a0.1": 50.0})
    rung0 = tuning.rung("s", "adam", 0, {r: chains[r] for r in (1e-4, 1e-3, 1e-2, 0.1)}, None, first,
                        "last_epoch", 0.5, tmp_path / "rung0.json")
    assert rung0["promoted"] == ["a0.1", "a0.001"]
    second = write_metrics(tmp_path, {"b0.001": 55.0, "b0.1": 60.0})
    rung1 = tuning.rung("s", "adam", 1, {r: chains[r] for r in (1e-4, 1e-3, 1e-2, 0.1)},
                        tmp_path / "rung0.json", second, "last_epoch", 0.5, tmp_path / "rung1.json")
    assert [r["run_id"] for r in rung1["entrants"]] == ["b0.001", "b0.1"] and rung1["promoted"] == []
    round0 = tuning.choose("s", "adam", 0, [tmp_path / "rung0.json", tmp_path / "rung1.json"], None, {},
                           chains, "last_epoch", 1, tmp_path / "round0.json")
    assert (round0["run_id"], round0["edge"], round0["extend_to"]) == ("b0.1", "high", 1.0)
    assert {r["learning_rate"]: r["rung"] for r in round0["candidates"]} == {1e-4: 0, 1e-3: 1, 1e-2: 0, 0.1: 1}
    ext = write_metrics(tmp_path, {"b1": 62.0})
    round1 = tuning.choose("s", "adam", 1, [], tmp_path / "round0.json", ext, chains, "last_epoch", 1,
                           tmp_path / "round1.json")
    assert (round1["learning_rate"], round1["at_edge"], round1["extend_to"]) == (1.0, True, None)
    assert round1["extensions"] == [1.0] and len(round1["candidates"]) == 5
    choice = tuning.final_choice(tmp_path / "round1.json", tmp_path / "choice.json")
    assert choice["run_id"] == "b1" and json.loads((tmp_path / "choice.json").read_text()) == choice
    with pytest.raises(CnnoptError, match="not the last round"):
        tuning.final_choice(tmp_path / "round0.json", tmp_path / "other.json")
    # the same search with the winner inside the range: round 0 is the last
    inside = write_metrics(tmp_path / "in", {"b0.001": 65.0, "b0.1": 60.0})
    tuning.rung("s", "adam", 1, {r: chains[r] for r in (1e-4, 1e-3, 1e-2, 0.1)}, tmp_path / "rung0.json",
                inside, "last_epoch", 0.5, tmp_path / "in_rung1.json")
    done = tuning.choose("s", "adam", 0, [tmp_path / "rung0.json", tmp_path / "in_rung1.json"], None, {},
                         chains, "last_epoch", 1, tmp_path / "in_round0.json")
    assert (done["learning_rate"], done["at_edge"], done["extend_to"]) == (1e-3, False, None)


@pytest.mark.parametrize("text, message", [
    ("", "cannot read it as JSON"),
    ('{"rung": 0}', "no promoted"),
])
def test_a_lost_or_foreign_rung_file_is_one_clear_error_and_nothing_is_written(tmp_path, text, message):
    chains = {r: [f"a{r:g}", f"b{r:g}"] for r in (1e-3, 1e-2)}
    if text:
        (tmp_path / "rung0.json").write_text(text)
    metrics = write_metrics(tmp_path, {"b0.001": 50.0, "b0.01": 40.0})
    with pytest.raises(CnnoptError, match=message) as err:
        tuning.rung("s", "adam", 1, chains, tmp_path / "rung0.json", metrics, "last_epoch", 0.5,
                    tmp_path / "rung1.json")
    assert "\n" not in str(err.value) and "rung0.json" in str(err.value)
    assert not (tmp_path / "rung1.json").exists()


# ---- the config: rungs, extensions, one budget ----

def halving_config(**search) -> dict:
    return schema.validate({
        "optimizers": {"adam": {}, "sgd": {"momentum": 0.9}},
        "variants": {"final": {"role": "final", "epochs": 6, "batch_size": 16,
                               "schedule": {"type": "exponential", "decay_rate": 0.8}}},
        "grid": [{"optimizers": ["adam"], "variants": ["final"]}],
        "tuning": {"seed": 0, "seeds": [0, 1], "searches": {"h": {
            "budget": "final", "halving": {"rungs": [2, 4]}, "extend": 1,
            "optimizers": {"adam": {"rates": [1e-3, 1e-2]}, "sgd": {"rates": [0.01, 0.1]}}} | search}},
    })


def test_a_halving_search_chains_each_rate_through_its_rungs_at_the_final_budget():
    runs = searches.expand_tuning(halving_config())
    chains = searches.search_rates(runs, "h", "adam")
    assert sorted(chains) == [1e-4, 1e-3, 1e-2, 0.1]  # the candidates and one step beyond each edge
    for rate, ids in chains.items():
        specs = [runs[r] for r in ids]
        assert [s["epochs"] for s in specs] == [2, 4, 6] and [s["rung"] for s in specs] == [0, 1, 2]
        assert [s.get("continues") for s in specs] == [None, *ids[:-1]]
        assert [s["keep_state"] for s in specs] == [True, True, False]
        assert all(s["seed"] == 0 and not s["score_test"] for s in specs)
        assert all(bool(s.get("extension")) == (rate in (1e-4, 0.1)) for s in specs)
    tuned = runs["adam-h_tuned-s0"]
    last = runs[chains[1e-3][-1]]
    # the winner's search run trains exactly what the tuned run on its seed trains
    assert {k: v for k, v in last.items() if k not in ("run_id", "variant", "role", "label", "search",
                                                        "score_test", "rung", "keep_state", "continues",
                                                        "optimizer_config")} == \
        {k: v for k, v in tuned.items() if k not in ("run_id", "variant", "role", "label", "search",
                                                      "metric", "optimizer_config")}


@pytest.mark.parametrize(("search", "needle"), [
    ({"halving": {"rungs": [4, 2]}}, "must rise and stay below"),
    ({"halving": {"rungs": [6]}}, "must rise and stay below"),
    ({"optimizers": {"adam": {"rates": [1e-3, 1e-2, 0.1]}, "sgd": {"rates": [0.01, 0.1]}}}, "same trial budget"),
    ({"budget": "nope"}, "unknown variant 'nope'"),
])
def test_a_halving_search_refuses_what_it_cannot_run_in_one_line(search, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        searches.expand_tuning(halving_config(**search))
    assert "\n" not in str(err.value)


# ---- a rung continues its candidate's checkpoint ----

def test_a_promoted_candidate_continues_from_its_checkpoint_and_trains_no_epoch_twice(tmp_path):
    from cnnopt.common import runtime

    runtime.configure(1)
    from cnnopt.train.loop import train

    cfg = halving_config(halving={"rungs": [1]}, epochs=2, batch_size=32,
                         model={"filters": [8, 16], "dense": [16]}, extend=0)
    cfg["validation_size"] = 50
    cfg["deterministic"] = True
    runs = searches.expand_tuning(schema.validate(cfg))
    first, second = searches.search_rates(runs, "h", "sgd")[0.1]
    arrays = write_arrays(tmp_path / "arrays.npz", 12, 2, seed=1)

    def outputs(name):
        return {k: tmp_path / name / f"{k}.out" for k in ("history", "metrics", "spec")} | {
            "model": tmp_path / name / "model.keras", "best_model": tmp_path / name / "model_best.keras"}

    train(runs[first], arrays, outputs("r0"), resume_dir=tmp_path / "ck0", keep_state=tmp_path / "state0")
    assert (tmp_path / "state0" / "state.json").is_file()
    train(runs[second], arrays, outputs("r1"), resume_dir=tmp_path / "ck1", start_from=tmp_path / "state0")
    h0 = pd.read_csv(tmp_path / "r0" / "history.out")
    h1 = pd.read_csv(tmp_path / "r1" / "history.out")
    assert list(h1["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(h1.iloc[:1], h0)  # epoch 1 copied as trained, its seconds too
    # and the two rungs end where one uninterrupted training of two epochs ends
    straight = dict(runs[second])
    straight.pop("continues")
    train(straight, arrays, outputs("straight"), resume_dir=tmp_path / "ck2")
    assert_same_weights(tmp_path / "r1" / "model.keras", tmp_path / "straight" / "model.keras")


# ---- time to target and the performance profile ----

def synthetic_runs() -> pd.DataFrame:
    """Tuned runs on two searches: per epoch a known validation curve, so the times to a 60 %
    target are known; lion never reaches it on search b, sgd diverges there."""
    from cnnopt.common.runs import Run, Runs
    from cnnopt.judge import metrics
    from cnnopt.judge.rules import Rules

    curves = {("a", "adam"): [40, 62, 70], ("a", "sgd"): [30, 50, 61], ("a", "lion"): [61, 65, 66],
              ("b", "adam"): [20, 55, 65], ("b", "sgd"): [10, 60, 70], ("b", "lion"): [20, 30, 40]}
    rows, histories = [], {}
    for (search, opt), val in curves.items():
        for seed in (0, 1):
            rid = f"{opt}-{search}_tuned-s{seed}"
            histories[rid] = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": np.array(val) / 100,
                                           "accuracy": np.array(val) / 100, "loss": [1.0] * 3,
                                           "val_loss": [1.0] * 3, "seconds": [10.0, 10.0, 10.0],
                                           "elapsed": [10.0, 20.0, 30.0]})
            rows.append({"run_id": rid, "optimizer": opt, "variant": f"{search}_tuned", "seed": seed,
                         "role": "tuned", "epochs": 3, "epochs_run": 3, "batch_size": 50,
                         "train_seconds": 30.0, "images_per_second": 100 * 3 / 30.0,
                         "diverged": search == "b" and opt == "sgd" and seed == 1,
                         "test_accuracy": val[-1]})
    table = pd.DataFrame(rows)
    runs = Runs(table, {r: Run(Path(r), {"run_id": r}, {}, {}, histories[r]) for r in table["run_id"]})
    out = metrics.with_curve_facts(runs, Rules.of({"val_target": 60.0}))
    return out.assign(search=out["variant"].str.removesuffix("_tuned"))


def test_time_to_target_takes_steps_seconds_and_infinity_for_never():
    from cnnopt.tuning import profile

    per = profile.per_run(synthetic_runs(), 60.0).set_index(["search", "optimizer", "seed"])
    # adam on a: 40 -> 62 crosses 60 at 20/22 of epoch 2; 100 images, batch 50: 2 steps an epoch
    assert per.loc[("a", "adam", 0), "epochs_to_target"] == pytest.approx(1 + 20 / 22)
    assert per.loc[("a", "adam", 0), "steps_to_target"] == pytest.approx(2 * (1 + 20 / 22))
    assert per.loc[("a", "adam", 0), "seconds_to_target"] == pytest.approx(10 * (1 + 20 / 22))
    assert math.isinf(per.loc[("b", "lion", 0), "steps_to_target"])
    assert math.isinf(per.loc[("b", "sgd", 1), "steps_to_target"])  # diverged
    med = profile.medians(profile.per_run(synthetic_runs(), 60.0)).set_index(["search", "optimizer"])
    assert med.loc[("a", "lion"), "steps_to_target"] == pytest.approx(2 * 50 / 51)  # 10 -> 61 in epoch 1
    assert med.loc[("b", "sgd"), "reached"] == 1 and math.isinf(med.loc[("b", "lion"), "steps_to_target"])


def test_the_performance_profile_counts_problems_within_a_factor_of_the_fastest():
    from cnnopt.tuning import profile

    times = pd.DataFrame({"search": ["a", "a", "a", "b", "b", "b"],
                          "optimizer": ["adam", "sgd", "lion"] * 2,
                          "steps_to_target": [2.0, 4.0, 1.0, 3.0, 6.0, math.inf]})
    prof = profile.performance_profile(times, taus=[1.0, 1.5, 2.0, 4.0, 100.0]).set_index(["optimizer", "tau"])
    # a: lion fastest (1), adam x2, sgd x4; b: adam fastest (3), sgd x2, lion never
    assert prof.loc[("lion", 1.0), "rho"] == 0.5 and prof.loc[("lion", 100.0), "rho"] == 0.5
    assert prof.loc[("adam", 1.0), "rho"] == 0.5 and prof.loc[("adam", 2.0), "rho"] == 1.0
    assert prof.loc[("sgd", 1.5), "rho"] == 0.0 and prof.loc[("sgd", 2.0), "rho"] == 0.5
    assert prof.loc[("sgd", 4.0), "rho"] == 1.0
    auto = profile.performance_profile(times)
    assert auto.groupby("optimizer")["rho"].apply(lambda r: r.is_monotonic_increasing).all()
