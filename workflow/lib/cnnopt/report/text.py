"""The report's words: every sentence and caption, generated from the numbers.

No sentence about the results is hard-coded: each one is computed from the aggregate tables
and the runs, so the report stays true whatever the runs produced. Numbers inside sentences
are written with ``formatting``, the same functions the template's filters use.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd
import yaml

from cnnopt.common.paper import PAPER_BASELINE, PAPER_TABLE1
from cnnopt.common.registry import optimizer_label
from cnnopt.common.runs import Run, Runs, shown_run
from cnnopt.judge.rules import Rules
from cnnopt.judge.verdicts import VERDICTS
from cnnopt.report.formatting import DASH, count, duration, fmt, isnum, pm, signed

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


def listing(items) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def data_notice(manifest: dict) -> str | None:
    """The warning for data that are not the canonical archive (None when they are)."""
    if manifest.get("canonical"):
        return None
    return (f"The images come from {manifest.get('source', 'an unnamed source')} "
            f"({manifest.get('format', 'unknown format')}), not from the canonical, "
            "checksum-verified CIFAR-10 archive the paper used. Its counts, class balance "
            "and pixel values may differ, so accuracies are not strictly comparable with "
            "the paper's.")


def describe_model(model: dict) -> str:
    """The architecture a run.json ``model`` spec builds, in words."""
    if model.get("architecture") == "tutorial":
        return ("TensorFlow tutorial CNN: rescaling to [0, 1], Conv 3\u00d73 (32) \u2192 max-pool "
                "\u2192 Conv 3\u00d73 (64) \u2192 max-pool \u2192 Conv 3\u00d73 (64) \u2192 flatten "
                "\u2192 Dense 64 (ReLU) \u2192 Dense softmax; no dropout, batch norm or L2.")
    filters = model.get("filters") or []
    k = model.get("convs_per_block", 1)
    if model.get("architecture") == "resnet":
        depth = model.get("depth", 20)
        parts = [f"ResNet-{depth} (He et al.'s CIFAR ResNet): a Conv 3\u00d73 \u2192 BatchNorm "
                 f"\u2192 ReLU stem, then three stages of {(depth - 2) // 6} residual block(s) of "
                 f"two Conv 3\u00d73 \u2192 BatchNorm with an identity shortcut ("
                 + ", ".join(f"{f} filters" for f in filters)
                 + "; the later stages halve the size with stride 2 and a 1\u00d71 projection "
                 "shortcut), global average pooling, softmax output"]
    elif model.get("architecture") == "fast":
        parts = ["fast CNN"]
        if model.get("stem"):
            parts.append(f"a Conv 3\u00d73 \u2192 BatchNorm \u2192 ReLU stem of {model['stem']} filters")
        parts.append(f"{len(filters)} block(s) of Conv 3\u00d73 \u2192 2\u00d72 max-pooling \u2192 "
                     f"BatchNorm \u2192 ReLU" + (f", then {k - 1} more Conv-BatchNorm-ReLU" if k > 1 else "")
                     + " (" + ", ".join(f"{f} filters" for f in filters) + ")")
        parts.append("global max pooling" + (f", dropout {model['dropout']}" if model.get("dropout") else "")
                     + ", softmax output")
    else:
        parts = _blocks(model, filters, k)
    if model.get("l2"):
        parts.append(f"L2 penalty {model['l2']:g} on every kernel")
    return "; ".join(parts) + "."


def _blocks(model: dict, filters: list, k: int) -> list[str]:
    """The paper's family (``blocks``): conv blocks with max pooling, dense layers, softmax."""
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
    return parts


def curve_caption(run: Run) -> str:
    """What an optimizer's train/validation figure shows, from its history."""
    hist, m, run_id = run.history, run.metrics, run.spec.get("run_id", "")
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


def optimizer_text(opt: str, row: dict | None, seed) -> str:
    """The paragraph above ``opt``'s figure: its Table 1 row in words, then which seed is shown.

    ``row`` is the optimizer's Table 1 row (None when it has none); ``seed`` the shown run's.
    """
    paper = PAPER_TABLE1.get(opt)
    label = optimizer_label(opt)
    sentences = []
    if row is not None and isnum(row.get("final")):
        n = int(row["seeds"]) if isnum(row.get("seeds")) else 0
        sentences.append(
            f"The final configuration of {label} reaches {pm(row['final'], row.get('final_std'))}% "
            "test accuracy" + (f" (mean \u00b1 std over {n} seeds)" if n > 1 else "")
            + (f", {signed(row['final'] - paper['final'])} points from the paper's "
               f"{paper['final']:.2f}%" if paper else "") + ".")
        if isnum(row.get("initial")):
            sentences.append(f"Its initial configuration reached {fmt(row['initial'])}%, so the "
                             f"adjustments ({row.get('key_adjustments') or DASH}) add "
                             f"{signed(row['final'] - row['initial'])} points.")
    elif row is not None:
        sentences.append(f"Every final run of {label} diverged, so no final accuracy can be reported.")
    if row is not None and row.get("diverged_runs"):
        sentences.append(f"Of its initial and final runs, {row['diverged_runs']}; they count in "
                         "the means with the accuracy they scored.")
    sentences.append(f"The figure shows seed {seed}, the first, fixed before training.")
    return " ".join(sentences)


