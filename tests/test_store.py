"""Tests for gradloss.service.store on both backends: a SQLite file in tmp_path and a fresh database
on a real PostgreSQL server (skipped, with the reason, where PostgreSQL is not installed)."""
import json
from dataclasses import replace
import multiprocessing
import stat
import sqlite3
import time

import pandas as pd
import pytest
import sqlalchemy

from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.core.plan import RunPlan
from gradloss.core.config import SweepConfig
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.records import WorkerRecord, WorkerSettings
from gradloss.service import settings
from gradloss.core.config import InvalidParameterError
from gradloss.core.errors import GradlossError, RunNotFound, ServiceUnavailable, SettingsError
from gradloss.service.store import database, schema
from gradloss.service.store import Store
from gradloss.service.store.schema import SCHEMA_VERSION

from _worker_helpers import TINY, hammer_store
from legacy_store import legacy_file


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    """Where a new store lives: a SQLite file path, or the URL of a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    return request.getfixturevalue("postgres_server").database()


@pytest.fixture
def store(location):
    return Store(location)


@pytest.fixture
def sqlite_store(tmp_path):
    return Store(tmp_path / "runs.sqlite")


def test_home_is_gradloss_home_or_the_users_data_folder(tmp_path, monkeypatch):
    """Check that home() follows $GRADLOSS_HOME, else the user's data folder whatever the
    working folder (one home for every entry point), and creates the folder."""
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "h"))
    assert settings.home() == tmp_path / "h" and (tmp_path / "h").is_dir()
    monkeypatch.delenv("GRADLOSS_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # where platformdirs looks on Linux
    for folder in (tmp_path, tmp_path / "h"):
        monkeypatch.chdir(folder)
        assert settings.home() == tmp_path / "data" / "gradloss"
    assert Store.default().path == tmp_path / "data" / "gradloss" / "runs.sqlite"


def test_new_store_is_wal_at_latest_schema(sqlite_store):
    """Check that a fresh file gets every migration and WAL journaling."""
    conn = sqlite3.connect(sqlite_store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_create_run_stores_the_resolved_config(store):
    """Check that a queued run keeps the whole config, reference defaults filled in."""
    run_id = store.runs.create(RunPlan(TINY), task_id="t1")
    run = store.runs.get(run_id)
    assert run.status == "queued" and run.task_id == "t1" and run.attempts == 0
    assert run.config.batch_size == 50 and run.config.learning_rate == 1e-3
    assert (run.objective, run.dataset, run.engine) == ("gradient", "digits", "tensorflow")
    assert run.progress == Progress() and run.started_at is None and not run.cancel_requested


@pytest.mark.parametrize("params", [{"objective": "noise_augmented", "train_noise_sigma": 0.25},
                                    {"objective": "input_gradient"}, {"objective": "mse"}])
def test_runs_of_every_objective_keep_their_parameters(store, params):
    """Check that a run of a new objective stores its name and parameters and rebuilds its config."""
    from gradloss.core.config import TrainConfig
    config = TrainConfig(dataset="digits", **params)
    run = store.runs.get(store.runs.create(RunPlan(config)))
    assert run.objective == params["objective"]
    assert run.config == config
    assert run.config.penalty_weight == (0.1 if params["objective"] == "input_gradient" else None)


def test_create_run_refuses_an_invalid_config(store):
    """Check that a bad config raises the config check's message and stores nothing."""
    with pytest.raises(InvalidParameterError, match="The 'epochs' parameter of TrainConfig"):
        store.runs.create(RunPlan({"dataset": "digits", "epochs": 0}))
    with pytest.raises(InvalidParameterError, match="Unknown TrainConfig parameter"):
        store.runs.create(RunPlan({"dataset": "digits", "color": "red"}))
    assert store.runs.list() == []


def test_unknown_run_id_error_names_it(store):
    """Check that every verb on a missing run raises RunNotFound naming the id."""
    calls = [lambda: store.runs.get("nope"), lambda: store.runs.start("nope", "w"),
             lambda: store.runs.update_progress("nope", Progress()), lambda: store.runs.finish("nope", "done"),
             lambda: store.runs.request_cancel("nope"), lambda: store.results.add_metrics("nope", []),
             lambda: store.results.save_examples("nope", pd.DataFrame(columns=["sigma", "index", "label",
                                                                       "prediction", "confidence"])),
             lambda: store.results.metrics("nope"), lambda: store.results.robustness("nope"),
             lambda: store.results.examples("nope"), lambda: store.evaluations.rows("nope"),
             lambda: store.evaluations.examples("nope")]
    for call in calls:
        with pytest.raises(RunNotFound, match="No run with id 'nope'"):
            call()
    real = store.runs.create(RunPlan(TINY))
    with pytest.raises(RunNotFound, match="No run with id 'nope'"):  # one of several missing
        store.results.metrics([real, "nope"])
    with pytest.raises(KeyError):  # RunNotFound is also a KeyError
        store.runs.get("nope")


