"""The perturbation registry, EvaluationConfig's checks, summaries, and the store's evaluation verbs."""
import math

import numpy as np
import pandas as pd
import pytest

from gradloss.core.plan import RunPlan
from gradloss.core.progress import Progress
from gradloss.core.config import REFERENCE_SIGMAS, TrainConfig
from gradloss.core.errors import InvalidParameterError, RunNotFound
from gradloss.analysis import summary
from gradloss.analysis.summary import mean_corruption_error
from gradloss.core.evaluation import CORRUPTIONS
from gradloss.core.evaluation import (EVALUATED, PERTURBATIONS, EvaluationConfig,
                                           default_evaluation, of_kind)
from gradloss.service.store import Store


def test_registry_holds_gaussian_first_then_every_corruption_and_attack():
    """Check that gaussian keeps the reference sigmas and each family has its level kind."""
    assert list(PERTURBATIONS)[0] == "gaussian"
    assert PERTURBATIONS["gaussian"].levels == REFERENCE_SIGMAS
    assert of_kind("corruption") == CORRUPTIONS
    assert of_kind("attack") == ("fgsm", "pgd", "square")
    assert {PERTURBATIONS[n].level_name for n in CORRUPTIONS} == {"severity"}
    assert "gaussian" not in EVALUATED and len(EVALUATED) == len(CORRUPTIONS) + 3 + 1
    assert "certified" in EVALUATED and "certified" not in EvaluationConfig().perturbations


@pytest.mark.parametrize("changes, message", [
    ({"perturbations": ("blur",)}, "The 'perturbations' parameter of EvaluationConfig must be a "
                                   "str among {'shot_noise'"),
    ({"perturbations": ("gaussian",)}, "'perturbations' parameter .* Got 'gaussian' instead"),
    ({"severities": (0,)}, r"The 'severities' parameter of EvaluationConfig must be an int in "
                           r"the range \[1, 5\]. Got 0 instead."),
    ({"severities": (6,)}, "Got 6 instead"),
    ({"severities": ()}, "'severities' parameter .* non-empty"),
    ({"epsilons": (-0.1,)}, r"The 'epsilons' parameter of EvaluationConfig must be a float in "
                            r"the range \[0.0, 1.0\]. Got -0.1 instead."),
    ({"epsilons": (math.nan,)}, "Got nan instead"),
    ({"epsilons": (math.inf,)}, "Got inf instead"),
    ({"steps": 0}, r"The 'steps' parameter of EvaluationConfig must be an int in the range "
                   r"\[1, inf\). Got 0 instead."),
    ({"attack_images": 0}, "'attack_images' parameter"),
])
def test_evaluation_config_refuses_bad_values_naming_the_parameter(changes, message):
    with pytest.raises(InvalidParameterError, match=message):
        EvaluationConfig(**changes)


def test_evaluation_config_round_trips_and_splits_kinds():
    config = EvaluationConfig(perturbations=("pgd", "contrast", "pgd"), epsilons=(0.1, 0),
                              severities=(3, 1))
    assert config.perturbations == ("pgd", "contrast")
    assert (config.corruptions, config.attacks) == (("contrast",), ("pgd",))
    assert (config.epsilons, config.severities) == ((0.0, 0.1), (1, 3))
    assert EvaluationConfig.from_dict(config.to_dict()) == config
    assert config.attack_config().epsilons == (0.0, 0.1)
    assert default_evaluation("digits").attack_images < default_evaluation("fashion_mnist").attack_images
    with pytest.raises(InvalidParameterError, match="Unknown EvaluationConfig parameter"):
        EvaluationConfig.from_dict({"colour": 1})


def _results():
    """Two runs: gaussian sweep, two corruptions at severities 1-2, fgsm at eps 0/0.1."""
    rows = []
    for run, drop in (("g", 0.05), ("b", 0.10)):
        rows += [(run, "gaussian", s, 0.9 - drop * 10 * s, 0.01) for s in (0.0, 0.1, 0.2)]
        rows += [(run, c, sev, 0.8 - drop * sev, 0.0) for c in ("contrast", "rotate")
                 for sev in (1, 2)]
        rows += [(run, "fgsm", e, 0.9 - drop * 40 * e, 0.0) for e in (0.0, 0.1)]
    return pd.DataFrame(rows, columns=summary.RESULT_COLUMNS)


