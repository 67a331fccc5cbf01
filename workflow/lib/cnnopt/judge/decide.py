"""The verdict on each claim: elementary tests, Holm's correction per family, decision rules.

The rules are declared in the config's ``verdicts`` block before any result exists
(``config/README.md``, "Verdicts"); the model is ``judge.model``'s.

* **value** (the paper reports a number for an arm): the paper's number is one run of its
  recipe, so it is compared with the *prediction interval of one run* of ours (unpaired model,
  the seed's variance included). Two one-sided tests (TOST) at ± ``margin`` points: the claim
  is *reproduced* when our recipe is shown to lie within the margin of the paper's number,
  *not reproduced* when it is shown to lie beyond it with the runs at the paper's budget and
  converged (a reduced budget or a still-rising curve make that *inconclusive*), and
  *inconclusive* when neither is shown.
* **greater** (arm A beats arm B on a metric): the paired model's contrast A - B (the seed a
  block; fitted on the runs of the strata of A and B), two-sided t. *Reproduced* when the Holm-adjusted p is below 1 - ``confidence``, the
  estimate favours A **and** every seed's own difference does; *contradicted* the same way for
  B; otherwise *inconclusive*. A run that never reaches the validation target is censored at
  its budget, which can only shrink a difference: a censored run of A forbids *reproduced*,
  one of B forbids *contradicted*. The exact McNemar counts of the per-image predictions,
  pooled over the seed pairs, are shown beside the verdict (descriptive only).
* **top** (each of the members beats each of the others): every pair is an elementary test
  of the family; the claim is *reproduced* when every pair is, *contradicted* when any pair
  is (on corrected evidence), *inconclusive* otherwise.

Each claim belongs to a family (values, adjustments, ingredients, ranking, speed, curves);
Holm's step-down (``statsmodels.stats.multitest.multipletests``) runs within each family over
its elementary tests. A verdict of runs below the paper's budget (``verdicts.paper_epochs``) is
worded with that budget ("contradicted at 8 epochs").
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from cnnopt.common.errors import CnnoptError
from cnnopt.judge import model, power
from cnnopt.judge.claims import arms, pairs, with_defaults
from cnnopt.judge.metrics import METRICS, columns_of, measure, measure_columns
from cnnopt.judge.verdicts import (
    CONTRADICTED,
    FAMILIES,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    UNTESTED,
    merged,
)

#: The columns of ``claims.csv``.
COLUMNS = ["id", "family", "kind", "claim", "where", "metric", "paper", "ours", "std", "n",
           "ci_low", "ci_high", "test", "p_value", "p_adjusted", "verdict", "verdict_text",
           "scale", "reason", "detectable", "seeds_to_decide", "mcnemar", "runs"]

#: The columns of the per-run table the judges read (``runs.read_runs(...).table``).
RUN_COLUMNS = ("run_id", "optimizer", "variant", "seed", "role", "test_accuracy", "diverged",
               "epochs", "epochs_run")

#: The columns of ``strata.csv``: the model's pooled spread of test accuracy per stratum.
STRATA_COLUMNS = ["stratum", "roles", "arms", "runs", "seeds", "sd_paired", "df_paired",
                  "sd_unpaired", "df_unpaired", "variance_test", "variance_p"]


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
    verdict: str = INCONCLUSIVE
    extra: dict = field(default_factory=dict)


class _Study:
    """The measured runs of one judging as arrays per arm (sorted by seed), and the model
    fits (cached per metric, strata and form)."""

    def __init__(self, measured: dict[str, np.ndarray], rules: dict, predictions: dict):
        self.rules = rules
        self.alpha = 1 - rules["confidence"]
        self.predictions = predictions or {}
        self.cols = measured
        codes, names = pd.factorize(measured["arm"], sort=False)
        order = np.lexsort((measured["seed"], codes))  # by arm, then seed (stable)
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        by_arm = {c: v[order] for c, v in measured.items()}
        self._arms = {name: {c: v[bounds[i]:bounds[i + 1]] for c, v in by_arm.items()}
                      for i, name in enumerate(names)}
        self._empty = {c: v[:0] for c, v in measured.items()}
        self._fits: dict = {}

    def runs(self, arm: str) -> dict[str, np.ndarray]:
        """The columns of ``arm``'s runs, sorted by seed (empty arrays for an absent arm)."""
        return self._arms.get(arm, self._empty)

    def fit(self, metric: str, strata: frozenset, paired: bool) -> model.Fit:
        key = (metric, strata, paired)
        if key not in self._fits:
            rows = np.isin(self.cols["stratum"], list(strata))
            self._fits[key] = model.fit_arrays(self.cols["arm"][rows], self.cols["seed"][rows].astype(float),
                                               self.cols[metric][rows].astype(float), paired)
        return self._fits[key]


