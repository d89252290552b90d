"""Adversarial attacks on a tiny trained CNN: agreement with ART, strength, the eps-ball,
seeding, validation."""
import math

import numpy as np
import pytest

from gradloss.core.errors import InvalidParameterError
from gradloss.perturbations.attacks import (ATTACKS, AttackConfig, accuracy_vs_epsilon,
                                            adversarial_examples, attack_subset)
from _attack_helpers import art_examples, trained  # noqa: F401  (fixture)

SMALL = AttackConfig(epsilons=(0.0, 0.1), n_images=100, square_queries=30)


@pytest.fixture(scope="module")
def curves(trained):
    """Accuracy at eps 0 and 0.1 under each attack, on the same 100 test images."""
    model, x, y = trained
    return {a: accuracy_vs_epsilon(model, x, y, a, SMALL).set_index("epsilon")["accuracy"]
            for a in ("fgsm", "pgd")}


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_gradient_attacks_lower_accuracy_at_eps_0_1(curves, attack):
    """Check that FGSM and PGD at eps=0.1 leave clearly fewer correct images than clean."""
    acc = curves[attack]
    assert acc[0.0] > 0.5, "the tiny model did not learn"
    assert acc[0.1] < acc[0.0] - 0.1


def test_pgd_is_at_least_as_strong_as_fgsm(curves):
    """Check that PGD's accuracy at eps=0.1 is no higher than FGSM's (2 points of slack)."""
    assert curves["pgd"][0.1] <= curves["fgsm"][0.1] + 0.02
    assert curves["pgd"][0.0] == curves["fgsm"][0.0]  # clean: the same images, unattacked


@pytest.mark.parametrize("attack", ATTACKS)
def test_adversarial_examples_stay_in_the_eps_ball_and_unit_range(trained, attack):
    """Check that |x_adv - x| <= eps everywhere, x_adv is in [0, 1], and x_adv moved."""
    model, x, y = trained
    x, y = x[:40], y[:40]
    x_adv = adversarial_examples(model, x, y, attack, 0.05, SMALL)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.max(np.abs(x_adv - x)) <= 0.05 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.max(np.abs(x_adv - x)) > 0.04


@pytest.mark.parametrize("attack", ["pgd", "square"])
def test_same_seed_gives_the_same_adversarial_examples(trained, attack):
    """Check that the random starts and squares follow the seed, and only the seed."""
    model, x, y = trained
    x, y = x[:30], y[:30]
    first = adversarial_examples(model, x, y, attack, 0.1, SMALL)
    np.random.seed(123)  # the global generator's state must not matter
    again = adversarial_examples(model, x, y, attack, 0.1, SMALL)
    other = adversarial_examples(model, x, y, attack, 0.1, AttackConfig(seed=1, square_queries=30))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_adversarial_examples_leave_numpy_global_state_alone(trained):
    """Check that the attacks never draw from, nor reset, NumPy's global generator."""
    model, x, y = trained
    np.random.seed(7)
    expected = np.random.random_sample(3)
    np.random.seed(7)
    adversarial_examples(model, x[:10], y[:10], "pgd", 0.1, SMALL)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


def test_eps_zero_returns_the_clean_images(trained):
    """Check that eps=0 is no attack at all."""
    model, x, y = trained
    np.testing.assert_array_equal(adversarial_examples(model, x[:10], y[:10], "pgd", 0.0), x[:10])


def test_accuracy_vs_epsilon_reports_each_eps_and_progress(trained):
    """Check the table's shape, its clean row, and on_progress's (done, total) calls."""
    from gradloss.engines.compiled import predict

    model, x, y = trained
    calls = []
    config = AttackConfig(epsilons=(0.0, 0.05), n_images=50)
    table = accuracy_vs_epsilon(model, x, y, "fgsm", config,
                                on_progress=lambda d, t: calls.append((d, t)))
    assert list(table.columns) == ["perturbation", "epsilon", "accuracy"]
    assert table["epsilon"].tolist() == [0.0, 0.05] and set(table["perturbation"]) == {"fgsm"}
    keep = attack_subset(y, 50, 0)
    clean = np.mean(predict(model, x[keep]).argmax(-1) == y[keep].argmax(-1))
    assert table["accuracy"][0] == pytest.approx(clean)
    assert calls == [(1, 2), (2, 2)]


def test_attack_subset_is_stratified_and_seeded():
    """Check that the attacked images keep the class proportions and follow the seed."""
    labels = np.repeat(np.arange(10), 50)  # 500 rows, 50 per class
    keep = attack_subset(labels, 100, seed=3)
    assert np.bincount(labels[keep]).tolist() == [10] * 10
    np.testing.assert_array_equal(keep, attack_subset(labels, 100, seed=3))
    assert not np.array_equal(keep, attack_subset(labels, 100, seed=4))
    np.testing.assert_array_equal(attack_subset(labels, 900, seed=3), np.arange(500))


