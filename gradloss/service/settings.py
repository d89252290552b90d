"""Where the service keeps its state: the home folder and the store and queue URLs, and how to show them.

GRADLOSS_STORE_URL: `sqlite:///PATH` or `postgresql://USER:PASSWORD@HOST:PORT/DB`
(default: runs.sqlite in home()). GRADLOSS_QUEUE_URL: `sqlite:///PATH` or
`redis://[:PASSWORD@]HOST:PORT/DB` (default: queue.sqlite in home()). With both unset everything
lives in one folder on one machine; with network URLs the dashboard, the CLI and workers on
other machines share the same runs. URLs may carry passwords: show them only through `redact`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gradloss.exceptions import ServiceUnavailable

STORE_SETTING = "GRADLOSS_STORE_URL"
QUEUE_SETTING = "GRADLOSS_QUEUE_URL"
STORE_SCHEMES = ("sqlite", "postgresql")
QUEUE_SCHEMES = ("sqlite", "redis")
MASK = "***"


def home() -> Path:
    """The folder holding the embedded store and queue, logs and run folders: $GRADLOSS_HOME or ./runs."""
    path = Path(os.environ.get("GRADLOSS_HOME") or "runs").resolve()  # absolute: child processes agree
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    """GRADLOSS_STORE_URL, or the SQLite file runs.sqlite in home()."""
    url = os.environ.get(STORE_SETTING, "").strip()
    return check_url(STORE_SETTING, url, STORE_SCHEMES) if url else f"sqlite:///{home() / 'runs.sqlite'}"


def queue_url() -> str:
    """GRADLOSS_QUEUE_URL, or the SQLite file queue.sqlite in home()."""
    url = os.environ.get(QUEUE_SETTING, "").strip()
    return check_url(QUEUE_SETTING, url, QUEUE_SCHEMES) if url else f"sqlite:///{home() / 'queue.sqlite'}"
