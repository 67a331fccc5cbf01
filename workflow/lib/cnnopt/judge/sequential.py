"""Seeds where the verdicts need them: the sequential design of ``verdicts.sequential``.

The study's arms train the first look's seeds. At each look the claims are judged; a claim
that the seed spread alone leaves open (``decide``'s ``open_because``: not scale, divergence,
censoring or a missing twin) and whose seeds to decide are at most ``max_seeds`` gets the next
look's seeds for exactly the arms it compares, cheapest decisions first (fewest seeds to
decide, then fewest new trainings), within ``budget_trainings`` over all looks. Arms grow by
the next seeds in order, so twins stay paired.

The error rate is held across looks by group-sequential boundaries: the level 1 - ``confidence``
is spent across the looks by a Lan-DeMets spending function of the information fraction
seeds_k / seeds_K (Pocock-type or O'Brien-Fleming-type), and look k tests at the nominal level
of its boundary (``levels``); or the level is split evenly, each look at its share
(Bonferroni). A claim is judged at the first look and again at each look at which its own seeds
(the seeds common to the arms it compares) reach that look's count, so its statistic runs
through the looks as the boundaries assume (a look it skips, or a claim that stops growing,
only makes crossing rarer); Holm's correction runs per family over the claims judged at that
look; the first look that decides a claim gives its verdict, which no later look changes. The
boundaries are exact for normal statistics with known variance; with two to five seeds the
tests are t tests on moderated variances, so the calibration
(``judge.calibration.simulate_sequential``) measures the error rates, in the unequal-noise
cases too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from cnnopt.common import files
from cnnopt.common.errors import DataError
from cnnopt.config.grid import seed_order
from cnnopt.judge import decide
from cnnopt.judge.claims import arms as claim_arms
from cnnopt.judge.claims import pairs, with_defaults
from cnnopt.judge.metrics import arms_of, columns_of
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import INCONCLUSIVE, SPREAD, UNTESTED

#: The columns of a look's claims table: the claims table's, then the look at which the row
#: was judged, that look's level and the claim's own seeds (common to the arms it compares).
COLUMNS = [*decide.COLUMNS, "look", "level", "seeds"]


def spent(rules: Rules) -> tuple[float, ...]:
    """The level spent by each look, cumulative: the spending function at the looks'
    information fractions (seeds at the look over seeds at the last look); the last is
    1 - ``confidence``."""
    seq, alpha = rules.sequential, rules.alpha
    if not seq.on:
        return (alpha,)
    t = np.asarray(seq.looks, float) / seq.looks[-1]
    if seq.spending == "pocock":
        out = alpha * np.log1p((math.e - 1) * t)
    elif seq.spending == "obrien_fleming":
        out = 2 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t))
    else:
        out = alpha * np.arange(1, len(t) + 1) / len(t)
    return tuple(float(x) for x in out)


def levels(rules: Rules) -> tuple[float, ...]:
    """The nominal level each look tests at (two-sided).

    ``pocock`` and ``obrien_fleming``: the group-sequential boundaries of the spending
    function (Lan and DeMets): the statistic of a claim that grows through the looks is, under
    no effect, a normal one whose values at looks j < k correlate as sqrt(seeds_j / seeds_k);
    look k's boundary c_k makes the chance of first crossing it at look k the level spent
    there (``scipy.stats.multivariate_normal``), and its nominal level is 2 (1 - Phi(c_k)).
    ``split``: the level split evenly, each look at its share (Bonferroni: no correlation
    used, conservative)."""
    seq = rules.sequential
    if not seq.on:
        return spent(rules)
    return _boundaries(seq.looks, seq.spending, spent(rules))


@functools.lru_cache(maxsize=64)
def _boundaries(looks: tuple[int, ...], spending: str, cumulative: tuple[float, ...]) -> tuple[float, ...]:
    """``levels``' nominal levels of the looks (cached: a simulation asks for them per study)."""
    increments = np.diff(np.concatenate([[0.0], cumulative]))
    if spending == "split":
        return tuple(float(x) for x in increments)
    n = np.asarray(looks, float)
    bounds: list[float] = []
    inside = 1.0  # the chance of crossing no boundary so far
    for k, step in enumerate(increments):
        if k == 0:
            c = float(stats.norm.isf(step / 2))
        else:
            cov = np.sqrt(np.minimum.outer(n[:k + 1], n[:k + 1]) / np.maximum.outer(n[:k + 1], n[:k + 1]))
            mvn = stats.multivariate_normal(mean=np.zeros(k + 1), cov=cov, seed=0)

            def crossing_here(c: float, mvn=mvn, inside=inside, step=step) -> float:
                """The chance of crossing first at this look with boundary ``c``, less its share."""
                limits = np.array([*bounds, c])
                return inside - float(mvn.cdf(limits, lower_limit=-limits)) - step

            c = float(optimize.brentq(crossing_here, 0.5, 12.0, xtol=1e-6))
        bounds.append(c)
        inside -= step
    return tuple(float(2 * stats.norm.sf(c)) for c in bounds)


