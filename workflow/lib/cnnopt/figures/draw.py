"""The report's figures (matplotlib, Agg backend, PNG at 120 dpi).

One function per figure, each taking its inputs and an output path; ``make_all`` writes
every figure of the report to the paths it is given. Every file is written to a temporary
path first and moved into place, so a failed plot never leaves a half-written PNG. A figure
drawn from runs names them in the PNG's ``Source`` text (``drawn_runs`` reads it back).

The runs come from ``runs.read_runs`` and the run a single-run figure shows from
``runs.shown_run``: this module reads no run file itself.
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
from PIL import Image  # noqa: E402

from cnnopt.common import files  # noqa: E402
from cnnopt.common.errors import CnnoptError  # noqa: E402
from cnnopt.common.registry import optimizer_label  # noqa: E402
from cnnopt.common.runs import Run, Runs, read_run, read_runs, shown_run  # noqa: E402
from cnnopt.figures.names import FIGURES, figure_optimizer, optimizer_figure_name, tuning_figure_name  # noqa: E402,F401

log = logging.getLogger(__name__)

DPI = 120
#: Fixed colors so each of the paper's optimizers looks the same in every figure.
COLORS = {"adam": "#1f77b4", "sgd": "#ff7f0e", "rmsprop": "#2ca02c", "adamax": "#d62728"}
#: Colors for any other optimizer, handed out in order of name (see ``palette``).
SPARE = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
#: Line style per run role (every role of ``runs.ROLE_ORDER``).
ROLE_STYLES = {"final": "-", "initial": "--", "baseline": ":", "extra": "-.", "ablation": (0, (1, 1))}



def palette(optimizers) -> dict[str, str]:
    """A color per optimizer: the paper's four keep theirs (``COLORS``); any other takes a
    spare color in order of name, so up to ten optimizers of one study all differ."""
    names = list(dict.fromkeys(optimizers))
    others = sorted(n for n in names if n not in COLORS)
    return {n: COLORS[n] for n in names if n in COLORS} | {
        n: SPARE[i % len(SPARE)] for i, n in enumerate(others)}


def _save(fig, out, runs=()) -> Path:
    out = Path(out)
    meta = {"Source": "runs: " + ", ".join(runs)} if runs else {}
    try:
        with files.atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata=meta)
    finally:
        plt.close(fig)
    log.info("wrote %s", out)
    return out


def drawn_runs(png) -> list[str]:
    """The run ids a figure written here was drawn from (its ``Source`` text; [] if none)."""
    with Image.open(png) as im:
        source = im.text.get("Source", "")
    return source.removeprefix("runs: ").split(", ") if source else []


def placeholder(out, message: str) -> Path:
    """A small figure that says why there is nothing to plot (keeps the DAG's outputs whole)."""
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.axis("off")
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec="#999"))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return _save(fig, out)


def _run(run) -> Run:
    return run if isinstance(run, Run) else read_run(run)


def _runs(runs) -> Runs:
    return runs if isinstance(runs, Runs) else read_runs(runs)


def optimizer_curves(run, out, color: str | None = None) -> Path:
    """Train/validation accuracy and loss against epoch for one run (paper Figs 1-4).

    ``run`` is a run folder or a ``runs.Run``.
    """
    run = _run(run)
    hist, opt = run.history, run.get("optimizer", "")
    c = color or palette([opt])[opt]
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
    fig.suptitle(f"{optimizer_label(opt)}: {run.spec.get('run_id', '')}", fontsize=11)
    fig.tight_layout()
    return _save(fig, out, [run.run_id])


def _plotted(runs: Runs) -> list[tuple[object, Run, bool]]:
    """(table row, run, first seed?) of every non-ablation run, in the table's order."""
    table = runs.table
    first = table["seed"].eq(table.groupby(["optimizer", "variant"])["seed"].transform("min"))
    return [(row, runs[row.run_id], bool(f))
            for row, f in zip(table.itertuples(), first.fillna(False), strict=True)
            if row.role != "ablation"]


def _curves(runs, out, x: str, xlabel: str, title: str) -> Path:
    runs = _runs(runs)
    plotted = _plotted(runs)
    if not plotted:
        raise CnnoptError("no non-ablation runs to plot")
    colors = palette(runs.table["optimizer"])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for row, run, first in plotted:
        hist, c = run.history, colors[row.optimizer]
        ax.plot(hist[x], 100 * hist["val_accuracy"], color=c, ls=ROLE_STYLES.get(row.role, "-"),
                lw=1.6, alpha=0.9 if first else 0.55, label=row.run_id)
        if row.diverged:
            ax.plot(hist[x].iloc[-1], 100 * hist["val_accuracy"].iloc[-1], "x", color=c, ms=10, mew=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, out, [row.run_id for row, *_ in plotted])


def val_accuracy_vs_epoch(runs, out) -> Path:
    """Validation accuracy per epoch of every non-ablation run (x marks a divergence).

    ``runs`` is a list of run folders or a ``runs.Runs`` (so for every function below).
    """
    return _curves(runs, out, "epoch", "epoch", "Validation accuracy per epoch")


