"""The verdict on each claim: elementary tests on each claim's own runs, variances moderated
toward their neighbours, Holm's correction per family, decision rules.

The rules are declared in the config's ``verdicts`` block before any result exists
(``config/README.md``, "Verdicts"; ``judge.rules``); the variances are ``judge.model``'s.

* **greater** (arm A beats arm B on a metric): the mean of the per-seed differences A - B on
  the seeds both arms ran, their variance moderated (limma's moderated t) toward a prior of
  two runs of the two arms' strata (``_contrast_prior``); without common seeds, Welch's test
  on the two arms' moderated variances. *Reproduced* when the Holm-adjusted p
  is below 1 - ``confidence``, the estimate favours A **and** every seed's own difference
  does; *contradicted* the same way for B; otherwise *inconclusive*. Time to target: a run
  that never reaches the target is censored, its time tied at its budget (which can only
  shrink a difference); a censored run of A forbids *reproduced*, one of B *contradicted*,
  and an arm with a censored run lends nothing to the prior of its stratum. The exact
  McNemar counts of the per-image predictions are shown beside it (descriptive only).
* **top** (each of the members beats each of the others): every pair is an elementary test
  of the family; *reproduced* when every pair is, *contradicted* when any pair is,
  *inconclusive* otherwise.
* **value** (the paper reports a number for an arm): the paper's number is one run of its
  recipe, so our mean is set against it with the standard error of *one new run*
  (``model.one_run``, the arm's moderated variance). Two one-sided tests (TOST) at
  ± ``margin``: *reproduced* when our recipe is shown within the margin, *not reproduced*
  when shown beyond it with the runs at the paper's budget and converged, else
  *inconclusive*. Every value also says how close the data put us: within ± X points of the
  paper's number at 90 % confidence (the ``within`` column).

Each claim belongs to a family; Holm's step-down (``statsmodels``' ``multipletests``) runs
within each family over its elementary tests. A verdict of runs below the paper's budget
(``verdicts.paper_epochs``) is worded with that budget ("contradicted at 8 epochs"). A diverged
run is left out of every accuracy and curve measure, and no verdict goes in its arm's favour.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cnnopt.common.errors import CnnoptError
from cnnopt.judge import model, power
from cnnopt.judge.claims import arms, pairs, with_defaults
from cnnopt.judge.metrics import METRICS, columns_of, measure_columns
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import (
    CENSORING,
    CONTRADICTED,
    DIVERGENCE,
    FAMILIES,
    INCONCLUSIVE,
    MISSING,
    NOT_REPRODUCED,
    REPRODUCED,
    SCALE,
    SPREAD,
    UNTESTED,
)

#: The columns of ``claims.csv``.
COLUMNS = ["id", "family", "kind", "claim", "where", "metric", "paper", "ours", "std", "n",
           "ci_low", "ci_high", "within", "test", "p_value", "p_adjusted", "verdict",
           "verdict_text", "scale", "reason", "power", "detectable", "seeds_to_decide",
           "open_because", "mcnemar", "runs"]

#: The columns of the per-run table the judges read (``runs.read_runs(...).table``).
RUN_COLUMNS = ("run_id", "optimizer", "variant", "seed", "role", "test_accuracy", "diverged",
               "epochs", "epochs_run")

#: The columns of ``strata.csv``: per stratum, the arms' own spread of test accuracy and the
#: prior it is moderated toward.
STRATA_COLUMNS = ["stratum", "roles", "arms", "runs", "seeds", "prior_sd", "prior_df",
                  "own_sd_min", "own_sd_median", "own_sd_max", "noisiest_arm"]


@dataclass
class Test:
    """One elementary test: a value claim, or one pair of a comparison."""

    claim: dict
    a: str
    b: str | None = None
    status: str = "ok"           # ok | untested | no_test (no variance to test with)
    reason: str = ""
    estimate: float = math.nan   # value: our mean; pair: a - b, oriented to favour a
    se: float = math.nan
    df: float = math.nan
    p: float = math.nan
    p_adj: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    n: int = 0
    std: float = math.nan
    var: float = math.nan        # the moderated variance behind ``se``
    prior_df: float = 0.0
    how: str = ""
    verdict: str = INCONCLUSIVE
    diffs: np.ndarray | None = None   # paired: the per-seed differences, oriented
    censored_a: bool = False
    censored_b: bool = False
    gap: float = math.nan             # value: the paper's number minus our mean
    note: str = ""
    mcnemar: str = ""
    within: float = math.nan          # value: the 90 % bound of our distance to the paper
    runs_a: np.ndarray | None = None  # unpaired (Welch): each arm's values, oriented
    runs_b: np.ndarray | None = None
    cause: str = SPREAD               # why it is left inconclusive (verdicts.CAUSES)


class _Study:
    """The measured runs of one judging as arrays per arm (sorted by seed), and the priors of
    the arms' variances (per metric and stratum)."""

    def __init__(self, measured: dict[str, np.ndarray], rules: Rules, predictions: dict):
        self.rules = rules
        self.alpha = rules.alpha
        self.predictions = predictions or {}
        codes, names = pd.factorize(measured["arm"], sort=False)
        order = np.lexsort((measured["seed"], codes))  # by arm, then seed (stable)
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        by_arm = {c: v[order] for c, v in measured.items()}
        self._arms = {name: {c: v[bounds[i]:bounds[i + 1]] for c, v in by_arm.items()}
                      for i, name in enumerate(names)}
        self._empty = {c: v[:0] for c, v in measured.items()}
        self._arm_priors: dict = {}
        self._unit_cache: dict = {}
        #: the power columns: at this level (divided by the family's size), seeds searched
        #: up to ``seeds_cap``; ``seeds_only`` computes seeds to decide alone (``judge``)
        self.power_level, self.seeds_cap, self.seeds_only = self.alpha, rules.max_seeds, False

    def runs(self, arm: str) -> dict[str, np.ndarray]:
        """The columns of ``arm``'s runs, sorted by seed (empty arrays for an absent arm)."""
        return self._arms.get(arm, self._empty)

    def stratum(self, arm: str) -> str:
        strata = self.runs(arm)["stratum"]
        return str(strata[0]) if len(strata) else ""

    def _units(self, metric: str) -> dict[str, tuple[float, int, str]]:
        """Each arm's own variance of ``metric``, its degrees of freedom and stratum: the arms
        with two finite runs and, for a time, none censored."""
        if metric not in self._unit_cache:
            out = {}
            for name, runs in self._arms.items():
                y = runs[metric].astype(float)
                y = y[np.isfinite(y)]
                if len(y) >= 2 and not (METRICS[metric]["censored"] and runs["censored"].any()):
                    out[name] = (float(np.var(y, ddof=1)), len(y) - 1, str(runs["stratum"][0]))
            self._unit_cache[metric] = out
        return self._unit_cache[metric]

    def arm_prior(self, metric: str, stratum: str, without: str | None = None) -> model.Prior:
        """The prior of the own variances of ``metric`` of the arms of ``stratum`` but
        ``without`` (an arm is moderated toward its neighbours, not toward itself); the
        metric's over every stratum when the stratum has too few such arms."""
        key = (metric, stratum, without)
        if key not in self._arm_priors:
            mod = self.rules.moderation
            units = {a: u for a, u in self._units(metric).items() if a != without}
            mine = [u for u in units.values() if u[2] == stratum]
            self._arm_priors[key] = model.Prior()
            for group, what in ((mine, f"; {stratum} arms"), (list(units.values()), "; all arms")):
                if len(group) >= mod.min_arms:
                    s2 = np.array([u[0] for u in group])
                    df = np.array([u[1] for u in group], float)
                    self._arm_priors[key] = model.fit_prior(
                        s2, df, max_df=df.sum(), what=f"{what} ({len(s2)})", cautious=mod.cautious,
                        robust=(mod.outlier, mod.full_weight))
                    break
        return self._arm_priors[key]


