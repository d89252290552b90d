"""A run's files in the store, so any machine can resume it or show it: its newest checkpoint
(one tar) and its saved model. Why the store and not a shared folder: see
`gradloss.service.checkpoints`."""
from __future__ import annotations

import time

import sqlalchemy as sa

from gradloss.service.store.database import Database
from gradloss.service.store.schema import artifacts

CHECKPOINT = "checkpoint.tar"
MODEL = "model.keras"


class ArtifactRepository:
    """Verbs on the artifacts table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def put(self, run_id: str, name: str, data: bytes) -> None:
        """Store (or replace) the run's file `name`, e.g. CHECKPOINT or MODEL."""
        with self._db.connect(write=True) as conn:
            self._db.require_run(conn, run_id)
            self._db.upsert(conn, artifacts, [{"run_id": run_id, "name": name, "data": bytes(data),
                                               "updated_at": time.time()}], ["run_id", "name"])

    def get(self, run_id: str, name: str) -> bytes | None:
        """The run's file `name`, or None if it has none by that name."""
        with self._db.connect() as conn:
            self._db.require_run(conn, run_id)
            data = conn.execute(sa.select(artifacts.c.data).where(
                artifacts.c.run_id == run_id, artifacts.c.name == name)).scalar()
        return None if data is None else bytes(data)