def val_accuracy_vs_seconds(runs, out) -> Path:
    """Validation accuracy against cumulative training time of every non-ablation run."""
    return _curves(runs, out, "elapsed", "training time (s)", "Validation accuracy against wall-clock time")


def final_accuracy(table1_csv, out, colors: dict | None = None) -> Path:
    """Initial vs final test accuracy per optimizer; error bars = std over seeds; paper as markers.

    ``colors`` maps optimizers to colors (default: ``palette`` of the table's optimizers).
    """
    table = pd.read_csv(table1_csv)
    if table.empty:
        log.warning("%s has no rows: drawing a placeholder", table1_csv)
        return placeholder(out, "No optimizer has both an initial and a final run.")
    x = np.arange(len(table))
    w = 0.38
    fig, ax = plt.subplots(figsize=(8, 4.6))
    colors = colors or palette(table["optimizer"])
    cols = [colors[o] for o in table["optimizer"]]
    ini, fin = table["initial"].to_numpy(float), table["final"].to_numpy(float)
    ax.bar(x - w / 2, np.nan_to_num(ini), w, yerr=np.nan_to_num(table["initial_std"].to_numpy(float)),
           color=cols, alpha=0.45, edgecolor="black", lw=0.6, capsize=4, label="ours, initial")
    ax.bar(x + w / 2, np.nan_to_num(fin), w, yerr=np.nan_to_num(table["final_std"].to_numpy(float)),
           color=cols, alpha=0.95, edgecolor="black", lw=0.6, capsize=4, label="ours, final")
    ax.plot(x - w / 2, table["paper_initial"], "D", color="black", mfc="white", ms=7, label="paper, initial")
    ax.plot(x + w / 2, table["paper_final"], "D", color="black", ms=7, label="paper, final")
    for xi, v in [*zip(x - w / 2, ini, strict=True), *zip(x + w / 2, fin, strict=True)]:
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


def lr_schedules(runs, out) -> Path:
    """The learning rate used at each epoch of every non-ablation run (log scale)."""
    runs = _runs(runs)
    colors = palette(runs.table["optimizer"])
    fig, ax = plt.subplots(figsize=(8, 4.4))
    drawn = []
    for row, run, _ in _plotted(runs):
        hist = run.history
        if "learning_rate" not in hist:
            continue
        ax.plot(hist["epoch"], hist["learning_rate"], color=colors[row.optimizer],
                ls=ROLE_STYLES.get(row.role, "-"), marker=".", label=row.run_id)
        drawn.append(row.run_id)
    if not drawn:
        plt.close(fig)
        raise CnnoptError("no history.csv has a learning_rate column to plot")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedules")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, out, drawn)


