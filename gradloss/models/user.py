"""Your own architecture: a .keras file, loaded with Keras's safe mode and checked against the data.

`load(path)` refuses a file that is not a Keras model and one that needs custom code (a Lambda
layer, a class Keras does not know): safe mode raises before anything of it runs. `check`
refuses a model whose input does not take the dataset's images, whose output is not one value
per class, or whose outputs are not probabilities (say `from_logits` for a model that outputs
logits: a softmax is then appended). `build` gives the model a run trains: the file's
architecture with fresh weights drawn from the run's seed (the default, so seeds mean what they
mean for the built-in architectures), or the file's own weights as a start (`initial_weights`).

`python -m gradloss.models.user PATH H W C K [--logits]` runs the checks in a process of its
own and prints the model's summary as JSON, or the reason on stderr with exit status 2: the CLI
and the dashboard check an upload without loading Keras themselves (`gradloss.architectures`).
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np

from gradloss.core.errors import InputFileError

PROBABILITY_ATOL = 1e-3  # a softmax's rows sum to 1 within float32 rounding; logits do not


def load(path: str | Path) -> keras.Model:
    """The model in the .keras file at `path`, loaded in safe mode (no custom code runs)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise InputFileError(f"{path} is not a Keras model file: a .keras file is a zip archive "
                             "written by model.save('name.keras'); allowed: such a file.")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        if "safe_mode" in text or "Could not locate" in text or "custom" in text.lower():
            raise InputFileError(
                f"{path} needs custom code to load ({text.split('. ')[0][:160]}), which gradloss "
                "never runs; allowed: a model of Keras's own layers (no Lambda layer, no class "
                "of your own), as keras.Sequential or the functional API save it.") from None
        raise InputFileError(f"{path} cannot be loaded as a Keras model: "
                             f"{text.splitlines()[0][:300]}") from None
    except Exception as exc:  # noqa: BLE001  (a broken archive, a missing config.json, ...)
        raise InputFileError(f"{path} cannot be loaded as a Keras model: {type(exc).__name__}: "
                             f"{(str(exc).splitlines() or [''])[0][:300]}") from None
    if not isinstance(model, keras.Model):
        raise InputFileError(f"{path} holds a {type(model).__name__}, not a model; allowed: a "
                             "saved keras.Model.")
    return model


def check(model: keras.Model, path, shape: tuple[int, ...], classes: int,
          from_logits: bool = False) -> dict:
    """Refuse a model that does not fit images `shape` and `classes` classes; its summary."""
    inputs = model.inputs if model.inputs is not None else []
    if len(inputs) != 1:
        raise InputFileError(f"{path} takes {len(inputs)} inputs; allowed: one input, the "
                             f"images, shaped (batch, {', '.join(map(str, shape))}).")
    wanted = tuple(shape)
    given = tuple(model.inputs[0].shape[1:])
    if len(given) != len(wanted) or any(g not in (None, w) for g, w in zip(given, wanted)):
        raise InputFileError(f"{path} takes inputs shaped {given} but the dataset's images are "
                             f"{wanted}; allowed: an input of shape {wanted} (None for any size).")
    outputs = model.outputs or []
    out_shape = tuple(outputs[0].shape[1:]) if len(outputs) == 1 else None
    if out_shape != (classes,):
        shown = out_shape if len(outputs) == 1 else f"{len(outputs)} tensors"
        raise InputFileError(f"{path} outputs {shown} "
                             f"per image but the dataset has {classes} classes; allowed: one "
                             f"output of {classes} values (a softmax, or logits with from_logits).")
    x = np.random.default_rng(0).uniform(0, 1, (4, *wanted)).astype("float32")
    p = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float64)
    sums = p.sum(axis=-1)
    probabilities = bool((p >= -1e-6).all() and np.allclose(sums, 1.0, atol=PROBABILITY_ATOL))
    if not from_logits and not probabilities:
        raise InputFileError(
            f"{path} outputs values that are not class probabilities (rows sum to "
            f"{sums.min():.3g}..{sums.max():.3g}, smallest value {p.min():.3g}); allowed: a model "
            "ending in a softmax, or one that outputs logits with --logits (from_logits=True), "
            "which appends the softmax.")
    return {"name": Path(path).name, "layers": len(model.layers),
            "parameters": int(model.count_params()), "input_shape": list(given),
            "outputs": classes, "probabilities": probabilities}


def build(path: str | Path, seed: int, initial_weights: bool = False,
          from_logits: bool = False) -> keras.Model:
    """The model a run trains from the file: fresh weights from `seed`, or the file's own."""
    loaded = load(path)
    keras.utils.set_random_seed(seed)  # the clone's initializers draw from the seed
    model = keras.models.clone_model(loaded)
    if initial_weights:
        model.set_weights(loaded.get_weights())
    if from_logits:  # a softmax on top: the model a run trains outputs probabilities
        inputs = keras.Input(shape=model.inputs[0].shape[1:])
        model = keras.Model(inputs, keras.layers.Softmax()(model(inputs)),
                            name=f"{model.name}_softmax")
    return model


def main(argv: list[str] | None = None) -> int:
    """Check a file against a dataset shape and class count; its summary as JSON on stdout."""
    args = sys.argv[1:] if argv is None else argv
    path, shape, classes = args[0], tuple(int(a) for a in args[1:4]), int(args[4])
    try:
        summary = check(load(path), path, shape, classes, from_logits="--logits" in args)
    except InputFileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
