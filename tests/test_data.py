"""Tests for gradloss.data: the real Fashion-MNIST files, small synthetic IDX files, digits."""
import gzip
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gradloss.core.config import TRAIN_SET_SIZES, InvalidParameterError
from gradloss.data import (FASHION_CLASSES, FASHION_FILES, data_status, fashion_mnist_downloadable,
                           find_fashion_mnist, load_dataset, submission_data_dir)
from gradloss.data.fashion_files import check_fashion_folder
from gradloss.core.errors import DataError, DataFolderError, SettingsError

from conftest import FASHION_DIR as REAL_DIR, SHARED_FASHION, fashion_folder
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FASHION_FILES


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch, tmp_path_factory):
    """No GRADLOSS_DATA_DIR and an empty Keras cache, so nothing real is found or downloaded."""
    monkeypatch.delenv("GRADLOSS_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))


@pytest.fixture(scope="module")
def real():
    """The real Fashion-MNIST, parsed once for the module."""
    if not (REAL_DIR / TRAIN_IMAGES).is_file():
        pytest.skip(f"real Fashion-MNIST files not found in {REAL_DIR}")
    return load_dataset("fashion_mnist", data_dir=REAL_DIR)


def write_idx(path, array, magic=None, dims=None):
    """Write `array` as a gzipped IDX ubyte file; `magic`/`dims` override the header."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    dims = array.shape if dims is None else dims
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_fashion(folder, n_train=40, n_test=20, pixel=255):
    """Four small valid IDX files: balanced labels, every pixel equal to `pixel`."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = ((TRAIN_IMAGES, TRAIN_LABELS, n_train), (TEST_IMAGES, TEST_LABELS, n_test))
    for images, labels, n in splits:
        write_idx(folder / images, np.full((n, 28, 28), pixel))
        write_idx(folder / labels, np.arange(n) % 10)
    return folder


@pytest.fixture
def small(tmp_path):
    return write_fashion(tmp_path / "fashion")


def test_real_fashion_mnist_shapes_range_and_counts(real):
    """The official files load as float32 (N, 28, 28, 1) in [0, 1] with balanced one-hot labels."""
    assert real.x_train.shape == (60000, 28, 28, 1) and real.x_test.shape == (10000, 28, 28, 1)
    assert real.y_train.shape == (60000, 10) and real.y_test.shape == (10000, 10)
    for x in (real.x_train, real.x_test):
        assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    for y, per_class in ((real.y_train, 6000), (real.y_test, 1000)):
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y.sum(axis=1), 1.0)
        np.testing.assert_array_equal(y.sum(axis=0), per_class)
    assert real.class_names == FASHION_CLASSES and str(REAL_DIR) in real.source


def test_real_fashion_mnist_first_labels_and_mean(real):
    """First train labels and the mean pixel match the published statistics."""
    np.testing.assert_array_equal(real.y_train[:10].argmax(axis=1), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    assert real.x_train.mean(dtype=np.float64) == pytest.approx(0.2860, abs=1e-4)


def test_real_fashion_mnist_subset_is_stratified():
    """train_size=100 on the real data gives 10 images per class and the whole test set."""
    if not (REAL_DIR / TRAIN_IMAGES).is_file():
        pytest.skip(f"real Fashion-MNIST files not found in {REAL_DIR}")
    d = load_dataset("fashion_mnist", data_dir=REAL_DIR, train_size=100)
    np.testing.assert_array_equal(d.y_train.sum(axis=0), 10)
    assert d.x_train.shape == (100, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)


def test_synthetic_files_load_scaled_to_unit_range(small):
    """Small valid IDX files load with the right shapes, /255 scaling and labels."""
    d = load_dataset("fashion_mnist", data_dir=small)
    assert d.x_train.shape == (40, 28, 28, 1) and d.x_test.shape == (20, 28, 28, 1)
    assert d.x_train.dtype == np.float32 and np.all(d.x_train == 1.0)
    np.testing.assert_array_equal(d.y_test.argmax(axis=1), np.arange(20) % 10)


def test_env_var_is_honoured_and_explicit_dir_wins(tmp_path, monkeypatch):
    """GRADLOSS_DATA_DIR is used when no data_dir is given; data_dir overrides it."""
    env_dir = write_fashion(tmp_path / "env", pixel=51)
    arg_dir = write_fashion(tmp_path / "arg", pixel=102)
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(env_dir))
    assert find_fashion_mnist() == env_dir
    assert load_dataset("fashion_mnist").x_train.max() == pytest.approx(0.2)
    assert find_fashion_mnist(arg_dir) == arg_dir
    assert load_dataset("fashion_mnist", data_dir=arg_dir).x_train.max() == pytest.approx(0.4)