def _no_runs(arm: str) -> str:
    return (f"no runs of {arm} in this study's grid (config/paper.yaml runs every twin the "
            "claims need)")


def _diverged(runs: dict) -> int:
    return int(runs["diverged"].astype(bool).sum())


def _diverged_note(arms_runs) -> str:
    total = sum(len(r["diverged"]) for r in arms_runs)
    k = sum(_diverged(r) for r in arms_runs)
    return f"; {k} of {total} runs diverged (left out)" if k else ""


# ---------------------------------------------------------------- value claims
def _value_test(study: _Study, claim: dict) -> Test:
    arm = claim["run"]
    test = Test(claim, arm)
    sel = study.runs(arm)
    acc = sel["accuracy"].astype(float)
    acc = acc[np.isfinite(acc)]
    if not len(acc):
        test.status = UNTESTED if not len(sel["accuracy"]) else "no_test"
        test.reason = _no_runs(arm) if not len(sel["accuracy"]) else \
            f"every run of {arm} diverged or has no test accuracy"
        test.cause = MISSING if not len(sel["accuracy"]) else DIVERGENCE
        return test
    test.n, test.note = len(acc), _diverged_note([sel])
    test.std = float(np.std(acc, ddof=1)) if len(acc) > 1 else math.nan
    test.estimate = float(acc.mean())
    prior = study.arm_prior("accuracy", study.stratum(arm), without=arm)
    run = model.one_run(acc, prior)
    test.how, test.var, test.prior_df = run.how, run.var, prior.df
    if not run.df > 0 or not run.se > 0:
        test.status = "no_test"
        test.reason = ("one run and no prior from other arms: nothing to estimate the seed "
                       "spread with" if run.df <= 0 else "no spread between the runs' results to test with")
        return test
    margin, paper = study.rules.margin, float(claim["paper"])
    gap = paper - run.estimate
    se, df = run.se, run.df
    # two one-sided tests: within the margin (both must reject), beyond it (either side)
    p_within = max(model.t_sf((gap + margin) / se, df), model.t_sf((margin - gap) / se, df))
    p_beyond = min(1.0, 2 * min(model.t_sf((gap - margin) / se, df),
                                model.t_sf(-(gap + margin) / se, df)))
    q = model.t_ppf(1 - study.alpha, df)
    test.estimate, test.se, test.df, test.gap = run.estimate, se, df, gap
    test.ci = (run.estimate - q * se, run.estimate + q * se)
    test.within = abs(gap) + q * se
    test.p = float(p_within if abs(gap) < margin else p_beyond)
    return test


