"""The statistical model of the study's runs: a variance for each comparison and each arm,
moderated toward its neighbours by empirical Bayes.

With two or three seeds an arm's own variance rests on one or two degrees of freedom: too
noisy to test with alone, and wrong to replace by one pooled variance when the arms differ in
noise (RMSprop's volatility, an unconverged first cycle). limma's answer for few replicates
(Smyth 2004) is used: the sample variances ``s2`` of many units (arms, or the per-seed
differences of many comparisons), each on ``df`` degrees of freedom, are modelled as draws
around a prior variance ``s0**2`` on ``d0`` degrees of freedom; both are estimated from all the
units by moments of ``log s2`` (``fit_prior``), and each unit's *moderated* variance is the
weighted mean ``(d0 * s0**2 + df * s2) / (d0 + df)`` on ``d0 + df`` degrees of freedom
(``Prior.moderate``). Equal units give ``d0`` large (they pool fully); a spread beyond what
``df`` explains gives ``d0`` small (each keeps its own). ``d0`` is capped at the degrees of
freedom the prior was estimated from: the prior is never worth more than its data.

A comparison uses the per-seed differences of the seeds both arms ran (the benefit of their
shared seed luck is in those differences, estimated, never assumed), else Welch's test on the
two arms' moderated variances (``welch``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

#: Degrees of freedom treated as infinite (the t distribution is then the normal one).
INF_DF = 1e6


@dataclass(frozen=True)
class Prior:
    """A prior variance ``var`` on ``df`` degrees of freedom (0: no prior; INF_DF: exact);
    ``units`` is how many sample variances it was estimated from and ``what`` names them.

    ``outlier`` < ``full`` (upper-tail probabilities of the scaled F distribution of a unit's
    own variance under the prior) make the moderation robust: the prior's weight falls from
    full at a tail probability of ``full`` to none at ``outlier``, so a unit far noisier than
    its neighbours keeps its own variance (limma's robust idea in its simplest form). Both 0:
    limma's plain moderation."""

    var: float = math.nan
    df: float = 0.0
    units: int = 0
    what: str = ""
    outlier: float = 0.0
    full: float = 0.0

    def moderate(self, s2: float, df: float) -> tuple[float, float]:
        """(moderated variance, its degrees of freedom) of a sample variance ``s2`` on ``df``."""
        if not (self.df > 0 and self.var > 0):
            return (s2, df) if df > 0 else (math.nan, 0.0)
        if df <= 0 or not math.isfinite(s2):
            return self.var, self.df
        d0 = self.df
        if self.full > self.outlier:  # the farther into the prior's upper tail, the less weight
            tail = float(special.fdtrc(df, min(self.df, INF_DF), s2 / self.var))
            d0 *= min(1.0, max(0.0, (tail - self.outlier) / (self.full - self.outlier)))
        if d0 <= 0:
            return s2, df  # far noisier than its neighbours: it keeps its own variance
        return (d0 * self.var + df * s2) / (d0 + df), min(d0 + df, INF_DF)


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (``scipy.special.polygamma``); trigamma falls from infinity at 0
    to 0 at infinity."""
    low, high = 1e-8, 1.0
    while special.polygamma(1, high) > x:
        high *= 2
        if high > 1e12:
            return math.inf
    return float(optimize.brentq(lambda y: special.polygamma(1, y) - x, low, high, xtol=1e-12))


def fit_prior(s2, df, max_df: float = math.inf, what: str = "", cautious: bool = True,
              robust: tuple[float, float] = (0.0, 0.0)) -> Prior:
    """limma's ``fitFDist`` without covariate: the prior (variance, degrees of freedom) of the
    sample variances ``s2`` on ``df`` degrees of freedom each, by moments of ``log s2``
    (Smyth 2004, section 6.2); ``max_df`` caps the prior's degrees of freedom. Fewer than two
    usable variances: no prior. ``robust`` is the prior's (``outlier``, ``full``).

    ``cautious`` (the judges' choice; False is limma's): the spread of ``log s2`` beyond what
    sampling explains counts only from one standard error of its own estimate up. limma fits
    thousands of genes; with tens of arms on one degree of freedom each, sampling noise alone
    puts that spread above zero in half of the studies of alike arms, and the prior at two or
    three degrees of freedom, which gives away most of the power of pooling."""
    s2, df = np.asarray(s2, float), np.broadcast_to(np.asarray(df, float), np.shape(s2))
    ok = np.isfinite(s2) & (s2 >= 0) & (df > 0)
    s2, df = s2[ok], df[ok]
    if len(s2) < 2:
        return Prior(units=int(len(s2)), what=what, outlier=robust[0], full=robust[1])
    median = float(np.median(s2))
    s2 = np.maximum(s2, 1e-5 * (median if median > 0 else 1.0))  # limma: no exact zeros
    e = np.log(s2) - special.digamma(df / 2) + np.log(df / 2)
    emean = float(e.mean())
    dev = (e - emean) ** 2
    spread = float(dev.sum() / (len(e) - 1))
    # the spread beyond sampling noise counts from one standard error of its own estimate up:
    # with tens of arms on one degree of freedom each, noise alone would often put it well
    # above zero, and the prior at a few degrees of freedom when the arms are alike
    noise = math.sqrt(max(float(np.mean(dev ** 2)) - spread ** 2, 0.0) / len(e)) if cautious else 0.0
    evar = spread - noise - float(np.mean(special.polygamma(1, df / 2)))
    d0 = 2 * _trigamma_inverse(evar) if evar > 0 else math.inf
    if d0 >= min(max_df, INF_DF):
        # alike: the pooled variance (the efficient estimate) on the degrees of freedom capped
        return Prior(float(np.sum(df * s2) / np.sum(df)), float(min(max_df, INF_DF)), int(len(s2)),
                     what, *robust)
    # E log(s0**2 F(df, d0)) = log s0**2 + E log(chi2_df / df) - E log(chi2_d0 / d0)
    var0 = math.exp(emean + special.digamma(d0 / 2) - math.log(d0 / 2))
    return Prior(var0, float(d0), int(len(s2)), what, *robust)


def squeeze(s2, df, max_df: float = math.inf, cautious: bool = True) -> tuple[Prior, np.ndarray]:
    """limma's ``squeezeVar`` (``cautious`` as ``fit_prior``'s): the prior of ``s2`` and each
    one's moderated variance."""
    prior = fit_prior(s2, df, max_df, cautious=cautious)
    df = np.broadcast_to(np.asarray(df, float), np.shape(s2))
    return prior, np.array([prior.moderate(float(s), float(d))[0] for s, d in zip(s2, df, strict=True)])


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with ``df`` degrees of freedom (``scipy.special.stdtr``, the
    ufunc behind ``scipy.stats.t``, a hundred times faster for the simulations)."""
    return float(special.stdtr(min(df, INF_DF), -x))


def t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (``scipy.special.stdtrit``)."""
    return float(special.stdtrit(min(df, INF_DF), q))