def test_list_runs_newest_first_filtered_and_limited(store):
    """Check list_runs order, status filter (one or several) and limit."""
    ids = [store.runs.create(RunPlan(TINY)) for _ in range(3)]
    store.runs.start(ids[0], "w")
    store.runs.finish(ids[1], "cancelled")
    assert [r.run_id for r in store.runs.list()] == ids[::-1]
    assert [r.run_id for r in store.runs.list(status="running")] == [ids[0]]
    assert {r.run_id for r in store.runs.list(status=("queued", "cancelled"))} == {ids[1], ids[2]}
    assert len(store.runs.list(limit=2)) == 2
    for limit in (0, -1):  # SQLite read -1 as all; PostgreSQL raised a DataError
        with pytest.raises(InvalidParameterError, match=r"The 'limit' parameter of "
                                                        r"RunRepository.list must be an int in the "
                                                        rf"range \[1, inf\). Got {limit} instead."):
            store.runs.list(limit=limit)


def test_run_lifecycle_only_moves_forward(store):
    """Check that start and finish apply once: a finished run cannot restart or finish again."""
    run_id = store.runs.create(RunPlan(TINY))
    assert store.runs.start(run_id, "host:1")
    assert not store.runs.start(run_id, "host:2")  # already running
    store.runs.update_progress(run_id, Progress(fraction=0.5, step=2))
    store.runs.set_device(run_id, "NVIDIA H100")
    run = store.runs.get(run_id)
    assert run.status == "running" and run.worker_id == "host:1" and run.attempts == 1
    assert run.progress == Progress(fraction=0.5, step=2) and run.device == "NVIDIA H100"
    assert store.runs.finish(run_id, "done", model_path="/x/model.keras")
    assert not store.runs.finish(run_id, "failed", error="late")
    run = store.runs.get(run_id)
    assert (run.status, run.error, run.model_path) == ("done", None, "/x/model.keras")
    assert run.finished_at >= run.started_at >= run.created_at
    with pytest.raises(ValueError, match="The 'status' parameter of finish"):
        store.runs.finish(run_id, "running")


def test_metrics_upsert_on_run_name_and_step(store):
    """Check that a resumed run re-emitting a step replaces the value instead of duplicating it."""
    run_id, other = store.runs.create(RunPlan(TINY)), store.runs.create(RunPlan(TINY))
    store.results.add_metrics(run_id, [MetricRow(s, 1, "loss", 1.0) for s in (1, 2)])
    store.results.add_metrics(run_id, [MetricRow(2, 1, "loss", 0.5),
                               MetricRow(2, 1, "epoch_loss", 0.7)])
    store.results.add_metrics(other, [MetricRow(1, 1, "loss", 9.0)])
    loss = store.results.metrics(run_id, name="loss")
    assert list(loss.columns) == ["run_id", "step", "epoch", "name", "value"]
    assert loss["value"].tolist() == [1.0, 0.5]
    assert len(store.results.metrics([run_id, other])) == 4
    assert store.results.metrics([]).empty


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_value_is_never_stored_as_a_measurement(store, value):
    """Check that a NaN or infinite metric or accuracy is refused, naming it, and nothing of
    the batch is written (divergence fails a run; it is not a measurement)."""
    run_id = store.runs.create(RunPlan(TINY))
    with pytest.raises(ValueError, match="input_grad_norm at step 2 is"):
        store.results.add_metrics(run_id, [MetricRow(1, 1, "loss", 0.5),
                                           MetricRow(2, 1, "input_grad_norm", value)])
    assert store.results.metrics(run_id).empty
    sweep = pd.DataFrame({"sigma": [0.0, 0.1], "accuracy": [0.9, value], "accuracy_std": 0.0})
    with pytest.raises(ValueError, match="an accuracy is"):
        store.results.save_robustness(run_id, sweep, draws=1, seed=0)
    assert store.results.robustness(run_id).empty


