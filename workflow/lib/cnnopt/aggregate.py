"""Aggregate the training runs into the tables of the report.

``collect_runs`` reads every run folder (run.json, metrics.json, evaluation.json) into one
frame; ``table1``, ``ablation`` and ``summary`` derive the paper's Table 1, the
regularization ablation and a JSON summary from it; ``aggregate`` writes all four files.

Accuracies in the frames are percent. A diverged run (metrics ``diverged`` true) counts in
the means with the accuracy it scored, and each table says how many of its runs diverged.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import io, verdicts
from .errors import CnnoptError
from .paper import OPTIMIZER_LABELS, PAPER_BASELINE, PAPER_TABLE1
from .verdicts import DEFAULT_RULES

log = logging.getLogger(__name__)

RUN_COLUMNS = [
    "run_id", "optimizer", "variant", "role", "label", "seed", "epochs", "batch_size",
    "test_accuracy", "test_loss", "train_seconds", "images_per_second",
    "inference_images_per_second", "convergence_epoch", "best_val_accuracy", "params",
    "diverged", "key_adjustments",
]
#: Extra per-run columns kept after the spec's ones (used by the report).
EXTRA_COLUMNS = ["diverged_epoch", "epochs_run", "dropout", "conv_dropout", "l2", "batch_norm", "architecture",
                 "backend", "device", "validation_size", "n_test", "final_val_accuracy",
                 "epochs_to_target", "seconds_to_target", "still_rising"]

TABLE1_COLUMNS = [
    "optimizer", "label", "initial", "initial_std", "final", "final_std", "paper_initial",
    "paper_final", "initial_diff", "final_diff", "key_adjustments", "initial_seconds",
    "final_seconds", "seeds", "initial_seeds", "diverged", "diverged_runs",
    "final_epochs_to_target", "final_seconds_to_target",
]
ABLATION_COLUMNS = [
    "variant", "label", "optimizer", "test_accuracy", "test_accuracy_std", "train_seconds",
    "seeds", "diverged", "reference", "reference_accuracy", "delta",
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


def _curve_facts(d: Path, val_target: float, rising_epochs: int, rising_points: float) -> dict:
    """From a run's history.csv: epochs and seconds to the validation target, still rising."""
    path = d / "history.csv"
    if not path.is_file():
        raise CnnoptError(f"missing history: {path} (expected the history.csv of a finished run)")
    hist = pd.read_csv(path)
    val = pd.to_numeric(hist["val_accuracy"], errors="coerce") * 100
    reached = hist[val >= val_target]
    first = reached.iloc[0] if len(reached) else None
    # still rising: the last epoch's validation accuracy is more than rising_points above the
    # one rising_epochs earlier (a curve too short to tell counts as rising)
    rising = (len(val) <= rising_epochs
              or bool(val.iloc[-1] - val.iloc[-1 - rising_epochs] > rising_points))
    return {"epochs_to_target": None if first is None else int(first["epoch"]),
            "seconds_to_target": math.nan if first is None else float(first["elapsed"]),
            "still_rising": rising}


def collect_runs(run_dirs, rules: dict | None = None) -> pd.DataFrame:
    """One row per run folder, with the runs.csv columns (accuracies in percent).

    ``rules`` (the config's ``verdicts`` block) sets the validation target and what counts
    as a still-rising curve.
    """
    rules = DEFAULT_RULES | dict(rules or {})
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
        curve = _curve_facts(d, rules["val_target"], rules["rising_epochs"], rules["rising_points"])
        n_test = sum(sum(r) for r in ev["confusion_matrix"]) if ev.get("confusion_matrix") else None
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
            "validation_size": spec.get("validation_size"),
            "n_test": n_test,
            "final_val_accuracy": _num(m.get("final_val_accuracy"), 100.0),
            **curve,
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS + EXTRA_COLUMNS)
    dup = frame["run_id"][frame["run_id"].duplicated()].tolist()
    if dup:
        raise CnnoptError(f"duplicate run ids among the run folders: {', '.join(map(str, dup))}")
    for col in ("convergence_epoch", "diverged_epoch", "params", "epochs_run", "seed", "epochs",
                "batch_size", "validation_size", "n_test", "epochs_to_target"):
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


