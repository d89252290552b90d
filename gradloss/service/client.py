"""What the dashboard and the CLI do to runs and experiments: submit to the queue, evaluate,
cancel, delete."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from gradloss.core.config import TrainConfig
from gradloss.core.errors import GradlossError
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan
from gradloss.data import submission_data_dir
from gradloss.service.settings import home
from gradloss.service.tasks import check_queue, enqueue, enqueue_evaluation, revoke
from gradloss.service.store import Store
from gradloss.service.uploads import upload


def plan_for(config: TrainConfig, evaluation: EvaluationConfig | None = None, **fields) -> RunPlan:
    """The RunPlan of `config` submitted from here: the data folder this process would read is
    resolved now and travels with the plan, so the worker reads the same files whatever its
    own environment."""
    return RunPlan(config, evaluation=evaluation,
                   data_dir=submission_data_dir(config.dataset), **fields)


def submit(plan: RunPlan | TrainConfig, store: Store | None = None, *,
           experiment_id: str | None = None, arm: str | None = None,
           search_id: str | None = None) -> str:
    """Record a queued run of `plan` (a TrainConfig alone: `plan_for` it) and enqueue it;
    returns the run id. `experiment_id` and `arm`, or `search_id` and `arm`: what it is part of.

    A file dataset or .keras architecture goes into the store first (once, by its hash), so any
    worker trains on what was submitted. An unreachable store or queue raises ServiceUnavailable
    naming its setting, and nothing is recorded or queued."""
    if isinstance(plan, TrainConfig):
        plan = plan_for(plan)
    store = store or Store.default()
    check_queue()  # an unreachable or read-only queue fails here, before anything is recorded
    upload(plan, store)
    task_id = str(uuid.uuid4())  # known before enqueueing, so cancel can revoke it
    run_id = store.runs.create(plan, task_id=task_id, experiment_id=experiment_id, arm=arm,
                               search_id=search_id)
    try:
        enqueue(run_id, task_id)
    except Exception as exc:  # the queue's message names its setting, password masked
        store.runs.finish(run_id, "failed", error=f"could not be queued: {exc}")
        raise
    return run_id


def evaluate(run_id: str, evaluation: EvaluationConfig, store: Store | None = None) -> None:
    """Queue corruptions and attacks for finished run `run_id` (stored as they are measured).

    Refused, with nothing queued, for a run that is not done or has no model, or one whose
    evaluation is already queued or running."""
    store = store or Store.default()
    check_queue()  # before the plan is recorded
    run = store.runs.get(run_id)
    if run.status != "done" or not run.model_path:
        raise GradlossError(f"Run {run_id} is {run.status}"
                            f"{'' if run.model_path else ' without a saved model'}"
                            "; only a finished run with a model can be evaluated.")
    plan = store.evaluations.plan_of(run_id)
    if plan is not None and plan.status in ("queued", "running"):
        raise GradlossError(f"Run {run_id}'s evaluation is already {plan.status}.")
    if not evaluation.perturbations:
        raise GradlossError("Choose at least one perturbation to evaluate.")
    store.evaluations.plan(run_id, evaluation)
    try:
        enqueue_evaluation(run_id)
    except Exception as exc:
        store.evaluations.set_status(run_id, "failed", error=f"could not be queued: {exc}")
        raise


def cancel(run_id: str, store: Store | None = None) -> str:
    """Cancel a run: a queued one never starts, a running one stops at its next step.

    Returns the run's status afterwards ("cancelled", "running" until the runner stops, or
    the final status of a run that had already finished)."""
    store = store or Store.default()
    run = store.runs.get(run_id)
    if run.status == "queued" and run.task_id:
        # The store's status is what counts (start refuses a cancelled run); revoking also
        # spares the consumer from dequeuing it.
        revoke(run.task_id)
    return store.runs.request_cancel(run_id)


def submit_experiment(spec: ExperimentConfig, store: Store | None = None, *,
                      data_dir: str | None = None, architecture_path: str | None = None) -> str:
    """Record the experiment and queue its runs seed-major, each with the experiment's sweep
    and evaluation; returns its id. `data_dir` and `architecture_path`: the files of a file
    dataset and a .keras architecture (not needed once the store holds them).

    Seed-major (both arms of seed 0, then of seed 1, ...): one worker finishes complete pairs
    first, so a partly run experiment can already be summarised."""
    store = store or Store.default()
    check_queue()  # an unreachable or read-only queue fails here, before anything is recorded
    plans = spec.plans(data_dir if data_dir is not None else submission_data_dir(spec.dataset),
                       architecture_path)
    upload(plans[0][1], store)  # before the experiment is recorded: a bad file records nothing
    experiment_id = store.experiments.create(spec)
    for arm, plan in plans:
        submit(plan, store, experiment_id=experiment_id, arm=arm)
    return experiment_id


def cancel_experiment(experiment_id: str, store: Store | None = None) -> dict:
    """Cancel every run of an experiment that has not finished; returns status -> runs after."""
    store = store or Store.default()
    store.experiments.get(experiment_id)  # ExperimentNotFound names it
    after: dict[str, int] = {}
    for run in store.runs.of_experiment(experiment_id):
        status = cancel(run.run_id, store) if run.status in ("queued", "running") else run.status
        after[status] = after.get(status, 0) + 1
    return after


def delete(run_id: str, store: Store | None = None) -> list[Path]:
    """Delete a finished run: its rows in the store and its files in home() (its folder, its
    cached model); returns the paths removed. A queued or running run is refused
    (GradlossError): cancel it first. Files outside home() (a CLI run's --out) are left."""
    store = store or Store.default()
    run = store.runs.get(run_id)  # RunNotFound names it
    if not store.runs.delete(run_id):
        raise GradlossError(f"Run {run_id} is {store.runs.get(run_id).status}: only a finished "
                            "run can be deleted; cancel it first.")
    folder = home()
    removed = []
    candidates = [folder / run_id, folder / "models" / run_id]
    if run.model_path and Path(run.model_path).resolve().is_relative_to(folder):
        candidates.append(Path(run.model_path).resolve().parent)
    for path in dict.fromkeys(candidates):
        if path.is_dir() and path.resolve() != folder:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