def test_keras_cache_is_used_when_nothing_is_configured(tmp_path, monkeypatch):
    """With no folder configured, the Keras cache folder under $KERAS_HOME is read."""
    cache = write_fashion(tmp_path / "kh" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert find_fashion_mnist() == cache
    assert str(cache) in load_dataset("fashion_mnist").source
    assert str(cache) in data_status("fashion_mnist")


def test_missing_file_names_folder_and_file(small):
    """A configured folder lacking a file is an error naming both, not a download."""
    (small / TEST_LABELS).unlink()
    assert find_fashion_mnist(small) is None
    with pytest.raises(DataError, match=TEST_LABELS) as err:
        load_dataset("fashion_mnist", data_dir=small)
    assert str(small) in str(err.value) and "digits" in str(err.value)


def corrupt_truncated(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # cut inside the deflate stream


def corrupt_not_gzip(path):
    path.write_bytes(b"this is not a gzip file at all")


def corrupt_crc(path):
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # the gzip trailer: CRC32 then size
    path.write_bytes(bytes(raw))


def corrupt_magic(path):
    write_idx(path, np.zeros((40, 28, 28)), magic=0x0801)


def corrupt_header_count(path):
    write_idx(path, np.zeros((40, 28, 28)), dims=(41, 28, 28))  # header promises more data


def corrupt_extra_data(path):
    write_idx(path, np.zeros((41, 28, 28)), dims=(40, 28, 28))  # data longer than the header


def corrupt_image_size(path):
    write_idx(path, np.zeros((40, 32, 32)))


@pytest.mark.parametrize("corrupt, reason", [
    (corrupt_truncated, "cannot be read as gzip"),
    (corrupt_not_gzip, "cannot be read as gzip"),
    (corrupt_crc, "cannot be read as gzip"),
    (corrupt_magic, "bad magic number 0x00000801, expected 0x00000803"),
    (corrupt_header_count, r"header gives shape \(41, 28, 28\)"),
    (corrupt_extra_data, r"header gives shape \(40, 28, 28\)"),
    (corrupt_image_size, "expected 28x28"),
])
def test_corrupt_image_file_gives_data_error_naming_it(small, corrupt, reason):
    """Each kind of damage to an image file gives one DataError naming the file and the fix."""
    corrupt(small / TRAIN_IMAGES)
    with pytest.raises(DataError, match=reason) as err:
        load_dataset("fashion_mnist", data_dir=small)
    message = str(err.value)
    assert str(small / TRAIN_IMAGES) in message
    assert "https://github.com/zalandoresearch/fashion-mnist" in message and "digits" in message


def test_label_count_differing_from_image_count_is_refused(small):
    """A label file with fewer labels than images is refused, naming the label file."""
    write_idx(small / TRAIN_LABELS, np.arange(39) % 10)
    with pytest.raises(DataError, match=f"{TRAIN_LABELS} is corrupt: it holds 39 labels"):
        load_dataset("fashion_mnist", data_dir=small)


def corrupt_label_count(path):
    write_idx(path.parent / TRAIN_LABELS, np.arange(39) % 10)


def emptied(folder):
    for f in folder.iterdir():
        f.unlink()


@pytest.mark.parametrize("damage, reason", [
    (emptied, "Fashion-MNIST files missing in"),
    (corrupt_truncated, "it is cut short or padded|cannot be read as gzip"),  # small: both
    (corrupt_not_gzip, "cannot be read as gzip"),
    (corrupt_magic, "bad magic number 0x00000801, expected 0x00000803"),
    (corrupt_header_count, r"header gives shape \(41, 28, 28\)"),
    (corrupt_extra_data, r"header gives shape \(40, 28, 28\)"),
    (corrupt_image_size, "expected 28x28"),
    (corrupt_label_count, "it holds 39 labels but train-images-idx3-ubyte.gz holds 40 images"),
])
def test_a_chosen_folder_is_checked_at_submission_naming_the_variable(small, monkeypatch, damage,
                                                                      reason):
    """Check the cheap check a run's data folder gets where it is submitted (names, IDX headers,
    the size each gzip trailer records, label counts): each damage is one DataFolderError (a
    SettingsError: the CLI exits 2) naming GRADLOSS_DATA_DIR, the file and the fix."""
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(small))
    assert submission_data_dir("fashion_mnist") == str(small.resolve())
    damage(small if damage is emptied else small / TRAIN_IMAGES)
    with pytest.raises(DataFolderError, match=reason) as err:
        submission_data_dir("fashion_mnist")
    assert isinstance(err.value, SettingsError) and "GRADLOSS_DATA_DIR" in str(err.value)
    assert str(small) in str(err.value) and "digits" in str(err.value)
    assert "cannot be used" in data_status("fashion_mnist") or "not found" in data_status("fashion_mnist")


@pytest.mark.parametrize("make, what", [(lambda p: p.write_text("x"), "is a file, not a folder"),
                                        (lambda p: None, "does not exist")])
def test_a_data_folder_that_is_a_file_or_absent_is_named(tmp_path, monkeypatch, make, what):
    """Check GRADLOSS_DATA_DIR naming a file or nothing: refused at submission, saying which."""
    path = tmp_path / "data"
    make(path)
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(path))
    with pytest.raises(DataFolderError, match=f"{path} {what} \\(it was set by GRADLOSS_DATA_DIR\\)"):
        submission_data_dir("fashion_mnist")


