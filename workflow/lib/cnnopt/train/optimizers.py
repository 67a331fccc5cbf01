"""Optimizers and learning-rate schedules from a run spec, using Keras' own classes."""

from __future__ import annotations

import inspect

import keras

from cnnopt.common.registry import OPTIMIZERS


def schedule(learning_rate: float, spec: dict, steps_per_epoch: int):
    """The paper's exponential decay, eta_t = eta0 * decay_rate ** (t / decay_step), t in epochs.

    Keras' ExponentialDecay counts optimizer steps, so ``decay_step`` epochs become
    ``decay_step * steps_per_epoch`` steps; with ``staircase`` the rate drops once every
    ``decay_step`` epochs instead of smoothly.
    """
    if spec.get("type", "constant") == "constant":
        return learning_rate
    if spec["type"] == "warmup_cosine":
        return warmup_cosine(learning_rate, spec, steps_per_epoch)
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
    if spec["type"] == "warmup_cosine":  # Keras' own schedule, at a fine step resolution
        resolution = 1000
        return float(warmup_cosine(learning_rate, spec, resolution)(round(epoch * resolution)))
    t = epoch / spec["decay_step"]
    if spec.get("staircase", False):
        t = int(t)
    return learning_rate * spec["decay_rate"] ** t


def warmup_cosine(learning_rate: float, spec: dict, steps_per_epoch: int):
    """Linear warm-up to ``learning_rate``, then cosine decay: Keras' ``CosineDecay``.

    The rate rises linearly from ``warmup_start * learning_rate`` to ``learning_rate`` over
    ``warmup_epochs`` epochs, then falls along a half cosine to ``alpha * learning_rate`` over
    ``decay_epochs`` epochs (set it to the run's epochs minus ``warmup_epochs``), and stays
    there.
    """
    warmup_steps = round(spec.get("warmup_epochs", 0) * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * spec.get("warmup_start", 0.0),
        decay_steps=max(1, round(spec["decay_epochs"] * steps_per_epoch)),
        alpha=spec.get("alpha", 0.0),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )


def build(config: dict, schedule_spec: dict, steps_per_epoch: int) -> keras.Optimizer:
    """A Keras optimizer from ``optimizer_config`` ({"name": ..., hyperparameters})."""
    args = dict(config)
    cls = getattr(keras.optimizers, OPTIMIZERS[args.pop("name")].keras_class)
    default = inspect.signature(cls).parameters["learning_rate"].default
    args["learning_rate"] = schedule(args.get("learning_rate", default), schedule_spec,
                                     steps_per_epoch)
    return cls(**args)
