"""Datasets and model files users gave (a .npz or image folder, a .keras file), each stored once
by its content hash, so a worker on any machine trains on exactly what was submitted: a run
names its dataset and architecture by hash (TrainConfig.dataset_hash, architecture_hash) and the
worker fetches them from here (`gradloss.service.uploads`)."""
from __future__ import annotations

import json
import time

import sqlalchemy as sa

from gradloss.service.store.database import Database
from gradloss.service.store.schema import files

KINDS = ("dataset", "architecture")


class FileRepository:
    """Verbs on the files table of one store."""

    def __init__(self, db: Database):
        self._db = db

    def put(self, sha256: str, kind: str, name: str, data: bytes, info: dict) -> bool:
        """Store the file `sha256` unless it is there already; True if it was added."""
        if kind not in KINDS:
            raise ValueError(f"The 'kind' parameter of FileRepository.put must be a str among "
                             f"{KINDS}. Got {kind!r} instead.")
        with self._db.connect(write=True) as conn:
            if self._exists(conn, sha256):
                return False
            conn.execute(files.insert().values(sha256=sha256, kind=kind, name=name,
                                               info=json.dumps(info), data=bytes(data),
                                               created_at=time.time()))
        return True

    def has(self, sha256: str) -> bool:
        with self._db.connect() as conn:
            return self._exists(conn, sha256)

    def get(self, sha256: str) -> bytes | None:
        """The file's bytes, or None if the store has no file with that hash."""
        with self._db.connect() as conn:
            data = conn.execute(sa.select(files.c.data).where(files.c.sha256 == sha256)).scalar()
        return None if data is None else bytes(data)

    def info(self, sha256: str) -> dict | None:
        """{file_kind, name, sha256, **info} of the file, or None; a prefix of 12 or more hex
        digits is enough (how runs are labelled) when it names one file."""
        column = files.c.sha256
        where = column == sha256 if len(sha256) == 64 else column.like(f"{sha256}%")
        with self._db.connect() as conn:
            rows = conn.execute(sa.select(files.c.sha256, files.c.kind, files.c.name, files.c.info)
                                .where(where).limit(2)).all()
        if len(rows) != 1:
            return None
        sha, kind, name, info = rows[0]
        return {**json.loads(info), "sha256": sha, "file_kind": kind, "name": name}

    def list(self, kind: str | None = None) -> list[dict]:
        """{sha256, file_kind, name, **info} of every stored file (of `kind`), newest first."""
        query = sa.select(files.c.sha256, files.c.kind, files.c.name, files.c.info) \
            .order_by(files.c.created_at.desc())
        if kind is not None:
            query = query.where(files.c.kind == kind)
        with self._db.connect() as conn:
            return [{**json.loads(info), "sha256": sha, "file_kind": k, "name": name}
                    for sha, k, name, info in conn.execute(query)]

    @staticmethod
    def _exists(conn, sha256: str) -> bool:
        return conn.execute(sa.select(files.c.sha256).where(files.c.sha256 == sha256)).first() \
            is not None
