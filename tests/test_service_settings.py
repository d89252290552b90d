"""Tests of the service's settings and fault handling that need no training: URL checks and
masking, the CLI's exit status for a store or queue it cannot use, JSON task payloads, the
Reporter's retries, and choosing GPUs. Network cases use the real servers from services.py."""
import json
import sqlite3

import pytest

from gradloss.core.plan import RunPlan
from gradloss.cli.main import main
from gradloss.core.errors import InvalidParameterError, ServiceUnavailable
from gradloss.service import client, settings, tasks, urls
from gradloss.service.fleet import choose_gpus
from gradloss.service.reporter import Reporter
from gradloss.service.store import Store

from _worker_helpers import TINY

SECRET = "s3cr3t-pw"


def test_redact_masks_only_the_password():
    """Check that redact hides passwords of every URL form and leaves the rest readable."""
    cases = {f"postgresql://ann:{SECRET}@db.lab:5432/gradloss": "postgresql://ann:***@db.lab:5432/gradloss",
             f"redis://:{SECRET}@10.0.0.2:6379/0": "redis://:***@10.0.0.2:6379/0",
             "redis://10.0.0.2:6379/0": "redis://10.0.0.2:6379/0",
             "sqlite:////data/runs.sqlite": "sqlite:////data/runs.sqlite",
             f"postgresql://ann:{SECRET}@[::1:5432/x": "postgresql://ann:***@[::1:5432/x"}
    for url, shown in cases.items():
        assert urls.redact(url) == shown
    url = "postgresql://ann:p%40ss@h/db"
    assert urls.scrub(f"failed for {url}: bad p@ss and p%40ss", url) == \
        "failed for postgresql://ann:***@h/db: bad *** and ***"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.delenv("GRADLOSS_STORE_URL", raising=False)
    monkeypatch.delenv("GRADLOSS_QUEUE_URL", raising=False)
    return tmp_path


def _cli_fails_naming(capsys, setting: str, *argv: str) -> str:
    assert main(list(argv) or ["runs"]) == 2
    err = capsys.readouterr().err
    assert setting in err and SECRET not in err, err
    return err


def test_cli_exits_2_naming_a_malformed_or_unknown_store_url(home, monkeypatch, capsys):
    """Check that a bad GRADLOSS_STORE_URL is one clear message, password masked, exit status 2."""
    monkeypatch.setenv("GRADLOSS_STORE_URL", f"mysql://ann:{SECRET}@h/db")
    assert "scheme among ('sqlite', 'postgresql')" in _cli_fails_naming(capsys, "GRADLOSS_STORE_URL")
    monkeypatch.setenv("GRADLOSS_STORE_URL", f"postgresql://ann:{SECRET}@h:port/db")
    assert "ann:***@h:port" in _cli_fails_naming(capsys, "GRADLOSS_STORE_URL")


@pytest.mark.parametrize("setting, value, argv, allowed", [
    ("GRADLOSS_STORE_URL", "sqlite://", ["runs"], "sqlite:///PATH, a database file"),
    ("GRADLOSS_QUEUE_URL", "sqlite://", ["train", "--dataset", "digits", "--submit"],
     "sqlite:///PATH, a database file"),
    ("GRADLOSS_STORE_URL", f"postgresql+asyncpg://ann:{SECRET}@127.0.0.1:5432/x", ["runs"],
     "a URL whose scheme is among ('postgresql', 'postgresql+psycopg')"),
    ("GRADLOSS_QUEUE_URL", f"redis://:{SECRET}@127.0.0.1:6379/abc", ["worker"],
     "whose path is a database number"),
    ("GRADLOSS_HEARTBEAT_TIMEOUT", "inf", ["worker"], "a number of seconds in the range [1, 86400]"),
    ("GRADLOSS_HEARTBEAT_TIMEOUT", "1e-9", ["worker"], "a number of seconds in the range [1, 86400]"),
])
def test_cli_exits_2_naming_a_setting_and_what_it_allows(home, monkeypatch, capsys, setting, value,
                                                         argv, allowed):
    """Check the settings the fault pass found accepted or crashing: an in-memory SQLite store or
    queue (was an IndexError), an async driver (ModuleNotFoundError), a Redis database that is not
    a number (silently 0), a heartbeat timeout of inf or 1e-9: one message, exit 2, nothing stored."""
    monkeypatch.setenv(setting, value)
    err = _cli_fails_naming(capsys, setting, *argv)
    assert allowed in err and "Traceback" not in err, err
    monkeypatch.delenv(setting)
    assert Store.default().runs.list() == []


SUBMIT = ["train", "--dataset", "digits", "--epochs", "1", "--submit"]


