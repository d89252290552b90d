"""Corruptions do what their names say, grow with severity, are seeded and rebuildable by row."""
import numpy as np
import pandas as pd
import pytest

from gradloss.core.config import InvalidParameterError
from gradloss.data import load_dataset
from gradloss.perturbations.corruptions import (BLOCK, CORRUPTIONS, SEVERITIES, SEVERITY_TABLE,
                                                corrupt, corruption_accuracy)
from gradloss.analysis.summary import mean_corruption_error

RANDOM = ("shot_noise", "impulse_noise", "speckle_noise")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def images(digits):
    return digits.x_test[:40]  # (40, 28, 28, 1) in [0, 1]


def params(name):
    return SEVERITY_TABLE[name].params


def laplacian_energy(x):
    """Mean squared discrete Laplacian over the image plane: high-frequency energy."""
    lap = (x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
           - 4 * x[:, 1:-1, 1:-1])
    return float(np.mean(lap ** 2))


def bar(horizontal: bool) -> np.ndarray:
    x = np.zeros((1, 28, 28, 1), np.float32)
    if horizontal:
        x[0, 13:15, 4:24] = 1
    else:
        x[0, :, 13:15] = 1
    return x


def test_table_has_five_increasing_or_decreasing_levels_for_every_corruption():
    """Check that every corruption has five monotone parameters, a meaning and a source."""
    assert set(CORRUPTIONS) >= {"shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur",
                                "motion_blur", "contrast", "brightness", "pixelate", "rotate"}
    for name in CORRUPTIONS:
        p, meaning, source = SEVERITY_TABLE[name]
        steps = np.diff(p)
        assert len(p) == 5 and (np.all(steps > 0) or np.all(steps < 0)) and meaning and source


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_output_is_float32_in_unit_range_with_the_input_shape(images, name):
    """Check shape, dtype and [0, 1] range at every severity, from float64 input too."""
    for severity in SEVERITIES:
        out = corrupt(images.astype(np.float64), name, severity)
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_distance_to_clean_grows_with_severity(images, name):
    """Check that the mean distance to the clean images never falls as the severity rises."""
    dist = [np.mean(np.sqrt(np.mean((corrupt(images, name, s) - images) ** 2, axis=(1, 2, 3))))
            for s in SEVERITIES]
    assert dist[0] > 0 and np.all(np.diff(dist) >= 0), dist


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_any_row_is_rebuilt_alone_with_offset(images, name):
    """Check that one row (or a slice across a block edge) corrupted alone equals the full set's."""
    x = np.resize(images, (BLOCK + 60, 28, 28, 1))  # spans two blocks
    full = corrupt(x, name, 3, seed=5)
    for i in (0, 17, BLOCK - 1, BLOCK, BLOCK + 59):
        assert np.array_equal(corrupt(x[i:i + 1], name, 3, seed=5, offset=i)[0], full[i])
    assert np.array_equal(corrupt(x[990:1010], name, 3, seed=5, offset=990), full[990:1010])


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_seed_repeats_and_another_seed_differs_only_for_noises(images, name):
    """Check that one seed repeats exactly and a new seed changes the noises only."""
    a, b = corrupt(images, name, 2, seed=1), corrupt(images, name, 2, seed=1)
    other = corrupt(images, name, 2, seed=2)
    assert np.array_equal(a, b)
    assert np.array_equal(a, other) == (name not in RANDOM)


def test_gaussian_blur_removes_high_frequencies_more_with_severity(images):
    """Check that the Laplacian energy falls at every severity."""
    energy = [laplacian_energy(images)] + [laplacian_energy(corrupt(images, "gaussian_blur", s))
                                           for s in SEVERITIES]
    assert np.all(np.diff(energy) < 0), energy


def test_motion_blur_smooths_along_the_rows_more_than_across(images):
    """Check that motion blur lowers high frequencies, horizontal differences more than vertical
    ones, and the more so the longer the blur."""
    ratios = []
    for s in SEVERITIES:
        out = corrupt(images, "motion_blur", s)
        assert laplacian_energy(out) < laplacian_energy(images)
        along = np.mean(np.diff(out, axis=2) ** 2) / np.mean(np.diff(images, axis=2) ** 2)
        across = np.mean(np.diff(out, axis=1) ** 2) / np.mean(np.diff(images, axis=1) ** 2)
        ratios.append(along / across)
    assert ratios[0] < 0.9 and np.all(np.diff(ratios) < 0), ratios