def test_summaries_give_auc_headline_and_mce():
    """Check AUC, headline accuracy and mCE against direct computations."""
    table = _results()
    runs = summary.summarize_runs(table).set_index(["run_id", "perturbation"])
    g_noise = table[(table.run_id == "g") & (table.perturbation == "gaussian")]
    assert runs.loc[("g", "gaussian"), "auc"] == pytest.approx(
        np.trapezoid(g_noise.accuracy, g_noise.level) / 0.2)
    assert runs.loc[("g", "gaussian"), "headline"] == pytest.approx(0.9 - 0.05)
    assert runs.loc[("b", "fgsm"), "headline"] == pytest.approx(0.9 - 0.4)
    assert runs.loc[("g", "contrast"), "headline"] == pytest.approx(0.8 - 0.05 * 1.5)
    corr = table[table.perturbation.isin(["contrast", "rotate"])].rename(columns={"level": "severity"})
    expected = mean_corruption_error(corr[corr.run_id == "g"], corr[corr.run_id == "b"])
    assert summary.corruption_error(table, "g", "b") == pytest.approx(expected)
    assert summary.corruption_error(table, "g", "b") < 1  # g loses less under corruption
    shown = summary.comparison_table(table, {"g": ("G", "gradient"), "b": ("B", "baseline")},
                                             reference="b")
    assert list(shown.perturbation) == ["Gaussian noise", "contrast", "rotate", "FGSM",
                                        "mCE (corruptions)"]
    assert shown["difference at headline"].iloc[0] == pytest.approx(0.05)


def test_per_seed_frames_feed_stats_summarize_per_perturbation():
    """Check that per_seed rows give one stats.summarize block per perturbation and level."""
    base = _results()
    table = pd.concat([base.assign(run_id=base.run_id + str(seed),
                                   accuracy=base.accuracy - 0.01 * seed) for seed in (0, 1, 2)])
    arms = {"gradient": [("g0", 0), ("g1", 1), ("g2", 2)], "baseline": [("b0", 0), ("b1", 1), ("b2", 2)]}
    frame = summary.per_seed(table, arms)
    assert list(frame.columns) == ["arm", "seed", "perturbation", "level", "accuracy"]
    out = summary.summarize_per_seed(frame, reference="baseline")
    row = out[(out.perturbation == "fgsm") & (out.arm == "gradient") & (out.level == 0.1)].iloc[0]
    assert row["diff"] == pytest.approx((0.9 - 0.2) - (0.9 - 0.4))
    assert row["n"] == 3


def test_headline_summary_takes_each_headline_and_skips_perturbations_it_does_not_know():
    """Check the headline over seeds (ε = 0.1 for an attack, the mean over severities for a
    corruption), paired by seed, and that rows of an unknown perturbation (written by a newer
    gradloss) are left out rather than breaking the table."""
    rows = []
    for arm, shift in (("gradient", 0.1), ("baseline", 0.0)):
        for seed in (0, 1):
            rows += [(arm, seed, "fgsm", 0.0, 0.9), (arm, seed, "fgsm", 0.1, 0.3 + shift + seed / 10),
                     (arm, seed, "contrast", 1.0, 0.8), (arm, seed, "contrast", 2.0, 0.6 + shift),
                     (arm, seed, "from_the_future", 1.0, 0.5)]
    frame = pd.DataFrame(rows, columns=["arm", "seed", "perturbation", "level", "accuracy"])
    out = summary.headline_summary(frame, reference="baseline")
    assert set(out.perturbation) == {"fgsm", "contrast"}
    fgsm = out[(out.perturbation == "fgsm") & (out.arm == "gradient")].iloc[0]
    assert fgsm.level == "ε=0.1" and fgsm["diff"] == pytest.approx(0.1) and fgsm["n"] == 2
    contrast = out[(out.perturbation == "contrast") & (out.arm == "gradient")].iloc[0]
    assert contrast.level == "mean over severities" and contrast["mean"] == pytest.approx(0.75)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs.sqlite")


