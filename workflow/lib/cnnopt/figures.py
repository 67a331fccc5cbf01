"""The report's figures (matplotlib, Agg backend, PNG at 120 dpi).

One function per figure, each taking its inputs and an output path; ``make_all`` writes
every figure of the report to the paths it is given. Every file is written to a temporary
path first and moved into place, so a failed plot never leaves a half-written PNG.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import io  # noqa: E402
from .aggregate import optimizer_label, optimizer_order  # noqa: E402
from .errors import CnnoptError  # noqa: E402

log = logging.getLogger(__name__)

DPI = 120
#: Fixed colors so an optimizer looks the same in every figure.
COLORS = {"adam": "#1f77b4", "sgd": "#ff7f0e", "rmsprop": "#2ca02c", "adamax": "#d62728"}
_SPARE = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
ROLE_STYLES = {"final": "-", "initial": "--", "baseline": ":", "extra": "-.", "ablation": (0, (1, 1))}

#: Names of the comparison figures ``make_all`` expects in its ``outputs`` mapping.
FIGURES = ("val_accuracy_vs_epoch", "val_accuracy_vs_seconds", "final_accuracy",
           "lr_schedules", "confusion_best")


def color(optimizer: str) -> str:
    if optimizer in COLORS:
        return COLORS[optimizer]
    return _SPARE[sum(map(ord, str(optimizer))) % len(_SPARE)]


def _save(fig, out) -> Path:
    out = Path(out)
    try:
        with io.atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    log.info("wrote %s", out)
    return out


def placeholder(out, message: str) -> Path:
    """A small figure that says why there is nothing to plot (keeps the DAG's outputs whole)."""
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.axis("off")
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec="#999"))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return _save(fig, out)


