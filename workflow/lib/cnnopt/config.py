"""Validate the workflow's configuration and expand it into one spec per training run."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from .errors import ConfigError

#: Hyperparameters each optimizer type accepts (Keras 3 argument names).
OPTIMIZER_ARGUMENTS = {
    "sgd": {"learning_rate", "momentum", "nesterov", "weight_decay", "clipnorm"},
    "adam": {"learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm"},
    "adamw": {"learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm"},
    "adamax": {"learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", "clipnorm"},
    "nadam": {"learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", "clipnorm"},
    "rmsprop": {"learning_rate", "rho", "momentum", "epsilon", "weight_decay", "clipnorm"},
    "lion": {"learning_rate", "beta_1", "beta_2", "weight_decay", "clipnorm"},
}
#: The model keys a ResNet uses (the conv-block keys of ``blocks`` do not apply to it).
RESNET_KEYS = ("architecture", "filters", "depth", "l2", "augment_flip", "augment_translate",
               "label_smoothing", "tta_flip", "precision")

#: A stratified subset needs at least one image per class (CIFAR-10 has ten).
MIN_IMAGES = 10

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def deep_merge(base: dict, override: dict | None) -> dict:
    """Return ``base`` updated by ``override``; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _fill_defaults(validator_class):
    """Extend a jsonschema validator so that it writes each property's default into the data."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


#: Keys that were renamed: the old name is refused with a hint to the new one.
RENAMED = {"patience": "convergence_tolerance"}


def _describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties" and not error.absolute_path:
        old = sorted(set(error.instance) & set(RENAMED))
        if old:
            return f"config key {old[0]} was renamed: use {RENAMED[old[0]]} (same meaning)"
    if error.validator == "additionalProperties":
        return f"config key {where}: {error.message}"
    if error.validator == "propertyNames":
        return f"config key {where}: name {error.instance!r} must match ^[a-z][a-z0-9_]*$"
    value = json.dumps(error.instance, default=str)
    if len(value) > 80:
        value = value[:77] + "..."
    return f"config key {where} = {value}: {error.message}"


_SCALARS = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _coerce_strings(config: dict, validator) -> None:
    """Turn strings into the numbers, booleans or nulls the schema expects, in place.

    Snakemake's ``--config`` reads values nested in a list or mapping as plain strings
    (``seeds=[0,1]`` gives ``["0", "1"]``); here they get the type the schema asks for.
    """
    for _ in range(1000):  # each pass fixes one value; a config has far fewer
        for error in validator.iter_errors(config):
            if error.validator != "type" or not isinstance(error.instance, str):
                continue
            wanted = error.validator_value
            wanted = [wanted] if isinstance(wanted, str) else wanted
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if any(isinstance(value, _SCALARS[t]) and not (t != "boolean" and isinstance(value, bool))
                   for t in wanted if t in _SCALARS):
                *parents, last = error.absolute_path
                target = config
                for key in parents:
                    target = target[key]
                target[last] = value
                break
        else:
            return


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def validate(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` and fill in defaults; return a new dict or raise :class:`ConfigError`.

    Beyond the schema it checks what a schema cannot: that the grid names defined optimizers
    and variants, that each hyperparameter fits its optimizer, and that run ids are unique.
    """
    schema = schema or load_schema()
    config = copy.deepcopy(dict(config or {}))
    validator = _fill_defaults(jsonschema.Draft202012Validator)(schema)
    _coerce_strings(config, validator)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise ConfigError(_describe(errors[0]))
    model_default = schema["properties"]["defaults"]["properties"]["model"]["default"]
    config["defaults"]["model"] = deep_merge(model_default, config["defaults"]["model"])
    _check_references(config)
    for key in ("max_train_images", "max_test_images"):
        if 0 < config[key] < MIN_IMAGES:
            raise ConfigError(f"config key {key} = {config[key]}: fewer images than the "
                              f"{MIN_IMAGES} classes (use 0 for all, or at least {MIN_IMAGES})")
    study = expand_runs(config)  # raises on duplicate run ids or bad per-optimizer settings
    clash = sorted(set(study) & set(expand_tuning(config)))  # raises on a bad search
    if clash:
        raise ConfigError(f"config key tuning/searches: run {clash[0]!r} is also a run of the grid; "
                          "rename the search or the variant")
    return config


def optimizer_type(config: dict, name: str) -> str:
    return config["optimizers"][name].get("type", name)