def _decide_value(study: _Study, t: Test) -> None:
    claim, margin = t.claim, study.rules.margin
    conf = 1 - 2 * study.alpha
    # the bound at the level Holm's correction leaves this claim: reproduced iff it is <= margin
    level = study.alpha * t.p / t.p_adj if t.p_adj > 0 else study.alpha
    holm_bound = abs(t.gap) + model.t_ppf(1 - level, t.df) * t.se
    interval = (f"the paper's {float(claim['paper']):.2f} against our {conf:.0%} prediction "
                f"interval for one run [{t.ci[0]:.2f}, {t.ci[1]:.2f}]: within ± "
                f"{t.within:.2f} points at {conf:.0%}, ± {holm_bound:.2f} at the level "
                f"Holm's correction leaves it (margin ± {margin:g}, adjusted p = {t.p_adj:.3g})")
    within = abs(t.gap) < margin
    if not t.p_adj < study.alpha:
        t.verdict = INCONCLUSIVE
        t.reason = (f"neither shown within nor beyond ± {margin:g} points of the paper: "
                    f"{interval}{t.note}")
    elif within and _diverged(study.runs(t.a)):
        t.verdict, t.cause = INCONCLUSIVE, DIVERGENCE
        t.reason = f"within the margin, but the recipe diverged in some runs: {interval}{t.note}"
    elif within:
        t.verdict, t.reason = REPRODUCED, f"shown within ± {margin:g} points: {interval}{t.note}"
    else:
        sel = study.runs(t.a)
        if claim.get("scale") and not sel["at_scale"].astype(bool).all():
            t.verdict, t.cause = INCONCLUSIVE, SCALE
            t.reason = (f"beyond the margin, but the runs train below the paper's budget "
                        f"({_budget(sel)}), which cannot refute a number reached at its full "
                        f"budget: {interval}{t.note}")
        elif claim.get("scale") and sel["still_rising"].astype(bool).any():
            t.verdict, t.cause = INCONCLUSIVE, SCALE
            t.reason = f"beyond the margin, but the validation curve is still rising: {interval}{t.note}"
        else:
            t.verdict = NOT_REPRODUCED
            t.reason = f"shown beyond ± {margin:g} points: {interval}{t.note}"


