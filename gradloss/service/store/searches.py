"""Strength searches: the spec, the state of their trial runs, and the lease that lets one
process at a time tell and ask their trials (`service.search`). The study itself (trials,
strengths, values) is Optuna's, kept by Optuna's RDB storage in this same database."""
from __future__ import annotations

import json
import time

import sqlalchemy as sa

from gradloss.core.errors import SearchNotFound
from gradloss.core.records import SearchRecord
from gradloss.core.search import SearchConfig
from gradloss.service.urls import redact
from gradloss.service.store.database import Database
from gradloss.service.store.runs import _number, _parsed, new_id, status_counts
from gradloss.service.store.schema import runs, searches


class SearchRepository:
    """Verbs on the searches table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def create(self, spec: SearchConfig) -> str:
        """Record a search (its trial runs are created as Optuna asks for them)."""
        search_id = "s" + new_id()
        with self._db.connect(write=True) as conn:
            conn.execute(searches.insert().values(search_id=search_id, created_at=time.time(),
                                                  spec=json.dumps(spec.to_dict())))
        return search_id

    def _select(self, query) -> list[SearchRecord]:
        with self._db.connect() as conn:
            rows = conn.execute(query).all()
            counts = status_counts(conn, runs.c.search_id, [r.search_id for r in rows])
        records = []
        for row in rows:
            spec, bad = _parsed(row.spec, SearchConfig, "search spec")
            records.append(SearchRecord(row.search_id, _number(row.created_at) or 0.0, spec,
                                        counts[row.search_id], bad,
                                        _number(row.finished_at)))
        return records

    def get(self, search_id: str) -> SearchRecord:
        """The search `search_id`; SearchNotFound names the id and the store."""
        found = self._select(searches.select().where(searches.c.search_id == search_id))
        if not found:
            raise SearchNotFound(f"No strength search with id {search_id!r} in the run store "
                                 f"{redact(self._db.url)}.")
        return found[0]

    def list(self, open_only: bool = False) -> list[SearchRecord]:
        """Searches newest first; `open_only`: those not finished."""
        query = searches.select().order_by(searches.c.created_at.desc(),
                                           searches.c.search_id.desc())
        if open_only:
            query = query.where(searches.c.finished_at.is_(None))
        return self._select(query)

    def finish(self, search_id: str) -> None:
        """Record that every trial of the search was asked and told."""
        with self._db.connect(write=True) as conn:
            conn.execute(searches.update().where(searches.c.search_id == search_id,
                                                 searches.c.finished_at.is_(None))
                         .values(finished_at=time.time()))

    def lease(self, search_id: str, seconds: float) -> float | None:
        """Hold search `search_id` for `seconds` unless another process holds it now; returns
        the lease's end (pass it to `release`), None if it is held. A holder that died frees it
        when its lease runs out."""
        now = time.time()
        until = now + seconds
        with self._db.connect(write=True) as conn:
            taken = conn.execute(searches.update().where(
                searches.c.search_id == search_id,
                sa.or_(searches.c.lease_until.is_(None), searches.c.lease_until < now))
                .values(lease_until=until)).rowcount
        return until if taken else None

    def release(self, search_id: str, until: float) -> None:
        """End the lease `lease` gave (one another process took since is left alone)."""
        with self._db.connect(write=True) as conn:
            conn.execute(searches.update().where(searches.c.search_id == search_id,
                                                 searches.c.lease_until == until)
                         .values(lease_until=None))
