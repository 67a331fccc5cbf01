"""The decision rules' error rates, simulated (cnnopt.judge.calibration): the rules are trusted
only as far as this test shows their operating characteristics, in the case a pooled model
assumes and in the cases that break it.

1,000 simulated studies per setting: the paper's 43 claims on their 21 arms, five cases
(``calibration.CASES``), seed sd 0.3, 1 and 2 points, 2 and 3 seeds, per-image test noise on
10,000 images, each study judged by ``decide.judge``'s own rules. Under no true difference no
claim and no family (after Holm) may be called reproduced or contradicted more than 5 % of the
time, beyond Monte Carlo error; a value at the edge of the margin is called reproduced at most
5 % of the time. One case fails, and is marked so (strict): one arm 3x noisier than its
neighbours, with two or three seeds (README, "How far the verdicts hold"). The power of a
5-point effect at seed sd 1 and 2 seeds stays at 90 % or more. The tables are printed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnnopt.common.errors import DataError
from cnnopt.judge import calibration
from cnnopt.judge.claims import load_claims
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import CONTRADICTED, REPRODUCED

# 36,000 simulated studies, each judged as a real one, in one module fixture that one worker
# builds once in two processes (with `--dist loadgroup` its tests stay together)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("calibration")]

SDS, NS, STUDIES = (0.3, 1.0, 2.0), (2, 3), 1000
RULES = Rules.of()
ALPHA = RULES.alpha
LIMIT = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # 5 % plus three Monte Carlo errors


@pytest.fixture(scope="module")
def table():
    verdicts = calibration.simulate(load_claims(), RULES, studies=STUDIES, sds=SDS, ns=NS,
                                    power_studies=STUDIES, seed=1, workers=2)
    return calibration.characteristics(verdicts)


@pytest.fixture(scope="module")
def rates(table):
    return calibration.false_rates(table)


def test_every_setting_has_its_studies(table):
    settings = set(zip(table["case"], table["sd"], table["n"], strict=True))
    assert settings == {(c, s, n) for c in (*calibration.CASES, "power") for s in SDS for n in NS}
    assert (table["studies"] == STUDIES).all()
    assert set(table.loc[table["case"] != "power", "id"]) == {c["id"] for c in load_claims()} | {"any false"}


@pytest.mark.parametrize("case", [
    *[c for c in calibration.CASES if c != "volatile_arm"],
    pytest.param("volatile_arm", marks=pytest.mark.xfail(strict=True, reason=(
        "one arm 3x noisier than its neighbours cannot be told from bad luck with 2-3 seeds: "
        "its claims reach 7-9 % false verdicts, its family 13-17 % (README)"))),
])
def test_no_claim_and_no_family_is_falsely_decided(rates, case):
    mine = rates[rates["case"] == case]
    assert len(mine) == len(SDS) * len(NS)
    assert (mine["worst_claim_rate"] <= LIMIT).all(), mine
    assert (mine["worst_family_rate"] <= LIMIT).all(), mine


def test_no_rule_holds_a_3x_arm_at_two_seeds_with_the_power_asked():
    # why the volatile_arm case is marked: the most powerful test there is (Neyman-Pearson,
    # told both truths exactly) between "calm arms, a 5-point effect" (power 90 %) and "one arm
    # 3x noisier, no effect", at seed sd 1 and 2 seeds, still decides the latter in over 5 % of
    # studies; with 3 seeds it need not
    rng = np.random.default_rng(0)
    noise = 100 * np.sqrt(0.75 * 0.25 / calibration.N_TEST)
    calm, volatile = 2 * (1 + noise ** 2), 10 + 2 * noise ** 2  # variances of a seed's difference

    def llr(d: np.ndarray) -> np.ndarray:
        """log likelihood ratio of "calm, +-5 points" to "volatile, no effect" per study."""
        n = d.shape[1]
        near = np.logaddexp(-((d - 5) ** 2).sum(1) / (2 * calm), -((d + 5) ** 2).sum(1) / (2 * calm))
        return near - n / 2 * np.log(calm) + (d ** 2).sum(1) / (2 * volatile) + n / 2 * np.log(volatile)

    for n, worse in ((2, True), (3, False)):
        cut = np.quantile(llr(rng.normal(5, np.sqrt(calm), (200_000, n))), 0.10)
        false = np.mean(llr(rng.normal(0, np.sqrt(volatile), (200_000, n))) > cut)
        assert (false > ALPHA) == worse, (n, false)


def test_power_is_not_given_away_and_the_tables_are_printed(table, rates, capsys):
    power = calibration.power_table(table)
    with capsys.disabled():
        pd.set_option("display.width", 200)
        print(f"\n\nFalse verdicts under no true difference ({STUDIES} studies per setting; limit "
              f"{100 * LIMIT:.1f} % = 5 % plus three Monte Carlo errors)\n"
              + rates.drop(columns=["mc_limit", "studies"]).to_string(
                  index=False, float_format=lambda x: f"{x:.3f}")
              + "\n\nPower: share of claims called reproduced for a true effect (points; seed sd x seeds)\n"
              + power.to_string(float_format=lambda x: f"{100 * x:.1f} %") + "\n")
    # a 5-point effect at seed sd 1 and 2 seeds: reproduced at least 90 % of the time, on
    # average over the four "A beats B" claims and the top claim of its family
    claims = table[(table["case"] == "power") & (table["sd"] == 1.0) & (table["n"] == 2)
                   & (table["truth"] == "true effect 5")]
    reproduced = claims[claims["verdict"] == REPRODUCED].groupby("id")["rate"].sum()
    reproduced = reproduced.reindex(claims["id"].unique(), fill_value=0.0)
    assert reproduced.mean() >= 0.90, reproduced
    greater = power.loc["greater"]
    for column in power.columns:
        col = greater[column]
        assert col["true effect 1"] <= col["true effect 2"] + 0.02 <= col["true effect 5"] + 0.04
    # a true effect is called contradicted (the wrong direction) at most alpha / 2 of the time
    wrong = table[table["truth"].str.startswith("true effect") & (table["verdict"] == CONTRADICTED)]
    assert (wrong["rate"] <= ALPHA / 2).all(), wrong


def test_the_values_power_at_the_papers_scale_is_stated(rates):
    # a recipe at the paper's number, seed sd 0.3: reproduced in a known share of studies,
    # more with more seeds (the report states it; with seed sd 2 it is near nothing)
    at = rates[rates["case"] == "model"].set_index(["sd", "n"])["values_power"]
    assert at[(0.3, 3)] > at[(0.3, 2)] > at[(2.0, 2)]
    assert at[(0.3, 2)] > 0.15


def test_the_family_rate_counts_studies_not_claims():
    # two claims of one family, always wrong together in the same half of the studies: the
    # family's rate is the share of studies (1/2), with the Monte Carlo error of 4 studies
    rows = [{"case": "model", "sd": 1.0, "n": 2, "study": s, "id": i, "family": "f",
             "kind": "greater", "truth": "no difference", "verdict": REPRODUCED if s < 2 else "inconclusive",
             "wrong": s < 2} for s in range(4) for i in ("a", "b")]
    out = calibration.characteristics(pd.DataFrame(rows))
    fam = out[out["id"] == "any false"].iloc[0]
    assert fam["rate"] == 0.5 and fam["mc_error"] == pytest.approx(np.sqrt(0.25 / 4))


def test_each_case_breaks_the_assumption_it_names():
    layout = calibration.error_layout(load_claims(), RULES)
    arms = layout.arms

    def spread(case):
        runs = [calibration.simulate_runs(np.random.default_rng(k), layout, 2, 1.0, case, RULES)
                for k in range(300)]
        acc = np.stack([r["test_accuracy"].reshape(len(arms), 2) for r in runs])
        return pd.Series(acc[:, :, 0].std(axis=0), index=arms), acc

    calm, _ = spread("model")
    volatile, _ = spread("volatile_arm")
    noisy = calibration.most_compared(layout)
    assert volatile[noisy] > 2.5 * calm[noisy]
    assert (volatile.drop(noisy) < 1.3 * calm.drop(noisy)).all()
    stratum, _ = spread("volatile_stratum")
    first = [a for a in arms if layout.roles[a] in ("baseline", "initial")]
    assert (stratum[first] > 2.5 * calm[first]).all()
    # twins share their luck: the seed difference of two twins moves together, of two
    # optimizers barely
    _, acc = spread("twin_luck")
    seed_diff = acc[:, :, 1] - acc[:, :, 0]
    corr = pd.DataFrame(seed_diff, columns=arms).corr()
    assert corr.loc["adam/final", "adam/final_no_dropout"] > 0.6
    assert corr.loc["adam/final", "sgd/final"] < 0.2
    div = calibration.simulate_runs(np.random.default_rng(0), layout, 2, 1.0, "diverged_twin", RULES)
    twin = calibration.diverged_arm(layout)
    assert layout.roles[twin] == "ablation"
    assert div["diverged"].sum() == 1 and not div["reached_target"][div["diverged"]].any()


def test_simulated_runs_are_seeded_and_carry_per_image_noise():
    layout = calibration.power_layout((5.0,))
    make = lambda seed: pd.DataFrame(calibration.simulate_runs(np.random.default_rng(seed), layout, 3, 1.0))  # noqa: E731
    pd.testing.assert_frame_equal(make(5), make(5))
    assert not make(5)["test_accuracy"].equals(make(6)["test_accuracy"])
    acc = make(5)["test_accuracy"].to_numpy()  # hits on 10,000 images: multiples of 0.01 points
    assert np.allclose(np.round(acc * 100), acc * 100)


@pytest.mark.parametrize("text, message", [
    (None, "cannot read the runs table"),
    ("", "cannot read the runs table"),
    ('optimizer,variant,role\n"adam,final\n', "cannot read the runs table"),
    ("optimizer,role\nadam,final\n", "no variant column; it has optimizer, role"),
    ("optimizer,variant,role\n", "has no runs"),
])
def test_a_broken_runs_table_is_one_clear_error_and_nothing_is_written(tmp_path, text, message):
    path = tmp_path / "runs.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        calibration.calibrate(load_claims(), calibration.read_runs_table(path), RULES,
                              tmp_path / "calibration.csv")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "calibration.csv").exists()
