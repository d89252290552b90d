"""The architectures: the built-in registry sized from the data, a user's .keras file (fresh
seeded weights or its own, loaded in safe mode), and a clear message for every model that cannot
be used, from the library, the child check and the CLI (exit 2, nothing queued)."""
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from gradloss.architectures import describe_architecture
from gradloss.core.config import ARCHITECTURES, TrainConfig
from gradloss.core.errors import InputFileError
from gradloss.models import build_model, user
from gradloss.models.builtin import build

REPO = Path(__file__).resolve().parents[1]
SHAPE, K = (32, 32, 3), 5


def small_net(outputs=K, activation="softmax", shape=SHAPE):
    """A functional model not in the registry: strided conv, global max pooling, dense."""
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(x))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """.keras files: a good one, and one for each way a model file can be refused."""
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(7)
    paths = {"good": folder / "good.keras", "logits": folder / "logits.keras",
             "seven": folder / "seven.keras", "small_input": folder / "small_input.keras",
             "lambda": folder / "lambda.keras", "not_keras": folder / "not_keras.keras",
             "custom": folder / "custom.keras"}
    small_net().save(paths["good"])
    small_net(activation=None).save(paths["logits"])
    small_net(outputs=7).save(paths["seven"])
    small_net(shape=(28, 28, 1)).save(paths["small_input"])
    keras.Sequential([keras.Input(SHAPE), keras.layers.Lambda(lambda t: t * 2),
                      keras.layers.Flatten(), keras.layers.Dense(K, activation="softmax")]
                     ).save(paths["lambda"])
    paths["not_keras"].write_text("a text file")
    # A layer class of the writer's own: the file names it, no reader has its code.
    writer = (
        "import keras, sys\n"
        "@keras.saving.register_keras_serializable(package='mine')\n"
        "class Double(keras.layers.Layer):\n"
        "    def call(self, x): return 2 * x\n"
        "m = keras.Sequential([keras.Input((32, 32, 3)), Double(), keras.layers.Flatten(),\n"
        "                      keras.layers.Dense(5, activation='softmax')])\n"
        "m.save(sys.argv[1])\n")
    subprocess.run([sys.executable, "-c", writer, str(paths["custom"])], check=True,
                   env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True)
    return paths


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("shape,classes", [((32, 32, 3), 5), ((28, 28, 1), 10), ((20, 24, 1), 2)])
def test_every_builtin_is_sized_from_the_data_and_outputs_probabilities(name, shape, classes):
    """Check that each registry architecture takes the dataset's images, gives K probabilities."""
    model = build(name, shape, classes)
    x = np.random.default_rng(0).uniform(0, 1, (3, *shape)).astype("float32")
    p = keras.ops.convert_to_numpy(model(x))
    assert p.shape == (3, classes) and np.allclose(p.sum(-1), 1, atol=1e-5)


def test_the_reference_cnn_is_built_as_before_for_a_config_without_an_architecture():
    """Check that a default config's model has exactly the weights the seed always gave it."""
    from gradloss.models import build_cnn

    keras.utils.set_random_seed(3)
    before = build_cnn((28, 28, 1), 10).get_weights()
    now = build_model(TrainConfig(dataset="digits", seed=3), (28, 28, 1), 10).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, now))


def test_a_user_file_trains_with_fresh_seeded_weights_or_its_own(files):
    """Check that a .keras architecture gets fresh weights from the seed by default (the same for
    one seed, other for another, never the file's) and the file's own with initial_weights."""
    sha = "a" * 64
    fields = {"dataset": "my.npz", "dataset_hash": "b" * 64, "dataset_size": 40, "batch_size": 10,
              "architecture": "good.keras", "architecture_hash": sha}
    own = user.load(files["good"]).get_weights()

    def weights(**extra):
        config = TrainConfig(**fields, **extra)
        return build_model(config, SHAPE, K, str(files["good"])).get_weights()

    a, b, c = weights(seed=0), weights(seed=0), weights(seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], own[0])
    started = weights(seed=0, initial_weights=True)
    assert all(np.array_equal(x, y) for x, y in zip(started, own))