def test_a_damaged_value_leaves_its_row_out_of_a_table(sqlite_store):
    """Check that a wrong-typed value written by hand (a metric 'abc') is left out of the
    metrics frame instead of breaking it, and the frame keeps its number types."""
    run_id = sqlite_store.runs.create(RunPlan(TINY))
    sqlite_store.results.add_metrics(run_id, [MetricRow(1, 1, "loss", 0.5),
                                              MetricRow(2, 1, "loss", 0.25)])
    with sqlite_store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE metrics SET value = 'abc' WHERE step = 2")
    frame = sqlite_store.results.metrics(run_id)
    assert frame.value.tolist() == [0.5] and frame.value.dtype == "float64"


def test_robustness_and_examples_roundtrip_and_replace(store):
    """Check that sweeps and grid predictions are stored per run; a second save replaces the first."""
    run_id = store.runs.create(RunPlan(TINY))
    table = pd.DataFrame({"sigma": [0.0, 0.1], "accuracy": [0.9, 0.8], "accuracy_std": [0.0, 0.01]})
    store.results.save_robustness(run_id, table, draws=3, seed=0)
    store.results.save_robustness(run_id, table.assign(accuracy=[0.95, 0.85]), draws=3, seed=0)
    got = store.results.robustness([run_id])
    assert list(got.columns) == ["run_id", "sigma", "accuracy", "accuracy_std", "draws", "seed"]
    assert got["accuracy"].tolist() == [0.95, 0.85] and got["draws"].tolist() == [3, 3]
    grid = pd.DataFrame({"sigma": [0.0, 0.0, 0.1], "index": [5, 7, 5], "label": [1, 2, 1],
                         "prediction": [1, 2, 3], "confidence": [0.9, 0.8, 0.4]})
    store.results.save_examples(run_id, grid)
    pd.testing.assert_frame_equal(store.results.examples(run_id), grid, check_dtype=False)


def test_request_cancel_queued_now_running_cooperatively(store):
    """Check that cancelling a queued run finishes it and cancelling a running one raises the flag."""
    queued, running, done = (store.runs.create(RunPlan(TINY)) for _ in range(3))
    store.runs.start(running, "w")
    store.runs.start(done, "w")
    store.runs.finish(done, "done")
    assert store.runs.request_cancel(queued) == "cancelled"
    assert not store.runs.start(queued, "w")  # a task that slipped past revoke does not start
    assert store.runs.request_cancel(running) == "running" and store.runs.cancel_requested(running)
    assert store.runs.request_cancel(done) == "done" and not store.runs.cancel_requested(done)
    assert store.runs.get(queued).finished_at is not None


def test_requeue_and_stale_finish_only_touch_stale_runs(store):
    """Check that crash recovery skips a run whose heartbeat is fresh."""
    run_id = store.runs.create(RunPlan(TINY))
    store.runs.start(run_id, "w")
    beat = store.runs.get(run_id).heartbeat_at
    assert not store.runs.requeue(run_id, "t2", stale_before=beat - 1)
    assert not store.runs.finish(run_id, "failed", error="lost", stale_before=beat - 1)
    assert store.runs.requeue(run_id, "t2", stale_before=beat + 1)
    run = store.runs.get(run_id)
    assert (run.status, run.task_id, run.attempts) == ("queued", "t2", 1)
    assert store.runs.start(run_id, "w2") and store.runs.get(run_id).attempts == 2
    assert store.runs.requeue(run_id, "t3", stale_before=float("inf"), count_attempt=False)
    assert store.runs.get(run_id).attempts == 1  # a worker stopped on purpose: that start is refunded


