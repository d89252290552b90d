"""gradloss's runs and experiments as MLflow runs, in one MLflow experiment at a tracking URI.

Each gradloss run becomes one MLflow run, found again by its gradloss id (the `gradloss.id` tag),
so exporting twice updates the same run: params are written once, a metric point already there
(same step and value) is not logged again, tags and files are replaced. An experiment becomes a
parent run holding its summary over seeds; its runs are nested under it (`mlflow.parentRunId`).
Every call to MLflow goes through `_call`: a tracker that cannot be reached raises
ServiceUnavailable (the live logger retries those), anything else a GradlossError; messages never
show a password of the URI (`urls.scrub`), and MLflow's own printing of run pages is turned off.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

from gradloss.core.errors import GradlossError, ServiceUnavailable, SettingsError
from gradloss.service.settings import MLFLOW_EXTRA
from gradloss.service.urls import redact, scheme, scrub
from gradloss.trackers import mapping
from gradloss.trackers.gather import ExperimentResults, RunResults
from gradloss.trackers.mapping import ID_TAG, KIND_TAG, Point

EXPERIMENT = "gradloss"  # the MLflow experiment gradloss's runs go to, unless told otherwise
STATUSES = {"queued": "SCHEDULED", "running": "RUNNING", "done": "FINISHED", "failed": "FAILED",
            "cancelled": "KILLED"}
# MLflow 3's UI opens an experiment of this kind on its runs table (not its GenAI views)
KIND = {"mlflow.experimentKind": "custom_model_development"}
BATCH = 1000          # MLflow's log_batch takes at most 1000 metrics (and 100 params or tags)
PARAMS_BATCH = 100


def fail_fast(timeout_s: int = 10) -> None:
    """Make MLflow's HTTP calls in this process give up after `timeout_s` without retrying
    (unless its own settings say otherwise): gradloss retries itself, with back-off, and the
    CLI says at once that a server is down instead of retrying for minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it came from) says the tracker could not be reached, as
    opposed to refusing a request."""
    import requests
    import sqlalchemy.exc

    transient = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                 ConnectionError, TimeoutError, sqlalchemy.exc.OperationalError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, transient) or re.search(
                r"Max retries exceeded|Connection refused|timed out|error code (429|502|503|504)",
                str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


class MLflowRuns:
    """gradloss runs in the MLflow experiment `experiment` at tracking URI `uri`.

    Holds the client, made on first use (importing MLflow takes seconds)."""

    def __init__(self, uri: str, experiment: str = EXPERIMENT):
        self.uri, self.experiment = uri, experiment
        self._client = None
        self._experiment_id: str | None = None
        self._ids: dict[str, str] = {}  # gradloss id -> MLflow run id

    @property
    def where(self) -> str:
        return f"MLflow at {redact(self.uri)}"

    def _call(self, method: str, *args, **kwargs):
        """client.method(*args, **kwargs), its failure as a gradloss error without password."""
        client = self.client
        try:
            return getattr(client, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (MlflowException, requests, the database driver)
            reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else
                           type(exc).__name__, self.uri)
            if _unreachable(exc):
                raise ServiceUnavailable(f"{self.where} cannot be reached ({method}): "
                                         f"{reason}") from None
            raise GradlossError(f"{self.where} refused {method}: {reason}") from None

    @property
    def client(self):
        if self._client is None:
            try:
                from mlflow import MlflowClient
            except ImportError as exc:
                raise SettingsError(f"Exporting to MLflow needs MLflow, an optional extra of "
                                    f"gradloss: {MLFLOW_EXTRA} ({exc}).") from None
            # MLflow prints each finished run's page to stdout, the URI's password included
            os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self) -> str:
        """The MLflow experiment's id, created if missing."""
        if self._experiment_id is None:
            found = self._call("get_experiment_by_name", self.experiment)
            if found is None:
                try:
                    self._experiment_id = self._call("create_experiment", self.experiment,
                                                     self._artifact_location(), KIND)
                except GradlossError:  # another process created it meanwhile
                    found = self._call("get_experiment_by_name", self.experiment)
                    if found is None:
                        raise
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    raise GradlossError(
                        f"The MLflow experiment {self.experiment!r} at {self.where} was deleted: "
                        "restore it (`mlflow experiments restore`) or export to another one.")
                self._experiment_id = found.experiment_id
        return self._experiment_id

    def _artifact_location(self) -> str | None:
        """Beside a SQLite tracking store, its files (MLflow's default, ./mlruns, would be the
        folder the export was started from); elsewhere the tracker's own default."""
        if scheme(self.uri) != "sqlite" or ":///" not in self.uri:
            return None
        database = Path(self.uri.split(":///", 1)[1]).resolve()
        return (database.parent / "mlartifacts").as_uri()

    def find(self, gradloss_id: str) -> str | None:
        """The MLflow run of gradloss run or experiment `gradloss_id` (the oldest, should two
        processes have created one at once), or None."""
        if gradloss_id in self._ids:
            return self._ids[gradloss_id]
        if not re.fullmatch(r"[\w.-]+", gradloss_id):
            raise GradlossError(f"Not a gradloss id: {gradloss_id!r}.")
        found = self._call("search_runs", [self.experiment_id()],
                           filter_string=f"tags.`{ID_TAG}` = '{gradloss_id}'",
                           order_by=["attributes.start_time ASC"], max_results=1)
        if found:
            self._ids[gradloss_id] = found[0].info.run_id
        return self._ids.get(gradloss_id)

    def ensure(self, gradloss_id: str, tags: dict, params: dict, start: float | None = None,
               parent: str | None = None) -> tuple[str, bool]:
        """(MLflow run id, created) of `gradloss_id`: found, or created with `tags`; then its
        tags set and the params it lacks logged (a param, once logged, never changes)."""
        from mlflow.entities import Param, RunTag

        tags = {**tags, **({"mlflow.parentRunId": parent} if parent else {})}
        run_id, created = self.find(gradloss_id), False
        if run_id is None:
            run = self._call("create_run", self.experiment_id(), start_time=_ms(start),
                             tags=tags)
            run_id = self._ids[gradloss_id] = run.info.run_id
            created, have = True, {}
        else:
            have = self._call("get_run", run_id).data.params
        new = [Param(k, str(v)) for k, v in params.items() if k not in have]
        tag_list = [RunTag(k, str(v)) for k, v in tags.items()]
        for start_at in range(0, max(len(new), len(tag_list)), PARAMS_BATCH):
            self._call("log_batch", run_id, params=new[start_at:start_at + PARAMS_BATCH],
                       tags=tag_list[start_at:start_at + PARAMS_BATCH])
        return run_id, created

    def set_tags(self, run_id: str, tags: dict) -> None:
        from mlflow.entities import RunTag

        self._call("log_batch", run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log(self, run_id: str, points: list[Point], timestamp: float | None = None,
            dedupe: bool = True) -> int:
        """Log `points`; with `dedupe`, only those not already in the run's history (same key,
        step and value). Returns how many were logged."""
        from mlflow.entities import Metric

        if dedupe and points:
            latest = self._call("get_run", run_id).data.metrics
            by_key: dict[str, list[Point]] = {}
            for point in points:
                by_key.setdefault(point.key, []).append(point)
            points = []
            for key, series in by_key.items():
                if key not in latest:
                    points += series
                elif len(series) == 1 and series[0].step == 0 and latest[key] == series[0].value:
                    continue  # a measurement after training, already there
                else:
                    have = {(m.step, m.value) for m in self._call("get_metric_history", run_id, key)}
                    points += [p for p in series if (p.step, p.value) not in have]
        stamp = _ms(time.time() if timestamp is None else timestamp)
        metrics = [Metric(p.key, p.value, stamp, p.step) for p in points]
        for start_at in range(0, len(metrics), BATCH):
            self._call("log_batch", run_id, metrics=metrics[start_at:start_at + BATCH])
        return len(metrics)

    def put_files(self, run_id: str, files: dict[str, bytes | str], folder: str) -> None:
        """Upload `files` (name -> content) into the run's artifact folder `folder`, replacing
        files of the same names; a file already there with the same size is not sent again."""
        there = {Path(f.path).name: f.file_size for f in self._call("list_artifacts", run_id, folder)}
        send = {name: data for name, data in files.items()
                if there.get(name) != len(data.encode() if isinstance(data, str) else data)}
        if not send:
            return
        with tempfile.TemporaryDirectory(prefix="gradloss-mlflow-") as tmp:
            for name, data in send.items():
                path = Path(tmp) / name
                path.write_bytes(data.encode() if isinstance(data, str) else data)
            self._call("log_artifacts", run_id, tmp, folder)

    def set_status(self, run_id: str, status: str, end: float | None = None) -> None:
        """The MLflow status of gradloss status `status`; a finished one with its end time."""
        mlflow_status = STATUSES.get(status, "RUNNING")
        if mlflow_status in ("FINISHED", "FAILED", "KILLED"):
            self._call("set_terminated", run_id, mlflow_status, _ms(end))
        else:
            self._call("update_run", run_id, mlflow_status)

    def parent(self, experiment_id: str, results: ExperimentResults | None = None) -> str:
        """The parent run of experiment `experiment_id`: found, or created (with the
        experiment's params when `results` are given)."""
        spec = results.record.spec if results is not None else None
        tags = {ID_TAG: experiment_id, KIND_TAG: "experiment",
                "gradloss.version": mapping.gradloss_version(),
                "mlflow.runName": mapping.experiment_name(experiment_id, spec)}
        if results is not None:
            tags["gradloss.status"] = results.record.status
        start = results.record.created_at if results is not None else None
        params = mapping.experiment_params(spec) if spec is not None else {}
        run_id, _ = self.ensure(experiment_id, tags, params, start)
        return run_id

    def export_run(self, results: RunResults, parent: str | None = None) -> tuple[str, bool]:
        """Run `results.run` as an MLflow run: (its id, created). Nested under its experiment's
        parent run (`parent`, else found or created)."""
        run, plan = results.run, results.evaluation
        if parent is None and run.experiment_id is not None:
            parent = self.parent(run.experiment_id)
        tags = {**mapping.run_tags(run), **_evaluation_tags(plan)}
        params = mapping.run_params(run, plan.config if plan is not None else None)
        created = self.find(run.run_id) is None
        run_id, _ = self.ensure(run.run_id, tags, params, run.started_at or run.created_at,
                                parent)
        points = (mapping.training_points(results.metrics) + mapping.sweep_points(results.sweep)
                  + mapping.evaluation_points(results.rows))
        self.log(run_id, points, run.finished_at, dedupe=not created)
        self.put_files(run_id, _run_tables(results), "tables")
        if results.model is not None:
            self.put_files(run_id, {"model.keras": results.model}, "model")
        self.set_status(run_id, run.status, run.finished_at)
        return run_id, created

    def export_experiment(self, results: ExperimentResults) -> tuple[str, bool]:
        """Experiment `results.record` as a parent run with its summary: (its id, created).
        Its runs are exported apart (export_run with this parent)."""
        experiment_id = results.record.experiment_id
        created = self.find(experiment_id) is None
        run_id = self.parent(experiment_id, results)
        points = mapping.summary_points(results.summary) if not results.summary.empty else []
        for name, rows in (results.perturbation_summary.groupby("perturbation", sort=False)
                           if not results.perturbation_summary.empty else []):
            points += mapping.summary_points(rows, name)
        self.log(run_id, points, dedupe=not created)
        self.put_files(run_id, results.tables(), "tables")
        ends = [r.finished_at for r in results.runs if r.finished_at is not None]
        status = results.record.status
        self.set_status(run_id, status, max(ends) if ends and status not in ("queued", "running")
                        else None)
        return run_id, created


def _evaluation_tags(plan) -> dict[str, str]:
    if plan is None:
        return {}
    tags = {"gradloss.evaluation": plan.status}
    if plan.masking_flags is not None:
        tags["gradloss.masking_flags"] = "; ".join(plan.masking_flags) or "none"
    return tags


def _run_tables(results: RunResults) -> dict[str, str]:
    """The run's plan and result tables as files (JSON and CSV)."""
    run = results.run
    files = {}
    if run.config is not None:
        plan = run.plan(results.evaluation.config if results.evaluation else None)
        files["plan.json"] = json.dumps(plan.to_dict(), indent=2)
    for name, frame in (("metrics.csv", results.metrics), ("sweep.csv", results.sweep),
                        ("evaluation.csv", results.rows)):
        if not frame.empty:
            files[name] = frame.drop(columns="run_id").to_csv(index=False)
    return files

