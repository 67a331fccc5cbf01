"""Successive halving, the learning-rate searches' scheduler (the paper's future work).

Each optimizer of a search gets the same trial budget: the same number of candidate rates,
trained through the same rungs (epoch counts) up to the search's final budget. After each
rung, :func:`promote` keeps the best ``keep`` fraction of its entrants on validation accuracy
(never the test set); the promoted candidates continue from their own checkpoint to the next
rung, so no epoch is trained twice, and the last rung is the final budget itself: the winner's
search run is a run at the final budget. :func:`choose` then takes the best candidate at the
final budget; a choice at the edge of the rates searched asks for one candidate one step
beyond that edge (:func:`beyond`), trained through every rung in turn and compared at the final
budget, up to the search's declared number of extensions; a choice still at an edge is flagged.

Candidates are a declared list, a geometric grid, or quasirandom points in log space
(:func:`quasirandom_rates`, scipy's scrambled Halton sequence: seeded, reproducible, in range).
No Snakemake here: the rules ``rung``, ``choose`` and ``select`` call these on files.
"""

from __future__ import annotations

import logging
import math

from scipy.stats import qmc

from cnnopt.common.errors import CnnoptError

log = logging.getLogger(__name__)


def round_rate(rate: float) -> float:
    """A rate rounded to 3 significant digits (how it is named in run ids)."""
    return float(f"{float(rate):.3g}")


def quasirandom_rates(low: float, high: float, n: int, seed: int) -> list[float]:
    """``n`` distinct rates spread quasirandomly and log-uniformly over [``low``, ``high``]
    (a scrambled Halton sequence seeded with ``seed``), rounded, sorted."""
    if not 0 < low < high:
        raise CnnoptError(f"candidate rates: need 0 < low < high, got low {low:g}, high {high:g}")
    points = qmc.Halton(d=1, scramble=True, seed=seed).random(n)[:, 0]
    values = sorted({round_rate(10 ** (math.log10(low) + u * math.log10(high / low))) for u in points})
    if len(values) < n:
        raise CnnoptError(f"candidate rates: {n} quasirandom rates in [{low:g}, {high:g}] are not "
                          "distinct at 3 significant digits; widen the range or ask for fewer")
    return values


def beyond(rates, edge: str, steps: int = 1) -> float:
    """The rate ``steps`` geometric steps past the ``edge`` ("low" or "high") of the sorted
    ``rates``; a step is the ratio between the edge and its neighbour."""
    rates = sorted(rates)
    if len(rates) < 2:
        raise CnnoptError("a search needs at least two candidate rates to step beyond its edge")
    low, high = (rates[0], rates[1]) if edge == "low" else (rates[-1], rates[-2])
    return round_rate(low * (low / high) ** steps)


def keep_count(entrants: int, keep: float) -> int:
    """How many of ``entrants`` a rung promotes: the declared fraction, rounded down, at least one."""
    return max(1, math.floor(entrants * keep + 1e-9))


def _ranked(rows: list[dict]) -> list[dict]:
    """``rows`` with a score, best first; a tie goes to the smaller rate."""
    return sorted((r for r in rows if r["score"] is not None),
                  key=lambda r: (-r["score"], r["learning_rate"]))


def promote(rows: list[dict], keep: float) -> list[str]:
    """The run ids of the rows that go on to the next rung: the best ``keep`` fraction of the
    entrants (``keep_count``) by score; a diverged one (score None) never goes on."""
    ranked = _ranked(rows)
    return [r["run_id"] for r in ranked[:min(keep_count(len(rows), keep), len(ranked))]]


def choose(rows: list[dict], rates, extensions: list[float], extend: int, optimizer: str = "") -> dict:
    """The choice at the final budget among ``rows`` (each: run_id, learning_rate, score or None
    when diverged); ``rates`` are every rate searched so far (the candidates and the
    ``extensions`` already tried). Returns the winner's row with ``at_edge`` and
    ``extend_to``: the rate to try next (one step beyond the edge the winner sits at) while
    fewer than ``extend`` extensions were tried, else None. ``optimizer`` names the candidates'
    optimizer in the error when every one of them diverged."""
    ranked = _ranked(rows)
    if not ranked:
        tried = ", ".join(f"{r['learning_rate']:g}" for r in rows)
        of = f" of {optimizer}" if optimizer else ""
        raise CnnoptError(f"every candidate rate{of} diverged ({tried}); lower its rates")
    best = ranked[0]
    rates = sorted(set(rates))
    edge = "low" if best["learning_rate"] == rates[0] else "high" if best["learning_rate"] == rates[-1] else None
    extend_to = beyond(rates, edge) if edge and len(extensions) < extend else None
    return {**best, "at_edge": edge is not None, "edge": edge, "extend_to": extend_to}


def rung_table(entrants: dict[str, float], scores: dict[str, dict], keep: float | None) -> dict:
    """One rung's record: per entrant (run id -> rate) its score (``scores``: run id -> the
    metrics row of :func:`cnnopt.tuning.select.score_of`), and the promoted run ids (none at the
    last rung, ``keep`` None)."""
    rows = [{"run_id": rid, "learning_rate": rate, **scores[rid]}
            for rid, rate in sorted(entrants.items(), key=lambda kv: kv[1])]
    promoted = promote(rows, keep) if keep is not None else []
    return {"entrants": rows, "keep": keep, "promoted": promoted}
