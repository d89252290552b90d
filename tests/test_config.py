"""Config validation: every bad value is refused with its name, the rule and the value."""
import json
import math

import numpy as np

import pytest

from gradloss.core.config import (MAX_EPOCHS, MAX_SEED, MIN_TRAIN_SIZE, InvalidParameterError,
                                  SweepConfig, TrainConfig)


def test_defaults_follow_the_reference_protocol():
    """Check that each objective defaults to its reference epochs and batch size."""
    assert (TrainConfig("gradient").epochs, TrainConfig("gradient").batch_size) == (10, 100)
    assert (TrainConfig("baseline").epochs, TrainConfig("baseline").batch_size) == (20, 32)
    assert (TrainConfig("mse").epochs, TrainConfig("mse").batch_size) == (10, 100)
    noisy, penalised = TrainConfig("noise_augmented"), TrainConfig("input_gradient")
    assert (noisy.epochs, noisy.batch_size, noisy.train_noise_sigma, noisy.penalty_weight) == (20, 32, 0.1, None)
    assert (penalised.penalty_weight, penalised.train_noise_sigma) == (0.1, None)
    assert penalised.objective_params == {"penalty_weight": 0.1} and TrainConfig().objective_params == {}


def test_reference_protocol_is_read_from_the_objectives_registry():
    """Check that config's protocol table and objective names come from the one registry."""
    from gradloss import objectives
    from gradloss.core.config import OBJECTIVES, REFERENCE_PROTOCOL
    assert OBJECTIVES[:2] == ("gradient", "baseline") and len(OBJECTIVES) == 6
    assert REFERENCE_PROTOCOL["mse_penalty"] == {"epochs": 10, "batch_size": 100,
                                                 "penalty_weight": 100 / (4 * 784)}
    assert REFERENCE_PROTOCOL["input_gradient"] == {
        "epochs": 20, "batch_size": 32, "penalty_weight": objectives.get("input_gradient").params["penalty_weight"]}


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, r"'epochs' parameter of TrainConfig must be an int in the range \[1, 500\]\. Got 0"),
    ({"batch_size": -5}, r"'batch_size' .* \[1, 60000\]\. Got -5"),
    ({"batch_size": 101, "train_size": 100}, r"'batch_size' .* \[1, 100\] \(at most the training-set "
                                              r"size: lower it, or raise train_size\)\. Got 101"),
    ({"dataset": "cifar"}, r"'dataset' .* among \{'fashion_mnist', 'digits', 'mnist', "
                           r"'cifar10', 'cifar100'\}\. Got 'cifar'"),
    ({"objective": "hinge"}, r"'objective' .* Got 'hinge'"),
    ({"engine": "torch"}, r"'engine' .* Got 'torch'"),
    ({"learning_rate": math.nan}, r"'learning_rate' .* \(0\.0, inf\)\. Got nan"),
    ({"learning_rate": math.inf}, r"'learning_rate' .* Got inf"),
    ({"learning_rate": 0.0}, r"'learning_rate' .* Got 0\.0"),
    ({"train_size": 70000}, r"'train_size' .* \[10, 60000\]\. Got 70000"),
    ({"epochs": 2.5}, r"'epochs' .* Got 2\.5"),
    ({"epochs": True}, r"'epochs' .* Got True"),
    ({"objective": "noise_augmented", "train_noise_sigma": 1.01},
     r"'train_noise_sigma' .* a float in the range \[0\.0, 1\.0\]\. Got 1\.01"),
    ({"objective": "noise_augmented", "train_noise_sigma": "0.1"}, r"'train_noise_sigma' .* Got '0\.1'"),
    ({"objective": "input_gradient", "penalty_weight": -0.5},
     r"'penalty_weight' .* \[0\.0, 10000\.0\]\. Got -0\.5"),
    ({"objective": "input_gradient", "penalty_weight": math.nan}, r"'penalty_weight' .* Got nan"),
    ({"objective": "mse", "penalty_weight": 0.1},
     r"'penalty_weight' .* must be None for objective 'mse' \(it applies to 'input_gradient' and "
     r"'mse_penalty' only\)"),
    ({"objective": "input_gradient", "train_noise_sigma": 0.0},
     r"'train_noise_sigma' .* must be None for objective 'input_gradient'"),
])
def test_train_config_refuses_bad_values(kwargs, message):
    """Check that a bad TrainConfig value raises a ValueError that names field, rule and value."""
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_sizes_have_documented_maxima():
    """Check that epochs, seed and train_size above their named maxima are refused, naming the maximum."""
    assert (MAX_EPOCHS, MAX_SEED, MIN_TRAIN_SIZE) == (500, 2**31 - 1, 10)
    assert TrainConfig(epochs=MAX_EPOCHS, seed=MAX_SEED).epochs == 500
    with pytest.raises(InvalidParameterError, match=r"'epochs' .* \[1, 500\]\. Got 100000 instead"):
        TrainConfig(epochs=100000)
    with pytest.raises(InvalidParameterError, match=rf"'seed' .* \[0, {MAX_SEED}\]\. Got {MAX_SEED + 1}"):
        TrainConfig(seed=MAX_SEED + 1)
    with pytest.raises(InvalidParameterError, match=r"'train_size' .* \[10, 1437\]\. Got 9 instead"):
        TrainConfig(dataset="digits", train_size=MIN_TRAIN_SIZE - 1)


