"""Gradient-masking flags: hand-made tables for each flag, and a model whose gradients vanish."""
import pandas as pd
import pytest

from gradloss.core.errors import InvalidParameterError
from gradloss.perturbations.masking import check_masking, masking_flags
from _attack_helpers import trained  # noqa: F401  (fixture)

EPS = (0.0, 0.05, 0.1, 0.2, 0.3)


def _table(**curves) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"perturbation": name, "epsilon": EPS, "accuracy": acc})
                      for name, acc in curves.items()], ignore_index=True)


HEALTHY_PGD = (0.90, 0.60, 0.30, 0.05, 0.00)
HEALTHY_SQUARE = (0.90, 0.70, 0.45, 0.15, 0.05)


def test_healthy_tables_raise_no_flag():
    """Check that a model PGD breaks better than Square, monotonically, gets no flag."""
    strong = _table(pgd=(0.90, 0.58, 0.27, 0.03, 0.00))
    assert masking_flags(_table(pgd=HEALTHY_PGD, square=HEALTHY_SQUARE), strong) == []


def test_black_box_beating_pgd_is_flagged_with_its_numbers():
    """Check flag (a): Square 10 points below PGD at eps=0.1 is named with both accuracies."""
    square = (0.90, 0.60, 0.20, 0.05, 0.00)
    flags = masking_flags(_table(pgd=HEALTHY_PGD, square=square))
    assert len(flags) == 1
    assert "Square beats PGD at eps=0.1" in flags[0]
    assert "20.0 %" in flags[0] and "30.0 %" in flags[0]


def test_black_box_within_tolerance_is_not_flagged():
    """Check that Square 1 point below PGD is sampling noise, not a flag."""
    square = (0.90, 0.59, 0.29, 0.04, 0.00)
    assert masking_flags(_table(pgd=HEALTHY_PGD, square=square)) == []


def test_accuracy_rising_with_eps_is_flagged():
    """Check flag (b): PGD accuracy going up from eps=0.1 to 0.2 is named."""
    flags = masking_flags(_table(pgd=(0.90, 0.60, 0.30, 0.40, 0.00)))
    assert len(flags) == 1
    assert "rises with eps" in flags[0] and "eps=0.2" in flags[0] and "40.0 %" in flags[0]


def test_accuracy_flat_at_largest_eps_is_flagged():
    """Check flag (b): PGD accuracy at the largest eps as high as clean is named."""
    flags = masking_flags(_table(pgd=(0.90, 0.90, 0.89, 0.89, 0.89)))
    assert len(flags) == 1
    assert "does not fall" in flags[0] and "eps=0.3" in flags[0] and "89.0 %" in flags[0]


def test_strong_pgd_finding_more_errors_is_flagged():
    """Check flag (c): strong PGD 20 points below the default at eps=0.1 is named."""
    strong = _table(pgd=(0.90, 0.55, 0.10, 0.05, 0.00))
    flags = masking_flags(_table(pgd=HEALTHY_PGD), strong)
    assert len(flags) == 1
    assert "Strong PGD" in flags[0] and "eps=0.1" in flags[0] and "10.0 %" in flags[0]


def test_masking_flags_rejects_table_without_columns():
    """Check that a table lacking the accuracy column is refused with the parameter named."""
    with pytest.raises(InvalidParameterError, match="The 'table' parameter of masking_flags"):
        masking_flags(pd.DataFrame({"perturbation": ["pgd"], "epsilon": [0.1]}))


def _saturated(model):
    """softmax(1000 * log p): the same decisions, but saturated, so input gradients are zero."""
    import keras

    class Saturate(keras.layers.Layer):
        def call(self, p):
            return keras.ops.softmax(1000.0 * keras.ops.log(p))

    inputs = keras.Input(model.input_shape[1:])
    return keras.Model(inputs, Saturate()(model(inputs)))


MODEL_CONFIG = dict(epsilons=(0.0, 0.2), n_images=60, square_queries=50)


def test_check_masking_flags_a_saturated_softmax_model(trained):
    """Check that a model whose gradients vanish is flagged: Square beats the failing PGD."""
    from gradloss.perturbations.attacks import AttackConfig

    model, x, y = trained
    config = AttackConfig(**MODEL_CONFIG)
    flags, (table, strong) = check_masking(_saturated(model), x, y, config)
    assert any("Square beats PGD at eps=0.2" in f for f in flags), (flags, table)
    assert masking_flags(table, strong) == flags
    assert set(table["perturbation"]) == {"pgd", "square"}
    assert strong["epsilon"].tolist() == list(config.epsilons)


def test_plain_model_is_not_flagged_for_square_beating_pgd(trained):
    """Check that the same model with working gradients gets no flag (a): PGD beats Square."""
    from gradloss.perturbations.attacks import AttackConfig, accuracy_vs_epsilon

    model, x, y = trained
    config = AttackConfig(**MODEL_CONFIG)
    table = pd.concat([accuracy_vs_epsilon(model, x, y, a, config) for a in ("pgd", "square")])
    assert not any("Square beats PGD" in f for f in masking_flags(table)), table