def _diverged_text(frame: pd.DataFrame) -> str:
    """"k of n diverged" for the runs of ``frame`` ("" when none did)."""
    k = int(frame["diverged"].astype(bool).sum())
    return f"{k} of {len(frame)} diverged" if k else ""


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: initial and final test accuracy per optimizer, ours beside the paper's.

    Means are over every seed, diverged runs included; time to target is the mean over the
    final runs that reached the validation target (``verdicts.val_target``).
    """
    rows = []
    present = runs.groupby("optimizer")["role"].agg(set)
    for opt in optimizer_order(runs["optimizer"]):
        if not {"initial", "final"} <= present.get(opt, set()):
            continue
        mine = runs[runs["optimizer"] == opt]
        ini, fin = mine[mine["role"] == "initial"], mine[mine["role"] == "final"]
        i_mean, i_std, i_n = _stats(ini["test_accuracy"])
        f_mean, f_std, f_n = _stats(fin["test_accuracy"])
        paper = PAPER_TABLE1.get(opt, {})
        p_i, p_f = _num(paper.get("initial")), _num(paper.get("final"))
        ours_adj = [k for k in fin["key_adjustments"] if isinstance(k, str) and k]
        rows.append({
            "optimizer": opt, "label": optimizer_label(opt),
            "initial": i_mean, "initial_std": i_std, "final": f_mean, "final_std": f_std,
            "paper_initial": p_i, "paper_final": p_f,
            "initial_diff": i_mean - p_i, "final_diff": f_mean - p_f,
            "key_adjustments": ours_adj[0] if ours_adj else paper.get("key_adjustments", ""),
            "initial_seconds": _stats(ini["train_seconds"])[0],
            "final_seconds": _stats(fin["train_seconds"])[0],
            "seeds": f_n, "initial_seeds": i_n,
            "diverged": int(ini["diverged"].sum() + fin["diverged"].sum()),
            "diverged_runs": _diverged_text(pd.concat([ini, fin])),
            "final_epochs_to_target": _stats(fin["epochs_to_target"].astype(float))[0],
            "final_seconds_to_target": _stats(fin["seconds_to_target"])[0],
        })
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def ablation(runs: pd.DataFrame) -> pd.DataFrame:
    """The twins (role ``ablation``), mean and std over seeds, beside the final run they vary.

    ``delta`` is the final run's mean minus the twin's: what the ingredient the twin lacks
    adds to the final recipe (positive: the ingredient helps). The claims table tests it.
    """
    abl = runs[runs["role"] == "ablation"]
    rows = []
    for (variant, opt), grp in abl.groupby(["variant", "optimizer"], sort=False):
        mean, std, n = _stats(grp["test_accuracy"])
        final = runs[(runs["optimizer"] == opt) & (runs["role"] == "final")]
        ref = _stats(final["test_accuracy"])[0] if len(final) else math.nan
        rows.append({
            "variant": variant, "label": grp.iloc[0]["label"], "optimizer": opt,
            "test_accuracy": mean, "test_accuracy_std": std,
            "train_seconds": _stats(grp["train_seconds"])[0], "seeds": n,
            "diverged": int(grp["diverged"].sum()),
            "reference": "final" if len(final) else "", "reference_accuracy": ref,
            "delta": ref - mean,
        })
    frame = pd.DataFrame(rows, columns=ABLATION_COLUMNS)
    if len(frame):
        frame["_o"] = frame["optimizer"].map({o: i for i, o in enumerate(optimizer_order(frame["optimizer"]))})
        frame = frame.sort_values(["_o", "variant"]).drop(columns="_o")
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
    ok = runs
    base = runs[runs["role"] == "baseline"]
    b_mean, b_std, b_n = _stats(base["test_accuracy"])
    out = {
        "baseline": {
            "test_accuracy": b_mean, "std": b_std, "seeds": b_n, "paper": PAPER_BASELINE,
            "diff": b_mean - PAPER_BASELINE, "train_seconds": _stats(base["train_seconds"])[0],
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
    shown = shown_run(ok)
    if shown is not None:  # chosen on validation accuracy (see shown_run), never on the test set
        row = ok[ok["run_id"] == shown].iloc[0]
        out["best"] = {"run_id": shown, "optimizer": row["optimizer"], "variant": row["variant"],
                       "role": row["role"], "test_accuracy": row["test_accuracy"],
                       "chosen_by": "mean last-epoch validation accuracy; first seed"}
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
    return _clean(out)


def shown_run(runs: pd.DataFrame) -> str | None:
    """The run the report's single-run figures show: the first seed of the final recipe with
    the highest mean last-epoch validation accuracy. Never chosen by test accuracy."""
    final = runs[runs["role"] == "final"]
    if final.empty:
        final = runs
    if final.empty:
        return None
    by_opt = final.groupby("optimizer")["final_val_accuracy"].mean()
    opt = by_opt.idxmax() if by_opt.notna().any() else final["optimizer"].iloc[0]
    return str(final[final["optimizer"] == opt].sort_values("seed")["run_id"].iloc[0])


def read_predictions(run_dirs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run id -> (test labels, predicted classes), from each run's evaluation.json."""
    out = {}
    for d in map(Path, run_dirs):
        ev = _read(d / "evaluation.json", "evaluation")
        if "predictions" in ev and "labels" in ev:
            out[ev.get("run_id") or d.name] = (np.asarray(ev["labels"]), np.asarray(ev["predictions"]))
    return out


def aggregate(run_dirs, out_runs, out_table1, out_ablation, out_summary, out_claims,
              rules: dict | None = None, scale: str = "reduced") -> dict:
    """Collect the runs; write runs.csv, table1.csv, ablation.csv, summary.json and claims.csv.

    ``rules`` is the config's ``verdicts`` block and ``scale`` its ``scale``: how each claim
    of the paper (``claims.yaml``) is judged.
    """
    runs = collect_runs(run_dirs, rules)
    table = table1(runs)
    abl = ablation(runs)
    summ = summary(runs, table, abl)
    claims = verdicts.judge(verdicts.load_claims(), runs, read_predictions(run_dirs), rules, scale)
    summ["verdicts"] = _clean(claims["verdict"].value_counts().to_dict())
    summ["scale"] = scale
    if runs["diverged"].any():
        log.warning("diverged runs (counted in the means): %s",
                    ", ".join(runs.loc[runs["diverged"].astype(bool), "run_id"]))
    io.write_csv(out_runs, runs)
    io.write_csv(out_table1, table)
    io.write_csv(out_ablation, abl)
    io.write_csv(out_claims, claims)
    io.write_json(out_summary, summ)
    log.info("aggregated %d runs: %d Table 1 rows, %d ablation rows, %d claims (%s)", len(runs),
             len(table), len(abl), len(claims),
             ", ".join(f"{k} {v}" for k, v in summ["verdicts"].items()))
    return summ