def _check_hyperparameters(where: str, kind: str, hyper: dict) -> None:
    if kind not in OPTIMIZER_ARGUMENTS:
        raise ConfigError(
            f"config key {where}: unknown optimizer {kind!r}; "
            f"choose one of {', '.join(sorted(OPTIMIZER_ARGUMENTS))} or set 'type'"
        )
    extra = sorted(set(hyper) - OPTIMIZER_ARGUMENTS[kind] - {"type"})
    if extra:
        raise ConfigError(
            f"config key {where}: {kind} takes no {', '.join(extra)} "
            f"(it takes {', '.join(sorted(OPTIMIZER_ARGUMENTS[kind]))})"
        )


def _check_references(config: dict) -> None:
    for name, hyper in config["optimizers"].items():
        _check_hyperparameters(f"optimizers/{name}", hyper.get("type", name), hyper)
    for key, i, block in _grid_blocks(config):
        for name in block["optimizers"]:
            if name not in config["optimizers"]:
                raise ConfigError(
                    f"config key {key}/{i}/optimizers: unknown optimizer {name!r}; "
                    f"defined: {', '.join(sorted(config['optimizers']))}"
                )
        for name in block["variants"]:
            if name not in config["variants"]:
                raise ConfigError(
                    f"config key {key}/{i}/variants: unknown variant {name!r}; "
                    f"defined: {', '.join(sorted(config['variants']))}"
                )
    for vname, variant in config["variants"].items():
        resolve_variant(config, vname)  # raises on an unknown or circular base
        for oname in variant.get("per_optimizer", {}):
            if oname not in config["optimizers"]:
                raise ConfigError(
                    f"config key variants/{vname}/per_optimizer: unknown optimizer {oname!r}"
                )


#: Keys a variant takes over from its ``base`` (a twin); role, label and base stay its own.
_OWN_KEYS = ("role", "label", "base")


def resolve_variant(config: dict, name: str) -> dict:
    """The variant ``name`` with the settings of its ``base`` chain merged underneath."""
    chain, current = [], name
    while current is not None:
        if current in chain:
            raise ConfigError(f"config key variants/{name}/base: circular ({' -> '.join(chain + [current])})")
        if current not in config["variants"]:
            raise ConfigError(f"config key variants/{chain[-1]}/base: unknown variant {current!r}")
        chain.append(current)
        current = config["variants"][current].get("base")
    merged: dict = {}
    for link in reversed(chain):
        merged = deep_merge(merged, {k: v for k, v in config["variants"][link].items() if k not in _OWN_KEYS})
    own = config["variants"][name]
    return merged | {k: own[k] for k in _OWN_KEYS if k in own}


#: A run's name: its folder under results/runs/, its log and its benchmark file.
RUN_ID = "{optimizer}-{variant}-s{seed}"
#: Keys of a run's spec that name the run rather than change what it trains.
IDENTITY_KEYS = ("run_id", "variant", "role", "label", "key_adjustments")


def run_id(optimizer: str, variant: str, seed: int) -> str:
    return RUN_ID.format(optimizer=optimizer, variant=variant, seed=seed)


def training_key(spec: dict) -> str:
    """What a run trains (its spec without the names): equal keys train the same model."""
    return json.dumps({k: v for k, v in spec.items() if k not in IDENTITY_KEYS}, sort_keys=True)


def shared_runs(runs: dict[str, dict]) -> dict[str, str]:
    """Runs whose training equals an earlier run's (in grid order): run id -> the id of the
    run that trains it. Such a run is trained once; its folder is a copy under its own name."""
    first: dict[str, str] = {}
    shared = {}
    for rid, spec in runs.items():
        owner = first.setdefault(training_key(spec), rid)
        if owner != rid:
            shared[rid] = owner
    return shared


