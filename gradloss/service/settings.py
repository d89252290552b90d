"""Where the service keeps its state: the home folder, the store and queue URLs, and whether their
SQLite files can be written.

GRADLOSS_STORE_URL: `sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST:PORT/DB`
(default: runs.sqlite in home()). GRADLOSS_QUEUE_URL: `sqlite:///PATH` or
`redis://[:PASSWORD@]HOST:PORT/DB` (default: queue.sqlite in home()). With both unset everything
lives in one folder on one machine; with network URLs the dashboard, the CLI and workers on
other machines share the same runs. Both are checked where they are read (`urls.check_url`:
one message naming the setting and what is allowed); they may carry passwords, so they are
shown only through `urls.redact` and `urls.scrub`. GRADLOSS_MLFLOW_URI (optional): the MLflow
tracking URI that `gradloss export mlflow` and the dashboard's export write to, and that workers
log every run to while it trains (unset: no live logging; exports go to mlflow.db in home()).
"""
from __future__ import annotations

import errno
import importlib.util
import os
import re
import stat
from pathlib import Path

from gradloss.core.errors import SettingsError
from gradloss.service.urls import QUEUE_SETTING, STORE_SETTING, check_url, redact

MLFLOW_SETTING = "GRADLOSS_MLFLOW_URI"
STORE_SCHEMES = ("sqlite", "postgresql")
QUEUE_SCHEMES = ("sqlite", "redis")
# MLflow's tracking stores: its server, a local folder, a database; databricks for its host.
TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")
MLFLOW_EXTRA = "pip install 'gradloss[mlflow]'"


def default_home() -> Path:
    """Where gradloss keeps its runs when GRADLOSS_HOME is not set: this user's data folder
    (platformdirs: ~/.local/share/gradloss on Linux, ~/Library/Application Support/gradloss on
    macOS), the same whichever folder a command starts in, so the dashboard, its worker and
    the CLI started anywhere share one store."""
    from platformdirs import user_data_path

    return user_data_path("gradloss", appauthor=False)


def home() -> Path:
    """The folder holding the embedded store and queue, logs and run folders: $GRADLOSS_HOME,
    else `default_home()`.

    Created readable by its owner only (0700): anyone who can write the queue or the store
    decides what the worker trains. A folder that cannot be created or written raises
    SettingsError naming it, the reason and the fix."""
    configured = os.environ.get("GRADLOSS_HOME")
    path = (Path(configured) if configured else default_home()).resolve()  # absolute: children agree
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(path, exc) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise _unusable(path, PermissionError(13, "Permission denied (not writable)", str(path)))
    return path


def _unusable(path: Path, exc: OSError) -> SettingsError:
    where = "" if exc.filename in (None, str(path)) else f" ({exc.filename})"
    return SettingsError(
        f"gradloss cannot use its folder {path} (GRADLOSS_HOME): {exc.strerror or exc}{where}. "
        "Set GRADLOSS_HOME to a folder you can write, or fix that folder's permissions.")


