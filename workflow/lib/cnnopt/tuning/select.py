"""The learning-rate search's choice: which candidate wins, and the tuned runs' rate.

The searches and their runs come from the config (``cnnopt.config.searches.expand_tuning``).
Each candidate is an ordinary training run that never sees the test set. Per search and
optimizer, :func:`rung` scores each rung and promotes the best (``cnnopt.tuning.halving``),
:func:`choose` picks the candidate with the highest validation accuracy at the final budget
(``metric``: at the best or at the last epoch), round after round while a choice at the edge
asks for one more rate, and :func:`final_choice` writes the last round as the selection file;
:func:`select` does all of it for candidates trained once each. A diverged candidate is
recorded and never chosen. A tuned run reads its rate from the selection file
(``cnnopt.tuning.choice.apply_choice``), so only the rate differs between two optimizers' tuned runs.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError, DataError
from cnnopt.tuning import halving

log = logging.getLogger(__name__)

#: metric -> the validation accuracy of metrics.json it reads (never a test-set number)
METRICS = {"best_epoch": "best_val_accuracy", "last_epoch": "final_val_accuracy"}
#: metric -> the model of a run that this score describes, which the tuned comparison and its
#: claims then read ("best": the best validation epoch's, "last": the last epoch's)
MODELS = {"best_epoch": "best", "last_epoch": "last"}


def check_metric(metric: str) -> str:
    """``metric`` (``tuning.metric``) if it is one of ``METRICS``, else a one-line error."""
    if metric not in METRICS:
        raise CnnoptError(f"tuning.metric = {metric!r}: choose {' or '.join(METRICS)}")
    return metric


def _read(path, keys: tuple[str, ...]) -> dict:
    """A rung's or round's file; a lost, unreadable or foreign one is a one-line error naming
    it (nothing is written after it)."""
    try:
        data = files.read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read it as JSON ({' '.join(str(err).split())})") from None
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(f"{path}: not the file expected here (no {', '.join(missing)})")
    return data


def scores(metrics: dict[str, Path], metric: str) -> dict[str, dict]:
    """Run id -> its score (validation accuracy ``METRICS[metric]``, percent; None when the
    run diverged), ``diverged`` and ``diverged_epoch``, from each run's metrics.json."""
    check_metric(metric)
    out = {}
    for rid, path in metrics.items():
        m = files.read_json(path)
        score = m.get(METRICS[metric])
        diverged = bool(m.get("diverged")) or score is None or not math.isfinite(float(score))
        out[rid] = {"diverged": diverged, "diverged_epoch": m.get("diverged_epoch"),
                    "score": None if diverged else round(100 * float(score), 4)}
    return out


def _record(search: str, optimizer: str, metric: str, rows: list[dict], extensions: list[float],
            extend: int, **more) -> dict:
    """The choice among ``rows`` (every candidate at the last rung it reached; those at the
    final budget compete) as the selection file holds it."""
    final = [r for r in rows if r.get("final", True)]
    try:
        best = halving.choose(final, [r["learning_rate"] for r in rows], extensions, extend, optimizer)
    except CnnoptError as exc:
        raise CnnoptError(f"search {search}: {exc}") from None
    return {"search": search, "optimizer": optimizer, "metric": metric,
            "learning_rate": best["learning_rate"], "run_id": best["run_id"], "score": best["score"],
            "at_edge": best["at_edge"], "edge": best["edge"], "extend_to": best["extend_to"],
            "extensions": extensions, "candidates": rows, **more}


def select(search: str, optimizer: str, rates: dict[str, float], metrics: dict[str, Path],
           metric: str, out_json) -> dict:
    """Choose ``optimizer``'s rate in ``search`` among candidates trained once each (a search
    without halving or extensions); write every candidate's score to ``out_json``.

    ``rates`` maps each candidate's run id to its learning rate and ``metrics`` to its
    metrics.json. The score is the candidate's validation accuracy (``METRICS[metric]``,
    percent); the highest wins, a tie goes to the smaller rate. A diverged candidate scores
    nothing and is never chosen. The chosen rate is ``at_edge`` when it is the smallest or the
    largest candidate: the best rate may then lie outside the candidates.
    """
    scored = scores({rid: metrics[rid] for rid in rates}, metric)
    rows = [{"run_id": rid, "learning_rate": rate, **scored[rid]}
            for rid, rate in sorted(rates.items(), key=lambda kv: kv[1])]
    choice = _record(search, optimizer, metric, rows, [], 0)
    _write(choice, out_json)
    return choice


