"""The rows of the report's tables: one dict per row, numbers left as numbers.

Each function turns an aggregate table or the runs into the rows one table of the template
shows. Cells that are numbers stay numbers (None when missing); the template formats them
with the filters of ``formatting.FILTERS`` (``{{ r.final | pm(r.final_std) }}``), so every
cell is formatted in one place.
"""

from __future__ import annotations

import importlib.metadata

import pandas as pd
import yaml

from cnnopt.common.paper import PAPER_TABLE1
from cnnopt.common.registry import optimizer_label
from cnnopt.common.runs import Run, Runs, optimizer_order
from cnnopt.judge import calibration
from cnnopt.judge.metrics import METRICS
from cnnopt.report.formatting import fmt, isnum, percent
from cnnopt.report.text import UPDATE_RULES, UPDATE_WORDS, data_notice, describe_model


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows of ``frame`` as dicts, with None for every missing value (NaN, NA)."""
    return [{k: (None if not isinstance(v, (str, list, dict)) and pd.isna(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _num(x):
    """``x`` if it is a finite number, else None (a cell the template shows as a dash)."""
    return x if isnum(x) else None


def data_section(manifest: dict) -> dict:
    """The data set's description (key-value table) and its images per class."""
    counts = manifest.get("counts") or {}
    train, test = counts.get("train") or {}, counts.get("test") or {}
    names = list(manifest.get("class_names") or list(train) or list(test))
    return {
        "name": manifest.get("name") or "unnamed data set",
        "source": manifest.get("source"), "format": manifest.get("format"),
        "canonical": bool(manifest.get("canonical")), "notice": data_notice(manifest),
        "sha256": manifest.get("sha256"), "md5": manifest.get("md5"),
        "checksum_verified": manifest.get("checksum_verified") or "not verified",
        "image_shape": manifest.get("image_shape") or [],
        "classes": [{"name": c, "train": train.get(c), "test": test.get(c)} for c in names],
        "n_train": sum(v for v in train.values() if isnum(v)),
        "n_test": sum(v for v in test.values() if isnum(v)),
        "conversions": {k: v for k, v in (manifest.get("conversions") or {}).items() if v},
    }


def model_rows(runs: Runs) -> list[dict]:
    """One row per distinct model spec (M1, M2, ...), with the runs that use it."""
    groups: dict[str, dict] = {}
    for r in runs:
        model = r.spec.get("model") or {}
        g = groups.setdefault(yaml.safe_dump(model, sort_keys=True),
                              {"model": model, "runs": [], "params": set()})
        g["runs"].append(r.run_id)
        if r.metrics.get("params") is not None:
            g["params"].add(int(r.metrics["params"]))
    return [{"name": f"M{i}", "architecture": g["model"].get("architecture"),
             "description": describe_model(g["model"]),
             "filters": g["model"].get("filters") or [], "dense": g["model"].get("dense") or [],
             "dropout": _num(g["model"].get("dropout", 0.0)),
             "conv_dropout": _num(g["model"].get("conv_dropout", 0.0)),
             "batch_norm": bool(g["model"].get("batch_norm")), "l2": _num(g["model"].get("l2", 0.0)),
             "params": sorted(g["params"]), "runs": g["runs"]}
            for i, g in enumerate(groups.values(), 1)]


def optimizer_rows(runs: Runs) -> list[dict]:
    """Per optimizer: its update rule and each distinct hyperparameter setting with its runs."""
    out = []
    for opt in optimizer_order(r.get("optimizer") for r in runs):
        groups: dict[str, list[str]] = {}
        for r in runs:
            if r.get("optimizer") == opt:
                oc = {k: v for k, v in (r.spec.get("optimizer_config") or {}).items() if k != "name"}
                groups.setdefault(", ".join(f"{k} = {v}" for k, v in oc.items()), []).append(r.run_id)
        out.append({"name": opt, "label": optimizer_label(opt),
                    "words": UPDATE_WORDS.get(opt, f"The Keras optimizer '{opt}' with the settings below."),
                    "rule": UPDATE_RULES.get(opt, []),
                    "configs": [{"settings": k, "runs": v} for k, v in groups.items()]})
    return out


def schedule_rows(runs: Runs) -> list[dict]:
    """Each run's learning-rate schedule and the first and last rate its history recorded."""
    rows = []
    for r in runs:
        sched = r.spec.get("schedule") or {}
        hist = r.history
        lrs = hist["learning_rate"].dropna() if "learning_rate" in hist else pd.Series(dtype=float)
        exponential = sched.get("type") == "exponential"
        rows.append({
            "run_id": r.run_id, "type": sched.get("type", "constant"),
            "eta0": _num((r.spec.get("optimizer_config") or {}).get("learning_rate")),
            "decay_rate": _num(sched.get("decay_rate")), "decay_step": _num(sched.get("decay_step")),
            "staircase": bool(sched.get("staircase")) if exponential else None,
            "lr_first": lrs.iloc[0] if len(lrs) else None, "lr_last": lrs.iloc[-1] if len(lrs) else None,
        })
    return rows