def test_a_read_only_store_is_refused_before_anything_is_written(home, capsys):
    """Check `chmod 400 runs.sqlite`: submit, runs and worker exit 2 naming the file, its mode
    and the fix, and SQLite makes no side file (it would give them mode 0400, which kept every
    write failing after chmod 600); once writable, the submit goes through."""
    import stat
    Store.default()
    store_file = home / "runs.sqlite"
    store_file.chmod(0o400)
    for argv in (SUBMIT, ["runs"], ["worker"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"gradloss cannot write its run store {store_file}: it is read-only (mode 0400)" in err
        assert f"chmod 600 {store_file}" in err and "Traceback" not in err
    assert not list(home.glob("runs.sqlite-*")) and tasks.pending_count() == 0
    store_file.chmod(0o600)
    assert main(SUBMIT) == 0
    assert len(Store.default().runs.list()) == 1 and tasks.pending_count() == 1
    assert stat.S_IMODE(store_file.stat().st_mode) == 0o600


def test_read_only_side_files_are_made_writable_again(home):
    """Check that -wal and -shm files left read-only beside a writable store (SQLite gave them
    the read-only database's mode) are made 0600 before the store writes, for the queue too."""
    import stat
    Store.default()
    tasks.pending_count()
    sides = [home / f"{name}.sqlite{suffix}" for name in ("runs", "queue")
             for suffix in ("-wal", "-shm")]
    for side in sides:
        if not side.exists():  # the queue's are open in this process: never truncate those
            side.write_bytes(b"")
        side.chmod(0o400)
    tasks.check_queue()
    Store.default().runs.create(RunPlan(TINY))
    assert client.submit(TINY)
    assert {side.name: stat.S_IMODE(side.stat().st_mode) for side in sides if side.exists()} == \
        {side.name: 0o600 for side in sides if side.exists()}
    assert sum(side.exists() for side in sides) >= 2


def test_a_read_only_queue_refuses_the_submit_and_records_no_run(home, capsys):
    """Check `chmod 400 queue.sqlite`: submit exits 2 naming the queue file, and the store
    records nothing (it recorded a run "failed: could not be queued")."""
    tasks.pending_count()
    queue_file = home / "queue.sqlite"
    queue_file.chmod(0o400)
    assert main(SUBMIT) == 2
    err = capsys.readouterr().err
    assert f"gradloss cannot write its queue {queue_file}: it is read-only (mode 0400)" in err
    assert "GRADLOSS_QUEUE_URL" in err and "Traceback" not in err
    assert Store.default().runs.list() == []


def test_a_postgres_url_is_read_as_postgresql(home, monkeypatch, postgres_server):
    """Check that the postgres:// spelling many hosts hand out reaches the same database."""
    url = postgres_server.database()
    monkeypatch.setenv("GRADLOSS_STORE_URL", url.replace("postgresql://", "postgres://", 1))
    assert settings.store_url() == url
    run_id = Store.default().runs.create(RunPlan(TINY))
    assert Store(url).runs.get(run_id).status == "queued"


def test_cli_exits_2_when_the_postgresql_server_is_down_refuses_or_is_foreign(
        home, monkeypatch, capsys, postgres_server):
    """Check a server that is not there, a wrong password, a missing database and a database
    holding someone else's tables: each one message naming the setting, nothing written."""
    from services import free_port
    good = postgres_server.database()
    cases = {f"postgresql://gradloss:{SECRET}@127.0.0.1:{free_port()}/x": "Connection refused",
             good.replace(postgres_server.password, SECRET): "password authentication failed",
             postgres_server.url("nowhere"): 'database "nowhere" does not exist'}
    for url, reason in cases.items():
        monkeypatch.setenv("GRADLOSS_STORE_URL", url)
        assert reason in _cli_fails_naming(capsys, "GRADLOSS_STORE_URL")
    import psycopg
    with psycopg.connect(good, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER)")
    monkeypatch.setenv("GRADLOSS_STORE_URL", good)
    assert "tables gradloss did not create (runs)" in _cli_fails_naming(capsys, "GRADLOSS_STORE_URL")
    with psycopg.connect(good) as conn:  # the refusal wrote nothing
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == [("runs",)]


def test_submit_to_an_unreachable_queue_exits_2_and_records_nothing(home, monkeypatch, capsys,
                                                                    redis_server):
    """Check that a queue that is down or refuses the password stops a submit before the store
    records a run, with one message naming GRADLOSS_QUEUE_URL."""
    from services import free_port
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--submit"]
    for url in (f"redis://:{SECRET}@127.0.0.1:{free_port()}/0",
                redis_server.url.replace(redis_server.password, SECRET)):
        monkeypatch.setenv("GRADLOSS_QUEUE_URL", url)
        _cli_fails_naming(capsys, "GRADLOSS_QUEUE_URL", *argv)
    assert Store.default().runs.list() == []


def test_a_queue_error_names_the_queue_once(home, monkeypatch, capsys):
    """Check that a queue that cannot be made or reached says "The queue at ... cannot be used"
    once (an error raised while the queue was being built was wrapped a second time)."""
    from services import free_port
    (home / "file").write_text("")
    for url in (f"sqlite:///{home / 'file' / 'queue.sqlite'}", "sqlite:////proc/gradloss/queue.sqlite",
                f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"):
        monkeypatch.setenv("GRADLOSS_QUEUE_URL", url)
        for argv in (["train", "--dataset", "digits", "--submit"], ["worker"]):
            err = _cli_fails_naming(capsys, "GRADLOSS_QUEUE_URL", *argv)
            assert err.count("The queue at GRADLOSS_QUEUE_URL=") == 1, err


def test_task_payloads_are_json_in_both_queues(home, monkeypatch, redis_server):
    """Check that what the queue holds is JSON (no pickle), and that it reads back as the task."""
    from gradloss.service import client
    redis_server.flush()
    for url in (f"sqlite:///{home / 'q.sqlite'}", redis_server.url):
        monkeypatch.setenv("GRADLOSS_QUEUE_URL", url)
        run_id = client.submit(TINY)
        if url.startswith("redis"):  # a sorted set (priorities): 8 bytes of order, then the data
            import redis
            [raw] = [item[8:] for item in redis.Redis.from_url(url).zrange("huey.redis.gradloss", 0, -1)]
        else:
            [(raw,)] = sqlite3.connect(home / "q.sqlite").execute("SELECT data FROM task").fetchall()
        message = json.loads(raw)["__message__"]
        assert message[1].endswith("train_run") and message[6] == [run_id]
        task = tasks.queue_for()[0].dequeue()
        assert task.args == [run_id] and task.id == Store.default().runs.get(run_id).task_id


def test_reporter_keeps_order_and_retries_until_the_store_is_back():
    """Check that writes failing with ServiceUnavailable are retried, in order, none lost, and
    that a 'latest' write replaces its pending predecessor."""
    sent, failures = [], iter(range(3))

    def write(item):
        if next(failures, None) is not None:
            raise ServiceUnavailable("The run store at GRADLOSS_STORE_URL=x cannot be used: down")
        sent.append(item)

    reporter = Reporter()
    for item in ("m1", "m2", "m3"):
        reporter.send(write, item)
    reporter.close()
    assert sent == ["m1", "m2", "m3"]
    gate = []
    reporter = Reporter()
    reporter.send(lambda: gate.append(1) or __import__("time").sleep(0.3))  # hold the thread
    reporter.send(write, "p1", latest="progress")
    reporter.send(write, "p2", latest="progress")
    reporter.close()
    assert sent[3:] == ["p2"]


def test_choose_gpus_takes_all_or_listed_indices():
    """Check --gpus parsing: 'all', a list, and a message naming the parameter for a bad one."""
    gpus = [(0, "GPU-a", "H100"), (1, "GPU-b", "H100")]
    assert choose_gpus("all", gpus) == gpus and choose_gpus("all", []) == []
    assert choose_gpus("1", gpus) == [gpus[1]] and choose_gpus("1,0", gpus) == gpus[::-1]
    for bad in ("2", "0,0", "one", ""):
        with pytest.raises(InvalidParameterError, match="The 'gpus' parameter of worker must be"):
            choose_gpus(bad, gpus)


def test_a_redis_list_queue_of_an_older_gradloss_is_adopted_in_order(home, monkeypatch, redis_server):
    """Check that tasks an older gradloss queued in Redis as a plain list are moved into the
    priority queue under the same key, oldest first, and that training still goes first."""
    import redis

    from gradloss.service import client, queue

    redis_server.flush()
    monkeypatch.setenv("GRADLOSS_QUEUE_URL", redis_server.url)
    conn = redis.Redis.from_url(redis_server.url)
    for name in ("first", "second"):  # as RedisHuey queued them: LPUSH, popped from the tail
        conn.lpush("huey.redis.gradloss", json.dumps({"__message__": [
            name, "gradloss.service.tasks.evaluate_run", None, 0, 0, None, [name], {}, None,
            None]}))
    queue.huey_for.cache_clear()
    tasks.app.cache_clear()
    huey = tasks.queue_for()[0]
    assert conn.type("huey.redis.gradloss") == b"zset" and huey.pending_count() == 2
    run_id = client.submit(TINY)
    assert [huey.dequeue().args for _ in range(3)] == [[run_id], ["first"], ["second"]]
    queue.huey_for.cache_clear()
    tasks.app.cache_clear()
