"""Hostile store and queue URLs for the redaction tests: every secret holds both MARKS, so a test
greps what was shown for them (a piece of a split password is caught as well as the whole)."""
from __future__ import annotations

MARKS = ("Zq9Leak", "Xw7Leak")
SECRET = "Zq9Leak-Xw7Leak"


def hostile_urls(port: int) -> list[str]:
    """URLs a user may put in GRADLOSS_STORE_URL or GRADLOSS_QUEUE_URL, each with a password:
    unencoded '/', '@', '#', '?', ':', '%', space, newline or tab in it (an environment variable
    cannot hold NUL), query-string passwords, a missing or broken scheme, a bad port or
    database, a driver gradloss does not use, and well-formed ones that reach a server which is
    not there. Nothing listens on `port`."""
    at = f"127.0.0.1:{port}"
    return [
        f"postgresql://gradloss:Zq9Leak/Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak@Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak#Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak?Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak:Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak%Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak Xw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak\nXw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak\tXw7Leak@{at}/gradloss",
        f"postgresql://gradloss:Zq9Leak%2FXw7Leak%40@{at}/gradloss",
        f"postgresql://gradloss@{at}/gradloss?password=Zq9Leak-Xw7Leak",
        f"postgresql://gradloss@{at}/gradloss?sslmode=disable&password=Zq9Leak&Xw7Leak",
        f"postgresql://gradloss@{at}/gradloss?password=Zq9Leak@Xw7Leak",
        f"postgres://gradloss:Zq9Leak/Xw7Leak@{at}/gradloss",
        f"POSTGRESQL://gradloss:Zq9Leak/Xw7Leak@{at}/gradloss",
        f"postgresql+asyncpg://gradloss:Zq9Leak/Xw7Leak@{at}/gradloss",
        "postgresql://gradloss:Zq9Leak-Xw7Leak@127.0.0.1:port/gradloss",
        f"postgresql://gradloss:Zq9Leak/Xw7Leak@[::1:{port}/gradloss",
        f"gradloss:Zq9Leak-Xw7Leak@{at}/gradloss",
        f"postgresql:/gradloss:Zq9Leak/Xw7Leak@{at}/gradloss",
        f"redis://:Zq9Leak/Xw7Leak@{at}/0",
        f"redis://:Zq9Leak@Xw7Leak@{at}/0",
        f"redis://:Zq9Leak#Xw7Leak@{at}/0",
        f"redis://:Zq9Leak-Xw7Leak@{at}/abc",
        f"redis://Zq9Leak-Xw7Leak@{at}/0",
        f"redis://{at}/0?password=Zq9Leak-Xw7Leak",
        f"redis://:Zq9Leak%2FXw7Leak@{at}/0",
        f"sqlite://gradloss:Zq9Leak-Xw7Leak@{at}/runs.sqlite",
        f"mysql://gradloss:Zq9Leak/Xw7Leak@{at}/gradloss",
    ]


def written(url: str) -> str:
    """The secret of `url` as written in it: what a driver may quote back."""
    return url[url.index(MARKS[0]):url.index(MARKS[1]) + len(MARKS[1])]


def leaked(text: str) -> list[str]:
    """The MARKS found in `text` (none: nothing of a secret was shown)."""
    return [mark for mark in MARKS if mark in text]
