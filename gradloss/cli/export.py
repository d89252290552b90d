"""`gradloss export mlflow|tensorboard`: stored runs and experiments out to a tracker.

    gradloss export mlflow [--tracking-uri URI] [--experiment ID | --runs ID ...]
    gradloss export tensorboard DIR [--experiment ID | --runs ID ...]

Neither --experiment nor --runs: every experiment and every run that has started. MLflow:
each run an MLflow run, each experiment a parent run with its runs nested and its summary;
exporting again updates the same runs (found by their gradloss id), never duplicates them.
The tracking URI defaults to GRADLOSS_MLFLOW_URI, else mlflow.db in GRADLOSS_HOME; its password,
if any, is never printed. TensorBoard: one log folder per run under DIR, written afresh.
"""
from __future__ import annotations

from pathlib import Path

from gradloss.service.settings import check_tracking_uri, default_tracking_uri
from gradloss.service.urls import redact, scheme


def cmd_export(args) -> int:
    if args.tracker == "mlflow":
        uri = (check_tracking_uri(args.tracking_uri,
                                  "The '--tracking-uri' parameter of export mlflow")
               if args.tracking_uri else default_tracking_uri())
        return _mlflow(args, uri)
    return _tensorboard(args)


def _selected(args):
    """The store, then the experiments' and the runs' results the arguments select."""
    from gradloss.service.store import Store
    from gradloss.trackers import gather

    store = Store.default()
    experiment_ids, run_ids = gather.selection(store, args.experiment, args.runs)
    return ([gather.experiment_results(store, x) for x in experiment_ids],
            [gather.run_results(store, r) for r in run_ids])


def _mlflow(args, uri: str) -> int:
    from gradloss.trackers.mlflow_runs import MLflowRuns, fail_fast

    fail_fast()
    experiments, runs = _selected(args)
    tracker = MLflowRuns(uri, args.mlflow_experiment)
    parents, counts = {}, {"created": 0, "updated": 0}
    for results in experiments:
        parents[results.record.experiment_id], created = tracker.export_experiment(results)
        counts["created" if created else "updated"] += 1
        seeds = f", summary over {results.n_seeds} seeds" if results.n_seeds >= 2 else ""
        print(f"experiment {results.record.experiment_id} -> MLflow run "
              f"{parents[results.record.experiment_id]} ({_word(created)}{seeds})", flush=True)
    for results in runs:
        run = results.run
        run_id, created = tracker.export_run(results, parents.get(run.experiment_id))
        counts["created" if created else "updated"] += 1
        print(f"run {run.run_id} ({run.status}) -> MLflow run {run_id} ({_word(created)})",
              flush=True)
    print(f"{counts['created']} created, {counts['updated']} updated in the MLflow experiment "
          f"{args.mlflow_experiment!r} at {redact(uri)}. Open it: {ui_command(uri)}")
    return 0


def _word(created: bool) -> str:
    return "created" if created else "updated"


def ui_command(uri: str) -> str:
    """How to look at the runs: `mlflow ui` on a local store, the server's address otherwise
    (password masked)."""
    if scheme(uri) in ("http", "https"):
        return f"browse {redact(uri)}"
    return f"mlflow ui --backend-store-uri {redact(uri)}"


def _tensorboard(args) -> int:
    from gradloss.trackers import tensorboard_logs

    experiments, runs = _selected(args)
    folders = tensorboard_logs.export(args.dir, runs, experiments)
    for results, folder in zip(runs, folders):
        print(f"run {results.run.run_id} ({results.run.status}) -> {folder}", flush=True)
    print(f"{len(folders)} run(s) in {Path(args.dir).resolve()}. "
          f"Open them: tensorboard --logdir {Path(args.dir).resolve()}")
    return 0
