"""The decision rules of the claims table (cnnopt.judge), on synthetic runs: the moderated
variances behind them, every verdict of every claim kind, the cases that break a pooled model
(a volatile arm, arms that share no seed luck, a diverged twin beside the speed claims),
Holm's correction and the power columns.

Each test builds the runs a claim reads (one value per arm and seed) and checks the verdict
the declared rules give. Expected numbers come from limma's published values, scipy and
statsmodels directly, not from the code under test.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cnnopt.common.errors import CnnoptError
from cnnopt.judge import claims as judge_claims
from cnnopt.judge import decide, model, power
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import CONTRADICTED, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, UNTESTED

N_TEST = 2000
LABELS = np.random.default_rng(0).integers(0, 10, N_TEST)
RULES = Rules.of()


def _role(variant: str) -> str:
    return variant if variant in ("baseline", "initial", "final") else "ablation"


def study(arms: dict[str, list[float]], epochs=45, **columns):
    """A runs table: ``arms`` maps "optimizer/variant" to one value (%) per seed; each keyword
    maps a column to {arm: [value per seed]} (or one value for every run)."""
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


def calm(n: int, k: int = 8, sd: float = 0.5, seed: int = 1) -> dict:
    """``k`` calm arms of the final stratum (seed sd ``sd``): the neighbours a variance is
    moderated toward."""
    rng = np.random.default_rng(seed)
    return {f"o{i}/final": list(70 + i + rng.normal(0, sd, n)) for i in range(k)}


# ---------------------------------------------------------------- the moderated variance
def test_squeeze_matches_limmas_published_values():
    # limma's squeezeVar(c(0.5, 1.3, 7.8), df = 3) (the values limma's and inmoose's tests pin)
    prior, post = model.squeeze(np.array([0.5, 1.3, 7.8]), 3, cautious=False)
    assert prior.df == pytest.approx(2.830777, abs=1e-5)
    assert prior.var == pytest.approx(1.676927, abs=1e-5)
    assert post == pytest.approx([1.071385, 1.482994, 4.827317], abs=1e-5)
    assert model.fit_prior(np.array([1.0]), 2).df == 0  # one variance: no prior


def test_alike_arms_pool_fully_and_a_spread_beyond_sampling_keeps_each_its_own():
    rng = np.random.default_rng(4)
    alike = 2.0 * rng.chisquare(1, 100)  # a hundred arms of seed variance 2, on one df each
    prior = model.fit_prior(alike, 1, max_df=100)
    assert prior.df == 100 and prior.var == pytest.approx(alike.mean())  # pooled
    assert prior.var == pytest.approx(2.0, rel=0.3)
    # limma's plain moments take part of the noise for spread: fewer degrees of freedom
    assert model.fit_prior(alike, 1, max_df=100, cautious=False).df <= prior.df
    apart = np.concatenate([alike[:50], 40 * alike[50:]])  # two kinds of arm, 40x apart
    assert model.fit_prior(apart, 1, max_df=100).df < 3


def test_without_neighbours_a_comparison_is_the_paired_t_test():
    a, b = [82.0, 83.1, 81.6], [80.0, 81.0, 79.9]
    row = judge_one(GREATER, study({"adam/final": a, "adam/final_no_dropout": b}))
    ref = stats.ttest_rel(a, b)
    assert row["p_value"] == pytest.approx(ref.pvalue)
    low, high = ref.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert "prior none" in row["test"]


def test_a_volatile_arm_keeps_its_own_variance_next_to_calm_arms():
    # the calm final arms pool into a prior of sd 0.5; adam/final swings by 6 points with the
    # seed: its comparison rests on its own spread, not on its neighbours' calm
    arms = {"adam/final": [86.0, 80.0, 83.5], "adam/final_no_dropout": [80.0, 80.4, 79.8], **calm(3)}
    row = judge_one(GREATER, study(arms))
    assert row["verdict"] == INCONCLUSIVE, row["reason"]
    assert row["ci_high"] - row["ci_low"] > 10
    # a calm pair of the same study pools with its neighbours: a small difference is decided
    # where its own two degrees of freedom alone could not
    steady = {"adam/final": [81.0, 81.3, 80.7], "adam/final_no_dropout": [80.0, 80.2, 79.9], **calm(3)}
    decided = judge_one(GREATER, study(steady))
    alone = stats.ttest_rel([81.0, 81.3, 80.7], [80.0, 80.2, 79.9])
    assert decided["verdict"] == REPRODUCED and alone.pvalue > decided["p_value"]


def test_a_comparison_whose_arms_share_no_seed_luck_is_not_credited_with_pairing():
    # two optimizers whose seeds do not move together: the per-seed differences are as spread
    # as the runs, and no seed effect shared by every arm is subtracted
    rng = np.random.default_rng(5)
    neighbours = {f"x{i}/final": list(75 + rng.normal(0, 1.0, 2)) for i in range(10)}
    arms = {"adam/final": [77.0, 75.2], "sgd/final": [74.4, 75.0], **neighbours}
    cross = claim("greater", family="ranking", a="adam/final", b="sgd/final")
    row = judge_one(cross, study(arms))
    assert row["verdict"] == INCONCLUSIVE
    # its variance is at least two runs' worth of the stratum's spread
    prior = model.fit_prior([np.var(v, ddof=1) for v in arms.values()], 1, max_df=12)
    se_floor = math.sqrt(2 * prior.var / 2) * 0.9
    t_ratio = (row["ci_high"] - row["ci_low"]) / 2 / stats.t.ppf(0.975, 50)
    assert t_ratio > se_floor


def test_twins_that_share_their_luck_are_credited_from_their_own_differences():
    # both arms swing by 4 points with the seed, A always 1 point above B: without neighbours
    # to pool with, the paired differences alone carry the benefit (a paired t test), where
    # the two arms' own spreads (unpaired) see nothing
    swing = [0.0, 4.0, -2.0, 3.0, -1.0]
    a = [80.0 + s for s in swing]
    b = [79.0 + s + d for s, d in zip(swing, [0.1, -0.1, 0.05, 0, -0.05], strict=True)]
    row = judge_one(GREATER, study({"adam/final": a, "adam/final_no_dropout": b}))
    assert row["verdict"] == REPRODUCED
    assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert stats.ttest_ind(a, b).pvalue > 0.5
    # beside calm neighbours, the prior (two runs that share no luck) weighs against one
    # pair's few degrees of freedom: its benefit counts as far as its own seeds go
    beside = judge_one(GREATER, study({"adam/final": a, "adam/final_no_dropout": b,
                                       **{f"o{i}/final": [70.0 + i + s for s in swing] for i in range(4)}}))
    assert beside["p_value"] > row["p_value"]


# ---------------------------------------------------------------- value claims: every verdict
@pytest.mark.parametrize("values, epochs, rising, verdict, words", [
    ([80.3, 79.6, 80.1], 45, False, REPRODUCED, "shown within"),
    ([74.0, 74.4, 73.8], 45, False, NOT_REPRODUCED, "shown beyond"),
    ([74.0, 74.4, 73.8], 8, False, INCONCLUSIVE, "below the paper's budget"),
    ([74.0, 74.4, 73.8], 45, True, INCONCLUSIVE, "still rising"),
    ([78.2, 77.6, 78.6], 45, False, INCONCLUSIVE, "neither shown within nor beyond"),
])
def test_value_verdicts(values, epochs, rising, verdict, words):
    runs = study({"adam/final": values, **calm(3)}, epochs=epochs, still_rising=rising)
    row = judge_one(VALUE, runs)
    assert row["verdict"] == verdict and words in row["reason"], row["reason"]
    if epochs < 45:
        assert row["scale"] == "reduced (8 epochs)"


def test_a_value_at_the_papers_number_at_seed_sd_point_three_says_how_close():
    # the paper's scale: seed sd 0.3 plus the test set's own noise, ten arms, two seeds
    rng = np.random.default_rng(11)
    arms = {f"o{i}/final": list(80 + rng.normal(0, 0.35, 2)) for i in range(10)}
    arms["adam/final"] = [79.8, 80.2]
    row = judge_one(VALUE, study(arms))
    assert row["verdict"] == REPRODUCED
    # "within ± X points at 90 %": the farther end of the 90 % interval of one run from 80
    assert row["within"] == pytest.approx(max(80 - row["ci_low"], row["ci_high"] - 80))
    assert row["within"] < RULES.margin
    assert 0.5 < row["power"] <= 1  # the chance to reproduce a recipe at the paper's number
    assert f"within ± {row['within']:.2f} points at 90%" in row["reason"]


def test_a_value_of_a_recipe_that_diverged_is_never_reproduced():
    runs = study({"adam/final": [80.3, 79.6, 10.0], **calm(3)},
                 diverged={"adam/final": [False, False, True]})
    row = judge_one(VALUE, runs)
    assert row["verdict"] == INCONCLUSIVE and "diverged" in row["reason"]
    assert row["ours"] == pytest.approx((80.3 + 79.6) / 2)  # the diverged run is left out
    assert row["n"] == 2


def test_value_needs_runs_and_spread():
    assert judge_one(VALUE, study({"sgd/final": [80.0, 80.2]}))["verdict"] == UNTESTED
    one_seed = judge_one(VALUE, study({"adam/final": [80.0], "b/final": [70.0]}))
    assert one_seed["verdict"] == INCONCLUSIVE and "nothing to estimate" in one_seed["reason"]
    flat = judge_one(VALUE, study({"adam/final": [80.0, 80.0], "b/final": [70.0, 70.0]}))
    assert flat["verdict"] == INCONCLUSIVE


# ---------------------------------------------------------------- comparisons: every verdict
@pytest.mark.parametrize("a, b, verdict, words", [
    ([82.0, 83.1, 81.6], [80.0, 81.0, 79.9], REPRODUCED, "every seed agrees"),
    ([80.0, 81.0, 79.9], [82.0, 83.1, 81.6], CONTRADICTED, "every seed agrees"),
    ([80.1, 81.0, 80.0], [80.0, 81.1, 79.9], INCONCLUSIVE, "no difference shown"),
    ([81.5, 81.8, 80.05], [80.0, 80.2, 80.1], INCONCLUSIVE, "the seeds disagree"),
])
def test_comparison_verdicts(a, b, verdict, words):
    arms = {"adam/final": a, "adam/final_no_dropout": b, **calm(3)}
    row = judge_one(GREATER, study(arms))
    assert row["verdict"] == verdict and words in row["reason"], row["reason"]
    assert row["n"] == 3


def test_without_common_seeds_the_arms_are_compared_unpaired():
    runs = study({"adam/final": [83.0, 83.4, 82.8], **calm(3)})
    twin = study({"adam/final_no_dropout": [80.0, 80.1, 80.3, 79.8, 80.2]}).iloc[3:]
    row = judge_one(GREATER, pd.concat([runs, twin]))
    assert row["verdict"] == REPRODUCED and "Welch" in row["test"] and "unpaired" in row["reason"]
    missing = judge_one(GREATER, study({"adam/final": [80.0, 81.0], **calm(2)}))
    assert missing["verdict"] == UNTESTED and "config/paper.yaml" in missing["reason"]


def test_lower_is_better_flips_the_direction():
    lower = claim("greater", a="adam/final", b="sgd/final", metric="gap", better="lower")
    arms = {"adam/final": [80.0] * 3, "sgd/final": [80.0] * 3, **calm(3)}
    gap = {"adam/final": [1.0, 1.2, 0.9], "sgd/final": [4.0, 4.3, 3.8],
           **{arm: [2.0 + i * 0.1 + d for d in (0.2, -0.2, 0.1)] for i, arm in enumerate(calm(3))}}
    row = judge_one(lower, study(arms, gap=gap))
    assert row["verdict"] == REPRODUCED and row["ours"] == pytest.approx(3.0, abs=0.1)


def test_zero_spread_is_inconclusive_not_certain():
    flat = {"adam/final": [81.0, 81.0], "adam/final_no_dropout": [80.0, 80.0]}
    row = judge_one(GREATER, study(flat))
    assert row["verdict"] == INCONCLUSIVE and "no spread" in row["reason"]
    assert math.isnan(row["p_value"])


def test_per_image_predictions_are_descriptive_and_may_be_missing():
    arms = {"adam/final": [82.0, 83.1, 81.6], "adam/final_no_dropout": [80.0, 81.0, 79.9], **calm(3)}
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
    arms = {"adam/final": [82.0, 83.1, 10.0], "adam/final_no_dropout": [80.0, 81.0, 79.9], **calm(3)}
    runs = study(arms, diverged={"adam/final": [False, False, True]})
    row = judge_one(GREATER, runs)
    assert row["verdict"] == INCONCLUSIVE and "diverged in 1 of 3 runs" in row["reason"]
    against = judge_one(claim("greater", a="adam/final_no_dropout", b="adam/final"), runs)
    assert against["verdict"] == INCONCLUSIVE  # nor does its contradiction count for it
    losing = study({"adam/final": [78.0, 79.1, 10.0], "adam/final_no_dropout": [80.0, 81.0, 79.9],
                    **calm(3)}, diverged={"adam/final": [False, False, True]})
    assert judge_one(GREATER, losing)["verdict"] == CONTRADICTED


# ---------------------------------------------------------------- speed: censoring per claim
FASTER = claim("greater", family="speed", a="adam/final", b="sgd/final",
               metric="epochs_to_target", better="lower")
SPEED = [FASTER, claim("greater", id="c2", family="speed", a="adamax/final", b="rmsprop/final",
                       metric="epochs_to_target", better="lower")]


def _speed_runs(sgd_epochs, sgd_reached, diverged=None, twin=None):
    finals = {"adam/final": [2.1, 2.4, 2.0], "sgd/final": sgd_epochs,
              "adamax/final": [2.3, 2.5, 2.2], "rmsprop/final": [4.0, 4.4, 4.1]}
    arms = {arm: [80.0] * 3 for arm in finals}
    reached = {"sgd/final": sgd_reached}
    div = dict(diverged or {})
    if twin:  # a twin no speed claim reads; its seed 0 diverged before the target
        arms["adam/final_no_dropout"] = [80.0] * 3
        finals["adam/final_no_dropout"] = [math.nan, 3.0, 3.1]
        reached["adam/final_no_dropout"] = [False, True, True]
        div["adam/final_no_dropout"] = [True, False, False]
    return study(arms, epochs=10, epochs_to_target=finals, reached_target=reached, diverged=div)


def test_a_run_that_diverges_before_the_target_is_censored_at_its_budget():
    # SGD's seed 2 diverged at epoch 2 without reaching the target: it counts as 10 epochs
    # (its planned budget), the slower side: it cannot make Adam look faster than it is
    runs = _speed_runs([5.0, 5.5, math.nan], [True, True, False],
                       diverged={"sgd/final": [False, False, True]})
    row = judge_one(FASTER, runs, rules={"paper_epochs": {"final": 10}})
    diffs = np.array([5.0, 5.5, 10.0]) - np.array([2.1, 2.4, 2.0])
    assert row["std"] == pytest.approx(np.std(diffs, ddof=1))
    assert row["ours"] == pytest.approx(diffs.mean())


def test_a_censored_run_of_the_claimed_faster_arm_forbids_reproduced():
    runs = _speed_runs([5.0, 5.5, 5.2], [True, True, True])
    runs.loc[runs["run_id"] == "adam-final-s1", "reached_target"] = False
    row = judge_one(FASTER, runs, rules={"paper_epochs": {"final": 10}})
    assert row["verdict"] == INCONCLUSIVE and "censored" in row["reason"] or row["p_adjusted"] >= 0.05


def test_a_diverged_twin_does_not_widen_the_speed_claims():
    rules = {"paper_epochs": {"final": 10, "ablation": 10}}
    clean = decide.judge(SPEED, _speed_runs([5.0, 5.5, 5.2], [True] * 3), rules=rules, scale="paper")
    beside = decide.judge(SPEED, _speed_runs([5.0, 5.5, 5.2], [True] * 3, twin=True), rules=rules,
                          scale="paper")
    cols = ["ours", "ci_low", "ci_high", "p_value", "verdict"]
    pd.testing.assert_frame_equal(clean[cols], beside[cols])
    assert (clean["verdict"] == REPRODUCED).all()


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
            "rmsprop/final": [80.8, 81.2, 80.5], "sgd/final": sgd, **calm(3)}
    row = judge_one(TOP, study(arms))
    assert row["verdict"] == verdict, row["reason"]
    assert row["reason"].count(" vs ") >= 4  # every pair is named


def test_top_claim_with_a_missing_arm_is_untested():
    arms = {"adam/final": [85.0, 85.6], "adamax/final": [84.0, 84.5], "rmsprop/final": [80.8, 81.2]}
    row = judge_one(TOP, study(arms))
    assert row["verdict"] == UNTESTED and "sgd/final" in row["reason"]


# ---------------------------------------------------------------- families: Holm
def test_holm_runs_within_each_family():
    rng = np.random.default_rng(8)
    arms = {"adam/final": [81.0, 81.6, 80.9], "adam/final_no_dropout": [80.4, 81.0, 80.3],
            **{f"x{i}/final": list(70 + rng.normal(0, 0.3, 3)) for i in range(4)}, **calm(3)}
    runs = study(arms)
    target = claim("greater", id="t", a="adam/final", b="adam/final_no_dropout")
    alone = judge_one(target, runs)
    others = [claim("greater", id=f"n{i}", a=f"x{i}/final", b=f"x{(i + 1) % 4}/final")
              for i in range(4)]
    frame = decide.judge([target, *others], runs, scale="paper").set_index("id")
    raw = frame["p_value"].to_numpy(float)
    assert frame["p_adjusted"].to_numpy(float) == pytest.approx(
        multipletests(raw, alpha=0.05, method="holm")[1])
    assert alone["p_value"] == pytest.approx(frame.loc["t", "p_value"])
    assert alone["p_adjusted"] == pytest.approx(alone["p_value"])  # a family of one
    assert alone["verdict"] == REPRODUCED
    assert frame.loc["t", "p_value"] < 0.05 < frame.loc["t", "p_adjusted"]
    assert frame.loc["t", "verdict"] == INCONCLUSIVE  # not significant after correction
    moved = decide.judge([target, *[o | {"family": "curves"} for o in others]], runs,
                         scale="paper").set_index("id")
    assert moved.loc["t", "verdict"] == REPRODUCED


# ---------------------------------------------------------------- scale and wording
def test_reduced_scale_is_worded_with_the_budget():
    arms = {"adam/final": [82.0, 83.1, 81.6], "adam/final_no_dropout": [80.0, 81.0, 79.9], **calm(3)}
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
    rng = np.random.default_rng(0)
    t = (d + rng.normal(0, se, 20_000)) / (se * np.sqrt(rng.chisquare(df, 20_000) / df))
    assert np.mean(np.abs(t) > stats.t.ppf(1 - alpha / 2, df)) == pytest.approx(0.8, abs=0.015)


def test_tost_power_matches_a_simulation_of_the_two_one_sided_tests():
    se, df, margin, alpha = 0.7, 10, 2.0, 0.05
    rng = np.random.default_rng(2)
    for gap in (0.0, 1.0):
        est = gap + rng.normal(0, se, 40_000)
        s = se * np.sqrt(rng.chisquare(df, 40_000) / df)
        q = stats.t.ppf(1 - alpha, df)
        shown = ((est + margin) / s > q) & ((margin - est) / s > q)
        assert power.tost_power(gap, se, df, margin, alpha) == pytest.approx(shown.mean(), abs=0.02)


def test_power_columns_of_an_inconclusive_claim():
    arms = {"adam/final": [80.6, 81.5, 80.4], "adam/final_no_dropout": [80.0, 81.0, 79.9], **calm(3)}
    row = judge_one(GREATER, study(arms))
    assert row["verdict"] == INCONCLUSIVE
    assert row["detectable"] > abs(row["ours"])
    n = int(row["seeds_to_decide"])
    assert 3 < n <= RULES.max_seeds


# ---------------------------------------------------------------- the rules and the claims file
def test_the_rules_are_built_once_with_the_schemas_defaults():
    rules = Rules.of({"margin": 1.5, "strata": {"all": ["final"]}})
    assert rules.margin == 1.5 and rules.confidence == 0.95 and rules.alpha == pytest.approx(0.05)
    assert rules.stratum_of("final") == "all" and rules.stratum_of("initial") == "initial"
    assert Rules.of(rules) is rules and Rules.of(rules.as_block()) == rules
    with pytest.raises(CnnoptError, match="unknown key"):
        Rules.of({"margn": 2})


def test_the_claims_file_is_complete_and_names_only_known_families_and_metrics():
    claims = judge_claims.load_claims()
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids))
    families = {c["family"] for c in claims}
    assert families == {"values", "adjustments", "ingredients", "ranking", "speed", "curves"}


@pytest.mark.parametrize("text, message", [
    ("- {id: a, family: values, kind: sum, claim: x, where: y}", "kind must be one of"),
    ("- {id: a, family: nope, kind: greater, a: x/y, b: x/z, claim: x, where: y}", "family .nope. is not declared"),
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
    runs = study({"adam/final": [80.0, 81.0], "sgd/final": [79.0, 80.0]})
    with pytest.raises(CnnoptError, match="epochs_to_target.*with_curve_facts"):
        decide.judge([FASTER], runs.drop(columns=[c for c in runs if c == "epochs_to_target"]))


def test_a_claims_file_of_ones_own_declares_its_families_and_names_its_arms(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("families: [mine]\nclaims:\n  - {id: x, family: mine, kind: greater, "
                    "a: adam/final, b: sgd/final, claim: c, where: w}\n")
    claims = judge_claims.read_claims(path)
    assert [c["id"] for c in claims] == ["x"] and claims[0]["family"] == "mine"
    judge_claims.check_arms(claims, {"adam/final", "sgd/final"})
    with pytest.raises(CnnoptError, match="reads 'sgd/final', which the grid does not run") as err:
        judge_claims.check_arms(claims, {"adam/final"})
    assert "\n" not in str(err.value)
    for text, message in (("families: [a]\nclaims: [{id: x, family: b, kind: value, run: r/s, "
                           "paper: 1, claim: c, where: w}]", "family 'b' is not declared"),
                          ("claims: {x: 1}", "must be a list"), ("{claims: [], nope: 1}", "unknown key"),
                          ("[", "not YAML"), ("[]", "no claims")):
        path.write_text(text)
        with pytest.raises(CnnoptError, match=message) as err:
            judge_claims.read_claims(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CnnoptError, match="cannot read it"):
        judge_claims.read_claims(tmp_path / "absent.yaml")


# ---- the library without Snakemake (README) ----



def readme_block(section: str) -> str:
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", readme[readme.index(section):], re.S).group(1)


def test_the_readmes_library_example_judges_a_folder_of_runs_without_snakemake(tmp_path):
    import subprocess
    import sys

    import fakeruns

    fakeruns.make_runs(tmp_path / "my-runs")
    from workflow_helpers import documented_claims

    claims = documented_claims()  # config/README.md's example
    (tmp_path / "my_claims.yaml").write_text(claims, encoding="utf-8")
    code = readme_block("## The library without Snakemake")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "snakemake" not in proc.stdout.lower()
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["id", "verdict", "ours", "paper"]
    assert [line.split()[0] for line in lines[1:]] == ["adam_over_sgd", "adam_final_value",
                                                        "sgd_faster"]
    from cnnopt.judge.aggregate import judge_runs

    table = judge_runs(sorted((tmp_path / "my-runs").iterdir()), claims=tmp_path / "my_claims.yaml")
    for line, (_, row) in zip(lines[1:], table.iterrows(), strict=True):
        assert line.split(None, 1)[1].startswith(row["verdict"] + " ")
    # the fake study's Adam beats its SGD on every seed by far more than the seed spread
    assert table.set_index("id").loc["adam_over_sgd", "verdict"] == REPRODUCED

    (tmp_path / "bad.yaml").write_text(claims.replace("b: sgd/final", "b: lion/final", 1))
    with pytest.raises(CnnoptError, match=r"^claims file .*bad.yaml: .*lion/final[^\n]*$"):
        judge_runs(sorted((tmp_path / "my-runs").iterdir()), claims=str(tmp_path / "bad.yaml"))
