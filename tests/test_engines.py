"""The engines agree: TensorFlow here, JAX in a subprocess (the Keras backend is fixed per process).

Both sides start from the same weights (a .weights.h5 file in tmp_path) and the same batch. The
JAX side writes what it computed to an .npz file that this, the TensorFlow, process compares.
Skipped where jax is not installed.
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

from gradloss.core.config import TrainConfig
from gradloss.data import load_dataset
from gradloss.engines.tf_engine import TensorFlowEngine
from gradloss.objectives import losses
from gradloss.engines.compiled import predict
from gradloss.models import build_cnn
from gradloss.training.loop import load_model

REPO = Path(__file__).resolve().parents[1]
# float32 on both sides; measured differences are ~1e-7 relative on the loss and ~2e-6 of each
# variable's largest gradient, so these leave a wide margin while still catching a wrong formula.
LOSS_RTOL = 1e-5
GRAD_RTOL, GRAD_ATOL_OF_MAX = 1e-4, 1e-4  # atol = GRAD_ATOL_OF_MAX * max |gradient| per variable
# After 3 Adam steps (lr 1e-3, each moving a weight by up to ~lr) weights differed by <= 5e-7;
# 2e-5 is 2 % of one step: a sign flip of any gradient entry between the engines would show.
WEIGHT_ATOL = 2e-5

# Runs under KERAS_BACKEND=jax. argv: folder with init.weights.h5 and batch.npz, objective.
JAX_GRADIENTS = """
import json, sys, numpy as np
from gradloss.models import build_cnn
from gradloss.engines.jax_engine import JaxEngine, make_value_and_grad
import keras
folder, objective, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = build_cnn()
model.load_weights(f"{folder}/init.weights.h5")
batch = np.load(f"{folder}/batch.npz")
weights = [v.value for v in model.trainable_variables]
loss, grads = make_value_and_grad(model, objective, params=params)(weights, [], batch["x"], batch["y"])
nested_loss, nested_grads = make_value_and_grad(model, objective, nested=True, params=params)(
    weights, [], batch["x"], batch["y"])  # the definition: jax.grad of jax.grad
steps = {}
if "train_noise_sigma" in params:  # seeded noise: the same losses twice, other than without noise
    for i in range(2):
        model.load_weights(f"{folder}/init.weights.h5")
        engine = JaxEngine(model, keras.optimizers.Adam(), objective, seed=3,
                           params={"train_noise_sigma": 0.3})
        steps[f"noisy_{i}"] = engine.run_steps(batch["xs"], batch["ys"])[0]
for loop in (False, True):  # step by step (CPU default) and one compiled loop (GPU default)
    model.load_weights(f"{folder}/init.weights.h5")
    optimizer = keras.optimizers.Adam()
    engine = JaxEngine(model, optimizer, objective, compiled_loop=loop, params=params)
    engine.chunk_steps = 2  # 3 steps: one full chunk and one short (padded) one
    losses, correct = engine.run_steps(batch["xs"], batch["ys"])
    engine.sync_to_model()
    steps.update({f"losses_{loop}": losses, f"correct_{loop}": correct,
                  f"iterations_{loop}": np.asarray(optimizer.iterations.value)})
    steps.update({f"weight_{loop}_{i}": np.asarray(v.value)
                  for i, v in enumerate(model.trainable_variables)})
np.savez(f"{folder}/jax.npz", loss=np.float64(loss), nested_loss=np.float64(nested_loss), **steps,
         **{f"grad_{i}": np.asarray(g) for i, g in enumerate(grads)},
         **{f"nested_grad_{i}": np.asarray(g) for i, g in enumerate(nested_grads)})
"""

# Runs under KERAS_BACKEND=jax. argv: run folder, TrainConfig as JSON. Trains, keeps the model
# as first.keras, then calls train() again: it resumes from the last checkpoint with nothing
# left to run, so its model comes from the engine's state as read from the restored variables.
JAX_TRAIN = """
import json, shutil, sys
from gradloss.core.config import TrainConfig
from gradloss.training.loop import train
config, run_dir = TrainConfig.from_dict(json.loads(sys.argv[2])), sys.argv[1]
result = train(config, run_dir)
shutil.copy(result.model_path, f"{run_dir}/first.keras")
again = train(config, run_dir)
print(json.dumps({"status": result.status, "device": result.device, "final": result.final.to_dict(),
                  "model_path": str(result.model_path), "again_epochs": again.epochs_done}))
