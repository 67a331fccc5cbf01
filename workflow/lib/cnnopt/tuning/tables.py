"""The tuning study's tables: every candidate, the tuned comparison and its verdicts.

``tables`` reads the selection files (``tuning.select``) and the tuned runs' folders
(``runs.read_runs``) and writes ``tuning_candidates.csv``, ``tuned.csv``, ``tuned_claims.csv``
and ``time_to_target.csv``: whether the paper's ranking of the optimizers survives when each
gets the same tuning budget, and whether each newer optimizer beats Adam and Adamax so tuned,
judged with the claims table's rules (``judge.decide.judge``), every run read through the
model the searches chose on (``reading``); and each optimizer's median
steps and seconds to the validation target (``tuning.profile``).
"""

from __future__ import annotations

import logging
import math

import pandas as pd

from cnnopt.common import files
from cnnopt.common.paper import PAPER_TABLE1
from cnnopt.common.registry import TUNED, optimizer_label
from cnnopt.common.runs import read_runs
from cnnopt.config.searches import tuned_variant
from cnnopt.judge import decide, metrics
from cnnopt.judge.rules import Rules
from cnnopt.tuning import profile, select

log = logging.getLogger(__name__)

#: The columns of the candidates table (tuning_candidates.csv), one row per candidate.
CANDIDATE_COLUMNS = ["search", "optimizer", "learning_rate", "run_id", "score", "diverged",
                     "diverged_epoch", "chosen", "at_edge", "rung", "extension"]
#: The paper's four, which the newer optimizers of its future work are set against.
PAPERS = ("adam", "sgd", "rmsprop", "adamax")
#: What each newer optimizer must beat, tuned alike: the paper's best two.
REFERENCES = ("adam", "adamax")
#: The columns of the tuned comparison (tuned.csv), one row per search and optimizer.
TUNED_COLUMNS = ["search", "label", "optimizer", "learning_rate", "at_edge", "model", "test_accuracy",
                 "test_accuracy_std", "seeds", "best_val_accuracy", "train_seconds", "diverged",
                 "paper_final", "rank", "paper_rank"]


def reading(rules: Rules, metric: str, roles) -> Rules:
    """The decision rules with which the tuning study is judged: every run of ``roles`` (the
    tuned runs and the reference runs of the hand_tuned claims alike) read as ``metric`` says,
    its best-validation epoch's model for ``best_epoch``, its last epoch's for ``last_epoch``,
    so that both arms of a claim are read the same way whatever their roles (``select.MODELS``)."""
    best = sorted({str(r) for r in roles}) if select.MODELS[select.check_metric(metric)] == "best" else []
    return rules.replace(best_model_roles=best)


def candidate_table(choices: list[dict]) -> pd.DataFrame:
    """Every candidate of every selection file, one row each (``CANDIDATE_COLUMNS``)."""
    rows = [{"search": c["search"], "optimizer": c["optimizer"], **r,
             "chosen": r["run_id"] == c["run_id"], "at_edge": c["at_edge"] and r["run_id"] == c["run_id"]}
            for c in choices for r in c["candidates"]]
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def ranking_claims(search: str, label: str, optimizers) -> list[dict]:
    """The paper's ranking of final accuracies (Table 1), as claims on ``search``'s tuned runs.

    One ``greater`` claim per neighbouring pair of the paper's order among ``optimizers``, and
    the paper's "Adam and Adamax are the two best" as a ``top`` claim when all four take part.
    """
    order = [o for o in sorted(PAPER_TABLE1, key=lambda o: -PAPER_TABLE1[o]["final"]) if o in optimizers]
    arm = f"{{}}/{tuned_variant(search)}".format
    claims = [{"id": f"{search}_rank_{a}_{b}", "family": "ranking", "kind": "greater",
               "a": arm(a), "b": arm(b),
               "where": "Table 1, under equal tuning",
               "paper": PAPER_TABLE1[a]["final"] - PAPER_TABLE1[b]["final"],
               "claim": f"{label}: tuned {optimizer_label(a)} beats tuned {optimizer_label(b)} "
                        f"(the paper: {PAPER_TABLE1[a]['final']:.2f} vs {PAPER_TABLE1[b]['final']:.2f})"}
              for a, b in zip(order, order[1:], strict=False)]
    if {"adam", "adamax", "rmsprop", "sgd"} <= set(optimizers):
        claims.append({"id": f"{search}_top_two", "family": "ranking", "kind": "top",
                       "where": "§IV.5.1, under equal tuning",
                       "claim": f"{label}: tuned Adam and Adamax are the two best of the paper's four",
                       "members": [arm("adam"), arm("adamax")], "others": [arm("rmsprop"), arm("sgd")]})
    return claims


def newer_claims(search: str, label: str, optimizers) -> list[dict]:
    """The future work's question, as claims on ``search``'s tuned runs: each newer optimizer
    (one not among the paper's four) beats tuned Adam and tuned Adamax (family "newer")."""
    arm = f"{{}}/{tuned_variant(search)}".format
    return [{"id": f"{search}_{new}_beats_{ref}", "family": "newer", "kind": "greater",
             "a": arm(new), "b": arm(ref), "where": "§V (future work), under equal tuning",
             "claim": f"{label}: tuned {optimizer_label(new)} beats tuned {optimizer_label(ref)}"}
            for new in optimizers if new not in PAPERS
            for ref in REFERENCES if ref in optimizers]


