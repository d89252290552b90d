"""The noise sweep, the corruption suite, the attacks and the stored grid images work on every
image shape: colour 32x32x3 and a non-square greyscale 20x24x1, as on 28x28x1."""
import keras
import numpy as np
import pytest

from gradloss.core.config import SweepConfig
from gradloss.core.evaluation import CORRUPTIONS, EvaluationConfig
from gradloss.models.builtin import build
from gradloss.perturbations import corruptions, suite, sweep
from gradloss.perturbations.images import image_from_bytes, image_to_bytes

SHAPES = [(32, 32, 3), (20, 24, 1)]


def _data(shape, n=12, k=3):
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 1, (n, *shape)).astype("float32"),
            np.eye(k, dtype="float32")[np.arange(n) % k])


@pytest.mark.parametrize("shape", SHAPES)
def test_every_corruption_keeps_the_shape_and_the_range(shape):
    """Check that each corruption at severities 1 and 5 returns the images' shape in [0, 1],
    and that a row corrupted alone equals the same row corrupted with the others."""
    x, _ = _data(shape)
    for name in CORRUPTIONS:
        for severity in (1, 5):
            out = corruptions.corrupt(x, name, severity, seed=1)
            assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1, name
            alone = corruptions.corrupt(x[5:6], name, severity, seed=1, offset=5)
            np.testing.assert_array_equal(alone[0], out[5], err_msg=name)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_sweep_the_suite_and_the_grid_images_run_on_the_shape(shape):
    """Check the noise sweep, a corruption and FGSM through the suite, and the grid images'
    codec (attacked images stored and read back in the images' own shape)."""
    x, y = _data(shape)
    keras.utils.set_random_seed(0)
    model = build("mlp", shape, 3)
    table = sweep.accuracy_vs_noise(model, x, y, SweepConfig(sigmas=(0.0, 0.2), draws=1))
    assert table.accuracy.between(0, 1).all()
    config = EvaluationConfig(perturbations=("contrast", "fgsm"), severities=(1,),
                              epsilons=(0.0, 0.1), attack_images=6, masking_images=0)
    rows, flags = suite.evaluate(model, x, y, config)
    assert set(rows.perturbation) == {"contrast", "fgsm"} and flags is not None
    grid = suite.grid_examples(model, x, y, [0, 4], config)
    attacked = grid[(grid.perturbation == "fgsm") & (grid.level == 0.1)].image.iloc[0]
    image = image_from_bytes(attacked, shape)
    assert image.shape == shape and np.abs(image - x[0]).max() <= 0.1 + 1e-3
    assert np.allclose(image_from_bytes(image_to_bytes(x[4]), shape), x[4], atol=1e-3)
