"""How much this study can tell: the smallest difference it would detect, and how many seeds
would decide a claim it leaves open.

Both come from the noncentral t distribution (``scipy.stats.nct``) at the model's standard
error and degrees of freedom, at the family's level divided by its size (Bonferroni: a
conservative stand-in for Holm's step-down, whose level depends on the other p-values).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import optimize, stats


def power_at(noncentrality: float, df: float, alpha: float, two_sided: bool = True) -> float:
    """The chance that a t test at level ``alpha`` rejects when the true effect is
    ``noncentrality`` standard errors."""
    if not (df > 0 and math.isfinite(noncentrality)):
        return math.nan
    q = stats.t.ppf(1 - (alpha / 2 if two_sided else alpha), df)
    out = float(stats.nct.sf(q, df, noncentrality))
    if two_sided:
        out += float(stats.nct.cdf(-q, df, noncentrality))
    if math.isnan(out):  # far in the tail, where nct's series gives up: certain either way
        return 1.0 if abs(noncentrality) > q else 0.0
    return out


def detectable(se: float, df: float, alpha: float, power: float = 0.8,
               two_sided: bool = True) -> float:
    """The smallest true effect (in the metric's unit) detected with ``power``."""
    if not (df > 0 and se > 0 and math.isfinite(se)):
        return math.nan
    high = 1.0
    while power_at(high, df, alpha, two_sided) < power and high < 1e6:
        high *= 2
    lam = optimize.brentq(lambda x: power_at(x, df, alpha, two_sided) - power, 0.0, high)
    return float(lam * se)


def seeds_to_decide(effect: float, se_at: Callable[[int], float], df_at: Callable[[int], float],
                    alpha: float, power: float, start: int, max_seeds: int,
                    two_sided: bool = True) -> int | None:
    """The fewest seeds (from ``start``) at which a true ``effect`` (the observed one) would
    be decided with ``power``; None when not within ``max_seeds``. ``se_at(n)`` and
    ``df_at(n)`` give the standard error and degrees of freedom with ``n`` seeds."""
    if not math.isfinite(effect) or effect == 0:
        return None
    for n in range(max(start, 2), max_seeds + 1):
        se, df = se_at(n), df_at(n)
        if se > 0 and power_at(abs(effect) / se, df, alpha, two_sided) >= power:
            return n
    return None


def tost_power(gap: float, se: float, df: float, margin: float, alpha: float) -> float:
    """The chance that two one-sided tests at level ``alpha`` show a recipe within
    ± ``margin`` of the paper's number when its true distance from it is ``gap`` (standard
    error ``se`` on ``df`` degrees of freedom; the usual noncentral-t approximation: each
    side fails independently of the other)."""
    if not (df > 0 and se > 0 and math.isfinite(se)):
        return math.nan
    q = stats.t.ppf(1 - alpha, df)
    fail = stats.nct.cdf(q, df, (margin - abs(gap)) / se) + stats.nct.cdf(q, df, (margin + abs(gap)) / se)
    return float(min(1.0, max(0.0, 1.0 - fail)))


def beyond_power(gap: float, se: float, df: float, margin: float, alpha: float) -> float:
    """The chance of showing a recipe beyond ± ``margin`` of the paper's number (the nearer
    side's one-sided test at ``alpha / 2``) when its true distance is ``gap``."""
    if not (df > 0 and se > 0 and math.isfinite(se)):
        return math.nan
    q = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(q, df, (abs(gap) - margin) / se))