def rung(search: str, optimizer: str, k: int, chains: dict[float, list[str]], previous_json,
         metrics: dict[str, Path], metric: str, keep: float, out_json) -> dict:
    """Score rung ``k`` of ``optimizer``'s search and promote the best ``keep`` fraction.

    ``chains`` maps each candidate rate (not the extensions) to its run ids, rung by rung;
    rung 0's entrants are every candidate, a later rung's those the previous rung's file
    (``previous_json``) promoted. ``metrics`` maps each entrant's run id (at rung ``k``) to
    its metrics.json. At the last rung (the final budget) nothing is promoted.
    """
    last = len(next(iter(chains.values()))) - 1
    if k == 0:
        entrants = {ids[0]: rate for rate, ids in chains.items()}
    else:
        promoted = set(_read(previous_json, ("promoted",))["promoted"])
        entrants = {ids[k]: rate for rate, ids in chains.items() if ids[k - 1] in promoted}
    table = halving.rung_table(entrants, scores({r: metrics[r] for r in entrants}, metric),
                               keep if k < last else None)
    record = {"search": search, "optimizer": optimizer, "rung": k, "last": k == last, **table}
    files.write_json(out_json, record)
    log.info("search %s, %s, rung %d of %d: %d entrants, %s", search, optimizer, k + 1, last + 1,
             len(entrants), f"{len(table['promoted'])} promoted" if k < last else "the final budget")
    return record


def choose(search: str, optimizer: str, round_: int, rung_jsons: list, previous_json,
           extension_metrics: dict[str, Path], chains: dict[float, list[str]], metric: str,
           extend: int, out_json) -> dict:
    """Round ``round_`` of ``optimizer``'s choice at the final budget.

    Round 0 reads the rungs' files (``rung_jsons``, in order): every candidate with the score of
    the last rung it reached, those of the last rung competing. A later round reads the
    previous round's file and the final-budget metrics.json of the extension it asked for
    (``extension_metrics``; ``chains`` maps every rate to its run ids, rung by rung) and adds
    it. The winner at the edge of the rates tried asks for the next extension (``extend_to``)
    while fewer than ``extend`` were tried.
    """
    if round_ == 0:
        rungs = [_read(p, ("entrants", "rung", "last")) for p in rung_jsons]
        seen = {r["learning_rate"]: r | {"rung": table["rung"], "final": table["last"]}
                for table in rungs for r in table["entrants"]}  # a later rung's row replaces
        rows = [seen[rate] for rate in sorted(seen)]
        extensions: list[float] = []
    else:
        before = _read(previous_json, ("extend_to", "candidates", "rungs", "extensions"))
        rate = before["extend_to"]
        rid = chains[rate][-1]
        row = {"run_id": rid, "learning_rate": rate, **scores({rid: extension_metrics[rid]}, metric)[rid],
               "rung": len(chains[rate]) - 1, "final": True, "extension": True}
        rows = sorted([*before["candidates"], row], key=lambda r: r["learning_rate"])
        rungs, extensions = before["rungs"], [*before["extensions"], rate]
    choice = _record(search, optimizer, metric, rows, extensions, extend, rungs=rungs, round=round_)
    files.write_json(out_json, choice)
    log.info("search %s, %s, round %d: learning rate %g (validation accuracy %.2f %%)%s",
             search, optimizer, round_, choice["learning_rate"], choice["score"],
             f"; at the {choice['edge']} edge: trying {choice['extend_to']:g}" if choice["extend_to"]
             else "; at the edge of the rates searched (no extension left)" if choice["at_edge"] else "")
    return choice


def final_choice(round_json, out_json) -> dict:
    """The last round's choice, as the search's selection file (what tuned runs read)."""
    choice = _read(round_json, ("learning_rate",))
    if choice.get("extend_to") is not None:
        raise CnnoptError(f"{round_json} asks for another extension: it is not the last round")
    _write(choice, out_json)
    return choice


def _write(choice: dict, out_json) -> None:
    files.write_json(out_json, choice)
    log.info("search %s, %s: learning rate %g chosen (validation accuracy %.2f %% at the %s); "
             "%d candidates, %d diverged%s", choice["search"], choice["optimizer"],
             choice["learning_rate"], choice["score"], choice["metric"].replace("_", " "),
             len(choice["candidates"]), sum(bool(r["diverged"]) for r in choice["candidates"]),
             "; at the edge of the candidates" if choice["at_edge"] else "")