"""


def _run_jax(script: str, *args: str, timeout: int = 600) -> str:
    """Run `script` in a fresh Python with Keras on JAX; return its stdout."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "JAX_DEFAULT_MATMUL_PRECISION": "highest",  # no TF32 on GPUs: compare true float32
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"JAX side failed:\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300, seed=0)


@pytest.fixture
def full_float32():
    """TensorFlow without TF32 (it matters on GPUs only): the engines compare in float32."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


def _tf_loss_and_grads(model, x, y, objective, params):
    with tf.GradientTape() as tape:
        loss, _ = losses.loss_function(objective, params)(losses.on_model(model), tf.constant(x),
                                                          tf.constant(y))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [g.numpy() for g in grads]


# noise_augmented with sigma 0 here: the two engines draw noise from different generators; the
# noise itself is checked for repeatability on each engine (here and in test_engine_tf.py).
PARAMS = {"gradient": {}, "baseline": {}, "noise_augmented": {"train_noise_sigma": 0.0},
          "input_gradient": {"penalty_weight": 1.0}, "mse": {},
          "mse_penalty": {"penalty_weight": 0.5}}


@pytest.mark.parametrize("objective", list(PARAMS))
def test_jax_engine_matches_tensorflow_loss_gradients_and_steps(objective, digits, tmp_path,
                                                                full_float32):
    """Check that from the same weights both engines give the same loss, weight gradients and steps."""
    params = PARAMS[objective]
    keras.utils.set_random_seed(0)
    model = build_cnn()
    model.save_weights(tmp_path / "init.weights.h5")
    x, y = digits.x_train[:32], digits.y_train[:32]
    xs = digits.x_train[:96].reshape(3, 32, 28, 28, 1)  # three steps for the engines
    ys = digits.y_train[:96].reshape(3, 32, 10)
    np.savez(tmp_path / "batch.npz", x=x, y=y, xs=xs, ys=ys)

    _run_jax(JAX_GRADIENTS, str(tmp_path), objective, json.dumps(params))
    jax_out = np.load(tmp_path / "jax.npz")

    loss, grads = _tf_loss_and_grads(model, x, y, objective, params)
    for form in ("", "nested_"):  # as the engine trains, and the nested jax.grad definition
        assert float(jax_out[f"{form}loss"]) == pytest.approx(loss, rel=LOSS_RTOL)
        for i, (variable, grad) in enumerate(zip(model.trainable_variables, grads)):
            np.testing.assert_allclose(jax_out[f"{form}grad_{i}"], grad, rtol=GRAD_RTOL,
                                       atol=GRAD_ATOL_OF_MAX * np.abs(grad).max(),
                                       err_msg=f"{form}gradient of {variable.path}")

    optimizer = keras.optimizers.Adam()
    engine = TensorFlowEngine(model, optimizer, objective, params)
    losses, correct = engine.run_steps(xs, ys)
    engine.sync_to_model()
    if "train_noise_sigma" in params:
        np.testing.assert_array_equal(jax_out["noisy_0"], jax_out["noisy_1"])
        assert not np.allclose(jax_out["noisy_0"], losses)
    for loop in (False, True):
        np.testing.assert_allclose(jax_out[f"losses_{loop}"], losses, rtol=LOSS_RTOL)
        np.testing.assert_array_equal(jax_out[f"correct_{loop}"], correct)
        assert int(jax_out[f"iterations_{loop}"]) == 3 == int(optimizer.iterations.numpy())
        for i, variable in enumerate(model.trainable_variables):
            np.testing.assert_allclose(jax_out[f"weight_{loop}_{i}"], variable.numpy(),
                                       atol=WEIGHT_ATOL, rtol=0,
                                       err_msg=f"{variable.path} after 3 steps, loop={loop}")


# Runs under KERAS_BACKEND=jax. argv: folder with init.weights.h5 and batch.npz. The gradient
# loss (as the engine trains it, forward-over-reverse, and its nested definition) and the MSE
# family at lambda* = K^2 / (4 D).
JAX_FAMILY = """
import sys, numpy as np
from gradloss.models import build_cnn
from gradloss.engines.jax_engine import make_value_and_grad
from gradloss.objectives.losses import gradient_equivalent_weight
folder = sys.argv[1]
model = build_cnn()
model.load_weights(f"{folder}/init.weights.h5")
batch = np.load(f"{folder}/batch.npz")
weights = [v.value for v in model.trainable_variables]
star = gradient_equivalent_weight(10, 28 * 28)
out = {}
for name, objective, params, nested in (("hvp", "gradient", {}, False),
                                        ("nested", "gradient", {}, True),
                                        ("family", "mse_penalty", {"penalty_weight": star}, True)):
    loss, grads = make_value_and_grad(model, objective, nested=nested, params=params)(
        weights, [], batch["x"], batch["y"])
    out[f"{name}_loss"] = np.float64(loss)
    out.update({f"{name}_{i}": np.asarray(g) for i, g in enumerate(grads)})
