"""Your own data (gradloss.data with a .npz or an image folder) and the Keras datasets by name:
shapes, scaling, hashing, the stated split, and a clear message for every bad input."""
import pickle
import sys
import types

import numpy as np
import pytest
from PIL import Image

from gradloss.core.config import TrainConfig
from gradloss.core.errors import DataError, InputFileError, InvalidParameterError
from gradloss.data import describe, load_dataset, upload_bytes
from gradloss.data.files import FOLDER_TEST_FRACTION, read_npz


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch, tmp_path_factory):
    """No GRADLOSS_DATA_DIR and an empty Keras cache, so nothing real is found or downloaded."""
    monkeypatch.delenv("GRADLOSS_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))


def colour_arrays(n_train=40, n_test=15, k=5, seed=0):
    """uint8 32x32x3 images with integer labels, every class present."""
    rng = np.random.default_rng(seed)
    y_train, y_test = np.arange(n_train) % k, rng.integers(0, k, n_test)
    return {"x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
            "y_train": y_train, "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
            "y_test": y_test}


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def write_folder(root, sizes=None, n=5, mode="L", classes=("cat", "dog")):
    """One sub-folder per class with n images each (sizes[name]: that class's image size)."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        h, w = (sizes or {}).get(name, (20, 24))
        for i in range(n):
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / name / f"{i}.png")
    return root


def test_a_colour_npz_loads_scaled_with_one_hot_labels_and_its_hash(tmp_path):
    """Check that a 32x32x3, 5-class .npz loads as float32 in [0, 1] with one-hot labels, and that
    describe reads its shape, classes, sizes, scaling and hash as the loader sees them."""
    arrays = colour_arrays()
    path = write_npz(tmp_path / "my.npz", **arrays, class_names=np.array(list("abcde")))
    info = describe(str(path))
    assert (info.name, info.kind, info.shape, info.n_train, info.n_test) == (
        "my.npz", "npz", (32, 32, 3), 40, 15)
    assert info.class_names == tuple("abcde") and info.scaling == "uint8 0..255 divided by 255"
    ds = load_dataset(info.name, data_dir=info.path, sha256=info.sha256)
    assert ds.x_train.shape == (40, 32, 32, 3) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train, arrays["x_train"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test.argmax(-1), arrays["y_test"])
    assert ds.y_train.shape == (40, 5) and ds.sha256 == info.sha256
    assert TrainConfig(**info.config_fields(), batch_size=10).dataset_label == \
        f"my.npz@{info.sha256[:12]}"


def test_the_hash_is_of_the_content_one_hot_or_not_and_survives_the_store_copy(tmp_path):
    """Check that one-hot and integer labels of the same data hash alike, other data does not,
    and the canonical copy the store keeps loads with the same hash."""
    arrays = colour_arrays()
    a = describe(str(write_npz(tmp_path / "a.npz", **arrays)))
    one_hot = {**arrays, "y_train": np.eye(5)[arrays["y_train"]],
               "y_test": np.eye(5, dtype=np.uint8)[arrays["y_test"]]}
    b = describe(str(write_npz(tmp_path / "b.npz", **one_hot)))
    changed = {**arrays, "x_test": arrays["x_test"] // 2}
    c = describe(str(write_npz(tmp_path / "c.npz", **changed)))
    assert a.sha256 == b.sha256 != c.sha256
    copy = tmp_path / "copy.npz"
    copy.write_bytes(upload_bytes(a))
    assert load_dataset("a.npz", data_dir=copy, sha256=a.sha256).sha256 == a.sha256


def test_a_file_that_changed_after_submission_is_refused(tmp_path):
    """Check that loading with the submitted hash refuses a file whose content changed since."""
    path = write_npz(tmp_path / "my.npz", **colour_arrays())
    info = describe(str(path))
    write_npz(path, **colour_arrays(seed=1))
    with pytest.raises(DataError, match="is not the one the run was planned with"):
        load_dataset(info.name, data_dir=path, sha256=info.sha256)


def test_float_and_greyscale_pixels_are_scaled_and_the_scaling_is_said(tmp_path):
    """Check that (N, H, W) float pixels in [0, 255] get a channel and are divided by 255, and
    pixels already in [0, 1] are kept."""
    rng = np.random.default_rng(0)
    y = np.arange(12) % 3
    grey = write_npz(tmp_path / "grey.npz", x_train=rng.uniform(0, 255, (12, 9, 7)), y_train=y,
                     x_test=rng.uniform(0, 255, (6, 9, 7)), y_test=y[:6])
    info = describe(str(grey))
    assert info.shape == (9, 7, 1) and info.scaling == "float64 values in [0, 255] divided by 255"
    ds = load_dataset(info.name, data_dir=info.path, sha256=info.sha256)
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1 and ds.scaling == info.scaling
    unit = write_npz(tmp_path / "unit.npz", x_train=rng.uniform(0, 1, (12, 9, 7, 1)), y_train=y,
                     x_test=rng.uniform(0, 1, (6, 9, 7, 1)), y_test=y[:6])
    assert describe(str(unit)).scaling == "values in [0, 1], kept as they are"


def test_an_image_folder_is_split_by_the_stated_seeded_rule(tmp_path):
    """Check that an image folder reads one class per sub-folder (sorted), greyscale as one
    channel, colour as three, and sets FOLDER_TEST_FRACTION of each class apart, the same way
    every time."""
    grey = write_folder(tmp_path / "grey", n=10)
    info = describe(str(grey))
    assert (info.kind, info.shape, info.class_names) == ("folder", (20, 24, 1), ("cat", "dog"))
    per_class = round(FOLDER_TEST_FRACTION * 10)
    assert (info.n_train, info.n_test) == (2 * (10 - per_class), 2 * per_class)
    assert describe(str(grey)).sha256 == info.sha256  # the same split, the same content
    ds = load_dataset(info.name, data_dir=info.path, sha256=info.sha256)
    assert ds.y_test.sum(axis=0).tolist() == [per_class, per_class]
    colour = describe(str(write_folder(tmp_path / "colour", n=3, mode="RGB")))
    assert colour.shape == (20, 24, 3)


def _refused(path, message):
    """describe(path) raises an InputFileError naming the file and matching `message`."""
    with pytest.raises(InputFileError, match=message) as err:
        describe(str(path))
    assert str(path) in str(err.value)
    return str(err.value)


def test_bad_npz_files_are_refused_naming_the_file_the_problem_and_what_is_allowed(tmp_path):
    """Check every bad .npz: a missing key, pickled content, mismatched lengths, labels out of
    range, one class only, NaN pixels, pixels out of range, a file that is not a .npz."""
    good = colour_arrays()
    without = {k: v for k, v in good.items() if k != "y_test"}
    _refused(write_npz(tmp_path / "missing.npz", **without),
             "lacks y_test; a .npz dataset holds x_train, y_train, x_test, y_test")
    pickled = {**good, "y_train": np.array([{"label": 1}] * 40, dtype=object)}
    text = _refused(write_npz(tmp_path / "pickled.npz", **pickled), "holds pickled Python objects")
    assert "never loads" in text
    _refused(write_npz(tmp_path / "lengths.npz", **{**good, "y_train": good["y_train"][:30]}),
             "y_train holds 30 labels but the images number 40")
    out_of_range = write_npz(tmp_path / "range.npz", **{**good, "y_test": good["y_test"] + 3},
                             class_names=np.array(list("abcde")))
    _refused(out_of_range, r"label \d is out of range; allowed: 0..4")
    _refused(write_npz(tmp_path / "negative.npz", **{**good, "y_test": -good["y_test"] - 1}),
             "label -[1-5] is out of range")
    _refused(write_npz(tmp_path / "one.npz", **{**good, "y_train": np.zeros(40, int),
                                                "y_test": np.zeros(15, int)}),
             "the training labels hold one class only .*at least 2 classes")
    nan = {**good, "x_train": good["x_train"].astype(np.float32)}
    nan["x_train"][3, 4, 5, 0] = np.nan
    _refused(write_npz(tmp_path / "nan.npz", **nan), "1 pixel\\(s\\) are NaN or infinite")
    wide = {**good, "x_train": good["x_train"] * 4.0}
    _refused(write_npz(tmp_path / "wide.npz", **wide), r"pixels range over \[0, 1020\]")
    four = {**good, "x_train": np.zeros((40, 8, 8, 4), np.uint8)}
    _refused(write_npz(tmp_path / "rgba.npz", **four), "C = 1 \\(grey\\) or 3 \\(RGB\\)")
    text_file = tmp_path / "notes.npz"
    text_file.write_text("not numpy")
    _refused(text_file, "cannot be read as a .npz file")
    csv = tmp_path / "data.csv"
    csv.write_text("1,2")
    _refused(csv, "is not a .npz file")


def test_bad_image_folders_are_refused_naming_the_folder_and_the_problem(tmp_path):
    """Check images of different shapes, an empty class folder and a single class."""
    _refused(write_folder(tmp_path / "shapes", sizes={"dog": (28, 28)}),
             "images of different shapes: dog/0.png is 28x28 but cat/0.png is 20x24")
    empty = write_folder(tmp_path / "empty")
    (empty / "emu").mkdir()
    _refused(empty, "the class folder 'emu' holds no image")
    _refused(write_folder(tmp_path / "single", classes=("cat",)),
             "holds 1 class sub-folder\\(s\\); allowed: one sub-folder per class, at least 2")
    broken = write_folder(tmp_path / "broken")
    (broken / "cat" / "9.png").write_text("not an image")
    _refused(broken, "cat/9.png cannot be read as an image")
    _refused(tmp_path / "nowhere", "No dataset .*give a built-in name")


def test_a_file_dataset_config_needs_its_hash_and_size():
    """Check that a TrainConfig naming a file dataset carries a SHA-256 and its size, and that
    batch and subset sizes are checked against that size."""
    sha = "0" * 64
    with pytest.raises(InvalidParameterError, match="'dataset_hash' parameter of TrainConfig"):
        TrainConfig(dataset="my.npz", dataset_hash="abc", dataset_size=40)
    with pytest.raises(InvalidParameterError, match="'dataset_size' parameter of TrainConfig"):
        TrainConfig(dataset="my.npz", dataset_hash=sha)
    with pytest.raises(InvalidParameterError, match=r"'batch_size' .* range \[1, 40\]"):
        TrainConfig(dataset="my.npz", dataset_hash=sha, dataset_size=40, batch_size=100)
    # the reference batch (gradient: 100) is capped at the training-set size, not refused
    assert TrainConfig(dataset="my.npz", dataset_hash=sha, dataset_size=40).batch_size == 40
    config = TrainConfig(dataset="my.npz", dataset_hash=sha, dataset_size=40, batch_size=10)
    assert config.n_train == 40 and TrainConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in TrainConfig(dataset="digits").to_dict().items()
           if k not in ("dataset_hash", "dataset_size", "architecture", "architecture_hash",
                        "initial_weights", "from_logits")}
    assert TrainConfig.from_dict(old).architecture == "cnn"  # a config stored before them


def _pickle(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)


def fake_keras_cache(home, n=20):
    """mnist.npz and CIFAR-10/100 batches where Keras 3 caches them, n images each."""
    rng = np.random.default_rng(0)
    datasets = home / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n) % 10
    np.savez(datasets / "mnist.npz", x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
             y_train=labels, x_test=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
             y_test=labels)
    cifar10 = datasets / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _pickle(cifar10 / name, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                 b"labels": labels.tolist()})
    cifar100 = datasets / "cifar-100-python-target" / "cifar-100-python"
    for name in ("train", "test"):
        _pickle(cifar100 / name, {b"data": rng.integers(0, 256, (n * 5, 3072), dtype=np.uint8),
                                  b"fine_labels": (np.arange(n * 5) % 100).tolist()})
    _pickle(cifar100 / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    return datasets


def test_keras_datasets_are_read_from_the_keras_cache_by_name(tmp_path, monkeypatch):
    """Check that mnist, cifar10 and cifar100 are read from (fake) Keras cache files, colour
    images as (32, 32, 3), with nothing downloaded."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    fake_keras_cache(tmp_path)
    monkeypatch.setitem(sys.modules, "keras", None)  # any download attempt would fail loudly
    mnist = load_dataset("mnist")
    assert mnist.x_train.shape == (20, 28, 28, 1) and mnist.y_train.shape == (20, 10)
    cifar = load_dataset("cifar10")
    assert cifar.x_train.shape == (100, 32, 32, 3) and cifar.x_test.shape == (20, 32, 32, 3)
    assert cifar.class_names[0] == "airplane" and "Keras" not in cifar.source
    cifar100 = load_dataset("cifar100")
    assert cifar100.y_train.shape == (100, 100) and cifar100.class_names[99] == "c99"
    assert describe("cifar10").shape == (32, 32, 3) and describe("cifar10").n_train == 50_000


def test_keras_datasets_come_from_gradloss_data_dir_or_a_clear_error(tmp_path, monkeypatch):
    """Check that GRADLOSS_DATA_DIR holding mnist.npz is read, one lacking cifar-10 is an error
    naming it (no download), and only with nothing configured does Keras download."""
    datasets = fake_keras_cache(tmp_path / "made")
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(datasets))
    assert load_dataset("mnist").x_train.shape == (20, 28, 28, 1)
    (datasets / "cifar-10-batches-py-target" / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=f"CIFAR-10 files missing in {datasets}"):
        load_dataset("cifar10")
    monkeypatch.delenv("GRADLOSS_DATA_DIR")
    images, labels = np.zeros((10, 32, 32, 3), np.uint8), np.arange(10).reshape(-1, 1)
    fake = types.SimpleNamespace(load_data=lambda: ((images, labels), (images, labels)))
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(
        datasets=types.SimpleNamespace(cifar10=fake)))
    assert "downloaded by Keras" in load_dataset("cifar10").source


def test_a_doctored_cifar_cache_file_is_never_unpickled_into_code(tmp_path, monkeypatch):
    """Check that a CIFAR batch pickling anything but arrays is refused, not run."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    folder = fake_keras_cache(tmp_path) / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    _pickle(folder / "data_batch_1", {b"data": types.SimpleNamespace(), b"labels": []})
    with pytest.raises(DataError, match="refused to load types.SimpleNamespace"):
        load_dataset("cifar10")


def test_read_npz_takes_bytes_as_the_store_keeps_them(tmp_path):
    """Check that the canonical bytes read back to the same arrays and class names."""
    import io

    path = write_npz(tmp_path / "my.npz", **colour_arrays())
    data = upload_bytes(describe(str(path)))
    x_train, y_train, _, _, names = read_npz(io.BytesIO(data), "the stored copy")
    assert x_train.shape == (40, 32, 32, 3) and names == tuple("01234")
