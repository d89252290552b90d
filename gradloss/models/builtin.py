"""The built-in architectures, each sized from the dataset's image shape and class count, all
backend-neutral Keras 3 ending in a softmax.

- "cnn": the reference CNN of the gradient-loss experiment (the default; unchanged, so every
  earlier run rebuilds exactly).
- "mlp": two hidden dense layers, the simplest baseline for any image size.
- "resnet": a small residual network for 32x32 colour images (three stages of one residual block
  each, 32/64/128 filters, global average pooling), after He et al. 2016 without batch
  normalization: the input-gradient objectives assume every example passes through the network
  alone, which batch statistics would break.
"""
from __future__ import annotations

import keras

from gradloss.core.config import ARCHITECTURES


def build_cnn(input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10) -> keras.Model:
    """Conv(64,3,relu) -> MaxPool(2) -> Conv(64,3,relu) -> MaxPool(2) -> Dense(64,relu) -> Dense(K,softmax)."""
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),                      # (B, 28, 28, 1)
            keras.layers.Conv2D(64, 3, activation="relu"),       # (B, 26, 26, 64)
            keras.layers.MaxPooling2D(2),                        # (B, 13, 13, 64)
            keras.layers.Conv2D(64, 3, activation="relu"),       # (B, 11, 11, 64)
            keras.layers.MaxPooling2D(2),                        # (B, 5, 5, 64)
            keras.layers.Flatten(),                              # (B, 1600)
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),  # (B, K) probabilities
        ],
        name="reference_cnn",
    )
    return model


def build_mlp(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Flatten -> Dense(256, relu) -> Dense(128, relu) -> Dense(K, softmax)."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Flatten(),                                  # (B, H*W*C)
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="mlp")


def _residual(x, filters: int, name: str):
    """x + Conv(3) -> relu -> Conv(3), then relu; a 1x1 projection when the width changes."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, name=f"{name}_project")(x)
    y = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_a")(x)
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_b")(y)
    return keras.layers.Activation("relu", name=f"{name}_out")(keras.layers.Add()([shortcut, y]))


def build_resnet(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Conv(32) -> [residual(32), pool] -> [residual(64), pool] -> residual(128) -> GAP -> softmax.

    (B, 32, 32, 3) -> (B, 16, 16, 32) -> (B, 8, 8, 64) -> (B, 8, 8, 128) -> (B, 128) -> (B, K)."""
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="stem")(inputs)
    for stage, filters in enumerate((32, 64, 128), start=1):
        x = _residual(x, filters, f"stage{stage}")
        if stage < 3 and min(x.shape[1], x.shape[2]) >= 2:  # tiny images are not pooled to 0
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="small_resnet")


BUILDERS = {"cnn": build_cnn, "mlp": build_mlp, "resnet": build_resnet}
assert tuple(BUILDERS) == ARCHITECTURES


def build(name: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The built-in architecture `name` for images `input_shape` and `num_classes` classes."""
    return BUILDERS[name](tuple(input_shape), int(num_classes))
