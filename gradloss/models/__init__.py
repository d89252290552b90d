"""The models runs train: the built-in architectures (`builtin`) and the user's own .keras files
(`user`), each sized from or checked against the dataset; batched prediction."""
from __future__ import annotations

import keras

from gradloss.models.builtin import ARCHITECTURES, build_cnn, build_mlp, build_resnet


def build_model(config, input_shape: tuple[int, ...], num_classes: int,
                path: str | None = None) -> keras.Model:
    """The model run `config` (a TrainConfig) trains, with fresh weights from its seed: a
    built-in architecture, or (config.architecture_hash) the .keras file at `path`."""
    keras.utils.set_random_seed(config.seed)  # same seed -> same initial weights
    if config.architecture_hash is None:
        from gradloss.models.builtin import build
        return build(config.architecture, input_shape, num_classes)
    from gradloss.core.errors import InputFileError
    from gradloss.models import user

    if path is None:
        raise InputFileError(f"The run's architecture {config.architecture_label} has no file to "
                             "load: give the .keras file it was made from.")
    model = user.build(path, config.seed, config.initial_weights, config.from_logits)
    user.check(model, path, input_shape, num_classes)  # the data may have changed under it
    return model


# Rows per prediction call (`engines.compiled.predict`): on 2 CPU cores a pass over 10 000 test
# images costs a third less CPU time at 100 than at 500 (bench/README.md, "Prediction batch");
# the predicted classes are the same whatever the batch, the probabilities agree to about 1e-6.
PREDICT_BATCH = 100


__all__ = ["ARCHITECTURES", "build_cnn", "build_mlp", "build_resnet", "build_model", "PREDICT_BATCH"]