def _read_history(path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing training history: {path}")
    hist = pd.read_csv(path)
    need = {"epoch", "accuracy", "val_accuracy", "loss", "val_loss"}
    missing = need - set(hist.columns)
    if missing:
        raise CnnoptError(f"history {path} lacks column(s) {', '.join(sorted(missing))}")
    return hist


def _load_run(run_dir) -> dict:
    d = Path(run_dir)
    for name in ("run.json", "metrics.json", "history.csv"):
        if not (d / name).is_file():
            raise CnnoptError(f"missing {name} in run folder {d}")
    return {"dir": d, "spec": io.read_json(d / "run.json"), "metrics": io.read_json(d / "metrics.json"),
            "history": _read_history(d / "history.csv")}


def _load_runs(run_dirs) -> list[dict]:
    runs = [_load_run(d) for d in run_dirs]
    if not runs:
        raise CnnoptError("no runs to plot: the list of run folders is empty")
    order = {o: i for i, o in enumerate(optimizer_order(r["spec"]["optimizer"] for r in runs))}
    roles = {"baseline": 0, "initial": 1, "final": 2, "extra": 3, "ablation": 4}
    runs.sort(key=lambda r: (roles.get(r["spec"].get("role"), 9), order[r["spec"]["optimizer"]],
                             str(r["spec"].get("variant")), r["spec"].get("seed", 0)))
    return runs


def optimizer_curves(history_csv, run_spec, out) -> Path:
    """Train/validation accuracy and loss against epoch for one run (paper Figs 1-4)."""
    hist = _read_history(history_csv)
    spec = io.read_json(run_spec) if isinstance(run_spec, (str, Path)) else dict(run_spec)
    opt = spec.get("optimizer", "")
    c = color(opt)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(hist["epoch"], 100 * hist["accuracy"], color=c, ls="--", marker="o", ms=3, label="train")
    ax1.plot(hist["epoch"], 100 * hist["val_accuracy"], color=c, ls="-", marker="s", ms=3, label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("accuracy (%)")
    ax1.set_title("Accuracy")
    ax2.plot(hist["epoch"], hist["loss"], color=c, ls="--", marker="o", ms=3, label="train")
    ax2.plot(hist["epoch"], hist["val_loss"], color=c, ls="-", marker="s", ms=3, label="validation")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("cross-entropy loss")
    ax2.set_title("Loss")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    fig.suptitle(f"{optimizer_label(opt)}: {spec.get('run_id', '')}", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def _curves(run_dirs, out, x: str, xlabel: str, title: str) -> Path:
    runs = [r for r in _load_runs(run_dirs) if r["spec"].get("role") != "ablation"]
    if not runs:
        raise CnnoptError("no non-ablation runs to plot")
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in runs:
        spec, hist = r["spec"], r["history"]
        opt = spec["optimizer"]
        style = ROLE_STYLES.get(spec.get("role"), "-")
        ax.plot(hist[x], 100 * hist["val_accuracy"], color=color(opt), ls=style, lw=1.6,
                alpha=0.9 if spec.get("seed", 0) == 0 else 0.55, label=spec["run_id"])
        if r["metrics"].get("diverged"):
            ax.plot(hist[x].iloc[-1], 100 * hist["val_accuracy"].iloc[-1], "x", color=color(opt), ms=10, mew=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, out)


def val_accuracy_vs_epoch(run_dirs, out) -> Path:
    """Validation accuracy per epoch of every non-ablation run (x marks a divergence)."""
    return _curves(run_dirs, out, "epoch", "epoch", "Validation accuracy per epoch")


def val_accuracy_vs_seconds(run_dirs, out) -> Path:
    """Validation accuracy against cumulative training time of every non-ablation run."""
    return _curves(run_dirs, out, "elapsed", "training time (s)", "Validation accuracy against wall-clock time")


def final_accuracy(table1_csv, out) -> Path:
    """Initial vs final test accuracy per optimizer; error bars = std over seeds; paper as markers."""
    table = pd.read_csv(table1_csv)
    if table.empty:
        log.warning("%s has no rows: drawing a placeholder", table1_csv)
        return placeholder(out, "No optimizer has both an initial and a final run.")
    x = np.arange(len(table))
    w = 0.38
    fig, ax = plt.subplots(figsize=(8, 4.6))
    cols = [color(o) for o in table["optimizer"]]
    ini, fin = table["initial"].to_numpy(float), table["final"].to_numpy(float)
    ax.bar(x - w / 2, np.nan_to_num(ini), w, yerr=np.nan_to_num(table["initial_std"].to_numpy(float)),
           color=cols, alpha=0.45, edgecolor="black", lw=0.6, capsize=4, label="ours, initial")
    ax.bar(x + w / 2, np.nan_to_num(fin), w, yerr=np.nan_to_num(table["final_std"].to_numpy(float)),
           color=cols, alpha=0.95, edgecolor="black", lw=0.6, capsize=4, label="ours, final")
    ax.plot(x - w / 2, table["paper_initial"], "D", color="black", mfc="white", ms=7, label="paper, initial")
    ax.plot(x + w / 2, table["paper_final"], "D", color="black", ms=7, label="paper, final")
    for xi, v in zip(x - w / 2, ini):
        ax.annotate("n/a" if math.isnan(v) else f"{v:.1f}", (xi, 0 if math.isnan(v) else v),
                    xytext=(0, -14), textcoords="offset points", ha="center", fontsize=8)
    for xi, v in zip(x + w / 2, fin):
        ax.annotate("n/a" if math.isnan(v) else f"{v:.1f}", (xi, 0 if math.isnan(v) else v),
                    xytext=(0, -14), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(x, [optimizer_label(o) for o in table["optimizer"]])
    ax.set_ylabel("test accuracy (%)")
    finite = np.concatenate([ini, fin, table["paper_initial"].to_numpy(float), table["paper_final"].to_numpy(float)])
    finite = finite[np.isfinite(finite)]
    lo = max(0.0, (finite.min() if finite.size else 0) - 15)
    ax.set_ylim(lo, min(100.0, (finite.max() if finite.size else 100) + 6))
    ax.set_title("Test accuracy: initial vs final configuration")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, frameon=False, loc="upper left")
    fig.tight_layout()
    return _save(fig, out)


def lr_schedules(run_dirs, out) -> Path:
    """The learning rate used at each epoch of every run (log scale)."""
    runs = _load_runs(run_dirs)
    fig, ax = plt.subplots(figsize=(8, 4.4))
    plotted = 0
    for r in runs:
        spec, hist = r["spec"], r["history"]
        if "learning_rate" not in hist or spec.get("role") == "ablation":
            continue
        ax.plot(hist["epoch"], hist["learning_rate"], color=color(spec["optimizer"]),
                ls=ROLE_STYLES.get(spec.get("role"), "-"), marker=".", label=spec["run_id"])
        plotted += 1
    if not plotted:
        raise CnnoptError("no history.csv has a learning_rate column to plot")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedules")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, out)


def confusion_matrix(evaluation_json, out) -> Path:
    """Row-normalised confusion matrix (true class in rows) with counts annotated."""
    path = Path(evaluation_json)
    if not path.is_file():
        raise CnnoptError(f"missing evaluation: {path}")
    ev = io.read_json(path)
    cm = np.asarray(ev.get("confusion_matrix") or [], dtype=float)
    names = [str(c) for c in ev.get("class_names") or []]
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names) or not len(names):
        raise CnnoptError(f"{path}: confusion_matrix must be square with one row per class name")
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * k, 0.6 + 0.55 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    short = [n if len(n) <= 14 else n[:13] + "…" for n in names]
    ax.set_xticks(range(k), short, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), short, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = ev.get("test_accuracy")
    ax.set_title(f"{ev.get('run_id', '')}" + (f" (test accuracy {100 * acc:.2f}%)" if acc is not None else ""),
                 fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return _save(fig, out)


def final_run_for(runs: list[dict], opt: str) -> dict:
    """The final run of ``opt`` plotted in its figure: its first seed, fixed in advance (never
    the seed with the best test accuracy, which would select on the test set)."""
    finals = [r for r in runs if r["spec"]["optimizer"] == opt and r["spec"].get("role") == "final"]
    if not finals:
        raise CnnoptError(f"no run with role 'final' for optimizer '{opt}' to plot")
    return min(finals, key=lambda r: r["spec"].get("seed", 0))


def make_all(run_dirs, table1_csv, summary_json, outputs: dict, optimizer_outputs: dict) -> list[Path]:
    """Write every figure of the report; return the paths written.

    ``outputs`` maps each name in ``FIGURES`` to its output path; ``optimizer_outputs`` maps
    an optimizer name to the path of its train/validation figure (its first final seed).
    """
    missing = [n for n in FIGURES if n not in outputs]
    if missing:
        raise CnnoptError(f"no output path given for figure(s): {', '.join(missing)}")
    run_dirs = [Path(d) for d in run_dirs]
    runs = _load_runs(run_dirs)
    written = []
    for opt, path in optimizer_outputs.items():
        r = final_run_for(runs, opt)
        written.append(optimizer_curves(r["dir"] / "history.csv", r["spec"], path))
    written.append(val_accuracy_vs_epoch(run_dirs, outputs["val_accuracy_vs_epoch"]))
    written.append(val_accuracy_vs_seconds(run_dirs, outputs["val_accuracy_vs_seconds"]))
    written.append(final_accuracy(table1_csv, outputs["final_accuracy"]))
    written.append(lr_schedules(run_dirs, outputs["lr_schedules"]))
    summ = io.read_json(summary_json)
    best = (summ.get("best") or {}).get("run_id")
    if best is None:
        written.append(placeholder(outputs["confusion_best"], "Every run diverged: no confusion matrix."))
        return written
    match = [r for r in runs if r["spec"].get("run_id") == best or r["dir"].name == best]
    if not match:
        raise CnnoptError(f"{summary_json}: best run '{best}' is not among the run folders given")
    written.append(confusion_matrix(match[0]["dir"] / "evaluation.json", outputs["confusion_best"]))
    return written