def test_store_keeps_evaluations_plans_flags_and_grid_images(store):
    run_id = store.runs.create(RunPlan(TrainConfig(dataset="digits")))
    assert store.evaluations.plan_of(run_id) is None
    store.evaluations.plan(run_id, EvaluationConfig(perturbations=("fgsm",)))
    assert store.evaluations.plan_of(run_id).status == "queued"
    rows = pd.DataFrame({"perturbation": "fgsm", "level": [0.0, 0.1], "accuracy": [0.9, 0.5],
                         "accuracy_std": 0.0, "n_images": 100, "seed": 0})
    store.evaluations.save_rows(run_id, rows)
    store.evaluations.save_rows(run_id, rows.assign(accuracy=[0.9, 0.4]))  # upsert, no duplicates
    got = store.evaluations.rows([run_id])
    assert list(got.accuracy) == [0.9, 0.4] and set(got.run_id) == {run_id}
    store.evaluations.set_status(run_id, "running", progress=Progress(phase="FGSM (1/1)"))
    store.evaluations.save_masking_flags(run_id, ["PGD accuracy rises with eps"])
    plan = store.evaluations.plans([run_id])[run_id]
    assert (plan.status, plan.progress.phase, plan.masking_flags) == \
        ("running", "FGSM (1/1)", ("PGD accuracy rises with eps",))
    image = np.linspace(0, 1, 784, dtype=np.float16).tobytes()
    store.evaluations.save_examples(run_id, pd.DataFrame({
        "perturbation": ["fgsm", "contrast"], "level": [0.1, 3.0], "index": [4, 4], "label": 1,
        "prediction": [2, 1], "confidence": 0.5, "image": [image, None]}))
    examples = store.evaluations.examples(run_id)
    assert examples.image.iloc[1] == image and examples.image.iloc[0] is None
    with pytest.raises(ValueError, match="'status' parameter of set_status"):
        store.evaluations.set_status(run_id, "paused")
    with pytest.raises(RunNotFound, match="nope"):
        store.evaluations.save_rows("nope", rows)


def test_store_gives_per_seed_frames_of_experiment_runs(store):
    """Check that summary.per_seed pairs each run's sweep and evaluations with its config seed."""
    arms = {}
    for arm, shift in (("gradient", 0.1), ("baseline", 0.0)):
        for seed in (3, 4):
            run_id = store.runs.create(RunPlan(TrainConfig(objective=arm, dataset="digits", seed=seed)))
            store.results.save_robustness(run_id, pd.DataFrame({"sigma": [0.0, 0.1], "accuracy": [0.9, 0.7 + shift],
                                                        "accuracy_std": 0.0}), draws=1, seed=0)
            store.evaluations.save_rows(run_id, pd.DataFrame({
                "perturbation": "pgd", "level": [0.1], "accuracy": [0.2 + shift + seed / 100],
                "accuracy_std": 0.0, "n_images": 100, "seed": 0}))
            arms.setdefault(arm, []).append(run_id)
    ids = [run_id for runs in arms.values() for run_id in runs]
    table = summary.results(store.results.robustness(ids), store.evaluations.rows(ids))
    frame = summary.per_seed(table, {arm: [(r, store.runs.get(r).config.seed) for r in runs]
                                     for arm, runs in arms.items()})
    assert sorted(frame.seed.unique()) == [3, 4] and len(frame) == 4 * 3
    out = summary.summarize_per_seed(frame, reference="baseline")
    pgd = out[(out.perturbation == "pgd") & (out.arm == "gradient")].iloc[0]
    assert pgd["diff"] == pytest.approx(0.1) and pgd["n"] == 2


def test_rises_with_noise_flags_only_a_rise_beyond_the_draws_spread():
    """Check that a sweep whose accuracy climbs with σ (an undertrained model) is flagged with
    its clean and highest accuracy, and that a rise within the draws' std or the margin is not."""
    from gradloss.analysis.summary import rises_with_noise

    sweep = pd.DataFrame({
        "run_id": ["up"] * 3 + ["flat"] * 3 + ["noisy"] * 3,
        "sigma": [0.0, 0.1, 0.2] * 3,
        "accuracy": [0.5485, 0.58, 0.6128, 0.90, 0.905, 0.80, 0.50, 0.54, 0.45],
        "accuracy_std": [0.0, 0.01, 0.01, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0]})
    assert rises_with_noise(sweep) == {"up": (0.5485, 0.6128, 0.2)}
