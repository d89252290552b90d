"""Tests of gradloss.service.urls: the store's and queue's URLs checked where they enter and never
shown with a secret. A corpus of hostile URLs (tests/_hostile_urls.py) goes through every path
that can print one: the CLI's stderr (runs, train --submit, worker), tracebacks and log lines, the
store's rows (a run's error, the workers table's settings) and, in test_pages.py, the pages."""
import io
import logging
import subprocess
import sys
import time

import pytest

from gradloss.cli.main import main
from gradloss.core.errors import ServiceUnavailable
from gradloss.core.records import WorkerRecord, WorkerSettings
from gradloss.core.plan import RunPlan
from gradloss.service import client, urls
from gradloss.service.store import Store

from _hostile_urls import MARKS, hostile_urls, leaked, written
from _worker_helpers import REPO, TINY, kill_all, start_consumer, wait_for
from services import free_port

STORE, QUEUE = urls.STORE_SETTING, urls.QUEUE_SETTING
CORPUS = hostile_urls(free_port())
SCHEMES = ("sqlite", "postgresql", "redis")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty GRADLOSS_HOME, no URLs set, and this process's excepthooks put back afterwards
    (the CLI installs scrubbing ones)."""
    import threading
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path))
    monkeypatch.delenv(STORE, raising=False)
    monkeypatch.delenv(QUEUE, raising=False)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    return tmp_path


def test_the_corpus_is_hostile_enough():
    """Check the corpus's size and that every URL carries a secret holding both marks."""
    assert len(CORPUS) >= 20
    for url in CORPUS:
        assert all(mark in url for mark in MARKS), url


@pytest.mark.parametrize("url", CORPUS)
def test_redact_masks_every_secret_and_keeps_host_and_user(url):
    """Check that redact shows nothing of the password, whatever the string, and keeps the
    rest readable where the URL is well formed."""
    shown = urls.redact(url)
    assert not leaked(shown), shown
    assert shown.count(urls.MASK) >= 1
    if "127.0.0.1" in url.rpartition("@")[2]:
        assert "127.0.0.1" in shown
    assert urls.redact(shown) == shown  # masking twice changes nothing


def test_redact_keeps_paths_and_password_free_urls():
    """Check the readable cases: paths, password-free URLs and PostgreSQL user names."""
    for url in ("sqlite:////data/runs@home/runs.sqlite", "redis://10.0.0.2:6379/0",
                "postgresql://ann@db.lab:5432/gradloss", "/data/runs.sqlite"):
        assert urls.redact(url) == url
    assert urls.redact("postgresql://ann:p%40ss@h/db?sslmode=require&password=x&application_name=y") \
        == "postgresql://ann:***@h/db?sslmode=require&password=***&application_name=y"


@pytest.mark.parametrize("url", CORPUS)
def test_check_url_refuses_what_a_driver_would_misread_naming_the_setting(url):
    """Check that each corpus URL is either refused in one message naming the setting and
    showing no secret, or is one every parser splits the same way (then the password is one
    piece, exactly what the driver is given)."""
    try:
        urls.check_url(STORE, url, SCHEMES)
    except ServiceUnavailable as error:
        assert str(error).startswith(f"The {STORE} setting must be ") and not leaked(str(error))
        return
    from urllib.parse import unquote, urlsplit
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    pieces = [unquote(parts.password or ""), unquote(parts.username or ""), parts.query]
    assert any(all(mark in piece for mark in MARKS) for piece in pieces), parts  # not split


@pytest.mark.parametrize("url, allowed", [
    ("sqlite://", "sqlite:///PATH, a database file"), ("sqlite:///", "sqlite:///PATH"),
    ("postgresql+asyncpg://u:pw@h:5432/x", "scheme is among ('postgresql', 'postgresql+psycopg')"),
    ("redis://:pw@h:6379/abc", "whose path is a database number"),
    ("redis://:LeakQA/pw@h:6379/0", "'@', '/', '?' and '#' percent-encoded as %40, %2F, %3F"),
    ("redis://:pw@h:port/0", "a port that is a number from 1 to 65535"),
])
def test_check_url_says_what_is_allowed(url, allowed):
    """Check the messages of the settings the fault pass found: in-memory SQLite, an async
    driver, a non-numeric Redis database, a '/' in a password, a port that is not a number."""
    schemes = ("sqlite", "redis") if "redis" in url else ("sqlite", "postgresql")
    with pytest.raises(ServiceUnavailable, match=f"The {QUEUE} setting must be") as caught:
        urls.check_url(QUEUE, url, schemes)
    assert allowed in str(caught.value) and "LeakQA" not in str(caught.value) and "pw" not in str(caught.value)