def arm_seeds(runs) -> dict[str, tuple[int, ...]]:
    """Each arm's (optimizer/variant) seeds in ``runs`` (a runs table or its columns)."""
    frame = pd.DataFrame({"arm": arms_of(runs), "seed": np.asarray(runs["seed"]).astype(int)})
    return {arm: tuple(sorted(set(grp))) for arm, grp in frame.groupby("arm", sort=False)["seed"]}


def base_seeds(seeds: dict[str, tuple[int, ...]], rules: Rules) -> list[int]:
    """The study's own seeds (the first look's), of each arm's ``seeds``: the looks add only
    seeds after the largest of them (``config.grid.seed_order``)."""
    return sorted({s for v in seeds.values() for s in v})[:rules.sequential.looks[0]]


def claim_seeds(claim: dict, seeds: dict[str, tuple[int, ...]]) -> int:
    """The seeds a claim's test rests on: its arm's (a value), else the fewest that the two
    arms of any of its comparisons share."""
    if claim["kind"] == "value":
        return len(seeds.get(claim["run"], ()))
    return min((len(set(seeds.get(a, ())) & set(seeds.get(b, ()))) for a, b in pairs(claim)),
               default=0)


def judge_look(claims: list[dict], runs, rules, scale: str, k: int,
               previous: pd.DataFrame | None = None, predictions: dict | None = None) -> pd.DataFrame:
    """The claims table (``COLUMNS``) at look ``k`` (1-based): the claims open at look
    ``k - 1`` whose own seeds reach look ``k``'s count judged at its level (all claims at the
    first look), every other row as ``previous`` (look ``k - 1``'s table) has it. Seeds to
    decide are computed at the next look's level, up to ``max_seeds``."""
    rules = Rules.of(rules)
    seq, lv = rules.sequential, levels(rules)
    claims = [with_defaults(c) for c in claims]
    seeds = arm_seeds(runs)
    if previous is None:
        todo = claims
    else:
        open_ = set(previous.loc[previous["verdict"] == INCONCLUSIVE, "id"])
        todo = [c for c in claims if c["id"] in open_ and claim_seeds(c, seeds) >= seq.looks[k - 1]]
    table = previous.set_index("id") if previous is not None else None
    if todo:
        judged = decide.judge(todo, runs, predictions, rules.replace(confidence=1 - lv[k - 1]),
                              scale, with_power="seeds", power_level=lv[min(k, len(lv) - 1)],
                              seeds_cap=seq.cap).set_index("id")
        judged["look"], judged["level"] = k, lv[k - 1]
        judged["seeds"] = [claim_seeds(c, seeds) for c in todo]
        if table is not None:  # the paper's numbers do not change between looks
            judged["paper"] = table.loc[judged.index, "paper"]
            table = table.astype({c: object for c in table.columns})
            table.loc[judged.index, judged.columns] = judged.astype(object)
        else:
            table = judged
    out = table.reset_index()[COLUMNS]
    out["seeds_to_decide"] = pd.to_numeric(out["seeds_to_decide"], errors="coerce").astype("Int64")
    for col in ("n", "look", "seeds"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    for col in ("paper", "ours", "std", "ci_low", "ci_high", "within", "p_value", "p_adjusted",
                "power", "detectable", "level"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


@dataclass
class Plan:
    """What look ``k`` asks for: the new seeds of each arm, why, and the budget spent."""

    look: int
    seeds: int                      # the seeds per arm this look's claims were judged on
    level: float
    judged: list[str]
    decided: list[str]
    grow: dict[str, list[int]]      # arm -> the seeds it trains for the next look
    why: dict[str, list[str]]       # arm -> the claims it grows for
    grown: list[dict]               # the claims that grow: id, seeds to decide, trainings
    skipped: list[dict]             # open claims that could grow and do not: id, why
    trainings_added: int            # over every look so far, this plan's included
    budget_trainings: int | None
    arms: dict[str, list[int]] = field(default_factory=dict)   # every arm's seeds after it

    @property
    def done(self) -> bool:
        return not self.grow

    def as_json(self) -> dict:
        return {"look": self.look, "seeds": self.seeds, "level": self.level,
                "judged": self.judged, "decided": self.decided, "grow": self.grow,
                "why": self.why, "grown": self.grown, "skipped": self.skipped,
                "trainings_added": self.trainings_added,
                "budget_trainings": self.budget_trainings, "arms": self.arms, "done": self.done}


def plan_look(table: pd.DataFrame, claims: list[dict], seeds: dict[str, tuple[int, ...]], rules,
              k: int, used: int = 0) -> Plan:
    """Which arms grow after look ``k``: the claims of ``table`` (``judge_look``'s) that the
    seed spread leaves open and whose seeds to decide are at most ``max_seeds``, cheapest
    first, each taking the arms it compares to the next look's count while the trainings
    added (``used`` before this look) stay within the budget. ``seeds``: each arm's seeds."""
    rules = Rules.of(rules)
    seq = rules.sequential
    by_id = {c["id"]: with_defaults(c) for c in claims}
    judged = table.loc[table["look"] == k, "id"].tolist()
    # decided: a verdict the claim keeps; an untested claim (no runs) is neither decided nor open
    decided = table.loc[(table["look"] == k) & ~table["verdict"].isin((INCONCLUSIVE, UNTESTED)),
                        "id"].tolist()
    base = base_seeds(seeds, rules) if seq.on else []
    arms = {a: list(v) for a, v in seeds.items()}
    grow: dict[str, list[int]] = {}
    why: dict[str, list[str]] = {}
    grown, skipped = [], []
    if seq.on and k < len(seq.looks):
        target = seq.looks[k]
        open_ = table[(table["verdict"] == INCONCLUSIVE) & (table["open_because"] == SPREAD)
                      & table["seeds_to_decide"].notna()]
        open_ = open_[open_["seeds_to_decide"].astype(int) <= seq.cap]

        def cost(cid: str) -> int:
            return sum(max(0, target - len(arms.get(a, ()))) for a in dict.fromkeys(claim_arms(by_id[cid])))

        order = sorted(open_.itertuples(), key=lambda r: (int(r.seeds_to_decide), cost(r.id)))
        for row in order:
            need = cost(row.id)
            entry = {"id": row.id, "seeds_to_decide": int(row.seeds_to_decide), "trainings": need}
            if seq.budget_trainings is not None and used + need > seq.budget_trainings:
                skipped.append(entry | {"why": f"over the budget ({seq.budget_trainings - used} "
                                               "trainings left)"})
                continue
            used += need
            grown.append(entry)
            for arm in dict.fromkeys(claim_arms(by_id[row.id])):
                have = arms.get(arm, [])
                if len(have) < target:
                    new = seed_order(base or have, target)[len(have):]
                    grow[arm] = grow.get(arm, []) + new
                    arms[arm] = have + new
                why.setdefault(arm, []).append(row.id)
    return Plan(look=k, seeds=seq.looks[k - 1] if seq.on else 0, level=levels(rules)[k - 1],
                judged=judged, decided=decided, grow=grow, why=why, grown=grown,
                skipped=skipped, trainings_added=used, budget_trainings=seq.budget_trainings,
                arms={a: sorted(v) for a, v in arms.items()})


def run_design(claims: list[dict], runs, rules, scale: str = "reduced",
               predictions: dict | None = None) -> tuple[pd.DataFrame, list[Plan]]:
    """The whole sequential design on ``runs`` that hold every seed an arm could get (a
    simulation, or a study that trained them all): each look sees only the seeds the plans
    so far gave each arm. Returns the last look's claims table and the plans."""
    rules = Rules.of(rules)
    seq = rules.sequential
    if not seq.on:
        raise DataError("verdicts.sequential has no looks: the sequential design is off")
    cols = columns_of(runs)
    arm = arms_of(cols)
    seed = cols["seed"].astype(int)
    every = arm_seeds(cols)
    base = base_seeds(every, rules)
    have = {a: [s for s in v if s in base] for a, v in every.items()}
    table, plans, used = None, [], 0
    for k in range(1, len(seq.looks) + 1):
        keep = np.array([s in have[a] for a, s in zip(arm, seed, strict=True)])
        sub = {c: v[keep] for c, v in cols.items()}
        table = judge_look(claims, sub, rules, scale, k, table, predictions)
        plan = plan_look(table, claims, arm_seeds(sub), rules, k, used)
        plans.append(plan)
        used = plan.trainings_added
        if plan.done:
            break
        have = {a: plan.arms.get(a, have[a]) for a in have}
    return table, plans


def read_table(path) -> pd.DataFrame:
    """A look's claims table as ``judge_look`` wrote it; a missing or foreign file is a
    one-line :class:`DataError` naming it."""
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read the look's claims table: "
                        f"{' '.join(str(err).split())}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: not a look's claims table (no {', '.join(missing[:3])} column)")
    for col in ("open_because", "verdict", "reason", "test", "mcnemar", "verdict_text", "scale"):
        frame[col] = frame[col].fillna("").astype(str)
    for col in ("seeds_to_decide", "n", "look", "seeds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return frame[COLUMNS]


def read_plan(path) -> dict:
    """A look's plan as ``look`` wrote it; a missing or foreign file is a one-line
    :class:`DataError` naming it."""
    try:
        plan = files.read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as err:  # json's decode error is a ValueError
        raise DataError(f"{path}: cannot read the look's plan: {' '.join(str(err).split())}") from None
    if not isinstance(plan, dict) or not {"look", "arms", "trainings_added", "done"} <= set(plan):
        raise DataError(f"{path}: not a look's plan (it lacks look, arms, trainings_added or done)")
    return plan


#: The columns of sequential.csv: per look, its seeds and level, the claims judged and decided
#: there, and the trainings it asked for.
LOOKS_COLUMNS = ["look", "seeds", "level", "judged", "decided", "trainings_planned",
                 "trainings_total", "grown_claims"]


def looks_table(plans: list[dict]) -> pd.DataFrame:
    """One row per look (``LOOKS_COLUMNS``) of the plans (as ``read_plan`` gives them)."""
    rows, before = [], 0
    for plan in plans:
        rows.append({"look": plan["look"], "seeds": plan["seeds"], "level": plan["level"],
                     "judged": len(plan["judged"]), "decided": len(plan["decided"]),
                     "trainings_planned": plan["trainings_added"] - before,
                     "trainings_total": plan["trainings_added"],
                     "grown_claims": ", ".join(g["id"] for g in plan["grown"])})
        before = plan["trainings_added"]
    return pd.DataFrame(rows, columns=LOOKS_COLUMNS)


def savings(runs: pd.DataFrame, rules, threads: int = 1) -> dict:
    """What the design saved against giving every arm the last look's seeds: trainings, and
    hours of training (each arm's missing runs at its own mean time; CPU hours at ``threads``
    per training)."""
    rules = Rules.of(rules)
    last = rules.sequential.looks[-1]
    per_arm = runs.assign(arm=arms_of(runs)).groupby("arm").agg(n=("seed", "nunique"),
                                                      seconds=("train_seconds", "mean"))
    missing = (last - per_arm["n"]).clip(lower=0)
    hours = float((missing * per_arm["seconds"].fillna(0)).sum() / 3600)
    return {"trainings": int(len(runs)), "trainings_full": int(len(per_arm) * last),
            "trainings_first_look": int(len(per_arm) * rules.sequential.looks[0]),
            "trainings_saved": int(missing.sum()), "hours_saved": hours,
            "cpu_hours_saved": hours * threads}