@dataclass(frozen=True)
class Contrast:
    """An estimate, its standard error and degrees of freedom, the moderated variance behind
    the standard error (of one difference, of one run; Welch: the estimate's), and how it was
    had."""

    estimate: float
    se: float
    df: float
    how: str
    var: float = math.nan

    def test(self, confidence: float) -> tuple[float, tuple[float, float]]:
        """(two-sided p of estimate = 0, the ``confidence`` interval)."""
        q = t_ppf(0.5 + confidence / 2, self.df)
        p = 2 * t_sf(abs(self.estimate) / self.se, self.df) if self.se > 0 else math.nan
        return p, (self.estimate - q * self.se, self.estimate + q * self.se)


def _sd_text(var: float, df: float) -> str:
    dft = "∞" if df >= INF_DF else f"{df:.0f}" if df >= 10 else f"{df:.1f}"
    return f"sd {math.sqrt(var):.2f} on {dft} df"


def _moderated(values: np.ndarray, prior: Prior, what: str) -> tuple[float, float, str]:
    """(moderated variance, its df, how it was had) of ``values``' own sample variance."""
    n = len(values)
    s2 = float(np.var(values, ddof=1)) if n > 1 else math.nan
    var, df = prior.moderate(s2, n - 1)
    own = _sd_text(s2, n - 1) if n > 1 else "no own spread"
    return var, df, (f"{what}, moderated {_sd_text(var, df)} (own {own}; prior "
                     f"{_sd_text(prior.var, prior.df) if prior.df > 0 else 'none'}{prior.what})")


def paired(diffs: np.ndarray, prior: Prior) -> Contrast:
    """The mean of per-seed differences, its variance moderated toward ``prior``."""
    var, df, how = _moderated(diffs, prior, "paired differences")
    se = math.sqrt(var / len(diffs)) if df > 0 else math.nan
    return Contrast(float(np.mean(diffs)), se, df, how, var if df > 0 else math.nan)


def welch(a: np.ndarray, b: np.ndarray, prior_a: Prior, prior_b: Prior) -> Contrast:
    """mean(a) - mean(b) on the two arms' moderated variances, Welch-Satterthwaite df."""
    parts = [(*_moderated(y, prior, "")[:2], len(y)) for y, prior in ((a, prior_a), (b, prior_b))]
    if any(df <= 0 for _, df, _ in parts):
        return Contrast(float(np.mean(a) - np.mean(b)), math.nan, 0.0, "unpaired, no spread to test with")
    terms = [var / n for var, _, n in parts]
    se2 = sum(terms)
    df = se2 ** 2 / sum(t ** 2 / df for t, (_, df, _) in zip(terms, parts, strict=True)) if se2 > 0 else 0.0
    how = ("unpaired (no common seeds), Welch on moderated "
           + " and ".join(_sd_text(var, d) for var, d, _ in parts))
    return Contrast(float(np.mean(a) - np.mean(b)), math.sqrt(se2), min(df, INF_DF), how, se2)


def one_run(values: np.ndarray, prior: Prior) -> Contrast:
    """An arm's mean and the standard error of *one new run* of it (the paper's number is one
    run of its recipe): ``sqrt(var / n + var)`` on the arm's moderated variance."""
    var, df, how = _moderated(values, prior, "one run's prediction")
    se = math.sqrt(var / len(values) + var) if df > 0 else math.nan
    return Contrast(float(np.mean(values)), se, df, how, var if df > 0 else math.nan)
