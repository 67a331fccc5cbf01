"""The registry (cnnopt.common.registry) is the one home of the names the workflow knows: an
optimizer or architecture entered there reaches schema validation, the training, the tables
and the report, and nothing else needs to learn it."""

from __future__ import annotations

import inspect
import math

import keras
import numpy as np
import pandas as pd
import pytest

from cnnopt.common import registry
from cnnopt.common.errors import ConfigError
from cnnopt.config import grid, schema
from cnnopt.report import tables as report_tables
from cnnopt.train import models, optimizers


def _config(optimizers_block: dict, model: dict | None = None) -> dict:
    variant = {"role": "initial", **({"model": model} if model else {})}
    return {"optimizers": optimizers_block, "variants": {"initial": variant},
            "grid": [{"optimizers": list(optimizers_block), "variants": ["initial"]}]}


def _only_spec(config: dict) -> dict:
    (spec,) = grid.expand_runs(schema.validate(config)).values()
    return spec


@pytest.mark.parametrize("name", list(registry.OPTIMIZERS))
def test_every_registered_optimizer_validates_and_builds_its_keras_class(name):
    entry = registry.OPTIMIZERS[name]
    cls = getattr(keras.optimizers, entry.keras_class)
    assert set(entry.arguments) <= set(inspect.signature(cls).parameters), entry.keras_class
    spec = _only_spec(_config({f"my_{name}": {"type": name}}))
    assert type(optimizers.build(spec["optimizer_config"], spec["schedule"], 10)) is cls
    assert registry.optimizer_label(name) == entry.label


def test_an_optimizer_entered_in_the_registry_reaches_validation_training_and_tables(monkeypatch):
    config = _config({"adagrad": {"epsilon": 0.01}})
    with pytest.raises(ConfigError, match="adagrad"):
        schema.validate(config)
    monkeypatch.setitem(registry.OPTIMIZERS, "adagrad", registry.Optimizer(
        "Adagrad", "Adagrad", ("learning_rate", "epsilon", "weight_decay", "clipnorm")))
    assert "adagrad" in schema.load_schema()["definitions"]["hyperparameters"]["properties"][
        "type"]["enum"]
    spec = _only_spec(config)
    built = optimizers.build(spec["optimizer_config"], spec["schedule"], 10)
    assert isinstance(built, keras.optimizers.Adagrad)
    assert built.epsilon == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="adagrad takes no momentum"):
        schema.validate(_config({"adagrad": {"momentum": 0.9}}))
    # the report's Table 1 names it by the registry's label
    table1 = pd.DataFrame([{"optimizer": "adagrad", "initial": 50.0, "final": 60.0,
                            "paper_initial": math.nan, "paper_final": math.nan, "seeds": 2}])
    (row,) = report_tables.table1_rows(table1)
    assert row["label"] == "Adagrad" and row["gain"] == pytest.approx(10.0)


@pytest.mark.parametrize("name", registry.ARCHITECTURES)
def test_every_registered_architecture_validates_and_builds(name):
    model = {"architecture": name} | ({"filters": [8, 16, 32], "depth": 8} if name == "resnet"
                                      else {"filters": [8, 16]} if name != "tutorial" else {})
    spec = _only_spec(_config({"adam": {}}, model))
    net = models.build(spec["model"], num_classes=10, seed=0)
    assert net.output_shape == (None, 10)
    assert net.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 10)


def test_a_name_outside_the_registry_is_one_line_from_the_schema_and_from_the_library():
    with pytest.raises(ConfigError, match=r"architecture = \"resnet20\"") as err:
        schema.validate(_config({"adam": {}}, {"architecture": "resnet20"}))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown architecture 'resnet20'; known: tutorial"):
        models.build({"architecture": "resnet20"})
    with pytest.raises(ConfigError, match="role"):
        schema.validate({**_config({"adam": {}}), "variants": {"initial": {"role": "tuned"}}})


def test_roles_order_the_grid_first_then_the_tuning_runs():
    assert registry.ROLES[:len(registry.GRID_ROLES)] == registry.GRID_ROLES
    assert [r for r in registry.ROLES if r not in registry.GRID_ROLES] == [registry.CANDIDATE,
                                                                         registry.TUNED]
    assert sorted(registry.ROLE_ORDER, key=registry.ROLE_ORDER.get) == list(registry.ROLES)
    assert registry.run_id("adam", "final", 3) == "adam-final-s3"
