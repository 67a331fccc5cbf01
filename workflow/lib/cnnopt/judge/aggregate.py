"""Aggregate the training runs into the tables of the report.

``runs.read_runs`` reads every run folder and ``metrics.with_curve_facts`` adds the curve facts
under the decision rules: one per-run table (runs.csv); ``table1``,
``ablation`` and ``summary`` derive the paper's Table 1, the regularization twins and a JSON
summary from it; ``aggregate`` writes them, the claims table (``judge.decide.judge``) and the
arms' spread per stratum (``judge.decide.strata``). ``judge_runs`` gives the claims table of
any folder of runs, without Snakemake.

Accuracies in the frames are percent. A diverged run (metrics ``diverged`` true) counts in
the means with the accuracy it scored, and each table says how many of its runs diverged.
"""

from __future__ import annotations

import logging
import math
from os import PathLike

import numpy as np
import pandas as pd

from cnnopt.common import files
from cnnopt.common.errors import DataError
from cnnopt.common.paper import PAPER_BASELINE, PAPER_TABLE1
from cnnopt.common.registry import optimizer_label
from cnnopt.common.runs import Runs, optimizer_order, optimizer_rank, read_runs, shown_run
from cnnopt.judge import claims as judge_claims
from cnnopt.judge import decide, metrics, sequential
from cnnopt.judge.rules import Rules

log = logging.getLogger(__name__)

TABLE1_COLUMNS = [
    "optimizer", "label", "initial", "initial_std", "final", "final_std", "final_last",
    "final_last_std", "paper_initial", "paper_final", "initial_diff", "final_diff",
    "key_adjustments", "initial_seconds",
    "final_seconds", "seeds", "initial_seeds", "diverged", "diverged_runs",
    "final_epochs_to_target", "final_seconds_to_target",
]
ABLATION_COLUMNS = [
    "variant", "label", "optimizer", "test_accuracy", "test_accuracy_std", "train_seconds",
    "seeds", "diverged", "reference", "reference_accuracy", "delta",
]


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


def _best(frame: pd.DataFrame) -> pd.Series:
    """Test accuracy of the best-validation model (the last epoch's where a run has none)."""
    return frame["test_accuracy_best"].astype(float).fillna(frame["test_accuracy"].astype(float))


