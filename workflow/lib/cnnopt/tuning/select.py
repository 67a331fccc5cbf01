"""The learning-rate search's choice: which candidate wins, and the tuned runs' rate.

The searches and their runs come from the config (``cnnopt.config.searches.expand_tuning``). Each candidate
is an ordinary training run that never sees the test set. :func:`select` picks, per search
and optimizer, the candidate with the highest validation accuracy (``metric``: at the best or
at the last epoch) and writes every candidate's score to a selection file; a diverged
candidate is recorded and never chosen. A tuned run reads its rate from that file
(:func:`apply_choice`), so only the rate differs between two optimizers' tuned runs. (A small
module: the training and selection jobs import it, and its code version reruns them.)
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError
from cnnopt.common.registry import TUNED

log = logging.getLogger(__name__)

#: metric -> the validation accuracy of metrics.json it reads (never a test-set number)
METRICS = {"best_epoch": "best_val_accuracy", "last_epoch": "final_val_accuracy"}


def select(search: str, optimizer: str, rates: dict[str, float], metrics: dict[str, Path],
           metric: str, out_json) -> dict:
    """Choose ``optimizer``'s rate in ``search``; write every candidate's score to ``out_json``.

    ``rates`` maps each candidate's run id to its learning rate and ``metrics`` to its
    metrics.json. The score is the candidate's validation accuracy (``METRICS[metric]``,
    percent); the highest wins, a tie goes to the smaller rate. A diverged candidate scores
    nothing and is never chosen. The chosen rate is ``at_edge`` when it is the smallest or the
    largest candidate: the best rate may then lie outside the candidates.
    """
    if metric not in METRICS:
        raise CnnoptError(f"unknown selection metric {metric!r}; choose one of {', '.join(METRICS)}")
    rows = []
    for rid, rate in sorted(rates.items(), key=lambda kv: kv[1]):
        m = files.read_json(metrics[rid])
        score = m.get(METRICS[metric])
        diverged = bool(m.get("diverged")) or score is None or not math.isfinite(float(score))
        rows.append({"run_id": rid, "learning_rate": rate, "diverged": diverged,
                     "diverged_epoch": m.get("diverged_epoch"),
                     "score": None if diverged else round(100 * float(score), 4)})
    scored = [r for r in rows if not r["diverged"]]
    if not scored:
        tried = ", ".join(f"{r['learning_rate']:g}" for r in rows)
        raise CnnoptError(f"search {search}: every candidate rate of {optimizer} diverged "
                          f"({tried}); lower its rates")
    best = max(scored, key=lambda r: (r["score"], -r["learning_rate"]))
    edge = best["learning_rate"] in (rows[0]["learning_rate"], rows[-1]["learning_rate"])
    choice = {"search": search, "optimizer": optimizer, "metric": metric,
              "learning_rate": best["learning_rate"], "run_id": best["run_id"], "score": best["score"],
              "at_edge": edge, "candidates": rows}
    files.write_json(out_json, choice)
    log.info("search %s, %s: learning rate %g chosen (validation accuracy %.2f %% at the %s); "
             "%d candidates, %d diverged%s", search, optimizer, best["learning_rate"], best["score"],
             metric.replace("_", " "), len(rows), len(rows) - len(scored),
             "; at the edge of the candidates" if edge else "")
    return choice


def apply_choice(spec: dict, choice_json) -> dict:
    """A tuned run's spec with the learning rate its search chose (other specs unchanged)."""
    if spec.get("role") != TUNED:
        return spec
    choice = files.read_json(choice_json)
    if (choice.get("search"), choice.get("optimizer")) != (spec["search"], spec["optimizer"]):
        raise CnnoptError(f"{choice_json} is the choice of {choice.get('optimizer')} in search "
                          f"{choice.get('search')}, not of {spec['optimizer']} in {spec['search']}")
    out = copy.deepcopy(spec)
    out["optimizer_config"]["learning_rate"] = float(choice["learning_rate"])
    out["chosen_from"] = choice["run_id"]
    return out
