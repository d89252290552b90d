"""Evaluations in the worker: after training (runner), and queued for a trained run (evaluate_run).

A real consumer trains one tiny digits run with a small EvaluationConfig (360 test images)."""
import numpy as np
import pytest

from gradloss.core.errors import InvalidParameterError
from gradloss.core.evaluation import EvaluationConfig
from gradloss.perturbations.images import image_from_bytes
from gradloss.service import client, tasks
from gradloss.service.store import Store

from _worker_helpers import TINY, start_consumer, wait_for

TIMEOUT = 300  # training, sweep and a small evaluation on 2 shared cores
SMALL = EvaluationConfig(perturbations=("contrast", "fgsm", "pgd"), epsilons=(0.0, 0.1),
                         attack_images=40, masking_images=20)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return tmp_path


def test_bad_evaluation_is_refused_at_submit_and_nothing_is_queued(home):
    with pytest.raises(InvalidParameterError, match="The 'severities' parameter of "
                                                    "EvaluationConfig must be an int"):
        client.submit(client.plan_for(TINY, EvaluationConfig(severities=(0,))))
    assert Store.default().runs.list() == [] and tasks.queue_for()[0].pending_count() == 0


def test_worker_evaluates_after_training_and_when_queued_later(home):
    """Check that a run submitted with an evaluation ends done once trained and swept, its
    evaluation then queued as work of its own storing corruption and attack rows, masking flags
    and grid images, with its phases' progress; then that a later evaluate_run task adds
    another perturbation."""
    store = Store.default()
    consumer = start_consumer(home)
    try:
        run_id = client.submit(client.plan_for(TINY, SMALL))
        wait_for(lambda: store.runs.get(run_id).finished, TIMEOUT, "the run", interval=0.5)
        run = store.runs.get(run_id)
        assert run.status == "done", run.error
        phases = set()

        def evaluated():
            plan = store.evaluations.plan_of(run_id)
            phases.add(plan.progress.phase)
            return plan.status in ("done", "failed")

        wait_for(evaluated, TIMEOUT, "the run's evaluation", interval=0.5)
        plan = store.evaluations.plan_of(run_id)
        assert plan.status == "done", plan.error
        assert isinstance(plan.masking_flags, tuple)  # checked; a tiny model may or may not flag
        rows = store.evaluations.rows(run_id)
        contrast = rows[rows.perturbation == "contrast"]
        assert list(contrast.level) == [1, 2, 3, 4, 5] and set(contrast.n_images) == {360}
        assert contrast.accuracy.iloc[-1] < contrast.accuracy.iloc[0]  # severity hurts
        pgd = rows[rows.perturbation == "pgd"].set_index("level").accuracy
        assert set(rows[rows.perturbation == "pgd"].n_images) == {40} and pgd[0.1] < pgd[0.0]
        assert any(p.startswith("PGD") for p in phases) or len(phases) > 1
        examples = store.evaluations.examples(run_id)
        indices = sorted(set(store.results.examples(run_id)["index"]))
        attacked = examples[(examples.perturbation == "fgsm") & (examples.level == 0.1)]
        assert sorted(attacked["index"]) == indices  # the noise grid's images
        x = image_from_bytes(attacked.image.iloc[0])
        assert x.shape == (28, 28, 1) and 0 <= x.min() and x.max() <= 1
        assert examples[examples.perturbation == "contrast"].image.isna().all()

        client.evaluate(run_id, EvaluationConfig(perturbations=("rotate",), severities=(1, 5)))
        assert store.evaluations.plan_of(run_id).status == "queued"
        wait_for(lambda: store.evaluations.plan_of(run_id).status in ("done", "failed"), TIMEOUT,
                 "the queued evaluation")
        assert store.evaluations.plan_of(run_id).status == "done", store.evaluations.plan_of(run_id).error
        rotate = store.evaluations.rows(run_id).query("perturbation == 'rotate'")
        assert list(rotate.level) == [1, 5] and np.isfinite(rotate.accuracy).all()
        assert len(store.evaluations.rows(run_id).query("perturbation == 'contrast'")) == 5  # kept
        assert store.runs.get(run_id).status == "done"
    finally:
        consumer.kill()
        consumer.wait()
