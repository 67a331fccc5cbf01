"""Time to target, as optimizer benchmarks score it, and its performance profile.

Per tuned run: the training steps and seconds until its validation accuracy first reaches the
declared target (``verdicts.val_target``, the claims' own; interpolated within the epoch, as
``judge.metrics.curve_facts`` finds it); a run that never reaches it, or diverged first, takes
infinity. Per search and optimizer: the median over seeds (infinite when most seeds never
reach it). The performance profile (Dolan and Moré 2002) gives, per optimizer, the share of
problems (here: the searches, each a network and budget) on which its time is within a factor
``tau`` of the fastest optimizer's: the curve that rises first and highest is the fastest
overall; one that never reaches 1 failed some problem.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: The columns of time_to_target.csv: one row per search and optimizer (the median over seeds).
COLUMNS = ["search", "optimizer", "seeds", "reached", "steps_to_target", "seconds_to_target",
           "epochs_to_target", "target"]


def per_run(runs: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per run of ``runs`` (the tuned runs' table with the curve facts of
    ``judge.metrics.with_curve_facts`` and their ``search``): epochs, steps and seconds to
    ``target``, infinite where it was never reached."""
    reached = runs["reached_target"].astype(bool) & ~runs["diverged"].astype(bool)
    n_train = runs["images_per_second"].astype(float) * runs["train_seconds"].astype(float) / \
        runs["epochs_run"].astype(float)
    steps = np.ceil(n_train.round() / runs["batch_size"].astype(float))
    epochs = runs["epochs_to_target"].astype(float).where(reached, math.inf)
    return pd.DataFrame({
        "search": runs["search"], "optimizer": runs["optimizer"], "seed": runs["seed"],
        "reached": reached, "epochs_to_target": epochs,
        "steps_to_target": (epochs * steps).where(reached, math.inf),
        "seconds_to_target": runs["seconds_to_target"].astype(float).where(reached, math.inf),
        "target": target})


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """Per search and optimizer (``COLUMNS``): the median over seeds of ``per_run``'s times."""
    out = (table.groupby(["search", "optimizer"], sort=False)
           .agg(seeds=("seed", "size"), reached=("reached", "sum"),
                steps_to_target=("steps_to_target", "median"),
                seconds_to_target=("seconds_to_target", "median"),
                epochs_to_target=("epochs_to_target", "median"), target=("target", "first"))
           .reset_index())
    return out[COLUMNS]


def performance_profile(table: pd.DataFrame, measure: str = "steps_to_target",
                        taus=None) -> pd.DataFrame:
    """Per optimizer and ``tau``: the share ``rho`` of problems (searches) where its ``measure``
    (``medians``' column) is at most ``tau`` times the best optimizer's on that problem. An
    optimizer absent from a problem, or never at the target there, counts as failing it."""
    wide = table.pivot(index="search", columns="optimizer", values=measure).astype(float)
    best = wide.min(axis=1)
    ratio = wide.div(best.where(np.isfinite(best) & (best > 0)), axis=0).fillna(math.inf)
    finite = ratio.to_numpy()[np.isfinite(ratio.to_numpy())]
    if taus is None:
        top = max(float(finite.max()) if finite.size else 1.0, 1.0)
        taus = np.unique(np.concatenate([[1.0], np.geomspace(1.0, top * 1.5, 60), finite]))
    rows = [{"optimizer": opt, "tau": float(t), "rho": float((ratio[opt] <= t).mean())}
            for opt in ratio.columns for t in taus]
    return pd.DataFrame(rows, columns=["optimizer", "tau", "rho"])