@pytest.mark.parametrize("url", CORPUS)
def test_scrub_masks_the_secret_and_its_pieces_in_a_drivers_words(url):
    """Check that a driver's message quoting the URL, the password or a piece of it (as a parser
    that split the password wrongly echoes it) keeps none of them."""
    between = url[url.index(MARKS[0]) + len(MARKS[0]):url.index(MARKS[1])]
    messages = [f"could not connect to {url}", f"password {written(url)} rejected"]
    if between != "-":  # a parser may split the password there and echo a piece
        messages += ["Port could not be cast to integer value as 'Zq9Leak'",
                     "failed to resolve host 'Xw7Leak@127.0.0.1'", 'invalid connection option "Xw7Leak"']
    for message in messages:
        assert not leaked(urls.scrub(message, url)), (message, urls.scrub(message, url))


@pytest.mark.parametrize("url", CORPUS)
def test_cli_runs_submit_and_worker_exit_2_and_never_print_a_secret(home, monkeypatch, capsys, url):
    """Check `runs`, `train --submit` and `worker` with the URL as the store's and as the queue's:
    each exits 2 with one message naming the setting, no traceback, nothing of the password, and
    nothing recorded in the (embedded) store."""
    submit = ["train", "--dataset", "digits", "--epochs", "1", "--submit"]
    for setting, argvs in ((STORE, (["runs"], submit, ["worker"])), (QUEUE, (submit, ["worker"]))):
        monkeypatch.setenv(setting, url)
        for argv in argvs:
            assert main(argv) == 2, argv
            captured = capsys.readouterr()
            assert setting in captured.err and "Traceback" not in captured.err, captured.err
            assert not leaked(captured.out + captured.err), captured.err
        monkeypatch.delenv(setting)
    assert Store.default().runs.list() == []


def test_an_uncaught_traceback_chained_from_a_driver_is_scrubbed(tmp_path):
    """Check the last line of defence in a real process: an exception nobody caught, chained
    from a driver's error that quotes the password, prints its traceback with the secret masked,
    as does a log record carrying it."""
    code = ("import logging; from gradloss.service.urls import scrub_output\n"
            "logging.basicConfig(); scrub_output()\n"
            "logging.getLogger('x').error('store %s', __import__('os').environ['GRADLOSS_STORE_URL'])\n"
            "try:\n    raise ConnectionError('auth failed for ' + __import__('os').environ['SAID'])\n"
            "except ConnectionError as exc:\n    raise RuntimeError('cannot use the store') from exc\n")
    for url in CORPUS:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), STORE: url,
                                   "SAID": written(url)},
                              timeout=60)
        assert "RuntimeError: cannot use the store" in done.stderr and "auth failed for" in done.stderr
        assert not leaked(done.stderr), done.stderr