np.savez(f"{folder}/family.npz", **out)
"""


def test_the_gradient_loss_is_the_mse_family_at_lambda_star_on_both_engines(digits, tmp_path):
    """Check the identity on the reference CNN in float32, on TensorFlow and on JAX (both its
    forward-over-reverse training path and its nested definition): at lambda* = K^2/(4D) the
    MSE family's value and weight gradients are the gradient loss's times K^2/4 = 25."""
    from gradloss.models import build_cnn
    from gradloss.objectives.losses import gradient_equivalent_weight

    keras.utils.set_random_seed(5)
    model = build_cnn()
    model.save_weights(tmp_path / "init.weights.h5")
    x, y = digits.x_train[:16], digits.y_train[:16]
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    star = gradient_equivalent_weight(10, 28 * 28)
    g_loss, g_grads = _tf_loss_and_grads(model, x, y, "gradient", {})
    f_loss, f_grads = _tf_loss_and_grads(model, x, y, "mse_penalty", {"penalty_weight": star})
    assert f_loss == pytest.approx(25 * g_loss, rel=LOSS_RTOL)
    for f, g in zip(f_grads, g_grads):
        np.testing.assert_allclose(f, 25 * g, rtol=GRAD_RTOL, atol=GRAD_ATOL_OF_MAX * np.abs(f).max())
    _run_jax(JAX_FAMILY, str(tmp_path))
    jax_out = np.load(tmp_path / "family.npz")
    for form in ("hvp", "nested"):
        assert float(jax_out["family_loss"]) == pytest.approx(25 * float(jax_out[f"{form}_loss"]),
                                                              rel=LOSS_RTOL)
        for i in range(len(g_grads)):
            family = jax_out[f"family_{i}"]
            np.testing.assert_allclose(family, 25 * jax_out[f"{form}_{i}"], rtol=GRAD_RTOL,
                                       atol=GRAD_ATOL_OF_MAX * np.abs(family).max())


def test_jax_engine_trains_and_saves_a_model_tensorflow_loads(digits, tmp_path):
    """Check that a short JAX run learns and its saved model predicts the same under TensorFlow."""
    config = TrainConfig(objective="gradient", dataset="digits", epochs=3, batch_size=32,
                         train_size=300, seed=3, engine="jax")
    out = json.loads(_run_jax(JAX_TRAIN, str(tmp_path), json.dumps(config.to_dict()))
                     .strip().splitlines()[-1])
    assert out["status"] == "done" and out["device"]  # "CPU" or the GPU's name
    assert out["final"]["test_accuracy"] > 0.5  # chance is 0.1
    model = load_model(out["model_path"])
    acc = np.mean(predict(model, digits.x_test).argmax(-1) == digits.y_test.argmax(-1))
    # the test set is always whole, as in train(); allow one or two borderline images to flip
    assert acc == pytest.approx(out["final"]["test_accuracy"], abs=2 / len(digits.x_test))
    # the resumed engine started from the checkpoint: same weights, saved again
    assert out["again_epochs"] == config.epochs
    first = load_model(tmp_path / "first.keras")
    for before, after in zip(first.weights, model.weights):
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    # the checkpoint holds the engine's optimizer state, written back by sync_to_model
    with np.load(tmp_path / "checkpoint" / "optimizer.npz") as saved:
        assert int(saved["arr_0"]) == 3 * (300 // 32)  # Adam's iteration count
