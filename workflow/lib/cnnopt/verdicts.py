"""Judge each of the paper's claims (``claims.yaml``) on the study's runs.

The decision rules are declared in the config's ``verdicts`` block before any result exists
(see ``config/README.md``, "Verdicts"); all statistics come from ``scipy.stats``.

* **value** claims (a number the paper reports): our 95 % interval is the t-interval of the
  mean over seeds, united with the exact (Clopper-Pearson) interval of one run's accuracy on
  the test set. The claim is *reproduced* when the paper's value lies in that interval widened
  by ``tolerance`` points (with at least two seeds, and an interval no wider than
  ± ``max_halfwidth``), *not reproduced* when it lies outside and
  the runs are at the paper's scale and converged, and *inconclusive* otherwise.
* **greater** claims (runs A beat runs B), compared seed by seed on the same test images:
  from ``welch_min_seeds`` seeds on, Welch's t-interval of the difference of means; below,
  the exact McNemar test on the per-image predictions, pooled over the seed pairs, with the
  matching exact interval of the accuracy difference. An interval above 0 is *reproduced*,
  below 0 *contradicted*, otherwise *inconclusive*. With one seed, or a difference smaller
  than the seed spread (the standard deviation of the per-seed differences), the verdict is
  *inconclusive*: the seed spread is unknown or larger than the effect.
* **top** and **faster** claims combine several pairwise comparisons: reproduced when every
  one is, contradicted when any one is, inconclusive otherwise. Convergence speed (epochs to
  the validation target) has no per-image test: it needs ``welch_min_seeds`` seeds.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from .errors import CnnoptError

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
CONTRADICTED, INCONCLUSIVE, UNTESTED = "contradicted", "inconclusive", "untested"
#: Every verdict, in the order the report explains them.
VERDICTS = (REPRODUCED, NOT_REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED)
KINDS = ("value", "greater", "top", "faster")

#: The columns of ``claims.csv``.
COLUMNS = ["id", "claim", "where", "kind", "paper", "ours", "std", "n", "ci_low", "ci_high",
           "test", "p_value", "verdict", "reason", "runs"]

#: The columns of the per-run table the judges read.
RUN_COLUMNS = ("run_id", "optimizer", "variant", "seed", "role", "test_accuracy", "n_test",
               "diverged", "still_rising", "epochs_to_target", "epochs_run")

DEFAULT_RULES = {"confidence": 0.95, "tolerance": 1.0, "max_halfwidth": 3.0, "welch_min_seeds": 3,
                 "val_target": 70.0, "rising_epochs": 3, "rising_points": 0.5}


def load_claims(text: str | None = None) -> list[dict]:
    """The claims of ``claims.yaml`` (or of ``text``), checked for the keys each kind needs."""
    if text is None:
        text = resources.files(__package__).joinpath("claims.yaml").read_text(encoding="utf-8")
    claims = yaml.safe_load(text)
    needs = {"value": ("paper", "run"), "greater": ("a", "b"), "top": ("members", "others"),
             "faster": ("a", "others")}
    seen = set()
    for c in claims:
        if c.get("kind") not in needs:
            raise CnnoptError(f"claim {c.get('id')!r}: kind must be one of {', '.join(KINDS)}")
        missing = [k for k in ("id", "claim", "where", *needs[c["kind"]]) if k not in c]
        if missing:
            raise CnnoptError(f"claim {c.get('id')!r}: missing {', '.join(missing)}")
        if c["id"] in seen:
            raise CnnoptError(f"claim id {c['id']!r} appears twice")
        seen.add(c["id"])
    return claims


def arms(claim: dict) -> list[str]:
    """Every optimizer/variant the claim reads."""
    keys = {"value": ("run",), "greater": ("a", "b"), "top": ("members", "others"),
            "faster": ("a", "others")}[claim["kind"]]
    out: list[str] = []
    for k in keys:
        out += claim[k] if isinstance(claim[k], list) else [claim[k]]
    return out


def _runs_of(runs: pd.DataFrame, arm: str) -> pd.DataFrame:
    optimizer, variant = arm.split("/")
    sel = runs[(runs["optimizer"] == optimizer) & (runs["variant"] == variant)]
    return sel.sort_values("seed")


def _row(claim: dict, **values) -> dict:
    row = {c: math.nan for c in COLUMNS}
    row.update(id=claim["id"], claim=claim["claim"], where=claim["where"], kind=claim["kind"],
               paper=claim.get("paper", math.nan), test="", reason="",
               runs=", ".join(arms(claim)))
    row.update(values)
    return row


def _diverged_note(frames) -> str:
    total = sum(len(f) for f in frames)
    k = int(sum(f["diverged"].astype(bool).sum() for f in frames))
    return f"; {k} of {total} runs diverged (counted in the means)" if k else ""


def value_interval(acc: np.ndarray, n_test: int, confidence: float) -> tuple[float, float]:
    """Our interval (percent) for a mean test accuracy ``acc`` (percent, one per seed)."""
    mean = float(np.mean(acc))
    hits = int(round(mean / 100 * n_test))
    ci = stats.binomtest(hits, n_test).proportion_ci(confidence_level=confidence, method="exact")
    low, high = 100 * ci.low, 100 * ci.high
    if len(acc) >= 2 and np.std(acc) > 0:
        t_low, t_high = stats.t.interval(confidence, len(acc) - 1, loc=mean, scale=stats.sem(acc))
        low, high = min(low, t_low), max(high, t_high)
    return max(float(low), 0.0), min(float(high), 100.0)  # an accuracy lies in [0, 100]


def judge_value(claim: dict, runs: pd.DataFrame, predictions: dict, rules: dict, scale: str) -> dict:
    sel = _runs_of(runs, claim["run"])
    if sel.empty or sel["test_accuracy"].isna().all():
        return _row(claim, verdict=UNTESTED, reason=f"no runs of {claim['run']} in the study")
    acc = sel["test_accuracy"].dropna().to_numpy(float)
    n = len(acc)
    note = _diverged_note([sel])
    values = dict(ours=float(acc.mean()), std=float(np.std(acc, ddof=1)) if n > 1 else math.nan, n=n)
    n_tests = sel["n_test"].dropna()
    if n_tests.empty:  # the binomial interval needs the number of test images
        return _row(claim, **values, verdict=INCONCLUSIVE,
                    reason=f"the test-set size of the {claim['run']} runs is unknown (their "
                           f"evaluation.json has no confusion matrix or labels){note}")
    low, high = value_interval(acc, int(n_tests.min()), rules["confidence"])
    tol, paper = rules["tolerance"], float(claim["paper"])
    inside = low - tol <= paper <= high + tol
    values |= dict(ci_low=low, ci_high=high, test=f"t over seeds ∪ exact binomial, ± {tol:g}")
    where = f"the paper's {paper:.2f} lies {'inside' if inside else 'outside'} [{low:.2f}, {high:.2f}] ± {tol:g}"
    if n < 2:
        return _row(claim, **values, verdict=INCONCLUSIVE, reason=f"one seed: {where}{note}")
    half = (high - low) / 2
    if inside and half > rules["max_halfwidth"]:
        return _row(claim, **values, verdict=INCONCLUSIVE,
                    reason=f"our interval is too wide to tell (± {half:.2f} > {rules['max_halfwidth']:g} "
                           f"points): {where}{note}")
    if inside:
        return _row(claim, **values, verdict=REPRODUCED, reason=f"{where}{note}")
    if claim.get("scale") and scale != "paper":
        return _row(claim, **values, verdict=INCONCLUSIVE,
                    reason=f"reduced scale (the final runs are far below the paper's budget): {where}{note}")
    if claim.get("scale") and sel["still_rising"].astype(bool).any():
        return _row(claim, **values, verdict=INCONCLUSIVE,
                    reason=f"validation curve still rising at the last epoch: {where}{note}")
    return _row(claim, **values, verdict=NOT_REPRODUCED, reason=f"{where}{note}")


def compare(runs: pd.DataFrame, a: str, b: str, predictions: dict, rules: dict,
            metric: str = "test_accuracy", larger_is_better: bool = True) -> dict:
    """Paired comparison of arms ``a`` and ``b``: does ``a`` beat ``b``?

    Returns the verdict, the mean difference (a − b, oriented so that > 0 favours ``a``), its
    interval, the test used and the reason. ``predictions`` maps a run id to a pair of arrays
    (labels, predicted classes) on the test set.
    """
    ra, rb = _runs_of(runs, a), _runs_of(runs, b)
    seeds = sorted(set(ra["seed"].dropna()) & set(rb["seed"].dropna()))
    if not seeds:
        missing = [x for x, r in ((a, ra), (b, rb)) if r.empty]
        return {"verdict": UNTESTED, "reason": f"no runs of {', '.join(missing) or a + ' and ' + b} "
                                               "on common seeds", "n": 0}
    ra = ra.set_index("seed").loc[seeds]
    rb = rb.set_index("seed").loc[seeds]
    sign = 1.0 if larger_is_better else -1.0
    va, vb = ra[metric].to_numpy(float), rb[metric].to_numpy(float)
    diffs = sign * (va - vb)
    n = len(seeds)
    out = {"ours": float(np.mean(diffs)), "std": float(np.std(diffs, ddof=1)) if n > 1 else math.nan,
           "n": n, "note": _diverged_note([ra, rb])}
    conf = rules["confidence"]
    if n >= rules["welch_min_seeds"]:
        if np.isnan(diffs).any():
            return out | {"verdict": INCONCLUSIVE, "reason": f"{metric} missing for some runs"}
        res = stats.ttest_ind(sign * va, sign * vb, equal_var=False)
        ci = res.confidence_interval(confidence_level=conf)
        out |= {"ci_low": float(ci.low), "ci_high": float(ci.high), "p_value": float(res.pvalue),
                "test": f"Welch t over {n} seeds"}
        if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
            return out | {"verdict": INCONCLUSIVE, "reason": "no spread over seeds to test with"}
        return out | _direction(ci.low, ci.high, conf, spread=None)
    if metric != "test_accuracy":
        return out | {"verdict": INCONCLUSIVE, "test": "none",
                      "reason": f"{n} seed(s): {metric} has no per-image test; "
                                f"needs {rules['welch_min_seeds']} seeds for Welch's t"}
    better = worse = total = 0
    for seed in seeds:
        pa, pb = predictions.get(ra.loc[seed, "run_id"]), predictions.get(rb.loc[seed, "run_id"])
        if pa is None or pb is None:
            return out | {"verdict": INCONCLUSIVE, "reason": "per-image predictions missing"}
        (ya, ha), (yb, hb) = pa, pb
        if len(ya) != len(yb) or not np.array_equal(ya, yb):
            raise CnnoptError(f"{ra.loc[seed, 'run_id']} and {rb.loc[seed, 'run_id']} were not "
                              "scored on the same test images")
        ok_a, ok_b = ha == ya, hb == yb
        better += int(np.sum(ok_a & ~ok_b))
        worse += int(np.sum(~ok_a & ok_b))
        total += len(ya)
    discordant = better + worse
    if discordant == 0:
        low = high = 0.0
        p = 1.0
    else:
        test = stats.binomtest(better, discordant, 0.5)
        ci = test.proportion_ci(confidence_level=conf, method="exact")
        width = 100 * discordant / total
        low, high, p = width * (2 * ci.low - 1), width * (2 * ci.high - 1), float(test.pvalue)
    out |= {"ci_low": low, "ci_high": high, "p_value": p,
            "test": f"exact McNemar, {n} seed pair(s): {better} vs {worse} discordant images"}
    if n < 2:
        return out | {"verdict": INCONCLUSIVE,
                      "reason": f"one seed: the seed spread is unknown ({_interval(low, high, conf)})"}
    return out | _direction(low, high, conf, spread=out["std"], mean=out["ours"])


def _interval(low: float, high: float, conf: float) -> str:
    return f"{conf:.0%} interval [{low:+.2f}, {high:+.2f}] points"


def _direction(low: float, high: float, conf: float, spread: float | None, mean: float = 0.0) -> dict:
    text = _interval(low, high, conf)
    if low <= 0 <= high:
        return {"verdict": INCONCLUSIVE, "reason": f"{text} contains 0"}
    if spread is not None and abs(mean) <= spread:
        return {"verdict": INCONCLUSIVE,
                "reason": f"{text}, but the difference ({mean:+.2f}) is within the seed spread "
                          f"(± {spread:.2f})"}
    if low > 0:
        return {"verdict": REPRODUCED, "reason": f"{text} lies above 0"}
    return {"verdict": CONTRADICTED, "reason": f"{text} lies below 0"}


def judge_greater(claim: dict, runs, predictions, rules, scale) -> dict:
    res = compare(runs, claim["a"], claim["b"], predictions, rules)
    reason = res.get("reason", "") + res.get("note", "")
    if scale != "paper" and res["verdict"] != UNTESTED and _uses_final(runs, [claim["a"], claim["b"]]):
        reason += "; at reduced scale"
    return _row(claim, **{k: v for k, v in res.items() if k in COLUMNS and k != "reason"},
                reason=reason)


def _uses_final(runs: pd.DataFrame, arm_names) -> bool:
    roles = set()
    for arm in arm_names:
        roles |= set(_runs_of(runs, arm)["role"])
    return bool(roles & {"final", "ablation"})


def _combine(claim: dict, pairs: list[tuple[str, str, dict]], scale: str, runs) -> dict:
    """One verdict from several pairwise comparisons (all must hold)."""
    verdicts = [r["verdict"] for *_, r in pairs]
    if UNTESTED in verdicts:
        missing = "; ".join(r["reason"] for *_, r in pairs if r["verdict"] == UNTESTED)
        return _row(claim, verdict=UNTESTED, reason=missing)
    if all(v == REPRODUCED for v in verdicts):
        verdict = REPRODUCED
    elif CONTRADICTED in verdicts:
        verdict = CONTRADICTED
    else:
        verdict = INCONCLUSIVE
    # the closest pair (smallest favourable margin) stands for the claim in the numbers
    a, b, closest = min(pairs, key=lambda p: p[2].get("ours", math.inf))
    detail = "; ".join(f"{x.split('/')[0]} vs {y.split('/')[0]}: {r['verdict']}"
                       for x, y, r in pairs)
    reason = f"{detail}. Closest, {a} vs {b}: {closest.get('reason', '')}{closest.get('note', '')}"
    if scale != "paper":
        reason += "; at reduced scale"
    return _row(claim, **{k: v for k, v in closest.items() if k in COLUMNS and k not in ("reason", "verdict")},
                verdict=verdict, reason=reason)


def judge_top(claim: dict, runs, predictions, rules, scale) -> dict:
    pairs = [(m, o, compare(runs, m, o, predictions, rules))
             for m in claim["members"] for o in claim["others"]]
    return _combine(claim, pairs, scale, runs)


def judge_faster(claim: dict, runs, predictions, rules, scale) -> dict:
    # a run that never reached the target counts as one epoch past its last
    runs = runs.assign(epochs_to_target=runs["epochs_to_target"].astype(float).fillna(
        runs["epochs_run"].astype(float) + 1))
    pairs = [(claim["a"], o, compare(runs, claim["a"], o, predictions, rules,
                                     metric="epochs_to_target", larger_is_better=False))
             for o in claim["others"]]
    row = _combine(claim, pairs, scale, runs)
    row["test"] = (row["test"] or "") + f" (epochs to {rules['val_target']:g} % validation accuracy)"
    return row


JUDGES = {"value": judge_value, "greater": judge_greater, "top": judge_top, "faster": judge_faster}


def judge(claims: list[dict], runs: pd.DataFrame, predictions: dict, rules: dict | None = None,
          scale: str = "reduced") -> pd.DataFrame:
    """One row per claim (``COLUMNS``): the paper's value, ours, the interval, test and verdict.

    ``runs`` is the tidy per-run table (``runs.read_runs(...).table``; it needs the columns
    ``RUN_COLUMNS``, test_accuracy in %); ``predictions`` maps run ids to (labels, predictions)
    arrays of the test set.
    """
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise CnnoptError(f"the runs table lacks column(s) {', '.join(missing)} to judge the claims")
    rules = DEFAULT_RULES | dict(rules or {})
    rows = [JUDGES[c["kind"]](c, runs, predictions, rules, scale) for c in claims]
    # the paper's own difference for a comparison whose two runs it reports values for
    reported = {c["run"]: float(c["paper"]) for c in claims if c["kind"] == "value"}
    for claim, row in zip(claims, rows, strict=True):
        if claim["kind"] == "greater" and claim["a"] in reported and claim["b"] in reported:
            row["paper"] = reported[claim["a"]] - reported[claim["b"]]
    return pd.DataFrame(rows, columns=COLUMNS)
