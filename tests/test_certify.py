"""Randomized smoothing's CERTIFY: exact on a linear classifier, and in agreement with ART's
implementation on the same Keras model within sampling error; certified accuracy per radius."""
import numpy as np
import pytest
import scipy.stats

from gradloss.core.evaluation import EvaluationConfig
from gradloss.perturbations.certify import ABSTAIN, certified_accuracy, certify, lower_bound


def _linear(w: np.ndarray, b: np.ndarray):
    """A softmax-linear classifier on flattened images, as a predict function (NumPy only)."""
    def predict(x):
        z = x.reshape(len(x), -1) @ w + b
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)
    return predict


def test_a_linear_classifier_is_certified_up_to_its_exact_radius():
    """Check that for two classes and a linear model, where smoothing certifies exactly the
    distance to the decision boundary |m| / ||w_A - w_B||, every radius is a lower bound of it
    (alpha = 0.001) and close to it with many samples; the class is the side of the boundary."""
    rng = np.random.default_rng(0)
    d, sigma = 16, 0.5
    w, b = rng.normal(0, 1, (d, 2)), np.zeros(2)
    dw = w[:, 0] - w[:, 1]
    x = rng.normal(0, 1, (40, 4, 4, 1)).astype(np.float32)
    margins = x.reshape(40, -1) @ dw
    x = x[np.abs(margins) / np.linalg.norm(dw) < 1.0]  # certificates below the samples' ceiling
    margins = x.reshape(len(x), -1) @ dw
    exact = np.abs(margins) / np.linalg.norm(dw)
    predictions, radii = certify(_linear(w, b), x, sigma, selection=100, samples=20_000,
                                 alpha=0.001, seed=1)
    certified = predictions != ABSTAIN
    assert certified.mean() > 0.8
    np.testing.assert_array_equal(predictions[certified], (margins[certified] < 0).astype(int))
    assert (radii[certified] <= exact[certified] + 1e-9).all()
    assert np.abs(radii[certified] - exact[certified]).max() < 0.15 * sigma


def test_the_lower_bound_is_clopper_pearsons():
    """Check the one-sided bound against the Beta quantile that defines it, and 0 counts."""
    assert lower_bound(990, 1000, 0.001) == pytest.approx(scipy.stats.beta.ppf(0.001, 990, 11))
    assert lower_bound(0, 1000, 0.001) == 0.0


def test_certificates_repeat_for_a_seed_and_row_whatever_the_other_rows():
    """Check that an image's certificate depends on (seed, its row) only."""
    rng = np.random.default_rng(2)
    predict = _linear(rng.normal(0, 1, (16, 3)), np.zeros(3))
    x = rng.normal(0, 1, (6, 4, 4, 1)).astype(np.float32)
    whole = certify(predict, x, 0.3, selection=20, samples=200, seed=5)
    alone = certify(predict, x[3:4], 0.3, selection=20, samples=200, seed=5, rows=[3])
    assert whole[0][3] == alone[0][0] and whole[1][3] == alone[1][0]
    other = certify(predict, x, 0.3, selection=20, samples=200, seed=6)
    assert not np.array_equal(whole[1], other[1])


def test_certified_accuracy_counts_right_predictions_certified_at_each_radius():
    """Check certified accuracy: right, not abstaining, and radius at least r."""
    table = certified_accuracy(np.array([0, 1, ABSTAIN, 2]), np.array([0.3, 0.6, 0.0, 0.9]),
                               np.array([0, 1, 2, 0]), at=(0.0, 0.5, 1.0))
    assert table.accuracy.tolist() == [0.5, 0.25, 0.0]


def test_agrees_with_arts_randomized_smoothing_on_the_same_model():
    """Check that ART's TensorFlowV2RandomizedSmoothing.certify, on the same Keras model and
    images with the same sample counts, gives the same certified predictions and radii within
    the sampling error of two independent noise draws."""
    import keras

    from _attack_helpers import import_art

    art = import_art()
    TensorFlowV2RandomizedSmoothing = (
        art.estimators.certification.randomized_smoothing.TensorFlowV2RandomizedSmoothing)

    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.set_weights([rng.normal(0, 2, (16, 3)).astype(np.float32), np.zeros(3, np.float32)])
    x = rng.normal(0, 0.5, (60, 4, 4, 1)).astype(np.float32)
    sigma, n0, n = 0.25, 100, 2000
    ours_pred, ours_radius = certify(lambda b: model.predict_on_batch(b), x, sigma, selection=n0,
                                     samples=n, alpha=0.001, seed=0)
    smoothed = TensorFlowV2RandomizedSmoothing(model=model, nb_classes=3, input_shape=(4, 4, 1),
                                               sample_size=n0, scale=sigma, alpha=0.001)
    state = np.random.get_state()
    np.random.seed(0)
    try:
        art_pred, art_radius = smoothed.certify(x, n=n, batch_size=500)
    finally:
        np.random.set_state(state)
    assert art is not None
    assert np.mean(ours_pred == art_pred) >= 0.9
    both = (ours_pred != ABSTAIN) & (art_pred != ABSTAIN)
    assert both.sum() >= 30
    assert np.mean(np.abs(ours_radius[both] - art_radius[both])) < 0.1 * sigma


def test_evaluation_config_checks_the_smoothing_settings():
    """Check that the certification's settings are refused out of range, naming them."""
    with pytest.raises(ValueError, match="The 'smoothing_sigma' parameter of EvaluationConfig"):
        EvaluationConfig(perturbations=("certified",), smoothing_sigma=0.0)
    with pytest.raises(ValueError, match="The 'smoothing_alpha' parameter"):
        EvaluationConfig(smoothing_alpha=0.7)
    assert EvaluationConfig(radii=(0.5, 0.0, 0.5)).radii == (0.0, 0.5)


def test_the_suite_stores_certified_accuracy_per_radius_with_its_headline():
    """Check that an evaluation asking for "certified" gives one row per radius on the stated
    number of images, decreasing with the radius, and its headline at radius 0.25."""
    import keras

    from gradloss.analysis.summary import summarize_runs
    from gradloss.data import load_dataset
    from gradloss.models import build_cnn
    from gradloss.perturbations import suite

    keras.utils.set_random_seed(0)
    data = load_dataset("digits")
    config = EvaluationConfig(perturbations=("certified",), certify_images=20,
                              smoothing_selection=20, smoothing_samples=100, masking_images=0)
    table, flags = suite.evaluate(build_cnn(), data.x_test, data.y_test, config)
    assert flags is None and table.perturbation.unique().tolist() == ["certified"]
    assert table.level.tolist() == list(config.radii) and set(table.n_images) == {20}
    assert (table.accuracy.diff().dropna() <= 0).all()
    [row] = summarize_runs(table.assign(run_id="r")[
        ["run_id", "perturbation", "level", "accuracy", "accuracy_std"]]).to_dict("records")
    assert row["headline_level"] == "radius=0.25" and 0 <= row["headline"] <= 1
