"""The robustness–accuracy frontier: objectives at several strengths under one protocol
(core.frontier), the points, the front and the comparisons at equal clean accuracy
(analysis.frontier), and `gradloss frontier`."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from gradloss.analysis import frontier as analysis
from gradloss.cli.main import main
from gradloss.core import frontier
from gradloss.core.errors import InvalidParameterError
from gradloss.core.experiment import ExperimentConfig
from test_pages import home  # noqa: F401  (fixture: an empty home, no worker, no Fashion-MNIST)


def test_a_frontier_is_an_experiment_of_every_strength_under_one_protocol():
    """Check the default frontier: each strength an arm named after it, every run at the same
    epochs and batch size, the spec round-trips and its strengths read back."""
    spec = frontier.frontier_experiment(seeds=2, dataset="digits")
    grids = frontier.DEFAULT_GRIDS
    assert len(spec.arms) == 1 + sum(len(g) for g in grids.values())
    assert spec.reference == "gradient" and spec.arm_names[0] == "gradient"
    assert "input_gradient λ=0.1" in spec.arm_names and "noise_augmented σ_train=0.3" in spec.arm_names
    configs = dict(spec.configs()[:len(spec.arms)])
    assert {(c.epochs, c.batch_size) for c in configs.values()} == {(10, 100)}
    assert configs["input_gradient λ=0.03"].penalty_weight == 0.03
    assert configs["noise_augmented σ_train=0.5"].train_noise_sigma == 0.5
    assert ExperimentConfig.from_dict(spec.to_dict()) == spec
    strengths = frontier.arm_strengths(spec)
    assert strengths["gradient"] == ("gradient", None)
    assert [s for o, s in strengths.values() if o == "mse_penalty"] == list(grids["mse_penalty"])
    # any experiment: an arm without its own strength has its objective's reference value
    plain = ExperimentConfig(arms=("input_gradient", "baseline"), seeds=2, dataset="digits")
    assert frontier.arm_strengths(plain) == {"input_gradient": ("input_gradient", 0.1),
                                             "baseline": ("baseline", None)}


@pytest.mark.parametrize("grids, match", [
    ({"input_gradient": (-1.0,)}, r"grids\['input_gradient'\].*range \[0.0, 10000.0\]"),
    ({"gradient": (0.1,)}, r"None: gradient takes no strength"),
    ({"noise_augmented": (0.1, 0.1)}, "distinct strengths"),
    ({"noise_augmented": ()}, "a sequence of 1 to 12 strengths"),
    ({"mse": (0.1,)}, "grids of the chosen objectives"),
])
def test_a_bad_grid_is_refused_naming_it(grids, match):
    with pytest.raises(InvalidParameterError, match=match):
        frontier.frontier_experiment(("gradient", "input_gradient", "noise_augmented"), grids)


def test_the_front_holds_the_points_no_other_point_beats_on_both_axes():
    clean, robust = [0.90, 0.80, 0.85, 0.70, 0.80], [0.50, 0.60, 0.55, 0.50, 0.59]
    assert analysis.on_front(clean, robust).tolist() == [True, True, True, False, False]


def _per_seed(curves: dict, seeds: int, rng) -> pd.DataFrame:
    """arm -> (clean mean, robust mean at 0.1): per-seed values with paired seed effects."""
    effect = rng.normal(0, 0.01, seeds)
    rows = []
    for arm, (clean, robust) in curves.items():
        noise = rng.normal(0, 0.004, (2, seeds))
        for s in range(seeds):
            rows.append((arm, s, 0.0, clean + effect[s] + noise[0, s]))
            rows.append((arm, s, 0.1, robust + effect[s] + noise[1, s]))
    return pd.DataFrame(rows, columns=["arm", "seed", "sigma", "accuracy"])


def test_objectives_are_compared_where_their_clean_accuracies_meet():
    """Check the comparison at equal clean accuracy against a hand computation: the level is
    the highest clean accuracy both reach; the penalty curve is read there between its two
    bracketing strengths, seed by seed, and the paired t-test is scipy's."""
    rng = np.random.default_rng(0)
    curves = {"ig 0.01": (0.90, 0.70), "ig 0.1": (0.86, 0.76), "ig 1": (0.80, 0.80),
              "gl": (0.88, 0.78)}
    strengths = {"ig 0.01": ("input_gradient", 0.01), "ig 0.1": ("input_gradient", 0.1),
                 "ig 1": ("input_gradient", 1.0), "gl": ("gradient", None)}
    per_seed = _per_seed(curves, 5, rng)
    found = analysis.frontier(per_seed, strengths, 0.1)

    wide = {s: per_seed[per_seed.sigma == s].pivot(index="seed", columns="arm",
                                                   values="accuracy") for s in (0.0, 0.1)}
    means = wide[0.0].mean()
    level = means["gl"]  # below the penalty's best (0.90), above its worst: inside its range
    w = (level - means["ig 0.01"]) / (means["ig 0.1"] - means["ig 0.01"])
    penalty = (1 - w) * wide[0.1]["ig 0.01"] + w * wide[0.1]["ig 0.1"]
    [row] = found.comparisons.itertuples()
    assert (row.objective, row.other, row.level, row.n) == ("gradient", "input_gradient", 0.1, 5)
    assert row.clean_level == pytest.approx(level)
    assert row.mean == pytest.approx((wide[0.1]["gl"] - penalty).mean())
    assert row.p_value == pytest.approx(scipy.stats.ttest_rel(wide[0.1]["gl"], penalty).pvalue)
    assert row.low < row.mean < row.high
    [sentence] = found.sentences()
    assert sentence.startswith(f"At σ = 0.1 and equal clean accuracy ({100 * level:.1f} %), "
                               "gradient loss is")
    assert "more accurate than input-gradient penalty" in sentence  # 0.78 against ~0.73

    points = found.points.set_index("arm")
    assert points.loc["gl", "clean"] == pytest.approx(means["gl"])
    assert points.loc["gl", "clean_low"] < means["gl"] < points.loc["gl", "clean_high"]
    # the gradient loss beats λ = 0.1 on both axes; the weakest and strongest penalties stay
    assert points.on_front.to_dict() == {"ig 0.01": True, "ig 0.1": False, "ig 1": True,
                                         "gl": True}