def _confusion_caption(best: Run | None) -> str:
    ev = best.evaluation if best is not None else {}
    if not ev.get("confusion_matrix"):
        return "Confusion matrix of the shown run."
    names = [str(c) for c in ev.get("class_names") or []]
    cm = [[int(v) for v in row] for row in ev["confusion_matrix"]]
    acc = [(cm[i][i] / max(sum(cm[i]), 1), names[i]) for i in range(len(names))]
    off = max(((cm[i][j], names[i], names[j]) for i in range(len(names))
               for j in range(len(names)) if i != j), default=None)
    txt = (f"Confusion matrix of {best.spec.get('run_id')}, the first seed of the final "
           "recipe with the highest mean validation accuracy (rows: true class, "
           f"columns: prediction; colour is the fraction of the true class). "
           f"Best recognised class: {max(acc)[1]} ({100 * max(acc)[0]:.1f}%); "
           f"worst: {min(acc)[1]} ({100 * min(acc)[0]:.1f}%).")
    if off and off[0] > 0:
        txt += f" The most frequent error is {off[1]} taken for {off[2]} ({off[0]} images)."
    return txt


def comparison_captions(runs: Runs, table1: pd.DataFrame, best: Run | None) -> dict[str, str]:
    """The caption of each comparison figure (``figures.FIGURES``), from what it shows."""
    main = [r for r in runs if r.get("role") != "ablation"]
    caps = {}
    peaks = []
    for r in main:
        h = r.history
        if h["val_accuracy"].notna().any() and not r.metrics.get("diverged"):
            i = int(h["val_accuracy"].idxmax())
            peaks.append((float(h["val_accuracy"].iloc[i]) * 100, r.run_id, int(h["epoch"].iloc[i]),
                          float(h["elapsed"].iloc[i])))
    style = "Colour marks the optimizer, line style the role (dotted baseline, dashed initial, solid final)"
    diverged = [r.run_id for r in main if r.metrics.get("diverged")]
    dtext = f"; \u00d7 marks where {listing(diverged)} diverged" if diverged else ""
    if peaks:
        top = max(peaks)
        caps["val_accuracy_vs_epoch"] = (
            f"Validation accuracy per epoch for the {len(main)} non-ablation runs. {style}{dtext}. "
            f"The highest value, {top[0]:.1f}%, is reached by {top[1]} at epoch {top[2]}.")
        fastest = min((p for p in peaks if isnum(p[3])), key=lambda p: p[3], default=None)
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
    exp = [r for r in main if (r.spec.get("schedule") or {}).get("type") == "exponential"]
    lr_txt = f"Learning rate at each epoch (log scale). {len(exp)} of {len(main)} runs use exponential decay"
    if exp and "learning_rate" in exp[0].history:
        h = exp[0].history["learning_rate"].dropna()
        if len(h) > 1:
            lr_txt += (f"; in {exp[0].spec['run_id']} it falls from {h.iloc[0]:.3g} to "
                       f"{h.iloc[-1]:.3g} over {len(h)} epochs")
    caps["lr_schedules"] = lr_txt + "."
    caps["confusion_best"] = _confusion_caption(best)
    return caps


def summary_sentences(summ: dict, data: dict, claims: pd.DataFrame) -> list[str]:
    """The abstract: what was run, how the claims fared, the baseline, the caveats."""
    s = []
    scale = summ.get("scale", "reduced")
    s.append(f"This report re-runs the study on {data['name']} at {scale} scale: "
             f"{summ.get('n_runs', 0)} training runs, "
             f"{duration(summ.get('total_train_seconds'))} of training in total.")
    if len(claims):
        at_paper = claims["scale"].astype(str) == "paper" if "scale" in claims else \
            pd.Series(True, index=claims.index)
        for label, group in (("at the paper's budget", claims[at_paper]),
                             ("below the paper's budget", claims[~at_paper])):
            if len(group):
                counts = group["verdict"].value_counts()
                parts = [f"{int(counts[v])} {v}" for v in VERDICTS if v in counts]
                s.append(f"Of the paper's claims tested {label} ({len(group)}, section 2): "
                         + listing(parts) + ".")
    if scale != "paper":
        s.append("Below the paper's budget a value the paper reports cannot be shown not "
                 "reproduced, and every verdict is worded with the budget it was reached at.")
    b = summ.get("baseline") or {}
    if isnum(b.get("test_accuracy")):
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


