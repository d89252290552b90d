"""Shared plumbing of the benchmarks: one engine per subprocess, results appended as JSON lines.

The Keras backend is fixed when keras is first imported, so a benchmark that compares engines
runs itself once per engine with `--engine NAME` and KERAS_BACKEND=NAME, and the child prints
one JSON object as its last line of output. Nothing here imports keras.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.jsonl"  # gitignored; one JSON object per benchmark run
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `python bench/x.py` from anywhere finds gradloss

from gradloss.engines.backend import available_engines, child_environment  # noqa: E402  (no keras)
from gradloss.engines.backend import use_backend  # noqa: E402,F401  (the children's set-up)


def installed_engines() -> list[str]:
    """Engines whose package can be imported here, TensorFlow first."""
    return list(available_engines())


def parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser: `--engines` to run, and `--engine`, the child mode run_child uses."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--engines", default=",".join(installed_engines()),
                   help="comma-separated engines (default: every installed one)")
    p.add_argument("--engine", help=argparse.SUPPRESS)  # child mode: this engine only
    return p


def run_child(script: str, engine: str, args: list[str], timeout: float | None = None) -> dict:
    """Run `python script --engine ENGINE *args` under that backend; return its last-line JSON.

    The child's stderr (progress, logs) passes through to ours.
    """
    env = child_environment(engine)
    done = subprocess.run([sys.executable, script, "--engine", engine, *args], env=env,
                          cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout)
    if done.returncode != 0:  # its stderr went to ours: the traceback is on screen
        raise RuntimeError(f"{Path(script).name} --engine {engine} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_engines(script: str, engines: str, args: list[str], doing: str) -> list[dict]:
    """Run `script` once per engine of the comma-separated `engines`; return their outcomes."""
    outcomes = []
    for engine in engines.split(","):
        print(f"{doing} with {engine} ...", flush=True)
        outcomes.append(run_child(script, engine, args))
    return outcomes


def conclude(bench: str, args, outcomes: list[dict], report) -> None:
    """Print the table (`report(outcomes)` returns its rows) and append the record."""
    print()
    append_result(bench, args, outcomes, report(outcomes))


def emit_child_result(result: dict) -> None:
    """The child's answer to its parent: one JSON line, last on stdout."""
    print(json.dumps(result), flush=True)


def host_info() -> dict:
    """What the figures depend on: machine, cores, load, library versions, commit."""
    versions = {}
    for name in ("tensorflow", "keras", "jax", "jaxlib", "numpy"):
        if importlib.util.find_spec(name):
            from importlib.metadata import PackageNotFoundError, version
            try:
                versions[name] = version(name)
            except PackageNotFoundError:
                pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip() or None
    return {"machine": platform.machine(), "processor": platform.processor() or None,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "versions": versions, "commit": commit}


def append_result(bench: str, args, outcomes: list[dict], rows: list[list]) -> dict:
    """Append one record (settings, machine, every engine's outcome, the table) to
    bench/results.jsonl, say so, and return it. `args` is the parent's argparse namespace."""
    settings = {k: v for k, v in vars(args).items() if k != "engine"}  # --engine: child mode only
    record = {"bench": bench, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "host": host_info(), "args": settings,
              "results": {"engines": outcomes, "table": rows}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"appended to {RESULTS.relative_to(REPO)}")
    return record


def print_table(header: list[str], rows: list[list]) -> None:
    """A plain, aligned text table; floats with 2 decimals, None as '-'."""
    cells = [[("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row]
             for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def checkout(rev: str) -> Path:
    """The files of commit `rev` (e.g. the code before a change), extracted once under
    bench/.trees/ (gitignored): a benchmark runs that code beside the working tree's in one run.
    A name that may move (a branch, HEAD) is resolved to its commit first."""
    sha = subprocess.run(["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.strip()
    dest = REPO / "bench" / ".trees" / sha
    if not (dest / "gradloss").is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_process(cmd: list[str], cwd: Path, env: dict | None = None,
                timeout: float | None = None) -> dict:
    """Run a whole process; its wall seconds, peak resident memory (MiB, from the kernel's
    account of that child alone: os.wait4), exit code and stdout (its stderr passes through)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    out = proc.stdout.read()  # until the child closes it; then reap it ourselves for its usage
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timer:
        timer.cancel()
    return {"wall_s": time.perf_counter() - t0, "peak_mib": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime, "returncode": proc.returncode,
            "stdout": out}


def min_median(values: list[float]) -> str:
    """'min / median' of figures from interleaved rounds."""
    return f"{min(values):.1f} / {statistics.median(values):.1f}"


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class RssSampler:
    """Sample RSS every `interval_s` in a thread; `peak` is the largest value seen."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self.peak = interval_s, rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class Timings:
    """A pipeline sink that times each plan's steps: training (from its outcome), the noise
    sweep, the evaluation. Lazily a `gradloss.pipeline.sinks.Sink` (that module needs no keras)."""

    def __new__(cls):
        from gradloss.pipeline.sinks import Sink

        class _Timings(Sink):
            def __init__(self):
                self._t0, self.sweep_s, self.evaluation_s = {}, {}, {}

            def model(self, i, path):
                self._t0[i] = time.perf_counter()  # trained: the sweep starts now

            def sweep(self, i, table, config):
                if i in self._t0:  # measured models have no training before their sweep
                    self.sweep_s[i] = time.perf_counter() - self._t0[i]

            def evaluation_started(self, i):
                self._t0[i] = time.perf_counter()

            def evaluation_finished(self, i, status, error):
                self.evaluation_s[i] = time.perf_counter() - self._t0[i]

        return _Timings()


def run_plans(plans: list, run_dirs: list, **kwargs) -> tuple[list, object]:
    """gradloss.pipeline.run on `plans` with a Timings sink; returns (outcomes, timings)."""
    from gradloss.pipeline.run import run

    timings = Timings()
    return run(plans, timings, run_dirs, **kwargs), timings
