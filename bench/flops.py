"""FLOPs per image of a Keras model, counted from its layers.

Counted: 2 FLOPs per multiply-add of every Conv2D and Dense layer (the models of
``cnnopt.train.models`` use no other kind of convolution). Not counted: batch norm,
activations, pooling, dropout, augmentation, the loss and the update, all small beside the
convolutions. A training step costs about three forward passes: ``training = 3 x forward``.
"""

from __future__ import annotations


def forward_flops(model) -> int:
    """FLOPs of one image's forward pass through ``model`` (a built Keras model)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1] // layer.groups
        elif kind == "Dense":
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def training_flops(model) -> int:
    """FLOPs of one image's training step: about three forward passes."""
    return 3 * forward_flops(model)
