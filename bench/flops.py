"""FLOPs per image of a Keras model, counted from its layers.

Counted: the multiply-adds of every convolution and dense layer, two FLOPs each (the usual
convention). Not counted: batch norm, activations, pooling, dropout, augmentation, the loss
and the optimizer update, all elementwise and small beside the convolutions. A training step
costs about three forward passes (forward, gradient of the activations, gradient of the
weights), so ``training = 3 x forward``.
"""

from __future__ import annotations


def forward_flops(model) -> int:
    """FLOPs of one image's forward pass through ``model`` (a built Keras model)."""
    total = 0
    for layer in _leaf_layers(model):
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            if kind == "Conv2D":
                macs = h * w * c_out * kh * kw * c_in // getattr(layer, "groups", 1)
            elif kind == "DepthwiseConv2D":
                macs = h * w * c_out * kh * kw
            else:  # depthwise then pointwise
                mid = c_in * layer.depth_multiplier
                macs = h * w * mid * kh * kw + h * w * mid * c_out
            total += 2 * macs
        elif kind == "Dense":
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def training_flops(model) -> int:
    """FLOPs of one image's training step: about three forward passes."""
    return 3 * forward_flops(model)


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer
