"""The store's and the queue's URLs: checked strictly where they enter, shown with every secret
masked, whatever a user typed.

Two rules, on purpose apart:

- `check_url` refuses what a driver would misread. A password holding an unencoded '/', '?', '#'
  or '@' is split at the wrong place by every URL parser (SQLAlchemy, urllib, redis-py), which
  then echo the pieces back in their errors ("Port could not be cast to integer value as
  'S3cr3t'", "failed to resolve host 'ss@127.0.0.1'"); such a URL never reaches a driver.
- `redact` and `scrub` hold for ANY string, parseable or not (they are what error messages are
  made with). Their rule is tolerant and errs towards masking: the user information is
  everything between '://' and the LAST '@' (a PostgreSQL user name, before its first ':',
  stays readable when it is a plain name), and the value of any query parameter whose name says
  password, secret, token, key or auth is masked up to the next '&name=' or the end. `scrub`
  masks those secrets wherever they appear in a message, as written, percent-decoded or
  encoded, and their pieces.

`ScrubbingFormatter` applies `scrub` with the URLs of this process's environment to every log
line (tracebacks included); the worker, the training child and the CLI log through it.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback
from urllib.parse import quote, unquote, urlsplit

from gradloss.core.errors import ServiceUnavailable

STORE_SETTING = "GRADLOSS_STORE_URL"
QUEUE_SETTING = "GRADLOSS_QUEUE_URL"
MASK = "***"
DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg"), "redis": ("",)}
EXAMPLES = {"sqlite": "sqlite:///PATH/runs.sqlite",
            "postgresql": "postgresql://USER:PASSWORD@HOST:5432/DATABASE",
            "redis": "redis://:PASSWORD@HOST:6379/0"}
_UNSAFE_IN_USERINFO = "/?#@"  # a parser ends the user information at any of these
_SECRET_PARAMETER = re.compile(  # ?password=..., &sslpassword=..., ;token=... up to the next &name=
    r"[?&;#][^=&;#?]*(?:pass|pwd|secret|token|key|auth)[^=&;#?]*=(.*?)(?=[&;][A-Za-z_][\w.\-]*=|\Z)",
    re.IGNORECASE | re.DOTALL)
_MIN_PIECE = 3  # pieces of a secret at least this long are masked on their own too
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][\w+.\-]*://[^\s'\"<>]*")  # a URL a message quotes
_SHOWN = set(EXAMPLES.values())  # the forms our messages give as examples, PASSWORD and all


def scheme(url: str) -> str:
    """The URL's scheme without a driver suffix: 'postgresql+psycopg' -> 'postgresql'."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds secrets by the tolerant rule: (start, end) of each, unmerged."""
    spans = [m.span(1) for m in _SECRET_PARAMETER.finditer(text) if m.end(1) > m.start(1)]
    head, sep, after = text.partition("://")
    start = len(head) + len(sep) if sep else 0  # no scheme: the user part would start the text
    if sep and scheme(text) == "sqlite" and after.startswith("/"):  # sqlite:///PATH: no user part
        return spans
    if "@" not in text[start:]:
        return spans
    userinfo = text[start:text.rindex("@")]
    user, colon, _ = userinfo.partition(":")
    plain_user = not any(c in user for c in _UNSAFE_IN_USERINFO)
    if plain_user and colon:
        spans.append((start + len(user) + 1, start + len(userinfo)))  # the password
    elif not (plain_user and scheme(text) in ("postgresql", "postgres", "sqlite")):
        # no telling where it ends, or a redis-style redis://PASSWORD@HOST: all of it
        spans.append((start, start + len(userinfo)))
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact(url: str | os.PathLike) -> str:
    """`url` with every secret replaced by ***: for any string, URL or not; paths and
    password-free URLs unchanged."""
    text = str(url)
    shown, last = [], 0
    for start, end in _merged(_secret_spans(text)):
        shown += [text[last:start], MASK]
        last = end
    return "".join(shown) + text[last:]


def secrets(url: str | os.PathLike | None) -> list[str]:
    """The secrets in `url` (tolerant rule), each as written, percent-decoded and encoded, and
    their pieces between URL delimiters; longest first, so a piece never shadows its whole."""
    text = "" if url is None else str(url)
    found = set()
    for start, end in _secret_spans(text):
        secret = text[start:end]
        found.update((secret, unquote(secret), quote(secret, safe=""),
                      quote(unquote(secret), safe="")))
        for form in (secret, unquote(secret)):  # what a parser that split it wrongly may echo
            found.update(p for p in re.split(r"[/?#@:&;=%\s\x00]", form) if len(p) >= _MIN_PIECE)
    return sorted(found - {"", MASK}, key=len, reverse=True)


