"""The report's "Future work, answered" section: the learning-rate searches and tuned runs.

``future_section`` turns the tuning tables (``tuning_tables.tables``) and the searches'
figures into the section's values: per search, its budget, each optimizer's candidates and
choice, the tuned comparison beside the paper's Table 1, and the verdicts on the paper's
ranking. Every sentence is computed from those tables.
"""

from __future__ import annotations

import pandas as pd

from cnnopt.common.registry import optimizer_label
from cnnopt.config.searches import expand_tuning
from cnnopt.figures.names import tuning_figure_name
from cnnopt.judge.verdicts import CONTRADICTED, REPRODUCED, VERDICTS
from cnnopt.report.formatting import fmt, general, pm
from cnnopt.report.tables import claim_rows, records

#: The tuning tables the section reads (``tables`` of ``report.render``).
TABLES = ("tuning_candidates", "tuned", "tuned_claims", "time_to_target")
#: Which model of each run the tuned table and its claims read, per ``tuning.metric``, in words.
READING = {"last_epoch": "the last epoch's model", "best_epoch": "the best validation epoch's model"}


def searches_only_summary(config: dict, data: dict) -> list[str]:
    """The summary of a study of searches alone (an empty grid): what ran, and what did not."""
    tuning = config["tuning"]
    searches = tuning["searches"]
    optimizers = sorted({o for search in searches.values() for o in search["optimizers"]})
    labels = "; ".join(f"{s['label']}" for s in searches.values())
    seeds = ", ".join(str(seed) for seed in tuning["seeds"])
    return [f"This study trains no grid of the paper's runs: it runs the future work's learning-rate "
            f"searches alone ({len(searches)} search{'es' if len(searches) != 1 else ''}: {labels}), "
            f"{len(optimizers)} optimizers ({', '.join(optimizer_label(o) for o in optimizers)}) "
            f"tuned alike by validation accuracy, then trained with the chosen rate on seeds {seeds} "
            f"of {data.get('name') or 'CIFAR-10'}. Section 4 gives each choice, the tuned "
            "comparison, its verdicts and the times to target.",
            "The paper's Table 1 runs and the claims about them are not part of this study: the "
            "default study (config/config.yaml) judges those, and layering the hand-tuned final "
            "recipes as reference runs (config/future_hand_tuned.yaml) adds the verdict on each "
            "tuned optimizer against its own hand-tuned recipe."]


def budget_text(spec: dict) -> str:
    """What every run of a search trains with, in words, from one of its resolved run specs
    (``cnnopt.config.searches.expand_tuning``: the model, epochs, batch, schedule and images they share)."""
    model, schedule = spec["model"], spec["schedule"]
    net = (f"ResNet-{model['depth']} (filters {model['filters']})" if model["architecture"] == "resnet"
           else f"the {model['architecture']} network (filters {model.get('filters')}, batch norm "
                f"{'on' if model.get('batch_norm') else 'off'}, dropout {model.get('dropout', 0)})")
    sched = ("a constant rate" if schedule["type"] == "constant"
             else f"the {schedule['type']} schedule ({', '.join(f'{k} {v}' for k, v in schedule.items() if k != 'type')})")
    images, epochs = spec["max_train_images"], spec["epochs"]
    return (f"{net}, {epochs} epoch{'s' if epochs != 1 else ''}, batch {spec['batch_size']}, {sched}"
            + (f", {images:,} training images" if images else ""))


def _choice_rows(cands: pd.DataFrame) -> list[dict]:
    rows = []
    for opt, grp in cands.groupby("optimizer", sort=False):
        grp = grp.sort_values("learning_rate")
        chosen = grp[grp["chosen"].astype(bool)]
        rows.append({
            "optimizer": optimizer_label(opt),
            "candidates": [{"rate": general(r.learning_rate, 3), "score": r.score,
                            "diverged": bool(r.diverged), "chosen": bool(r.chosen)}
                           for r in grp.itertuples()],
            "chosen": general(chosen["learning_rate"].iloc[0], 3) if len(chosen) else None,
            "at_edge": bool(chosen["at_edge"].any()),
            "diverged": int(grp["diverged"].astype(bool).sum()),
        })
    return rows