def table1_rows(table1: pd.DataFrame) -> list[dict]:
    """Table 1 beside the paper's: means, stds, differences and gains per optimizer."""
    rows = []
    for r in records(table1):
        paper = PAPER_TABLE1.get(r["optimizer"], {})
        gain = r["final"] - r["initial"] if isnum(r["final"]) and isnum(r["initial"]) else None
        paper_gain = (r["paper_final"] - r["paper_initial"]
                      if isnum(r["paper_final"]) and isnum(r["paper_initial"]) else None)
        rows.append(r | {
            "label": r.get("label") or optimizer_label(r["optimizer"]),
            "missing": "diverged" if r.get("diverged") else None,
            "gain": gain, "paper_gain": paper_gain,
            "paper_key_adjustments": paper.get("key_adjustments"),
            "seeds": r.get("seeds") or 0,
        })
    return rows


def ablation_rows(abl: pd.DataFrame) -> list[dict]:
    """The twins beside their final recipe."""
    return [r | {"optimizer": optimizer_label(r["optimizer"]), "label": r.get("label") or "",
                 "seeds": r.get("seeds") or 0, "diverged": r.get("diverged") or 0}
            for r in records(abl)]


#: What the paper's value is for a comparison without a number of its own.
_PAPER_KIND = {"greater": "A > B", "top": "each of A > each of B"}


def claim_rows(claims: pd.DataFrame) -> list[dict]:
    """The claims table: one row per claim of claims.csv."""
    rows = []
    for r in records(claims):
        value = r.get("kind") == "value"
        rows.append(r | {
            "value": value, "paper_text": _PAPER_KIND.get(r.get("kind")),
            "unit": None if value else (METRICS.get(r.get("metric") or "accuracy") or {}).get("unit"),
            "n": r.get("n") or 0, "css": (r.get("verdict") or "").replace(" ", "-"),
            "claim": r.get("claim") or "", "where": r.get("where") or "",
            "reason": r.get("reason") or "", "runs": r.get("runs") or "",
            # the sequential design's look that decided it, and the claim's seeds there
            "look": r.get("look"), "seeds": r.get("seeds"),
        })
    return rows


def strata_rows(strata: pd.DataFrame) -> list[dict]:
    """The arms' spread per stratum (strata.csv)."""
    return records(strata) if len(strata) else []


def calibration_section(table: pd.DataFrame | None) -> dict:
    """The operating characteristics (calibration.csv): per case, seed sd and seed count the
    worst claim's and the worst family's rate of false verdicts and the values' power; the
    power table; and sentences on what they say."""
    empty = {"rows": [], "power_rows": [], "power_columns": [], "limit": 0.05,
             "text": "No calibration was run."}
    if table is None or table.empty:
        return empty
    rates = calibration.false_rates(table)
    power = calibration.power_table(table)
    limit = float(rates["mc_limit"].max())
    rows = [r | {"case_text": calibration.CASE_TEXT.get(r["case"], r["case"]),
                 "over": max(r["worst_claim_rate"], r["worst_family_rate"]) > r["mc_limit"]}
            for r in records(rates)]
    held = [c for c in dict.fromkeys(rates["case"]) if not any(r["over"] for r in rows if r["case"] == c)]
    broken = [c for c in dict.fromkeys(rates["case"]) if c not in held]
    model = rates[rates["case"] == "model"]
    effect = power.loc[power.index.get_level_values("truth") == "true effect 5"] if len(power) else power
    text = (f"Simulated on this study's own claims and arms, {int(rates['studies'].min())} studies "
            f"per setting. The rules keep false verdicts within {percent(limit)} (5 % plus Monte "
            f"Carlo error) per claim and per family in these cases: "
            f"{'; '.join(calibration.CASE_TEXT[c] for c in held) or 'none'}. "
            + (f"They do not in these: {'; '.join(calibration.CASE_TEXT[c] for c in broken)} "
               f"(worst claim {percent(rates[rates['case'].isin(broken)]['worst_claim_rate'].max())}, "
               "worst family "
               f"{percent(rates[rates['case'].isin(broken)]['worst_family_rate'].max())}): with two or "
               "three seeds one arm far noisier than its neighbours cannot be told from bad luck, "
               "and a verdict on such an arm's claims deserves more seeds. " if broken else "")
            + (f"A recipe exactly at the paper's number is reproduced in "
               f"{percent(model['values_power'].min())} to {percent(model['values_power'].max())} "
               "of studies (the seed sd and seed count set it: see the table). " if len(model) else "")
            + (f"A true difference of 5 points is found in {percent(effect.to_numpy().min())} to "
               f"{percent(effect.to_numpy().max())} of claims." if len(effect) else ""))
    columns = list(power.columns)
    power_rows = [{"kind": kind, "truth": truth, "values": [float(v) for v in power.loc[(kind, truth)]]}
                  for kind, truth in power.index]
    return {"rows": rows, "power_rows": power_rows, "power_columns": columns, "limit": limit,
            "text": text}


