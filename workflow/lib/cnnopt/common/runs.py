"""The one reader of run folders: every finished run's files in one tidy table.

A run folder (``results/runs/{run_id}``, named by :func:`run_id`) holds ``run.json`` (the
spec), ``metrics.json`` (training), ``evaluation.json`` (the test set) and ``history.csv``
(one row per epoch). ``read_run`` reads one folder; ``read_runs`` reads many into ``Runs``:
``table`` has one row per run with the per-run facts (``COLUMNS``; accuracies in percent),
in the order the report lists runs, and ``runs[run_id]`` gives a run's files (history,
evaluation, spec). ``shown_run`` is the one rule that picks the run a single-run figure
shows. A missing or unreadable file is a one-line ``CnnoptError``.

The facts that depend on the decision rules (the curve facts: time to the validation target,
still rising, ...) are not here: ``cnnopt.judge.metrics.with_curve_facts`` adds them to the
table, from each run's history and ``chance``.

Aggregation, figures and report all read runs here and nowhere else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError
from cnnopt.common.paper import PAPER_TABLE1
from cnnopt.common.registry import ROLE_ORDER, RUN_FILES

__all__ = ["COLUMNS", "Run", "Runs", "optimizer_order", "optimizer_rank", "read_history", "read_run",
           "read_runs", "shown_run", "sort_runs"]


#: What each file of a finished run folder is, for error messages.
_WHAT = {"specs": "run spec", "metrics": "metrics", "evaluations": "evaluation",
         "histories": "history"}
_WHAT = {RUN_FILES[key]: what for key, what in _WHAT.items()}
#: The history.csv columns the readers use (training writes more, e.g. learning_rate).
HISTORY_COLUMNS = ("epoch", "accuracy", "val_accuracy", "loss", "val_loss", "elapsed")

#: The per-run table (runs.csv): one row per run.
COLUMNS = [
    "run_id", "optimizer", "variant", "role", "label", "seed", "epochs", "batch_size",
    "test_accuracy", "test_loss", "train_seconds", "images_per_second",
    "inference_images_per_second", "convergence_epoch", "best_val_accuracy", "params",
    "diverged", "key_adjustments", "diverged_epoch", "epochs_run", "dropout", "conv_dropout",
    "l2", "batch_norm", "architecture", "backend", "device", "validation_size", "n_test",
    "final_val_accuracy",
    # the model of the best validation epoch (the paper's "highest accuracy achieved")
    "test_accuracy_best", "best_epoch", "max_train_images",
]
_INT_COLUMNS = ("convergence_epoch", "diverged_epoch", "params", "epochs_run", "seed", "epochs",
                "batch_size", "validation_size", "n_test", "best_epoch", "max_train_images")


def optimizer_order(names: Iterable[str]) -> list[str]:
    """The paper's optimizer order first (Adam, SGD, RMSprop, Adamax), then the rest sorted."""
    names = list(dict.fromkeys(names))
    known = [o for o in PAPER_TABLE1 if o in names]
    return known + sorted(o for o in names if o not in PAPER_TABLE1)


def optimizer_rank(optimizers: pd.Series) -> pd.Series:
    """Each optimizer's position in ``optimizer_order`` (a key to sort rows by)."""
    return optimizers.map({o: i for i, o in enumerate(optimizer_order(optimizers))})


# ---------------------------------------------------------------- one folder
def _read_json(path: Path) -> dict:
    what = _WHAT.get(path.name, path.name)
    if not path.is_file():
        raise CnnoptError(f"missing {what}: {path} (expected the {path.name} of a finished run)")
    try:
        return files.read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CnnoptError(f"cannot read {what} {path}: {' '.join(str(exc).split())}") from exc


def read_history(path) -> pd.DataFrame:
    """A run's history.csv, checked for the columns the readers use."""
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing history: {path} (expected the history.csv of a finished run)")
    try:
        hist = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CnnoptError(f"cannot read history {path}: {' '.join(str(exc).split())}") from exc
    missing = [c for c in HISTORY_COLUMNS if c not in hist.columns]
    if missing:
        raise CnnoptError(f"history {path} lacks column(s) {', '.join(missing)}")
    if hist.empty:
        raise CnnoptError(f"history {path} has no epochs")
    return hist


@dataclass(frozen=True)
class Run:
    """One run folder, read: its spec, metrics, evaluation and history."""

    dir: Path
    spec: dict
    metrics: dict
    evaluation: dict
    history: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.spec.get("run_id") or self.metrics.get("run_id") or self.dir.name)

    def get(self, key, default=None):
        """``key`` of the spec, else of the metrics (the spec is what was asked for)."""
        return self.spec.get(key, self.metrics.get(key, default))

    @property
    def chance(self) -> float:
        """The test accuracy of a guess, in percent: 100 over the number of classes the
        evaluation names (10, CIFAR-10's, when it names none)."""
        names = self.evaluation.get("class_names") or []
        return 100.0 / len(names) if names else 10.0

    def predictions(self, model: str = "last") -> tuple[np.ndarray, np.ndarray] | None:
        """(test labels, predicted classes) of the last epoch's model or of the ``"best"``
        validation epoch's, or None when evaluation.json lacks them."""
        ev = self.evaluation
        scored = ev if model == "last" else ev.get("best_model") or {}
        if "labels" in ev and "predictions" in scored:
            return np.asarray(ev["labels"]), np.asarray(scored["predictions"])
        return None


def read_run(run_dir) -> Run:
    """Read the four files of one finished run folder."""
    d = Path(run_dir)
    if not d.is_dir():
        raise CnnoptError(f"missing run folder: {d}")
    return Run(dir=d, spec=_read_json(d / RUN_FILES["specs"]),
               metrics=_read_json(d / RUN_FILES["metrics"]),
               evaluation=_read_json(d / RUN_FILES["evaluations"]),
               history=read_history(d / RUN_FILES["histories"]))


