"""The decision rules' error rates, simulated (cnnopt.judge.calibration): the rules are trusted
only because this test shows their operating characteristics.

400 simulated studies per setting, as many as the workflow's calibrate rule runs by default
(``verdicts.calibration.studies``; seed sd 0.3, 1 and 2 points; 2 and 3 seeds), each with
per-image test noise on 10,000 images, judged by ``decide.judge`` itself. Under no true
difference no claim kind and no family (after Holm) is called reproduced or contradicted more
than 5 % of the time, beyond Monte Carlo error; a value 3 points from the paper's is called
reproduced at most 5 % of the time. The power table is printed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cnnopt.judge import calibration
from cnnopt.judge.verdicts import CONTRADICTED, DEFAULT_RULES, NOT_REPRODUCED, REPRODUCED

# 3,600 simulated studies, each judged as a real one, in one module fixture that one worker
# builds once (with `--dist loadgroup`, the quick run in the README, its tests stay together)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("calibration")]

SDS, NS = (0.3, 1.0, 2.0), (2, 3)
STUDIES = DEFAULT_RULES["calibration"]["studies"]
ALPHA = 0.05


@pytest.fixture(scope="module")
def table():
    verdicts = calibration.simulate(SDS, NS, STUDIES, seed=1, power_studies=200, workers=2)
    return calibration.characteristics(verdicts)


def _limit(studies: int) -> float:
    """5 % plus three Monte Carlo standard errors of a rate of 5 % over ``studies``."""
    return ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / studies)


def test_every_setting_has_its_studies(table):
    errors = table[table["family"].isin(["comparisons", "values"])]
    assert set(zip(errors["sd"], errors["n"], strict=True)) == {(s, n) for s in SDS for n in NS}
    assert (errors["studies"] == STUDIES).all()


def test_no_claim_kind_is_decided_under_no_difference(table):
    null = table[(table["truth"] == "no difference")]
    rates = (null[null["verdict"].isin([REPRODUCED, CONTRADICTED])]
             .groupby(["sd", "n", "kind"])["rate"].sum())
    assert set(rates.index.get_level_values("kind")) <= {"greater", "top"}
    assert (rates <= _limit(STUDIES)).all(), rates


def test_a_value_at_the_papers_number_is_not_called_not_reproduced(table):
    at = table[(table["truth"] == "at the paper's value") & (table["verdict"] == NOT_REPRODUCED)]
    assert (at["rate"] <= _limit(STUDIES)).all(), at


def test_a_value_three_points_off_is_rarely_reproduced(table):
    far = table[(table["truth"] == "beyond the margin") & (table["verdict"] == REPRODUCED)]
    assert (far["rate"] <= _limit(STUDIES)).all(), far


def test_every_family_keeps_its_error_rate_after_holm(table):
    fam = table[(table["kind"] == "family (any false)") & table["family"].isin(["comparisons", "values"])]
    assert len(fam) == 2 * len(SDS) * len(NS)
    assert (fam["rate"] <= _limit(STUDIES)).all(), fam


def test_power_grows_with_the_effect_and_is_printed(table, capsys):
    power = calibration.power_table(table)
    with capsys.disabled():
        pd.set_option("display.width", 160)
        print("\n\nPower of the decision rules: share of claims called reproduced for a true "
              f"effect (seed sd x seeds; {int(table[table['family'].str.startswith('effect')]['studies'].max())} "
              "studies each)\n" + power.to_string(float_format=lambda x: f"{100 * x:.1f} %") + "\n")
        false = table[((table["truth"] == "no difference") & table["verdict"].isin([REPRODUCED, CONTRADICTED]))
                      | ((table["truth"] == "at the paper's value") & (table["verdict"] == NOT_REPRODUCED))
                      | ((table["truth"] == "beyond the margin") & (table["verdict"] == REPRODUCED))
                      | (table["kind"] == "family (any false)")]
        false = false[false["family"].isin(["comparisons", "values"])]
        errors = (false.assign(what=false["kind"] + ": " + false["truth"])
                  .pivot_table(index=["family", "what"], columns=["sd", "n"], values="rate",
                               aggfunc="sum", fill_value=0.0))
        print(f"False verdicts ({STUDIES} studies each)\n"
              + errors.to_string(float_format=lambda x: f"{100 * x:.2f} %") + "\n")
    greater = power.loc["greater"]
    for column in power.columns:
        col = greater[column]
        assert col["true effect 1"] <= col["true effect 2"] <= col["true effect 5"]
    # with little seed noise a 5-point effect is found almost always
    assert greater.loc["true effect 5", (0.3, 3)] > 0.95
    # a true effect is called contradicted (the wrong direction) at most alpha / 2 of the time
    wrong = table[table["truth"].str.startswith("true effect") & (table["verdict"] == CONTRADICTED)]
    assert (wrong["rate"] <= ALPHA / 2).all(), wrong


def test_simulated_runs_are_seeded_and_carry_per_image_noise():
    means = {"a/final": 75.0, "b/final": 80.0}
    make = lambda seed: pd.DataFrame(calibration.simulate_runs(np.random.default_rng(seed), means, 3, 1.0))  # noqa: E731
    pd.testing.assert_frame_equal(make(5), make(5))
    assert not make(5)["test_accuracy"].equals(make(6)["test_accuracy"])
    # hits on 10,000 images: every accuracy is a multiple of 0.01 points
    acc = make(5)["test_accuracy"].to_numpy()
    assert np.allclose(np.round(acc * 100), acc * 100)
    # the spread over many studies: seed sd 1, shared seed effect 0.5, test noise ~0.43
    many = np.array([calibration.simulate_runs(np.random.default_rng(k), {"a/final": 75.0}, 1, 1.0)
                     ["test_accuracy"][0] for k in range(3000)])
    assert many.std() == pytest.approx(np.sqrt(1 + 0.25 + 1e4 * 0.75 * 0.25 / 1e4), rel=0.08)


@pytest.mark.parametrize("text, message", [
    (None, "cannot read the strata table"),
    ("", "cannot read the strata table"),
    ('stratum,sd_paired\n"first_cycle,0.5\n', "cannot read the strata table"),
    ("stratum,sd\nfirst_cycle,0.5\n", "no sd_paired column; it has stratum, sd"),
    ("stratum,sd_paired\nfirst_cycle,wide\n", "sd_paired must be numbers"),
])
def test_a_broken_strata_table_is_one_clear_error_and_nothing_is_written(tmp_path, text, message):
    from cnnopt.common.errors import DataError

    path = tmp_path / "strata.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        calibration.calibrate(calibration.read_strata(path), 2, {}, tmp_path / "calibration.csv")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "calibration.csv").exists()