# ---------------------------------------------------------------- comparisons
def _mcnemar(study: _Study, ra: dict, rb: dict, seeds) -> str:
    if not study.predictions:
        return "per-image predictions missing"
    better = worse = 0
    for seed in seeds:
        ia, ib = int(np.flatnonzero(ra["seed"] == seed)[0]), int(np.flatnonzero(rb["seed"] == seed)[0])
        pa = study.predictions.get((ra["run_id"][ia], ra["model"][ia]))
        pb = study.predictions.get((rb["run_id"][ib], rb["model"][ib]))
        if pa is None or pb is None:
            return "per-image predictions missing"
        (ya, ha), (yb, hb) = pa, pb
        if len(ya) != len(yb) or not np.array_equal(ya, yb):
            raise CnnoptError(f"{ra['run_id'][ia]} and {rb['run_id'][ib]} were not scored on the "
                              "same test images")
        ok_a, ok_b = ha == ya, hb == yb
        better += int(np.sum(ok_a & ~ok_b))
        worse += int(np.sum(~ok_a & ok_b))
    p = stats.binomtest(better, better + worse).pvalue if better + worse else 1.0
    return (f"{better} vs {worse} discordant images over {len(seeds)} seed pair(s), exact "
            f"McNemar p = {p:.3g}")


def _pair_setup(study: _Study, claim: dict, a: str, b: str) -> Test:
    """A comparison's own runs: the per-seed differences on common seeds (or the two arms'
    runs, for Welch), censoring, divergence and the McNemar counts; no test yet."""
    test = Test(claim, a, b)
    metric = claim["metric"]
    sign = 1.0 if claim["better"] == "higher" else -1.0
    ra, rb = study.runs(a), study.runs(b)
    ya, yb = ra[metric].astype(float), rb[metric].astype(float)
    missing = [x for x, r in ((a, ra), (b, rb)) if not len(r["seed"])]
    if missing:
        test.status, test.reason = UNTESTED, "; ".join(_no_runs(x) for x in missing)
        test.cause = MISSING
        return test
    test.note = _diverged_note([ra, rb])
    empty = [x for x, y in ((a, ya), (b, yb)) if not np.isfinite(y).any()]
    if empty:
        test.status, test.cause = "no_test", DIVERGENCE
        test.reason = "; ".join(f"no run of {x} has a {METRICS[metric]['label']} (diverged or "
                                "missing)" for x in empty)
        return test
    censored = METRICS[metric]["censored"]
    test.censored_a = censored and bool(ra["censored"].astype(bool).any())
    test.censored_b = censored and bool(rb["censored"].astype(bool).any())
    fa, fb = np.isfinite(ya), np.isfinite(yb)
    seeds, ia, ib = np.intersect1d(ra["seed"][fa], rb["seed"][fb], return_indices=True)
    if len(seeds) >= 2:
        test.diffs = sign * (ya[fa][ia] - yb[fb][ib])
        test.n = len(seeds)
        test.std = float(np.std(test.diffs, ddof=1))
        test.estimate = float(np.mean(test.diffs))
        if metric == "accuracy":
            test.mcnemar = _mcnemar(study, ra, rb, seeds)
    else:  # Welch on each arm's own runs
        test.runs_a, test.runs_b = sign * ya[fa], sign * yb[fb]
        test.n = int(min(fa.sum(), fb.sum()))
        test.estimate = float(np.mean(test.runs_a) - np.mean(test.runs_b))
    return test


