"""Models, optimizers, schedules, splits and the training function, on tiny arrays."""

import math

import keras
import numpy as np
import pandas as pd
import pytest
from datasets import write_arrays
from workflow_helpers import assert_same_weights

from cnnopt.common import errors, files
from cnnopt.config import grid, schema
from cnnopt.data import cifar10 as data
from cnnopt.data import splits
from cnnopt.evaluate.scoring import evaluate
from cnnopt.train import models, optimizers
from cnnopt.train.batches import EpochShuffled
from cnnopt.train.loop import convergence_epoch, train


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    return write_arrays(tmp_path_factory.mktemp("data") / "arrays.npz", 40, 10, seed=1)


def spec_for(optimizer="adam", variant="initial", **changes):
    cfg = schema.validate({
        "validation_size": 50,
        "defaults": {"epochs": 2, "batch_size": 32, "model": {"filters": [8, 16], "dense": [16]}},
        "optimizers": {"adam": {}, "sgd": {"learning_rate": 0.05, "momentum": 0.9}},
        "variants": {
            "initial": {"role": "initial"},
            "final": {"role": "final", "epochs": 3, "model": {"dropout": 0.3, "batch_norm": True},
                      "schedule": {"type": "exponential", "decay_rate": 0.5, "decay_step": 1}},
            "baseline": {"role": "baseline", "model": {"architecture": "tutorial"}},
        },
        "grid": [{"optimizers": ["adam", "sgd"], "variants": ["initial", "final", "baseline"]}],
    })
    spec = grid.run_spec(cfg, optimizer, variant, 0)
    return grid.deep_merge(spec, changes)


def run(spec, arrays, folder):
    outputs = {name: folder / f"{name}.out" for name in ("history", "metrics", "spec")}
    outputs |= {"model": folder / "model.keras", "best_model": folder / "model_best.keras"}
    metrics = train(spec, arrays, outputs)
    return metrics, pd.read_csv(outputs["history"]), outputs


def test_an_unknown_architecture_is_refused_not_built_as_blocks():
    with pytest.raises(ValueError, match="unknown architecture 'resnet20'; known: tutorial, blocks"):
        models.build({"architecture": "resnet20", "filters": [8], "convs_per_block": 1})


def test_tutorial_model_matches_the_tensorflow_tutorial():
    model = models.build({"architecture": "tutorial"})
    convs = [layer.filters for layer in model.layers if hasattr(layer, "filters")]
    dense = [layer.units for layer in model.layers if hasattr(layer, "units")]
    assert convs == [32, 64, 64] and dense == [64, 10]
    assert model.count_params() == 122_570


def test_blocks_model_switches_batch_norm_dropout_and_l2():
    spec = {"architecture": "blocks", "filters": [8, 16], "convs_per_block": 2, "dense": [32],
            "dropout": 0.5, "conv_dropout": 0.1, "batch_norm": True, "l2": 1e-3}
    model = models.build(spec)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("BatchNormalization") == 5
    assert kinds.count("Dropout") == 3
    assert all(layer.kernel_regularizer is not None
               for layer in model.layers if hasattr(layer, "kernel_regularizer"))
    plain = models.build({**spec, "batch_norm": False, "dropout": 0, "conv_dropout": 0, "l2": 0})
    assert "BatchNormalization" not in [type(layer).__name__ for layer in plain.layers]
    assert model.output_shape == (None, 10)


def test_resnet20_is_he_et_als_cifar_network():
    model = models.build({"architecture": "resnet", "filters": [16, 32, 64], "depth": 20})
    assert model.output_shape == (None, 10) and model.name == "resnet20"
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    # 1 stem conv + 3 stages x 3 blocks x 2 convs, + 2 projection shortcuts (1x1, stride 2)
    assert len(convs) == 1 + 18 + 2
    assert [c.kernel_size for c in convs].count((1, 1)) == 2
    assert sum(type(layer).__name__ == "Add" for layer in model.layers) == 9
    assert 0.26e6 < model.count_params() < 0.28e6  # the paper's 0.27 M
    deeper = models.build({"architecture": "resnet", "filters": [16, 32, 64], "depth": 32})
    assert sum(type(layer).__name__ == "Add" for layer in deeper.layers) == 15