def test_contrast_shrinks_the_spread_around_each_image_mean(images):
    """Check that each image keeps its mean and its std is scaled by the table's factor."""
    for s in SEVERITIES:
        out = corrupt(images, "contrast", s)
        np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), atol=1e-5)
        np.testing.assert_allclose(out.std(axis=(1, 2, 3)) / images.std(axis=(1, 2, 3)),
                                   params("contrast")[s - 1], rtol=1e-4)


def test_brightness_adds_the_table_value_until_white(images):
    """Check that brightness raises the mean and adds exactly c to pixels that stay below 1."""
    means = [images.mean()]
    for s in SEVERITIES:
        c, out = params("brightness")[s - 1], corrupt(images, "brightness", s)
        dark = images < 1 - c
        np.testing.assert_allclose(out[dark], images[dark] + c, atol=1e-6)
        assert np.all(out[~dark] == 1)
        means.append(out.mean())
    assert np.all(np.diff(means) > 0)


def test_pixelate_makes_k_by_k_blocks_constant_and_keeps_the_mean(images):
    """Check that every k x k block is constant, the blocks differ, and the image mean is kept."""
    for s in SEVERITIES:
        k, out = params("pixelate")[s - 1], corrupt(images, "pixelate", s)[..., 0]
        full = 28 // k * k
        blocks = out[:, :full, :full].reshape(len(out), full // k, k, full // k, k)
        assert np.ptp(blocks, axis=(2, 4)).max() < 1e-6
        assert np.ptp(blocks[..., 0, :, 0]) > 0.5  # not one flat image
        np.testing.assert_allclose(out.mean(axis=(1, 2)), images[..., 0].mean(axis=(1, 2)),
                                   atol=1e-5)


def test_impulse_sets_the_table_fraction_of_pixels_to_black_or_white(images):
    """Check that hit pixels are 0 or 1, half each, at the table rate, nested by severity."""
    grey = 0.1 + 0.8 * images  # no clean pixel is 0 or 1
    hits = []
    for s in SEVERITIES:
        out = corrupt(grey, "impulse_noise", s)
        hit = out != grey
        assert np.all(np.isin(out[hit], (0.0, 1.0)))
        assert hit.mean() == pytest.approx(params("impulse_noise")[s - 1], abs=0.01)
        assert np.mean(out[hit] == 1) == pytest.approx(0.5, abs=0.05)
        hits.append(hit)
    assert all(np.all(low <= high) for low, high in zip(hits, hits[1:]))


@pytest.mark.parametrize("name", ["shot_noise", "speckle_noise"])
def test_shot_and_speckle_noise_change_pixels_but_not_the_mean(images, name):
    """Check that most lit pixels change, more with severity, while the mean intensity stays."""
    dim = 0.5 * images  # away from 1, so clipping hardly biases the mean
    lit = dim > 0.05
    change = []
    for s in SEVERITIES:
        out = corrupt(dim, name, s)
        assert np.mean(out[lit] != dim[lit]) > 0.5
        assert out.mean() == pytest.approx(dim.mean(), rel=0.05)
        change.append(np.mean(np.abs(out - dim)[lit]))
    assert np.all(np.diff(change) > 0), change


def test_rotate_turns_a_bar_by_the_table_angle():
    """Check that a horizontal bar turns counter-clockwise by the table's angle about the centre."""
    rows, cols = np.indices((28, 28))
    for s in SEVERITIES:
        img = corrupt(bar(horizontal=True), "rotate", s)[0, :, :, 0]
        w = img / img.sum()
        dx, dy = cols - (w * cols).sum(), -(rows - (w * rows).sum())  # y up
        angle = 0.5 * np.degrees(np.arctan2(2 * (w * dx * dy).sum(),
                                            (w * dx ** 2).sum() - (w * dy ** 2).sum()))
        assert angle == pytest.approx(params("rotate")[s - 1], abs=1.0)
        assert (w * cols).sum() == pytest.approx(13.5, abs=0.2)


def test_shear_slants_a_vertical_bar_top_to_the_right():
    """Check that each row of a vertical bar moves right by c pixels per row above the centre."""
    cols = np.arange(28)
    for s in SEVERITIES:
        c, img = params("shear")[s - 1], corrupt(bar(horizontal=False), "shear", s)[0, :, :, 0]
        keep = np.abs(np.arange(28) - 13.5) * c < 12  # rows whose bar stays inside the image
        centre = (img * cols).sum(axis=1)[keep] / img.sum(axis=1)[keep]
        np.testing.assert_allclose(centre, 13.5 + c * (13.5 - np.arange(28)[keep]), atol=0.05)


def test_corrupt_rejects_unknown_name_and_bad_severity(images):
    """Check the parameter errors name the parameter, the allowed values and the value."""
    with pytest.raises(InvalidParameterError, match=r"The 'name' parameter of corrupt must be a "
                       r"str among \{'shot_noise', .*'rotate'.*\}\. Got 'fog' instead\."):
        corrupt(images, "fog", 1)
    with pytest.raises(InvalidParameterError, match=r"^The 'severity' parameter of corrupt must "
                       r"be an int in the range \[1, 5\]\. Got 0 instead\.$"):
        corrupt(images, "contrast", 0)
    for bad in (6, 2.0, True):
        with pytest.raises(InvalidParameterError, match="'severity' parameter of corrupt"):
            corrupt(images, "contrast", bad)
    with pytest.raises(ValueError, match=r"shape \(N, H, W, C\)\. Got shape \(28, 28\)"):
        corrupt(images[0, :, :, 0], "contrast", 1)


def nearest_mean_classifier(digits):
    """A real model without Keras: class probabilities from distances to the class means."""
    means = np.stack([digits.x_train[digits.y_train.argmax(-1) == k].mean(0) for k in range(10)])
    calls = []

    def predict(x):
        calls.append(len(x))
        d = ((x[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))  # (B, 10)
        p = np.exp(-(d - d.min(1, keepdims=True)))
        return p / p.sum(1, keepdims=True)
    return predict, calls


def test_corruption_accuracy_matches_predictions_on_corrupted_images(digits):
    """Check the table against direct predictions, batch bounds, progress and damage at level 5."""
    predict, calls = nearest_mean_classifier(digits)
    x, y = np.resize(digits.x_test, (BLOCK + 200, 28, 28, 1)), np.resize(digits.y_test.argmax(-1),
                                                                            BLOCK + 200)
    progress = []
    table = corruption_accuracy(predict, x, np.eye(10)[y], names=("rotate", "impulse_noise"),
                                severities=(1, 5), seed=3, batch_size=300,
                                on_progress=lambda d, t: progress.append((d, t)))
    assert list(table.columns) == ["perturbation", "severity", "accuracy"] and len(table) == 4
    assert max(calls) <= 300 and progress == [(i, 8) for i in range(1, 9)]
    for row in table.itertuples():
        xc = corrupt(x, row.perturbation, row.severity, seed=3)
        assert row.accuracy == pytest.approx(np.mean(predict(xc).argmax(-1) == y))
    clean = np.mean(predict(x).argmax(-1) == y)
    worst = table[table.severity == 5].set_index("perturbation").accuracy
    assert (worst < clean).all() and worst["rotate"] < clean - 0.2, (clean, worst)


def test_corruption_accuracy_rejects_unknown_names(digits):
    """Check that an unknown corruption name is reported with the allowed ones."""
    with pytest.raises(InvalidParameterError, match="The 'names' parameter of corruption_accuracy"):
        corruption_accuracy(lambda x: x, digits.x_test, digits.y_test, names=("snow",))


def table(errors: dict) -> pd.DataFrame:
    return pd.DataFrame([{"perturbation": n, "severity": s + 1, "accuracy": 1 - e}
                         for n, errs in errors.items() for s, e in enumerate(errs)])


def test_mean_corruption_error_of_a_model_against_itself_is_one():
    """Check mCE = 1 against itself, and ImageNet-C's ratio of error sums on a hand-made example."""
    reference = table({"blur": [0.1, 0.3], "noise": [0.2, 0.2]})
    assert mean_corruption_error(reference, reference) == pytest.approx(1.0)
    model = table({"blur": [0.1, 0.1], "noise": [0.4, 0.4]})  # CE 0.5 and 2.0
    assert mean_corruption_error(model, reference) == pytest.approx(1.25)


def test_mean_corruption_error_needs_every_row_in_the_reference():
    """Check that a missing reference row or a perfect reference is an error, not a silent NaN."""
    with pytest.raises(ValueError, match=r"Got none for \[\['noise', 2\]\]"):
        mean_corruption_error(table({"noise": [0.2, 0.2]}), table({"noise": [0.2]}))
    with pytest.raises(ValueError, match="no error under \\['noise'\\]"):
        mean_corruption_error(table({"noise": [0.2]}), table({"noise": [0.0]}))
