"""The reference CNN of the gradient-loss experiment, built with backend-neutral Keras 3."""
from __future__ import annotations

import keras


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


def predict(model: keras.Model, x, batch_size: int = 500):
    """Class probabilities for `x`, computed `batch_size` rows at a time: (N, ...) -> (N, K)."""
    import numpy as np

    if len(x) == 0:
        raise ValueError("predict() got an empty array; nothing to predict.")
    parts = [keras.ops.convert_to_numpy(model.predict_on_batch(x[i:i + batch_size]))
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts, axis=0)
