"""The tuning block (the paper's future work): per search and optimizer, candidate runs
at each learning rate and tuned runs that take the chosen rate.

A search with ``halving`` trains its candidates through rungs (``cnnopt.tuning.halving``): one
run per candidate and rung, named by the rung's epochs, each continuing the previous rung's
run; every rate a choice at the edge may add (``extend`` steps beyond each edge) has its runs
here too, and the DAG asks only for those the choices reach. A search with ``budget`` takes
the epochs, batch, images, model and schedule of that grid variant (the study's ``final``),
so that its tuned runs stand beside the study's own."""

from __future__ import annotations

import copy

import numpy as np

from cnnopt.common.errors import CnnoptError, ConfigError
from cnnopt.common.registry import CANDIDATE, TUNED
from cnnopt.config.grid import MIN_IMAGES, run_spec
from cnnopt.tuning import halving


def candidate_rates(rates) -> list[float]:
    """The candidate learning rates of one optimizer, rounded to 3 significant digits, sorted:
    a list, a log-spaced grid (``points``) or quasirandom points in log space (``n``, ``seed``)."""
    if isinstance(rates, dict):
        low, high = float(rates["low"]), float(rates["high"])
        if not 0 < low < high:
            raise ConfigError(f"candidate rates: need 0 < low < high, got low {low:g}, high {high:g}")
        if "points" in rates:
            values = np.geomspace(low, high, int(rates["points"]))
        else:
            try:
                values = halving.quasirandom_rates(low, high, int(rates["n"]), int(rates["seed"]))
            except CnnoptError as exc:
                raise ConfigError(str(exc)) from None
    else:
        values = rates
    out = sorted({halving.round_rate(v) for v in values})
    if len(out) < 2:
        raise ConfigError(f"candidate rates {rates}: a search needs at least two distinct rates")
    return out


def rate_token(rate: float) -> str:
    """A rate as it appears in a run id: 3 significant digits ("0.001", "1e-05", "10")."""
    return f"{rate:.3g}"


def candidate_variant(search: str, rate: float, epochs: int | None = None) -> str:
    """A candidate's variant; ``epochs``: its rung's (a search with halving)."""
    return f"{search}_lr{rate_token(rate)}" + (f"_e{epochs}" if epochs is not None else "")


def tuned_variant(search: str) -> str:
    return f"{search}_tuned"


#: What a search's runs train with (from the search, over its ``budget`` variant's).
_SETTINGS = ("epochs", "batch_size", "model", "schedule", "max_train_images")


def _variant(search: dict, role: str, label: str, per_optimizer: dict, epochs: int | None = None) -> dict:
    out = {"role": role, "label": label, **{k: copy.deepcopy(search[k]) for k in _SETTINGS if k in search},
           "per_optimizer": per_optimizer}
    if search.get("budget"):
        out["base"] = search["budget"]
    if epochs is not None:
        out["epochs"] = epochs
    return out


def rungs(search: dict, epochs: int) -> list[int]:
    """The epochs of a search's rungs, the last its final budget ``epochs``."""
    return [*((search.get("halving") or {}).get("rungs") or []), epochs]


