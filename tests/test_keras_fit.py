"""gradloss.keras: `model.fit` with gradloss's objectives agrees with the double-tape reference and
the engines' steps on every backend, trains, and saves and loads as a plain Keras model.

Each backend runs in its own process (KERAS_BACKEND is fixed per process): it takes one
`train_on_batch` step with SGD at a large learning rate from weights this (TensorFlow) process
wrote, so the weight gradient is (w0 - w1) / LR, and writes it to an .npz that is compared here
with the reference: the seed's double tape (`engines.yardsticks`) for the gradient loss, plain
tapes for the others. PyTorch runs where torch is installed.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradloss.engines.yardsticks import gradient_loss
from gradloss.models import build_cnn

REPO = Path(__file__).resolve().parents[1]
SHAPE, K, B = (12, 12, 3), 5, 8
# float32 throughout; the measured differences are ~1e-7 (loss) and ~1e-6 (gradient norms)
RTOL = 1e-5
LR = 1e4  # w1 = w0 - LR g is dominated by LR g, so (w0 - w1) / LR keeps g's float32 digits
PARAMS = {"gradient": {}, "baseline": {}, "mse": {}, "noise_augmented": {"train_noise_sigma": 0.2},
          "input_gradient": {"penalty_weight": 0.5}}

# Runs under KERAS_BACKEND=<backend>. argv: folder with init.weights.h5 and batch.npz, params.
STEP = """
import json, sys, numpy as np, keras
import gradloss.keras as gk
from gradloss.models import build_cnn
from gradloss.objectives import shim
folder, params = sys.argv[1], json.loads(sys.argv[2])
backend, LR, SHAPE, K = keras.backend.backend(), %r, %r, %r
batch = np.load(f"{folder}/batch.npz")
x, y, labels = batch["x"], batch["y"], batch["y"].argmax(-1)
out = {}
def numpy(v):
    return np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64)
def fresh():
    model = build_cnn(SHAPE, K)
    model.load_weights(f"{folder}/init.weights.h5")
    return model, [numpy(v) for v in model.trainable_variables]
def grads(model, w0):
    return [(w - numpy(v)) / LR for w, v in zip(w0, model.trainable_variables)]
for name, kwargs in params.items():
    model, w0 = fresh()
    wrapper = gk.ObjectiveModel(model, name, seed=3, **kwargs)
    wrapper.compile(optimizer=keras.optimizers.SGD(LR))
    out[f"{name}/fit_loss"] = wrapper.train_on_batch(x, y, return_dict=True)["loss"]
    for i, g in enumerate(grads(model, w0)):
        out[f"{name}/fit_grad/{i}"] = g
    if name == "noise_augmented":  # what step 0 of seed 3 adds, for the reference
        out["noise"] = numpy(shim.training_noise(x.shape, kwargs["train_noise_sigma"], 3, 0))
    model, w0 = fresh()  # integer labels train the same
    wrapper = gk.ObjectiveModel(model, name, seed=3, **kwargs)
    wrapper.compile(optimizer=keras.optimizers.SGD(LR))
    out[f"{name}/int_loss"] = wrapper.train_on_batch(x, labels, return_dict=True)["loss"]
    model, w0 = fresh()  # the engine's step on this backend
    optimizer = keras.optimizers.SGD(LR)
    if backend == "tensorflow":
        from gradloss.engines.tf_engine import make_step
        loss, _ = make_step(model, optimizer, name, kwargs, seed=3)(x, y)
        out[f"{name}/engine_loss"], engine = float(loss), grads(model, w0)
    elif backend == "jax":
        import jax
        from gradloss.engines.jax_engine import make_step, read_state
        step = jax.jit(make_step(model, optimizer, name, params=kwargs, seed=3))
        state, loss, _ = step(read_state(model, optimizer), x, y)
        out[f"{name}/engine_loss"] = float(loss)
        engine = [(w - np.asarray(v, np.float64)) / LR for w, v in zip(w0, state[0])]
    else:
        engine = []
    for i, g in enumerate(engine):
        out[f"{name}/engine_grad/{i}"] = g
# fit trains: the loss falls over a few epochs on a learnable task
rng = np.random.default_rng(0)
xs = rng.uniform(0, 0.5, (64, *SHAPE)).astype("float32")
ys = rng.integers(0, K, 64)
xs[np.arange(64), ys * 2, :, 0] += 0.5
for name in ("gradient", "baseline"):
    keras.utils.set_random_seed(0)
    wrapper = gk.ObjectiveModel(build_cnn(SHAPE, K), name)
    wrapper.compile(optimizer=keras.optimizers.Adam(1e-2))
    out[f"{name}/history"] = wrapper.fit(xs, ys, epochs=4, batch_size=16, verbose=0).history["loss"]
