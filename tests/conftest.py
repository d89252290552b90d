"""Shared test set-up: Keras on TensorFlow, quiet logs, where the Fashion-MNIST files are."""
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the CLI and the worker train (engines.backend)

import pytest  # noqa: E402

SHARED_FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def fashion_folder(environ=os.environ) -> Path:
    """Where tests read the real Fashion-MNIST: $GRADLOSS_DATA_DIR if set, else the shared copy
    beside the repository (../shared/data/fashion-mnist)."""
    configured = environ.get("GRADLOSS_DATA_DIR")
    return Path(configured).expanduser() if configured else SHARED_FASHION


FASHION_DIR = fashion_folder()  # read once, before any test changes the environment


@pytest.fixture(autouse=True)
def own_home(tmp_path_factory, monkeypatch):
    """Every test's gradloss home is a folder of its own unless the test sets one: never the
    user's data folder (the default home) nor one another test wrote."""
    monkeypatch.setenv("GRADLOSS_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    # Streamlit's AppTest runs a page as __main__ and leaves it there: restored after every test,
    # or a later multiprocessing "spawn" child (test_scaleout, test_store) re-runs that page.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture
def fashion_dir() -> Path:
    """The official Fashion-MNIST files beside the repository; skip where they are absent."""
    if not (SHARED_FASHION / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST files not found in {SHARED_FASHION}")
    return SHARED_FASHION


def _unavailable(reason: str) -> None:
    """Skip a test needing a server that is not installed; fail instead in CI, which installs them."""
    if os.environ.get("GRADLOSS_TEST_REQUIRE_SERVICES"):
        pytest.fail(f"{reason} (GRADLOSS_TEST_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server():
    """A password-protected redis-server on a loopback port for the whole session (services.py)."""
    from services import Redis
    if reason := Redis.missing():
        _unavailable(reason)
    server = Redis()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL 15 cluster on a loopback port for the whole session (services.py)."""
    from services import Postgres
    if reason := Postgres.missing():
        _unavailable(reason)
    server = Postgres()
    server.init()
    yield server
    server.close()


@pytest.fixture(params=["embedded", "network"])
def backend(request, tmp_path, monkeypatch):
    """The store and queue URLs of one backend, set in the environment (workers inherit them):
    embedded: SQLite files in a folder of their own (not any worker's GRADLOSS_HOME);
    network: a fresh PostgreSQL database and an emptied Redis."""
    if request.param == "embedded":
        shared = tmp_path / "shared"
        shared.mkdir()
        urls = {"GRADLOSS_STORE_URL": f"sqlite:///{shared / 'runs.sqlite'}",
                "GRADLOSS_QUEUE_URL": f"sqlite:///{shared / 'queue.sqlite'}"}
    else:
        redis_server = request.getfixturevalue("redis_server")
        redis_server.flush()
        urls = {"GRADLOSS_STORE_URL": request.getfixturevalue("postgres_server").database(),
                "GRADLOSS_QUEUE_URL": redis_server.url}
    for name, url in urls.items():
        monkeypatch.setenv(name, url)
    return urls