def expand_tuning(config: dict, schema: dict | None = None) -> dict[str, dict]:
    """Every candidate and tuned run of the config's searches, keyed by run id.

    Both kinds name their ``search``. A candidate has ``score_test`` false: no ``evaluate`` job
    scores it on the test set; with halving it also names its ``rung`` (0, 1, ...), the run it
    ``continues`` (rungs after the first) and whether its final state is kept for the next
    rung (``keep_state``); a rate beyond the declared ones is an ``extension``. A tuned run's ``optimizer_config.learning_rate`` is None until
    :func:`cnnopt.tuning.choice.apply_choice` fills it in from its selection file; ``metric``
    says how the rate is chosen. ``schema``: see :func:`cnnopt.config.grid.run_spec`.
    """
    block = config.get("tuning") or {}
    runs: dict[str, dict] = {}
    for name, search in (block.get("searches") or {}).items():
        where = f"config key tuning/searches/{name}"
        label = search.get("label", name)
        if 0 < search.get("max_train_images", 0) < MIN_IMAGES:
            raise ConfigError(f"{where}/max_train_images = "
                              f"{search['max_train_images']}: fewer images than the {MIN_IMAGES} classes")
        if search.get("budget") and search["budget"] not in config["variants"]:
            raise ConfigError(f"{where}/budget: unknown variant {search['budget']!r}; defined: "
                              f"{', '.join(sorted(config['variants']))}")
        counts = set()
        for opt, entry in search["optimizers"].items():
            if opt not in config["optimizers"]:
                raise ConfigError(f"{where}/optimizers: unknown optimizer "
                                  f"{opt!r}; defined: {', '.join(sorted(config['optimizers']))}")
            fixed = dict(entry.get("optimizer") or {})
            if "learning_rate" in fixed:
                raise ConfigError(f"{where}/optimizers/{opt}/optimizer: "
                                  "learning_rate is what the search chooses (list it in rates)")
            try:
                rates = candidate_rates(entry["rates"])
            except ConfigError as exc:
                raise ConfigError(f"{where}/optimizers/{opt}/rates: {exc}") from None
            counts.add(len(rates))
            cfg = copy.deepcopy(config)
            vname = tuned_variant(name)
            cfg["variants"][vname] = _variant(search, TUNED, f"{label}: the chosen learning rate",
                                              {opt: {"optimizer": fixed}})
            tuned = {seed: run_spec(cfg, opt, vname, seed, schema) | {"search": name, "metric": block["metric"]}
                     for seed in block["seeds"]}
            final = next(iter(tuned.values()))["epochs"]
            steps = rungs(search, final)
            halved = len(steps) > 1
            if halved and steps != sorted(set(steps)):
                raise ConfigError(f"{where}/halving/rungs: {steps[:-1]} must rise and stay below "
                                  f"the final budget's {final} epochs")
            extra = [halving.beyond(rates, edge, k) for edge in ("low", "high")
                     for k in range(1, int(search.get("extend", 0)) + 1)]
            for rate in [*rates, *extra]:
                previous = None
                for k, epochs in enumerate(steps):
                    cname = candidate_variant(name, rate, epochs if halved else None)
                    cfg["variants"][cname] = _variant(
                        search, CANDIDATE, f"{label}: candidate learning rate {rate:g}"
                        + (f", rung {k + 1} of {len(steps)} ({epochs} epochs)" if halved else ""),
                        {opt: {"optimizer": fixed | {"learning_rate": rate}}}, epochs)
                    spec = run_spec(cfg, opt, cname, block["seed"], schema) | {"search": name, "score_test": False}
                    if rate not in rates:  # asked for only when a choice sits at an edge
                        spec["extension"] = True
                    if halved:
                        spec |= {"rung": k, "keep_state": k < len(steps) - 1}
                        if previous is not None:
                            spec["continues"] = previous
                    previous = spec["run_id"]
                    runs[spec["run_id"]] = spec
            for spec in tuned.values():
                spec["optimizer_config"]["learning_rate"] = None  # apply_choice fills it in
                runs[spec["run_id"]] = spec
        if search.get("halving") and len(counts) > 1:
            raise ConfigError(f"{where}/optimizers: every optimizer gets the same trial budget under "
                              f"halving, but the numbers of candidate rates differ ({sorted(counts)})")
    return runs


def search_rates(runs: dict[str, dict], search: str, optimizer: str) -> dict[float, list[str]]:
    """Learning rate -> the run ids of its rungs, in order, of ``optimizer`` in ``search`` (the
    candidates and every extension the config allows)."""
    out: dict[float, list[str]] = {}
    for rid, s in runs.items():
        if s["role"] == CANDIDATE and s["search"] == search and s["optimizer"] == optimizer:
            out.setdefault(s["optimizer_config"]["learning_rate"], []).append(rid)
    return out


def tuned_runs(runs: dict[str, dict], search: str | None = None, optimizer: str | None = None) -> list[str]:
    """The run ids of the tuned runs (of ``search`` and ``optimizer`` when given)."""
    return [rid for rid, s in runs.items() if s["role"] == TUNED
            and search in (None, s["search"]) and optimizer in (None, s["optimizer"])]
