"""The sequential design's error rates and power, simulated (cnnopt.judge.calibration
.simulate_sequential): config/sequential.yaml's design (looks at 2, 3 and 5 seeds, Pocock-type
spending, 8 added trainings) on the paper's 43 claims and their arms, every case of the fixed
design's calibration, seed sd 0.3 and 2 points, 300 studies per setting, each study judged with
every arm at 2 seeds, by the design, and with every arm at 5 seeds.

Under no true difference no claim and no family may be called reproduced or contradicted more
than 5 % of the time by the design, beyond Monte Carlo error, in every case but one: one arm
3x noisier than its neighbours, which the first look (2 seeds, like the fixed design) cannot
tell from bad luck; it is marked so (strict). The design never decides fewer true effects than
the first look's fixed design minus Monte Carlo error, and costs no more trainings than the
budget allows. The tables are printed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT

from cnnopt.judge import calibration
from cnnopt.judge.claims import load_claims
from cnnopt.judge.rules import Rules

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("calibration")]

BLOCK = yaml.safe_load((ROOT / "config" / "sequential.yaml").read_text(encoding="utf-8"))
RULES = Rules.of(BLOCK["verdicts"])
SDS, STUDIES = (0.3, 2.0), 300
LIMIT = RULES.alpha + 3 * np.sqrt(RULES.alpha * (1 - RULES.alpha) / STUDIES)
FIRST, DESIGN, LAST = calibration._designs(RULES)


@pytest.fixture(scope="module")
def verdicts():
    return calibration.simulate_sequential(load_claims(), RULES, studies=STUDIES, sds=SDS,
                                           effects=(1.0, 2.0), seed=3, workers=2)


@pytest.fixture(scope="module")
def errors(verdicts):
    return calibration.sequential_errors(verdicts)


def test_every_design_judges_the_same_studies(verdicts, errors):
    assert set(errors["design"]) == {FIRST, DESIGN, LAST}
    assert set(errors["case"]) == set(calibration.CASES) and (errors["studies"] == STUDIES).all()
    # the design adds trainings within its budget, and never more than every arm at 5 seeds
    arms = len({a for c in load_claims() for a in calibration.claim_arms(c)})
    design = errors[errors["design"] == DESIGN]
    assert (design["trainings"] >= 2 * arms).all()
    assert (design["trainings"] <= 2 * arms + RULES.sequential.budget_trainings).all()
    assert (errors.loc[errors["design"] == LAST, "trainings"] == 5 * arms).all()


@pytest.mark.parametrize("case", [
    *[c for c in calibration.CASES if c != "volatile_arm"],
    pytest.param("volatile_arm", marks=pytest.mark.xfail(strict=True, reason=(
        "one arm 3x noisier than its neighbours cannot be told from bad luck at the first "
        "look's 2 seeds, as in the fixed design's calibration (README)"))),
])
def test_the_design_holds_its_error_rate_across_the_looks(errors, case):
    mine = errors[(errors["case"] == case) & (errors["design"] == DESIGN)]
    assert len(mine) == len(SDS)
    assert (mine["worst_claim_rate"] <= LIMIT).all(), mine
    assert (mine["worst_family_rate"] <= LIMIT).all(), mine


def test_power_against_fixed_seeds_is_measured_and_printed(verdicts, errors, capsys):
    power = calibration.sequential_power(verdicts, RULES)
    with capsys.disabled():
        pd.set_option("display.width", 200)
        print(f"\n\nThe sequential design under no true difference ({STUDIES} studies per setting; "
              f"limit {100 * LIMIT:.1f} %)\n"
              + errors.drop(columns=["mc_limit", "studies"]).to_string(
                  index=False, float_format=lambda x: f"{x:.3f}")
              + "\n\nPower against fixed seeds (the budget lifted)\n"
              + power.to_string(index=False, float_format=lambda x: f"{x:.3f}") + "\n")
    assert set(power["design"]) == {FIRST, DESIGN, LAST}
    table = power.set_index(["design", "sd", "truth", "kind"])["power"]
    mc = 3 * np.sqrt(0.25 / STUDIES)
    for (design, sd, truth, kind), value in table.items():
        if design == DESIGN:  # spending the level over the looks costs at most Monte Carlo error
            assert value >= table[(FIRST, sd, truth, kind)] - mc, (sd, truth, kind)
        if design == LAST:    # and every arm at 5 seeds is the most any design could reach
            assert value >= table[(DESIGN, sd, truth, kind)] - mc, (sd, truth, kind)
    trainings = power.set_index(["design", "sd", "truth", "kind"])["trainings"]
    assert (trainings.xs(DESIGN) >= trainings.xs(FIRST)).all()
    assert (trainings.xs(DESIGN) <= trainings.xs(LAST)).all()