# saved and loaded (safe mode), it predicts like the plain model it wraps
wrapper.save(f"{folder}/{backend}.keras")
loaded = keras.models.load_model(f"{folder}/{backend}.keras")
out["loaded_type"] = type(loaded).__name__ + ":" + loaded.objective
out["plain"] = numpy(wrapper.model.predict(xs, verbose=0))
out["loaded"] = numpy(loaded.predict(xs, verbose=0))
out["loaded_inner"] = numpy(loaded.model.predict(xs, verbose=0))
np.savez(f"{folder}/{backend}.npz", **out)
""" % (LR, SHAPE, K)


def _relative(a, b) -> float:
    a, b = np.concatenate([np.ravel(v) for v in a]), np.concatenate([np.ravel(v) for v in b])
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _reference(model: keras.Model, name: str, x, y) -> tuple[float, list[np.ndarray]]:
    """Loss and weight gradients by TensorFlow tapes written out here, apart from the library."""
    variables = model.trainable_variables
    x, y = tf.constant(x), tf.constant(y)
    with tf.GradientTape() as outer:
        if name == "gradient":  # the seed's definition: x and y both taped, inner tape
            loss = gradient_loss(lambda xy: tf.reduce_mean(
                tf.square(xy[1] - model(xy[0], training=True)), -1))([x, y])
        elif name == "mse":
            loss = tf.reduce_mean(tf.square(y - model(x, training=True)))
        elif name == "input_gradient":  # double backpropagation with nested tapes
            with tf.GradientTape() as inner:
                inner.watch(x)
                ce = keras.losses.categorical_crossentropy(y, model(x, training=True))
                total = tf.reduce_sum(ce)
            dx = inner.gradient(total, x)
            loss = tf.reduce_mean(ce) + PARAMS[name]["penalty_weight"] * tf.reduce_mean(
                tf.reduce_sum(tf.square(dx), axis=(1, 2, 3)))
        else:  # baseline; noise_augmented is the baseline at the noisy x
            loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, model(x, training=True)))
    grads = outer.gradient(loss, variables)
    return float(loss), [g.numpy().astype(np.float64) for g in grads]


def _backends() -> list:
    torch = subprocess.run([sys.executable, "-c", "import torch"],
                           capture_output=True).returncode == 0
    return ["tensorflow", "jax", pytest.param("torch", marks=pytest.mark.skipif(
        not torch, reason="torch not installed"))]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Initial weights and one batch, written by this (TensorFlow) process."""
    folder = tmp_path_factory.mktemp("keras_fit")
    keras.utils.set_random_seed(1)
    build_cnn(SHAPE, K).save_weights(folder / "init.weights.h5")
    rng = np.random.default_rng(2)
    np.savez(folder / "batch.npz", x=rng.uniform(0, 1, (B, *SHAPE)).astype("float32"),
             y=np.eye(K, dtype="float32")[rng.integers(0, K, B)])
    return folder


@pytest.mark.parametrize("backend", _backends())
def test_fit_agrees_with_the_double_tape_and_the_engines_and_saves(folder, backend):
    """Check on one backend: every objective's fit loss and weight gradients equal the taped
    reference (relative error < 1e-5) and the engine's step, integer labels train the same,
    fit lowers the loss, and the saved model loads (safe mode) and predicts like the plain one."""
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", STEP, str(folder), json.dumps(PARAMS)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(folder / f"{backend}.npz")
    batch = np.load(folder / "batch.npz")
    model = build_cnn(SHAPE, K)
    model.load_weights(folder / "init.weights.h5")
    n_vars = len(model.trainable_variables)
    for name in PARAMS:
        x = batch["x"] + out["noise"] if name == "noise_augmented" else batch["x"]
        loss, grads = _reference(model, name, x.astype("float32"), batch["y"])
        fit = [out[f"{name}/fit_grad/{i}"] for i in range(n_vars)]
        assert abs(out[f"{name}/fit_loss"] - loss) <= RTOL * abs(loss), name
        assert _relative(fit, grads) < RTOL, (name, _relative(fit, grads))
        assert abs(out[f"{name}/int_loss"] - out[f"{name}/fit_loss"]) <= RTOL * abs(loss), name
        if backend != "torch":  # gradloss's engines train on TensorFlow and JAX
            engine = [out[f"{name}/engine_grad/{i}"] for i in range(n_vars)]
            assert abs(out[f"{name}/engine_loss"] - loss) <= RTOL * abs(loss), name
            assert _relative(engine, fit) < RTOL, (name, _relative(engine, fit))
    for name in ("gradient", "baseline"):
        history = out[f"{name}/history"]
        assert history[-1] < history[0], (name, history)
    assert str(out["loaded_type"]) == "ObjectiveModel:baseline"
    np.testing.assert_allclose(out["loaded"], out["plain"], atol=1e-6)
    np.testing.assert_allclose(out["loaded_inner"], out["plain"], atol=1e-6)


def test_objective_parameters_are_checked_where_they_enter():
    """Check that a bad objective or parameter is refused in the one message shape."""
    import gradloss.keras as gk

    model = build_cnn(SHAPE, K)
    with pytest.raises(ValueError, match="The 'objective' parameter of ObjectiveModel must be"):
        gk.ObjectiveModel(model, "hinge")
    with pytest.raises(ValueError, match="The 'train_noise_sigma' parameter of NoiseAugmentation "
                                         r"must be a float in the range \[0.0, 1.0\]. Got 2"):
        gk.NoiseAugmentation(model, train_noise_sigma=2.0)
    with pytest.raises(ValueError, match="The 'penalty_weight' parameter of GradientLoss must be "
                                         "None for objective 'gradient'"):
        gk.GradientLoss(model, penalty_weight=0.1)
    from gradloss.objectives import LAMBDA_STAR_28x28x1_10
    penalty = gk.MSEPenalty(model)  # the MSE family, at the gradient loss's own weight
    assert (penalty.objective, penalty.params) == (
        "mse_penalty", {"penalty_weight": LAMBDA_STAR_28x28x1_10})
    assert gk.MSEPenalty(model, penalty_weight=0.3).params == {"penalty_weight": 0.3}


def test_logits_models_train_on_their_softmax():
    """Check that from_logits=True predicts the softmax of a logits model and the losses use it."""
    import gradloss.keras as gk

    keras.utils.set_random_seed(0)
    logits = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(K)])
    wrapper = gk.GradientLoss(logits, from_logits=True)
    x = np.random.default_rng(0).uniform(0, 1, (4, *SHAPE)).astype("float32")
    p = keras.ops.convert_to_numpy(wrapper(x))
    np.testing.assert_allclose(p, keras.ops.convert_to_numpy(keras.ops.softmax(logits(x))),
                               rtol=1e-6)
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