def ranking_sentence(claims: pd.DataFrame) -> str:
    """Whether the paper's ranking survives equal tuning, in one sentence."""
    if claims.empty:
        return "Fewer than two of the paper's four optimizers took part in this search, so its ranking is not tested here."
    counts = claims["verdict"].value_counts()
    parts = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v))
    if counts.get(CONTRADICTED):
        head = "The paper's ranking does not survive equal tuning here"
    elif counts.get(REPRODUCED, 0) == len(claims):
        head = "The paper's ranking survives equal tuning here"
    else:
        head = "Whether the paper's ranking survives equal tuning is not settled here"
    return f"{head}: of its {len(claims)} ranking claim{'s' if len(claims) != 1 else ''}, {parts}."


def newer_sentence(claims: pd.DataFrame) -> str:
    """What the verdicts say of the newer optimizers against tuned Adam and Adamax."""
    if claims.empty:
        return ""
    won = claims.loc[claims["verdict"] == REPRODUCED, "claim"].tolist()
    lost = claims.loc[claims["verdict"] == CONTRADICTED, "claim"].tolist()
    rest = len(claims) - len(won) - len(lost)
    parts = [f"{len(won)} shown" if won else "none shown", f"{len(lost)} contradicted (the reference is better)"
             if lost else "", f"{rest} not decided by these seeds" if rest else ""]
    return (f"Newer optimizers against tuned Adam and Adamax: of {len(claims)} claims that one beats the "
            f"other, {', '.join(p for p in parts if p)}.")


def _time_rows(time: pd.DataFrame) -> list[dict]:
    return [{"optimizer": optimizer_label(r["optimizer"]), "seeds": r["seeds"], "reached": r["reached"],
             "steps": r["steps_to_target"], "seconds": r["seconds_to_target"], "epochs": r["epochs_to_target"]}
            for r in records(time.sort_values("steps_to_target", kind="stable"))]


def _ranking_text(tuned: pd.DataFrame) -> str:
    order = tuned.sort_values("rank", kind="stable")
    ours = "; ".join(f"{optimizer_label(r.optimizer)} {pm(r.test_accuracy, r.test_accuracy_std)}"
                     for r in order.itertuples())
    paper = order[order["paper_final"].notna()].sort_values("paper_rank", kind="stable")
    theirs = " > ".join(f"{optimizer_label(r.optimizer)} {fmt(r.paper_final)}" for r in paper.itertuples())
    return (f"Tuned runs in order of mean test accuracy (an order of means, not a finding: only the "
            f"claims below are tested, each with its n, interval and verdict): {ours}."
            + (f" The paper (Table 1): {theirs}." if theirs else ""))


def future_section(tables: dict[str, pd.DataFrame], figures: dict[str, str], config: dict) -> list[dict]:
    """One entry per search: label, budget, choices, tuned rows, claims, sentences, figure."""
    searches = (config.get("tuning") or {}).get("searches") or {}
    specs = {}  # search -> one of its runs' resolved spec (they share the budget)
    for spec in expand_tuning(config).values():
        specs.setdefault(spec["search"], spec)
    cands, tuned, claims, time = (tables[name] for name in TABLES)
    out = []
    for name, search in searches.items():
        mine_t = tuned[tuned["search"] == name] if len(tuned) else tuned
        mine_c = claims[claims["id"].astype(str).str.startswith(f"{name}_")] if len(claims) else claims
        ranking = mine_c[mine_c["family"] == "ranking"] if len(mine_c) else mine_c
        newer = mine_c[mine_c["family"] == "newer"] if len(mine_c) else mine_c
        mine_time = time[time["search"] == name] if len(time) else time
        out.append({
            "name": name, "label": search.get("label", name),
            "budget": budget_text(specs[name]),
            "choices": _choice_rows(cands[cands["search"] == name]) if len(cands) else [],
            "tuned": [r | {"optimizer": optimizer_label(r["optimizer"]),
                           "learning_rate": general(r["learning_rate"], 3)} for r in records(mine_t)],
            "claims": claim_rows(mine_c),
            "ranking": _ranking_text(mine_t) if len(mine_t) else "",
            "reading": READING[config["tuning"]["metric"]],
            "verdict": ranking_sentence(ranking),
            "newer": newer_sentence(newer),
            "time": _time_rows(mine_time),
            "target": float(time["target"].iloc[0]) if len(time) else None,
            "figure": figures.get(tuning_figure_name(name)),
        })
    return out