def test_the_real_files_pass_the_check_and_a_run_folder_names_where_it_came_from(small, monkeypatch):
    """Check that the official files pass the cheap check, and that a run's data folder (the
    worker loads data_dir=) is named as GRADLOSS_DATA_DIR when that is what it is here, else
    as the run's folder found at submission (the message said "the data_dir argument")."""
    if (REAL_DIR / TRAIN_LABELS).is_file():
        check_fashion_folder(REAL_DIR)
    (small / TEST_LABELS).unlink()
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(small))
    with pytest.raises(DataFolderError, match=r"\(set by GRADLOSS_DATA_DIR\)"):
        load_dataset("fashion_mnist", data_dir=str(small.resolve()))
    monkeypatch.delenv("GRADLOSS_DATA_DIR")
    with pytest.raises(DataFolderError, match=r"set by the data_dir argument \(for a run: the "
                                              r"GRADLOSS_DATA_DIR or Keras cache found where it "
                                              r"was submitted\)"):
        load_dataset("fashion_mnist", data_dir=str(small))


def test_label_out_of_range_is_refused(small):
    """A label outside 0..9 is refused, naming the label file."""
    write_idx(small / TEST_LABELS, np.full(20, 10))
    with pytest.raises(DataError, match=f"{TEST_LABELS} is corrupt: label 10 is outside 0..9"):
        load_dataset("fashion_mnist", data_dir=small)


def test_corrupt_copy_of_real_labels_is_refused(tmp_path):
    """A real label file cut short inside its gzip stream gives a DataError naming it."""
    if not (REAL_DIR / TRAIN_LABELS).is_file():
        pytest.skip(f"real Fashion-MNIST files not found in {REAL_DIR}")
    folder = write_fashion(tmp_path / "copy")
    shutil.copy(REAL_DIR / TRAIN_LABELS, folder / TRAIN_LABELS)
    corrupt_truncated(folder / TRAIN_LABELS)
    with pytest.raises(DataError, match=TRAIN_LABELS):
        load_dataset("fashion_mnist", data_dir=folder)


def fake_keras(monkeypatch, load_data):
    """Stand in for keras in sys.modules, so the downloader path runs without a network."""
    fashion = types.SimpleNamespace(load_data=load_data)
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(
        datasets=types.SimpleNamespace(fashion_mnist=fashion)))


def test_download_is_the_last_resort(monkeypatch):
    """With nothing configured or cached, Keras's downloader supplies the arrays."""
    labels = np.arange(20, dtype=np.uint8) % 10
    images = np.zeros((20, 28, 28), np.uint8)
    fake_keras(monkeypatch, lambda: ((images, labels), (images, labels)))
    d = load_dataset("fashion_mnist")
    assert d.x_train.shape == (20, 28, 28, 1) and "Keras" in d.source


def test_download_failure_is_a_data_error(monkeypatch):
    """A failing download is wrapped in a DataError that says how to fix it."""
    def offline():
        raise OSError("no internet")
    fake_keras(monkeypatch, offline)
    with pytest.raises(DataError, match="no internet") as err:
        load_dataset("fashion_mnist")
    assert "GRADLOSS_DATA_DIR" in str(err.value) and "digits" in str(err.value)