def scrub(text, *urls: str | os.PathLike | None) -> str:
    """`text` (a driver's message, a traceback) with every secret of `urls` masked wherever it
    appears, and every URL-like part of it redacted."""
    text = str(text)
    for url in urls:
        if url:
            text = text.replace(str(url), redact(url))
            for secret in secrets(url):
                text = text.replace(secret, MASK)
    return _URL_IN_TEXT.sub(lambda m: m.group(0) if m.group(0) in _SHOWN else redact(m.group(0)),
                            text)


def scrub_environment(text) -> str:
    """`text` with the secrets of this process's GRADLOSS_STORE_URL and GRADLOSS_QUEUE_URL masked
    (whatever they hold, checked or not)."""
    return scrub(text, os.environ.get(STORE_SETTING), os.environ.get(QUEUE_SETTING))


class ScrubbingFormatter(logging.Formatter):
    """A log formatter that masks the configured URLs' secrets in every line and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub_environment(super().format(record))


def scrub_output() -> None:
    """Mask the configured URLs' secrets in all this process writes about itself: every handler
    of the root logger gets a ScrubbingFormatter (keeping its format), and an exception nobody
    caught, in any thread, prints its traceback scrubbed. Call it after logging.basicConfig."""
    for handler in logging.getLogger().handlers:
        current = handler.formatter or logging.Formatter()
        if not isinstance(current, ScrubbingFormatter):
            handler.setFormatter(ScrubbingFormatter(current._fmt, current.datefmt))

    def print_scrubbed(kind, value, tb, where: str = "") -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(where + scrub_environment(text))

    sys.excepthook = print_scrubbed
    threading.excepthook = lambda args: None if args.exc_type is SystemExit else print_scrubbed(
        args.exc_type, args.exc_value, args.exc_traceback,
        f"Exception in thread {args.thread.name if args.thread else '?'}:\n")


def _refuse(setting: str, url: str, allowed: str) -> None:
    raise ServiceUnavailable(
        f"The {setting} setting must be {allowed}. Got {redact(url)!r} instead.")


def check_url(setting: str, url: str, schemes: tuple[str, ...]) -> str:
    """Return `url` if it is a URL of one of `schemes` that every driver reads the same way;
    else raise ServiceUnavailable naming `setting`, what is allowed and the URL, masked.

    sqlite: sqlite:///PATH (a file: an in-memory database cannot be shared with the worker).
    postgresql, redis: the user and password percent-encoded, a numeric port; redis: a numeric
    database; postgresql: the psycopg driver (postgresql:// or postgresql+psycopg://)."""
    name = scheme(url)
    examples = " or ".join(EXAMPLES[s] for s in schemes)
    if name not in schemes:
        _refuse(setting, url, f"a URL with a scheme among {schemes} (for example {examples})")
    driver = url.split("://", 1)[0].partition("+")[2].lower()
    if driver not in DRIVERS[name]:
        among = tuple(f"{name}+{d}" if d else name for d in DRIVERS[name])
        _refuse(setting, url, f"a URL whose scheme is among {among}: gradloss uses these drivers")
    if not url.isprintable():
        _refuse(setting, url, "a URL of printable characters only (no newline, tab or NUL)")
    rest = url.split("://", 1)[1]
    if name == "sqlite":
        if not rest.startswith("/") or not rest[1:] or "?" in rest:
            _refuse(setting, url, "sqlite:///PATH, a database file whose path holds no '?' "
                                  "(sqlite:// alone is a database in memory, which the worker "
                                  "cannot share)")
        return url
    userinfo = rest.rpartition("@")[0]
    if any(c in userinfo for c in _UNSAFE_IN_USERINFO):
        _refuse(setting, url, f"a URL such as {EXAMPLES[name]} whose user and password have "
                              "'@', '/', '?' and '#' percent-encoded as %40, %2F, %3F and %23 "
                              "(urllib.parse.quote(password, safe=''))")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        _refuse(setting, url, f"a URL such as {EXAMPLES[name]} with a host and a port that is "
                              "a number from 1 to 65535")
    if name == "redis" and not re.fullmatch(r"/?(\d+)?", parts.path):
        _refuse(setting, url, f"a URL such as {EXAMPLES[name]} whose path is a database number")
    return url