def hand_tuned_claims(search: str, label: str, optimizers, budget: str | None, arms) -> list[dict]:
    """Automated tuning against the paper's hand tuning, as claims: each of the paper's four,
    tuned in ``search``, beats its own final recipe (the ``budget`` variant, the same budget
    with the paper's hand-set rate), where ``arms`` (optimizer/variant of the runs given)
    holds that reference run (family "hand_tuned")."""
    if not budget:
        return []
    return [{"id": f"{search}_{opt}_tuned_beats_hand", "family": "hand_tuned", "kind": "greater",
             "a": f"{opt}/{tuned_variant(search)}", "b": f"{opt}/{budget}",
             "where": "§V (automated hyperparameter search) against Table 1's recipes",
             "claim": f"{label}: {optimizer_label(opt)} tuned alike beats its hand-tuned final recipe"}
            for opt in optimizers if opt in PAPERS and f"{opt}/{budget}" in arms]


def tuned_table(choices: list[dict], runs: pd.DataFrame, labels: dict[str, str],
                rules: Rules) -> pd.DataFrame:
    """Per search and optimizer: the chosen rate and the tuned runs' test accuracy over seeds.

    ``runs`` is the per-run table of the tuned runs (``runs.read_runs(...).table``, percent);
    each run's accuracy is the model ``rules`` read (``reading``; ``model`` says which), as the
    verdicts read it: a diverged run has none and counts under ``diverged``, not ``seeds``.
    ``rank`` orders the optimizers of a search by mean test accuracy, ``paper_rank`` the
    paper's four by their final accuracy in Table 1.
    """
    measured = metrics.measure(runs, rules).set_index(runs.index)
    rows = []
    for c in choices:
        mine = runs[(runs["optimizer"] == c["optimizer"]) & (runs["variant"] == tuned_variant(c["search"]))]
        acc = measured.loc[mine.index, "accuracy"].astype(float)
        rows.append({"search": c["search"], "label": labels.get(c["search"], c["search"]),
                     "optimizer": c["optimizer"], "learning_rate": c["learning_rate"],
                     "at_edge": c["at_edge"],
                     "model": "/".join(sorted(set(measured.loc[acc.dropna().index, "model"]))),
                     "test_accuracy": acc.mean(),
                     "test_accuracy_std": acc.std(ddof=1), "seeds": int(acc.notna().sum()),
                     "best_val_accuracy": mine["best_val_accuracy"].astype(float).mean(),
                     "train_seconds": mine["train_seconds"].astype(float).mean(),
                     "diverged": int(mine["diverged"].astype(bool).sum()),
                     "paper_final": PAPER_TABLE1.get(c["optimizer"], {}).get("final", math.nan)})
    frame = pd.DataFrame(rows, columns=TUNED_COLUMNS)
    if frame.empty:
        return frame
    frame["rank"] = frame.groupby("search")["test_accuracy"].rank(ascending=False, method="min")
    frame["paper_rank"] = frame.groupby("search")["paper_final"].rank(ascending=False, method="min")
    return frame.sort_values(["search", "rank"], kind="stable").reset_index(drop=True)


def tables(choice_files, run_dirs, labels: dict[str, str], out_candidates, out_tuned, out_claims,
           out_time, rules: Rules | dict | None = None, scale: str = "reduced",
           budgets: dict[str, str | None] | None = None, metric: str = "last_epoch") -> pd.DataFrame:
    """Write the candidates table, the tuned comparison and its verdicts; return the claims.

    ``choice_files`` are the selection files of :func:`select`, ``run_dirs`` the folders of
    the tuned runs and of the reference runs that the claims read (each search's ``budgets``
    variant: the hand-tuned final recipes), all with their evaluation.json; ``labels`` each
    search's label. The verdicts
    (``judge.decide.judge``, the rules of the claims table) say whether the paper's ranking of the
    optimizers survives when each gets the same tuning budget, and whether each newer one beats
    Adam and Adamax so tuned; ``out_time`` gets the time to the validation target
    (``tuning.profile``). ``rules`` are the decision rules (a ``Rules``, or the config's
    ``verdicts`` block): the target is theirs. ``metric`` is the searches' (``tuning.metric``):
    the tuned table and every claim read each run, tuned or reference, through the model it
    names (``reading``).
    """
    choices = [files.read_json(p) for p in choice_files]
    read = read_runs(run_dirs)
    rules = reading(Rules.of(rules), metric, read.table["role"])
    runs = metrics.with_curve_facts(read, rules)
    claims = []
    arms = set(metrics.arms_of(runs))
    for search in dict.fromkeys(c["search"] for c in choices):
        present = [c["optimizer"] for c in choices if c["search"] == search]
        claims += ranking_claims(search, labels.get(search, search), present)
        claims += newer_claims(search, labels.get(search, search), present)
        claims += hand_tuned_claims(search, labels.get(search, search), present,
                                    (budgets or {}).get(search), arms)
    judged = decide.judge(claims, runs, read.predictions(), rules, scale)
    tuned = runs[runs["role"] == TUNED]
    searched = tuned.assign(search=tuned["variant"].astype(str).str.removesuffix("_tuned"))
    files.write_csv(out_time, profile.medians(profile.per_run(searched, rules.val_target)))
    files.write_csv(out_candidates, candidate_table(choices))
    files.write_csv(out_tuned, tuned_table(choices, runs, labels, rules))
    files.write_csv(out_claims, judged)
    log.info("tuning: %d searches, %d selections, %d tuned runs, %d ranking claims (%s)",
             len({c["search"] for c in choices}), len(choices), len(runs), len(judged),
             ", ".join(f"{k} {v}" for k, v in judged["verdict"].value_counts().items()))
    return judged