def _contrast_prior(study: _Study, metric: str, a: str, b: str) -> model.Prior:
    """The prior of a comparison's per-seed differences: the sum of the two arms' strata
    priors, the variance of a difference of two runs that share no luck (the benefit of
    pairing is not assumed: it comes from the comparison's own differences alone)."""
    pa = study.arm_prior(metric, study.stratum(a), without=a)
    pb = study.arm_prior(metric, study.stratum(b), without=b)
    if not (pa.df > 0 and pb.df > 0):
        return model.Prior()
    where = study.stratum(a) if study.stratum(a) == study.stratum(b) else \
        f"{study.stratum(a)} + {study.stratum(b)}"
    return model.Prior(pa.var + pb.var, min(pa.df, pb.df), pa.units + pb.units,
                       f"; two runs of the {where} arms' prior", pa.outlier, pa.full)


def _pair_test(study: _Study, t: Test) -> None:
    metric = t.claim["metric"]
    if t.diffs is not None:
        prior = _contrast_prior(study, metric, t.a, t.b)
        c = model.paired(t.diffs, prior)
        t.prior_df = prior.df
    else:
        pa = study.arm_prior(metric, study.stratum(t.a), without=t.a)
        pb = study.arm_prior(metric, study.stratum(t.b), without=t.b)
        c = model.welch(t.runs_a, t.runs_b, pa, pb)
        t.prior_df = min(pa.df, pb.df)
    t.how, t.var = c.how, c.var
    if not (c.df > 0 and c.se > 0):
        t.status = "no_test"
        t.reason = ("no spread between the runs' results to test with" if c.df > 0 else
                    "one run per arm and no prior from other comparisons: nothing to estimate "
                    "the seed spread with")
        return
    t.p, t.ci = c.test(study.rules.confidence)
    t.estimate, t.se, t.df = c.estimate, c.se, c.df


def _decide_pair(study: _Study, t: Test) -> None:
    conf = study.rules.confidence
    unit = METRICS[t.claim["metric"]]["unit"]
    text = (f"{conf:.0%} interval [{t.ci[0]:+.2f}, {t.ci[1]:+.2f}] {unit}".rstrip()
            + f", adjusted p = {t.p_adj:.3g}")
    per_seed = ", ".join(f"{d:+.2f}" for d in t.diffs) if t.diffs is not None else ""
    note = t.note
    if not t.p_adj < study.alpha:
        t.verdict, t.reason = INCONCLUSIVE, f"no difference shown after Holm's correction: {text}{note}"
        return
    favours_a = t.estimate > 0
    winner = study.runs(t.a if favours_a else t.b)
    if _diverged(winner):
        t.verdict, t.cause = INCONCLUSIVE, DIVERGENCE
        t.reason = (f"{t.a if favours_a else t.b} diverged in {_diverged(winner)} of "
                    f"{len(winner['seed'])} runs: {text}{note}")
    elif favours_a and t.censored_a:
        t.verdict, t.cause = INCONCLUSIVE, CENSORING
        t.reason = f"{t.a} has runs that never reached the target (censored): {text}{note}"
    elif not favours_a and t.censored_b:
        t.verdict, t.cause = INCONCLUSIVE, CENSORING
        t.reason = f"{t.b} has runs that never reached the target (censored): {text}{note}"
    elif t.diffs is not None and not (np.all(t.diffs > 0) if favours_a else np.all(t.diffs < 0)):
        t.verdict = INCONCLUSIVE
        t.reason = f"the seeds disagree (per-seed differences {per_seed}): {text}{note}"
    else:
        t.verdict = REPRODUCED if favours_a else CONTRADICTED
        agree = f"every seed agrees ({per_seed})" if t.diffs is not None else "unpaired runs"
        t.reason = f"{text}; {agree}{note}"


