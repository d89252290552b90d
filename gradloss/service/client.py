"""What the dashboard and the CLI do to runs and experiments: submit to the queue, evaluate, cancel."""
from __future__ import annotations

import uuid

from gradloss.core.config import TrainConfig
from gradloss.data import submission_data_dir
from gradloss.core.errors import GradlossError
from gradloss.analysis.experiments import ExperimentConfig
from gradloss.perturbations.family import EvaluationConfig
from gradloss.service.queue import enqueue, enqueue_evaluation, pending_count, revoke
from gradloss.service.store.runs import RunStore


def _evaluation(evaluation: EvaluationConfig | dict | None) -> EvaluationConfig | None:
    if evaluation is None or isinstance(evaluation, EvaluationConfig):
        return evaluation
    return EvaluationConfig.from_dict(dict(evaluation))


def submit(config: TrainConfig | dict, store: RunStore | None = None,
           evaluation: EvaluationConfig | dict | None = None, *,
           experiment_id: str | None = None, arm: str | None = None) -> str:
    """Validate `config`, record a queued run and enqueue it; returns the run id.

    The data location is resolved here and stored with the run, so the worker reads the files
    this process would, whatever its own environment. `evaluation`: the corruptions and attacks
    to run after the Gaussian sweep (None: none). An invalid config or evaluation raises
    InvalidParameterError with the check's message, and an unreachable store or queue
    ServiceUnavailable naming its setting; nothing is recorded or queued either way."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(dict(config))
    evaluation = _evaluation(evaluation)
    store = store or RunStore.default()
    pending_count()  # an unreachable queue fails here, before anything is recorded
    task_id = str(uuid.uuid4())  # known before enqueueing, so cancel can revoke it
    run_id = store.create_run(config, task_id=task_id, data_dir=submission_data_dir(config.dataset),
                              experiment_id=experiment_id, arm=arm)
    if evaluation is not None and evaluation.perturbations:
        store.plan_evaluation(run_id, evaluation.to_dict())
    try:
        enqueue(run_id, task_id)
    except Exception as exc:  # the queue's message names its setting, password masked
        store.finish_run(run_id, "failed", error=f"could not be queued: {exc}")
        raise
    return run_id


def evaluate(run_id: str, evaluation: EvaluationConfig | dict,
             store: RunStore | None = None) -> None:
    """Queue corruptions and attacks for finished run `run_id` (stored as they are measured).

    Refused, with nothing queued, for an invalid evaluation (InvalidParameterError), a run
    that is not done or has no model, or one whose evaluation is already queued or running."""
    evaluation = _evaluation(evaluation)
    store = store or RunStore.default()
    run = store.get_run(run_id)
    if run.status != "done" or not run.model_path:
        raise GradlossError(f"Run {run_id} is {run.status}{'' if run.model_path else ' without a saved model'}"
                            "; only a finished run with a model can be evaluated.")
    plan = store.evaluation_plan(run_id)
    if plan is not None and plan.status in ("queued", "running"):
        raise GradlossError(f"Run {run_id}'s evaluation is already {plan.status}.")
    if not evaluation.perturbations:
        raise GradlossError("Choose at least one perturbation to evaluate.")
    store.plan_evaluation(run_id, evaluation.to_dict())
    try:
        enqueue_evaluation(run_id)
    except Exception as exc:
        store.set_evaluation_status(run_id, "failed", error=f"could not be queued: {exc}")
        raise


def cancel(run_id: str, store: RunStore | None = None) -> str:
    """Cancel a run: a queued one never starts, a running one stops at its next step.

    Returns the run's status afterwards ("cancelled", "running" until the runner stops, or
    the final status of a run that had already finished)."""
    store = store or RunStore.default()
    run = store.get_run(run_id)
    if run.status == "queued" and run.task_id:
        # The store's status is what counts (start_run refuses a cancelled run); revoking
        # also spares the consumer from dequeuing it.
        revoke(run.task_id)
    return store.request_cancel(run_id)


def submit_experiment(spec: ExperimentConfig | dict, store: RunStore | None = None) -> str:
    """Validate `spec`, record the experiment and queue its runs seed-major; returns its id.

    Seed-major (both arms of seed 0, then of seed 1, ...): one worker finishes complete pairs
    first, so a partly run experiment can already be summarised. An invalid spec raises
    InvalidParameterError, and nothing is recorded or queued."""
    if not isinstance(spec, ExperimentConfig):
        spec = ExperimentConfig.from_dict(dict(spec))
    store = store or RunStore.default()
    experiment_id = store.create_experiment(spec)
    for arm, config in spec.configs():  # each run also gets the experiment's evaluation, if any
        submit(config, store, spec.evaluation, experiment_id=experiment_id, arm=arm)
    return experiment_id


def cancel_experiment(experiment_id: str, store: RunStore | None = None) -> dict:
    """Cancel every run of an experiment that has not finished; returns status -> runs after."""
    store = store or RunStore.default()
    after: dict[str, int] = {}
    for run in store.experiment_runs(experiment_id):
        status = cancel(run.run_id, store) if run.status in ("queued", "running") else run.status
        after[status] = after.get(status, 0) + 1
    return after