def _no_runs(arm: str) -> str:
    return (f"no runs of {arm} in this study's grid (config/paper.yaml runs every twin the "
            "claims need)")


def _no_variance(fit: model.Fit) -> str:
    if fit.df <= 0:
        return "one run per arm: no residual degrees of freedom to estimate the seed spread"
    return "no spread between the runs' results to test with"


def _diverged(runs: dict) -> int:
    return int(runs["diverged"].astype(bool).sum())


def _diverged_note(arms_runs) -> str:
    total = sum(len(r["diverged"]) for r in arms_runs)
    k = sum(_diverged(r) for r in arms_runs)
    return f"; {k} of {total} runs diverged (left out of the model)" if k else ""


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
        return test
    test.n = len(acc)
    test.std = float(np.std(acc, ddof=1)) if len(acc) > 1 else math.nan
    test.estimate = float(acc.mean())
    fit = study.fit("accuracy", frozenset(sel["stratum"].tolist()), paired=False)
    if not fit.usable:
        test.status, test.reason = "no_test", _no_variance(fit)
        return test
    mean, se = fit.prediction(arm)
    margin, paper = study.rules["margin"], float(claim["paper"])
    gap = paper - mean
    df = fit.df
    # two one-sided tests: within the margin (both must reject), beyond it (either side)
    p_within = max(model.t_sf((gap + margin) / se, df), model.t_sf((margin - gap) / se, df))
    p_beyond = min(1.0, 2 * min(model.t_sf((gap - margin) / se, df),
                                model.t_sf(-(gap + margin) / se, df)))
    q = model.t_ppf(1 - study.alpha, df)
    test.estimate, test.se, test.df = mean, se, df
    test.ci = (mean - q * se, mean + q * se)
    test.extra = {"gap": gap, "within": abs(gap) < margin, "cov": float(fit.cov[fit.index(arm), fit.index(arm)]),
                  "scale": fit.scale, "arms": len(fit.arms),
                  "note": _diverged_note([sel])}
    test.p = float(p_within if abs(gap) < margin else p_beyond)
    return test


def _decide_value(study: _Study, t: Test) -> None:
    claim, margin = t.claim, study.rules["margin"]
    conf = 1 - 2 * study.alpha
    interval = (f"the paper's {float(claim['paper']):.2f} against our {conf:.0%} prediction "
                f"interval for one run [{t.ci[0]:.2f}, {t.ci[1]:.2f}] (margin ± {margin:g}, "
                f"adjusted p = {t.p_adj:.3g})")
    note = t.extra.get("note", "")
    if not t.p_adj < study.alpha:
        t.verdict = INCONCLUSIVE
        t.reason = (f"neither shown within nor beyond ± {margin:g} points of the paper: "
                    f"{interval}{note}")
    elif t.extra["within"] and _diverged(study.runs(t.a)):
        t.verdict = INCONCLUSIVE
        t.reason = f"within the margin, but the recipe diverged in some runs: {interval}{note}"
    elif t.extra["within"]:
        t.verdict, t.reason = REPRODUCED, f"shown within ± {margin:g} points: {interval}{note}"
    else:
        sel = study.runs(t.a)
        if claim.get("scale") and not sel["at_scale"].astype(bool).all():
            t.verdict = INCONCLUSIVE
            t.reason = (f"beyond the margin, but the runs train below the paper's budget "
                        f"({_budget(sel)}), which cannot refute a number reached at its full "
                        f"budget: {interval}{note}")
        elif claim.get("scale") and sel["still_rising"].astype(bool).any():
            t.verdict = INCONCLUSIVE
            t.reason = f"beyond the margin, but the validation curve is still rising: {interval}{note}"
        else:
            t.verdict = NOT_REPRODUCED
            t.reason = f"shown beyond ± {margin:g} points: {interval}{note}"


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


