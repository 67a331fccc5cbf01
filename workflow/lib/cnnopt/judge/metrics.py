"""What a claim measures on each run, from the per-run table (``runs.read_runs``).

``measure`` turns the runs table into one row per run with an ``arm`` (optimizer/variant),
its ``stratum`` (``verdicts.strata``), whether it trained at the paper's budget
(``verdicts.paper_epochs``), and one column per metric of ``METRICS``:

* ``accuracy``: test accuracy (%) of the model the run's role calls for: the best-validation
  epoch's for the roles in ``verdicts.best_model_roles`` (the paper's Final Accuracy is "the
  highest accuracy achieved"), the last epoch's otherwise;
* ``epochs_to_target``, ``seconds_to_target``: time to the validation target (interpolated
  within the epoch); a run that never reaches it, diverged ones included, is *censored* at
  its planned budget (its planned epochs; its seconds per epoch times them);
* ``gap``, ``val_accuracy_volatility``, ``val_loss_volatility``: the curve facts (runs.py).

A diverged run has no accuracy or curve facts here (NaN): the model leaves it out, so that one
blow-up does not swamp the pooled spread of a whole stratum; the judges say how many runs of
an arm diverged and never decide *for* an arm with a diverged run. Its time to target is the
time it reached the target before diverging, if it did, else its planned budget (censored).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Each metric: what it is (for the report), its unit, and whether a run can be censored.
METRICS = {
    "accuracy": {"label": "test accuracy", "unit": "points", "censored": False},
    "epochs_to_target": {"label": "epochs to the validation target", "unit": "epochs",
                         "censored": True},
    "seconds_to_target": {"label": "training seconds to the validation target", "unit": "s",
                          "censored": True},
    "gap": {"label": "training minus validation accuracy at the last epoch", "unit": "points",
            "censored": False},
    "val_accuracy_volatility": {"label": "sd of the epoch-to-epoch changes of validation accuracy",
                                "unit": "points", "censored": False},
    "val_loss_volatility": {"label": "sd of the epoch-to-epoch changes of validation loss",
                            "unit": "", "censored": False},
}


def stratum_of(role: str, strata: dict) -> str:
    """The declared stratum of a role (a role in none is a stratum of its own)."""
    for name, roles in strata.items():
        if role in roles:
            return name
    return str(role)


def columns_of(runs) -> dict[str, np.ndarray]:
    """The per-run table as one array per column: a DataFrame (``runs.read_runs``) or a mapping
    of column names to sequences of one length (``calibration.simulate_runs``)."""
    if isinstance(runs, pd.DataFrame):
        return {c: runs[c].to_numpy() for c in runs.columns}
    return {c: np.asarray(v) for c, v in runs.items()}


def _length(cols: dict) -> int:
    return len(next(iter(cols.values()))) if cols else 0


def _num(cols: dict, column: str) -> np.ndarray:
    """A numeric column as floats (missing or unparsable: NaN)."""
    if column not in cols:
        return np.full(_length(cols), math.nan)
    values = cols[column]
    if values.dtype.kind in "biuf":
        return values.astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float)


def _flag(cols: dict, column: str) -> np.ndarray:
    """A yes/no column as bools (missing column or value: no)."""
    if column not in cols:
        return np.zeros(_length(cols), bool)
    values = cols[column]
    if values.dtype == bool:
        return values
    out = np.zeros(len(values), bool)
    known = ~pd.isna(values)
    out[known] = values[known].astype(bool)
    return out


def _text(cols: dict, column: str) -> np.ndarray:
    return cols[column].astype(str).astype(object)


def measure(runs: pd.DataFrame, rules: dict, scale: str = "reduced") -> pd.DataFrame:
    """One row per run: run_id, arm, seed, role, stratum, epochs, at_scale, diverged,
    still_rising, censored (never reached the target) and every metric of ``METRICS``."""
    return pd.DataFrame(measure_columns(runs, rules, scale))


def measure_columns(runs, rules: dict, scale: str = "reduced") -> dict[str, np.ndarray]:
    """``measure``'s columns as arrays of one length (what the judges index per arm); ``runs``
    as ``columns_of`` takes it."""
    cols = columns_of(runs)
    role = _text(cols, "role")
    last, best = _num(cols, "test_accuracy"), _num(cols, "test_accuracy_best")
    wants_best = np.isin(role, list(rules["best_model_roles"])) & np.isfinite(best)
    epochs = _num(cols, "epochs")
    epochs_run = _num(cols, "epochs_run")
    reached = (_flag(cols, "reached_target") if "reached_target" in cols
               else np.isfinite(_num(cols, "epochs_to_target")))
    per_epoch = _num(cols, "train_seconds") / np.where(epochs_run > 0, epochs_run, math.nan)
    paper_epochs = np.array([rules["paper_epochs"].get(r, math.nan) for r in role], float)
    full_data = (pd.isna(cols["max_train_images"]) if "max_train_images" in cols
                 else np.ones(len(role), bool))
    at_scale = np.where(np.isnan(paper_epochs), scale == "paper",
                        (epochs >= paper_epochs) & full_data)
    diverged = _flag(cols, "diverged")
    kept = np.where(diverged, math.nan, 1.0)  # NaN out what a diverged run measured
    return {
        "run_id": _text(cols, "run_id"),
        "arm": np.array([f"{o}/{v}" for o, v in zip(_text(cols, "optimizer"), _text(cols, "variant"),
                                                     strict=True)], dtype=object),
        "seed": _num(cols, "seed"),
        "role": role,
        "stratum": np.array([stratum_of(r, rules["strata"]) for r in role], dtype=object),
        "epochs": epochs,
        "at_scale": at_scale.astype(bool),
        "diverged": diverged,
        "still_rising": _flag(cols, "still_rising"),
        "censored": ~reached,
        "model": np.where(wants_best, "best", "last"),
        "accuracy": np.where(wants_best, best, last) * kept,
        "epochs_to_target": np.where(reached, _num(cols, "epochs_to_target"), epochs),
        "seconds_to_target": np.where(reached, _num(cols, "seconds_to_target"), per_epoch * epochs),
        "gap": _num(cols, "gap") * kept,
        "val_accuracy_volatility": _num(cols, "val_accuracy_volatility") * kept,
        "val_loss_volatility": _num(cols, "val_loss_volatility") * kept,
    }
