"""The Robustness page's perturbations: the picker, the slider over levels, the masking warning,
the summary table and the evaluation form, on stored fake evaluations (AppTest, no worker)."""
import numpy as np
import pandas as pd
import pytest

from gradloss.core.plan import RunPlan
from gradloss.core.config import TrainConfig
from gradloss.core.evaluation import EvaluationConfig
from gradloss.service import tasks
from gradloss.service.store import Store

from test_pages import ACCURACY, SIGMAS, app, home, texts  # noqa: F401  (home: fixture)

FLAG = "PGD accuracy does not fall with eps: 80.0 % at the largest eps=0.1"
CONTRAST = {"gradient": (0.85, 0.80, 0.70, 0.50, 0.30), "baseline": (0.84, 0.75, 0.60, 0.40, 0.20)}
FGSM = {"gradient": (0.90, 0.70), "baseline": (0.91, 0.40)}


def evaluated_run(store: Store, objective: str) -> str:
    """A finished run (a model path, a noise sweep) with contrast at severities 1-5 and FGSM
    at eps 0 and 0.1 stored."""
    run_id = store.runs.create(RunPlan(TrainConfig(objective=objective, dataset="digits", epochs=1)))
    store.runs.start(run_id, "test-worker")
    store.results.save_robustness(run_id, pd.DataFrame({"sigma": SIGMAS, "accuracy": ACCURACY[objective],
                                                "accuracy_std": 0.01}), draws=3, seed=0)
    store.runs.finish(run_id, "done", model_path=f"/nowhere/{objective}/model.keras")
    store.evaluations.plan(run_id, EvaluationConfig(perturbations=("contrast", "fgsm")))
    store.evaluations.save_rows(run_id, pd.DataFrame({
        "perturbation": ["contrast"] * 5 + ["fgsm"] * 2, "level": [1, 2, 3, 4, 5, 0.0, 0.1],
        "accuracy": CONTRAST[objective] + FGSM[objective], "accuracy_std": 0.0,
        "n_images": [360] * 5 + [100] * 2, "seed": 0}))
    adversarial = np.full((28, 28, 1), 0.5, dtype=np.float16).tobytes()
    store.evaluations.save_examples(run_id, pd.DataFrame({
        "perturbation": ["contrast", "contrast", "fgsm", "fgsm"], "level": [3.0, 3.0, 0.1, 0.1],
        "index": [0, 1, 0, 1], "label": [0, 1, 0, 1], "prediction": [0, 7, 0, 1],
        "confidence": 0.8, "image": [None, None, adversarial, adversarial]}))
    store.evaluations.save_masking_flags(run_id, [FLAG] if objective == "gradient" else [])
    store.evaluations.set_status(run_id, "done")
    return run_id


@pytest.fixture
def evaluated(home):  # noqa: F811
    store = Store.default()
    return {o: evaluated_run(store, o) for o in ("gradient", "baseline")}


def test_picker_moves_the_slider_over_a_corruptions_severities(evaluated):
    at = app("app_pages/robustness.py")
    picker = at.selectbox(key="perturbation")
    assert picker.options[:1] == ["Gaussian noise (noise)"]
    assert "contrast (corruption)" in picker.options and "FGSM (attack)" in picker.options
    picker.set_value("contrast").run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.select_slider(key="level_contrast").value == 3  # the middle severity first
    assert sorted(m.value for m in at.metric) == ["60.00%", "70.00%"]
    assert "+10.00 points vs reference" in [str(m.proto.delta) for m in at.metric]
    at.select_slider(key="level_contrast").set_value(5).run()
    assert sorted(m.value for m in at.metric) == ["20.00%", "30.00%"]
    at.select_slider(key="level_contrast").set_value(3).run()
    assert len(at.image) == 2 and "✗ gradient" in texts(at.caption)  # rebuilt corrupted images


def test_attack_view_warns_of_gradient_masking_next_to_its_numbers(evaluated):
    at = app("app_pages/robustness.py")
    at.selectbox(key="perturbation").set_value("fgsm").run()
    assert not at.exception
    assert at.select_slider(key="level_fgsm").value == 0.1
    assert sorted(m.value for m in at.metric) == ["40.00%", "70.00%"]
    warnings = texts(at.warning)
    assert FLAG in warnings and "Possible gradient masking" in warnings
    assert "100 attacked test images" in texts(at.caption)
    assert len(at.image) == 4  # each adversarial image and its perturbation


def test_summary_table_lists_every_perturbation_with_mce(evaluated):
    at = app("app_pages/robustness.py")
    table = at.dataframe[-1].value  # after the σ comparison table
    assert list(table.perturbation) == ["Gaussian noise", "contrast", "FGSM", "mCE (corruptions)"]
    gradient = f"gradient loss {evaluated['gradient'][-6:]} at headline"
    fgsm = table.set_index("perturbation").loc["FGSM"]
    assert fgsm[gradient] == 0.70 and abs(fgsm["difference at headline"]) == pytest.approx(0.3)
    mce = table.set_index("perturbation").loc["mCE (corruptions)", gradient]
    assert mce == pytest.approx(sum(1 - a for a in CONTRAST["gradient"])
                                / sum(1 - a for a in CONTRAST["baseline"]))


def test_evaluation_form_refuses_bad_values_and_queues_good_ones(evaluated):
    at = app("app_pages/robustness.py")
    for key, value, message in (("evaluate_eps", "0, -0.1", "Attack ε must be a number of at "
                                 "least 0 and at most 1; got -0.1."),
                                ("evaluate_eps", "0, lots", "Attack ε must be floats separated "
                                 "by commas or spaces; got lots."),
                                ("evaluate_steps", 0, "PGD steps must be a whole number of at "
                                 "least 1; got 0.")):
        at = app("app_pages/robustness.py")
        widget = at.text_input(key=key) if key == "evaluate_eps" else at.number_input(key=key)
        widget.set_value(value)
        at.get("form_submit_button")[0].click().run()
        assert message in texts(at.error)
        assert tasks.queue_for()[0].pending_count() == 0
    at = app("app_pages/robustness.py")
    at.multiselect(key="evaluate_names").set_value(["rotate"])
    at.get("form_submit_button")[0].click().run()
    assert not at.error, texts(at.error)
    assert tasks.queue_for()[0].pending_count() == 2
    plans = Store.default().evaluations.plans(list(evaluated.values()))
    assert {p.status for p in plans.values()} == {"queued"}
    assert {tuple(p.config.perturbations) for p in plans.values()} == {("rotate",)}


def test_train_form_queues_the_full_suite_when_ticked(home):  # noqa: F811
    """Check that a run queued with the box ticked carries the dataset's full evaluation plan,
    and one queued with it unticked (the default, as `gradloss train`) none."""
    at = app("app_pages/train.py")
    at.multiselect(key="objectives").set_value(["gradient"]).run()
    at.number_input(key="epochs_gradient").set_value(1)
    at.checkbox(key="evaluate").check()
    at.get("form_submit_button")[0].click().run()
    at.checkbox(key="evaluate").uncheck()
    at.get("form_submit_button")[0].click().run()
    assert not at.error, texts(at.error)
    store = Store.default()
    unchecked, checked = store.runs.list()  # newest first
    plan = store.evaluations.plan_of(checked.run_id)
    assert plan.status == "queued" and plan.config.attack_images == 100  # digits: fewer
    assert len(plan.config.perturbations) == 13
    assert store.evaluations.plan_of(unchecked.run_id) is None
