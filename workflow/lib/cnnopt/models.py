"""The CNNs of the study, built from a model spec (see ``config/README.md``).

``tutorial`` is the TensorFlow CNN tutorial's model, the paper's baseline. ``blocks`` is the
paper's final family: conv blocks (Conv-[BatchNorm]-ReLU, then max pooling and optional
dropout), dense layers with dropout, and a softmax output; L2 acts on every kernel.
"""

from __future__ import annotations

import keras
from keras import layers

INPUT_SHAPE = (32, 32, 3)


def _regularizer(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


def tutorial(num_classes: int) -> keras.Model:
    """Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10, as in the TensorFlow CNN tutorial."""
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="tutorial_cnn",
    )


def blocks(spec: dict, num_classes: int) -> keras.Model:
    """Conv blocks with ReLU, pooling and dropout, then dense layers and softmax."""
    reg = _regularizer(spec.get("l2", 0.0))
    bn = spec.get("batch_norm", False)
    dropout = spec.get("dropout", 0.0)
    conv_dropout = spec.get("conv_dropout", 0.0)
    stack = [keras.Input(INPUT_SHAPE), layers.Rescaling(1.0 / 255)]
    for filters in spec["filters"]:
        for _ in range(spec.get("convs_per_block", 1)):
            stack.append(layers.Conv2D(filters, 3, padding="same", use_bias=not bn,
                                       kernel_regularizer=reg))
            if bn:
                stack.append(layers.BatchNormalization())
            stack.append(layers.Activation("relu"))
        stack.append(layers.MaxPooling2D())
        if conv_dropout:
            stack.append(layers.Dropout(conv_dropout))
    stack.append(layers.Flatten())
    for units in spec.get("dense", []):
        stack.append(layers.Dense(units, use_bias=not bn, kernel_regularizer=reg))
        if bn:
            stack.append(layers.BatchNormalization())
        stack.append(layers.Activation("relu"))
        if dropout:
            stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg))
    return keras.Sequential(stack, name="blocks_cnn")


def build(spec: dict, num_classes: int = 10) -> keras.Model:
    """The model a run's ``model`` spec describes."""
    if spec["architecture"] == "tutorial":
        return tutorial(num_classes)
    return blocks(spec, num_classes)
