"""The names the workflow knows, each in one place: optimizers, architectures, run roles and
the run-id pattern.

The schema's enums are filled in from here when it is loaded (``cnnopt.config.schemafile``), the
training builds Keras' classes named here, and tables, figures and the report label
optimizers from here. Adding an optimizer is one entry in ``OPTIMIZERS`` (a hyperparameter no
optimizer had before also needs its type and range in the schema's ``hyperparameters``). This module imports
no other module, so that the Snakefile and every stage can read it at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The config schema: its keys, types and defaults (every default lives there). Package data
#: (workflow/schemas/config.schema.yaml links here, where the workflow catalog looks for it).
#: Not part of any code version: what it decides reaches the jobs as validated config values.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"

_ADAM_LIKE = ("beta_1", "beta_2", "epsilon")
_EVERY = ("learning_rate", "weight_decay", "clipnorm")


@dataclass(frozen=True)
class Optimizer:
    """An optimizer type: its label in tables, the ``keras.optimizers`` class that implements
    it, and the hyperparameters (Keras 3 argument names) a config may set."""

    label: str
    keras_class: str
    arguments: tuple[str, ...]


#: Optimizer types, in the paper's order (Adam, SGD, RMSprop, Adamax), then its future work.
OPTIMIZERS = {
    "adam": Optimizer("Adam", "Adam", (*_EVERY, *_ADAM_LIKE, "amsgrad")),
    "sgd": Optimizer("SGD", "SGD", (*_EVERY, "momentum", "nesterov")),
    "rmsprop": Optimizer("RMSprop", "RMSprop", (*_EVERY, "rho", "momentum", "epsilon")),
    "adamax": Optimizer("Adamax", "Adamax", (*_EVERY, *_ADAM_LIKE)),
    "nadam": Optimizer("Nadam", "Nadam", (*_EVERY, *_ADAM_LIKE)),
    "adamw": Optimizer("AdamW", "AdamW", (*_EVERY, *_ADAM_LIKE, "amsgrad")),
    "lion": Optimizer("Lion", "Lion", (*_EVERY, "beta_1", "beta_2")),
}
#: Labels of configured optimizers that are a type with a setting (config/future.yaml's
#: ``amsgrad`` is Adam with ``amsgrad: true``).
NAMED_SETTINGS = {"amsgrad": "AMSGrad"}


def optimizer_label(name: str) -> str:
    """How tables and figures name the configured optimizer ``name`` ("adam" -> "Adam")."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name].label
    return NAMED_SETTINGS.get(name, name)


#: ``model.architecture`` values (cnnopt.train.models builds each): the TensorFlow tutorial's
#: CNN (the paper's baseline), the paper's conv blocks, a fast residual net, a CIFAR ResNet.
ARCHITECTURES = ("tutorial", "blocks", "fast", "resnet")

#: Run roles, in the order tables and figures list runs. A grid variant takes one of
#: GRID_ROLES; the tuning block makes the other two (a learning-rate candidate, a run at the
#: chosen rate).
BASELINE, INITIAL, FINAL, EXTRA, ABLATION = "baseline", "initial", "final", "extra", "ablation"
CANDIDATE, TUNED = "candidate", "tuned"
GRID_ROLES = (BASELINE, INITIAL, FINAL, EXTRA, ABLATION)
ROLES = (*GRID_ROLES, CANDIDATE, TUNED)
ROLE_ORDER = {role: i for i, role in enumerate(ROLES)}

#: A run's name: its folder under results/runs/, its log and its benchmark file.
RUN_ID = "{optimizer}-{variant}-s{seed}"
RUN_DIR = "results/runs/{run}"


#: Keys of a run's spec that name the run rather than change what it trains.
IDENTITY_KEYS = ("run_id", "variant", "role", "label", "key_adjustments")
#: The keys a learning-rate search adds to its runs' specs for its own bookkeeping: how a run
#: was had, not what it trains (cnnopt.config.searches; a tuned run may copy a candidate's).
SEARCH_KEYS = ("search", "score_test", "metric", "rung", "keep_state", "continues", "extension",
               "chosen_from")


def run_id(optimizer: str, variant: str, seed: int) -> str:
    return RUN_ID.format(optimizer=optimizer, variant=variant, seed=seed)

#: The files of a finished run folder that the one reader of run folders
#: (cnnopt.common.runs.read_run) reads, keyed by the named input a rule declares them as.
RUN_FILES = {"specs": "run.json", "metrics": "metrics.json", "evaluations": "evaluation.json",
             "histories": "history.csv"}