# ---------------------------------------------------------------- power
def _power(study: _Study, t: Test, family_size: int) -> tuple[float, float, int | None]:
    """(power to reproduce a value at the paper's number, smallest detectable difference of a
    comparison, seeds that would decide the claim), at the family's level divided by its size."""
    if t.status != "ok" or not family_size:
        return math.nan, math.nan, None
    alpha = study.power_level / family_size
    want, cap, n = study.rules.power, study.seeds_cap, t.n
    if t.b is None:  # a value
        margin = study.rules.margin
        reach = math.nan if study.seeds_only else power.tost_power(0.0, t.se, t.df, margin, alpha)

        def decided(m: int) -> bool:
            se, df = math.sqrt(t.var / m + t.var), t.prior_df + m - 1
            return max(power.tost_power(t.gap, se, df, margin, alpha),
                       power.beyond_power(t.gap, se, df, margin, alpha)) >= want

        seeds = next((m for m in range(max(n + 1, 2), cap + 1) if decided(m)), None)
        return reach, math.nan, seeds
    detect = math.nan if study.seeds_only else power.detectable(t.se, t.df, alpha, want)
    if t.diffs is not None:
        se_at, df_at = (lambda m: math.sqrt(t.var / m)), (lambda m: t.prior_df + m - 1)
    else:
        se_at, df_at = (lambda m: t.se * math.sqrt(n / m)), (lambda m: t.df + 2 * (m - n))
    return math.nan, detect, power.seeds_to_decide(t.estimate, se_at, df_at, alpha, want, n + 1, cap)


# ---------------------------------------------------------------- claims
def holm(pvalues: list[float], alpha: float) -> np.ndarray:
    """Holm's step-down adjusted p-values (``statsmodels``' ``multipletests``). Its Holm branch
    ends with ``gc.collect()``, a walk over every object of the process: a quarter of a second
    once TensorFlow is imported, per family. The heap is frozen around the call, so that the
    walk sees only the objects the call made."""
    gc.freeze()
    try:
        return multipletests(pvalues, alpha=alpha, method="holm")[1]
    finally:
        gc.unfreeze()


def _budget(runs: dict) -> str:
    epochs = sorted({int(e) for e in runs["epochs"].astype(float) if math.isfinite(e)})
    return ", ".join(map(str, epochs)) + " epochs" if epochs else "unknown epochs"


def _scale(study: _Study, claim: dict) -> tuple[str, str]:
    sel = [study.runs(arm) for arm in arms(claim)]
    below = {"epochs": np.concatenate([r["epochs"][~r["at_scale"].astype(bool)] for r in sel])}
    if not len(below["epochs"]):
        return "paper", ""
    return f"reduced ({_budget(below)})", f" at {_budget(below)}"


def _row(claim: dict, **values) -> dict:
    row = {c: math.nan for c in COLUMNS}
    row.update(id=claim["id"], family=claim["family"], kind=claim["kind"], claim=claim["claim"],
               where=claim["where"], metric=claim["metric"], paper=claim.get("paper", math.nan),
               test="", reason="", mcnemar="", runs=", ".join(arms(claim)), seeds_to_decide=pd.NA)
    row.update(values)
    return row


def _test_name(claim: dict, shown: Test, margin: float) -> str:
    if claim["kind"] == "value":
        return f"TOST ± {margin:g} points; {shown.how}"
    return f"{METRICS[claim['metric']]['label']}: {shown.how}"


