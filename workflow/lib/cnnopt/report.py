"""The HTML report: one self-contained page whose sections mirror the paper.

``build_context`` turns the aggregated tables, the run folders, the data manifest and the
configuration into plain values and computed sentences; ``render`` fills the Jinja2
template with them (autoescape on, strict undefined), embeds every figure as a base64 data
URI and writes the page atomically. No sentence about the results is hard-coded: each one
is generated from the numbers, so the report stays true whatever the runs produced.
"""

from __future__ import annotations

import base64
import datetime as _dt
import importlib.metadata
import json
import logging
import math
import platform
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from importlib import resources

from . import io, verdicts
from .aggregate import optimizer_label, optimizer_order
from .errors import CnnoptError
from .figures import final_run_for
from .paper import OPTIMIZER_LABELS, PAPER_AUTHORS, PAPER_BASELINE, PAPER_TABLE1, PAPER_TITLE

log = logging.getLogger(__name__)

DASH = "\u2014"

#: Update rules, written out in plain text (Unicode math), per Keras optimizer name.
UPDATE_RULES = {
    "sgd": [
        "v \u2190 \u03bc\u00b7v \u2212 \u03b7\u00b7\u2207L(\u03b8)",
        "\u03b8 \u2190 \u03b8 + v            (Nesterov: \u03b8 \u2190 \u03b8 + \u03bc\u00b7v \u2212 \u03b7\u00b7\u2207L(\u03b8))",
    ],
    "adam": [
        "m \u2190 \u03b2\u2081\u00b7m + (1 \u2212 \u03b2\u2081)\u00b7g,   v \u2190 \u03b2\u2082\u00b7v + (1 \u2212 \u03b2\u2082)\u00b7g\u00b2",
        "m\u0302 = m / (1 \u2212 \u03b2\u2081\u1d57),   v\u0302 = v / (1 \u2212 \u03b2\u2082\u1d57)",
        "\u03b8 \u2190 \u03b8 \u2212 \u03b7\u00b7m\u0302 / (\u221av\u0302 + \u03b5)",
    ],
    "rmsprop": [
        "E[g\u00b2] \u2190 \u03c1\u00b7E[g\u00b2] + (1 \u2212 \u03c1)\u00b7g\u00b2",
        "\u03b8 \u2190 \u03b8 \u2212 \u03b7\u00b7g / (\u221aE[g\u00b2] + \u03b5)",
    ],
    "adamax": [
        "m \u2190 \u03b2\u2081\u00b7m + (1 \u2212 \u03b2\u2081)\u00b7g,   u \u2190 max(\u03b2\u2082\u00b7u, |g|)",
        "\u03b8 \u2190 \u03b8 \u2212 (\u03b7 / (1 \u2212 \u03b2\u2081\u1d57))\u00b7m / (u + \u03b5)",
    ],
}
UPDATE_WORDS = {
    "sgd": "Stochastic gradient descent steps against the mini-batch gradient g = \u2207L(\u03b8); "
           "with momentum \u03bc it accumulates a velocity v that smooths successive steps.",
    "adam": "Adam keeps exponential moving averages of the gradient (first moment m) and of its "
            "square (second moment v), corrects both for their zero initialisation and scales "
            "each parameter's step by the inverse root of its second moment.",
    "rmsprop": "RMSprop divides each parameter's step by the root of a moving average of its "
               "squared gradients, so parameters with large, noisy gradients take smaller steps.",
    "adamax": "Adamax is the Adam variant that replaces the second-moment average by an "
              "exponentially weighted infinity norm u of the gradients.",
}


# ---------------------------------------------------------------- formatting helpers
def _isnum(x) -> bool:
    try:
        return x is not None and x is not pd.NA and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x, nd: int = 2) -> str:
    """A number with ``nd`` decimals, or an em dash when missing."""
    return f"{float(x):.{nd}f}" if _isnum(x) else DASH


def signed(x, nd: int = 2) -> str:
    """A difference with its sign (minus sign, not hyphen), or an em dash."""
    if not _isnum(x):
        return DASH
    v = float(x)
    return f"+{v:.{nd}f}" if v >= 0 else f"\u2212{abs(v):.{nd}f}"


def pm(mean, std, nd: int = 2) -> str:
    """``mean ± std`` (std omitted when missing)."""
    if not _isnum(mean):
        return DASH
    return f"{fmt(mean, nd)} \u00b1 {fmt(std, nd)}" if _isnum(std) else fmt(mean, nd)


def duration(seconds) -> str:
    if not _isnum(seconds):
        return DASH
    s = float(seconds)
    if s < 120:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _int(x):
    return int(x) if _isnum(x) else None