def baseline_text(summ: dict) -> str:
    """The baseline's result beside the paper's."""
    b = summ.get("baseline") or {}
    if not isnum(b.get("test_accuracy")):
        return f"No usable baseline run; the paper's baseline is {PAPER_BASELINE:.2f}%."
    return (f"The baseline ({listing(b.get('run_ids') or []) or 'no run'}) reaches "
            f"{pm(b.get('test_accuracy'), b.get('std'))}% test accuracy after {b.get('epochs') or DASH} "
            f"epochs; the paper reports {PAPER_BASELINE:.2f}% after 10 epochs, a difference of "
            f"{signed(b.get('diff'))} points. Training took {duration(b.get('train_seconds'))}.")


def conclusions(summ: dict, claims: pd.DataFrame, data: dict) -> list[str]:
    """One sentence per verdict group, from the claims table, then the caveats."""
    c = []
    for verdict in VERDICTS:
        group = claims[claims["verdict"] == verdict] if len(claims) else claims
        if len(group):
            texts = group["verdict_text"] if "verdict_text" in group else group["verdict"]
            c.append(f"{verdict.capitalize()} ({len(group)}): " + "; ".join(
                claim + ("" if text == verdict else f" ({text})")
                for claim, text in zip(group["claim"], texts, strict=True)))
    b = summ.get("baseline") or {}
    if isnum(b.get("test_accuracy")):
        rel = "above" if b["diff"] >= 0 else "below"
        c.append(f"The baseline lands {abs(b['diff']):.2f} points {rel} the paper's {PAPER_BASELINE:.2f}%.")
    if summ.get("diverged"):
        c.append("Diverged: " + "; ".join(f"{d['run_id']} at epoch {d.get('diverged_epoch')}"
                                          for d in summ["diverged"]) + ".")
    if not data["canonical"]:
        c.append("Because the images are not the canonical archive, differences from the paper "
                 "may partly reflect the data rather than the optimizers.")
    return c


def _describe_final(runs: Runs, opt: str, what: str) -> str:
    shown = shown_run(runs.table, opt)
    if shown is None:
        return "no final run"
    spec = runs[shown].spec
    if what == "optimizer":
        oc = {k: v for k, v in (spec.get("optimizer_config") or {}).items() if k != "name"}
        return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in oc.items() if k in ("learning_rate", "momentum", "rho"))
    return describe_model(spec.get("model") or {})


class _Missing(dict):
    def __missing__(self, key):
        return DASH


def deviation_rows(runs: Runs, config: dict, data: dict, study: bool = True) -> list[dict]:
    """The "Deviations and assumptions" table: ``deviations.yaml`` filled in from the runs
    (``study`` False: a study of searches alone, without the rows about the paper's grid)."""
    text = resources.files(__package__).joinpath("deviations.yaml").read_text(encoding="utf-8")
    by_role: dict[str, list] = {}
    for r in runs:
        by_role.setdefault(r.get("role"), []).append(r.spec)

    def first(role, key, default=DASH):
        specs = by_role.get(role) or []
        return specs[0].get(key, default) if specs else default

    final = by_role.get("final") or [{}]
    sched = final[0].get("schedule") or {}
    model = final[0].get("model") or {}
    rules = Rules.of(config.get("verdicts"))
    values = {
        "data_name": data.get("name", DASH),
        "validation_size": count(config.get("validation_size")),
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
        "margin": f"{rules.margin:g}", "val_target": f"{rules.val_target:g}",
        "tuning_metric": (config.get("tuning") or {}).get("metric", DASH),
        "tuning_seeds": ", ".join(map(str, (config.get("tuning") or {}).get("seeds") or [])) or DASH,
    }
    shown = {"all", "study"} if study else {"all"}
    if (config.get("tuning") or {}).get("searches"):
        shown.add("searches")
    return [{"topic": d["topic"], "paper": d["paper"], "ours": d["ours"].format_map(_Missing(values))}
            for d in yaml.safe_load(text) if d.get("scope", "study") in shown]
