"""Validate the workflow's configuration and expand it into one spec per training run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml

from cnnopt.common.errors import ConfigError
from cnnopt.config.grid import (
    MIN_IMAGES,
    check_hyperparameters,
    deep_merge,
    expand_runs,
    grid_blocks,
    resolve_variant,
)
from cnnopt.config.schemafile import FillingValidator, file_schema, fill_defaults, load_schema
from cnnopt.config.searches import expand_tuning

__all__ = ["fill_defaults", "load", "load_schema", "validate"]


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


def validate(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` and fill in defaults; return a new dict or raise :class:`ConfigError`.

    Beyond the schema it checks what a schema cannot: that the grid names defined optimizers
    and variants, that each hyperparameter fits its optimizer, and that run ids are unique.
    """
    schema = schema or file_schema()
    config = copy.deepcopy(dict(config or {}))
    validator = FillingValidator(schema)
    _coerce_strings(config, validator)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise ConfigError(_describe(errors[0]))
    for key in ("model", "schedule"):  # a partial defaults.model or .schedule keeps the rest
        default = schema["properties"]["defaults"]["properties"][key]["default"]
        config["defaults"][key] = deep_merge(default, config["defaults"][key])
    _check_references(config)
    for key in ("max_train_images", "max_test_images"):
        if 0 < config[key] < MIN_IMAGES:
            raise ConfigError(f"config key {key} = {config[key]}: fewer images than the "
                              f"{MIN_IMAGES} classes (use 0 for all, or at least {MIN_IMAGES})")
    study = expand_runs(config, schema)  # raises on duplicate run ids or bad per-optimizer settings
    tuning = expand_tuning(config, schema)  # raises on a bad search
    if not study and not tuning:
        raise ConfigError("config key grid = []: no run to train (an empty grid needs "
                          "tuning/searches: a study of searches alone)")
    clash = sorted(set(study) & set(tuning))
    if clash:
        raise ConfigError(f"config key tuning/searches: run {clash[0]!r} is also a run of the grid; "
                          "rename the search or the variant")
    return config


def _check_references(config: dict) -> None:
    for name, hyper in config["optimizers"].items():
        check_hyperparameters(f"optimizers/{name}", hyper.get("type", name), hyper)
    for key, i, block in grid_blocks(config):
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