def run_spec(config: dict, optimizer: str, variant: str, seed: int) -> dict:
    """The fully resolved settings of one run: what its training job needs and nothing else."""
    defaults = config["defaults"]
    var = resolve_variant(config, variant)
    own = var.get("per_optimizer", {}).get(optimizer, {})
    kind = optimizer_type(config, optimizer)
    hyper = deep_merge(config["optimizers"][optimizer], own.get("optimizer"))
    hyper.pop("type", None)
    _check_hyperparameters(f"variants/{variant}/per_optimizer/{optimizer}/optimizer", kind, hyper)
    schedule = deep_merge(deep_merge(defaults["schedule"], var.get("schedule")), own.get("schedule"))
    if schedule.get("type") == "exponential":
        # the paper: "decay_step is the number of epochs after which the learning rate is updated"
        schedule = {"decay_rate": 0.9, "decay_step": 1, "staircase": True} | schedule
    elif schedule.get("type") == "warmup_cosine":
        if "decay_epochs" not in schedule:
            raise ConfigError(f"config key variants/{variant}/schedule: warmup_cosine needs decay_epochs")
        schedule = {"warmup_epochs": 0, "warmup_start": 0.0, "alpha": 0.0} | {
            k: v for k, v in schedule.items()
            if k in ("type", "warmup_epochs", "warmup_start", "decay_epochs", "alpha")}
    else:
        schedule = {"type": "constant"}
    model = deep_merge(deep_merge(defaults["model"], var.get("model")), own.get("model"))
    if model["architecture"] == "tutorial":  # a fixed model: the block settings do not apply
        model = {"architecture": "tutorial"}
    elif model["architecture"] == "resnet":
        model = {"depth": 20} | {k: model[k] for k in RESNET_KEYS if k in model}
        if (model["depth"] - 2) % 6:
            raise ConfigError(f"config key variants/{variant}/model/depth: a CIFAR ResNet has "
                              f"6n + 2 layers (8, 14, 20, 32, ...), not {model['depth']}")
        if len(model["filters"]) != 3:
            raise ConfigError(f"config key variants/{variant}/model/filters: a CIFAR ResNet has "
                              "three stages, one filter count each (ResNet-20: [16, 32, 64])")
    return {
        "run_id": run_id(optimizer, variant, seed),
        "optimizer": optimizer,
        "variant": variant,
        "seed": seed,
        "role": var["role"],
        "label": var.get("label", variant),
        "key_adjustments": own.get("key_adjustments", var.get("key_adjustments", "")),
        "model": model,
        "optimizer_config": {"name": kind, **hyper},
        "schedule": schedule,
        "epochs": own.get("epochs", var.get("epochs", defaults["epochs"])),
        "batch_size": own.get("batch_size", var.get("batch_size", defaults["batch_size"])),
        "validation_size": var.get("validation_size", config["validation_size"]),
        "split_seed": config["split_seed"],
        "max_train_images": var.get("max_train_images", config["max_train_images"]),
        "max_test_images": config["max_test_images"],
        "deterministic": config["deterministic"],
        "convergence_tolerance": config["convergence_tolerance"],
    }


def _grid_blocks(config: dict):
    """(key, index, block) of `grid`, then of `extra_grid` (a layered config's additions)."""
    for key in ("grid", "extra_grid"):
        for i, block in enumerate(config.get(key, [])):
            yield key, i, block


def expand_runs(config: dict) -> dict[str, dict]:
    """Every run of the grid and extra_grid (optimizers x variants x seeds), keyed by run id,
    in grid order."""
    runs: dict[str, dict] = {}
    for _, _, block in _grid_blocks(config):
        for variant in block["variants"]:
            for optimizer in block["optimizers"]:
                for seed in config["seeds"]:
                    spec = run_spec(config, optimizer, variant, seed)
                    if spec["run_id"] in runs:
                        raise ConfigError(
                            f"config key grid: run {spec['run_id']!r} appears more than once"
                        )
                    runs[spec["run_id"]] = spec
    return runs


def load(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML config file, apply ``overrides`` and validate it."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from None
    return validate(deep_merge(raw, overrides))

# ---------------------------------------------------------------- the tuning block
#: The roles of the tuning runs: a learning-rate candidate, a run with the chosen rate.
CANDIDATE, TUNED = "candidate", "tuned"


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


def expand_tuning(config: dict) -> dict[str, dict]:
    """Every candidate and tuned run of the config's searches, keyed by run id.

    Both kinds name their ``search``. A candidate has ``score_test`` false: no ``evaluate`` job
    scores it on the test set. A tuned run's ``optimizer_config.learning_rate`` is None until
    :func:`cnnopt.tuning.apply_choice` fills it in from its selection file; ``metric`` says how
    the rate is chosen.
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
                spec = run_spec(cfg, opt, vname, block["seed"]) | {"search": name, "score_test": False}
                runs[spec["run_id"]] = spec
            vname = tuned_variant(name)
            cfg["variants"][vname] = _variant(search, TUNED, f"{label}: the chosen learning rate",
                                              {opt: {"optimizer": fixed}})
            for seed in block["seeds"]:
                spec = run_spec(cfg, opt, vname, seed) | {"search": name, "metric": block["metric"]}
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
