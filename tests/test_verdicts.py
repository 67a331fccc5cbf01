"""The decision rules of the claims table, on synthetic runs: every verdict of every claim kind.

Each test builds the runs a claim reads (test accuracies per seed and per-image predictions on
one shared test set) and checks the verdict the declared rules give, computed by scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cnnopt import verdicts
from cnnopt.errors import CnnoptError
from cnnopt.verdicts import CONTRADICTED, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, UNTESTED

N_TEST = 10_000
LABELS = np.random.default_rng(0).integers(0, 10, N_TEST)
#: How hard each test image is: a run gets the easiest images right, plus some noise.
DIFFICULTY = np.random.default_rng(1).random(N_TEST)
RULES = dict(verdicts.DEFAULT_RULES)


def _predictions(accuracy: float, seed: int) -> np.ndarray:
    """Predicted classes that are right on about ``accuracy`` % of the images."""
    noise = np.random.default_rng(seed).normal(0, 0.05, N_TEST)
    correct = DIFFICULTY + noise < np.quantile(DIFFICULTY + noise, accuracy / 100)
    return np.where(correct, LABELS, (LABELS + 1) % 10)


def study(arms: dict[str, list[float]], rising=False, epochs_to_target=None, diverged=()):
    """A runs table and predictions: ``arms`` maps "optimizer/variant" to one accuracy per seed."""
    rows, predictions = [], {}
    for k, (arm, accs) in enumerate(arms.items()):
        optimizer, variant = arm.split("/")
        for seed, acc in enumerate(accs):
            run_id = f"{optimizer}-{variant}-s{seed}"
            pred = _predictions(acc, 1000 * k + seed)
            predictions[run_id] = (LABELS, pred)
            rows.append({
                "run_id": run_id, "optimizer": optimizer, "variant": variant, "seed": seed,
                "role": variant if variant in ("baseline", "initial", "final") else "ablation",
                "test_accuracy": 100 * float(np.mean(pred == LABELS)), "n_test": N_TEST,
                "diverged": run_id in diverged, "still_rising": rising, "epochs_run": 10,
                "epochs_to_target": (epochs_to_target or {}).get(arm, [None] * len(accs))[seed],
            })
    return pd.DataFrame(rows), predictions


def judge_one(claim: dict, arms, scale="reduced", rules=None, **kw) -> dict:
    runs, predictions = study(arms, **kw)
    frame = verdicts.judge([claim], runs, predictions, {**RULES, **(rules or {})}, scale)
    assert list(frame.columns) == verdicts.COLUMNS
    return frame.iloc[0].to_dict()


VALUE = {"id": "v", "kind": "value", "claim": "x", "where": "T1", "paper": 72.0, "run": "adam/initial"}
FINAL_VALUE = {**VALUE, "paper": 85.5, "run": "adam/final", "scale": True}
GREATER = {"id": "g", "kind": "greater", "claim": "x", "where": "T1", "a": "adam/final",
           "b": "adam/initial"}
TOP = {"id": "t", "kind": "top", "claim": "x", "where": "s", "members": ["adam/final", "adamax/final"],
       "others": ["sgd/final", "rmsprop/final"]}
FASTER = {"id": "f", "kind": "faster", "claim": "x", "where": "s", "a": "adam/final",
          "others": ["sgd/final", "adamax/final"]}


# ---------------------------------------------------------------- value claims
def test_value_inside_the_widened_interval_is_reproduced():
    row = judge_one(VALUE, {"adam/initial": [71.0, 71.2]})
    assert row["verdict"] == REPRODUCED and row["n"] == 2
    acc = np.array([71.0, 71.2])  # the interval is scipy's t-interval (or wider)
    t_low, t_high = stats.t.interval(0.95, 1, loc=acc.mean(), scale=stats.sem(acc))
    assert row["ci_low"] <= t_low + 0.05 and row["ci_high"] >= t_high - 0.05


def test_value_outside_at_paper_scale_and_converged_is_not_reproduced():
    row = judge_one(FINAL_VALUE, {"adam/final": [78.0, 78.3]}, scale="paper")
    assert row["verdict"] == NOT_REPRODUCED
    assert row["ci_high"] + RULES["tolerance"] < 85.5


def test_value_outside_at_reduced_scale_is_inconclusive_and_says_why():
    row = judge_one(FINAL_VALUE, {"adam/final": [78.0, 78.3]}, scale="reduced")
    assert row["verdict"] == INCONCLUSIVE and "reduced scale" in row["reason"]


def test_value_outside_with_a_rising_curve_is_inconclusive():
    row = judge_one(FINAL_VALUE, {"adam/final": [78.0, 78.3]}, scale="paper", rising=True)
    assert row["verdict"] == INCONCLUSIVE and "still rising" in row["reason"]


def test_a_scale_free_value_is_judged_at_reduced_scale():
    row = judge_one(VALUE, {"adam/initial": [60.0, 60.5]}, scale="reduced")
    assert row["verdict"] == NOT_REPRODUCED


def test_one_seed_is_an_anecdote():
    row = judge_one(VALUE, {"adam/initial": [72.0]})
    assert row["verdict"] == INCONCLUSIVE and row["reason"].startswith("one seed")


def test_the_tolerance_widens_the_interval():
    arms = {"adam/initial": [70.0, 70.1]}
    assert judge_one(VALUE, arms)["verdict"] == NOT_REPRODUCED
    assert judge_one(VALUE, arms, rules={"tolerance": 2.5})["verdict"] == REPRODUCED


def test_a_claim_without_runs_is_untested():
    row = judge_one(VALUE, {"sgd/initial": [60.0, 61.0]})
    assert row["verdict"] == UNTESTED and "adam/initial" in row["reason"]


def test_diverged_runs_count_in_the_mean_and_are_named():
    row = judge_one(VALUE, {"adam/initial": [72.0, 10.0]}, diverged={"adam-initial-s1"})
    assert row["ours"] == pytest.approx(41.0, abs=0.1)
    assert "1 of 2 runs diverged" in row["reason"]


def test_the_binomial_interval_uses_the_runs_test_set_size():
    """Fewer test images, a wider exact interval: the size comes from the runs table."""
    runs, predictions = study({"adam/initial": [71.0, 71.2]})
    wide = verdicts.judge([VALUE], runs.assign(n_test=500), predictions, RULES).iloc[0]
    narrow = verdicts.judge([VALUE], runs, predictions, RULES).iloc[0]
    assert wide["ci_high"] - wide["ci_low"] > narrow["ci_high"] - narrow["ci_low"]
    mean = runs["test_accuracy"].mean()
    ci = stats.binomtest(round(mean / 100 * 500), 500).proportion_ci(0.95, method="exact")
    assert wide["ci_low"] <= 100 * ci.low + 1e-9 and wide["ci_high"] >= 100 * ci.high - 1e-9


def test_an_unknown_test_set_size_is_inconclusive_not_assumed():
    runs, predictions = study({"adam/initial": [71.0, 71.2]})
    row = verdicts.judge([VALUE], runs.assign(n_test=None), predictions, RULES).iloc[0]
    assert row["verdict"] == INCONCLUSIVE and "test-set size" in row["reason"]
    assert row["ours"] == pytest.approx(runs["test_accuracy"].mean()) and pd.isna(row["ci_low"])


def test_a_runs_table_without_a_needed_column_is_refused():
    runs, predictions = study({"adam/initial": [71.0, 71.2]})
    with pytest.raises(CnnoptError, match="n_test"):
        verdicts.judge([VALUE], runs.drop(columns="n_test"), predictions, RULES)


# ---------------------------------------------------------------- greater claims
def test_a_consistent_gain_over_two_seeds_is_reproduced_by_mcnemar():
    row = judge_one(GREATER, {"adam/final": [80.0, 80.4], "adam/initial": [72.0, 72.3]})
    assert row["verdict"] == REPRODUCED and "McNemar" in row["test"]
    assert 0 < row["ci_low"] < row["ours"] < row["ci_high"] and row["p_value"] < 1e-6


def test_a_consistent_loss_is_contradicted():
    row = judge_one(GREATER, {"adam/final": [68.0, 68.2], "adam/initial": [72.0, 72.3]})
    assert row["verdict"] == CONTRADICTED and row["ci_high"] < 0


def test_no_difference_is_inconclusive():
    row = judge_one(GREATER, {"adam/final": [72.0, 72.3], "adam/initial": [72.0, 72.3]})
    assert row["verdict"] == INCONCLUSIVE and row["ci_low"] <= 0 <= row["ci_high"]


def test_a_significant_difference_within_the_seed_spread_is_inconclusive():
    # seed 0: +8 points, seed 1: -1 point. McNemar pooled is significant, the seeds disagree.
    row = judge_one(GREATER, {"adam/final": [80.0, 71.0], "adam/initial": [72.0, 72.0]})
    assert row["ci_low"] > 0
    assert row["verdict"] == INCONCLUSIVE and "seed spread" in row["reason"]


def test_one_seed_pair_is_inconclusive_even_when_mcnemar_is_significant():
    row = judge_one(GREATER, {"adam/final": [80.0], "adam/initial": [72.0]})
    assert row["ci_low"] > 0 and row["verdict"] == INCONCLUSIVE and "one seed" in row["reason"]


@pytest.mark.parametrize("a,b,verdict", [
    ([80.0, 80.5, 79.6], [72.0, 72.4, 71.8], REPRODUCED),
    ([70.0, 70.5, 69.6], [72.0, 72.4, 71.8], CONTRADICTED),
    ([72.0, 73.5, 71.0], [72.0, 72.4, 71.8], INCONCLUSIVE),
])
def test_three_seeds_use_welchs_t(a, b, verdict):
    row = judge_one(GREATER, {"adam/final": a, "adam/initial": b})
    assert row["verdict"] == verdict and row["test"].startswith("Welch")
    runs, _ = study({"adam/final": a, "adam/initial": b})
    res = stats.ttest_ind(runs.loc[runs.variant == "final", "test_accuracy"],
                          runs.loc[runs.variant == "initial", "test_accuracy"], equal_var=False)
    assert row["ci_low"] == pytest.approx(res.confidence_interval(0.95).low)
    assert row["p_value"] == pytest.approx(res.pvalue)


def test_runs_scored_on_different_test_images_are_refused():
    runs, predictions = study({"adam/final": [80.0, 80.0], "adam/initial": [72.0, 72.0]})
    labels, pred = predictions["adam-initial-s0"]
    predictions["adam-initial-s0"] = (labels[:-1], pred[:-1])
    with pytest.raises(CnnoptError, match="same test images"):
        verdicts.judge([GREATER], runs, predictions, RULES, "reduced")


def test_a_comparison_involving_final_runs_says_reduced_scale():
    row = judge_one(GREATER, {"adam/final": [80.0, 80.4], "adam/initial": [72.0, 72.3]})
    assert row["reason"].endswith("at reduced scale")
    row = judge_one(GREATER, {"adam/final": [80.0, 80.4], "adam/initial": [72.0, 72.3]}, scale="paper")
    assert "reduced scale" not in row["reason"]


def test_a_comparison_without_the_twin_is_untested():
    row = judge_one(GREATER, {"adam/final": [80.0, 80.4]})
    assert row["verdict"] == UNTESTED


# ---------------------------------------------------------------- top claims
def _top(adam, adamax, sgd, rmsprop):
    return {"adam/final": adam, "adamax/final": adamax, "sgd/final": sgd, "rmsprop/final": rmsprop}


@pytest.mark.parametrize("arms,verdict", [
    (_top([82, 82.3], [81, 81.2], [75, 75.1], [76, 76.4]), REPRODUCED),
    (_top([82, 82.3], [70, 70.2], [75, 75.1], [76, 76.4]), CONTRADICTED),
    (_top([82, 82.3], [76, 76.4], [75, 75.1], [76, 76.4]), INCONCLUSIVE),
])
def test_top_two_needs_every_pairwise_win(arms, verdict):
    row = judge_one(TOP, arms)
    assert row["verdict"] == verdict
    assert row["reason"].count(" vs ") >= 4  # every member-other pair is reported


def test_top_two_without_one_optimizer_is_untested():
    row = judge_one(TOP, {"adam/final": [82, 82], "adamax/final": [81, 81], "sgd/final": [75, 75]})
    assert row["verdict"] == UNTESTED


# ---------------------------------------------------------------- faster claims
ACC3 = [75.0, 75.5, 75.2]


@pytest.mark.parametrize("epochs,verdict", [
    ({"adam/final": [2, 2, 3], "sgd/final": [5, 6, 5], "adamax/final": [4, 5, 4]}, REPRODUCED),
    ({"adam/final": [7, 8, 7], "sgd/final": [5, 6, 5], "adamax/final": [4, 5, 4]}, CONTRADICTED),
    ({"adam/final": [4, 6, 4], "sgd/final": [5, 6, 5], "adamax/final": [4, 5, 5]}, INCONCLUSIVE),
])
def test_fastest_compares_epochs_to_target_with_welch(epochs, verdict):
    arms = {arm: ACC3 for arm in epochs}
    row = judge_one(FASTER, arms, epochs_to_target=epochs)
    assert row["verdict"] == verdict and "Welch" in row["test"] and "epochs to" in row["test"]


def test_fastest_with_two_seeds_is_inconclusive_for_want_of_a_test():
    epochs = {"adam/final": [2, 2], "sgd/final": [5, 6], "adamax/final": [4, 5]}
    row = judge_one(FASTER, {arm: [75.0, 75.2] for arm in epochs}, epochs_to_target=epochs)
    assert row["verdict"] == INCONCLUSIVE and "3 seeds" in row["reason"]


def test_a_run_that_never_reaches_the_target_counts_as_slowest():
    epochs = {"adam/final": [2, 2, 3], "sgd/final": [None, None, None], "adamax/final": [4, 5, 4]}
    row = judge_one(FASTER, {arm: ACC3 for arm in epochs}, epochs_to_target=epochs)
    assert row["verdict"] == REPRODUCED


# ---------------------------------------------------------------- the claims file
def test_the_papers_claims_load_and_cover_what_the_issue_asks():
    claims = verdicts.load_claims()
    ids = {c["id"] for c in claims}
    kinds = {c["kind"] for c in claims}
    assert kinds == set(verdicts.KINDS)
    assert {"baseline", "top_two", "momentum_sgd", "dropout_adam", "batchnorm_adam",
            "adam_fastest"} <= ids
    for opt in ("adam", "sgd", "rmsprop", "adamax"):
        assert {f"initial_{opt}", f"final_{opt}", f"adjustments_{opt}", f"beats_baseline_{opt}",
                f"schedule_{opt}"} <= ids
    values = {c["id"]: c["paper"] for c in claims if c["kind"] == "value"}
    assert values["baseline"] == 70.71 and values["final_adam"] == 85.5


def test_every_claim_names_runs_of_the_default_grid():
    import yaml
    from workflow_helpers import ROOT

    from cnnopt import config as cnnconfig

    with open(ROOT / "config" / "config.yaml") as fh:
        runs = cnnconfig.expand_runs(cnnconfig.validate(yaml.safe_load(fh)))
    arms = {f"{s['optimizer']}/{s['variant']}" for s in runs.values()}
    for claim in verdicts.load_claims():
        assert set(verdicts.arms(claim)) <= arms, claim["id"]


@pytest.mark.parametrize("text,message", [
    ("- {id: a, kind: guess, claim: x, where: y}", "kind must be one of"),
    ("- {id: a, kind: value, claim: x, where: y, run: adam/final}", "missing paper"),
    ("- {id: a, kind: greater, claim: x, where: y, a: p/q, b: r/s}\n"
     "- {id: a, kind: greater, claim: x, where: y, a: p/q, b: r/s}", "appears twice"),
])
def test_a_malformed_claims_file_is_refused_in_one_line(text, message):
    with pytest.raises(CnnoptError, match=message):
        verdicts.load_claims(text)


def test_a_value_inside_an_interval_too_wide_to_tell_is_inconclusive():
    # two seeds 3 points apart: the t-interval (1 degree of freedom) is about ± 19 points
    row = judge_one(VALUE, {"adam/initial": [70.5, 73.5]})
    assert row["ci_low"] < 72.0 < row["ci_high"]
    assert row["verdict"] == INCONCLUSIVE and "too wide" in row["reason"]
    assert judge_one(VALUE, {"adam/initial": [70.5, 73.5]},
                     rules={"max_halfwidth": 25.0})["verdict"] == REPRODUCED


def test_a_comparison_of_two_reported_values_carries_the_papers_difference():
    claims = verdicts.load_claims()
    runs, predictions = study({"adam/final": [80.0, 80.4], "adam/initial": [72.0, 72.3]})
    frame = verdicts.judge(claims, runs, predictions, RULES).set_index("id")
    assert frame.loc["adjustments_adam", "paper"] == pytest.approx(85.50 - 72.07)
    assert np.isnan(frame.loc["schedule_adam", "paper"])  # the paper gives no number for a twin