def test_log_lines_with_exceptions_are_scrubbed(monkeypatch):
    """Check the ScrubbingFormatter on a record quoting the URL with a chained driver error."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(urls.ScrubbingFormatter("%(message)s"))
    log = logging.getLogger("gradloss.test_urls")
    log.addHandler(handler)
    try:
        for url in CORPUS:
            monkeypatch.setenv(QUEUE, url)
            try:
                raise ValueError(f"Port could not be cast to integer value as {written(url)!r} in {url}")
            except ValueError:
                log.exception("queue %s", url)
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().count("queue ") == len(CORPUS) and not leaked(stream.getvalue())


def test_store_rows_never_keep_a_secret(home, monkeypatch):
    """Check the store's boundary: a run's error (say, a queue's message quoting its URL), an
    evaluation's error and a worker's settings are written with every secret masked."""
    from gradloss.core.evaluation import EvaluationConfig
    store = Store.default()
    for i, url in enumerate(CORPUS):
        monkeypatch.setenv(QUEUE, url)
        run_id = store.runs.create(RunPlan(TINY, evaluation=EvaluationConfig(perturbations=("contrast",))))
        store.runs.finish(run_id, "failed", error=f"could not be queued: {url} said {written(url)}")
        store.evaluations.set_status(run_id, "failed", error=f"redis: {url}")
        store.workers.beat(WorkerRecord(f"h:{i}", "h", i, "CPU", None, None, time.time(),
                                        time.time(), WorkerSettings(store=url, queue=url)))
    with store.connect() as conn:
        rows = [str(tuple(row)) for table in ("runs", "evaluation_plans", "workers")
                for row in conn.exec_driver_sql(f"SELECT * FROM {table}")]
    assert len(rows) == 3 * len(CORPUS)
    assert not leaked("\n".join(rows))


def test_a_run_that_could_not_be_queued_keeps_no_secret(home, monkeypatch):
    """Check the 'could not be queued' row when the queue fails after the run is written, with a
    driver's message quoting the password."""
    url = CORPUS[0]
    monkeypatch.setenv(QUEUE, url)
    monkeypatch.setattr(client, "check_queue", lambda: None)

    def enqueue(run_id, task_id):
        raise ConnectionError(f"Error connecting to {url}: {written(url)} refused")

    monkeypatch.setattr(client, "enqueue", enqueue)
    with pytest.raises(ConnectionError):
        client.submit(TINY)
    [run] = Store.default().runs.list()
    assert run.status == "failed" and run.error.startswith("could not be queued: Error connecting")
    assert not leaked(run.error)


@pytest.fixture
def hostile_servers(postgres_server, redis_server):
    """A PostgreSQL role and a Redis user whose passwords hold every character a URL parser
    splits at; yields their URLs, percent-encoded as check_url asks."""
    import psycopg
    import redis
    from psycopg import sql
    from urllib.parse import quote
    password = "Zq9Leak/p@s#s?:%Xw7Leak"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS leakdb")
        conn.execute("DROP ROLE IF EXISTS leak")
        conn.execute(sql.SQL("CREATE ROLE leak LOGIN PASSWORD {}").format(sql.Literal(password)))
        conn.execute("CREATE DATABASE leakdb OWNER leak")
    redis_server.flush()
    redis.Redis.from_url(redis_server.url).execute_command(
        "ACL", "SETUSER", "leak", "on", f">{password}", "~*", "&*", "+@all")
    encoded = quote(password, safe="")
    yield (f"postgresql://leak:{encoded}@127.0.0.1:{postgres_server.port}/leakdb",
           f"redis://leak:{encoded}@127.0.0.1:{redis_server.port}/0")
    redis.Redis.from_url(redis_server.url).execute_command("ACL", "DELUSER", "leak")


def test_a_worker_with_hostile_passwords_logs_and_publishes_them_masked(tmp_path, hostile_servers):
    """Check a real worker on PostgreSQL and Redis whose passwords hold '/', '@', '#', '?', ':'
    and '%' (percent-encoded in the URLs): it starts, its log's "store ..., queue ..." line and
    its row in the workers table show both URLs with the password masked."""
    store_url, queue_url = hostile_servers
    worker = start_consumer(tmp_path, **{STORE: store_url, QUEUE: queue_url})
    try:
        store = Store(store_url)
        [record] = wait_for(store.workers.list, 60, "the worker's heartbeat",
                            explain=lambda: "".join(p.read_text() for p in tmp_path.glob("consumer-*.log")))
        assert record.settings.store == urls.redact(store_url) == \
            store_url.replace(store_url.split(":")[2].split("@")[0], "***")
        assert record.settings.queue.startswith("redis://leak:***@127.0.0.1:")
        worker.terminate()
        assert worker.wait(timeout=30) == 0
    finally:
        kill_all([worker])
    log = "".join(p.read_text() for p in tmp_path.glob("consumer-*.log"))
    assert "store postgresql://leak:***@127.0.0.1" in log and "queue redis://leak:***@" in log
    with store.connect() as conn:
        rows = str([tuple(r) for r in conn.exec_driver_sql("SELECT * FROM workers")])
    assert not leaked(log + rows + repr(store)), log