def test_errors_carry_the_parameter_the_rule_in_words_and_the_value():
    """Check that a refused value can be reported in a form's words: parameter, rule, value."""
    with pytest.raises(InvalidParameterError) as info:
        TrainConfig(epochs=0)
    assert (info.value.parameter, info.value.words, info.value.value) == \
        ("epochs", "a whole number from 1 to 500", 0)
    with pytest.raises(InvalidParameterError) as info:
        TrainConfig(learning_rate=0.0)
    assert (info.value.parameter, info.value.words) == ("learning_rate", "a number greater than 0")


def test_the_reference_batch_is_capped_at_the_training_set_and_a_larger_one_says_how_to_fix_it():
    """Check that the documented minimum train_size trains with the reference protocol (its batch
    capped at the training-set size), while an explicit batch larger than the set is refused
    saying how to fix it."""
    assert TrainConfig(dataset="digits", train_size=MIN_TRAIN_SIZE).batch_size == MIN_TRAIN_SIZE
    assert TrainConfig("baseline", dataset="digits", train_size=99).batch_size == 32  # not capped
    with pytest.raises(InvalidParameterError, match=r"'batch_size' .* \[1, 10\] \(at most the "
                                                    r"training-set size: lower it, or raise "
                                                    r"train_size\)\. Got 100 instead"):
        TrainConfig(dataset="digits", train_size=10, batch_size=100)


def test_numpy_scalars_become_python_numbers_in_every_config():
    """Check that NumPy ints and floats are taken where ints and floats are, and kept as Python
    numbers, so every config's dict is JSON (the store, a checkpoint, a queued plan)."""
    from gradloss.core.evaluation import EvaluationConfig
    from gradloss.core.experiment import ExperimentConfig
    from gradloss.core.plan import RunPlan
    train = TrainConfig("input_gradient", dataset="digits", epochs=np.int64(1), batch_size=np.int32(20),
                        train_size=np.int64(100), seed=np.uint8(3), learning_rate=np.float32(0.5),
                        penalty_weight=np.float64(0.25))
    sweep = SweepConfig(sigmas=np.array([0.0, 0.1]), draws=np.int64(2), seed=np.int64(1),
                        batch_size=np.int16(50))
    evaluation = EvaluationConfig(perturbations=("contrast", "fgsm"), severities=np.array([2, 1]),
                                  epsilons=np.float32(0.25), steps=np.int64(3), attack_images=np.int64(9))
    experiment = ExperimentConfig(
        arms=("gradient", {"objective": "input_gradient", "penalty_weight": np.float64(0.5)}),
        reference="gradient", seeds=np.int64(2), dataset="digits", epochs=np.int64(1),
        train_size=np.int64(100), batch_size=np.int64(10), sweep=sweep, evaluation=evaluation)
    assert [type(v) for v in (train.epochs, train.batch_size, train.train_size, train.seed)] == [int] * 4
    assert type(train.learning_rate) is float and type(train.penalty_weight) is float
    assert (train.learning_rate, train.penalty_weight) == (0.5, 0.25)
    assert type(sweep.draws) is int and evaluation.severities == (1, 2) and type(evaluation.steps) is int
    assert experiment.seeds == (0, 1) and type(experiment.epochs) is int
    assert type(experiment.arms[1]["penalty_weight"]) is float
    assert ExperimentConfig.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment
    for plan in [RunPlan(train, sweep, evaluation), *(plan for _, plan in experiment.plans())]:
        assert RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan  # was a TypeError


def test_config_rejects_negative_sigma():
    """Check that a negative sigma is refused."""
    with pytest.raises(InvalidParameterError, match=r"'sigmas' .* \[0\.0, inf\)\. Got -0\.1"):
        SweepConfig(sigmas=(0.0, -0.1))


def test_round_trip_and_unknown_keys():
    """Check that to_dict/from_dict round-trips and unknown keys are named."""
    config = TrainConfig("baseline", dataset="digits", train_size=500, seed=4)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InvalidParameterError, match=r"Unknown TrainConfig parameter\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    assert SweepConfig.from_dict({"sigmas": [0, 0.1]}).sigmas == (0.0, 0.1)


def test_available_engines_lists_installed_packages_tensorflow_first(monkeypatch):
    import importlib.util

    from gradloss.engines import backend
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "jax" else real(name))
    assert backend.available_engines() == ("tensorflow",)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert backend.available_engines() == ("tensorflow", "jax")


def test_seeds_batch_for_every_objective_but_the_noise_augmented_one():
    """Check that seeds of noise_augmented never share a batch: its noise follows each run's seed."""
    from gradloss.core.config import OBJECTIVES, batchable
    for objective in OBJECTIVES:
        seeds = [TrainConfig(objective, dataset="digits", engine="jax", seed=s) for s in (0, 1)]
        assert batchable(seeds) == (objective != "noise_augmented")
