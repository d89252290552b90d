"""Where the service keeps its state: the home folder and the store and queue URLs, and how to show them.

GRADLOSS_STORE_URL: `sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST:PORT/DB`
(default: runs.sqlite in home()). GRADLOSS_QUEUE_URL: `sqlite:///PATH` or
`redis://[:PASSWORD@]HOST:PORT/DB` (default: queue.sqlite in home()). With both unset everything
lives in one folder on one machine; with network URLs the dashboard, the CLI and workers on
other machines share the same runs. URLs may carry passwords: show them only through `redact`.
"""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gradloss.core.errors import ServiceUnavailable, SettingsError

STORE_SETTING = "GRADLOSS_STORE_URL"
QUEUE_SETTING = "GRADLOSS_QUEUE_URL"
STORE_SCHEMES = ("sqlite", "postgresql")
QUEUE_SCHEMES = ("sqlite", "redis")
MASK = "***"


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


def redact(url: str | os.PathLike) -> str:
    """`url` with its password, if any, replaced by ***; paths and password-free URLs unchanged."""
    text = str(url)
    try:
        password = urlsplit(text).password
    except ValueError:  # a malformed netloc: mask everything between :// and the last @
        return re.sub(r"(://[^/@]*:)[^/]*@", rf"\g<1>{MASK}@", text)
    if not password:
        return text
    scheme, rest = text.split("://", 1)
    netloc, sep, tail = rest.partition("/")
    userinfo, _, hostport = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{hostport}{sep}{tail}"


def scrub(text: str, url: str | os.PathLike) -> str:
    """`text` (say, a driver's error message) with `url` and its password masked wherever they appear."""
    text = str(text).replace(str(url), redact(url))
    try:
        password = urlsplit(str(url)).password
    except ValueError:
        password = None
    for form in {password, unquote(password or "")} - {None, ""}:  # as written and as decoded
        text = text.replace(form, MASK)
    return text


def scheme(url: str) -> str:
    """The URL's scheme without a driver suffix: 'postgresql+psycopg' -> 'postgresql'."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""


def check_url(setting: str, url: str, schemes: tuple[str, ...]) -> str:
    """Return `url` if its scheme is one of `schemes`; else raise ServiceUnavailable naming `setting`."""
    if scheme(url) not in schemes:
        raise ServiceUnavailable(
            f"The {setting} setting must be a URL with a scheme among {schemes} (for example "
            f"{schemes[-1]}://HOST/...). Got {redact(url)!r} instead.")
    return url


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
