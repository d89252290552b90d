"""Typed records that cross the store's boundary: a stored run, its evaluation plan, an
experiment, a strength search, a worker, a metric row.

The store builds these from its rows and takes them (or their parts) back; callers read
attributes, never keys. A row that cannot be read becomes a record that says why
(`StoredRun.unreadable`), so one damaged row never takes a listing down.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from gradloss.core.config import SweepConfig, TrainConfig
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan
from gradloss.core.search import SearchConfig
from gradloss.core.progress import Progress

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
STATUSES = ACTIVE + FINISHED
PLAN_STATUSES = ("queued", "running", "done", "failed")


class MetricRow(NamedTuple):
    """One value of a run's metric `name` at global step `step` (1-based) of epoch `epoch`."""

    step: int
    epoch: int | None
    name: str   # "loss" per step; epoch_loss, train_accuracy, test_accuracy, step_ms, input_grad_norm
    value: float


@dataclass(frozen=True)
class StoredRun:
    """One run as the store holds it; times are epoch seconds."""

    run_id: str
    created_at: float
    status: str                       # one of STATUSES
    objective: str                    # from its config, kept readable even when the config is not
    dataset: str                      # a built-in's name, a file's "name@hash" (its dataset_label)
    engine: str
    config: TrainConfig | None        # None only when `unreadable` says why
    sweep: SweepConfig = field(default_factory=SweepConfig)  # the noise sweep it was planned with
    data_dir: str | None = None       # the data folder found at submission; None: the default
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    worker_id: str | None = None
    device: str | None = None         # what it trained on, e.g. "NVIDIA H100" or "CPU"
    heartbeat_at: float | None = None
    progress: Progress = field(default_factory=Progress)
    model_path: str | None = None     # where its worker saved the model (the store has a copy)
    cancel_requested: bool = False
    attempts: int = 0                 # how many times a worker started it (> 1: resumed)
    task_id: str | None = None        # queue task id, to revoke a queued run
    host: str | None = None           # the machine that trains (trained) it
    gpu: int | None = None            # its GPU index on that machine; None on CPU
    experiment_id: str | None = None  # the experiment it belongs to, if any
    arm: str | None = None            # its arm's name in that experiment (or search trial)
    search_id: str | None = None      # the strength search it is a trial of, if any
    name: str | None = None           # what its researcher calls it (None: no name given)
    tags: tuple[str, ...] = ()        # its researcher's tags
    note: str | None = None           # its researcher's note
    unreadable: str | None = None     # why its stored config could not be read

    @property
    def architecture(self) -> str:
        """The architecture it trains, for people: a built-in's name or a file's "name@hash"."""
        return self.config.architecture_label if self.config is not None else "?"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration_s(self) -> float | None:
        """Seconds from its first start to its end (None until both are known)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def plan(self, evaluation: EvaluationConfig | None = None) -> RunPlan:
        """The RunPlan to train it with (its evaluation is stored apart: pass it in)."""
        if self.config is None:
            raise ValueError(f"run {self.run_id} cannot be read: {self.unreadable}")
        return RunPlan(self.config, self.sweep, evaluation, self.data_dir)


@dataclass(frozen=True)
class EvaluationPlan:
    """A run's evaluation beyond Gaussian noise: what, how far, and the masking check's flags."""

    run_id: str
    config: EvaluationConfig | None   # None only when `unreadable` says why
    status: str                       # one of PLAN_STATUSES
    error: str | None = None
    progress: Progress = field(default_factory=Progress)
    masking_flags: tuple[str, ...] | None = None  # None: not checked (yet); (): nothing flagged
    updated_at: float | None = None
    unreadable: str | None = None


@dataclass(frozen=True)
class ExperimentRecord:
    """An experiment as stored, with the state of its runs."""

    experiment_id: str
    created_at: float
    spec: ExperimentConfig | None     # None only when `unreadable` says why
    counts: dict = field(default_factory=dict)  # run status -> number of runs
    unreadable: str | None = None

    @property
    def n_runs(self) -> int:
        return sum(self.counts.values())

    @property
    def status(self) -> str:
        """queued (no run started), running, then done (all done), cancelled or failed (some were)."""
        counts = self.counts
        if counts.get("running") or (counts.get("queued") and len(counts) > 1):
            return "running"
        if counts.get("queued"):
            return "queued"
        if counts.get("cancelled"):
            return "cancelled"
        return "failed" if counts.get("failed") else "done"


@dataclass(frozen=True)
class SearchRecord:
    """A strength search as stored (its trials are runs that name it; its study is Optuna's)."""

    search_id: str
    created_at: float
    spec: SearchConfig | None         # None only when `unreadable` says why
    counts: dict = field(default_factory=dict)  # run status -> number of its trial runs
    unreadable: str | None = None
    finished_at: float | None = None  # when its last trial was told; None: still searching

    @property
    def in_flight(self) -> int:
        """Trial runs queued or running."""
        return self.counts.get("queued", 0) + self.counts.get("running", 0)


@dataclass(frozen=True)
class WorkerSettings:
    """What of a worker's set-up decides how it trains; published with its heartbeat so the
    dashboard can show it and tell when its own differs."""

    data_dir: str | None = None       # its GRADLOSS_DATA_DIR
    code: str = ""                    # the folder its gradloss runs from
    engines: tuple[str, ...] = ()     # the engines installed there
    store: str = ""                   # its store URL, password masked
    queue: str = ""                   # its queue URL, password masked
    cuda_visible_devices: str | None = None

    def to_dict(self) -> dict:
        return {"GRADLOSS_DATA_DIR": self.data_dir, "code": self.code,
                "engines": list(self.engines), "store": self.store, "queue": self.queue,
                "cuda_visible_devices": self.cuda_visible_devices}

    @classmethod
    def from_dict(cls, data: dict) -> "WorkerSettings":
        """Tolerant: a record written by another gradloss version may lack or add keys."""
        def text(key, default=""):
            value = data.get(key, default)
            return value if isinstance(value, str) else default

        engines = data.get("engines")
        return cls(data_dir=text("GRADLOSS_DATA_DIR", None), code=text("code"),
                   engines=tuple(e for e in engines if isinstance(e, str))
                   if isinstance(engines, list) else (),
                   store=text("store"), queue=text("queue"),
                   cuda_visible_devices=text("cuda_visible_devices", None))


@dataclass(frozen=True)
class WorkerRecord:
    """One worker process as its heartbeat row says."""

    worker_id: str                    # host:pid
    host: str
    pid: int
    device: str | None                # GPU name or "CPU"
    gpu: int | None                   # GPU index on its host; None on CPU
    run_id: str | None                # the run it trains now
    heartbeat_at: float
    started_at: float
    settings: WorkerSettings = field(default_factory=WorkerSettings)


@dataclass(frozen=True)
class WorkerState:
    """A worker as the dashboard sees it: its record, whether it is alive and since when silent."""

    record: WorkerRecord
    alive: bool        # a fresh heartbeat and, on this host, a live process
    age_s: float       # seconds since its last heartbeat
