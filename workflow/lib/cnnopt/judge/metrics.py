"""What a claim measures on each run, from the per-run table with its curve facts
(``with_curve_facts``).

``measure`` turns the runs table into one row per run with an ``arm`` (optimizer/variant),
its ``stratum`` (``verdicts.strata``), whether it trained at the paper's budget
(``verdicts.paper_epochs``), and one column per metric of ``METRICS``:

* ``accuracy``: test accuracy (%) of the model the run's role calls for: the best-validation
  epoch's for the roles in ``verdicts.best_model_roles`` (the paper's Final Accuracy is "the
  highest accuracy achieved"), the last epoch's otherwise;
* ``epochs_to_target``, ``seconds_to_target``: time to the validation target (interpolated
  within the epoch); a run that never reaches it, diverged ones included, is *censored* at
  its planned budget (its planned epochs; its seconds per epoch times them);
* ``gap``, ``val_accuracy_volatility``, ``val_loss_volatility``: the curve facts (``curve_facts``).

A diverged run has no accuracy or curve facts here (NaN): the model leaves it out, so that one
blow-up does not swamp the pooled spread of a whole stratum; the judges say how many runs of
an arm diverged and never decide *for* an arm with a diverged run. Its time to target is the
time it reached the target before diverging, if it did, else its planned budget (censored).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cnnopt.judge.rules import Rules

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


def arms_of(runs) -> np.ndarray:
    """Each run's arm, "optimizer/variant" (the name claims give their arms), of a runs table
    or its columns (``columns_of``)."""
    cols = columns_of(runs)
    return np.array([f"{o}/{v}" for o, v in zip(_text(cols, "optimizer"), _text(cols, "variant"),
                                                 strict=True)], dtype=object)


def measure(runs: pd.DataFrame, rules: Rules, scale: str = "reduced") -> pd.DataFrame:
    """One row per run: run_id, arm, seed, role, stratum, epochs, at_scale, diverged,
    still_rising, censored (never reached the target) and every metric of ``METRICS``."""
    return pd.DataFrame(measure_columns(runs, rules, scale))


def measure_columns(runs, rules: Rules, scale: str = "reduced") -> dict[str, np.ndarray]:
    """``measure``'s columns as arrays of one length (what the judges index per arm); ``runs``
    as ``columns_of`` takes it."""
    cols = columns_of(runs)
    role = _text(cols, "role")
    last, best = _num(cols, "test_accuracy"), _num(cols, "test_accuracy_best")
    wants_best = np.isin(role, list(rules.best_model_roles)) & np.isfinite(best)
    epochs = _num(cols, "epochs")
    epochs_run = _num(cols, "epochs_run")
    reached = (_flag(cols, "reached_target") if "reached_target" in cols
               else np.isfinite(_num(cols, "epochs_to_target")))
    per_epoch = _num(cols, "train_seconds") / np.where(epochs_run > 0, epochs_run, math.nan)
    paper_epochs = np.array([rules.paper_epochs.get(r, math.nan) for r in role], float)
    full_data = (pd.isna(cols["max_train_images"]) if "max_train_images" in cols
                 else np.ones(len(role), bool))
    at_scale = np.where(np.isnan(paper_epochs), scale == "paper",
                        (epochs >= paper_epochs) & full_data)
    diverged = _flag(cols, "diverged")
    kept = np.where(diverged, math.nan, 1.0)  # NaN out what a diverged run measured
    return {
        "run_id": _text(cols, "run_id"),
        "arm": arms_of(cols),
        "seed": _num(cols, "seed"),
        "role": role,
        "stratum": np.array([rules.stratum_of(r) for r in role], dtype=object),
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


# ---------------------------------------------------------------- the curve facts
#: The per-run facts that depend on the decision rules, read from each run's history (see
#: ``curve_facts``); ``with_curve_facts`` adds them to the runs table (runs.csv).
CURVE_COLUMNS = ("epochs_to_target", "seconds_to_target", "reached_target", "still_rising", "gap",
                 "val_accuracy_volatility", "val_loss_volatility")
#: Where runs.csv has them: these after ``final_val_accuracy``, the rest at the end.
_AFTER_FINAL_VAL = ("epochs_to_target", "seconds_to_target", "still_rising")


def curve_facts(history: pd.DataFrame, rules, chance: float = 10.0) -> dict:
    """What the claims read from a run's curves (percent points where accuracies):

    * ``epochs_to_target``, ``seconds_to_target``: when the validation accuracy first reaches
      ``rules.val_target``, interpolated linearly within that epoch (epoch 0 at ``chance``,
      the accuracy of a guess), in epochs and in training seconds; NaN and ``reached_target``
      false when it never does (the judges censor such a run at its planned budget);
    * ``still_rising``: the last epoch's validation accuracy is more than
      ``rules.rising_points`` above the one ``rules.rising_epochs`` earlier (a curve too short
      to tell counts as rising);
    * ``gap``: training minus validation accuracy at the last epoch (overfitting);
    * ``val_accuracy_volatility``, ``val_loss_volatility``: the standard deviation of the
      epoch-to-epoch changes of the validation accuracy (points) and loss (NaN below 3 epochs).

    ``history`` is a run's history.csv (``runs.read_history``); ``rules`` a ``Rules`` or a
    ``verdicts`` block.
    """
    rules = Rules.of(rules)
    val = pd.to_numeric(history["val_accuracy"], errors="coerce").to_numpy(float) * 100
    val_loss = pd.to_numeric(history["val_loss"], errors="coerce").to_numpy(float)
    elapsed = np.concatenate([[0.0], pd.to_numeric(history["elapsed"], errors="coerce").to_numpy(float)])
    target = rules.val_target
    hit = np.flatnonzero(val >= target)
    epochs = seconds = math.nan
    if len(hit):
        k = int(hit[0])  # 0-based index of the first epoch at the target
        before = val[k - 1] if k else chance
        frac = 1.0 if val[k] <= before else float(np.clip((target - before) / (val[k] - before), 0, 1))
        epochs = k + frac
        seconds = float(elapsed[k] + frac * (elapsed[k + 1] - elapsed[k]))
    k = rules.rising_epochs
    rising = len(val) <= k or bool(val[-1] - val[-1 - k] > rules.rising_points)
    train_acc = pd.to_numeric(history["accuracy"], errors="coerce").to_numpy(float) * 100
    return {"epochs_to_target": epochs, "seconds_to_target": seconds,
            "reached_target": bool(len(hit)), "still_rising": rising,
            "gap": float(train_acc[-1] - val[-1]),
            "val_accuracy_volatility": _volatility(val), "val_loss_volatility": _volatility(val_loss)}


def _volatility(values: np.ndarray) -> float:
    """The standard deviation of a curve's epoch-to-epoch changes (NaN below 3 epochs)."""
    return float(np.std(np.diff(values), ddof=1)) if len(values) >= 3 else math.nan


def with_curve_facts(runs, rules) -> pd.DataFrame:
    """``runs.table`` (a ``runs.Runs``, ``runs.read_runs``) with the ``CURVE_COLUMNS`` of each
    run under ``rules`` (a ``Rules`` or a ``verdicts`` block), in the column order of runs.csv:
    the table the judges, Table 1 and runs.csv read."""
    rules = Rules.of(rules)
    table = runs.table
    facts = pd.DataFrame([curve_facts(runs[r].history, rules, runs[r].chance)
                          for r in table["run_id"]], columns=list(CURVE_COLUMNS), index=table.index)
    rest = [c for c in CURVE_COLUMNS if c not in _AFTER_FINAL_VAL]
    order = [c for c in table.columns if c not in CURVE_COLUMNS]
    at = order.index("final_val_accuracy") + 1 if "final_val_accuracy" in order else len(order)
    order = order[:at] + list(_AFTER_FINAL_VAL) + order[at:] + rest
    return pd.concat([table.drop(columns=[c for c in CURVE_COLUMNS if c in table.columns]), facts],
                     axis=1)[order]
