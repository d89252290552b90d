"""End to end through a real worker and the dashboard: experiments (2 objectives x 3 seeds) on a
colour .npz made here with a user's .keras architecture that is not in the registry (TensorFlow,
one training process per run), and on an image folder made here (JAX, the seeds of an arm as one
seed batch). The user's files are deleted once submitted: the worker trains from the store's
copies, by hash. Tiny on purpose: a few dozen images, one epoch, a two-sigma sweep."""
import json
import re
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from gradloss.architectures import describe_architecture
from gradloss.core.config import SweepConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.data import describe
from gradloss.service import client
from gradloss.service.store import Store

from _worker_helpers import kill_all, start_consumer, wait_for

TIMEOUT = 1200  # 8 training processes on 2 shared cores, TensorFlow and JAX imports included
SWEEP = SweepConfig(sigmas=(0.0, 0.1), draws=1)


def colour_npz(path, k=5):
    """32x32x3 uint8 images, 5 classes, a bright stripe per class so that one epoch learns a bit."""
    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % k
        x = rng.integers(0, 80, (n, 32, 32, 3), dtype=np.uint8)
        for i, c in enumerate(y):
            x[i, 6 * c:6 * c + 6, :, c % 3] = 250
        return x, y

    (x_train, y_train), (x_test, y_test) = split(40), split(15)
    np.savez(path, x_train=x_train, y_train=np.eye(k)[y_train], x_test=x_test, y_test=y_test)
    return path


def image_folder(root, classes=("circle", "cross", "square"), n=8):
    """Greyscale 16x16 PNGs, one sub-folder per class."""
    rng = np.random.default_rng(1)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 60, (16, 16), dtype=np.uint8)
            pixels[:, 5 * k:5 * k + 5] = 255
            Image.fromarray(pixels, "L").save(root / name / f"{i}.png")
    return root


def user_model(path):
    """An architecture the registry does not have: strided convolution, global max pooling."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalMaxPooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x)).save(path)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.setenv("GRADLOSS_NO_LOCAL_WORKER", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # AppTest, as test_pages
    return tmp_path


def test_experiments_on_own_data_and_model_run_through_the_worker_and_read_on_the_dashboard(home):
    """Check that both experiments end with every run done on the submitted content (dataset
    labels with their hash, the user's architecture), with sweeps stored, and that the
    Robustness page summarises each over its 3 seeds naming its dataset and architecture."""
    inputs = home / "inputs"
    inputs.mkdir()
    npz, folder = colour_npz(inputs / "colour.npz"), image_folder(inputs / "shapes")
    net = user_model(inputs / "net.keras")
    colour, shapes = describe(npz), describe(folder)
    architecture = describe_architecture(net, colour.shape, colour.classes)
    protocol = {"arms": ("gradient", "baseline"), "seeds": 3, "epochs": 1, "sweep": SWEEP}
    on_npz = ExperimentConfig(**protocol, **colour.config_fields(), **architecture.config_fields(),
                              batch_size=10)
    on_folder = ExperimentConfig(**protocol, **shapes.config_fields(), architecture="mlp",
                                 batch_size=6, engine="jax")
    first = client.submit_experiment(on_npz, data_dir=colour.path,
                                     architecture_path=architecture.path)
    second = client.submit_experiment(on_folder, data_dir=shapes.path)
    shutil.rmtree(inputs)  # from here on only the store holds the user's files

    store = Store.default()
    consumer = start_consumer(home, GRADLOSS_SEED_BATCH="on")
    try:
        runs = lambda: store.runs.of_experiment(first) + store.runs.of_experiment(second)  # noqa: E731
        wait_for(lambda: all(r.finished for r in runs()), TIMEOUT, "both experiments",
                 explain=lambda: "\n".join(f"{r.run_id} {r.status} {r.error}" for r in runs())
                 + "\n" + (home / "worker.log").read_text()[-4000:])
    finally:
        kill_all([consumer])
    for run in runs():
        assert run.status == "done", (run.run_id, run.error)
        sweep = store.results.robustness(run.run_id)
        assert sorted(sweep.sigma) == [0.0, 0.1] and sweep.accuracy.between(0, 1).all()
    npz_runs, folder_runs = store.runs.of_experiment(first), store.runs.of_experiment(second)
    assert {r.dataset for r in npz_runs} == {f"colour.npz@{colour.sha256[:12]}"}
    assert {r.architecture for r in npz_runs} == {f"net.keras@{architecture.sha256[:12]}"}
    assert {r.dataset for r in folder_runs} == {f"shapes@{shapes.sha256[:12]}"}
    assert {r.architecture for r in folder_runs} == {"mlp"}
    assert {r.engine for r in folder_runs} == {"jax"} and {r.engine for r in npz_runs} == \
        {"tensorflow"}
    assert [f["name"] for f in store.files.list()].count("net.keras") == 1

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard.py"),
                           default_timeout=120)
    at.switch_page("app_pages/robustness.py")
    at.run()
    for experiment_id, dataset, model in ((second, "shapes@", "mlp"),
                                          (first, "colour.npz@", "net.keras@")):
        at.selectbox(key="experiment").set_value(experiment_id).run()
        assert not at.exception, at.exception
        [label] = [o for o in at.selectbox(key="experiment").options if dataset in o]
        assert model in label and "× 3 seeds" in label
        text = "\n".join(str(m.value) for m in at.markdown)
        assert re.search(r"At σ = 0\.1, .*3 seeds[;)]", text), text
        table = at.dataframe[0].value
        assert sorted(table.arm) == ["baseline (cross-entropy)", "gradient loss"]  # arm labels
        assert set(table["seeds"]) == {3}
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"], "the experiment's curves are drawn"
