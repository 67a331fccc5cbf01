"""The sequential design (cnnopt.judge.sequential): the looks' levels, which arms grow after a
look and why, the verdicts held from the look that decided them, the whole design on
synthetic runs, and its config errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import ROOT

from cnnopt.common.errors import CnnoptError, ConfigError, DataError
from cnnopt.config import grid, schema
from cnnopt.judge import calibration, decide, sequential
from cnnopt.judge.claims import load_claims
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import DIVERGENCE, INCONCLUSIVE, MISSING, REPRODUCED, SPREAD, UNTESTED

LOOKS = {"looks": [2, 3, 5]}


def rules_with(**sequential) -> Rules:
    return Rules.of({"sequential": LOOKS | sequential})


def claim(cid, a, b, family="ranking"):
    return {"id": cid, "family": family, "kind": "greater", "claim": cid, "where": "test",
            "a": a, "b": b}


@pytest.mark.parametrize("spending", ["pocock", "obrien_fleming", "split"])
def test_the_level_spent_over_the_looks_is_the_declared_one(spending):
    rules = rules_with(spending=spending)
    spent, nominal = sequential.spent(rules), sequential.levels(rules)
    assert spent[-1] == pytest.approx(rules.alpha)
    assert all(b > a for a, b in zip(spent, spent[1:], strict=False))
    assert len(nominal) == 3 and all(0 < x < rules.alpha for x in nominal)
    if spending == "split":  # Bonferroni: the shares sum to the level
        assert sum(nominal) == pytest.approx(rules.alpha)
    else:  # boundaries use the looks' correlation: more than the Bonferroni share after the first
        assert nominal[0] == pytest.approx(spent[0])
        assert sum(nominal) > rules.alpha


def test_the_boundaries_hold_the_level_for_a_statistic_that_runs_through_the_looks():
    # a normal statistic accumulated over 5 seeds, looked at after 2, 3 and 5: crossing any
    # look's nominal level happens at the declared rate (Monte Carlo), for each spending
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(400_000, 5)).cumsum(axis=1)
    from scipy import stats
    for spending in ("pocock", "obrien_fleming"):
        levels = sequential.levels(rules_with(spending=spending))
        z = np.abs(draws[:, [1, 2, 4]]) / np.sqrt([2, 3, 5])
        crossed = (z > stats.norm.isf(np.array(levels) / 2)).any(axis=1).mean()
        assert crossed == pytest.approx(0.05, abs=0.002), spending
    # the first look alone, at the fixed design's level, would not: Pocock's first look is
    # below it
    assert sequential.levels(rules_with())[0] < 0.05


def table_of(rows: list[dict], look: int = 1) -> pd.DataFrame:
    base = {c: math.nan for c in sequential.COLUMNS}
    frame = pd.DataFrame([base | {"look": look, "verdict": INCONCLUSIVE, "open_because": SPREAD,
                                  "seeds_to_decide": pd.NA} | r for r in rows],
                         columns=sequential.COLUMNS)
    frame["seeds_to_decide"] = frame["seeds_to_decide"].astype("Int64")
    return frame


SEEDS2 = {arm: (0, 1) for arm in ("a/x", "b/x", "c/x", "d/x", "e/x", "f/x")}


def test_only_claims_open_for_the_seed_spread_and_within_max_seeds_grow_their_own_arms():
    claims = [claim("near", "a/x", "b/x"), claim("far", "c/x", "d/x"),
              claim("diverged", "e/x", "f/x"), claim("done", "a/x", "c/x"),
              claim("no_twin", "a/x", "g/x")]
    table = table_of([
        {"id": "near", "seeds_to_decide": 3},
        {"id": "far", "seeds_to_decide": 9},                       # beyond max_seeds (5)
        {"id": "diverged", "seeds_to_decide": 3, "open_because": DIVERGENCE},
        {"id": "done", "verdict": REPRODUCED, "open_because": ""},
        {"id": "no_twin", "verdict": UNTESTED, "open_because": MISSING},  # neither decided nor open
    ])
    plan = sequential.plan_look(table, claims, SEEDS2, rules_with(), 1)
    assert plan.grow == {"a/x": [2], "b/x": [2]}          # the next look's count: 3 seeds
    assert plan.why == {"a/x": ["near"], "b/x": ["near"]}
    assert [g["id"] for g in plan.grown] == ["near"] and plan.trainings_added == 2
    assert plan.arms["a/x"] == [0, 1, 2] and plan.arms["c/x"] == [0, 1]
    assert plan.decided == ["done"] and not plan.done


def test_the_cheapest_decisions_grow_first_within_the_budget():
    claims = [claim("slow", "a/x", "b/x"), claim("quick", "c/x", "d/x"),
              claim("shares", "c/x", "e/x")]
    table = table_of([{"id": "slow", "seeds_to_decide": 5}, {"id": "quick", "seeds_to_decide": 3},
                      {"id": "shares", "seeds_to_decide": 5}])
    plan = sequential.plan_look(table, claims, SEEDS2, rules_with(budget_trainings=3), 1)
    # quick (3 seeds to decide) first: 2 trainings; then of the two needing 5, the one that
    # shares an arm already growing costs 1 and fits; slow (2 more) does not
    assert [g["id"] for g in plan.grown] == ["quick", "shares"]
    assert [s["id"] for s in plan.skipped] == ["slow"] and "budget" in plan.skipped[0]["why"]
    assert plan.trainings_added == 3
    assert sorted(plan.grow) == ["c/x", "d/x", "e/x"]
    # with 2 trainings already spent at earlier looks, only quick fits
    later = sequential.plan_look(table, claims, SEEDS2, rules_with(budget_trainings=4), 1, used=2)
    assert [g["id"] for g in later.grown] == ["quick"] and later.trainings_added == 4


def test_the_last_look_plans_nothing():
    table = table_of([{"id": "near", "seeds_to_decide": 3}], look=3)
    plan = sequential.plan_look(table, [claim("near", "a/x", "b/x")], SEEDS2, rules_with(), 3)
    assert plan.done and plan.grow == {} and plan.as_json()["done"] is True


@pytest.fixture(scope="module")
def study():
    """The paper's claims on simulated runs with 5 seeds per arm: the final runs 3 points
    better than every other arm, seed sd 1."""
    claims = load_claims()
    rules = rules_with()
    layout = calibration.error_layout(claims, rules)
    effects = {a: (3.0 if a.endswith("/final") else 0.0) for a in layout.arms}
    layout = calibration.Layout(layout.claims, layout.roles, effects)
    runs = calibration.simulate_runs(np.random.default_rng(5), layout, 5, 1.0, "model", rules)
    return claims, rules, runs


def test_each_look_judges_the_claims_whose_seeds_reach_it_and_keeps_every_decided_verdict(study):
    claims, rules, runs = study
    table, plans = sequential.run_design(claims, runs, rules, "paper")
    assert [p.look for p in plans] == list(range(1, len(plans) + 1))
    first = plans[0]
    assert len(first.judged) == len(claims)
    assert first.grow, "some claim is open for the seed spread at 2 seeds and grows"
    for earlier, later in zip(plans, plans[1:], strict=False):
        # a look judges exactly the open claims whose own seeds reached its count
        seeds = {a: tuple(s) for a, s in earlier.arms.items()}
        open_before = set(table["id"]) - {d for p in plans[:later.look - 1] for d in p.decided}
        expect = {c["id"] for c in claims if c["id"] in open_before
                  and sequential.claim_seeds(c, seeds) >= rules.sequential.looks[later.look - 1]}
        assert set(later.judged) == expect
    rows = table.set_index("id")
    for plan in plans:
        for cid in plan.decided:  # a decided claim keeps the look and seeds that decided it
            assert rows.loc[cid, "look"] == plan.look and rows.loc[cid, "verdict"] != INCONCLUSIVE
    grown = {g["id"] for g in first.grown}
    assert (rows.loc[sorted(grown), "seeds"] >= 3).all()
    assert (rows.loc[[c for c in rows.index if c not in grown and rows.loc[c, "look"] == 1], "seeds"] <= 2).all()
    # the arms grow by the next seeds in order, and only the arms of grown claims
    arms_grown = {a for p in plans for a in p.grow}
    assert arms_grown == {a for p in plans for a in p.why}
    assert all(list(s) == list(range(len(s))) for s in plans[-1].arms.values())


def test_the_first_look_tests_at_its_own_level_not_the_full_one(study):
    claims, rules, runs = study
    few = {c: v[runs["seed"] < 2] for c, v in runs.items()}
    table = sequential.judge_look(claims, few, rules, "paper", 1)
    level = sequential.levels(rules)[0]
    fixed = decide.judge(claims, few, None, rules.replace(confidence=1 - level), "paper",
                         with_power=False).set_index("id")
    assert (table.set_index("id")["verdict"] == fixed["verdict"]).all()
    assert (table["level"] == level).all() and (table["look"] == 1).all()


def test_a_look_table_survives_its_csv(study, tmp_path):
    claims, rules, runs = study
    few = {c: v[runs["seed"] < 2] for c, v in runs.items()}
    table = sequential.judge_look(claims, few, rules, "paper", 1)
    table.to_csv(tmp_path / "look1_claims.csv", index=False)
    back = sequential.read_table(tmp_path / "look1_claims.csv")
    pd.testing.assert_frame_equal(back[["id", "verdict", "open_because", "seeds_to_decide", "look"]],
                                  table[["id", "verdict", "open_because", "seeds_to_decide", "look"]],
                                  check_dtype=False)
    (tmp_path / "foreign.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a look's claims table"):
        sequential.read_table(tmp_path / "foreign.csv")


@pytest.mark.parametrize("text, needle", [
    (None, "cannot read the look's plan"),                   # lost
    ('{"look": 1, "arms": ', "cannot read the look's plan"),  # cut short
    ('{"look": 1}', "not a look's plan"),                     # another file's JSON
])
def test_a_lost_or_foreign_plan_is_a_one_line_error_naming_it(tmp_path, text, needle):
    path = tmp_path / "look1.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError) as err:
        sequential.read_plan(path)
    assert needle in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("block, message", [
    ({"looks": [3, 2]}, "must increase"),
    ({"looks": [2, 5], "max_seeds": 4}, "below the last look"),
    ({"looks": [2, 3], "spending": "haybittle"}, "choose pocock"),
    ({"looks": [2, 3], "when": 1}, "unknown key"),
])
def test_a_bad_sequential_block_is_one_clear_error(block, message):
    with pytest.raises(CnnoptError, match=message) as err:
        Rules.of({"sequential": block})
    assert "\n" not in str(err.value)


def study_config(**changes) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    return schema.validate(grid.deep_merge(cfg, changes))


def test_the_first_look_is_the_studys_seed_count_and_the_added_runs_follow_the_seeds():
    cfg = study_config(seeds=[3, 7], verdicts={"sequential": {"looks": [2, 4]}},
                       grid=[{"optimizers": ["adam"], "variants": ["initial", "final"]}])
    added = grid.sequential_runs(cfg, grid.expand_runs(cfg))
    assert sorted(added) == ["adam-final-s8", "adam-final-s9", "adam-initial-s8", "adam-initial-s9"]
    assert grid.seed_order([3, 7], 4) == [3, 7, 8, 9]
    bad = study_config(seeds=[0, 1, 2], verdicts={"sequential": {"looks": [2, 4]}})
    with pytest.raises(ConfigError, match="the first look is the study's seeds, 3"):
        grid.sequential_runs(bad, grid.expand_runs(bad))