def run_rows(runs_df: pd.DataFrame) -> list[dict]:
    """The runs table (runs.csv), one row per run."""
    return [r | {"optimizer": optimizer_label(r["optimizer"]), "label": r.get("label") or "",
                 "diverged": bool(r.get("diverged"))}
            for r in records(runs_df)]


def per_class_rows(run: Run | None) -> list[dict]:
    """Test accuracy (%) per class of ``run``."""
    if run is None:
        return []
    return [{"name": c, "accuracy": 100 * v if isnum(v) else None}
            for c, v in (run.evaluation.get("per_class_accuracy") or {}).items()]


def version_rows(runs: Runs) -> list[dict]:
    """The library versions the runs recorded, then those of the report's own packages."""
    seen: dict[str, set] = {}
    for r in runs:
        for k, v in (r.metrics.get("versions") or {}).items():
            seen.setdefault(k, set()).add(str(v))
    rows = [{"name": k, "version": ", ".join(sorted(v)), "where": "training runs"}
            for k, v in sorted(seen.items())]
    for pkg in ("pandas", "matplotlib", "jinja2", "pyyaml"):
        try:
            rows.append({"name": pkg, "version": importlib.metadata.version(pkg), "where": "report"})
        except importlib.metadata.PackageNotFoundError:
            pass
    return rows


def sequential_section(design: dict | None, errors: pd.DataFrame | None,
                       power: pd.DataFrame | None) -> dict | None:
    """The sequential design (summary.json's ``sequential``, sequential_calibration.csv and
    sequential_power.csv): one row per look, what the design saved against giving every arm
    the last look's seeds, its simulated error rates and power against fixed seeds, and
    sentences on what they say. None without the design."""
    if not design:
        return None
    looks = design.get("looks") or []
    fixed = design.get("fixed_first_look") or {}
    decided_fixed = sum(v for k, v in fixed.items() if k not in ("inconclusive", "untested"))
    decided = sum(int(look["decided"]) for look in looks)
    seeds = ", ".join(str(look["seeds"]) for look in looks)
    levels = ", ".join(format(look["level"], ".4f") for look in looks)
    text = (f"{len(looks)} look(s) at {seeds} seeds per arm, tested at nominal levels {levels} "
            f"({design.get('spending')} spending); {decided} claims decided over the looks, where "
            f"the fixed design of the first look's seeds, at the full level, decides "
            f"{decided_fixed}. The looks added {design.get('trainings', 0) - design.get('trainings_first_look', 0)} "
            f"trainings (budget: {design.get('budget_trainings') if design.get('budget_trainings') is not None else 'none'}); "
            f"giving every arm the last look's seeds would take {design.get('trainings_full')} "
            f"trainings, {design.get('trainings_saved')} more: {design.get('trainings_saved')} "
            f"trainings saved, {fmt(design.get('hours_saved'))} training hours "
            f"({fmt(design.get('cpu_hours_saved'))} CPU hours).")
    error_rows, power_rows = [], []
    if errors is not None and len(errors):
        error_rows = [r | {"case_text": calibration.CASE_TEXT.get(r["case"], r["case"]),
                           "over": max(r["worst_claim_rate"], r["worst_family_rate"]) > r["mc_limit"]}
                      for r in records(errors)]
        seq = errors[errors["design"].str.startswith("sequential")]
        over = [r for r in error_rows if r["over"] and r["design"].startswith("sequential")]
        text += (f" Simulated under no true difference ({int(errors['studies'].min())} studies per "
                 f"setting), the sequential design keeps false verdicts within 5 % plus Monte Carlo "
                 f"error per claim and per family in "
                 f"{len(seq) - len(over)} of {len(seq)} settings"
                 + (f"; not in {', '.join(sorted({r['case_text'] for r in over}))} (worst claim "
                    f"{percent(max(r['worst_claim_rate'] for r in over))}, worst family "
                    f"{percent(max(r['worst_family_rate'] for r in over))}), as the fixed designs "
                    "there (section 2.3)." if over else "."))
    if power is not None and len(power):
        power_rows = records(power)
    return {"looks": looks, "text": text, "errors": error_rows, "power": power_rows}
