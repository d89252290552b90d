"""Home's quick compare: a calibrated small experiment, what it trains and what it can show.

Chosen by measurement (bench/quick_compare.py; its table is in bench/README.md): the preset whose
difference at sigma = 0.1 came closest to the full protocol's, with all its runs estimated within
10 minutes on 2 CPU cores and one worker. On a GPU: the full protocol.
"""
from __future__ import annotations

from gradloss.analysis import reference
from gradloss.core.config import DATASETS
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.validation import check_choice
from gradloss.ui.estimates import QUICK_MINUTES

QUICK_PRESETS = {  # dataset -> train_size (None: all), epochs (None: each objective's reference)
    "fashion_mnist": {"train_size": 5000, "epochs": None},
    "digits": {"train_size": None, "epochs": None},
}
QUICK_ARMS = ("gradient", "baseline")  # the reference comparison, as calibrated; Train queues any
QUICK_SEEDS = 3
# What the calibration found per preset (3 seeds): the difference gradient - baseline at
# sigma = 0.1 in points with its 95 % interval (its time: estimates.QUICK_MINUTES).
QUICK_MEASURED = {
    "fashion_mnist": {"diff": (-0.3, -5.5, 5.0)},
    "digits": {"diff": (-2.9, -4.1, -1.8)},
}
GPU_SEEDS = 5  # the full protocol, where the worker has a GPU


def quick_experiment(dataset: str, gpu: bool = False, engine: str = "tensorflow") -> ExperimentConfig:
    """Home's one-click comparison: QUICK_ARMS with the quick preset (or on a GPU, the full
    protocol), several seeds."""
    check_choice("quick_experiment", "dataset", dataset, DATASETS)
    preset = {"train_size": None, "epochs": None} if gpu else QUICK_PRESETS[dataset]
    return ExperimentConfig(arms=QUICK_ARMS, seeds=GPU_SEEDS if gpu else QUICK_SEEDS,
                            dataset=dataset, engine=engine, **preset)


def quick_description(spec: ExperimentConfig, gpu: bool) -> str:
    """What the quick compare trains, and for how long."""
    arms = ", ".join(spec.arm_names)
    if gpu:
        return (f"The worker has a GPU: the full reference protocol ({arms}; all training images, "
                f"the reference epochs), {len(spec.seeds)} seeds each, then the noise sweep.")
    size = f"{spec.train_size} training images" if spec.train_size else "all training images"
    data = "Fashion-MNIST" if spec.dataset == "fashion_mnist" else "the bundled digits"
    took = (f" Measured {QUICK_MINUTES[spec.dataset]} minutes on 2 shared CPU cores with one "
            "worker (bench/README.md); the Train page shows a live ETA once it runs.")
    epochs = f"{spec.epochs} epochs" if spec.epochs else "the reference epochs"
    return (f"Trains {arms} with {len(spec.seeds)} seeds each on {size} of {data}, {epochs}, then "
            f"measures test accuracy under noise at each σ.{took}")


def quick_caveat(spec: ExperimentConfig, gpu: bool) -> str:
    """What the quick preset can and cannot show, with what the calibration found."""
    if gpu:
        return (f"Full protocol, {len(spec.seeds)} seeds: the interval of the difference is the "
                "one to quote; if it covers 0 the page says so.")
    diff = QUICK_MEASURED[spec.dataset]["diff"]
    found = (f"Its calibration (3 seeds) gave {diff[0]:+.1f} points at σ = 0.1 "
             f"(95 % CI {diff[1]:+.1f} to {diff[2]:+.1f}).")
    if spec.dataset == "digits":
        return ("Digits (Fashion-MNIST not found) checks that everything runs; it does not answer the "
                f"Fashion-MNIST question: on digits the gradient loss is less accurate under noise "
                f"than the baseline. {found}")
    mean, low, high = reference.load().difference("gradient", "0.1")
    return (f"A subset and 3 seeds cannot settle the question. {found} gradloss's own full "
            f"protocol with 5 seeds puts the gain at {100 * mean:+.1f} points "
            f"(95 % CI {100 * low:+.1f} to {100 * high:+.1f}; the reference results below); at "
            "this size the interval is wide and covered 0 in the calibration; when it does, the "
            "result says so (\"not distinguishable\"). It shows the seed-to-seed spread and that "
            "the pipeline works; for a number to quote, reproduce the reference with several "
            "seeds.")
