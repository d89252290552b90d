"""The workers table: one row per live worker process anywhere, refreshed every heartbeat."""
from __future__ import annotations

import json
import time
from dataclasses import replace

from gradloss.core.records import WorkerRecord, WorkerSettings
from gradloss.service.store.database import Database
from gradloss.service.store.runs import _json, _number, _text
from gradloss.service.store.schema import workers
from gradloss.service.urls import redact


class WorkerRepository:
    """Verbs on the workers table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def beat(self, record: WorkerRecord) -> None:
        """Say the worker of `record` is alive now (its heartbeat_at becomes now). Its store and
        queue URLs are kept with their passwords masked, whatever the caller passed."""
        settings = replace(record.settings, store=redact(record.settings.store),
                           queue=redact(record.settings.queue))
        row = {"worker_id": record.worker_id, "host": record.host, "pid": record.pid,
               "device": record.device, "gpu": record.gpu, "run_id": record.run_id,
               "started_at": record.started_at, "heartbeat_at": time.time(),
               "settings": json.dumps(settings.to_dict())}
        with self._db.connect(write=True) as conn:
            self._db.upsert(conn, workers, [row], ["worker_id"])

    def remove(self, worker_id: str) -> None:
        with self._db.connect(write=True) as conn:
            conn.execute(workers.delete().where(workers.c.worker_id == worker_id))

    def list(self) -> list[WorkerRecord]:
        """Every recorded worker, the most recent heartbeat first."""
        with self._db.connect() as conn:
            rows = conn.execute(workers.select().order_by(workers.c.heartbeat_at.desc())).all()
        return [WorkerRecord(row.worker_id, _text(row.host), _number(row.pid, int) or 0,
                             _text(row.device), _number(row.gpu, int), _text(row.run_id),
                             _number(row.heartbeat_at) or 0.0, _number(row.started_at) or 0.0,
                             WorkerSettings.from_dict(_json(row.settings, "settings")[0] or {}))
                for row in rows]

    def prune(self, silent_before: float) -> int:
        """Forget workers silent since before `silent_before`; returns how many."""
        with self._db.connect(write=True) as conn:
            return conn.execute(workers.delete()
                                .where(workers.c.heartbeat_at < silent_before)).rowcount