def test_a_logits_file_trains_through_an_appended_softmax(files):
    """Check that from_logits=True gives a model whose outputs are probabilities."""
    config = TrainConfig(dataset="my.npz", dataset_hash="b" * 64, dataset_size=40, batch_size=10,
                         architecture="logits.keras", architecture_hash="c" * 64, from_logits=True)
    model = build_model(config, SHAPE, K, str(files["logits"]))
    p = keras.ops.convert_to_numpy(model(np.zeros((2, *SHAPE), "float32")))
    assert np.allclose(p.sum(-1), 1, atol=1e-5)


@pytest.mark.parametrize("name,message", [
    ("not_keras", "is not a Keras model file: a .keras file is a zip archive"),
    ("lambda", "needs custom code to load .*Lambda.*which gradloss never runs"),
    ("custom", "needs custom code to load .*which gradloss never runs"),
    ("seven", r"outputs \(7,\) per image but the dataset has 5 classes; allowed: one output of 5"),
    ("small_input", r"takes inputs shaped \(28, 28, 1\) but the dataset's images are "
                    r"\(32, 32, 3\)"),
    ("logits", "outputs values that are not class probabilities .* allowed: a model ending in a "
               "softmax, or one that outputs logits with --logits"),
])
def test_unusable_model_files_are_refused_naming_the_file_and_what_is_allowed(files, name, message):
    """Check each refusal in this process, through the library's load and check."""
    with pytest.raises(InputFileError, match=message) as err:
        user.check(user.load(files[name]), files[name], SHAPE, K)
    assert str(files[name]) in str(err.value)


def test_the_submission_check_runs_in_a_child_and_says_why(files):
    """Check that describe_architecture (what the CLI and dashboard call) gives the good file's
    summary and hash, and the child's reason for a bad one; a too-small image for the CNN too."""
    info = describe_architecture(files["good"], SHAPE, K)
    assert info.name == "good.keras" and len(info.sha256) == 64
    assert info.summary["outputs"] == K and info.summary["probabilities"]
    with pytest.raises(InputFileError, match="needs custom code"):
        describe_architecture(files["custom"], SHAPE, K)
    assert describe_architecture(files["logits"], SHAPE, K, from_logits=True).summary[
        "probabilities"] is False
    with pytest.raises(InputFileError, match="needs images of at least 10x10 pixels.*Allowed: "
                                             "mlp, resnet"):
        describe_architecture("cnn", (8, 8, 1), 3)
    with pytest.raises(InputFileError, match="No architecture 'vgg'"):
        describe_architecture("vgg", SHAPE, K)


def _cli(*args, home):
    env = {**os.environ, "GRADLOSS_HOME": str(home), "PYTHONPATH": str(REPO),
           "KERAS_BACKEND": "tensorflow"}
    return subprocess.run([sys.executable, "-m", "gradloss", *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=home)


def test_the_cli_exits_2_on_a_bad_dataset_or_model_and_queues_nothing(files, tmp_path):
    """Check that `train --submit` with a bad .npz or a model needing custom code prints the
    reason, exits 2 and leaves the store without a run."""
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 8, 8)), y_train=np.zeros(4))
    result = _cli("train", "--dataset", str(bad), "--submit", home=tmp_path)
    assert result.returncode == 2 and "lacks x_test, y_test" in result.stderr, result.stderr
    rng = np.random.default_rng(0)
    good = tmp_path / "good.npz"
    np.savez(good, x_train=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(10) % K, x_test=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
             y_test=np.arange(5))
    result = _cli("train", "--dataset", str(good), "--architecture", str(files["lambda"]),
                  "--batch-size", "5", "--submit", home=tmp_path)
    assert result.returncode == 2 and "needs custom code" in result.stderr, result.stderr
    result = _cli("train", "--dataset", str(good), "--initial-weights", "--batch-size", "5",
                  "--submit", home=tmp_path)
    assert result.returncode == 2 and "'initial_weights' parameter" in result.stderr
    from gradloss.service.store import Store
    assert Store(tmp_path / "runs.sqlite").runs.list() == []