def _pair_test(study: _Study, claim: dict, a: str, b: str) -> Test:
    test = Test(claim, a, b)
    metric = claim["metric"]
    sign = 1.0 if claim["better"] == "higher" else -1.0
    ra, rb = study.runs(a), study.runs(b)
    ya, yb = ra[metric].astype(float), rb[metric].astype(float)
    missing = [x for x, r in ((a, ra), (b, rb)) if not len(r["seed"])]
    if missing:
        test.status, test.reason = UNTESTED, "; ".join(_no_runs(x) for x in missing)
        return test
    empty = [x for x, y in ((a, ya), (b, yb)) if not np.isfinite(y).any()]
    if empty:
        test.status = "no_test"
        test.reason = "; ".join(f"no run of {x} has a {METRICS[metric]['label']} (diverged or "
                                "missing)" for x in empty)
        test.extra = {"note": _diverged_note([ra, rb])}
        return test
    seeds, ia, ib = np.intersect1d(ra["seed"][np.isfinite(ya)], rb["seed"][np.isfinite(yb)],
                                   return_indices=True)
    if not len(seeds):
        test.status, test.reason = UNTESTED, f"no runs of {a} and {b} on common seeds"
        return test
    fa, fb = ya[np.isfinite(ya)], yb[np.isfinite(yb)]
    diffs = sign * (fa[ia] - fb[ib])
    test.n = len(seeds)
    test.std = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
    test.extra = {"diffs": diffs, "note": _diverged_note([ra, rb]),
                  "censored_a": METRICS[metric]["censored"] and bool(ra["censored"].astype(bool).any()),
                  "censored_b": METRICS[metric]["censored"] and bool(rb["censored"].astype(bool).any()),
                  "mcnemar": _mcnemar(study, ra, rb, seeds) if metric == "accuracy" else ""}
    fit = study.fit(metric, frozenset(ra["stratum"].tolist()) | frozenset(rb["stratum"].tolist()),
                    paired=True)
    test.estimate = float(np.mean(diffs))
    if not fit.usable:
        test.status, test.reason = "no_test", _no_variance(fit)
        return test
    est, se = fit.contrast(a, b)
    est *= sign
    res = model.t_test(est, se, fit.df, study.rules["confidence"])
    test.estimate, test.se, test.df, test.p = est, se, fit.df, res["p_value"]
    test.ci = (res["ci_low"], res["ci_high"])
    test.extra["arms"] = len(fit.arms)
    return test


