"""Real Redis and PostgreSQL servers for the tests, on loopback ports, in throwaway folders.

`Redis` and `Postgres` start the Debian binaries (redis-server; PostgreSQL's initdb and
pg_ctl), each with a random password, listening on 127.0.0.1 only, with every file in a temporary
folder; `stop()` and `start()` let a test take a server away mid-run. PostgreSQL refuses to run as
root, so as root its folder belongs to the `postgres` user and its commands run through runuser.
`missing()` says why a server cannot be started here (the fixtures skip with that reason).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
def _pg_bin() -> Path:
    """GRADLOSS_TEST_PG_BIN, else the newest Debian PostgreSQL's bin folder (15 on bookworm)."""
    if os.environ.get("GRADLOSS_TEST_PG_BIN"):
        return Path(os.environ["GRADLOSS_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Redis:
    """redis-server with a password and an append-only file, so a restart keeps the queue."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="gradloss-redis-"))
        self.port, self.password = free_port(), secrets.token_hex(8)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def missing() -> str | None:
        return None if os.access(REDIS_SERVER, os.X_OK) else f"{REDIS_SERVER} is not installed"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass",
             self.password, "--dir", str(self.folder), "--appendonly", "yes", "--save", ""],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis writes its append-only file and exits
            self.proc.wait(timeout=30)

    def flush(self) -> None:
        import redis
        redis.Redis.from_url(self.url).flushall()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Postgres:
    """A PostgreSQL cluster of its own, password-authenticated; `database()` makes a fresh database."""

    user = "gradloss"

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="gradloss-pg-"))
        self.port, self.password = free_port(), secrets.token_hex(8)
        self.data, self.sockets = self.folder / "data", self.folder / "sockets"
        self.as_root = os.geteuid() == 0

    @staticmethod
    def missing() -> str | None:
        if not (PG_BIN / "pg_ctl").exists():
            return f"PostgreSQL binaries not found in {PG_BIN}"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root without runuser to start PostgreSQL as another user"
        return None

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        subprocess.run(prefix + list(command), check=True, capture_output=True, cwd=self.folder)

    def init(self) -> None:
        self.sockets.mkdir()
        (self.folder / "password").write_text(self.password)
        if self.as_root:
            shutil.chown(self.folder, "postgres")
            for path in self.folder.iterdir():
                shutil.chown(path, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.user, "-A",
                  "scram-sha-256", f"--pwfile={self.folder / 'password'}", "--no-sync")
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "postgres.log"), "-w", "start")

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