def _claim_row(study: _Study, claim: dict, tests: list[Test], family_size: int) -> dict:
    scale, at = _scale(study, claim)
    untested = [t for t in tests if t.status == UNTESTED]
    if untested:
        return _row(claim, verdict=UNTESTED, verdict_text=UNTESTED, scale=scale,
                    reason="; ".join(t.reason for t in untested), open_because=MISSING)
    verdicts = [t.verdict for t in tests]
    if claim["kind"] == "top":
        if all(v == REPRODUCED for v in verdicts):
            verdict = REPRODUCED
        elif CONTRADICTED in verdicts:
            verdict = CONTRADICTED
        else:
            verdict = INCONCLUSIVE
        shown = min(tests, key=lambda t: t.estimate if math.isfinite(t.estimate) else math.inf)
        if verdict == REPRODUCED:
            p_adj = max(t.p_adj for t in tests)
        elif verdict == CONTRADICTED:
            p_adj = min(t.p_adj for t in tests if t.verdict == CONTRADICTED)
        else:
            p_adj = shown.p_adj
        detail = "; ".join(f"{t.a.split('/')[0]} vs {t.b.split('/')[0]}: {t.verdict}" for t in tests)
        reason = f"{detail}. Closest, {shown.a} vs {shown.b}: {shown.reason}"
    else:
        shown = tests[0]
        verdict, p_adj, reason = shown.verdict, shown.p_adj, shown.reason
    # why it stays open: a pair that blocks the verdict for another reason than the spread
    blocked = [t.cause for t in tests if t.verdict != REPRODUCED and t.cause != SPREAD]
    cause = (blocked[0] if blocked else SPREAD) if verdict == INCONCLUSIVE else ""
    if study.seeds_only and verdict != INCONCLUSIVE:
        family_size = 0  # decided: no seeds to decide to search for
    reach, detect, seeds = _power(study, shown, family_size)
    text = verdict + (at if verdict in (REPRODUCED, CONTRADICTED, NOT_REPRODUCED) else "")
    return _row(claim, ours=shown.estimate, std=shown.std, n=shown.n, ci_low=shown.ci[0],
                ci_high=shown.ci[1], within=shown.within,
                test=_test_name(claim, shown, study.rules.margin) if shown.how else "",
                p_value=shown.p, p_adjusted=p_adj, verdict=verdict, verdict_text=text,
                scale=scale, reason=reason, power=reach, detectable=detect,
                seeds_to_decide=(seeds if seeds is not None else pd.NA)
                if verdict == INCONCLUSIVE and shown.status == "ok" else pd.NA,
                open_because=cause, mcnemar=shown.mcnemar)


def judge(claims: list[dict], runs: pd.DataFrame, predictions: dict | None = None,
          rules=None, scale: str = "reduced", with_power: bool | str = True,
          power_level: float | None = None, seeds_cap: int | None = None) -> pd.DataFrame:
    """One row per claim (``COLUMNS``): the paper's value, ours, the interval, raw and
    adjusted p, verdict, power and the number of seeds that would decide it.

    ``runs`` is the per-run table (``runs.read_runs(...).table`` with the curve facts of
    ``metrics.with_curve_facts``; at least ``RUN_COLUMNS``, accuracies in %); ``predictions``
    maps (run id, "last" or "best") to the (labels, predictions) arrays of the test set (the
    McNemar column); ``rules`` the config's ``verdicts`` block or a ``Rules``; ``scale`` the
    config's, for roles without a paper budget. Without ``with_power`` the power columns are
    left empty; with ``with_power="seeds"`` only seeds to decide is computed, for the open
    claims (what ``judge.sequential`` plans with). The power columns are at ``power_level``
    (default: the rules' level) divided by the family's size, seeds to decide searched up to
    ``seeds_cap`` (default ``verdicts.max_seeds``).
    """
    frame = pd.DataFrame(_rows(claims, runs, predictions, rules, scale, with_power,
                               power_level, seeds_cap), columns=COLUMNS)
    frame["seeds_to_decide"] = frame["seeds_to_decide"].astype("Int64")
    frame["n"] = pd.to_numeric(frame["n"], errors="coerce").astype("Int64")
    return frame


def verdicts(claims: list[dict], runs, rules=None, scale: str = "reduced") -> list[str]:
    """The verdict of each claim, as ``judge`` gives it without power, without building the
    claims table: what the simulations of ``judge.calibration`` count. ``runs`` as ``judge``'s,
    or a mapping of its columns to arrays (``metrics.columns_of``)."""
    return [row["verdict"] for row in _rows(claims, runs, None, rules, scale, False)]