def _decide_pair(study: _Study, t: Test) -> None:
    conf = study.rules["confidence"]
    unit = METRICS[t.claim["metric"]]["unit"]
    text = (f"{conf:.0%} interval [{t.ci[0]:+.2f}, {t.ci[1]:+.2f}] {unit}".rstrip()
            + f", adjusted p = {t.p_adj:.3g}")
    diffs = t.extra["diffs"]
    per_seed = ", ".join(f"{d:+.2f}" for d in diffs)
    note = t.extra.get("note", "")
    if not t.p_adj < study.alpha:
        t.verdict, t.reason = INCONCLUSIVE, f"no difference shown after Holm's correction: {text}{note}"
        return
    favours_a = t.estimate > 0
    winner = study.runs(t.a if favours_a else t.b)
    if _diverged(winner):
        t.verdict = INCONCLUSIVE
        t.reason = (f"{t.a if favours_a else t.b} diverged in {_diverged(winner)} of "
                    f"{len(winner['seed'])} runs: {text}{note}")
    elif favours_a and t.extra["censored_a"]:
        t.verdict = INCONCLUSIVE
        t.reason = f"{t.a} has runs that never reached the target (censored): {text}{note}"
    elif not favours_a and t.extra["censored_b"]:
        t.verdict = INCONCLUSIVE
        t.reason = f"{t.b} has runs that never reached the target (censored): {text}{note}"
    elif not (np.all(diffs > 0) if favours_a else np.all(diffs < 0)):
        t.verdict = INCONCLUSIVE
        t.reason = f"the seeds disagree (per-seed differences {per_seed}): {text}{note}"
    else:
        t.verdict = REPRODUCED if favours_a else CONTRADICTED
        t.reason = f"{text}; every seed agrees ({per_seed}){note}"


# ---------------------------------------------------------------- power
def _power(study: _Study, t: Test, family_size: int) -> tuple[float, int | None]:
    if t.status != "ok" or not family_size:
        return math.nan, None
    alpha = study.alpha / max(family_size, 1)
    want, cap = study.rules["power"], study.rules["max_seeds"]
    n = t.n
    if t.b is None:  # a value: one-sided tests against the margin
        margin = study.rules["margin"]
        detect = margin + power.detectable(t.se, t.df, alpha, want, two_sided=False)
        effect = abs(abs(t.extra["gap"]) - margin)
        cov, scale, k = t.extra["cov"], t.extra["scale"], t.extra["arms"]
        seeds = power.seeds_to_decide(
            effect, lambda m: math.sqrt(cov * n / m + scale), lambda m: t.df + k * (m - n),
            alpha, want, n + 1, cap, two_sided=False)
    else:
        detect = power.detectable(t.se, t.df, alpha, want)
        k = t.extra["arms"]
        seeds = power.seeds_to_decide(
            t.estimate, lambda m: t.se * math.sqrt(n / m), lambda m: t.df + (k - 1) * (m - n),
            alpha, want, n + 1, cap)
    return detect, seeds


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


def _test_name(claim: dict, margin: float, conf: float) -> str:
    if claim["kind"] == "value":
        return f"TOST ± {margin:g} points, {1 - 2 * (1 - conf):.0%} prediction interval of one run"
    return f"paired t contrast (OLS arm + seed), {METRICS[claim['metric']]['label']}"


def _claim_row(study: _Study, claim: dict, tests: list[Test], family_size: int) -> dict:
    scale, at = _scale(study, claim)
    untested = [t for t in tests if t.status == UNTESTED]
    if untested:
        return _row(claim, verdict=UNTESTED, verdict_text=UNTESTED, scale=scale,
                    reason="; ".join(t.reason for t in untested))
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
    detect, seeds = _power(study, shown, family_size)
    text = verdict + (at if verdict in (REPRODUCED, CONTRADICTED, NOT_REPRODUCED) else "")
    return _row(claim, ours=shown.estimate, std=shown.std, n=shown.n, ci_low=shown.ci[0],
                ci_high=shown.ci[1], test=_test_name(claim, study.rules["margin"],
                                                      study.rules["confidence"]),
                p_value=shown.p, p_adjusted=p_adj, verdict=verdict, verdict_text=text,
                scale=scale, reason=reason, detectable=detect,
                seeds_to_decide=(seeds if seeds is not None else pd.NA)
                if verdict == INCONCLUSIVE and shown.status == "ok" else pd.NA,
                mcnemar=shown.extra.get("mcnemar", ""))