def test_resnet_specs_are_checked_and_cleaned():
    cfg = {"defaults": {"model": {"filters": [16, 32, 64]}}, "optimizers": {"adam": {}},
           "variants": {"r": {"role": "extra", "model": {"architecture": "resnet", "dropout": 0.3}}},
           "grid": [{"optimizers": ["adam"], "variants": ["r"]}]}
    model = grid.run_spec(schema.validate(cfg), "adam", "r", 0)["model"]
    assert model["depth"] == 20 and "dropout" not in model and "dense" not in model
    for bad, key in (({"depth": 21}, "depth"), ({"filters": [16, 32]}, "filters")):
        broken = grid.deep_merge(cfg, {"variants": {"r": {"model": bad}}})
        with pytest.raises(errors.ConfigError, match=f"model/{key}"):
            grid.run_spec(schema.validate(broken), "adam", "r", 0)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_schedule_follows_the_papers_formula(staircase):
    spec = {"type": "exponential", "decay_rate": 0.5, "decay_step": 2, "staircase": staircase}
    steps = 10
    sched = optimizers.schedule(0.1, spec, steps_per_epoch=steps)
    for epoch in (0, 1, 2.5, 4):
        expected = 0.1 * 0.5 ** (int(epoch / 2) if staircase else epoch / 2)
        assert float(sched(int(epoch * steps))) == pytest.approx(expected, rel=1e-5)
        assert optimizers.learning_rate_at(epoch, 0.1, spec) == pytest.approx(expected, rel=1e-5)


def test_optimizer_hyperparameters_reach_keras():
    opt = optimizers.build({"name": "sgd", "learning_rate": 0.02, "momentum": 0.9,
                            "nesterov": True}, {"type": "constant"}, 10)
    assert type(opt).__name__ == "SGD" and opt.nesterov and opt.momentum == 0.9
    rms = optimizers.build({"name": "rmsprop", "rho": 0.95}, {"type": "constant"}, 10)
    assert rms.rho == 0.95 and float(rms.learning_rate) == pytest.approx(0.001)
    sgd_default = optimizers.build({"name": "sgd"}, {"type": "constant"}, 10)
    assert float(sgd_default.learning_rate) == pytest.approx(0.01)
    lion = optimizers.build({"name": "lion", "learning_rate": 3e-4, "beta_1": 0.95},
                            {"type": "constant"}, 10)
    assert type(lion).__name__ == "Lion" and lion.beta_1 == 0.95
    amsgrad = optimizers.build({"name": "adam", "amsgrad": True}, {"type": "constant"}, 10)
    nadam = optimizers.build({"name": "nadam"}, {"type": "constant"}, 10)
    assert amsgrad.amsgrad and type(nadam).__name__ == "Nadam"


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(10), [100] * 5 + [50] * 5)
    rest, val = splits.stratified_split(y, 150, seed=3)
    assert len(val) == 150 and len(np.intersect1d(rest, val)) == 0
    assert len(rest) + len(val) == len(y)
    counts = np.bincount(y[val], minlength=10)
    assert list(counts) == [20] * 5 + [10] * 5
    again = splits.stratified_split(y, 150, seed=3)[1]
    assert np.array_equal(val, again)


def test_epoch_batches_depend_only_on_seed_and_epoch():
    x = np.arange(100)[:, None]
    whole = EpochShuffled(x, x[:, 0], batch_size=10, seed=4, epochs=3)
    resumed = EpochShuffled(x, x[:, 0], batch_size=10, seed=4, epochs=3, start=1)
    assert len(whole) == 30 and len(resumed) == 20
    for i in range(20):
        assert np.array_equal(whole[10 + i][1], resumed[i][1])
    first = np.concatenate([whole[i][1] for i in range(10)])
    second = np.concatenate([whole[i][1] for i in range(10, 20)])
    assert sorted(first) == sorted(second) == list(range(100))
    assert not np.array_equal(first, second)


