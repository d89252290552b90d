"""Connections to the run store's database, SQLite or PostgreSQL, its schema brought up to date,
and `Database`: the URL and the few helpers every repository of the store writes with.

`engine(url)` is made once per URL and process. SQLite keeps its single-machine tuning: WAL (a
reader never blocks the training worker), a busy timeout (writers queue instead of failing with
"database is locked"), BEGIN IMMEDIATE for writes (so they queue, not deadlock), a fresh connection
per transaction. PostgreSQL gets a small pool whose connections are tested before use, so a
restarted server costs one reconnect, not an error. `migrate` applies schema.MIGRATIONS in one
transaction. `unavailable` turns a driver's error into ServiceUnavailable, password masked.
"""
from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from functools import cache

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import NullPool

from gradloss.core.errors import GradlossError, RunNotFound, ServiceUnavailable
from gradloss.service.store.schema import MIGRATIONS, SCHEMA_VERSION, metadata, schema_version
from gradloss.service.urls import STORE_SETTING, redact, scrub, scrub_environment

BUSY_TIMEOUT_S = 30.0     # a SQLite writer waits this long for another writer before giving up
CONNECT_TIMEOUT_S = 5     # a PostgreSQL server that does not answer within this is down
MIGRATION_LOCK = 7261     # PostgreSQL advisory lock key: one migrating process at a time
DRIVER_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.ProgrammingError,
                 sa.exc.InternalError)


def unavailable(url: str, exc: BaseException) -> ServiceUnavailable:
    """A ServiceUnavailable naming the store setting and the driver's first line, password masked."""
    reason = getattr(exc, "orig", None) or exc
    first = next((line.strip() for line in str(reason).splitlines() if line.strip()), type(reason).__name__)
    return ServiceUnavailable(f"The run store at {STORE_SETTING}={redact(url)} cannot be used: "
                              f"{scrub(first, url)}")


def driver_url(url: str) -> sa.URL:
    """`url` as SQLAlchemy reads it; postgresql:// means the psycopg (3) driver."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ServiceUnavailable(f"The {STORE_SETTING} setting is not a valid URL: "
                                 f"{redact(url)!r} ({scrub(exc, url)}).") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@cache
def engine(url: str) -> sa.Engine:
    """The engine for `url`, made once per process."""
    parsed = driver_url(url)
    if parsed.get_backend_name() == "sqlite":
        made = sa.create_engine(parsed, poolclass=NullPool,
                                connect_args={"timeout": BUSY_TIMEOUT_S, "isolation_level": None})
        sa.event.listen(made, "connect", _sqlite_connect)
        sa.event.listen(made, "begin", _sqlite_begin)
        return made
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=4,
                            connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def _sqlite_connect(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA foreign_keys = ON")
    dbapi_conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, and no fsync per step


def _sqlite_begin(conn: sa.Connection) -> None:
    # The driver is in autocommit mode (isolation_level None): we say when a transaction starts.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


@contextlib.contextmanager
def transaction(url: str, write: bool = False) -> Iterator[sa.Connection]:
    """One transaction; driver errors about reaching the database become ServiceUnavailable."""
    try:
        with engine(url).connect().execution_options(write=write) as conn, conn.begin():
            yield conn
    except DRIVER_ERRORS as exc:
        raise unavailable(url, exc) from None


@cache  # a call that raised is not cached: the next one tries again
def migrate(url: str) -> None:
    """Bring the database at `url` to SCHEMA_VERSION (once per process), all steps or none."""
    made = engine(url)
    try:
        if made.dialect.name == "sqlite":
            with contextlib.closing(made.raw_connection()) as raw:  # outside any transaction
                _enable_wal(raw.driver_connection)
        with transaction(url) as conn:
            behind = _version(conn) < SCHEMA_VERSION
        if behind:
            with transaction(url, write=True) as conn:
                if made.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                version = _version(conn)  # again, under the lock: another process may have done it
                for step in MIGRATIONS[version:]:
                    for operation in step:
                        operation.apply(conn)
                _set_version(conn)
    except DRIVER_ERRORS as exc:
        raise unavailable(url, exc) from None


def _version(conn: sa.Connection) -> int:
    """The schema version the database records; refuse one that is newer or not gradloss's."""
    tables = set(sa.inspect(conn).get_table_names())
    if "schema_version" in tables:
        version = conn.execute(sa.select(schema_version.c.version)).scalar() or 0
    elif conn.dialect.name == "sqlite":  # a file from before schema_version: PRAGMA user_version
        version = conn.exec_driver_sql("PRAGMA user_version").scalar()
    else:
        version = 0
    url = conn.engine.url.render_as_string(hide_password=False)
    if version > SCHEMA_VERSION:
        raise GradlossError(
            f"The run store at {STORE_SETTING}={redact(url)} has schema version {version}, newer "
            f"than this gradloss understands ({SCHEMA_VERSION}); upgrade gradloss or point "
            f"{STORE_SETTING} (or GRADLOSS_HOME) elsewhere.")
    if version == 0 and tables & set(metadata.tables):
        raise ServiceUnavailable(
            f"The database at {STORE_SETTING}={redact(url)} holds tables gradloss did not create "
            f"({', '.join(sorted(tables & set(metadata.tables)))}) and no gradloss schema version; "
            "point it at an empty database.")
    return version


