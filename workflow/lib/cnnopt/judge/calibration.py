"""How far to trust the verdicts: the decision rules' error rates and power, simulated.

Each simulated study is judged by the claims table's own rules (``decide.verdicts``, the
verdicts ``decide.judge`` gives) on synthetic runs whose truth is known. A run's test accuracy is

    true mean of its arm + seed effect (shared by every arm, sd / 2) + the run's own seed
    noise (sd) + per-image test noise (its hits on ``n_test`` images, binomial),

with ``n`` seeds per arm, in one stratum. Two kinds of study (``numpy``, seeded):

* **error rates** (``errors``): family "comparisons": four comparisons ("A beats B") and one top
  claim (two members, two others) whose arms all share one true mean; family "values": four
  value claims, two whose arm's true mean equals the paper's number and two that lie
  ``offset`` points from it. A *false verdict* is reproduced or contradicted under no
  difference, not reproduced for a value at the paper's number, and reproduced for a value
  ``offset`` away (``offset`` at or beyond the margin).
* **power** (``power``): per true effect (1, 2, 5 points) a family of four comparisons and one
  top claim in which every member truly beats every other by that effect; the rate of
  the correct verdict.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from cnnopt.common.errors import DataError
from cnnopt.judge import decide
from cnnopt.judge.verdicts import CONTRADICTED, NOT_REPRODUCED, REPRODUCED

PAPER = 75.0  # the paper's number of every simulated value claim (and the arms' null mean)
#: The columns of the operating-characteristics table (calibration.csv).
COLUMNS = ["sd", "n", "studies", "family", "kind", "truth", "verdict", "rate", "mc_error"]


def _claim(cid, family, kind, **keys) -> dict:
    return {"id": cid, "family": family, "kind": kind, "claim": cid, "where": "simulation",
            "metric": "accuracy", "better": "higher", "scale": False, **keys}


def _comparisons(family: str, prefix: str) -> tuple[list[dict], list[str], list[str]]:
    """Four "A beats B" claims and one top claim; returns (claims, better arms, worse arms)."""
    claims, better, worse = [], [], []
    for i in range(4):
        a, b = f"{prefix}a{i}/final", f"{prefix}b{i}/final"
        claims.append(_claim(f"{family}_greater{i}", family, "greater", a=a, b=b))
        better.append(a)
        worse.append(b)
    members, others = [f"{prefix}m{i}/final" for i in range(2)], [f"{prefix}o{i}/final" for i in range(2)]
    claims.append(_claim(f"{family}_top", family, "top", members=members, others=others))
    return claims, better + members, worse + others


def error_layout(offset: float) -> tuple[list[dict], dict[str, float]]:
    """The claims of an error-rate study and each arm's true mean."""
    claims, better, worse = _comparisons("comparisons", "n")
    means = {arm: PAPER for arm in better + worse}
    for i in range(4):
        arm = f"v{i}/final"
        claims.append(_claim(f"value{i}", "values", "value", run=arm, paper=PAPER))
        means[arm] = PAPER + (0.0 if i < 2 else offset * (1 if i == 2 else -1))
    return claims, means


def power_layout(effects) -> tuple[list[dict], dict[str, float]]:
    claims, means = [], {}
    for k, effect in enumerate(effects):
        fam_claims, better, worse = _comparisons(f"effect_{effect:g}", f"e{k}")
        claims += fam_claims
        means |= {arm: PAPER + effect for arm in better} | {arm: PAPER for arm in worse}
    return claims, means


def simulate_runs(rng: np.random.Generator, means: dict[str, float], n: int, sd: float,
                  n_test: int = 10_000) -> dict[str, np.ndarray]:
    """One synthetic study: the columns of a runs table that ``decide.judge`` reads, as arrays
    (``pd.DataFrame`` of it is the table)."""
    arms = list(means)
    seed_effect = rng.normal(0, sd / 2, size=n)
    true = np.array([means[a] for a in arms])[:, None] + seed_effect[None, :] \
        + rng.normal(0, sd, size=(len(arms), n))
    hits = rng.binomial(n_test, np.clip(true / 100, 0, 1))
    acc = (100 * hits / n_test).ravel()
    opt = np.repeat([a.split("/")[0] for a in arms], n).astype(object)
    seed = np.tile(np.arange(n), len(arms))
    size = len(acc)
    return {
        "run_id": np.array([f"{o}-s{s}" for o, s in zip(opt, seed, strict=True)], dtype=object),
        "optimizer": opt, "variant": np.full(size, "final", dtype=object), "seed": seed,
        "role": np.full(size, "final", dtype=object), "test_accuracy": acc,
        "test_accuracy_best": acc, "diverged": np.zeros(size, bool), "epochs": np.full(size, 45),
        "epochs_run": np.full(size, 45), "max_train_images": np.full(size, None, dtype=object),
        "still_rising": np.zeros(size, bool),
    }


def _truth(claim: dict, means: dict[str, float]) -> str:
    if claim["kind"] == "value":
        return "at the paper's value" if means[claim["run"]] == claim["paper"] else "beyond the margin"
    pairs = [(claim["a"], claim["b"])] if claim["kind"] == "greater" else \
        [(m, o) for m in claim["members"] for o in claim["others"]]
    effect = min(means[a] - means[b] for a, b in pairs)
    return "no difference" if effect == 0 else f"true effect {effect:g}"