def test_migrates_a_version_1_file_keeping_its_runs(tmp_path):
    """Check that opening a store written at schema 1 upgrades it in place, data intact."""
    path = tmp_path / "old.sqlite"
    conn = legacy_file(path, version=1)
    conn.execute("INSERT INTO runs (run_id, created_at, config, objective, dataset, engine, status)"
                 " VALUES ('old', 1.0, ?, 'gradient', 'digits', 'tensorflow', 'done')",
                 (json.dumps(TINY.to_dict()),))
    conn.execute("INSERT INTO metrics VALUES ('old', 'loss', 1, 1, 0.25)")
    conn.close()
    store = Store(path)
    run = store.runs.get("old")
    assert run.status == "done" and run.attempts == 0 and not run.cancel_requested
    assert store.results.metrics("old")["value"].tolist() == [0.25]
    assert store.results.examples("old").empty  # the table added by migration 2 exists
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migrates_a_version_5_file_keeping_its_experiments_and_evaluations(tmp_path):
    """Check that a file the single-machine store left at version 5 (experiments, evaluations)
    gains the scale-out tables in place, its experiment, runs and evaluations intact."""
    path = tmp_path / "v5.sqlite"
    conn = legacy_file(path, version=5)
    conn.execute("INSERT INTO experiments VALUES ('x1', 1.0, ?)",
                 (json.dumps({"seeds": 2, "dataset": "digits"}),))
    conn.execute("INSERT INTO runs (run_id, created_at, config, objective, dataset, engine, status,"
                 " experiment_id, arm) VALUES ('old', 1.0, ?, 'gradient', 'digits', 'tensorflow',"
                 " 'done', 'x1', 'gradient')", (json.dumps(TINY.to_dict()),))
    conn.execute("INSERT INTO evaluations VALUES ('old', 'fgsm', 0.1, 0.5, 0.0, 100, 0)")
    conn.close()
    store = Store(path)
    [run] = store.runs.of_experiment("x1")
    assert (run.run_id, run.arm, run.host) == ("old", "gradient", None)
    assert store.experiments.get("x1").status == "done"
    assert store.evaluations.rows("old")[["perturbation", "accuracy"]].values.tolist() == [["fgsm", 0.5]]
    store.artifacts.put("old", "model.keras", b"weights")  # a table of the scale-out step
    assert store.artifacts.get("old", "model.keras") == b"weights"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_opening_the_store_again_keeps_this_process_sqlite_locks(tmp_path):
    """Check that Store() on an existing file, in a process with another connection open on it
    (a worker's heartbeat thread), keeps that connection's lock: closing any descriptor of the
    file drops it, and another process closing its last connection then deletes the WAL from
    under this one (lost writes, "disk I/O error")."""
    import subprocess
    import sys

    path = tmp_path / "runs.sqlite"
    store = Store(path)
    holder = sqlite3.connect(path, isolation_level=None)  # the heartbeat thread, mid-transaction
    holder.execute("BEGIN")
    holder.execute("SELECT COUNT(*) FROM runs").fetchall()
    Store(path)  # as train_run does meanwhile
    probe = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1])\n"
             "c.execute('SELECT COUNT(*) FROM runs').fetchall(); c.close()")
    subprocess.run([sys.executable, "-c", probe, str(path)], check=True, timeout=60)
    assert (tmp_path / "runs.sqlite-wal").exists()  # the other process saw this one's reader
    holder.execute("COMMIT")
    holder.execute("INSERT INTO workers (worker_id, host, pid, heartbeat_at, started_at)"
                   " VALUES ('w', 'h', 1, 1.0, 1.0)")
    holder.close()
    assert [w.worker_id for w in store.workers.list()] == ["w"]


def test_refuses_a_store_from_a_newer_version(tmp_path):
    """Check that a file with an unknown, newer schema is refused with advice, not damaged."""
    path = tmp_path / "new.sqlite"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(GradlossError, match="newer than this gradloss understands"):
        Store(path)


def test_open_reader_does_not_block_the_writer(sqlite_store):
    """Check that a dashboard holding a read transaction never stalls a worker's write (WAL)."""
    store = sqlite_store
    run_id = store.runs.create(RunPlan(TINY))
    reader = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM runs").fetchall()
    started = time.monotonic()
    store.results.add_metrics(run_id, [MetricRow(1, 1, "loss", 1.0)])
    store.runs.update_progress(run_id, Progress(step=1))
    assert time.monotonic() - started < 1.0
    reader.execute("COMMIT")


def test_two_processes_write_and_read_without_lock_errors(location):
    """Check that writers in two processes neither fail with 'database is locked' nor lose runs."""
    path = location
    Store(path)
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like separate programs
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        made = pool.starmap(hammer_store, [(path, 15, barrier), (path, 15, barrier)])
    store = Store(path)
    assert sorted(made[0] + made[1]) == sorted(r.run_id for r in store.runs.list())
    assert len(store.runs.list(status="done")) == 30
    assert len(store.results.metrics(made[0] + made[1], name="loss")) == 30 * 20