def _rows(claims, runs, predictions, rules, scale, with_power, power_level=None,
          seeds_cap=None) -> list[dict]:
    """``judge``'s rows, one dict per claim."""
    runs = columns_of(runs)
    missing = [c for c in RUN_COLUMNS if c not in runs]
    if missing:
        raise CnnoptError(f"the runs table lacks column(s) {', '.join(missing)} to judge the claims")
    rules = Rules.of(rules)
    claims = [with_defaults(c) for c in claims]
    absent = sorted({c["metric"] for c in claims} - set(runs) - {"accuracy"})
    if absent:
        raise CnnoptError(f"the runs table lacks column(s) {', '.join(absent)} that claims "
                          "measure (cnnopt.judge.metrics.with_curve_facts adds the curve facts)")
    study = _Study(measure_columns(runs, rules, scale), rules, predictions)
    study.seeds_only = with_power == "seeds"
    study.power_level = study.alpha if power_level is None else float(power_level)
    study.seeds_cap = rules.max_seeds if seeds_cap is None else int(seeds_cap)
    tests = {c["id"]: ([_value_test(study, c)] if c["kind"] == "value"
                       else [_pair_setup(study, c, a, b) for a, b in pairs(c)]) for c in claims}
    flat = [t for c in claims for t in tests[c["id"]]]
    for t in flat:
        if t.b is not None and t.status == "ok":
            _pair_test(study, t)
    sizes = {}
    for family in dict.fromkeys([*FAMILIES, *(c["family"] for c in claims)]):
        members = [t for c in claims if c["family"] == family for t in tests[c["id"]]
                   if t.status == "ok" and math.isfinite(t.p)]
        sizes[family] = len(members)
        if members:
            adjusted = holm([t.p for t in members], study.alpha)
            for t, p in zip(members, adjusted, strict=True):
                t.p_adj = float(p)
    for t in flat:
        if t.status == "no_test":
            t.verdict = INCONCLUSIVE
        elif t.status == "ok":
            (_decide_value if t.b is None else _decide_pair)(study, t)
    rows = [_claim_row(study, c, tests[c["id"]], sizes[c["family"]] if with_power else 0)
            for c in claims]
    # the paper's own difference for a comparison of two arms it reports values for
    reported = {c["run"]: float(c["paper"]) for c in claims if c["kind"] == "value"}
    for claim, row in zip(claims, rows, strict=True):
        if claim["kind"] == "greater" and claim["metric"] == "accuracy" \
                and claim["a"] in reported and claim["b"] in reported:
            row["paper"] = reported[claim["a"]] - reported[claim["b"]]
    return rows


def strata(runs: pd.DataFrame, rules=None, scale: str = "reduced") -> pd.DataFrame:
    """Per stratum of the study: its roles, arms, runs and seeds, the prior of its arms' own
    variances of test accuracy (sd and degrees of freedom, ``model.fit_prior``) and the range
    of the arms' own sds (descriptive: with two seeds one sd rests on one degree of freedom)."""
    rules = Rules.of(rules)
    cols = measure_columns(runs, rules, scale)
    m = pd.DataFrame(cols)
    study = _Study(cols, rules, None)
    rows = []
    for name, frame in m.groupby("stratum", sort=False):
        own = frame.dropna(subset=["accuracy"]).groupby("arm", sort=False)["accuracy"].std(ddof=1).dropna()
        prior = study.arm_prior("accuracy", name)
        rows.append({"stratum": name, "roles": ", ".join(dict.fromkeys(frame["role"])),
                     "arms": frame["arm"].nunique(), "runs": len(frame),
                     "seeds": frame["seed"].nunique(),
                     "prior_sd": math.sqrt(prior.var) if prior.df > 0 else math.nan,
                     "prior_df": prior.df if prior.df > 0 else math.nan,
                     "own_sd_min": own.min() if len(own) else math.nan,
                     "own_sd_median": own.median() if len(own) else math.nan,
                     "own_sd_max": own.max() if len(own) else math.nan,
                     "noisiest_arm": own.idxmax() if len(own) else ""})
    return pd.DataFrame(rows, columns=STRATA_COLUMNS)