def confusion_matrix(run, out) -> Path:
    """Row-normalised confusion matrix (true class in rows) with counts annotated.

    ``run`` is a run folder or a ``runs.Run``; its evaluation.json gives the matrix.
    """
    run = _run(run)
    ev = run.evaluation
    cm = np.asarray(ev.get("confusion_matrix") or [], dtype=float)
    names = [str(c) for c in ev.get("class_names") or []]
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names) or not len(names):
        raise CnnoptError(f"{run.dir / 'evaluation.json'}: confusion_matrix must be square with "
                          "one row per class name")
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * k, 0.6 + 0.55 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    short = [n if len(n) <= 14 else n[:13] + "\u2026" for n in names]
    ax.set_xticks(range(k), short, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), short, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = ev.get("test_accuracy")
    ax.set_title(f"{ev.get('run_id', '')}" + (f" (test accuracy {100 * acc:.2f}%)" if acc is not None else ""),
                 fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return _save(fig, out, [run.run_id])


def make_all(run_dirs, table1_csv, summary_json, outputs: dict, optimizer_outputs: dict) -> list[Path]:
    """Write every figure of the report; return the paths written.

    ``outputs`` maps each name in ``FIGURES`` to its output path; ``optimizer_outputs`` maps
    an optimizer name to the path of its train/validation figure, which shows the run
    ``runs.shown_run`` picks for it (its first final seed). The confusion matrix shows the
    run summary.json names as ``best`` (also picked by ``runs.shown_run``, in aggregation).
    """
    missing = [n for n in FIGURES if n not in outputs]
    if missing:
        raise CnnoptError(f"no output path given for figure(s): {', '.join(missing)}")
    runs = read_runs(run_dirs)
    # every run to show is found before any figure is drawn: a bad input writes nothing
    shown = {}
    for opt in optimizer_outputs:
        shown[opt] = shown_run(runs.table, opt)
        if shown[opt] is None:
            raise CnnoptError(f"no run with role 'final' for optimizer '{opt}' to plot")
    best = (files.read_json(summary_json).get("best") or {}).get("run_id")
    if best is not None and best not in runs:
        raise CnnoptError(f"{summary_json}: best run '{best}' is not among the run folders given")
    colors = palette(runs.table["optimizer"])
    written = [optimizer_curves(runs[shown[opt]], path, colors[opt])
               for opt, path in optimizer_outputs.items()]
    written.append(val_accuracy_vs_epoch(runs, outputs["val_accuracy_vs_epoch"]))
    written.append(val_accuracy_vs_seconds(runs, outputs["val_accuracy_vs_seconds"]))
    written.append(final_accuracy(table1_csv, outputs["final_accuracy"], colors))
    written.append(lr_schedules(runs, outputs["lr_schedules"]))
    if best is None:
        written.append(placeholder(outputs["confusion_best"], "Every run diverged: no confusion matrix."))
    else:
        written.append(confusion_matrix(runs[best], outputs["confusion_best"]))
    return written


#: The markers of a search's rungs, first to last: a candidate's score is read at the rung
#: where it stopped, and only scores of one rung (one budget) are joined by a line.
RUNG_MARKERS = ("o", "s", "D", "^", "v", "P")


def rung_lines(candidates: pd.DataFrame) -> list[dict]:
    """The lines of a search's figure: per optimizer and rung (``rung``, 0 = the first), the
    candidates that stopped there and did not diverge, by rate (``rates``, ``scores``); a
    table without rungs (a search without halving) is one rung."""
    rung = (pd.to_numeric(candidates["rung"], errors="coerce").fillna(0).astype(int)
            if "rung" in candidates else pd.Series(0, index=candidates.index))
    ok = candidates.assign(rung=rung)[~candidates["diverged"].astype(bool)]
    return [{"optimizer": opt, "rung": int(k), "rates": at["learning_rate"].tolist(),
             "scores": at["score"].tolist()}
            for (opt, k), at in ok.sort_values("learning_rate").groupby(["optimizer", "rung"], sort=False)]


def tuning_curves(candidates_csv, search: str, out) -> Path:
    """Validation accuracy against learning rate in one search, per optimizer (log x).

    Each candidate is scored at the rung where it stopped (successive halving: a promoted one
    at a later rung, on a longer budget), so its marker says the rung, and only candidates that
    stopped at the same rung are joined by a line: scores of different budgets are never drawn
    as one curve. The chosen rate of each optimizer is filled; a diverged candidate is an ``x``
    on the x axis (it scored nothing and was never chosen).
    """
    table = pd.read_csv(candidates_csv)
    table = table[table["search"] == search]
    if table.empty:
        return placeholder(out, f"Search {search} has no candidates.")
    lines = rung_lines(table)
    rungs = sorted({line["rung"] for line in lines})
    marker = {k: RUNG_MARKERS[min(i, len(RUNG_MARKERS) - 1)] for i, k in enumerate(rungs)}
    colors = palette(table["optimizer"])
    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    for line in lines:
        k = line["rung"]
        ax.plot(line["rates"], line["scores"], "-", marker=marker[k], color=colors[line["optimizer"]],
                mfc="white", ms=5, lw=1 if k == rungs[0] else 0.6)
    for opt, grp in table.groupby("optimizer", sort=False):
        ax.plot([], [], "-", color=colors[opt], label=optimizer_label(opt))
        for line in rung_lines(grp[grp["chosen"].astype(bool)]):
            ax.plot(line["rates"], line["scores"], marker[line["rung"]], color=colors[opt], ms=9)
        bad = grp[grp["diverged"].astype(bool)]
        ax.plot(bad["learning_rate"], np.zeros(len(bad)), "x", color=colors[opt], ms=9, mew=2,
                clip_on=False)
    if len(rungs) > 1:
        for k in rungs:
            ax.plot([], [], marker[k], color="0.3", mfc="white",
                    label=f"stopped at rung {k + 1}" + (" (the final budget)" if k == rungs[-1] else ""))
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("validation accuracy (%) at the candidate's last rung")
    ax.set_title(f"Learning-rate search {search}: filled = chosen, x = diverged"
                 + ("; lines join one rung's scores" if len(rungs) > 1 else ""))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(fig, out, list(table["run_id"]))


def performance_profile(profile: pd.DataFrame, target: float, measure: str, out) -> Path:
    """The performance profile of the tuned runs' times to the validation target ``target``
    (``profile``: ``tuning.profile.performance_profile``'s optimizer, tau, rho): per optimizer,
    the share of searches on which its median ``measure`` is within a factor tau of the
    fastest's (log x)."""
    if profile.empty:
        return placeholder(out, "No tuned runs: no time to target.")
    colors = palette(profile["optimizer"])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for opt, grp in profile.groupby("optimizer", sort=False):
        ax.step(grp["tau"], grp["rho"], where="post", color=colors[opt], label=optimizer_label(opt))
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau: within this factor of the fastest ({measure.replace('_', ' ')}, log scale)")
    ax.set_ylabel("share of searches")
    ax.set_title(f"Performance profile: time to {target:g} % validation accuracy (median over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, out, sorted(profile["optimizer"].unique()))
