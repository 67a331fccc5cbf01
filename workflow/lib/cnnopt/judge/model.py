"""The statistical model of the study's runs.

A metric of run (arm, seed) is modelled as ``y = mu_arm + beta_seed + e`` with ``e`` normal of
one variance within a stratum (``verdicts.strata``): an ordinary least-squares fit
(``statsmodels.OLS``) over every run of the strata involved, so that each arm's two or three
seeds add up to tens of residual degrees of freedom. Two forms:

* **paired** (``arm + seed``): the seed is a block. Twins share their seed (initial weights,
  batch order, dropout masks), so a contrast between two arms is a paired one: the seed's
  own luck cancels. Comparisons use it.
* **unpaired** (``arm`` alone): the residual variance holds the seed's variance too, which is
  what a new run, with a new seed, varies by. Values use it: the prediction interval for one
  run, the paper's, is ``mean ± t * sqrt(se_mean**2 + s**2)``.

``equal_variances`` tests equal variances across a stratum's arms (``scipy.stats.levene``,
or Bartlett's test where arms have two runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.regression.linear_model import OLS


@dataclass(frozen=True)
class Fit:
    """One OLS fit of a metric: each arm's coefficient, their covariance, residual df and
    variance (``scale``), and the number of runs per arm."""

    arms: tuple[str, ...]
    coef: np.ndarray
    cov: np.ndarray
    df: float
    scale: float
    counts: dict[str, int]
    paired: bool

    def index(self, arm: str) -> int:
        return self.arms.index(arm)

    @property
    def usable(self) -> bool:
        """A residual variance to test with: some degrees of freedom and some spread."""
        return self.df > 0 and math.isfinite(self.scale) and self.scale > 0

    def contrast(self, a: str, b: str) -> tuple[float, float]:
        """(estimate, standard error) of mu_a - mu_b."""
        i, j = self.index(a), self.index(b)
        var = self.cov[i, i] + self.cov[j, j] - 2 * self.cov[i, j]
        return float(self.coef[i] - self.coef[j]), float(math.sqrt(max(var, 0.0)))

    def prediction(self, arm: str) -> tuple[float, float]:
        """(mean, standard error of one new run) of ``arm``: mean ± t * se is the prediction
        interval of a single run (``statsmodels``' ``obs_ci``)."""
        i = self.index(arm)
        return float(self.coef[i]), float(math.sqrt(self.cov[i, i] + self.scale))


def fit(frame: pd.DataFrame, metric: str, paired: bool) -> Fit:
    """OLS of ``metric`` on arm (one coefficient each) and, when ``paired``, seed (a block).

    ``frame`` holds the columns arm, seed and ``metric``; rows whose metric is not finite
    are left out. An arm's coefficient is its seed-adjusted mean.
    """
    return fit_arrays(frame["arm"].to_numpy(), frame["seed"].to_numpy(float),
                      frame[metric].to_numpy(float), paired)


def fit_arrays(arm: np.ndarray, seed: np.ndarray, y: np.ndarray, paired: bool) -> Fit:
    """``fit`` on plain arrays (one entry per run)."""
    keep = np.isfinite(y)
    arm, seed, y = arm[keep], seed[keep], y[keep]
    arm_codes, arms = pd.factorize(arm, sort=False)
    columns = [np.eye(len(arms))[arm_codes]] if len(arms) else [np.zeros((len(y), 0))]
    if paired:
        seed_codes, seeds = pd.factorize(seed, sort=True)
        if len(seeds) > 1:
            columns.append(np.eye(len(seeds))[seed_codes][:, 1:])  # first seed: the reference
    x = np.hstack(columns)
    counts = dict(zip(arms, np.bincount(arm_codes, minlength=len(arms)).tolist(), strict=True))
    if len(y) == 0:
        return Fit(tuple(arms), np.array([]), np.zeros((0, 0)), 0.0, math.nan, counts, paired)
    res = OLS(y, x).fit()
    k = len(arms)
    df = float(res.df_resid)
    scale = float(res.scale) if df > 0 else math.nan
    if scale <= 1e-12 * max(1.0, float(np.mean(y ** 2))):  # rounding residue: no spread at all
        scale = 0.0
    cov = res.normalized_cov_params[:k, :k] * (scale if df > 0 else math.nan)  # scale·(X'X)^-1
    return Fit(tuple(arms), np.asarray(res.params[:k], float), np.asarray(cov, float), df, scale,
               counts, paired)


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with ``df`` degrees of freedom (``scipy.special.stdtr``, the
    ufunc behind ``scipy.stats.t``, a hundred times faster for the simulations)."""
    return float(special.stdtr(df, -x))


def t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (``scipy.special.stdtrit``)."""
    return float(special.stdtrit(df, q))


def t_test(estimate: float, se: float, df: float, confidence: float) -> dict:
    """Two-sided t test of estimate = 0 with its ``confidence`` interval."""
    q = t_ppf(0.5 + confidence / 2, df)
    p = 2 * t_sf(abs(estimate) / se, df) if se > 0 else math.nan
    return {"ci_low": estimate - q * se, "ci_high": estimate + q * se, "p_value": p}


def equal_variances(frame: pd.DataFrame, metric: str) -> tuple[str, float]:
    """(test, p) of equal variances across the arms of ``frame``: Levene's
    (``scipy.stats.levene``) when every arm has three runs or more; Bartlett's with two
    (Levene's absolute deviations are then equal within an arm, and its F degenerate).
    ("", NaN) below two arms with two runs each."""
    groups = [g[metric].dropna().to_numpy(float) for _, g in frame.groupby("arm", sort=False)]
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 2 or all(np.ptp(g) == 0 for g in groups):
        return "", math.nan
    if min(len(g) for g in groups) >= 3:
        return "levene", float(stats.levene(*groups, center="median").pvalue)
    return "bartlett", float(stats.bartlett(*groups).pvalue)