def test_curves_that_share_no_clean_accuracy_are_not_compared():
    rng = np.random.default_rng(1)
    per_seed = _per_seed({"a": (0.95, 0.5), "b": (0.60, 0.55), "c": (0.70, 0.58)}, 3, rng)
    found = analysis.frontier(per_seed, {"a": ("gradient", None), "b": ("noise_augmented", 0.3),
                                         "c": ("noise_augmented", 0.1)}, 0.1)
    assert found.comparisons.empty and found.varied
    assert found.sentences() == ["gradient loss and noise augmentation reach no clean accuracy "
                                 "in common: they cannot be compared at equal clean accuracy "
                                 "(train more strengths to widen their ranges)."]


def test_gradloss_frontier_refuses_bad_arguments_naming_them(capsys):
    for argv, words in ((["--grid", "input_gradient:0.1"], "OBJECTIVE=S1,S2"),
                        (["--grid", "input_gradient=a,b"], "input_gradient=a,b"),
                        (["--sigma", "0.12"], "one of the sweep's noise levels"),
                        (["--objectives", "gradient,nope"], "'nope'")):
        with pytest.raises(SystemExit) as exit_:
            main(["frontier", "--dataset", "digits", *argv])
        assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_gradloss_frontier_trains_every_strength_and_writes_the_frontier(tmp_path, capsys):
    """A tiny frontier end to end: two strengths of noise augmentation and the gradient loss,
    two seeds; the points written are the runs' own sweeps."""
    out = tmp_path / "out"
    assert main(["frontier", "--dataset", "digits", "--objectives", "gradient,noise_augmented",
                 "--grid", "noise_augmented=0.05,0.3", "--seeds", "2", "--epochs", "1",
                 "--train-size", "100", "--draws", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Frontier at σ = 0.1" in printed
    points = pd.read_csv(out / "frontier_points.csv")
    assert points.arm.tolist() == ["gradient", "noise_augmented σ_train=0.05", "noise_augmented σ_train=0.3"]
    per_seed = pd.read_csv(out / "per_seed.csv")
    clean = per_seed[per_seed.sigma == 0].groupby("arm").accuracy.mean()
    assert points.set_index("arm").clean.to_dict() == pytest.approx(clean.to_dict())
    assert (points.n == 2).all()


def _stored_frontier(store) -> tuple[str, dict]:
    """A finished digits frontier stored directly: noise augmentation at three strengths (more
    training noise: less clean accuracy, more robustness) and the gradient loss, three seeds
    sharing their luck. Returns its id and arm -> (clean, robust at 0.1) means."""
    from gradloss.core.plan import RunPlan

    means = {"gradient": (0.86, 0.80), "noise_augmented σ_train=0.05": (0.90, 0.72),
             "noise_augmented σ_train=0.2": (0.85, 0.78), "noise_augmented σ_train=0.5": (0.78, 0.81)}
    spec = frontier.frontier_experiment(("gradient", "noise_augmented"),
                                        {"noise_augmented": (0.05, 0.2, 0.5)}, seeds=3,
                                        dataset="digits", train_size=200, epochs=1)
    experiment_id = store.experiments.create(spec)
    for arm, plan in spec.plans():
        run_id = store.runs.create(plan, experiment_id=experiment_id, arm=arm)
        store.runs.start(run_id, "w")
        seed = plan.train.seed
        luck, jitter = 0.01 * (seed - 1), 0.002 * ((seed * 5 + len(arm)) % 3 - 1)
        clean, robust = means[arm]
        store.results.save_robustness(run_id, pd.DataFrame({
            "sigma": (0.0, 0.1, 0.2), "accuracy": (clean + luck, robust + luck + jitter,
                                                   robust - 0.1 + luck - jitter),
            "accuracy_std": 0.0}), 1, 0)
        store.runs.finish(run_id, "done")
    return experiment_id, means


def test_the_frontier_page_draws_the_points_the_front_and_the_comparison(home):
    """Check the Frontier page on a stored frontier: a line per objective through its
    strengths with interval bars on both axes, the front ringed, the comparison at equal clean
    accuracy in words, the table; the σ slider moves the robust axis."""
    import json

    from streamlit.testing.v1 import AppTest

    from gradloss.service.store import Store
    from test_pages import ROOT, texts

    _, means = _stored_frontier(Store.default())
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/frontier.py").run()
    assert not at.exception, at.exception
    assert at.select_slider(key="frontier_sigma").value == 0.1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {t["name"]: t for t in spec["data"]}
    assert set(traces) == {"gradient loss", "noise augmentation", "on the front"}
    noise = traces["noise augmentation"]
    assert noise["text"] == ["σ_train=0.05", "σ_train=0.2", "σ_train=0.5"]  # weakest first
    assert noise["x"] == pytest.approx([100 * means[f"noise_augmented σ_train={s}"][0]
                                        for s in ("0.05", "0.2", "0.5")])
    assert len(noise["error_x"]["array"]) == 3 and len(noise["error_y"]["array"]) == 3
    # σ_train=0.2 (85, 78) is beaten on both axes by the gradient loss (86, 80); the rest are not
    assert sorted(traces["on the front"]["x"]) == pytest.approx([78.0, 86.0, 90.0])
    text = texts(at.markdown)
    assert "At σ = 0.1 and equal clean accuracy (86.0 %), gradient loss is" in text, text
    table = at.dataframe[0].value
    assert table.arm.tolist() == list(means) and table.front.tolist() == ["yes", "yes", "", "yes"]
    at.select_slider(key="frontier_sigma").set_value(0.2).run()
    assert "At σ = 0.2 and equal clean accuracy (86.0 %)" in texts(at.markdown)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"] == "accuracy at σ = 0.2 (%)"

    # an attack as the robust axis, once the runs were evaluated under it
    store = Store.default()
    pgd = {"gradient": 0.50, "noise_augmented σ_train=0.05": 0.30, "noise_augmented σ_train=0.2": 0.40,
           "noise_augmented σ_train=0.5": 0.45}
    from gradloss.core.evaluation import EvaluationConfig

    for run in store.runs.list():
        store.evaluations.plan(run.run_id, EvaluationConfig(perturbations=("pgd",),
                                                            epsilons=(0.0, 0.1)))
        store.evaluations.save_rows(run.run_id, pd.DataFrame({
            "perturbation": "pgd", "level": [0.0, 0.1],
            "accuracy": [means[run.arm][0], pgd[run.arm] + 0.01 * (run.config.seed - 1)],
            "accuracy_std": 0.0, "n_images": 100, "seed": 0}))
        store.evaluations.set_status(run.run_id, "done")
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=30)
    at.switch_page("app_pages/frontier.py").run()
    at.selectbox(key="frontier_perturbation").set_value("pgd").run()
    assert not at.exception, at.exception
    assert at.select_slider(key="frontier_level_pgd").value == 0.1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["title"]["text"] == "accuracy at PGD ε = 0.1 (%)"
    ys = {t["name"]: t["y"] for t in spec["data"]}
    assert ys["noise augmentation"] == pytest.approx([30.0, 40.0, 45.0])
    assert ys["gradient loss"] == pytest.approx([50.0])
    text = texts(at.markdown)
    assert "At PGD ε = 0.1 and equal clean accuracy (86.0 %), gradient loss is" in text, text


def test_the_train_page_queues_a_frontier_of_the_chosen_objectives(home):
    """Check the experiment form's frontier box: every default strength of the chosen
    objectives, one protocol, queued as one experiment."""
    from gradloss.service.store import Store
    from test_pages import app, texts

    at = app("app_pages/train.py")
    at.selectbox(key="dataset").set_value("digits").run()
    at.multiselect(key="exp_objectives").set_value(["gradient", "input_gradient"])
    at.number_input(key="exp_seeds").set_value(2)
    at.number_input(key="exp_train_size").set_value(200)
    at.checkbox(key="exp_frontier").check()
    next(b for b in at.get("form_submit_button") if b.label == "Queue the experiment").click().run()
    assert not at.error, texts(at.error)
    [experiment] = Store.default().experiments.list()
    grid = frontier.DEFAULT_GRIDS["input_gradient"]
    assert experiment.spec.arm_names == ["gradient"] + [f"input_gradient λ={v:g}" for v in grid]
    assert experiment.n_runs == 2 * (1 + len(grid))
    assert {(c.epochs, c.batch_size, c.train_size) for _, c in experiment.spec.configs()} == \
        {(frontier.DEFAULT_EPOCHS, frontier.DEFAULT_BATCH_SIZE, 200)}
    assert "Its results build up on the Frontier page" in texts(at.success)
