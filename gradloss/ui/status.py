"""What the dashboard says about work in progress: a run's progress bar and its words, where a
queued run stands, the workers and how their settings differ from the dashboard's. No Streamlit.
"""
from __future__ import annotations

from gradloss.core.records import WorkerSettings, WorkerState
from gradloss.ui.labels import format_duration, short_id

import pandas as pd


def queue_text(ahead: int | None = None, busy_with: str | None = None) -> str:
    """What a queued run waits for: the runs ahead of it, or the run the worker is busy with."""
    if ahead:
        return f"queued behind {ahead} run{'s' * (ahead != 1)}"
    if busy_with:
        return f"queued: the worker is busy with run {short_id(busy_with)}"
    return "queued: waiting for a worker"


def progress_bar(run, ahead: int | None = None, busy_with: str | None = None) -> tuple[float, str]:
    """(fill in [0, 1], text) of a run's progress bar, from one reading so the two agree.

    Training: the fraction of steps, 'step 30/90 · epoch 1/2 · ETA 12 s · loss 0.01'. Once
    trained: the robustness sweep's fraction, 'trained 2 epochs · measuring accuracy under
    noise · 25% · ETA 8 s'. Queued: what it waits for (`queue_text`); started: 'starting…'."""
    p = run.progress
    if run.status == "queued":
        return 0.0, queue_text(ahead, busy_with)
    if p.step == 0 and not p.trained:
        return 0.0, "starting…"
    if p.trained:
        epochs = f"{p.epochs} epoch{'s' * (p.epochs != 1)}" if p.epochs else "? epochs"
        doing = f"evaluating: {p.phase}" if p.phase else "measuring accuracy under noise"
        text = f"trained {epochs} · {doing}"
        if not p.sweep_total:
            return 1.0, text + "…"
        fraction = _clip(p.sweep_done / p.sweep_total)
        eta = f" · ETA {format_duration(p.eta_s)}" if p.eta_s is not None and fraction < 1 else ""
        return fraction, f"{text} · {fraction:.0%}{eta}"
    parts = [f"step {p.step}/{p.total_steps or '?'}", f"epoch {p.epoch}/{p.epochs or '?'}"]
    if p.eta_s is not None:
        parts.append(f"ETA {format_duration(p.eta_s)}")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4g}")
    return _clip(p.fraction), " · ".join(parts)


def progress_text(run) -> str:
    """The text of progress_bar(run)."""
    return progress_bar(run)[1]


def progress_fraction(run) -> float:
    """The fill of progress_bar(run): training's fraction of steps, then the sweep's."""
    return progress_bar(run)[0]


def _clip(fraction: float) -> float:
    return float(min(max(fraction, 0.0), 1.0))


SETTING_NAMES = {"data_dir": "GRADLOSS_DATA_DIR", "code": "code", "engines": "engines"}


def settings_differences(worker: WorkerSettings, mine: WorkerSettings) -> list[str]:
    """'GRADLOSS_DATA_DIR: worker not set, dashboard /data' for each setting that decides how
    runs train and differs between a worker's heartbeat record and this process."""
    def shown(value):
        if value in (None, "", (), []):
            return "not set"
        return ", ".join(value) if isinstance(value, (list, tuple)) else str(value)

    return [f"{name}: worker {shown(getattr(worker, key))}, dashboard {shown(getattr(mine, key))}"
            for key, name in SETTING_NAMES.items() if getattr(worker, key) != getattr(mine, key)]


def workers_table(workers: list[WorkerState]) -> pd.DataFrame:
    """One row per worker (as consumer.worker_status lists them), live ones first."""
    rows = [{"host": w.record.host, "device": w.record.device or "-",
             "GPU": "-" if w.record.gpu is None else str(w.record.gpu),
             "state": "live" if w.alive else "lost",
             "training": short_id(w.record.run_id) if w.record.run_id else "idle",
             "heartbeat": w.age_s, "pid": w.record.pid}
            for w in sorted(workers, key=lambda w: (not w.alive, w.record.host, w.record.gpu or 0))]
    return pd.DataFrame(rows, columns=["host", "device", "GPU", "state", "training", "heartbeat", "pid"])
