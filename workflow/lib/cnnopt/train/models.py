"""The CNNs of the study, built from a model spec (see ``config/README.md``).

``tutorial`` is the TensorFlow CNN tutorial's model, the paper's baseline. ``blocks`` is the
paper's final family: conv blocks (Conv-[BatchNorm]-ReLU, then max pooling and optional
dropout), dense layers with dropout, and a softmax output; L2 acts on every kernel.
``fast`` is a small wide net in the style of the public CIFAR-10 speed runs (the ``fast``
recipe, ``config/fast.yaml``): per block Conv-MaxPool-BatchNorm-ReLU then more
Conv-BatchNorm-ReLU, global max pooling and one softmax layer.

``resnet`` is He et al.'s CIFAR ResNet (ResNet-20 by default), the paper's "deeper
architectures" of future work.

``augment_flip`` and ``augment_translate`` put Keras' random flip and translation layers in
front of ``blocks`` and ``fast`` models; like every Keras random preprocessing layer they act
only in training and pass images through unchanged at inference.
"""

from __future__ import annotations

import itertools

import keras
from keras import layers

from cnnopt.common.registry import ARCHITECTURES

INPUT_SHAPE = (32, 32, 3)


def _regularizer(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


def tutorial(spec: dict, num_classes: int, seed: int | None = None) -> keras.Model:
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


def _augmentation(spec: dict) -> list:
    """Keras' random flip / translation layers for the spec (active in training only)."""
    stack = []
    if spec.get("augment_flip", False):
        stack.append(layers.RandomFlip("horizontal"))
    shift = spec.get("augment_translate", 0)
    if shift:
        factor = shift / INPUT_SHAPE[0]
        stack.append(layers.RandomTranslation(factor, factor, fill_mode="reflect"))
    return stack


def _dropout_seeds(seed: int | None):
    """A distinct seed per Dropout layer of a model, from the run's seed (None: unseeded).

    A seeded Dropout draws its masks from its own seed generator, whose state a checkpoint
    keeps, on every backend; an unseeded one on PyTorch draws from torch's global generator
    (Keras' fast path), which a resumed run cannot replay.
    """
    return itertools.repeat(None) if seed is None else itertools.count(1000 * seed + 1)


def blocks(spec: dict, num_classes: int, seed: int | None = None) -> keras.Model:
    """Conv blocks with ReLU, pooling and dropout, then dense layers and softmax."""
    reg = _regularizer(spec.get("l2", 0.0))
    bn = spec.get("batch_norm", False)
    dropout = spec.get("dropout", 0.0)
    conv_dropout = spec.get("conv_dropout", 0.0)
    seeds = _dropout_seeds(seed)
    stack = [keras.Input(INPUT_SHAPE), *_augmentation(spec), layers.Rescaling(1.0 / 255)]
    for filters in spec["filters"]:
        for _ in range(spec.get("convs_per_block", 1)):
            stack.append(layers.Conv2D(filters, 3, padding="same", use_bias=not bn,
                                       kernel_regularizer=reg))
            if bn:
                stack.append(layers.BatchNormalization())
            stack.append(layers.Activation("relu"))
        stack.append(layers.MaxPooling2D())
        if conv_dropout:
            stack.append(layers.Dropout(conv_dropout, seed=next(seeds)))
    stack.append(layers.Flatten())
    for units in spec.get("dense", []):
        stack.append(layers.Dense(units, use_bias=not bn, kernel_regularizer=reg))
        if bn:
            stack.append(layers.BatchNormalization())
        stack.append(layers.Activation("relu"))
        if dropout:
            stack.append(layers.Dropout(dropout, seed=next(seeds)))
    stack.append(layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg))
    return keras.Sequential(stack, name="blocks_cnn")


def fast(spec: dict, num_classes: int, seed: int | None = None) -> keras.Model:
    """A small wide net for fast training: Conv-Pool-BN-ReLU (+ Conv-BN-ReLU) blocks.

    Each entry of ``filters`` is one block: a 3x3 conv, 2x2 max pooling, batch norm and ReLU,
    then ``convs_per_block - 1`` more 3x3 Conv-BN-ReLU at the pooled size (pooling before the
    norm and activation keeps the elementwise work small). ``stem`` > 0 adds one Conv-BN-ReLU
    of that many filters at full resolution first. Global max pooling and one softmax layer
    close it; ``dropout`` acts before that layer. Batch norm is always on (``bn_momentum``).
    """
    reg = _regularizer(spec.get("l2", 0.0))
    momentum = spec.get("bn_momentum", 0.99)
    dropout = spec.get("dropout", 0.0)

    def conv_bn_relu(filters, pool=False):
        out = [layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg)]
        if pool:
            out.append(layers.MaxPooling2D())
        return out + [layers.BatchNormalization(momentum=momentum), layers.Activation("relu")]

    stack = [keras.Input(INPUT_SHAPE), *_augmentation(spec), layers.Rescaling(1.0 / 255)]
    if spec.get("stem", 0):
        stack += conv_bn_relu(spec["stem"])
    for filters in spec["filters"]:
        stack += conv_bn_relu(filters, pool=True)
        for _ in range(spec.get("convs_per_block", 1) - 1):
            stack += conv_bn_relu(filters)
    stack.append(layers.GlobalMaxPooling2D())
    if dropout:
        stack.append(layers.Dropout(dropout, seed=next(_dropout_seeds(seed))))
    stack.append(layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg,
                              dtype="float32"))
    return keras.Sequential(stack, name="fast_cnn")


def resnet(spec: dict, num_classes: int, seed: int | None = None) -> keras.Model:
    """He et al. (2016)'s ResNet for CIFAR-10: a 3x3 conv, three stages of n basic blocks
    (two 3x3 Conv-BN, ReLU, identity shortcut), depth = 6n + 2, global average pooling and a
    softmax layer. The first block of stages 2 and 3 halves the size with stride 2; its
    shortcut is a 1x1 Conv-BN projection. ResNet-20 (filters 16/32/64): 0.27 M parameters.
    """
    reg = _regularizer(spec.get("l2", 0.0))
    n = (spec.get("depth", 20) - 2) // 6

    def conv_bn(x, filters, strides=1, kernel=3):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          kernel_initializer="he_normal", kernel_regularizer=reg)(x)
        return layers.BatchNormalization()(x)

    inputs = keras.Input(INPUT_SHAPE)
    x = inputs
    for layer in _augmentation(spec):
        x = layer(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Activation("relu")(conv_bn(x, spec["filters"][0]))
    for stage, filters in enumerate(spec["filters"]):
        for block in range(n):
            strides = 2 if stage > 0 and block == 0 else 1
            y = layers.Activation("relu")(conv_bn(x, filters, strides))
            y = conv_bn(y, filters)
            shortcut = conv_bn(x, filters, strides, kernel=1) if strides > 1 else x
            x = layers.Activation("relu")(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg,
                           dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"resnet{6 * n + 2}")


def build(spec: dict, num_classes: int = 10, seed: int | None = None) -> keras.Model:
    """The model a run's ``model`` spec describes; ``seed`` (the run's) seeds its dropout."""
    if spec.get("precision", "float32") != "float32":  # e.g. mixed_bfloat16: Keras' dtype policy
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(spec["precision"])
        try:
            return build({**spec, "precision": "float32"}, num_classes, seed)
        finally:
            keras.config.set_dtype_policy(previous)
    name = spec["architecture"]
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return globals()[name](spec, num_classes, seed)  # each architecture's builder bears its name