def _list(items: list[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- inputs
def _read_csv(path, what) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing {what} table: {path}")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _read_json(path, what):
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing {what}: {path}")
    return io.read_json(path)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if not isinstance(v, str) and pd.isna(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _load_run_dirs(run_dirs) -> dict[str, dict]:
    runs = {}
    for d in map(Path, run_dirs):
        spec = _read_json(d / "run.json", "run spec")
        metrics = _read_json(d / "metrics.json", "metrics")
        hist_path = d / "history.csv"
        hist = pd.read_csv(hist_path) if hist_path.is_file() else pd.DataFrame()
        ev_path = d / "evaluation.json"
        ev = io.read_json(ev_path) if ev_path.is_file() else {}
        runs[spec.get("run_id", d.name)] = {"spec": spec, "metrics": metrics, "history": hist,
                                            "evaluation": ev, "dir": d}
    if not runs:
        raise CnnoptError("no run folders given to the report")
    return runs


def figure_uri(path) -> str:
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing figure: {path}")
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise CnnoptError(f"figure {path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_map(figures) -> dict[str, Path]:
    if isinstance(figures, Mapping):
        return {str(k): Path(v) for k, v in figures.items()}
    return {Path(p).stem: Path(p) for p in figures}


# ---------------------------------------------------------------- sections
def _accuracy_text(row: dict) -> str:
    """A run's test accuracy, or where it diverged."""
    if row.get("diverged") in (True, "True", "true", 1):
        ep = _int(row.get("diverged_epoch"))
        return f"diverged at epoch {ep}" if ep is not None else "diverged"
    return fmt(row.get("test_accuracy"))


def _data_section(manifest: dict) -> dict:
    counts = manifest.get("counts") or {}
    train, test = counts.get("train") or {}, counts.get("test") or {}
    names = list(manifest.get("class_names") or list(train) or list(test))
    rows = [{"name": c, "train": train.get(c), "test": test.get(c)} for c in names]
    conversions = {k: v for k, v in (manifest.get("conversions") or {}).items() if v}
    canonical = bool(manifest.get("canonical"))
    notice = None
    if not canonical:
        notice = (f"The images come from {manifest.get('source', 'an unnamed source')} "
                  f"({manifest.get('format', 'unknown format')}), not from the canonical, "
                  "checksum-verified CIFAR-10 archive the paper used. Its counts, class balance "
                  "and pixel values may differ, so accuracies are not strictly comparable with "
                  "the paper's.")
    return {
        "name": manifest.get("name") or "unnamed data set",
        "source": manifest.get("source") or DASH, "format": manifest.get("format") or DASH,
        "canonical": canonical, "notice": notice,
        "sha256": manifest.get("sha256") or DASH, "md5": manifest.get("md5") or DASH,
        "checksum_verified": manifest.get("checksum_verified") or "not verified",
        "image_shape": "\u00d7".join(str(x) for x in manifest.get("image_shape") or []) or DASH,
        "classes": rows, "n_train": sum(v for v in train.values() if _isnum(v)),
        "n_test": sum(v for v in test.values() if _isnum(v)), "conversions": conversions,
    }


def describe_model(model: dict) -> str:
    """The architecture a run.json ``model`` spec builds, in words."""
    if model.get("architecture") == "tutorial":
        return ("TensorFlow tutorial CNN: rescaling to [0, 1], Conv 3\u00d73 (32) \u2192 max-pool "
                "\u2192 Conv 3\u00d73 (64) \u2192 max-pool \u2192 Conv 3\u00d73 (64) \u2192 flatten "
                "\u2192 Dense 64 (ReLU) \u2192 Dense softmax; no dropout, batch norm or L2.")
    filters = model.get("filters") or []
    k = model.get("convs_per_block", 1)
    bn = bool(model.get("batch_norm"))
    conv = "Conv 3\u00d73" + (" \u2192 BatchNorm" if bn else "") + " \u2192 ReLU"
    blocks = ", ".join(f"{k}\u00d7[{conv}] ({f} filters)" for f in filters)
    parts = [f"{len(filters)} convolutional block(s), each followed by 2\u00d72 max-pooling: {blocks}"]
    if model.get("conv_dropout"):
        parts.append(f"dropout {model['conv_dropout']} after each block")
    dense = model.get("dense") or []
    if dense:
        parts.append("then dense layer(s) of " + ", ".join(map(str, dense)) + " units"
                     + (" with batch norm" if bn else "") + ", ReLU"
                     + (f" and dropout {model.get('dropout')}" if model.get("dropout") else ""))
    parts.append("softmax output")
    if model.get("l2"):
        parts.append(f"L2 penalty {model['l2']:g} on every kernel")
    return "; ".join(parts) + "."


def _model_section(runs: dict) -> list[dict]:
    groups: dict[str, dict] = {}
    for run_id, r in runs.items():
        model = r["spec"].get("model") or {}
        key = yaml.safe_dump(model, sort_keys=True)
        g = groups.setdefault(key, {"model": model, "runs": [], "params": set()})
        g["runs"].append(run_id)
        if r["metrics"].get("params") is not None:
            g["params"].add(int(r["metrics"]["params"]))
    out = []
    for i, g in enumerate(groups.values(), 1):
        m = g["model"]
        out.append({
            "name": f"M{i}", "architecture": m.get("architecture", DASH),
            "description": describe_model(m),
            "filters": ", ".join(map(str, m.get("filters") or [])) or DASH,
            "dense": ", ".join(map(str, m.get("dense") or [])) or DASH,
            "dropout": fmt(m.get("dropout", 0.0), 2), "conv_dropout": fmt(m.get("conv_dropout", 0.0), 2),
            "batch_norm": "yes" if m.get("batch_norm") else "no",
            "l2": f"{m.get('l2', 0.0):g}" if _isnum(m.get("l2", 0.0)) else DASH,
            "params": ", ".join(f"{p:,}" for p in sorted(g["params"])) or DASH,
            "runs": ", ".join(g["runs"]),
        })
    return out


def _optimizer_section(runs: dict) -> list[dict]:
    opts = optimizer_order(r["spec"]["optimizer"] for r in runs.values())
    out = []
    for opt in opts:
        groups: dict[str, list[str]] = {}
        for run_id, r in runs.items():
            if r["spec"]["optimizer"] != opt:
                continue
            oc = {k: v for k, v in (r["spec"].get("optimizer_config") or {}).items() if k != "name"}
            key = ", ".join(f"{k} = {v}" for k, v in oc.items()) or DASH
            groups.setdefault(key, []).append(run_id)
        configs = [{"settings": k, "runs": ", ".join(v)} for k, v in groups.items()]
        out.append({"name": opt, "label": optimizer_label(opt),
                    "words": UPDATE_WORDS.get(opt, f"The Keras optimizer '{opt}' with the settings below."),
                    "rule": UPDATE_RULES.get(opt, []), "configs": configs})
    return out


def _schedule_section(runs: dict) -> list[dict]:
    rows = []
    for run_id, r in runs.items():
        sched = r["spec"].get("schedule") or {}
        lr0 = (r["spec"].get("optimizer_config") or {}).get("learning_rate")
        hist = r["history"]
        lrs = hist["learning_rate"].dropna() if "learning_rate" in hist else pd.Series(dtype=float)
        rows.append({
            "run_id": run_id, "type": sched.get("type", "constant"),
            "eta0": f"{lr0:g}" if _isnum(lr0) else DASH,
            "decay_rate": f"{sched['decay_rate']:g}" if _isnum(sched.get("decay_rate")) else DASH,
            "decay_step": f"{sched['decay_step']:g}" if _isnum(sched.get("decay_step")) else DASH,
            "staircase": ("yes" if sched.get("staircase") else "no") if sched.get("type") == "exponential" else DASH,
            "lr_first": f"{lrs.iloc[0]:.3g}" if len(lrs) else DASH,
            "lr_last": f"{lrs.iloc[-1]:.3g}" if len(lrs) else DASH,
        })
    return rows


def _regularization_rows(runs: dict) -> list[dict]:
    rows = []
    for run_id, r in runs.items():
        m = r["spec"].get("model") or {}
        rows.append({"run_id": run_id, "label": r["spec"].get("label", ""),
                     "dropout": fmt(m.get("dropout", 0.0)), "conv_dropout": fmt(m.get("conv_dropout", 0.0)),
                     "l2": f"{m.get('l2', 0.0):g}",
                     "batch_norm": "yes" if m.get("batch_norm") else "no"})
    return rows


def _shown_final(runs: dict, opt: str):
    """The final run shown for ``opt``: its first seed (as in its figure)."""
    try:
        return final_run_for(list(runs.values()), opt)
    except CnnoptError:
        return None


def curve_caption(run: dict) -> str:
    """What an optimizer's train/validation figure shows, from its history."""
    hist, spec, m = run["history"], run["spec"], run["metrics"]
    run_id = spec.get("run_id", "")
    if hist.empty or "val_accuracy" not in hist:
        return f"No training history was recorded for {run_id}."
    if m.get("diverged"):
        return (f"Run {run_id} diverged at epoch {m.get('diverged_epoch')}: its loss became "
                "non-finite and training stopped.")
    va = 100 * hist["val_accuracy"]
    tr = 100 * hist["accuracy"]
    ib = int(va.idxmax())
    best_ep, last_ep = int(hist["epoch"].iloc[ib]), int(hist["epoch"].iloc[-1])
    gap = float(tr.iloc[-1] - va.iloc[-1])
    vl = hist["val_loss"]
    il = int(vl.idxmin())
    rise = float(vl.iloc[-1] - vl.iloc[il])
    s = [f"Run {run_id}: validation accuracy rises from {va.iloc[0]:.1f}% after epoch 1 to a "
         f"maximum of {va.iloc[ib]:.1f}% at epoch {best_ep} of {last_ep}."]
    if gap > 0:
        s.append(f"At the last epoch training accuracy is {gap:.1f} points above validation accuracy.")
    else:
        s.append(f"At the last epoch validation accuracy is {-gap:.1f} points above training accuracy "
                 "(dropout is active only while training).")
    if il < len(vl) - 1 and rise > 0.02 * max(float(vl.iloc[il]), 1e-9):
        s.append(f"Validation loss is lowest at epoch {int(hist['epoch'].iloc[il])} "
                 f"({vl.iloc[il]:.3f}) and ends {rise:.3f} higher, a sign of overfitting.")
    else:
        s.append(f"Validation loss is still at or near its minimum ({vl.iloc[il]:.3f}) at the end, "
                 "so the curves show little overfitting.")
    if len(va) >= 4:
        tail = va.iloc[len(va) // 2:].diff().abs().dropna()
        s.append(f"In the second half of training validation accuracy moves by {tail.mean():.2f} "
                 "points per epoch on average.")
    return " ".join(s)


def _opt_subsections(runs: dict, table1: pd.DataFrame, figs: dict[str, Path]) -> list[dict]:
    out = []
    t1 = {r["optimizer"]: r for r in _records(table1)} if len(table1) else {}
    for opt in optimizer_order(r["spec"]["optimizer"] for r in runs.values()):
        run = _shown_final(runs, opt)
        if run is None:
            continue
        row = t1.get(opt)
        paper = PAPER_TABLE1.get(opt)
        sentences = []
        if row is not None and _isnum(row.get("final")):
            n = _int(row.get("seeds")) or 0
            txt = (f"The final configuration of {optimizer_label(opt)} reaches "
                   f"{pm(row['final'], row.get('final_std'))}% test accuracy"
                   + (f" (mean \u00b1 std over {n} seeds)" if n > 1 else "")
                   + (f", {signed(row['final'] - paper['final'])} points from the paper's "
                      f"{paper['final']:.2f}%" if paper else "") + ".")
            sentences.append(txt)
            if _isnum(row.get("initial")):
                sentences.append(f"Its initial configuration reached {fmt(row['initial'])}%, so the "
                                 f"adjustments ({row.get('key_adjustments') or DASH}) add "
                                 f"{signed(row['final'] - row['initial'])} points.")
        elif row is not None:
            sentences.append(f"Every final run of {optimizer_label(opt)} diverged, so no final "
                             "accuracy can be reported.")
        if row is not None and row.get("diverged_runs"):
            sentences.append(f"Of its initial and final runs, {row['diverged_runs']}; they count in "
                             "the means with the accuracy they scored.")
        sentences.append(f"The figure shows seed {run['spec'].get('seed', 0)}, the first, fixed "
                         "before training.")
        key = f"optimizer_{opt}"
        out.append({"name": opt, "label": optimizer_label(opt), "run_id": run["spec"].get("run_id"),
                    "text": " ".join(sentences),
                    "figure": figure_uri(figs[key]) if key in figs else None,
                    "caption": curve_caption(run),
                    "paper_final": f"{paper['final']:.2f}" if paper else DASH})
    return out


def _table1_rows(table1: pd.DataFrame) -> list[dict]:
    rows = []
    for r in _records(table1):
        def cell(which):
            v, sd = r.get(which), r.get(f"{which}_std")
            if not _isnum(v):
                return "diverged" if r.get("diverged") else DASH
            return pm(v, sd)
        rows.append({
            "label": r.get("label") or optimizer_label(r["optimizer"]),
            "initial": cell("initial"), "final": cell("final"),
            "paper_initial": fmt(r.get("paper_initial")), "paper_final": fmt(r.get("paper_final")),
            "initial_diff": signed(r.get("initial_diff")), "final_diff": signed(r.get("final_diff")),
            "gain": signed((r.get("final") or math.nan) - (r.get("initial") or math.nan)
                           if _isnum(r.get("final")) and _isnum(r.get("initial")) else None),
            "paper_gain": signed(r["paper_final"] - r["paper_initial"])
            if _isnum(r.get("paper_final")) and _isnum(r.get("paper_initial")) else DASH,
            "key_adjustments": r.get("key_adjustments") or DASH,
            "paper_key_adjustments": PAPER_TABLE1.get(r["optimizer"], {}).get("key_adjustments", DASH),
            "seeds": _int(r.get("seeds")) or 0,
            "seconds": f"{duration(r.get('initial_seconds'))} / {duration(r.get('final_seconds'))}",
            "diverged": r.get("diverged_runs") or "",
            "epochs_to_target": fmt(r.get("final_epochs_to_target"), 1),
            "seconds_to_target": duration(r.get("final_seconds_to_target")),
        })
    return rows


def _ablation_rows(abl: pd.DataFrame) -> list[dict]:
    rows = []
    for r in _records(abl):
        rows.append({"variant": r.get("variant"), "label": r.get("label") or "",
                     "optimizer": optimizer_label(r.get("optimizer")),
                     "accuracy": pm(r.get("test_accuracy"), r.get("test_accuracy_std")),
                     "reference": pm(r.get("reference_accuracy"), None),
                     "seeds": _int(r.get("seeds")) or 0, "seconds": duration(r.get("train_seconds")),
                     "diverged": f"{_int(r.get('diverged'))} diverged" if _int(r.get("diverged")) else "",
                     "delta": signed(r.get("delta"))})
    return rows


def claim_rows(claims: pd.DataFrame) -> list[dict]:
    """The claims table: one row per claim, every cell formatted once here."""
    rows = []
    for r in _records(claims):
        value = r.get("kind") == "value"
        ours = (pm(r.get("ours"), r.get("std")) if value
                else (f"{signed(r.get('ours'))} ± {fmt(r.get('std'))}" if _isnum(r.get("std"))
                      else signed(r.get("ours"))))
        if r.get("kind") == "faster" and _isnum(r.get("ours")):
            ours += " epochs"
        elif not value and _isnum(r.get("ours")):
            ours += " points"
        ci = (f"[{fmt(r.get('ci_low'))}, {fmt(r.get('ci_high'))}]" if value
              else f"[{signed(r.get('ci_low'))}, {signed(r.get('ci_high'))}]")
        rows.append({"id": r["id"], "claim": r.get("claim") or "", "where": r.get("where") or "",
                     "paper": fmt(r.get("paper")) if value else signed(r.get("paper"))
                     if _isnum(r.get("paper")) else {"greater": "A > B", "top": "top two",
                                                     "faster": "fewest epochs"}.get(r.get("kind"), DASH),
                     "ours": ours, "n": _int(r.get("n")) or 0,
                     "ci": ci if _isnum(r.get("ci_low")) else DASH,
                     "test": r.get("test") or DASH, "verdict": r.get("verdict") or DASH,
                     "css": (r.get("verdict") or "").replace(" ", "-"),
                     "reason": r.get("reason") or "", "runs": r.get("runs") or ""})
    return rows


def _describe_final(runs: dict, opt: str, what: str) -> str:
    run = _shown_final(runs, opt)
    if run is None:
        return "no final run"
    oc = {k: v for k, v in (run["spec"].get("optimizer_config") or {}).items() if k != "name"}
    if what == "optimizer":
        return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in oc.items() if k in ("learning_rate", "momentum", "rho"))
    return describe_model(run["spec"].get("model") or {})


def deviation_rows(runs: dict, config: dict, data: dict) -> list[dict]:
    """The "Deviations and assumptions" table: ``deviations.yaml`` filled in from the runs."""
    text = resources.files(__package__).joinpath("deviations.yaml").read_text(encoding="utf-8")
    by_role: dict[str, list] = {}
    for r in runs.values():
        by_role.setdefault(r["spec"].get("role"), []).append(r["spec"])

    def first(role, key, default=DASH):
        specs = by_role.get(role) or []
        return specs[0].get(key, default) if specs else default

    final = by_role.get("final") or [{}]
    sched = final[0].get("schedule") or {}
    model = final[0].get("model") or {}
    values = {
        "data_name": data.get("name", DASH),
        "validation_size": f"{config.get('validation_size', DASH):,}" if _isnum(config.get("validation_size"))
        else DASH,
        "baseline_batch": first("baseline", "batch_size"),
        "initial_model": describe_model(first("initial", "model", {}) or {}),
        "final_model": describe_model(model),
        "final_optimizer": optimizer_label(final[0].get("optimizer", DASH)),
        "batch_sizes": "; ".join(f"{role} {sorted({s.get('batch_size') for s in specs})[0]}"
                                 for role, specs in by_role.items() if specs),
        "initial_epochs": first("initial", "epochs"), "final_epochs": first("final", "epochs"),
        "scale": config.get("scale", "reduced"),
        "schedule": (f"decay_rate {sched.get('decay_rate')}, decay_step {sched.get('decay_step')} "
                     "epoch(s)" if sched.get("type") == "exponential" else f"{sched.get('type', DASH)}"),
        "sgd_final": _describe_final(runs, "sgd", "optimizer"),
        "rmsprop_final": _describe_final(runs, "rmsprop", "optimizer"),
        "adamax_final": _describe_final(runs, "adamax", "optimizer"),
        "dropout": f"dropout {model.get('conv_dropout', 0)} after each conv block and "
                   f"{model.get('dropout', 0)} after the dense layer in every final recipe",
        "seeds": len(config.get("seeds") or []) or DASH,
    }

    class Missing(dict):
        def __missing__(self, key):
            return DASH

    return [{"topic": d["topic"], "paper": d["paper"],
             "ours": d["ours"].format_map(Missing(values))} for d in yaml.safe_load(text)]


def _runs_rows(runs_df: pd.DataFrame) -> list[dict]:
    rows = []
    for r in _records(runs_df):
        rows.append({"run_id": r["run_id"], "optimizer": optimizer_label(r["optimizer"]),
                     "role": r.get("role") or DASH, "label": r.get("label") or "",
                     "seed": _int(r.get("seed")), "epochs": _int(r.get("epochs")),
                     "accuracy": _accuracy_text(r),
                     "diverged": r.get("diverged") in (True, "True", "true", 1),
                     "best_val": fmt(r.get("best_val_accuracy")),
                     "convergence": _int(r.get("convergence_epoch")) or DASH,
                     "seconds": duration(r.get("train_seconds")),
                     "ips": fmt(r.get("images_per_second"), 0),
                     "inference_ips": fmt(r.get("inference_images_per_second"), 0),
                     "params": f"{int(r['params']):,}" if _isnum(r.get("params")) else DASH})
    return rows


def _per_class(run: dict | None) -> list[dict]:
    if not run:
        return []
    ev = run["evaluation"]
    return [{"name": c, "accuracy": fmt(100 * v if _isnum(v) else None, 1)}
            for c, v in (ev.get("per_class_accuracy") or {}).items()]


def _comparison_captions(runs: dict, runs_df: pd.DataFrame, table1: pd.DataFrame, best_run) -> dict:
    main = {k: r for k, r in runs.items() if r["spec"].get("role") != "ablation" and not r["history"].empty}
    caps = {}
    peaks = []
    for k, r in main.items():
        h = r["history"]
        if "val_accuracy" in h and h["val_accuracy"].notna().any() and not r["metrics"].get("diverged"):
            i = int(h["val_accuracy"].idxmax())
            peaks.append((float(h["val_accuracy"].iloc[i]) * 100, k, int(h["epoch"].iloc[i]),
                          float(h["elapsed"].iloc[i]) if "elapsed" in h else math.nan))
    style = "Colour marks the optimizer, line style the role (dotted baseline, dashed initial, solid final)"
    diverged = [k for k, r in main.items() if r["metrics"].get("diverged")]
    dtext = f"; \u00d7 marks where {_list(diverged)} diverged" if diverged else ""
    if peaks:
        top = max(peaks)
        caps["val_accuracy_vs_epoch"] = (
            f"Validation accuracy per epoch for the {len(main)} non-ablation runs. {style}{dtext}. "
            f"The highest value, {top[0]:.1f}%, is reached by {top[1]} at epoch {top[2]}.")
        fastest = min((p for p in peaks if _isnum(p[3])), key=lambda p: p[3], default=None)
        caps["val_accuracy_vs_seconds"] = (
            f"The same curves against cumulative training time. "
            f"{top[1]} reaches its peak after {duration(top[3])}"
            + (f"; the quickest run to reach its own peak is {fastest[1]} ({duration(fastest[3])})."
               if fastest else "."))
    else:
        caps["val_accuracy_vs_epoch"] = f"Validation accuracy per epoch. {style}{dtext}."
        caps["val_accuracy_vs_seconds"] = "Validation accuracy against training time."
    if len(table1) and table1["final_diff"].notna().any():
        mad = float(table1["final_diff"].abs().mean())
        caps["final_accuracy"] = (
            "Mean test accuracy of the initial (light) and final (dark) configuration per optimizer; "
            "error bars are the standard deviation over seeds, diamonds the paper's values. "
            f"Our final accuracies differ from the paper's by {mad:.2f} points on average (absolute).")
    else:
        caps["final_accuracy"] = ("Initial and final test accuracy per optimizer; diamonds mark the "
                                  "paper's values.")
    exp = [r for r in main.values() if (r["spec"].get("schedule") or {}).get("type") == "exponential"]
    lr_txt = f"Learning rate at each epoch (log scale). {len(exp)} of {len(main)} runs use exponential decay"
    if exp and "learning_rate" in exp[0]["history"]:
        h = exp[0]["history"]["learning_rate"].dropna()
        if len(h) > 1:
            lr_txt += (f"; in {exp[0]['spec']['run_id']} it falls from {h.iloc[0]:.3g} to "
                       f"{h.iloc[-1]:.3g} over {len(h)} epochs")
    caps["lr_schedules"] = lr_txt + "."
    if best_run and best_run["evaluation"].get("confusion_matrix"):
        ev = best_run["evaluation"]
        names = [str(c) for c in ev.get("class_names") or []]
        cm = [[int(v) for v in row] for row in ev["confusion_matrix"]]
        acc = [(cm[i][i] / max(sum(cm[i]), 1), names[i]) for i in range(len(names))]
        off = max(((cm[i][j], names[i], names[j]) for i in range(len(names))
                   for j in range(len(names)) if i != j), default=None)
        txt = (f"Confusion matrix of {best_run['spec'].get('run_id')}, the first seed of the final "
               "recipe with the highest mean validation accuracy (rows: true class, "
               f"columns: prediction; colour is the fraction of the true class). "
               f"Best recognised class: {max(acc)[1]} ({100 * max(acc)[0]:.1f}%); "
               f"worst: {min(acc)[1]} ({100 * min(acc)[0]:.1f}%).")
        if off and off[0] > 0:
            txt += f" The most frequent error is {off[1]} taken for {off[2]} ({off[0]} images)."
        caps["confusion_best"] = txt
    else:
        caps["confusion_best"] = "Confusion matrix of the shown run."
    return caps


def _summary_sentences(summ: dict, table1: pd.DataFrame, data: dict, claims: pd.DataFrame) -> list[str]:
    s = []
    scale = summ.get("scale", "reduced")
    s.append(f"This report re-runs the study on {data['name']} at {scale} scale: "
             f"{summ.get('n_runs', 0)} training runs, "
             f"{duration(summ.get('total_train_seconds'))} of training in total.")
    if len(claims):
        counts = claims["verdict"].value_counts()
        parts = [f"{int(counts[v])} {v}" for v in verdicts.VERDICTS if v in counts]
        s.append(f"Of the paper's {len(claims)} claims (section 2): " + _list(parts) + ".")
    if scale != "paper":
        s.append("At reduced scale the final runs train far less than the paper's, so their "
                 "absolute accuracies are not judged; comparisons between twins still are.")
    b = summ.get("baseline") or {}
    if _isnum(b.get("test_accuracy")):
        s.append(f"The baseline CNN reaches {pm(b['test_accuracy'], b.get('std'))}% test accuracy "
                 f"against the paper's {PAPER_BASELINE:.2f}% ({signed(b.get('diff'))} points).")
    else:
        s.append("No usable baseline run was found, so the baseline cannot be compared with the paper's "
                 f"{PAPER_BASELINE:.2f}%.")
    if summ.get("n_diverged"):
        s.append(f"{summ['n_diverged']} of {summ.get('n_runs', 0)} runs diverged; they count in "
                 "the means with the accuracy they scored.")
    if not data["canonical"]:
        s.append("The data are not the canonical CIFAR-10 archive (see Methodology).")
    return s


def _conclusions(summ: dict, claims: pd.DataFrame, data: dict) -> list[str]:
    """One sentence per verdict group, from the claims table, then the caveats."""
    c = []
    for verdict in verdicts.VERDICTS:
        group = claims[claims["verdict"] == verdict] if len(claims) else claims
        if len(group):
            c.append(f"{verdict.capitalize()} ({len(group)}): " + "; ".join(group["claim"]))
    b = summ.get("baseline") or {}
    if _isnum(b.get("test_accuracy")):
        rel = "above" if b["diff"] >= 0 else "below"
        c.append(f"The baseline lands {abs(b['diff']):.2f} points {rel} the paper's {PAPER_BASELINE:.2f}%.")
    if summ.get("diverged"):
        c.append("Diverged: " + "; ".join(f"{d['run_id']} at epoch {d.get('diverged_epoch')}"
                                          for d in summ["diverged"]) + ".")
    if not data["canonical"]:
        c.append("Because the images are not the canonical archive, differences from the paper "
                 "may partly reflect the data rather than the optimizers.")
    return c


def _versions(runs: dict) -> list[dict]:
    seen: dict[str, set] = {}
    for r in runs.values():
        for k, v in (r["metrics"].get("versions") or {}).items():
            seen.setdefault(k, set()).add(str(v))
    rows = [{"name": k, "version": ", ".join(sorted(v)), "where": "training runs"} for k, v in sorted(seen.items())]
    for pkg in ("pandas", "matplotlib", "jinja2", "pyyaml"):
        try:
            rows.append({"name": pkg, "version": importlib.metadata.version(pkg), "where": "report"})
        except importlib.metadata.PackageNotFoundError:
            pass
    return rows


def _hardware(runs: dict) -> list[dict]:
    rows = []
    for run_id, r in runs.items():
        m = r["metrics"]
        rows.append({"run_id": run_id, "backend": m.get("backend") or DASH, "device": m.get("device") or DASH,
                     "epochs": f"{m.get('epochs_run', DASH)} / {m.get('epochs', DASH)}",
                     "seconds": duration(m.get("train_seconds")),
                     "ips": fmt(m.get("images_per_second"), 0)})
    return rows


def build_context(runs_csv, table1_csv, ablation_csv, summary_json, figures, run_dirs,
                  manifest_json, config: dict, provenance: dict, claims_csv=None) -> dict:
    """Every value the template shows, computed from the workflow's outputs."""
    runs_df = _read_csv(runs_csv, "runs")
    claims = _read_csv(claims_csv, "claims") if claims_csv is not None else pd.DataFrame(
        columns=verdicts.COLUMNS)
    table1 = _read_csv(table1_csv, "Table 1")
    abl = _read_csv(ablation_csv, "ablation")
    summ = _read_json(summary_json, "summary")
    manifest = _read_json(manifest_json, "data manifest")
    runs = _load_run_dirs(run_dirs)
    figs = _figure_map(figures)
    data = _data_section(manifest)
    best_id = (summ.get("best") or {}).get("run_id")
    best_run = runs.get(best_id)
    caps = _comparison_captions(runs, runs_df, table1, best_run)
    comparison = []
    for key, title in (("final_accuracy", "Initial vs final test accuracy"),
                       ("val_accuracy_vs_epoch", "Validation accuracy per epoch"),
                       ("val_accuracy_vs_seconds", "Validation accuracy against training time"),
                       ("lr_schedules", "Learning-rate schedules"),
                       ("confusion_best", "Confusion matrix of the shown run")):
        if key in figs:
            comparison.append({"key": key, "title": title, "uri": figure_uri(figs[key]), "caption": caps[key]})
    b = summ.get("baseline") or {}
    base_rows = runs_df[runs_df["role"] == "baseline"] if len(runs_df) else runs_df
    baseline_text = (
        f"The baseline ({_list(b.get('run_ids') or []) or 'no run'}) reaches "
        f"{pm(b.get('test_accuracy'), b.get('std'))}% test accuracy after {b.get('epochs') or DASH} "
        f"epochs; the paper reports {PAPER_BASELINE:.2f}% after 10 epochs, a difference of "
        f"{signed(b.get('diff'))} points. Training took {duration(b.get('train_seconds'))}."
        if _isnum(b.get("test_accuracy")) else
        f"No usable baseline run; the paper's baseline is {PAPER_BASELINE:.2f}%.")
    total = summ.get("total_train_seconds")
    return {
        "title": "Reproduction report: " + PAPER_TITLE,
        "paper_title": PAPER_TITLE, "paper_authors": PAPER_AUTHORS,
        "paper_baseline": f"{PAPER_BASELINE:.2f}",
        "summary_sentences": _summary_sentences(summ, table1, data, claims),
        "scale": summ.get("scale", (config or {}).get("scale", "reduced")),
        "claims": claim_rows(claims),
        "rules": {**verdicts.DEFAULT_RULES, **((config or {}).get("verdicts") or {})},
        "deviations": deviation_rows(runs, config or {}, data),
        "data": data,
        "models": _model_section(runs),
        "optimizers": _optimizer_section(runs),
        "schedules": _schedule_section(runs),
        "regularization": _regularization_rows(runs),
        "baseline_text": baseline_text,
        "baseline_rows": _runs_rows(base_rows) if len(base_rows) else [],
        "opt_sections": _opt_subsections(runs, table1, figs),
        "table1": _table1_rows(table1),
        "ablation": _ablation_rows(abl),
        "comparison": comparison,
        "runs": _runs_rows(runs_df),
        "best_run_id": best_id or DASH,
        "per_class": _per_class(best_run),
        "conclusions": _conclusions(summ, claims, data),
        "config_yaml": yaml.safe_dump(json.loads(json.dumps(config or {}, default=str)), sort_keys=False, allow_unicode=True, default_flow_style=False),
        "versions": _versions(runs),
        "hardware": _hardware(runs),
        "total_seconds": duration(total),
        "total_seconds_raw": fmt(total, 1),
        "provenance": {"commit": provenance.get("commit") or "unknown (not a git checkout)",
                       "hostname": provenance.get("hostname") or DASH,
                       "platform": provenance.get("platform") or DASH,
                       "generated": provenance.get("generated") or DASH,
                       "snakemake_version": provenance.get("snakemake_version") or DASH},
        "optimizer_labels": OPTIMIZER_LABELS,
    }


def render(template_path, tables: Mapping, figures, run_dirs, manifest_json, config: dict,
           out_html, provenance: dict) -> Path:
    """Write the self-contained HTML report to ``out_html``.

    ``tables`` maps "claims", "runs", "table1", "ablation" and "summary" to the aggregate
    outputs;
    ``figures`` maps figure names (e.g. "final_accuracy", "optimizer_adam") to PNG paths, or is
    a list of PNG paths named by their stem. Nothing is written if any step fails.
    """
    template_path = Path(template_path)
    if not template_path.is_file():
        raise CnnoptError(f"missing report template: {template_path}")
    missing = [k for k in ("claims", "runs", "table1", "ablation", "summary") if k not in tables]
    if missing:
        raise CnnoptError(f"report needs the aggregate table(s): {', '.join(missing)}")
    ctx = build_context(tables["runs"], tables["table1"], tables["ablation"], tables["summary"],
                        figures, run_dirs, manifest_json, config, provenance, tables["claims"])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_path.parent)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, signed=signed, duration=duration)
    try:
        html = env.get_template(template_path.name).render(**ctx)
    except jinja2.TemplateError as exc:
        raise CnnoptError(f"cannot render report template {template_path}: {exc}") from exc
    io.write_text(out_html, html)
    log.info("wrote report %s (%d kB)", out_html, len(html) // 1024)
    return Path(out_html)


def collect_provenance(workdir=".", snakemake_version: str | None = None) -> dict:
    """Commit, host, platform and time for the reproducibility appendix (no git is fine)."""
    commit = None
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=str(workdir), capture_output=True,
                             text=True, timeout=10, check=False)
        if res.returncode == 0:
            commit = res.stdout.strip() or None
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=str(workdir), capture_output=True, text=True, timeout=10,
                                   check=False)
            if commit and dirty.returncode == 0 and dirty.stdout.strip():
                commit += " (with uncommitted changes)"
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"commit": commit, "hostname": socket.gethostname(), "platform": platform.platform(),
            "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "snakemake_version": snakemake_version}