def table1(runs: pd.DataFrame) -> pd.DataFrame:
    """Table 1: initial and final test accuracy per optimizer, ours beside the paper's.

    ``runs`` is the per-run table with its curve facts (``metrics.with_curve_facts``).

    Means are over every seed, diverged runs included; time to target is the mean over the
    final runs that reached the validation target (``verdicts.val_target``). ``final`` is the
    model of the best validation epoch (the paper's Final Accuracy, "the highest accuracy
    achieved"), ``final_last`` the last epoch's; ``initial`` is the last epoch's (the first
    complete training cycle).
    """
    rows = []
    present = runs.groupby("optimizer")["role"].agg(set)
    for opt in optimizer_order(runs["optimizer"]):
        if not {"initial", "final"} <= present.get(opt, set()):
            continue
        mine = runs[runs["optimizer"] == opt]
        ini, fin = mine[mine["role"] == "initial"], mine[mine["role"] == "final"]
        i_mean, i_std, i_n = _stats(ini["test_accuracy"])
        # the paper's Final Accuracy is "the highest accuracy achieved": the best validation
        # epoch's model (chosen on validation, scored once); a run without one counts its last
        f_mean, f_std, f_n = _stats(_best(fin))
        l_mean, l_std, _ = _stats(fin["test_accuracy"])
        paper = PAPER_TABLE1.get(opt, {})
        p_i, p_f = paper.get("initial", math.nan), paper.get("final", math.nan)
        ours_adj = [k for k in fin["key_adjustments"] if isinstance(k, str) and k]
        rows.append({
            "optimizer": opt, "label": optimizer_label(opt),
            "initial": i_mean, "initial_std": i_std, "final": f_mean, "final_std": f_std,
            "final_last": l_mean, "final_last_std": l_std,
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
    """The twins (role ``ablation``), mean and std over seeds, beside the final run they vary;
    both by their best-validation models, as the claims read them.

    ``delta`` is the final run's mean minus the twin's: what the ingredient the twin lacks
    adds to the final recipe (positive: the ingredient helps). The claims table tests it.
    """
    abl = runs[runs["role"] == "ablation"]
    rows = []
    for (variant, opt), grp in abl.groupby(["variant", "optimizer"], sort=False):
        mean, std, n = _stats(_best(grp))
        final = runs[(runs["optimizer"] == opt) & (runs["role"] == "final")]
        ref = _stats(_best(final))[0] if len(final) else math.nan
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
        frame = (frame.assign(_o=optimizer_rank(frame["optimizer"]))
                 .sort_values(["_o", "variant"], kind="stable").drop(columns="_o"))
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
    shown = shown_run(runs)
    if shown is not None:  # chosen on validation accuracy (see shown_run), never on the test set
        row = runs[runs["run_id"] == shown].iloc[0]
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


def verdict_counts(claims: pd.DataFrame) -> dict:
    """Verdict counts, all together and split by scale: "paper" (every run at the paper's
    budget) and "reduced" (some below it)."""
    at_paper = claims["scale"].astype(str) == "paper"
    return {"all": _clean(claims["verdict"].value_counts().to_dict()),
            "paper": _clean(claims.loc[at_paper, "verdict"].value_counts().to_dict()),
            "reduced": _clean(claims.loc[~at_paper, "verdict"].value_counts().to_dict())}


def judged_runs(run_dirs, rules: Rules | dict | None = None) -> tuple[Runs, pd.DataFrame]:
    """The run folders read (``read_runs``) and their per-run table with the curve facts
    under ``rules``: what every judge reads."""
    read = read_runs(run_dirs)
    return read, metrics.with_curve_facts(read, Rules.of(rules))


def judge_runs(run_dirs, claims=None, rules: Rules | dict | None = None,
               scale: str = "reduced") -> pd.DataFrame:
    """The claims table (``decide.COLUMNS``, one row per claim) of the runs in ``run_dirs``:
    folders in the workflow's format (run.json, metrics.json, history.csv, evaluation.json),
    made by the workflow or not. ``claims`` is a claims file's path, a list of claims, or None
    (the paper's); an arm no run records is a one-line error. ``rules`` and ``scale`` as
    ``aggregate``'s. No Snakemake needed: the README's "The library without Snakemake"."""
    rules = Rules.of(rules)
    read, runs = judged_runs(run_dirs, rules)
    if claims is None:
        claims = judge_claims.load_claims()
    elif isinstance(claims, str | PathLike):
        source, claims = claims, judge_claims.read_claims(claims)
        judge_claims.check_arms(claims, set(metrics.arms_of(runs)), source)
    return decide.judge(claims, runs, read.predictions(), rules, scale)


def sequential_summary(runs: pd.DataFrame, plans, claims: list[dict], rules: Rules,
                       scale: str, threads: int = 1) -> dict:
    """The sequential design in the summary: the looks (``sequential.looks_table``), what it
    saved against every arm at the last look's seeds, and the verdicts the fixed design of the
    first look's seeds gives on the same runs (every claim at the full level)."""
    plans = [sequential.read_plan(p) if isinstance(p, str | PathLike) else p for p in plans]
    seq = rules.sequential
    first = sequential.base_seeds(sequential.arm_seeds(runs), rules)
    fixed = decide.judge(claims, runs[runs["seed"].isin(first)], None, rules, scale,
                         with_power=False)
    return {"looks": sequential.looks_table(plans).to_dict("records"),
            "levels": list(sequential.levels(rules)), "spending": seq.spending,
            "budget_trainings": seq.budget_trainings, "max_seeds": seq.cap,
            **sequential.savings(runs, rules, threads),
            "fixed_first_look": fixed["verdict"].value_counts().to_dict()}


def aggregate(run_dirs, out_runs, out_table1, out_ablation, out_summary, out_claims, out_strata,
              rules: Rules | dict | None = None, scale: str = "reduced",
              claims: list[dict] | None = None, looks=None, threads: int = 1) -> dict:
    """Collect the runs; write runs.csv, table1.csv, ablation.csv, summary.json, claims.csv
    and strata.csv.

    ``rules`` are the decision rules (a ``Rules``, or the config's ``verdicts`` block) and
    ``scale`` the config's ``scale``: how each claim of ``claims`` (default: the paper's,
    ``claims.yaml``) is judged. With the sequential design on, ``looks`` is the list of
    (plan, claims table) files of its looks in order: the claims table is the last look's
    (each claim judged at the look that decided it) and the summary says what the design
    saved (``threads``: per training, for its CPU hours).
    """
    rules = Rules.of(rules)
    read, runs = judged_runs(run_dirs, rules)
    table = table1(runs)
    abl = ablation(runs)
    summ = summary(runs, table, abl)
    claims = judge_claims.load_claims() if claims is None else claims
    if looks:
        summ["sequential"] = sequential_summary(runs, [p for p, _ in looks], claims, rules,
                                                scale, threads)
        claims = sequential.read_table(looks[-1][1])
    else:
        claims = decide.judge(claims, runs, read.predictions(), rules, scale)
    strata = decide.strata(runs, rules, scale)
    counts = verdict_counts(claims)
    summ["verdicts"] = counts["all"]
    summ["verdicts_by_scale"] = {"paper": counts["paper"], "reduced": counts["reduced"]}
    summ["seeds"] = int(runs["seed"].nunique())
    summ["scale"] = scale
    if runs["diverged"].any():
        log.warning("diverged runs (counted in the means): %s",
                    ", ".join(runs.loc[runs["diverged"].astype(bool), "run_id"]))
    files.write_csv(out_runs, runs)
    files.write_csv(out_table1, table)
    files.write_csv(out_ablation, abl)
    files.write_csv(out_claims, claims)
    files.write_csv(out_strata, strata)
    files.write_json(out_summary, summ)
    log.info("aggregated %d runs: %d Table 1 rows, %d ablation rows, %d claims (%s)", len(runs),
             len(table), len(abl), len(claims),
             ", ".join(f"{k} {v}" for k, v in summ["verdicts"].items()))
    return summ


def look(run_dirs, k: int, claims: list[dict], rules, out_plan, out_claims,
         scale: str = "reduced", previous_plan=None, previous_claims=None) -> sequential.Plan:
    """Look ``k`` of the sequential design on the runs in ``run_dirs`` (the first look's seeds
    of every arm, and what the plans so far added): its claims table (``sequential.judge_look``) written
    to ``out_claims`` and its plan (``sequential.plan_look``) to ``out_plan``. From the second look on,
    ``previous_plan`` and ``previous_claims`` are look ``k - 1``'s files; the runs must be the
    arms and seeds that plan gave (else a one-line error)."""
    rules = Rules.of(rules)
    seq = rules.sequential
    if not seq.on:
        raise DataError("verdicts.sequential has no looks: the sequential design is off")
    if not 1 <= k <= len(seq.looks):
        raise DataError(f"look {k}: the design has looks 1 to {len(seq.looks)}")
    read, runs = judged_runs(run_dirs, rules)
    seeds = sequential.arm_seeds(runs)
    previous, used = None, 0
    if k > 1:
        if previous_plan is None or previous_claims is None:
            raise DataError(f"look {k} needs look {k - 1}'s plan and claims table")
        plan = sequential.read_plan(previous_plan)
        if plan["done"]:
            raise DataError(f"{previous_plan}: look {k - 1} planned no further look")
        want = {a: tuple(v) for a, v in plan["arms"].items()}
        if want != seeds:
            differ = sorted(a for a in set(want) | set(seeds) if want.get(a) != seeds.get(a))
            raise DataError(f"look {k}: the runs are not the seeds look {k - 1} planned "
                            f"(first difference: {differ[0]}: runs {list(seeds.get(differ[0], ()))}, "
                            f"planned {list(want.get(differ[0], ()))})")
        previous, used = sequential.read_table(previous_claims), int(plan["trainings_added"])
    else:
        short = {a: v for a, v in seeds.items() if len(v) != seq.looks[0]}
        if short:
            arm, have = next(iter(short.items()))
            raise DataError(f"look 1 needs {seq.looks[0]} seeds per arm (verdicts.sequential.looks); "
                            f"{arm} has {len(have)}")
    table = sequential.judge_look(claims, runs, rules, scale, k, previous, read.predictions())
    plan = sequential.plan_look(table, claims, seeds, rules, k, used)
    files.write_csv(out_claims, table)
    files.write_json(out_plan, plan.as_json())
    log.info("look %d (%d seeds, level %.4g): %d claims judged, %d decided; %d trainings added "
             "so far%s", k, plan.seeds, plan.level, len(plan.judged), len(plan.decided),
             plan.trainings_added,
             "; grows " + ", ".join(f"{a} +{len(s)}" for a, s in plan.grow.items()) if plan.grow
             else "; no further look")
    return plan
