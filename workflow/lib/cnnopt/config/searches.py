"""The tuning block (the paper's future work): per search and optimizer, candidate runs
at each learning rate and tuned runs that take the chosen rate."""

from __future__ import annotations

import copy
import math

import numpy as np

from cnnopt.common.errors import ConfigError
from cnnopt.common.registry import CANDIDATE, TUNED
from cnnopt.config.grid import MIN_IMAGES, run_spec


def candidate_rates(rates) -> list[float]:
    """The candidate learning rates of one optimizer, rounded to 3 significant digits, sorted."""
    if isinstance(rates, dict):
        low, high = float(rates["low"]), float(rates["high"])
        if not 0 < low < high:
            raise ConfigError(f"candidate rates: need 0 < low < high, got low {low:g}, high {high:g}")
        if "points" in rates:
            values = np.geomspace(low, high, int(rates["points"]))
        else:
            rng = np.random.default_rng(int(rates["seed"]))
            values = 10 ** rng.uniform(math.log10(low), math.log10(high), int(rates["n"]))
    else:
        values = rates
    out = sorted({float(f"{float(v):.3g}") for v in values})
    if len(out) < 2:
        raise ConfigError(f"candidate rates {rates}: a search needs at least two distinct rates")
    return out


def rate_token(rate: float) -> str:
    """A rate as it appears in a run id: 3 significant digits ("0.001", "1e-05", "10")."""
    return f"{rate:.3g}"


def candidate_variant(search: str, rate: float) -> str:
    return f"{search}_lr{rate_token(rate)}"


def tuned_variant(search: str) -> str:
    return f"{search}_tuned"


def _variant(search: dict, role: str, label: str, per_optimizer: dict) -> dict:
    keys = ("epochs", "batch_size", "model", "schedule", "max_train_images")
    return {"role": role, "label": label, **{k: copy.deepcopy(search[k]) for k in keys if k in search},
            "per_optimizer": per_optimizer}


def expand_tuning(config: dict, schema: dict | None = None) -> dict[str, dict]:
    """Every candidate and tuned run of the config's searches, keyed by run id.

    Both kinds name their ``search``. A candidate has ``score_test`` false: no ``evaluate`` job
    scores it on the test set. A tuned run's ``optimizer_config.learning_rate`` is None until
    :func:`cnnopt.tuning.select.apply_choice` fills it in from its selection file; ``metric`` says how
    the rate is chosen. ``schema``: see :func:`cnnopt.config.grid.run_spec`.
    """
    block = config.get("tuning") or {}
    runs: dict[str, dict] = {}
    for name, search in (block.get("searches") or {}).items():
        label = search.get("label", name)
        if 0 < search.get("max_train_images", 0) < MIN_IMAGES:
            raise ConfigError(f"config key tuning/searches/{name}/max_train_images = "
                              f"{search['max_train_images']}: fewer images than the {MIN_IMAGES} classes")
        for opt, entry in search["optimizers"].items():
            if opt not in config["optimizers"]:
                raise ConfigError(f"config key tuning/searches/{name}/optimizers: unknown optimizer "
                                  f"{opt!r}; defined: {', '.join(sorted(config['optimizers']))}")
            fixed = dict(entry.get("optimizer") or {})
            if "learning_rate" in fixed:
                raise ConfigError(f"config key tuning/searches/{name}/optimizers/{opt}/optimizer: "
                                  "learning_rate is what the search chooses (list it in rates)")
            try:
                rates = candidate_rates(entry["rates"])
            except ConfigError as exc:
                raise ConfigError(f"config key tuning/searches/{name}/optimizers/{opt}/rates: {exc}") from None
            cfg = copy.deepcopy(config)
            for rate in rates:
                vname = candidate_variant(name, rate)
                cfg["variants"][vname] = _variant(
                    search, CANDIDATE, f"{label}: candidate learning rate {rate:g}",
                    {opt: {"optimizer": fixed | {"learning_rate": rate}}})
                spec = run_spec(cfg, opt, vname, block["seed"], schema) | {"search": name, "score_test": False}
                runs[spec["run_id"]] = spec
            vname = tuned_variant(name)
            cfg["variants"][vname] = _variant(search, TUNED, f"{label}: the chosen learning rate",
                                              {opt: {"optimizer": fixed}})
            for seed in block["seeds"]:
                spec = run_spec(cfg, opt, vname, seed, schema) | {"search": name, "metric": block["metric"]}
                spec["optimizer_config"]["learning_rate"] = None  # apply_choice fills it in
                runs[spec["run_id"]] = spec
    return runs


def tuning_candidates(runs: dict[str, dict], search: str, optimizer: str) -> dict[str, float]:
    """Run id -> learning rate of the candidates of ``optimizer`` in ``search``."""
    return {rid: s["optimizer_config"]["learning_rate"] for rid, s in runs.items()
            if s["role"] == CANDIDATE and s["search"] == search and s["optimizer"] == optimizer}


def tuned_runs(runs: dict[str, dict], search: str | None = None, optimizer: str | None = None) -> list[str]:
    """The run ids of the tuned runs (of ``search`` and ``optimizer`` when given)."""
    return [rid for rid, s in runs.items() if s["role"] == TUNED
            and search in (None, s["search"]) and optimizer in (None, s["optimizer"])]