def _columns(store: Store) -> dict:
    """{table: [(column, type affinity, in the primary key, nullable)]} as the database reports them
    (SQLite lets an old-style TEXT PRIMARY KEY hold NULL; a key column counts as not nullable)."""
    inspector = sqlalchemy.inspect(database.engine(store.url))
    tables = {}
    for table in sorted(inspector.get_table_names()):
        key = set(inspector.get_pk_constraint(table)["constrained_columns"])
        tables[table] = sorted((c["name"], c["type"]._type_affinity.__name__, c["name"] in key,
                                c["nullable"] and c["name"] not in key)
                               for c in inspector.get_columns(table))
    return tables


def test_migrates_a_version_2_file_to_the_schema_of_a_new_store(tmp_path):
    """Check that a file written by the pre-SQLAlchemy store (user_version 2) upgrades in place to
    exactly the tables and columns a new store gets, keeping its rows, and is then usable."""
    conn = legacy_file(tmp_path / "old.sqlite", version=2)
    conn.execute("INSERT INTO runs (run_id, created_at, config, objective, dataset, engine, status,"
                 " attempts, task_id, model_path) VALUES ('old', 1.0, ?, 'gradient', 'digits',"
                 " 'tensorflow', 'done', 1, 't0', '/w/old/model.keras')", (json.dumps(TINY.to_dict()),))
    conn.execute("INSERT INTO examples VALUES ('old', 0.1, 3, 4, 4, 0.9)")
    conn.close()
    old, new = Store(tmp_path / "old.sqlite"), Store(tmp_path / "new.sqlite")
    assert _columns(old) == _columns(new)
    run = old.runs.get("old")
    assert (run.status, run.attempts, run.task_id, run.host, run.gpu) == ("done", 1, "t0", None, None)
    assert old.results.examples("old")["prediction"].tolist() == [4]
    assert old.artifacts.get("old", "model.keras") is None
    old.artifacts.put("old", "model.keras", b"weights")
    assert old.artifacts.get("old", "model.keras") == b"weights"
    versions = sqlite3.connect(tmp_path / "old.sqlite")
    assert versions.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert versions.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_sqlite_and_postgresql_get_the_same_schema(tmp_path, postgres_server):
    """Check that one set of migration steps gives both databases the same tables and columns."""
    assert _columns(Store(tmp_path / "runs.sqlite")) == _columns(Store(postgres_server.database()))


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    """Check that the steps run in one transaction: one that fails midway writes nothing."""
    legacy_file(tmp_path / "old.sqlite", version=2).close()
    broken = [*schema.MIGRATIONS[:-1], (*schema.MIGRATIONS[-1], schema.Create("runs", ("run_id",)))]
    monkeypatch.setattr(database, "MIGRATIONS", broken)
    monkeypatch.setattr(database, "SCHEMA_VERSION", len(broken))
    with pytest.raises(ServiceUnavailable, match="already exists"):
        Store(tmp_path / "old.sqlite")
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"runs", "metrics", "robustness", "examples"}


def test_artifacts_roundtrip_replace_and_belong_to_a_run(store):
    """Check that a run's files are stored whole, replaced by name, and refused for unknown runs."""
    run_id = store.runs.create(RunPlan(TINY))
    blob = bytes(range(256)) * 2000  # 0.5 MB, every byte value
    store.artifacts.put(run_id, "model.keras", blob)
    store.artifacts.put(run_id, "checkpoint.tar", b"epoch 1")
    store.artifacts.put(run_id, "checkpoint.tar", b"epoch 2")
    assert store.artifacts.get(run_id, "model.keras") == blob
    assert store.artifacts.get(run_id, "checkpoint.tar") == b"epoch 2"
    assert store.artifacts.get(run_id, "other") is None
    with pytest.raises(RunNotFound, match="No run with id 'nope'"):
        store.artifacts.put("nope", "model.keras", b"")