@pytest.mark.parametrize("field, value, message", [
    ("epsilons", (0.1, -0.1), "The 'epsilons' parameter of AttackConfig must be a float in the "
                              r"range \[0.0, 1.0\]. Got -0.1 instead."),
    ("epsilons", (math.nan,), "The 'epsilons' parameter of AttackConfig must be a float"),
    ("epsilons", (math.inf,), "The 'epsilons' parameter of AttackConfig must be a float"),
    ("epsilons", (), "The 'epsilons' parameter of AttackConfig must be a non-empty sequence"),
    ("steps", 0, r"The 'steps' parameter of AttackConfig must be an int in the range \[1, inf\)."
                 " Got 0 instead."),
    ("restarts", 1.5, "The 'restarts' parameter of AttackConfig must be an int"),
    ("square_queries", 0, "The 'square_queries' parameter of AttackConfig must be an int"),
    ("n_images", -1, "The 'n_images' parameter of AttackConfig must be an int"),
    ("seed", -1, "The 'seed' parameter of AttackConfig must be an int"),
    ("batch_size", True, "The 'batch_size' parameter of AttackConfig must be an int"),
])
def test_config_rejects_bad_values_naming_the_parameter(field, value, message):
    """Check each invalid AttackConfig value is refused with an sklearn-style message."""
    with pytest.raises(InvalidParameterError, match=message):
        AttackConfig(**{field: value})


def test_config_round_trips_through_a_dict_and_derives_strong_pgd():
    """Check to_dict/from_dict, and that strong() only changes PGD's steps and restarts."""
    config = AttackConfig(epsilons=0.1, n_images=10)
    assert config.epsilons == (0.1,)
    assert AttackConfig.from_dict(config.to_dict()) == config
    strong = config.strong()
    assert (strong.steps, strong.restarts) == (40, 5)
    assert strong.epsilons == config.epsilons and strong.seed == config.seed


def test_unknown_attack_is_refused(trained):
    """Check that an attack name outside ATTACKS is named in the error."""
    model, x, y = trained
    message = "The 'attack' parameter of accuracy_vs_epsilon must be a str among {'fgsm', 'pgd'"
    with pytest.raises(InvalidParameterError, match=message):
        accuracy_vs_epsilon(model, x, y, "cw", SMALL)


def test_fgsm_gives_arts_adversarial_images(trained):
    """Check that the compiled FGSM makes ART's images (no random start: the same steps)."""
    model, x, y = trained
    ours = adversarial_examples(model, x[:100], y[:100], "fgsm", 0.1)
    np.testing.assert_allclose(ours, art_examples(model, x[:100], y[:100], "fgsm", 0.1, SMALL, 0),
                               atol=1e-6)


@pytest.mark.parametrize("attack", ["pgd", "square"])
def test_random_attacks_agree_with_art_within_their_random_start_noise(trained, attack):
    """Check that accuracy under PGD and Square, mean over three seeds, is ART's (mean over
    three seeds of its global generator) within three standard errors of the difference, or
    three images where the seeds agree."""
    from gradloss.engines.compiled import predict

    model, x, y = trained
    keep = attack_subset(y, 100, 0)
    x, y = x[keep], y[keep]

    def accuracy(images):
        return np.mean(predict(model, images).argmax(-1) == y.argmax(-1))

    ours = [accuracy(adversarial_examples(model, x, y, attack, 0.1, AttackConfig(
        seed=seed, square_queries=30))) for seed in (0, 1, 2)]
    art = [accuracy(art_examples(model, x, y, attack, 0.1, SMALL, seed)) for seed in (0, 1, 2)]
    error = math.sqrt((np.var(ours, ddof=1) + np.var(art, ddof=1)) / 3)
    assert abs(np.mean(ours) - np.mean(art)) <= max(3 * error, 3 / len(x)), (ours, art)
    assert np.mean(art) < accuracy(x) - 0.05  # the attack bites (Square, 30 queries: ~10 points)


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_images_attack_depends_on_its_row_not_on_the_others(trained, attack):
    """Check that attacking an image alone, given its row, makes the image it gets among many."""
    model, x, y = trained
    together = adversarial_examples(model, x[:20], y[:20], attack, 0.1, SMALL)
    alone = adversarial_examples(model, x[7:8], y[7:8], attack, 0.1, SMALL, rows=[7])
    assert np.mean(np.abs(alone[0] - together[7]) < 1e-6) > 0.99  # a rounding-size gradient
    #                                                               may change sign in a batch


def test_restarts_attack_only_what_is_unbroken_and_never_lower_strength(trained):
    """Check that more PGD starts break at least the images one start breaks (an image broken
    once stays broken), and that strong PGD is at least as strong as the default."""
    model, x, y = trained
    config = AttackConfig(epsilons=(0.05,), n_images=100)
    one = accuracy_vs_epsilon(model, x, y, "pgd", config).accuracy[0]
    three = accuracy_vs_epsilon(model, x, y, "pgd", AttackConfig(
        epsilons=(0.05,), n_images=100, restarts=3)).accuracy[0]
    strong = accuracy_vs_epsilon(model, x, y, "pgd", config.strong()).accuracy[0]
    assert three <= one and strong <= one + 0.02
