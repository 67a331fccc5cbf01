"""Aggregate the training runs into the tables of the report.

``collect_runs`` reads every run folder (run.json, metrics.json, evaluation.json) into one
frame; ``table1``, ``ablation`` and ``summary`` derive the paper's Table 1, the
regularization ablation and a JSON summary from it; ``aggregate`` writes all four files.

Accuracies in the frames are percent. A diverged run (metrics ``diverged`` true) stays in
the per-run table, flagged, but never enters a mean.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import io
from .errors import CnnoptError
from .paper import OPTIMIZER_LABELS, PAPER_BASELINE, PAPER_TABLE1

log = logging.getLogger(__name__)

RUN_COLUMNS = [
    "run_id", "optimizer", "variant", "role", "label", "seed", "epochs", "batch_size",
    "test_accuracy", "test_loss", "train_seconds", "images_per_second",
    "inference_images_per_second", "convergence_epoch", "best_val_accuracy", "params",
    "diverged", "key_adjustments",
]
#: Extra per-run columns kept after the spec's ones (used by the report).
EXTRA_COLUMNS = ["diverged_epoch", "epochs_run", "dropout", "conv_dropout", "l2", "batch_norm", "architecture",
                 "backend", "device"]

TABLE1_COLUMNS = [
    "optimizer", "label", "initial", "initial_std", "final", "final_std", "paper_initial",
    "paper_final", "initial_diff", "final_diff", "key_adjustments", "initial_seconds",
    "final_seconds", "seeds", "initial_seeds", "diverged",
]
ABLATION_COLUMNS = [
    "variant", "label", "optimizer", "test_accuracy", "test_accuracy_std", "train_seconds",
    "seeds", "diverged", "dropout", "conv_dropout", "l2", "batch_norm", "reference", "reference_accuracy",
    "delta",
]
ROLE_ORDER = {"baseline": 0, "initial": 1, "final": 2, "extra": 3, "ablation": 4}


def optimizer_order(names) -> list[str]:
    """The paper's optimizer order first (Adam, SGD, RMSprop, Adamax), then the rest sorted."""
    names = list(dict.fromkeys(names))
    known = [o for o in PAPER_TABLE1 if o in names]
    return known + sorted(o for o in names if o not in PAPER_TABLE1)


def optimizer_label(name: str) -> str:
    return OPTIMIZER_LABELS.get(name, name)