def _wrong(truth: str, verdict: str) -> bool:
    """A false verdict for the truth."""
    if truth == "at the paper's value":
        return verdict == NOT_REPRODUCED
    if truth == "beyond the margin":
        return verdict == REPRODUCED
    if truth == "no difference":
        return verdict in (REPRODUCED, CONTRADICTED)
    return verdict == CONTRADICTED


def _run(job) -> pd.DataFrame:
    """``studies`` simulated studies of one layout; one row per (study, claim) verdict."""
    kind, sd, n, studies, seed, rules, arg = job
    claims, means = error_layout(arg) if kind == "errors" else power_layout(arg)
    rng = np.random.default_rng([seed, n, int(round(sd * 1000)), 0 if kind == "errors" else 1])
    verdicts = [decide.verdicts(claims, simulate_runs(rng, means, n, sd), rules=rules, scale="paper")
                for _ in range(studies)]
    out = pd.DataFrame(np.array(verdicts), columns=[c["id"] for c in claims])
    long = out.melt(var_name="id", value_name="verdict")
    info = pd.DataFrame([{"id": c["id"], "family": c["family"], "kind": c["kind"],
                          "truth": _truth(c, means)} for c in claims])
    long = long.merge(info, on="id")
    long["wrong"] = [_wrong(t, v) for t, v in zip(long["truth"], long["verdict"], strict=True)]
    long["study"] = np.tile(np.arange(studies), len(claims))
    long["sd"], long["n"] = sd, n
    return long


def simulate(sds, ns, studies: int, seed: int = 0, rules: dict | None = None,
             effects=(1.0, 2.0, 5.0), power_studies: int | None = None, offset: float = 3.0,
             workers: int = 1) -> pd.DataFrame:
    """Every verdict of every simulated study (long format: sd, n, study, id, family, kind,
    truth, verdict, wrong), for each seed sd in ``sds`` and seed count in ``ns``."""
    rules = dict(rules or {})
    jobs = []
    for sd in sds:
        for n in ns:
            jobs.append(("errors", float(sd), int(n), studies, seed, rules, offset))
            jobs.append(("power", float(sd), int(n), power_studies or studies, seed, rules,
                         tuple(effects)))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_run, jobs))
    else:
        parts = [_run(job) for job in jobs]
    return pd.concat(parts, ignore_index=True)


def characteristics(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The operating characteristics (``COLUMNS``): per setting, family, kind and truth, the
    rate of each verdict over the simulated claims (a top claim counts once), with its Monte
    Carlo standard error; and per family the rate of studies with any false verdict (kind
    "family (any false)")."""
    rows = []
    for (sd, n, family, kind, truth), grp in verdicts.groupby(["sd", "n", "family", "kind", "truth"],
                                                              sort=False):
        studies = grp["study"].nunique()
        for verdict, rate in grp["verdict"].value_counts(normalize=True).items():
            rows.append({"sd": sd, "n": n, "studies": studies, "family": family, "kind": kind,
                         "truth": truth, "verdict": verdict, "rate": rate,
                         "mc_error": math.sqrt(rate * (1 - rate) / len(grp))})
    for (sd, n, family), grp in verdicts.groupby(["sd", "n", "family"], sort=False):
        per_study = grp.groupby("study")["wrong"].any()
        rate = float(per_study.mean())
        rows.append({"sd": sd, "n": n, "studies": len(per_study), "family": family,
                     "kind": "family (any false)", "truth": "as in the family",
                     "verdict": "any false verdict", "rate": rate,
                     "mc_error": math.sqrt(rate * (1 - rate) / len(per_study))})
    return pd.DataFrame(rows, columns=COLUMNS)


def power_table(table: pd.DataFrame) -> pd.DataFrame:
    """The rate of the correct verdict (reproduced) per true effect, seed sd and seed count,
    for "A beats B" and top claims."""
    sel = table[table["truth"].str.startswith("true effect") & (table["verdict"] == REPRODUCED)]
    return (sel.pivot_table(index=["kind", "truth"], columns=["sd", "n"], values="rate",
                            aggfunc="first", fill_value=0.0)
            .sort_index())


def read_strata(path) -> pd.DataFrame:
    """``strata.csv`` as rule aggregate writes it; a missing, empty, unparsable or foreign file
    is a one-line :class:`DataError` naming it."""
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read the strata table: {' '.join(str(err).split())}") from None
    if "sd_paired" not in frame.columns:
        raise DataError(f"{path}: not a strata table (no sd_paired column; it has "
                        f"{', '.join(map(str, frame.columns)) or 'none'})")
    sd = pd.to_numeric(frame["sd_paired"], errors="coerce")
    if (sd.isna() & frame["sd_paired"].notna()).any() or (sd < 0).any():
        raise DataError(f"{path}: sd_paired must be numbers of at least 0")
    return frame.assign(sd_paired=sd)


def calibrate(strata: pd.DataFrame, n: int, rules: dict, out) -> pd.DataFrame:
    """The operating characteristics at this study's seed count ``n`` and each stratum's
    observed paired sd (``strata.csv``); written to ``out`` (calibration.csv)."""
    from cnnopt.common import files
    cal = rules["calibration"]
    sds = sorted({round(float(s), 2) for s in strata["sd_paired"].dropna() if s > 0}) or [1.0]
    table = characteristics(simulate(sds, [n], cal["studies"], seed=cal["seed"], rules=rules,
                                     effects=cal["effects"]))
    files.write_csv(out, table)
    return table