def judge(claims: list[dict], runs: pd.DataFrame, predictions: dict | None = None,
          rules: dict | None = None, scale: str = "reduced", with_power: bool = True) -> pd.DataFrame:
    """One row per claim (``COLUMNS``): the paper's value, ours, the interval, raw and
    adjusted p, verdict, power and the number of seeds that would decide it.

    ``runs`` is the per-run table (``runs.read_runs(...).table``; at least ``RUN_COLUMNS``,
    accuracies in %); ``predictions`` maps (run id, "last" or "best") to the (labels,
    predictions) arrays of the test set (the McNemar column); ``rules`` is the config's
    ``verdicts`` block; ``scale`` the config's, for roles without a paper budget. Without
    ``with_power`` the power columns are left empty.
    """
    frame = pd.DataFrame(_rows(claims, runs, predictions, rules, scale, with_power),
                         columns=COLUMNS)
    frame["seeds_to_decide"] = frame["seeds_to_decide"].astype("Int64")
    frame["n"] = pd.to_numeric(frame["n"], errors="coerce").astype("Int64")
    return frame


def verdicts(claims: list[dict], runs, rules: dict | None = None,
             scale: str = "reduced") -> list[str]:
    """The verdict of each claim, as ``judge`` gives it without power, without building the
    claims table: what the simulations of ``judge.calibration`` count. ``runs`` as ``judge``'s,
    or a mapping of its columns to arrays (``metrics.columns_of``)."""
    return [row["verdict"] for row in _rows(claims, runs, None, rules, scale, False)]


def _rows(claims, runs, predictions, rules, scale, with_power) -> list[dict]:
    """``judge``'s rows, one dict per claim."""
    runs = columns_of(runs)
    missing = [c for c in RUN_COLUMNS if c not in runs]
    if missing:
        raise CnnoptError(f"the runs table lacks column(s) {', '.join(missing)} to judge the claims")
    rules = merged(rules)
    claims = [with_defaults(c) for c in claims]
    study = _Study(measure_columns(runs, rules, scale), rules, predictions)
    tests = {c["id"]: ([_value_test(study, c)] if c["kind"] == "value"
                       else [_pair_test(study, c, a, b) for a, b in pairs(c)]) for c in claims}
    sizes = {}
    for family in dict.fromkeys([*FAMILIES, *(c["family"] for c in claims)]):
        members = [t for c in claims if c["family"] == family for t in tests[c["id"]]
                   if t.status == "ok" and math.isfinite(t.p)]
        sizes[family] = len(members)
        if members:
            adjusted = holm([t.p for t in members], study.alpha)
            for t, p in zip(members, adjusted, strict=True):
                t.p_adj = float(p)
    for c in claims:
        for t in tests[c["id"]]:
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


def strata(runs: pd.DataFrame, rules: dict | None = None, scale: str = "reduced") -> pd.DataFrame:
    """Per stratum of the study: its roles, arms and runs, the pooled sd of test accuracy of
    the paired and the unpaired model with their degrees of freedom, and the p of a test of
    equal variances across its arms (``model.equal_variances``)."""
    rules = merged(rules)
    m = measure(runs, rules, scale)
    rows = []
    for name, frame in m.groupby("stratum", sort=False):
        paired, unpaired = model.fit(frame, "accuracy", True), model.fit(frame, "accuracy", False)
        test, p = model.equal_variances(frame, "accuracy")
        rows.append({"stratum": name, "roles": ", ".join(dict.fromkeys(frame["role"])),
                     "arms": frame["arm"].nunique(), "runs": len(frame),
                     "seeds": frame["seed"].nunique(),
                     "sd_paired": math.sqrt(paired.scale) if paired.usable else math.nan,
                     "df_paired": paired.df,
                     "sd_unpaired": math.sqrt(unpaired.scale) if unpaired.usable else math.nan,
                     "df_unpaired": unpaired.df, "variance_test": test, "variance_p": p})
    return pd.DataFrame(rows, columns=STRATA_COLUMNS)