def _read(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CnnoptError(f"missing {what}: {path} (expected the {path.name} of a finished run)")
    try:
        return io.read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise CnnoptError(f"cannot read {what} {path}: {exc}") from exc


def _num(value, scale=1.0):
    """A float (times ``scale``) or NaN for None/missing/non-finite."""
    if value is None:
        return math.nan
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v * scale if math.isfinite(v) else math.nan


def collect_runs(run_dirs) -> pd.DataFrame:
    """One row per run folder, with the runs.csv columns (accuracies in percent)."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise CnnoptError("no runs to aggregate: the list of run folders is empty")
    rows = []
    for d in run_dirs:
        spec = _read(d / "run.json", "run spec")
        m = _read(d / "metrics.json", "metrics")
        ev = _read(d / "evaluation.json", "evaluation")
        model = spec.get("model") or {}
        diverged = bool(m.get("diverged", False))
        test_acc = ev.get("test_accuracy", m.get("test_accuracy"))
        if test_acc is None:
            test_acc = m.get("test_accuracy")
        run_id = spec.get("run_id") or m.get("run_id") or d.name
        rows.append({
            "run_id": run_id,
            "optimizer": spec.get("optimizer", m.get("optimizer")),
            "variant": spec.get("variant", m.get("variant")),
            "role": spec.get("role", m.get("role")),
            "label": spec.get("label", ""),
            "seed": spec.get("seed", m.get("seed")),
            "epochs": spec.get("epochs", m.get("epochs")),
            "batch_size": spec.get("batch_size"),
            "test_accuracy": _num(test_acc, 100.0),
            "test_loss": _num(ev.get("test_loss", m.get("test_loss"))),
            "train_seconds": _num(m.get("train_seconds")),
            "images_per_second": _num(m.get("images_per_second")),
            "inference_images_per_second": _num(ev.get("inference_images_per_second")),
            "convergence_epoch": m.get("convergence_epoch"),
            "best_val_accuracy": _num(m.get("best_val_accuracy"), 100.0),
            "params": m.get("params"),
            "diverged": diverged,
            "key_adjustments": spec.get("key_adjustments") or "",
            "diverged_epoch": m.get("diverged_epoch"),
            "epochs_run": m.get("epochs_run"),
            "dropout": _num(model.get("dropout", 0.0)),
            "conv_dropout": _num(model.get("conv_dropout", 0.0)),
            "l2": _num(model.get("l2", 0.0)),
            "batch_norm": bool(model.get("batch_norm", False)),
            "architecture": model.get("architecture", ""),
            "backend": m.get("backend", ""),
            "device": m.get("device", ""),
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS + EXTRA_COLUMNS)
    dup = frame["run_id"][frame["run_id"].duplicated()].tolist()
    if dup:
        raise CnnoptError(f"duplicate run ids among the run folders: {', '.join(map(str, dup))}")
    for col in ("convergence_epoch", "diverged_epoch", "params", "epochs_run", "seed", "epochs",
                "batch_size"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    frame["_o"] = frame["optimizer"].map({o: i for i, o in enumerate(optimizer_order(frame["optimizer"]))})
    frame["_r"] = frame["role"].map(ROLE_ORDER).fillna(9)
    frame = frame.sort_values(["_r", "_o", "variant", "seed"]).drop(columns=["_o", "_r"])
    return frame.reset_index(drop=True)


def _stats(values: pd.Series):
    """(mean, std, n) over non-NaN values; std is NaN for fewer than two."""
    v = values.dropna().astype(float)
    n = int(len(v))
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[~runs["diverged"].astype(bool)]


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: initial and final test accuracy per optimizer, ours beside the paper's."""
    rows = []
    present = runs.groupby("optimizer")["role"].agg(set)
    for opt in optimizer_order(runs["optimizer"]):
        if not {"initial", "final"} <= present.get(opt, set()):
            continue
        mine = runs[runs["optimizer"] == opt]
        ini_all, fin_all = mine[mine["role"] == "initial"], mine[mine["role"] == "final"]
        ini, fin = _usable(ini_all), _usable(fin_all)
        i_mean, i_std, i_n = _stats(ini["test_accuracy"])
        f_mean, f_std, f_n = _stats(fin["test_accuracy"])
        paper = PAPER_TABLE1.get(opt, {})
        p_i, p_f = _num(paper.get("initial")), _num(paper.get("final"))
        ours_adj = [k for k in fin_all["key_adjustments"] if isinstance(k, str) and k]
        rows.append({
            "optimizer": opt, "label": optimizer_label(opt),
            "initial": i_mean, "initial_std": i_std, "final": f_mean, "final_std": f_std,
            "paper_initial": p_i, "paper_final": p_f,
            "initial_diff": i_mean - p_i, "final_diff": f_mean - p_f,
            "key_adjustments": ours_adj[0] if ours_adj else paper.get("key_adjustments", ""),
            "initial_seconds": _stats(ini["train_seconds"])[0],
            "final_seconds": _stats(fin["train_seconds"])[0],
            "seeds": f_n, "initial_seeds": i_n,
            "diverged": int(ini_all["diverged"].sum() + fin_all["diverged"].sum()),
        })
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def _no_regularization(row) -> bool:
    return (not row["batch_norm"]) and not any(row[k] > 0 for k in ("dropout", "conv_dropout", "l2"))


def ablation(runs: pd.DataFrame) -> pd.DataFrame:
    """Ablation runs grouped by variant (and optimizer), mean and std over seeds.

    ``delta`` compares each variant with a reference of the same optimizer: the ablation
    variant without any regularization if there is one, else that optimizer's initial runs.
    """
    abl = runs[runs["role"] == "ablation"]
    rows = []
    for (variant, opt), grp in abl.groupby(["variant", "optimizer"], sort=False):
        ok = _usable(grp)
        mean, std, n = _stats(ok["test_accuracy"])
        first = grp.iloc[0]
        rows.append({
            "variant": variant, "label": first["label"], "optimizer": opt,
            "test_accuracy": mean, "test_accuracy_std": std,
            "train_seconds": _stats(ok["train_seconds"])[0], "seeds": n,
            "diverged": int(grp["diverged"].sum()),
            "dropout": first["dropout"], "conv_dropout": first["conv_dropout"], "l2": first["l2"], "batch_norm": bool(first["batch_norm"]),
        })
    for row in rows:
        plain = [r for r in rows if r["optimizer"] == row["optimizer"] and _no_regularization(r)]
        if plain:
            ref_name, ref_acc = str(plain[0]["variant"]), plain[0]["test_accuracy"]
        else:
            ini = _usable(runs[(runs["optimizer"] == row["optimizer"]) & (runs["role"] == "initial")])
            ref_name, ref_acc = ("initial", _stats(ini["test_accuracy"])[0]) if len(ini) else ("", math.nan)
        row.update(reference=ref_name, reference_accuracy=ref_acc,
                   delta=row["test_accuracy"] - ref_acc)
    frame = pd.DataFrame(rows, columns=ABLATION_COLUMNS)
    if len(frame):
        frame["_o"] = frame["optimizer"].map({o: i for i, o in enumerate(optimizer_order(frame["optimizer"]))})
        frame = frame.sort_values(["_o", "test_accuracy"], ascending=[True, False]).drop(columns="_o")
    return frame.reset_index(drop=True)


def _clean(value):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is pd.NA or value is None:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def summary(runs: pd.DataFrame, table: pd.DataFrame | None = None,
            abl: pd.DataFrame | None = None) -> dict:
    """Headline numbers for the report: baseline, best run, ranking, improvements, totals."""
    table = table1(runs) if table is None else table
    abl = ablation(runs) if abl is None else abl
    ok = _usable(runs)
    base = runs[runs["role"] == "baseline"]
    b_mean, b_std, b_n = _stats(_usable(base)["test_accuracy"])
    out = {
        "baseline": {
            "test_accuracy": b_mean, "std": b_std, "seeds": b_n, "paper": PAPER_BASELINE,
            "diff": b_mean - PAPER_BASELINE, "train_seconds": _stats(_usable(base)["train_seconds"])[0],
            "run_ids": base["run_id"].tolist(),
            "epochs": int(base["epochs"].dropna().iloc[0]) if base["epochs"].notna().any() else None,
        },
        "n_runs": int(len(runs)),
        "n_diverged": int(runs["diverged"].sum()),
        "diverged": [{"run_id": r.run_id, "diverged_epoch": r.diverged_epoch}
                     for r in runs[runs["diverged"].astype(bool)].itertuples()],
        "total_train_seconds": float(runs["train_seconds"].fillna(0).sum()),
        "backends": sorted({str(b) for b in runs["backend"] if isinstance(b, str) and b}),
        "devices": sorted({str(b) for b in runs["device"] if isinstance(b, str) and b}),
    }
    scored = ok[ok["test_accuracy"].notna()]
    if len(scored):
        best = scored.loc[scored["test_accuracy"].idxmax()]
        out["best"] = {"run_id": best["run_id"], "optimizer": best["optimizer"],
                       "variant": best["variant"], "role": best["role"],
                       "test_accuracy": best["test_accuracy"]}
    else:
        out["best"] = None
    fin = table[table["final"].notna()]
    ours = fin.sort_values("final", ascending=False)["optimizer"].tolist()
    paper = [o for o in sorted(PAPER_TABLE1, key=lambda o: -PAPER_TABLE1[o]["final"]) if o in ours]
    out["ranking"] = {"ours": ours, "paper": paper,
                      "matches": bool(ours) and [o for o in ours if o in PAPER_TABLE1] == paper,
                      "best_matches": bool(ours) and bool(paper) and ours[0] == paper[0]}
    out["best_final"] = ({"optimizer": fin.loc[fin["final"].idxmax(), "optimizer"],
                          "test_accuracy": fin["final"].max()} if len(fin) else None)
    out["improvement"] = {r.optimizer: {"ours": r.final - r.initial,
                                        "paper": r.paper_final - r.paper_initial}
                          for r in table.itertuples()}
    gains = abl[abl["delta"].notna() & (abl["reference"] != abl["variant"])]
    if len(gains):
        top = gains.loc[gains["delta"].idxmax()]
        out["best_regularization"] = {"variant": top["variant"], "label": top["label"],
                                      "optimizer": top["optimizer"], "delta": top["delta"],
                                      "test_accuracy": top["test_accuracy"],
                                      "reference": top["reference"]}
    else:
        out["best_regularization"] = None
    return _clean(out)


def aggregate(run_dirs, out_runs, out_table1, out_ablation, out_summary) -> dict:
    """Collect the runs and write runs.csv, table1.csv, ablation.csv and summary.json."""
    runs = collect_runs(run_dirs)
    table = table1(runs)
    abl = ablation(runs)
    summ = summary(runs, table, abl)
    if runs["diverged"].any():
        log.warning("diverged runs (excluded from means): %s",
                    ", ".join(runs.loc[runs["diverged"].astype(bool), "run_id"]))
    io.write_csv(out_runs, runs)
    io.write_csv(out_table1, table)
    io.write_csv(out_ablation, abl)
    io.write_json(out_summary, summ)
    log.info("aggregated %d runs: %d Table 1 rows, %d ablation rows", len(runs), len(table), len(abl))
    return summ