def test_workers_beat_list_and_leave(store):
    """Check that a worker's row is created by its first beat, refreshed by the next, and removed."""
    record = WorkerRecord("h1:10", "h1", 10, "NVIDIA H100", 1, None, 0.0, 5.0,
                          WorkerSettings(queue="redis://h:6379/0"))
    store.workers.beat(record)
    store.workers.beat(replace(record, worker_id="h2:20", host="h2", pid=20, device="CPU", gpu=None))
    first = store.workers.list()[1].heartbeat_at
    store.workers.beat(replace(record, run_id="r1"))
    workers = store.workers.list()
    assert [w.worker_id for w in workers] == ["h1:10", "h2:20"]  # the freshest beat first
    assert workers[0].run_id == "r1" and workers[0].heartbeat_at >= first
    assert workers[0].settings == WorkerSettings(queue="redis://h:6379/0") and workers[0].gpu == 1
    assert store.workers.prune(silent_before=workers[1].heartbeat_at) == 0
    store.workers.remove("h1:10")
    assert [w.worker_id for w in store.workers.list()] == ["h2:20"]
    assert store.workers.prune(silent_before=time.time() + 1) == 1 and store.workers.list() == []


def test_start_run_records_host_and_gpu_and_finish_is_fenced_by_worker(store):
    """Check that a run records where it trains, and that a worker that lost the run to another
    cannot finish it (nor beat its heartbeat)."""
    run_id = store.runs.create(RunPlan(TINY))
    assert store.runs.start(run_id, "h1:10", host="h1", gpu=1)
    run = store.runs.get(run_id)
    assert (run.host, run.gpu) == ("h1", 1)
    assert store.runs.requeue(run_id, "t2", stale_before=float("inf"))
    assert store.runs.start(run_id, "h2:20", host="h2")
    assert not store.runs.heartbeat(run_id, worker_id="h1:10") and store.runs.heartbeat(run_id, worker_id="h2:20")
    assert not store.runs.finish(run_id, "done", worker_id="h1:10")
    assert store.runs.finish(run_id, "done", worker_id="h2:20")
    run = store.runs.get(run_id)
    assert (run.status, run.host, run.gpu, run.attempts) == ("done", "h2", None, 2)


@pytest.mark.parametrize("bad", ["{not json", "null", "[]", '"text"'])
def test_a_malformed_row_is_listed_unreadable_and_spares_the_others(store, bad):
    """Check that a run whose stored config is not a JSON object is listed with the reason,
    and every other run reads as before."""
    good, broken = store.runs.create(RunPlan(TINY)), store.runs.create(RunPlan(TINY))
    with store.connect(write=True) as conn:
        conn.execute(sqlalchemy.text("UPDATE runs SET config = :c WHERE run_id = :r"),
                     {"c": bad, "r": broken})
    runs = {r.run_id: r for r in store.runs.list()}
    assert set(runs) == {good, broken}
    assert runs[good].unreadable is None and runs[good].config.epochs == 1
    assert runs[broken].unreadable.startswith("its stored config is not a JSON object")
    assert runs[broken].status == "queued" and runs[broken].config is None
    assert store.runs.get(broken).unreadable == runs[broken].unreadable


def test_wrong_typed_values_are_read_as_missing_in_every_listing(sqlite_store):
    """Check that times, counts and names of the wrong type (SQLite keeps what was written) in
    the runs, workers, experiments and evaluation plans tables leave every listing readable."""
    from gradloss.core.experiment import ExperimentConfig
    store = sqlite_store
    run_id = store.runs.create(RunPlan(TINY, evaluation=EvaluationConfig(perturbations=("contrast",))))
    store.experiments.create(ExperimentConfig(dataset="digits", epochs=1, train_size=100, seeds=2))
    store.workers.beat(WorkerRecord("h:1", "h", 1, "CPU", None, None, time.time(), time.time()))
    with store.connect(write=True) as conn:
        conn.exec_driver_sql("UPDATE runs SET attempts = 'x', started_at = 'y', gpu = 'z'")
        conn.exec_driver_sql("UPDATE workers SET heartbeat_at = 'x', pid = 'y', gpu = 'z'")
        conn.exec_driver_sql("UPDATE experiments SET created_at = 'x'")
        conn.exec_driver_sql("UPDATE evaluation_plans SET updated_at = 'x'")
    [run] = store.runs.list()
    assert (run.attempts, run.started_at, run.gpu) == (0, None, None)
    [worker] = store.workers.list()
    assert (worker.heartbeat_at, worker.pid, worker.gpu) == (0.0, 0, None)
    assert store.experiments.list()[0].created_at == 0.0
    assert store.evaluations.plan_of(run_id).updated_at is None
    with pytest.raises(InvalidParameterError, match="The 'limit' parameter of ExperimentRepository"):
        store.experiments.list(limit=0)