def test_digits_shapes_range_and_split():
    """digits is 1437 train / 360 test 28x28 images in [0, 1], as TRAIN_SET_SIZES says."""
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 28, 28, 1) and d.x_test.shape == (360, 28, 28, 1)
    assert len(d.x_train) == TRAIN_SET_SIZES["digits"]
    assert d.x_train.dtype == np.float32 and d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    np.testing.assert_array_equal(d.y_train.sum(axis=1), 1.0)
    assert d.class_names == tuple("0123456789") and "scikit-learn" in d.source


def test_digits_is_deterministic():
    """Two loads of digits give identical arrays."""
    a, b = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_subset_same_seed_same_rows_other_seed_other_rows():
    """The training subset follows the seed; the test set stays whole."""
    a = load_dataset("digits", train_size=200, seed=1)
    b = load_dataset("digits", train_size=200, seed=1)
    c = load_dataset("digits", train_size=200, seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert len(a.x_test) == 360
    counts = a.y_train.sum(axis=0)
    assert counts.sum() == 200 and counts.min() >= 19 and counts.max() <= 21


def test_subset_sizes_near_the_full_set_are_exact(small):
    """Any size up to the full training set is honoured exactly, keeping classes balanced."""
    for size in (10, 33, 39, 40):
        d = load_dataset("fashion_mnist", data_dir=small, train_size=size)
        counts = d.y_train.sum(axis=0)
        assert counts.sum() == size and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("size", [41, 5, 2.5, True])
def test_subset_size_out_of_range_is_refused(small, size):
    """A train_size beyond the training set (or not an int >= 10) is refused with its range."""
    with pytest.raises(InvalidParameterError,
                       match=r"The 'train_size' parameter of load_dataset must be an int in "
                             r"the range \[10, 40\]\. Got"):
        load_dataset("fashion_mnist", data_dir=small, train_size=size)


def test_unknown_dataset_name_is_refused():
    """An unknown dataset name is refused, listing the known ones."""
    with pytest.raises(InvalidParameterError, match="'name' parameter of load_dataset must be"):
        load_dataset("imagenet")


def test_data_status_says_where_data_is_or_how_to_fix(tmp_path, monkeypatch, small):
    """data_status names the folder read, or says what is missing and how to fix it."""
    assert "scikit-learn" in data_status("digits")
    assert "not found" in data_status("fashion_mnist")
    assert "GRADLOSS_DATA_DIR" in data_status("fashion_mnist")
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(small))
    assert data_status("fashion_mnist") == f"Fashion-MNIST: read from {small} (GRADLOSS_DATA_DIR)."
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(tmp_path / "empty"))
    status = data_status("fashion_mnist")
    assert "not found" in status and str(tmp_path / "empty") in status and TRAIN_IMAGES in status


def test_download_is_possible_only_when_no_folder_is_configured_and_the_cache_is_empty(
        tmp_path, monkeypatch, small):
    monkeypatch.delenv("GRADLOSS_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert fashion_mnist_downloadable()
    assert not fashion_mnist_downloadable(tmp_path / "empty")  # a chosen folder is not replaced
    monkeypatch.setenv("GRADLOSS_DATA_DIR", str(small))
    assert not fashion_mnist_downloadable()
    monkeypatch.delenv("GRADLOSS_DATA_DIR")
    cache = tmp_path / "kh" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for f in small.iterdir():
        (cache / f.name).write_bytes(f.read_bytes())
    assert not fashion_mnist_downloadable()  # already in the Keras cache


def test_tests_look_for_fashion_mnist_in_gradloss_data_dir_first(tmp_path):
    """Check that the real-data tests read $GRADLOSS_DATA_DIR when set, the shared copy otherwise."""
    assert fashion_folder({"GRADLOSS_DATA_DIR": str(tmp_path)}) == tmp_path
    assert fashion_folder({}) == SHARED_FASHION


def test_importing_data_does_not_import_keras():
    """gradloss.data stays light: importing it loads neither keras nor tensorflow."""
    code = ("import sys, gradloss.data; "
            "sys.exit(any(m in sys.modules for m in ('keras', 'tensorflow', 'jax')))")
    repo = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo).returncode == 0