# ---------------------------------------------------------------- the table
def _num(value, scale=1.0):
    """A float (times ``scale``) or NaN for None/missing/non-finite."""
    if value is None:
        return math.nan
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v * scale if math.isfinite(v) else math.nan


def _n_test(ev: dict):
    """How many test images the run was scored on (None when evaluation.json cannot tell)."""
    if ev.get("confusion_matrix"):
        return int(sum(sum(r) for r in ev["confusion_matrix"]))
    if ev.get("labels"):
        return len(ev["labels"])
    return None


def _row(run: Run) -> dict:
    spec, m, ev = run.spec, run.metrics, run.evaluation
    model = spec.get("model") or {}
    return {
        "run_id": run.run_id, "optimizer": run.get("optimizer"), "variant": run.get("variant"),
        "role": run.get("role"), "label": spec.get("label", ""), "seed": run.get("seed"),
        "epochs": run.get("epochs"), "batch_size": spec.get("batch_size"),
        # the test set is scored by rule evaluate alone (once per run)
        "test_accuracy": _num(ev.get("test_accuracy"), 100.0),
        "test_loss": _num(ev.get("test_loss")),
        "train_seconds": _num(m.get("train_seconds")),
        "images_per_second": _num(m.get("images_per_second")),
        "inference_images_per_second": _num(ev.get("inference_images_per_second")),
        "convergence_epoch": m.get("convergence_epoch"),
        "best_val_accuracy": _num(m.get("best_val_accuracy"), 100.0),
        "params": m.get("params"), "diverged": bool(m.get("diverged", False)),
        "key_adjustments": spec.get("key_adjustments") or "",
        "diverged_epoch": m.get("diverged_epoch"), "epochs_run": m.get("epochs_run"),
        "dropout": _num(model.get("dropout", 0.0)), "conv_dropout": _num(model.get("conv_dropout", 0.0)),
        "l2": _num(model.get("l2", 0.0)), "batch_norm": bool(model.get("batch_norm", False)),
        "architecture": model.get("architecture", ""),
        "backend": m.get("backend", ""), "device": m.get("device", ""),
        "validation_size": spec.get("validation_size"), "n_test": _n_test(ev),
        "final_val_accuracy": _num(m.get("final_val_accuracy"), 100.0),
        "test_accuracy_best": _num((ev.get("best_model") or {}).get("test_accuracy"), 100.0),
        "best_epoch": m.get("best_epoch"), "max_train_images": spec.get("max_train_images"),
    }


def sort_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the report's order: role, the paper's optimizer order, variant, seed."""
    return (frame.assign(_r=frame["role"].map(ROLE_ORDER).fillna(len(ROLE_ORDER)),
                         _o=optimizer_rank(frame["optimizer"]))
            .sort_values(["_r", "_o", "variant", "seed"], kind="stable")
            .drop(columns=["_r", "_o"]).reset_index(drop=True))


@dataclass(frozen=True)
class Runs:
    """Many runs: ``table`` (one row per run, ``COLUMNS``) and each run's files by run id.

    Iterating gives the ``Run`` objects in the table's order.
    """

    table: pd.DataFrame
    by_id: dict[str, Run]

    def __iter__(self) -> Iterator[Run]:
        return (self.by_id[r] for r in self.table["run_id"])

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, run_id: str) -> Run:
        try:
            return self.by_id[run_id]
        except KeyError:
            raise CnnoptError(f"run '{run_id}' is not among the run folders given") from None

    def __contains__(self, run_id) -> bool:
        return run_id in self.by_id

    def predictions(self) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
        """(run id, "last" or "best") -> (test labels, predicted classes), for the runs whose
        evaluation has them."""
        out = {}
        for run in self:
            for model in ("last", "best"):
                pair = run.predictions(model)
                if pair is not None:
                    out[run.run_id, model] = pair
        return out


def read_runs(run_dirs) -> Runs:
    """Read every run folder into one ``Runs`` (the table without the curve facts, which
    depend on the decision rules: ``judge.metrics.with_curve_facts`` adds them)."""
    read = [read_run(d) for d in run_dirs]
    if not read:
        raise CnnoptError("no runs: the list of run folders is empty")
    frame = pd.DataFrame([_row(r) for r in read], columns=COLUMNS)
    dup = sorted(set(frame["run_id"][frame["run_id"].duplicated()]))
    if dup:
        raise CnnoptError(f"duplicate run ids among the run folders: {', '.join(map(str, dup))}")
    for col in _INT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return Runs(table=sort_runs(frame), by_id={r.run_id: r for r in read})


# ---------------------------------------------------------------- the shown run
def shown_run(table: pd.DataFrame, optimizer: str | None = None) -> str | None:
    """The run a single-run figure shows, fixed without looking at the test set.

    Among the final runs (of ``optimizer`` when given), the optimizer whose final runs have
    the highest mean last-epoch validation accuracy, and of it the first seed (the smallest,
    fixed before training). Without ``optimizer`` and with no final run at all, every run is
    a candidate. None when there is no candidate. Never chosen by test accuracy.
    """
    pool = table[table["role"] == "final"]
    if optimizer is not None:
        pool = pool[pool["optimizer"] == optimizer]
    elif pool.empty:
        pool = table
    if pool.empty:
        return None
    by_opt = pool.groupby("optimizer")["final_val_accuracy"].mean()
    opt = by_opt.idxmax() if by_opt.notna().any() else pool["optimizer"].iloc[0]
    mine = pool[pool["optimizer"] == opt].sort_values("seed", kind="stable")
    return str(mine["run_id"].iloc[0])