def test_a_run_keeps_its_whole_plan(store, tmp_path):
    """Check that a run's plan (config, sweep, evaluation, data folder) reads back equal, so the
    worker trains and measures what was submitted; without a data folder or evaluation, None."""
    plan = RunPlan(TINY, SweepConfig(sigmas=(0.0, 0.2), draws=5, seed=3),
                   EvaluationConfig(perturbations=("contrast",), severities=(1, 2)), str(tmp_path))
    run_id = store.runs.create(plan)
    run, evaluation = store.runs.get(run_id), store.evaluations.plan_of(run_id)
    assert run.data_dir == str(tmp_path) and run.sweep.draws == 5
    assert evaluation.status == "queued" and run.plan(evaluation.config) == plan
    plain = store.runs.create(RunPlan(TINY))
    assert store.runs.get(plain).plan() == RunPlan(TINY)
    assert store.evaluations.plan_of(plain) is None


@pytest.mark.parametrize("make", ["parent is a file", "home is a file", "store is a folder"])
def test_an_unusable_home_names_the_folder_the_reason_and_the_fix(tmp_path, monkeypatch, make):
    """Check that a GRADLOSS_HOME that cannot be created or holds no usable store gives one
    SettingsError naming the folder, the OS's reason and what to do."""

    blocker = tmp_path / "blocker"
    if make == "parent is a file":
        blocker.write_text("")
        folder = blocker / "home"
    elif make == "home is a file":
        blocker.write_text("")
        folder = blocker
    else:
        folder = tmp_path / "home"
        (folder / "runs.sqlite").mkdir(parents=True)
    monkeypatch.setenv("GRADLOSS_HOME", str(folder))
    with pytest.raises(SettingsError) as info:
        Store.default()
    message = str(info.value)
    assert str(folder) in message and "GRADLOSS_HOME" in message
    assert "unable to open database file" not in message
    assert "Set GRADLOSS_HOME to a folder you can write" in message


def test_home_and_store_are_readable_by_the_owner_only(tmp_path, monkeypatch):
    """Check that a GRADLOSS_HOME gradloss creates is 0700 and its database files 0600."""

    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path / "new" / "home"))
    store = Store.default()
    store.runs.create(RunPlan(TINY))
    folder = tmp_path / "new" / "home"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    with store.connect():  # an open connection keeps the -wal and -shm files
        files = sorted(folder.glob("runs.sqlite*"))
        assert {f.name for f in files} == {"runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"}
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}


def test_runs_are_renamed_tagged_annotated_and_deleted_when_finished(store):
    """Check the researcher's verbs: a name, tags and a note stick to the run; a refused value
    names the rule; deleting a running run is refused, a finished one takes every row with it."""
    run_id = store.runs.create(RunPlan(TINY))
    store.runs.rename(run_id, "  long baseline ")
    assert store.runs.tag(run_id, ["paper", " fig-2", "paper", ""]) == ("paper", "fig-2")
    store.runs.annotate(run_id, "diverged once at lr 1e-2")
    run = store.runs.get(run_id)
    assert (run.name, run.tags, run.note) == ("long baseline", ("paper", "fig-2"),
                                              "diverged once at lr 1e-2")
    with pytest.raises(InvalidParameterError, match="The 'name' parameter of RunRepository.rename"):
        store.runs.rename(run_id, "x" * 81)
    with pytest.raises(InvalidParameterError, match="The 'tags' parameter"):
        store.runs.tag(run_id, ["a,b"])
    store.runs.rename(run_id, "")
    store.runs.tag(run_id, [])
    assert (store.runs.get(run_id).name, store.runs.get(run_id).tags) == (None, ())

    store.runs.start(run_id, "w")
    store.results.add_metrics(run_id, [MetricRow(1, 1, "loss", 0.5)])
    store.artifacts.put(run_id, "model", b"weights")
    assert not store.runs.delete(run_id)  # running: left alone
    assert store.runs.get(run_id).status == "running"
    store.runs.finish(run_id, "done")
    assert store.runs.delete(run_id)
    with pytest.raises(RunNotFound):
        store.runs.get(run_id)
    with pytest.raises(RunNotFound):  # the results of a run that is gone are not an empty frame
        store.results.metrics(run_id)
    with store.connect() as conn:
        for table in ("metrics", "artifacts"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0
    with pytest.raises(RunNotFound):
        store.runs.delete(run_id)
