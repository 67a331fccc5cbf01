"""Optimizers and learning-rate schedules from a run spec, using Keras' own classes."""

from __future__ import annotations

import inspect

import keras

CLASSES = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "adamax": keras.optimizers.Adamax,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
}


def schedule(learning_rate: float, spec: dict, steps_per_epoch: int):
    """The paper's exponential decay, eta_t = eta0 * decay_rate ** (t / decay_step), t in epochs.

    Keras' ExponentialDecay counts optimizer steps, so ``decay_step`` epochs become
    ``decay_step * steps_per_epoch`` steps; with ``staircase`` the rate drops once every
    ``decay_step`` epochs instead of smoothly.
    """
    if spec.get("type", "constant") == "constant":
        return learning_rate
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=learning_rate,
        decay_steps=spec["decay_step"] * steps_per_epoch,
        decay_rate=spec["decay_rate"],
        staircase=spec.get("staircase", False),
    )


def learning_rate_at(epoch: float, learning_rate: float, spec: dict) -> float:
    """The learning rate the schedule gives at ``epoch`` (for tables and figures)."""
    if spec.get("type", "constant") == "constant":
        return learning_rate
    t = epoch / spec["decay_step"]
    if spec.get("staircase", False):
        t = int(t)
    return learning_rate * spec["decay_rate"] ** t


def build(config: dict, schedule_spec: dict, steps_per_epoch: int) -> keras.Optimizer:
    """A Keras optimizer from ``optimizer_config`` ({"name": ..., hyperparameters})."""
    args = dict(config)
    cls = CLASSES[args.pop("name")]
    default = inspect.signature(cls).parameters["learning_rate"].default
    args["learning_rate"] = schedule(args.get("learning_rate", default), schedule_spec,
                                     steps_per_epoch)
    return cls(**args)