def _set_version(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":  # keeps older gradloss versions refusing a newer file
        conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if not sa.inspect(conn).has_table("schema_version"):
        schema_version.create(conn)
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    else:
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION))


def _enable_wal(conn: sqlite3.Connection) -> None:
    # WAL is a property of the file, set once; switching needs the file briefly to itself
    # and does not wait on the busy timeout, so retry while another process holds it.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _ids(ids: str | Iterable[str]) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


class Database:
    """The store's database at one URL, and the helpers every repository writes with.

    Holds only the URL; each `connect` is one short transaction (SQLite: BEGIN IMMEDIATE when
    writing). Every repository of a `Store` shares one Database."""

    def __init__(self, url: str):
        self.url = url

    def __repr__(self) -> str:
        return f"Database({redact(self.url)!r})"

    def masked(self, text: str | None) -> str | None:
        """`text` (a reason to store) with the secrets of this store's URL and of the configured
        ones masked: a driver's message quoted in an error must not keep a password in a row."""
        return None if text is None else scrub_environment(scrub(text, self.url))

    def connect(self, write: bool = False):
        """One transaction (a context manager yielding a SQLAlchemy Connection)."""
        return transaction(self.url, write)

    def require_run(self, conn: sa.Connection, run_id: str | Iterable[str]) -> None:
        """Raise RunNotFound, naming the id and the store, unless run `run_id` (or every run of
        several ids) exists."""
        runs = metadata.tables["runs"]
        wanted = _ids(run_id)
        found = set(conn.execute(sa.select(runs.c.run_id)
                                 .where(runs.c.run_id.in_(wanted))).scalars())
        for missing in (i for i in wanted if i not in found):
            raise RunNotFound(f"No run with id {missing!r} in the run store {redact(self.url)}.")

    def update(self, table: sa.Table, run_id: str, *conditions, **values) -> bool:
        """UPDATE table SET values WHERE run_id = run_id AND conditions; True if a row changed
        (RunNotFound if none did because the run does not exist)."""
        with self.connect(write=True) as conn:
            changed = conn.execute(table.update().where(table.c.run_id == run_id, *conditions)
                                   .values(**values)).rowcount > 0
            if not changed:
                self.require_run(conn, run_id)
            return changed

    def replace(self, table: sa.Table, run_id: str, rows: list[dict]) -> None:
        """Swap all of a run's rows in `table` for `rows`, in one transaction."""
        with self.connect(write=True) as conn:
            self.require_run(conn, run_id)
            conn.execute(table.delete().where(table.c.run_id == run_id))
            if rows:
                conn.execute(table.insert(), rows)

    @staticmethod
    def upsert(conn: sa.Connection, table: sa.Table, rows: list[dict], keys: list[str]) -> None:
        """INSERT rows, or UPDATE the other columns of a row whose `keys` exist (both dialects)."""
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
        others = {c: insert.excluded[c] for c in rows[0] if c not in keys}
        conn.execute(insert.on_conflict_do_update(index_elements=keys, set_=others), rows)

    def frame(self, query, columns: list[str], run_ids: str | Iterable[str] = ()) -> pd.DataFrame:
        """The rows of `query` as a DataFrame with `columns`; RunNotFound unless every run of
        `run_ids` (those the query asks about) exists: no rows would not say why."""
        with self.connect() as conn:
            self.require_run(conn, run_ids)
            rows = [tuple(row) for row in conn.execute(query)]
        return pd.DataFrame(rows, columns=columns)