def create_private(path: Path) -> None:
    """Create the file `path` readable and writable by its owner only (0600), if it is missing.

    SQLite gives a database's -wal and -shm files the mode of the database file. An existing
    file is never opened here: closing a descriptor of a database drops every POSIX lock this
    process holds on it, including those of SQLite connections in other threads (a worker's
    heartbeat), which can lose a write or end in "disk I/O error"."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    except FileExistsError:
        if Path(path).is_dir():  # as opening it would have said
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path)) from None


SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's, beside a database, given its mode when made


def writable_database(path: Path, what: str, setting: str) -> None:
    """Check, before anything is written, that SQLite can write the database file `path` (the
    run store or the queue) and its side files; raise SettingsError naming the file, why and
    the fix.

    A database its owner made read-only (chmod 400) is refused as such, whoever runs gradloss
    (root could write it, but was told not to). SQLite gives -wal and -shm the database's mode
    when it makes them, so once the database is writable again, side files left read-only
    (which made every write fail with "attempt to write a readonly database") are made 0600."""
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise _unwritable(what, folder, "its folder is not writable (SQLite makes its -wal and "
                                        "-shm files there)", setting)
    if path.exists() and not _writable(path):
        raise _unwritable(what, path, f"it is read-only (mode {_mode(path)})", setting,
                          f"chmod 600 {path}")
    for side in (path.with_name(path.name + suffix) for suffix in SIDE_FILES):
        if side.exists() and not _writable(side):
            try:
                os.chmod(side, 0o600)
            except OSError as exc:
                raise _unwritable(what, side, f"SQLite's side file is read-only (mode "
                                              f"{_mode(side)}) and cannot be made writable: "
                                              f"{exc.strerror or exc}", setting,
                                  f"chmod 600 {side}") from exc


def _writable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IWUSR) and os.access(path, os.W_OK)


def _mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def _unwritable(what: str, path: Path, why: str, setting: str, fix: str | None = None
                ) -> SettingsError:
    return SettingsError(
        f"gradloss cannot write its {what} {path}: {why}. "
        + (f"Make it writable ({fix}), or point " if fix else "Point ")
        + f"{setting} (or GRADLOSS_HOME) at a database you can write.")


def store_url() -> str:
    """GRADLOSS_STORE_URL, or the SQLite file runs.sqlite in home(). `postgres://`, the spelling
    many hosts hand out (SQLAlchemy refuses it), is read as `postgresql://`."""
    url = re.sub(r"^postgres(?=[+:])", "postgresql", os.environ.get(STORE_SETTING, "").strip(),
                 flags=re.IGNORECASE)
    return check_url(STORE_SETTING, url, STORE_SCHEMES) if url else f"sqlite:///{home() / 'runs.sqlite'}"


def queue_url() -> str:
    """GRADLOSS_QUEUE_URL, or the SQLite file queue.sqlite in home()."""
    url = os.environ.get(QUEUE_SETTING, "").strip()
    return check_url(QUEUE_SETTING, url, QUEUE_SCHEMES) if url else f"sqlite:///{home() / 'queue.sqlite'}"


def check_tracking_uri(uri: str, name: str = f"The {MLFLOW_SETTING} setting") -> str:
    """Return the MLflow tracking URI `uri` (a URL with a scheme among TRACKING_SCHEMES, or a
    folder); else raise SettingsError naming it (`name`: "The X setting", or a CLI option's
    "The 'x' parameter of ..."). Also refused where MLflow, an optional extra, is not
    installed."""
    uri = str(uri).strip()
    prefix = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", uri)  # none: a folder
    if not uri or (prefix and prefix[1].split("+", 1)[0].lower() not in TRACKING_SCHEMES):
        raise SettingsError(
            f"{name} must be an MLflow tracking URI with a scheme among "
            f"{TRACKING_SCHEMES} (for example http://HOST:5000 or sqlite:///mlflow.db), or a "
            f"folder. Got {redact(uri)!r} instead.")
    if importlib.util.find_spec("mlflow") is None:
        raise SettingsError(f"{name} needs MLflow, an optional extra of gradloss: "
                            f"{MLFLOW_EXTRA}.")
    return uri


def tracking_uri() -> str | None:
    """GRADLOSS_MLFLOW_URI, checked (`check_tracking_uri`), or None when unset: then workers
    log nothing live."""
    uri = os.environ.get(MLFLOW_SETTING, "").strip()
    return check_tracking_uri(uri) if uri else None


def default_tracking_uri() -> str:
    """Where exports go when no URI is given: GRADLOSS_MLFLOW_URI, else the SQLite file
    mlflow.db in home() (what `mlflow ui --backend-store-uri` opens)."""
    return tracking_uri() or f"sqlite:///{home() / 'mlflow.db'}"
