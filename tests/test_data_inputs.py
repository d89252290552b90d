"""The Train page's dataset and architecture pickers (gradloss.ui.panels.data_inputs), with AppTest:
files in the store are offered by name, a model that does not fit the data is refused in red,
and a run queued on them names both by hash."""
from pathlib import Path

import keras
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gradloss.architectures import file_hash
from gradloss.data import describe, upload_bytes
from gradloss.service import tasks
from gradloss.service.store import Store
from test_pages import home  # noqa: F401  (fixture: an empty home, no worker, no Fashion-MNIST)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stored(home) -> dict:
    """A colour .npz and a .keras model for it, uploaded to the store as the panel does."""
    rng = np.random.default_rng(0)
    path = home / "colour.npz"
    np.savez(path, x_train=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(40) % 5, x_test=rng.integers(0, 256, (15, 32, 32, 3), np.uint8),
             y_test=np.arange(15) % 5)
    info = describe(path)
    store = Store.default()
    store.files.put(info.sha256, "dataset", info.name, upload_bytes(info),
                    {**info.to_dict(), "path": None})
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="softmax")])
    model.save(home / "flat.keras")
    sha = file_hash(home / "flat.keras")
    store.files.put(sha, "architecture", "flat.keras", (home / "flat.keras").read_bytes(), {})
    return {"dataset": info, "architecture": f"flat.keras@{sha[:12]}", "sha": sha}


def _train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=300)
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_stored_files_are_offered_and_a_run_on_them_names_both_by_hash(stored):
    """Check that the uploaded dataset and model are offered, described (sizes, scaling), and
    that a queued run trains on their hashes."""
    info = stored["dataset"]
    at = _train_page()
    assert info.label in at.selectbox(key="dataset").options
    at.selectbox(key="dataset").set_value(info.label).run()
    assert "40 training and 15 test images of 32×32×3, 5 classes; pixels uint8 0..255 divided " \
           "by 255" in "\n".join(c.value for c in at.caption)
    at.selectbox(key="architecture").set_value(stored["architecture"]).run()
    assert not at.error, [e.value for e in at.error]
    at.multiselect(key="objectives").set_value(["baseline"]).run()
    at.number_input(key=f"batch_baseline_{info.label}").set_value(10)
    at.number_input(key="epochs_baseline").set_value(1)
    at.get("form_submit_button")[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [run] = Store.default().runs.list()
    assert (run.dataset, run.config.dataset_hash, run.config.architecture_hash) == (
        info.label, info.sha256, stored["sha"])
    assert run.architecture == stored["architecture"]
    assert tasks.queue_for()[0].pending_count() == 1


def test_a_model_that_does_not_fit_the_data_is_refused_in_red_and_nothing_can_be_queued(stored):
    """Check that the 32x32x3 model picked for 28x28x1 digits shows why in red and disables
    both Queue buttons."""
    at = _train_page()
    at.selectbox(key="dataset").set_value("digits").run()
    at.selectbox(key="architecture").set_value(stored["architecture"]).run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "takes inputs shaped (32, 32, 3) but the dataset's images are (28, 28, 1)" in error
    assert all(button.disabled for button in at.get("form_submit_button"))