def test_convergence_epoch():
    assert convergence_epoch(pd.Series([0.2, 0.5, 0.695, 0.70, 0.69]), 1.0) == 3
    assert convergence_epoch(pd.Series([math.nan]), 1.0) is None


def test_training_writes_outputs_and_learns(arrays, tmp_path):
    metrics, history, outputs = run(spec_for(epochs=4), arrays, tmp_path)
    assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                     "learning_rate", "seconds", "elapsed"]
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert "test_accuracy" not in metrics  # rule evaluate scores the test set, once
    scored = evaluate(outputs["model"], arrays, tmp_path / "evaluation.json", spec_for(epochs=4))
    assert scored["test_accuracy"] > 0.5  # 10 colour classes: chance is 0.1
    assert metrics["epochs_run"] == 4 and not metrics["diverged"]
    assert metrics["images_per_second"] > 0 and metrics["params"] > 0
    assert files.read_json(outputs["spec"])["run_id"] == "adam-initial-s0"
    assert outputs["model"].stat().st_size > 0
    assert not list(tmp_path.glob(".*.part*"))


def test_schedule_is_applied_during_training(arrays, tmp_path):
    metrics, history, _ = run(spec_for("sgd", "final"), arrays, tmp_path)
    # the rate epoch e trains with (staircase, the paper's formula with t = e - 1 finished epochs)
    expected = [0.05 * 0.5 ** (e - 1) for e in history["epoch"]]
    assert history["learning_rate"].to_numpy() == pytest.approx(expected, rel=1e-4)


def test_same_seed_gives_the_same_run(arrays, tmp_path):
    spec = spec_for(deterministic=True)
    first = run(spec, arrays, tmp_path / "a")[1]
    second = run(spec, arrays, tmp_path / "b")[1]
    cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert np.allclose(first[cols], second[cols], rtol=0, atol=1e-6)


def test_divergence_is_recorded_not_raised(arrays, tmp_path):
    spec = spec_for("sgd", "initial", optimizer_config={"learning_rate": 1e6})
    spec["epochs"] = 3
    metrics, history, _ = run(spec, arrays, tmp_path)
    assert metrics["diverged"] and metrics["diverged_epoch"] == history["epoch"].iloc[-1]
    assert metrics["epochs_run"] <= 3


def _val_accuracy(model_path, arrays, spec):
    sets = splits.for_run(data.load(arrays), spec)
    model = keras.saving.load_model(model_path)
    pred = model.predict(sets["x_val"], verbose=0).argmax(axis=1)
    return float((pred == sets["y_val"]).mean())


def test_best_model_holds_the_epoch_of_the_best_validation_accuracy(arrays, tmp_path):
    # a rate that overshoots: the validation curve rises and falls, so the best epoch is rarely
    # the last, and whichever it is, the saved model must score exactly that epoch's accuracy
    spec = spec_for("sgd", "initial", epochs=5, optimizer_config={"learning_rate": 0.3})
    metrics, history, outputs = run(spec, arrays, tmp_path)
    best = int(history["val_accuracy"].to_numpy().argmax()) + 1
    assert metrics["best_epoch"] == best
    assert _val_accuracy(outputs["best_model"], arrays, spec) == pytest.approx(
        history["val_accuracy"].iloc[best - 1], abs=1e-6)
    assert _val_accuracy(outputs["model"], arrays, spec) == pytest.approx(
        history["val_accuracy"].iloc[-1], abs=1e-6)
    scored = evaluate(outputs["model"], arrays, tmp_path / "evaluation.json", spec,
                      best_model_path=outputs["best_model"], best_epoch=metrics["best_epoch"])
    assert scored["best_model"]["epoch"] == best
    assert len(scored["best_model"]["predictions"]) == len(scored["labels"])
    assert not list(tmp_path.glob("cnnopt-best-*"))


def test_without_a_held_out_validation_set_nothing_is_chosen(arrays, tmp_path):
    spec = spec_for(epochs=2, validation_size=0)  # validation on the test set: choose nothing
    metrics, _, outputs = run(spec, arrays, tmp_path)
    assert metrics["best_epoch"] is None
    assert_same_weights(outputs["best_model"], outputs["model"])
