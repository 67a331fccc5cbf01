"""The decision rules of the claims table (cnnopt.judge), on synthetic runs: every verdict of
every claim kind, the model behind them, Holm's correction and the power columns.

Each test builds the runs a claim reads (one accuracy per arm and seed, and where it matters
per-image predictions on a shared test set) and checks the verdict the declared rules give.
Expected numbers come from statsmodels and scipy directly, not from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cnnopt.common.errors import CnnoptError
from cnnopt.judge import claims as judge_claims
from cnnopt.judge import decide, power
from cnnopt.judge.verdicts import (
    CONTRADICTED,
    DEFAULT_RULES,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    UNTESTED,
)

N_TEST = 2000
LABELS = np.random.default_rng(0).integers(0, 10, N_TEST)


def _role(variant: str) -> str:
    return variant if variant in ("baseline", "initial", "final") else "ablation"


def study(arms: dict[str, list[float]], epochs=45, **columns):
    """A runs table: ``arms`` maps "optimizer/variant" to one accuracy (%) per seed; each
    keyword maps a column to {arm: [value per seed]} (or one value for every run)."""
    rows = []
    for arm, values in arms.items():
        optimizer, variant = arm.split("/")
        for seed, acc in enumerate(values):
            row = {"run_id": f"{optimizer}-{variant}-s{seed}", "optimizer": optimizer,
                   "variant": variant, "seed": seed, "role": _role(variant),
                   "test_accuracy": acc, "test_accuracy_best": acc, "diverged": False,
                   "epochs": epochs, "epochs_run": epochs, "still_rising": False,
                   "max_train_images": None, "train_seconds": 100.0 * epochs,
                   "reached_target": True}
            for col, value in columns.items():
                row[col] = value.get(arm, [row.get(col)] * len(values))[seed] \
                    if isinstance(value, dict) else value
            rows.append(row)
    return pd.DataFrame(rows)


def judge_one(claim: dict, runs: pd.DataFrame, rules=None, predictions=None, scale="paper") -> dict:
    frame = decide.judge([claim], runs, predictions, rules, scale)
    assert list(frame.columns) == decide.COLUMNS
    return frame.iloc[0].to_dict()


def claim(kind, **keys) -> dict:
    return {"id": "c", "family": "ingredients", "kind": kind, "claim": "x", "where": "T1", **keys}


GREATER = claim("greater", a="adam/final", b="adam/final_no_dropout")
VALUE = claim("value", family="values", paper=80.0, run="adam/final", scale=True)
#: Other arms of the same stratum: they pool the residual variance (sd about 0.5).
POOL = {f"o{i}/final": [70 + i + d for d in (0.4, -0.4, 0.2)][:3] for i in range(6)}


def pool(n: int) -> dict:
    return {arm: values[:n] for arm, values in POOL.items()}


# ---------------------------------------------------------------- the model
def test_comparison_is_the_paired_contrast_of_one_ols_over_the_stratum():
    arms = {"adam/final": [81.0, 83.5, 80.2], "adam/final_no_dropout": [80.1, 82.0, 79.9], **pool(3)}
    runs = study(arms)
    row = judge_one(GREATER, runs)
    # the same model, fitted by statsmodels' formula interface
    frame = runs.assign(arm=runs["optimizer"] + "/" + runs["variant"])
    fit = smf.ols("test_accuracy ~ 0 + C(arm) + C(seed)", frame).fit()
    test = fit.t_test("C(arm)[adam/final] - C(arm)[adam/final_no_dropout] = 0")
    assert row["ours"] == pytest.approx(float(test.effect[0]))
    assert row["p_value"] == pytest.approx(float(test.pvalue))
    low, high = test.conf_int(alpha=0.05)[0]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert fit.df_resid == 8 * 3 - 8 - 2  # pooled over the stratum: 14 df from 3 seeds


def test_pairing_removes_the_seeds_shared_luck():
    # both arms swing by 4 points with the seed, but A is always 1 point above B
    arms = {"adam/final": [80.0, 84.0, 78.0], "adam/final_no_dropout": [79.0, 83.0, 77.0]}
    arms |= {f"o{i}/final": [70.0 + i + s for s in (0.0, 4.1, -2.1)] for i in range(4)}
    row = judge_one(GREATER, study(arms))
    assert row["verdict"] == REPRODUCED
    assert row["ci_high"] - row["ci_low"] < 1.0  # an unpaired interval would be ±5 points
    unpaired = stats.ttest_ind([80.0, 84.0, 78.0], [79.0, 83.0, 77.0])
    assert unpaired.pvalue > 0.5


def test_value_is_the_prediction_interval_of_one_run_from_the_unpaired_model():
    arms = {"adam/final": [80.3, 79.6, 80.1], **pool(3)}
    runs = study(arms)
    row = judge_one(VALUE, runs)
    frame = runs.assign(arm=runs["optimizer"] + "/" + runs["variant"])
    fit = smf.ols("test_accuracy ~ 0 + C(arm)", frame).fit()
    pred = fit.get_prediction(pd.DataFrame({"arm": ["adam/final"]})).summary_frame(alpha=0.10)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (pred["obs_ci_lower"].iloc[0], pred["obs_ci_upper"].iloc[0]))
    assert row["verdict"] == REPRODUCED and "shown within ± 2" in row["reason"]
    # the two one-sided tests, by scipy on the same standard error
    se = (pred["obs_ci_upper"].iloc[0] - pred["mean"].iloc[0]) / stats.t.ppf(0.95, fit.df_resid)
    gap = 80.0 - pred["mean"].iloc[0]
    tost = max(stats.t.sf((gap + 2) / se, fit.df_resid), stats.t.cdf((gap - 2) / se, fit.df_resid))
    assert row["p_value"] == pytest.approx(tost)


# ---------------------------------------------------------------- value claims: every verdict
@pytest.mark.parametrize("values, epochs, rising, verdict, words", [
    ([80.3, 79.6, 80.1], 45, False, REPRODUCED, "shown within"),
    ([74.0, 74.4, 73.8], 45, False, NOT_REPRODUCED, "shown beyond"),
    ([74.0, 74.4, 73.8], 8, False, INCONCLUSIVE, "below the paper's budget"),
    ([74.0, 74.4, 73.8], 45, True, INCONCLUSIVE, "still rising"),
    ([78.2, 78.0, 78.5], 45, False, INCONCLUSIVE, "neither shown within nor beyond"),
])
def test_value_verdicts(values, epochs, rising, verdict, words):
    runs = study({"adam/final": values, **pool(3)}, epochs=epochs, still_rising=rising)
    row = judge_one(VALUE, runs)
    assert row["verdict"] == verdict and words in row["reason"], row["reason"]
    if epochs < 45:
        assert row["scale"] == "reduced (8 epochs)"


def test_a_value_of_a_recipe_that_diverged_is_never_reproduced():
    runs = study({"adam/final": [80.3, 79.6, 10.0], **pool(3)},
                 diverged={"adam/final": [False, False, True]})
    row = judge_one(VALUE, runs)
    assert row["verdict"] == INCONCLUSIVE and "diverged" in row["reason"]
    assert row["ours"] == pytest.approx((80.3 + 79.6) / 2)  # the diverged run is left out
    assert row["n"] == 2


def test_value_needs_runs_and_spread():
    assert judge_one(VALUE, study({"sgd/final": [80.0, 80.2]}))["verdict"] == UNTESTED
    one_seed = judge_one(VALUE, study({"adam/final": [80.0], **pool(1)}))
    assert one_seed["verdict"] == INCONCLUSIVE and "degrees of freedom" in one_seed["reason"]
    flat = judge_one(VALUE, study({"adam/final": [80.0, 80.0], "b/final": [70.0, 70.0]}))
    assert flat["verdict"] == INCONCLUSIVE and "no spread" in flat["reason"]


# ---------------------------------------------------------------- comparisons: every verdict
@pytest.mark.parametrize("a, b, verdict, words", [
    ([82.0, 83.1, 81.6], [80.0, 81.0, 79.9], REPRODUCED, "every seed agrees"),
    ([80.0, 81.0, 79.9], [82.0, 83.1, 81.6], CONTRADICTED, "every seed agrees"),
    ([80.1, 81.0, 80.0], [80.0, 81.1, 79.9], INCONCLUSIVE, "no difference shown"),
    ([85.0, 86.0, 79.8], [80.0, 81.0, 80.0], INCONCLUSIVE, "the seeds disagree"),  # p < 0.01
])
def test_comparison_verdicts(a, b, verdict, words):
    arms = {"adam/final": a, "adam/final_no_dropout": b, **pool(3)}
    row = judge_one(GREATER, study(arms))
    assert row["verdict"] == verdict and words in row["reason"], row["reason"]
    assert row["n"] == 3


def test_lower_is_better_flips_the_direction():
    lower = claim("greater", a="adam/final", b="sgd/final", metric="gap", better="lower")
    arms = {"adam/final": [80.0] * 3, "sgd/final": [80.0] * 3, **pool(3)}
    gap = {"adam/final": [1.0, 1.2, 0.9], "sgd/final": [4.0, 4.3, 3.8],
           **{arm: [2.0 + i * 0.1 + d for d in (0.2, -0.2, 0.1)] for i, arm in enumerate(POOL)}}
    row = judge_one(lower, study(arms, gap=gap))
    assert row["verdict"] == REPRODUCED and row["ours"] == pytest.approx(3.0, abs=0.1)


def test_comparison_needs_both_arms_on_common_seeds():
    missing = judge_one(GREATER, study({"adam/final": [80.0, 81.0], **pool(2)}))
    assert missing["verdict"] == UNTESTED and "config/paper.yaml" in missing["reason"]
    runs = study({"adam/final": [80.0], **pool(2)})
    twin = study({"adam/final_no_dropout": [79.0, 78.0]}).iloc[[1]]
    row = judge_one(GREATER, pd.concat([runs, twin]))
    assert row["verdict"] == UNTESTED and "common seeds" in row["reason"]


def test_zero_spread_is_inconclusive_not_certain():
    flat = {"adam/final": [81.0, 81.0], "adam/final_no_dropout": [80.0, 80.0]}
    row = judge_one(GREATER, study(flat))
    assert row["verdict"] == INCONCLUSIVE and "no spread" in row["reason"]
    assert math.isnan(row["p_value"])


def test_per_image_predictions_are_descriptive_and_may_be_missing():
    arms = {"adam/final": [82.0, 83.1, 81.6], "adam/final_no_dropout": [80.0, 81.0, 79.9], **pool(3)}
    runs = study(arms)
    rng = np.random.default_rng(3)
    preds = {(r, m): (LABELS, np.where(rng.random(N_TEST) < 0.8, LABELS, (LABELS + 1) % 10))
             for r in runs["run_id"] for m in ("last", "best")}
    row = judge_one(GREATER, runs, predictions=preds)
    better = worse = 0
    for s in range(3):
        ya, ha = preds[f"adam-final-s{s}", "best"]
        _, hb = preds[f"adam-final_no_dropout-s{s}", "best"]  # twins are judged on their best models
        better += int(np.sum((ha == ya) & (hb != ya)))
        worse += int(np.sum((ha != ya) & (hb == ya)))
    assert f"{better} vs {worse} discordant images over 3 seed pair(s)" in row["mcnemar"]
    without = judge_one(GREATER, runs, predictions={})
    assert without["mcnemar"] == "per-image predictions missing"
    assert without["verdict"] == row["verdict"] == REPRODUCED  # descriptive only
    shifted = dict(preds)
    shifted["adam-final-s0", "best"] = (np.roll(LABELS, 1), preds["adam-final-s0", "best"][1])
    with pytest.raises(CnnoptError, match="same test images"):
        judge_one(GREATER, runs, predictions=shifted)


def test_a_recipe_that_diverged_never_wins_a_comparison():
    arms = {"adam/final": [82.0, 83.1, 10.0], "adam/final_no_dropout": [80.0, 81.0, 79.9], **pool(3)}
    runs = study(arms, diverged={"adam/final": [False, False, True]})
    row = judge_one(GREATER, runs)
    assert row["verdict"] == INCONCLUSIVE and "diverged in 1 of 3 runs" in row["reason"]
    assert "left out of the model" in row["reason"]
    against = judge_one(claim("greater", a="adam/final_no_dropout", b="adam/final"), runs)
    assert against["verdict"] == INCONCLUSIVE  # nor does its contradiction count for it
    # a diverged recipe whose other runs lose is contradicted all the same
    losing = study({"adam/final": [78.0, 79.1, 10.0], "adam/final_no_dropout": [80.0, 81.0, 79.9],
                    **pool(3)}, diverged={"adam/final": [False, False, True]})
    assert judge_one(GREATER, losing)["verdict"] == CONTRADICTED


# ---------------------------------------------------------------- speed: censoring
FASTER = claim("greater", family="speed", a="adam/final", b="sgd/final",
               metric="epochs_to_target", better="lower")


def _speed_runs(sgd_epochs, sgd_reached, diverged=None):
    arms = {"adam/final": [80.0] * 3, "sgd/final": [80.0] * 3, **pool(3)}
    return study(arms, epochs=10, epochs_to_target={
        "adam/final": [2.1, 2.4, 2.0], "sgd/final": sgd_epochs,
        **{arm: [4.0 + i * 0.1 + d for d in (0.1, -0.1, 0.05)] for i, arm in enumerate(POOL)}},
        reached_target={"sgd/final": sgd_reached},
        diverged=diverged or {})


def test_a_run_that_diverges_before_the_target_is_censored_at_its_budget():
    # SGD's seed 2 diverged at epoch 2 without reaching the target: it counts as 10 epochs
    # (its planned budget), not as 3 (one past its last epoch)
    runs = _speed_runs([5.0, 5.5, math.nan], [True, True, False],
                       diverged={"sgd/final": [False, False, True]})
    row = judge_one(FASTER, runs, rules={"paper_epochs": {"final": 10}})
    diffs = np.array([5.0, 5.5, 10.0]) - np.array([2.1, 2.4, 2.0])
    assert row["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert row["verdict"] == REPRODUCED


def test_a_censored_run_of_the_claimed_faster_arm_forbids_reproduced():
    runs = _speed_runs([5.0, 5.5, 5.2], [True, True, True])
    runs.loc[runs["run_id"] == "adam-final-s1", "reached_target"] = False
    row = judge_one(FASTER, runs, rules={"paper_epochs": {"final": 10}})
    # Adam's seed 1 counts as its budget (10 epochs), slower than SGD's 5.5: never reproduced
    diffs = np.array([5.0, 5.5, 5.2]) - np.array([2.1, 10.0, 2.0])
    assert row["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert row["verdict"] == INCONCLUSIVE


# ---------------------------------------------------------------- top claims: every path
TOP = claim("top", family="ranking", members=["adam/final", "adamax/final"],
            others=["rmsprop/final", "sgd/final"])


@pytest.mark.parametrize("adamax, sgd, verdict", [
    ([84.0, 84.5, 83.8], [80.0, 80.5, 79.8], REPRODUCED),    # every pair holds
    ([81.0, 81.4, 80.6], [80.0, 80.5, 79.8], INCONCLUSIVE),  # adamax vs rmsprop undecided
    ([78.0, 78.4, 77.6], [80.0, 80.5, 79.8], CONTRADICTED),  # adamax loses to sgd
])
def test_top_claim_paths(adamax, sgd, verdict):
    arms = {"adam/final": [85.0, 85.6, 84.7], "adamax/final": adamax,
            "rmsprop/final": [80.8, 81.2, 80.5], "sgd/final": sgd, **pool(3)}
    row = judge_one(TOP, study(arms))
    assert row["verdict"] == verdict, row["reason"]
    assert row["reason"].count(" vs ") >= 4  # every pair is named


def test_top_claim_with_a_missing_arm_is_untested():
    arms = {"adam/final": [85.0, 85.6], "adamax/final": [84.0, 84.5], "rmsprop/final": [80.8, 81.2]}
    row = judge_one(TOP, study(arms))
    assert row["verdict"] == UNTESTED and "sgd/final" in row["reason"]


# ---------------------------------------------------------------- families: Holm
def test_holm_runs_within_each_family():
    arms = {"adam/final": [80.8, 81.6, 80.5], "adam/final_no_dropout": [80.0, 81.0, 79.9],
            **{f"x{i}/final": [70.0 + d for d in (0.3, -0.3, 0.1)] for i in range(4)}, **pool(3)}
    runs = study(arms)
    target = claim("greater", id="t", a="adam/final", b="adam/final_no_dropout")
    alone = judge_one(target, runs)
    others = [claim("greater", id=f"n{i}", a=f"x{i}/final", b=f"x{(i + 1) % 4}/final")
              for i in range(4)]
    frame = decide.judge([target, *others], runs, rules=None, scale="paper").set_index("id")
    raw = frame["p_value"].to_numpy(float)
    assert frame["p_adjusted"].to_numpy(float) == pytest.approx(
        multipletests(raw, alpha=0.05, method="holm")[1])
    assert alone["p_value"] == pytest.approx(frame.loc["t", "p_value"])
    assert alone["p_adjusted"] == pytest.approx(alone["p_value"])  # a family of one
    assert alone["verdict"] == REPRODUCED
    assert frame.loc["t", "p_value"] < 0.05 < frame.loc["t", "p_adjusted"]
    assert frame.loc["t", "verdict"] == INCONCLUSIVE  # not significant after correction
    # in another family the other claims do not count against it
    moved = decide.judge([target, *[o | {"family": "curves"} for o in others]], runs,
                         scale="paper").set_index("id")
    assert moved.loc["t", "verdict"] == REPRODUCED


# ---------------------------------------------------------------- scale and wording
def test_reduced_scale_is_worded_with_the_budget():
    arms = {"adam/final": [82.0, 83.1, 81.6], "adam/final_no_dropout": [80.0, 81.0, 79.9], **pool(3)}
    row = judge_one(GREATER, study(arms, epochs=8))
    assert row["verdict"] == REPRODUCED and row["verdict_text"] == "reproduced at 8 epochs"
    assert row["scale"] == "reduced (8 epochs)"
    full = judge_one(GREATER, study(arms, epochs=45))
    assert full["verdict_text"] == "reproduced" and full["scale"] == "paper"
    subset = judge_one(GREATER, study(arms, epochs=45, max_train_images=10_000))
    assert subset["scale"] == "reduced (45 epochs)"  # fewer images than the paper's


# ---------------------------------------------------------------- power
def test_detectable_difference_has_the_declared_power():
    se, df, alpha = 0.6, 12, 0.05 / 4
    d = power.detectable(se, df, alpha)
    assert power.power_at(d / se, df, alpha) == pytest.approx(0.8, abs=1e-6)
    # a Monte Carlo check of that power: t statistics of a true effect d
    rng = np.random.default_rng(0)
    t = (d + rng.normal(0, se, 20_000)) / (se * np.sqrt(rng.chisquare(df, 20_000) / df))
    assert np.mean(np.abs(t) > stats.t.ppf(1 - alpha / 2, df)) == pytest.approx(0.8, abs=0.015)


def test_power_columns_of_an_inconclusive_claim():
    arms = {"adam/final": [80.6, 81.5, 80.4], "adam/final_no_dropout": [80.0, 81.0, 79.9], **pool(3)}
    row = judge_one(GREATER, study(arms))
    assert row["verdict"] == INCONCLUSIVE
    assert row["detectable"] > abs(row["ours"])
    n = int(row["seeds_to_decide"])
    assert 3 < n <= DEFAULT_RULES["max_seeds"]
    # more seeds of the same spread: the same effect is then decided
    se, df = (row["ci_high"] - row["ci_low"]) / 2 / stats.t.ppf(0.975, 14), 14
    assert power.power_at(row["ours"] / (se * math.sqrt(3 / n)), df + 7 * (n - 3), 0.05) >= 0.8
    assert power.power_at(row["ours"] / (se * math.sqrt(3 / (n - 1))), df + 7 * (n - 4), 0.05) < 0.8


# ---------------------------------------------------------------- the claims file
def test_the_claims_file_is_complete_and_names_only_known_families_and_metrics():
    claims = judge_claims.load_claims()
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids))
    families = {c["family"] for c in claims}
    assert families == {"values", "adjustments", "ingredients", "ranking", "speed", "curves"}
    for needed in ("initial_sgd_below_adam", "dropout_sgd", "dropout_rmsprop", "dropout_adamax",
                   "decay_rmsprop", "rate_adamax", "fastest_adam_adamax", "efficient_adam",
                   "volatile_rmsprop", "aligned_adam_adamax", "smoother_dropout_adam"):
        assert needed in ids


@pytest.mark.parametrize("text, message", [
    ("- {id: a, family: values, kind: sum, claim: x, where: y}", "kind must be one of"),
    ("- {id: a, family: nope, kind: greater, a: x/y, b: x/z, claim: x, where: y}", "family must be"),
    ("- {id: a, family: curves, kind: greater, a: x/y, b: x/z, claim: x, where: y, metric: joy}", "metric must be"),
    ("- {id: a, family: values, kind: value, run: x/y, claim: x, where: y}", "the paper reports no number for x/y"),
])
def test_a_broken_claims_file_is_a_one_line_error(text, message):
    with pytest.raises(CnnoptError, match=message) as exc:
        judge_claims.load_claims(text)
    assert "\n" not in str(exc.value)


def test_the_runs_table_must_have_the_judged_columns():
    with pytest.raises(CnnoptError, match="lacks column"):
        decide.judge([GREATER], pd.DataFrame({"run_id": ["x"]}))
