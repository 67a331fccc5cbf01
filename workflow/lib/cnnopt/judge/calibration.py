"""How far to trust the verdicts: the decision rules' error rates and power, simulated,
including the cases that break the rules' own assumptions.

Each simulated study is judged by the claims table's own rules (``decide.verdicts``, the
verdicts ``decide.judge`` gives) on synthetic runs whose truth is known, with the study's own
claims and arms (``Layout``). Every metric of a run (test accuracy, times to target, curve
facts) is

    true mean of its arm + seed luck + the run's own noise (+ for accuracy the binomial noise
    of its hits on ``n_test`` test images),

with ``n`` seeds per arm, seed sd ``sd``. The cases (``CASES``):

* ``model``: the luck of a seed is shared by every arm (sd / 2), every arm's own noise has
  sd ``sd``: the case a pooled model assumes;
* ``volatile_arm``: as ``model``, but the arm compared most often has 3x the own noise;
* ``volatile_stratum``: as ``model``, but every arm of the first declared stratum (the first
  cycles) has 3x the own noise;
* ``twin_luck``: the luck of a seed is shared by the arms of one optimizer (sd), barely
  across optimizers (sd / 4), own noise sd / 2;
* ``diverged_twin``: as ``model``, and the first seed of one twin (an arm of a role outside
  baseline, initial and final) diverges: no accuracy or curve facts, censored at its budget.

Under the null every arm has one true mean for every metric; of the value claims, the even ones
have the paper's number at the arm's mean (a false verdict: *not reproduced*, and
*reproduced* there is the values' power) and the odd ones at ± ``margin`` from it, the edge of
the equivalence region where TOST's error is largest (a false verdict: *reproduced*). Any
*reproduced* or *contradicted* of a comparison is false.

The power studies (``power_layout``): per true effect a family of four "A beats B" claims and
one top claim (two members, two others), every member truly better by the effect, in case
``model``.

Rates are per claim over studies (binomial Monte Carlo error) and per family as the share of
studies with any false verdict; averages over the claims of a study use the per-study share,
so the Monte Carlo error counts the claims of one study as the correlated draws they are.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cnnopt.common.errors import DataError
from cnnopt.judge import decide, sequential
from cnnopt.judge.claims import arms as claim_arms
from cnnopt.judge.claims import pairs, with_defaults
from cnnopt.judge.metrics import arms_of
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import CONTRADICTED, NOT_REPRODUCED, REPRODUCED

#: Every case of the error studies, in the report's order.
CASES = ("model", "volatile_arm", "volatile_stratum", "twin_luck", "diverged_twin")
#: What each case is, for the report.
CASE_TEXT = {
    "model": "seed luck shared by all arms, equal noise (the pooled model's own case)",
    "volatile_arm": "the most-compared arm 3x noisier",
    "volatile_stratum": "every arm of the first stratum 3x noisier",
    "twin_luck": "seed luck shared by an optimizer's twins, barely across optimizers",
    "diverged_twin": "one run of a twin diverged",
}
MEAN = 75.0           # every arm's true accuracy (%)
TIME = 10.0           # every arm's true epochs to target
N_TEST = 10_000
#: The columns of calibration.csv: one row per setting, claim (or family) and verdict.
COLUMNS = ["case", "sd", "n", "studies", "family", "id", "kind", "truth", "verdict", "rate",
           "mc_error"]
#: The verdicts that are false for each truth.
FALSE = {"no difference": (REPRODUCED, CONTRADICTED), "at the paper's value": (NOT_REPRODUCED,),
         "at the margin": (REPRODUCED,)}


@dataclass(frozen=True)
class Layout:
    """The claims of a simulated study and its arms: each arm's role (its stratum), its
    optimizer (its twins share it), and its true mean per metric (offset from the null)."""

    claims: tuple[dict, ...]
    roles: dict
    effects: dict        # arm -> true offset of every metric (0 under the null)

    @property
    def arms(self) -> list[str]:
        return list(self.roles)


def _role_of(arm: str, roles: dict | None) -> str:
    variant = arm.split("/", 1)[1]
    if roles and arm in roles:
        return roles[arm]
    return variant if variant in ("baseline", "initial", "final") else "ablation"


def error_layout(claims: list[dict], rules: Rules, roles: dict | None = None) -> Layout:
    """The study's own claims under the null: every arm one mean; the even value claims at the
    paper's number, the odd ones at ± ``margin`` from it. ``roles`` maps an arm to its role
    (the study's runs); without it a variant named baseline, initial or final has that role
    and any other is a twin (``ablation``)."""
    out, k = [], 0
    for c in (with_defaults(c) for c in claims):
        if c["kind"] == "value":
            c = c | {"paper": MEAN + (0.0 if k % 2 == 0 else rules.margin * (1 if k % 4 == 1 else -1))}
            k += 1
        out.append(c)
    arms = dict.fromkeys(a for c in out for a in claim_arms(c))
    return Layout(tuple(out), {a: _role_of(a, roles) for a in arms}, {a: 0.0 for a in arms})


def _claim(cid, family, kind, **keys) -> dict:
    return {"id": cid, "family": family, "kind": kind, "claim": cid, "where": "simulation",
            "metric": "accuracy", "better": "higher", "scale": False, **keys}


def power_layout(effects) -> Layout:
    """Per true effect, a family of four "A beats B" claims and one top claim in which every
    member truly beats every other arm by that effect."""
    claims, offsets = [], {}
    for k, effect in enumerate(effects):
        family = f"effect_{effect:g}"
        for i in range(4):
            a, b = f"e{k}a{i}/final", f"e{k}b{i}/final"
            claims.append(_claim(f"{family}_greater{i}", family, "greater", a=a, b=b))
            offsets |= {a: effect, b: 0.0}
        members = [f"e{k}m{i}/final" for i in range(2)]
        others = [f"e{k}o{i}/final" for i in range(2)]
        claims.append(_claim(f"{family}_top", family, "top", members=members, others=others))
        offsets |= {m: effect for m in members} | {o: 0.0 for o in others}
    return Layout(tuple(claims), {a: "final" for a in offsets}, offsets)


def most_compared(layout: Layout) -> str:
    """The arm in the most elementary comparisons (the ``volatile_arm`` case's)."""
    count = Counter(arm for c in layout.claims for pair in pairs(c) for arm in pair)
    return count.most_common(1)[0][0] if count else layout.arms[0]


def _noise(layout: Layout, case: str, rules: Rules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per arm: own-noise factor, common-luck factor, twin-luck factor (times ``sd``)."""
    arms = layout.arms
    own = np.ones(len(arms))
    common, twin = 0.5, 0.0
    if case == "volatile_arm":
        own[arms.index(most_compared(layout))] = 3.0
    elif case == "volatile_stratum":
        present = {rules.stratum_of(r) for r in layout.roles.values()}
        first = next((s for s in rules.strata if s in present), None)
        own[[rules.stratum_of(layout.roles[a]) == first for a in arms]] = 3.0
    elif case == "twin_luck":
        own[:], common, twin = 0.5, 0.25, 1.0
    return own, np.full(len(arms), common), np.full(len(arms), twin)


def diverged_arm(layout: Layout) -> str | None:
    """The twin whose first seed diverges in case ``diverged_twin``: the first arm of a role
    outside baseline, initial and final (None when the layout has none)."""
    return next((a for a in layout.arms
                 if layout.roles[a] not in ("baseline", "initial", "final")), None)


def simulate_runs(rng: np.random.Generator, layout: Layout, n: int, sd: float, case: str = "model",
                  rules: Rules | None = None, n_test: int = N_TEST) -> dict[str, np.ndarray]:
    """One synthetic study: the columns of a runs table that ``decide.judge`` reads, as arrays
    (``pd.DataFrame`` of it is the table)."""
    rules = Rules.of(rules)
    arms = layout.arms
    k = len(arms)
    own, common, twin = _noise(layout, case, rules)
    opt = np.array([a.split("/")[0] for a in arms], dtype=object)
    _, opt_code = np.unique(opt, return_inverse=True)
    budget = np.array([rules.paper_epochs.get(layout.roles[a], 45) for a in arms], float)

    def draw(mean: float, scale: float) -> np.ndarray:
        """(arm, seed) values of one metric: its mean, the arms' offsets and the noise."""
        luck = rng.normal(0, 1, n)[None, :] * common[:, None]
        twins = rng.normal(0, 1, (opt_code.max() + 1, n))[opt_code] * twin[:, None]
        noise = rng.normal(0, 1, (k, n)) * own[:, None]
        offsets = np.array([layout.effects[a] for a in arms])[:, None]
        return mean + offsets * scale + sd * scale * (luck + twins + noise)

    true = draw(MEAN, 1.0)
    acc = 100 * rng.binomial(n_test, np.clip(true / 100, 0, 1)) / n_test
    # times: lower is better, so an arm better by an effect is faster by it
    epochs = TIME - (draw(TIME, 0.2) - TIME)
    reached = epochs <= budget[:, None]
    diverged = np.zeros((k, n), bool)
    if case == "diverged_twin" and (arm := diverged_arm(layout)) is not None:
        diverged[arms.index(arm), 0] = True
        reached[arms.index(arm), 0] = False
    epochs = np.where(reached, epochs, np.nan)
    curves = {m: draw(2.0, 0.2) for m in ("gap", "val_accuracy_volatility", "val_loss_volatility")}
    size = k * n
    seed = np.tile(np.arange(n), k)
    optimizer = np.repeat(opt, n)
    return {
        "run_id": np.array([f"{a}-s{s}" for a in arms for s in range(n)], dtype=object),
        "optimizer": optimizer,
        "variant": np.repeat(np.array([a.split("/", 1)[1] for a in arms], dtype=object), n),
        "seed": seed, "role": np.repeat(np.array([layout.roles[a] for a in arms], dtype=object), n),
        "test_accuracy": acc.ravel(), "test_accuracy_best": acc.ravel(),
        "diverged": diverged.ravel(), "epochs": np.repeat(budget, n), "epochs_run": np.repeat(budget, n),
        "max_train_images": np.full(size, None, dtype=object), "still_rising": np.zeros(size, bool),
        "train_seconds": np.repeat(budget, n) * 30.0,
        "reached_target": reached.ravel(), "epochs_to_target": epochs.ravel(),
        "seconds_to_target": epochs.ravel() * 30.0,
        **{m: v.ravel() for m, v in curves.items()},
    }


def _truth(claim: dict, layout: Layout) -> str:
    if claim["kind"] == "value":
        return "at the paper's value" if claim["paper"] == MEAN else "at the margin"
    effect = min(layout.effects[a] - layout.effects[b] for a, b in pairs(claim))
    return "no difference" if effect == 0 else f"true effect {effect:g}"


def _run(job) -> pd.DataFrame:
    """``studies`` simulated studies of one setting; one row per (study, claim) verdict."""
    layout, case, sd, n, studies, seed, rules, tag = job
    rng = np.random.default_rng([seed, n, int(round(sd * 1000)), CASES.index(case) if case in CASES else 9, tag])
    claims = list(layout.claims)
    verdicts = [decide.verdicts(claims, simulate_runs(rng, layout, n, sd, case, rules),
                                rules=rules, scale="paper") for _ in range(studies)]
    out = pd.DataFrame(np.array(verdicts, dtype=object), columns=[c["id"] for c in claims])
    long = out.melt(var_name="id", value_name="verdict")
    info = pd.DataFrame([{"id": c["id"], "family": c["family"], "kind": c["kind"],
                          "truth": _truth(c, layout)} for c in claims])
    long = long.merge(info, on="id", how="left")
    long["study"] = np.tile(np.arange(studies), len(claims))
    long["case"], long["sd"], long["n"] = case if tag == 0 else "power", sd, n
    long["wrong"] = [v in FALSE.get(t, (CONTRADICTED,))
                     for t, v in zip(long["truth"], long["verdict"], strict=True)]
    return long


def simulate(claims: list[dict], rules=None, roles: dict | None = None, studies: int | None = None,
             sds=None, ns=None, cases=None, effects=None, power_studies: int | None = None,
             seed: int | None = None, workers: int = 1) -> pd.DataFrame:
    """Every verdict of every simulated study (long: case, sd, n, study, id, family, kind,
    truth, verdict, wrong): the error studies of ``claims`` per case, seed sd and seed count,
    and the power studies (case "power") per seed sd and seed count. Unset arguments come
    from ``rules.calibration``."""
    rules = Rules.of(rules)
    cal = rules.calibration
    studies, seed = studies or cal.studies, cal.seed if seed is None else seed
    sds, ns = tuple(sds or cal.sds), tuple(ns or cal.seeds)
    layout = error_layout(claims, rules, roles)
    jobs = [(layout, case, float(sd), int(n), studies, seed, rules, 0)
            for case in (cases or cal.cases) for sd in sds for n in ns]
    strong = power_layout(tuple(effects or cal.effects))
    jobs += [(strong, "model", float(sd), int(n), power_studies or studies, seed, rules, 1)
             for sd in sds for n in ns]
    return _all(_run, jobs, workers)


def _all(run, jobs: list, workers: int) -> pd.DataFrame:
    """``run`` of every job (in ``workers`` processes), the results as one frame."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(run, jobs))
    else:
        parts = [run(job) for job in jobs]
    return pd.concat(parts, ignore_index=True)


def characteristics(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The operating characteristics (``COLUMNS``): per setting and claim the rate of each
    verdict over the studies (binomial Monte Carlo error); per setting and family the share
    of studies with any false verdict (id "any false")."""
    keys = ["case", "sd", "n"]
    studies = verdicts.groupby(keys)["study"].nunique().rename("studies").reset_index()
    rates = (verdicts.groupby([*keys, "family", "id", "kind", "truth"])["verdict"]
             .value_counts(normalize=True).rename("rate").reset_index())
    fam = (verdicts.groupby([*keys, "family", "study"])["wrong"].any()
           .groupby([*keys, "family"]).mean().rename("rate").reset_index()
           .assign(id="any false", kind="family", truth="as in the family", verdict="any false verdict"))
    out = pd.concat([rates, fam], ignore_index=True).merge(studies, on=keys)
    out["mc_error"] = np.sqrt(out["rate"] * (1 - out["rate"]) / out["studies"])
    return out[COLUMNS]


def false_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per error setting: the worst claim's rate of false verdicts and the worst family's
    share of studies with any, each with its Monte Carlo error, and the values' power (the
    mean rate of *reproduced* for a value at the paper's number)."""
    errors = table[table["case"] != "power"]
    claim = errors[[v in FALSE.get(t, ()) for t, v in zip(errors["truth"], errors["verdict"], strict=True)]]
    claim = claim.groupby(["case", "sd", "n", "id"], as_index=False).agg(
        rate=("rate", "sum"), studies=("studies", "first"))
    rows = []
    for (case, sd, n), grp in errors.groupby(["case", "sd", "n"], sort=False):
        mine = claim[(claim["case"] == case) & (claim["sd"] == sd) & (claim["n"] == n)]
        worst = mine.loc[mine["rate"].idxmax()] if len(mine) else None
        fam = grp[grp["id"] == "any false"]
        top = fam.loc[fam["rate"].idxmax()] if len(fam) else None
        at = grp[(grp["truth"] == "at the paper's value") & (grp["verdict"] == REPRODUCED)]
        values = at["rate"].sum() / max(grp.loc[grp["truth"] == "at the paper's value", "id"].nunique(), 1)
        s = int(grp["studies"].iloc[0])
        rows.append({"case": case, "sd": sd, "n": n, "studies": s,
                     "worst_claim": worst["id"] if worst is not None else "",
                     "worst_claim_rate": float(worst["rate"]) if worst is not None else 0.0,
                     "worst_family": top["family"] if top is not None else "",
                     "worst_family_rate": float(top["rate"]) if top is not None else 0.0,
                     "values_power": float(values)})
    out = pd.DataFrame(rows)
    out["mc_limit"] = 0.05 + 3 * np.sqrt(0.05 * 0.95 / out["studies"])
    return out


def power_table(table: pd.DataFrame) -> pd.DataFrame:
    """The rate of the correct verdict (reproduced) per true effect, seed sd and seed count,
    averaged over the claims of each kind."""
    sel = table[(table["case"] == "power") & table["truth"].str.startswith("true effect")
                & (table["verdict"] == REPRODUCED)]
    return (sel.pivot_table(index=["kind", "truth"], columns=["sd", "n"], values="rate",
                            aggfunc="mean", fill_value=0.0).sort_index())


def read_runs_table(path) -> pd.DataFrame:
    """``runs.csv`` as rule aggregate writes it (the arms' optimizer, variant and role); a
    missing, empty, unparsable or foreign file is a one-line :class:`DataError` naming it."""
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read the runs table: {' '.join(str(err).split())}") from None
    missing = [c for c in ("optimizer", "variant", "role") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: not a runs table (no {', '.join(missing)} column; it has "
                        f"{', '.join(map(str, frame.columns)) or 'none'})")
    if frame.empty:
        raise DataError(f"{path}: the runs table has no runs")
    return frame


def roles_of(runs: pd.DataFrame) -> dict[str, str]:
    """Each arm's role in the runs table (the strata the simulated arms are drawn in)."""
    return dict(zip(arms_of(runs), runs["role"], strict=True))


def calibrate(claims: list[dict], runs: pd.DataFrame, rules, out, workers: int = 1) -> pd.DataFrame:
    """The operating characteristics of the rules on the study's own claims and arms (roles
    from ``runs``, the runs table), written to ``out`` (calibration.csv)."""
    from cnnopt.common import files
    rules = Rules.of(rules)
    table = characteristics(simulate(claims, rules, roles_of(runs), workers=workers))
    files.write_csv(out, table)
    return table


# ---------------------------------------------------------------- the sequential design
#: The columns of sequential_calibration.csv: per design, case and seed sd, the worst claim's
#: and the worst family's rate of false verdicts, the trainings per study and the share of
#: claims decided (reproduced, not reproduced or contradicted).
SEQUENTIAL_COLUMNS = ["design", "case", "sd", "studies", "trainings", "decided",
                      "worst_claim", "worst_claim_rate", "worst_family", "worst_family_rate",
                      "mc_limit"]
#: The columns of sequential_power.csv: per design, seed sd, true effect and kind of claim the
#: rate of the right verdict, the trainings per study, and the power each added training buys
#: over the fixed design of the first look's seeds.
SEQUENTIAL_POWER_COLUMNS = ["design", "sd", "truth", "kind", "studies", "power", "trainings",
                            "power_per_training"]


def _designs(rules: Rules) -> tuple[str, str, str]:
    looks = rules.sequential.looks
    return (f"fixed {looks[0]} seeds", f"sequential {'/'.join(map(str, looks))}",
            f"fixed {looks[-1]} seeds")


def _run_sequential(job) -> pd.DataFrame:
    """``studies`` simulated studies of one setting under three designs: every arm at the
    first look's seeds, the sequential design, every arm at the last look's seeds; one row per
    (design, study, claim)."""
    layout, case, sd, studies, seed, rules, tag = job
    looks = rules.sequential.looks
    rng = np.random.default_rng([seed, int(round(sd * 1000)),
                                 CASES.index(case) if case in CASES else 9, tag, 7])
    claims = list(layout.claims)
    ids = [c["id"] for c in claims]
    first, seq_name, last = _designs(rules)
    rows = []
    for study in range(studies):
        runs = simulate_runs(rng, layout, looks[-1], sd, case, rules)
        few = {c: v[runs["seed"] < looks[0]] for c, v in runs.items()}
        fixed_few = decide.verdicts(claims, few, rules=rules, scale="paper")
        fixed_all = decide.verdicts(claims, runs, rules=rules, scale="paper")
        table, plans = sequential.run_design(claims, runs, rules, "paper")
        added = plans[-1].trainings_added
        arms = len(layout.arms)
        got = dict(zip(table["id"], table["verdict"], strict=True))
        for design, verdicts, trainings in (
                (first, fixed_few, arms * looks[0]),
                (seq_name, [got[i] for i in ids], arms * looks[0] + added),
                (last, fixed_all, arms * looks[-1])):
            rows += [(design, study, cid, v, trainings) for cid, v in zip(ids, verdicts, strict=True)]
    out = pd.DataFrame(rows, columns=["design", "study", "id", "verdict", "trainings"])
    info = pd.DataFrame([{"id": c["id"], "family": c["family"], "kind": c["kind"],
                          "truth": _truth(c, layout)} for c in claims])
    out = out.merge(info, on="id", how="left")
    out["case"], out["sd"] = case if tag == 0 else "power", sd
    out["wrong"] = [v in FALSE.get(t, (CONTRADICTED,))
                    for t, v in zip(out["truth"], out["verdict"], strict=True)]
    return out


def simulate_sequential(claims: list[dict], rules=None, roles: dict | None = None,
                        studies: int | None = None, sds=None, cases=None, effects=None,
                        seed: int | None = None, workers: int = 1) -> pd.DataFrame:
    """Every verdict of every simulated study under the three designs (long: design, case,
    sd, study, id, family, kind, truth, verdict, wrong, trainings): the error studies of
    ``claims`` per case and seed sd (the sequential design with the declared budget), and the
    power studies (case "power": the power layout, one family per true effect, the budget
    lifted so that every open claim can grow). Unset arguments come from
    ``rules.calibration`` (``studies`` from ``rules.sequential``, like the looks)."""
    rules = Rules.of(rules)
    if not rules.sequential.on:
        raise DataError("verdicts.sequential has no looks: nothing to calibrate")
    cal = rules.calibration
    studies, seed = studies or rules.sequential.studies, cal.seed if seed is None else seed
    sds = tuple(sds or cal.sds)
    layout = error_layout(claims, rules, roles)
    jobs = [(layout, case, float(sd), studies, seed, rules, 0)
            for case in (cases or cal.cases) for sd in sds]
    unlimited = rules.replace(sequential=rules.sequential.as_block() | {"budget_trainings": None})
    for effect in tuple(effects or cal.effects):
        jobs += [(power_layout((effect,)), "model", float(sd), studies, seed, unlimited,
                  1 + int(round(effect * 100))) for sd in sds]
    return _all(_run_sequential, jobs, workers)


def sequential_errors(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``SEQUENTIAL_COLUMNS`` of ``simulate_sequential``'s error studies."""
    errors = verdicts[verdicts["case"] != "power"]
    rows = []
    for (design, case, sd), grp in errors.groupby(["design", "case", "sd"], sort=False):
        studies = grp["study"].nunique()
        per_claim = grp.groupby("id")["wrong"].mean()
        per_family = grp.groupby(["family", "study"])["wrong"].any().groupby("family").mean()
        decided = grp["verdict"].isin((REPRODUCED, NOT_REPRODUCED, CONTRADICTED)).mean()
        rows.append({"design": design, "case": case, "sd": sd, "studies": studies,
                     "trainings": grp.groupby("study")["trainings"].first().mean(),
                     "decided": float(decided),
                     "worst_claim": per_claim.idxmax(), "worst_claim_rate": float(per_claim.max()),
                     "worst_family": per_family.idxmax(),
                     "worst_family_rate": float(per_family.max()),
                     "mc_limit": 0.05 + 3 * np.sqrt(0.05 * 0.95 / studies)})
    return pd.DataFrame(rows, columns=SEQUENTIAL_COLUMNS)


def sequential_power(verdicts: pd.DataFrame, rules) -> pd.DataFrame:
    """``SEQUENTIAL_POWER_COLUMNS`` of ``simulate_sequential``'s power studies: the rate of
    *reproduced* per design, seed sd, true effect and kind of claim, and what each training
    added over the first look's fixed design buys (power gained / trainings added)."""
    power = verdicts[(verdicts["case"] == "power") & verdicts["truth"].str.startswith("true effect")]
    if power.empty:
        return pd.DataFrame(columns=SEQUENTIAL_POWER_COLUMNS)
    first = _designs(Rules.of(rules))[0]
    keys = ["design", "sd", "truth", "kind"]
    out = (power.assign(right=power["verdict"] == REPRODUCED)
           .groupby(keys, sort=False)
           .agg(studies=("study", "nunique"), power=("right", "mean"), trainings=("trainings", "mean"))
           .reset_index())
    base = out[out["design"] == first].set_index(["sd", "truth", "kind"])
    ref = base.reindex(pd.MultiIndex.from_frame(out[["sd", "truth", "kind"]]))
    gain = out["power"].to_numpy() - ref["power"].to_numpy()
    spent = out["trainings"].to_numpy() - ref["trainings"].to_numpy()
    out["power_per_training"] = np.where(spent > 0, gain / np.where(spent > 0, spent, 1), np.nan)
    return out[SEQUENTIAL_POWER_COLUMNS]


def calibrate_sequential(claims: list[dict], runs: pd.DataFrame, rules, out_errors, out_power,
                         workers: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sequential design's error rates and power against fixed seeds, on the study's own
    claims and arms (roles from ``runs``), written to ``out_errors`` and ``out_power``."""
    from cnnopt.common import files
    rules = Rules.of(rules)
    verdicts = simulate_sequential(claims, rules, roles_of(runs), workers=workers)
    errors, power = sequential_errors(verdicts), sequential_power(verdicts, rules)
    files.write_csv(out_errors, errors)
    files.write_csv(out_power, power)
    return errors, power
