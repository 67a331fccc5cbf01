"""The grid: every variant resolved through its ``base`` chain, one spec per run
(optimizer x variant x seed), and the runs whose training equals an earlier one's."""

from __future__ import annotations

import copy
import json

from cnnopt.common.errors import ConfigError
from cnnopt.common.registry import IDENTITY_KEYS, OPTIMIZERS, run_id
from cnnopt.config.schemafile import fill_defaults

#: The model keys a ResNet uses (the conv-block keys of ``blocks`` do not apply to it).
RESNET_KEYS = ("architecture", "filters", "depth", "l2", "augment_flip", "augment_translate",
               "label_smoothing", "tta_flip", "precision")
#: The keys of a run's spec that its per_optimizer block, else its variant, else ``defaults``
#: sets (the schema's ``run_settings`` has the default of what none of them sets).
SETTINGS_KEYS = ("epochs", "batch_size", "key_adjustments")
#: The schedule keys a warmup_cosine schedule uses (the exponential ones do not apply to it).
WARMUP_COSINE_KEYS = ("type", "warmup_epochs", "warmup_start", "decay_epochs", "alpha")

#: A stratified subset needs at least one image per class (CIFAR-10 has ten).
MIN_IMAGES = 10

def deep_merge(base: dict, override: dict | None) -> dict:
    """Return ``base`` updated by ``override``; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def optimizer_type(config: dict, name: str) -> str:
    return config["optimizers"][name].get("type", name)


def check_hyperparameters(where: str, kind: str, hyper: dict) -> None:
    if kind not in OPTIMIZERS:
        raise ConfigError(
            f"config key {where}: unknown optimizer {kind!r}; "
            f"choose one of {', '.join(sorted(OPTIMIZERS))} or set 'type'"
        )
    takes = OPTIMIZERS[kind].arguments
    extra = sorted(set(hyper) - set(takes) - {"type"})
    if extra:
        raise ConfigError(
            f"config key {where}: {kind} takes no {', '.join(extra)} "
            f"(it takes {', '.join(sorted(takes))})"
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


def run_spec(config: dict, optimizer: str, variant: str, seed: int, schema: dict | None = None) -> dict:
    """The fully resolved settings of one run: what its training job needs and nothing else.

    ``config`` is a validated config. The schedule and the model are merged from
    ``defaults``, the variant's base chain, the variant and its ``per_optimizer`` block; then
    the defaults of the merged block's type fill in what it leaves out: the schema's
    definitions ``schedule_exponential``, ``schedule_warmup_cosine`` and ``model_resnet``
    (of ``schema``; the schema file's when None). ``run_settings`` fills in the rest.
    """
    defaults = config["defaults"]
    var = resolve_variant(config, variant)
    own = var.get("per_optimizer", {}).get(optimizer, {})
    kind = optimizer_type(config, optimizer)
    hyper = deep_merge(config["optimizers"][optimizer], own.get("optimizer"))
    hyper.pop("type", None)
    check_hyperparameters(f"variants/{variant}/per_optimizer/{optimizer}/optimizer", kind, hyper)
    where = f"variants/{variant}/schedule"
    schedule = deep_merge(deep_merge(defaults["schedule"], var.get("schedule")), own.get("schedule"))
    if schedule["type"] == "exponential":
        schedule = fill_defaults("schedule_exponential", schedule, schema, where)
    elif schedule["type"] == "warmup_cosine":
        if "decay_epochs" not in schedule:
            raise ConfigError(f"config key {where}: warmup_cosine needs decay_epochs")
        schedule = fill_defaults("schedule_warmup_cosine",
                                 {k: v for k, v in schedule.items() if k in WARMUP_COSINE_KEYS},
                                 schema, where)
    else:
        schedule = {"type": "constant"}
    model = deep_merge(deep_merge(defaults["model"], var.get("model")), own.get("model"))
    if model["architecture"] == "tutorial":  # a fixed model: the block settings do not apply
        model = {"architecture": "tutorial"}
    elif model["architecture"] == "resnet":
        model = fill_defaults("model_resnet", {k: model[k] for k in RESNET_KEYS if k in model},
                              schema, f"variants/{variant}/model")
        if (model["depth"] - 2) % 6:
            raise ConfigError(f"config key variants/{variant}/model/depth: a CIFAR ResNet has "
                              f"6n + 2 layers (8, 14, 20, 32, ...), not {model['depth']}")
        if len(model["filters"]) != 3:
            raise ConfigError(f"config key variants/{variant}/model/filters: a CIFAR ResNet has "
                              "three stages, one filter count each (ResNet-20: [16, 32, 64])")
    settings: dict = {}
    for block in (defaults, var, own):
        settings |= {key: block[key] for key in SETTINGS_KEYS if key in block}
    settings = fill_defaults("run_settings", settings, schema, f"variants/{variant}")
    return {
        "run_id": run_id(optimizer, variant, seed),
        "optimizer": optimizer,
        "variant": variant,
        "seed": seed,
        "role": var["role"],
        "label": var.get("label", variant),
        "key_adjustments": settings["key_adjustments"],
        "model": model,
        "optimizer_config": {"name": kind, **hyper},
        "schedule": schedule,
        "epochs": settings["epochs"],
        "batch_size": settings["batch_size"],
        "validation_size": var.get("validation_size", config["validation_size"]),
        "split_seed": config["split_seed"],
        "max_train_images": var.get("max_train_images", config["max_train_images"]),
        "max_test_images": config["max_test_images"],
        "deterministic": config["deterministic"],
        "convergence_tolerance": config["convergence_tolerance"],
    }


def grid_blocks(config: dict):
    """(key, index, block) of `grid`, then of `extra_grid` (a layered config's additions)."""
    for key in ("grid", "extra_grid"):
        for i, block in enumerate(config.get(key, [])):
            yield key, i, block


def expand_runs(config: dict, schema: dict | None = None) -> dict[str, dict]:
    """Every run of the grid and extra_grid (optimizers x variants x seeds), keyed by run id,
    in grid order (``schema``: see :func:`run_spec`)."""
    runs: dict[str, dict] = {}
    for _, _, block in grid_blocks(config):
        for variant in block["variants"]:
            for optimizer in block["optimizers"]:
                for seed in config["seeds"]:
                    spec = run_spec(config, optimizer, variant, seed, schema)
                    if spec["run_id"] in runs:
                        raise ConfigError(
                            f"config key grid: run {spec['run_id']!r} appears more than once"
                        )
                    runs[spec["run_id"]] = spec
    return runs


def seed_order(base, count: int) -> list[int]:
    """The first ``count`` seeds of an arm under the sequential design (verdicts.sequential):
    the study's ``base`` seeds in order, then the next integers after the largest."""
    seeds = sorted(int(s) for s in base)
    while len(seeds) < count:
        seeds.append(seeds[-1] + 1 if seeds else 0)
    return seeds[:count]


def sequential_runs(config: dict, study_runs: dict[str, dict], schema: dict | None = None) -> dict[str, dict]:
    """The runs the sequential design (``verdicts.sequential``) may add, keyed by run id: each
    arm of ``study_runs`` at the seeds after the study's, up to the last look's count. Which
    of them train, the looks decide (``judge.sequential``). The first look must be the
    study's seed count (else a one-line error)."""
    looks = (config.get("verdicts", {}).get("sequential") or {}).get("looks") or []
    if not looks:
        return {}
    if not study_runs:
        raise ConfigError("config key verdicts/sequential: the design adds seeds to the grid's "
                          "arms, and the grid is empty (a study of searches alone)")
    if looks[0] != len(config["seeds"]):
        raise ConfigError(f"config key verdicts/sequential/looks: the first look is the study's "
                          f"seeds, {len(config['seeds'])} (seeds: {config['seeds']}), not {looks[0]}")
    extra = seed_order(config["seeds"], max(looks))[len(config["seeds"]):]
    arms = dict.fromkeys((s["optimizer"], s["variant"]) for s in study_runs.values())
    runs = {}
    for optimizer, variant in arms:
        for seed in extra:
            spec = run_spec(config, optimizer, variant, seed, schema)
            runs[spec["run_id"]] = spec
    return runs

