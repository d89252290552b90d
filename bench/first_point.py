"""Click to first point: seconds from submitting a digits run to its first loss in the store,
through the real worker, with and without the training process started ahead.

    python bench/first_point.py [--rounds 3] [--objective gradient]

For each mode (prestart off: a training process started for the run, as before; on: the
worker's spare, engine imported and warmed up) a real worker (`python -m gradloss worker`) is
started on a fresh GRADLOSS_HOME and left idle until it is ready (its first spare reports ready,
or 60 s with prestart off); then each round submits a tiny digits run (200 images, batch 50, 1
epoch) with `client.submit`, as the dashboard's Queue button does, and times until the store
holds the run's first metric row (polled every 20 ms), then waits for the run to end and for the
worker to be idle again (its next spare ready). Modes alternate round by round, each its own
worker, so the machine's load weighs on both alike. Reports per mode the median and the range
of the rounds, and the ratio. Goal (issue #21): at most 5 s on an idle worker.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test helpers
from _common import REPO, append_result, print_table  # noqa: E402

from _worker_helpers import TINY, wait_for  # noqa: E402

READY = "ready (started"  # the worker log's line for a spare training process ready


class Worker:
    """A real worker on its own home, prestart on or off."""

    def __init__(self, home: Path, prestart: bool):
        self.home, self.prestart = home, prestart
        home.mkdir(parents=True)
        self.log = home / "worker.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradloss", "worker"], cwd=REPO, stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, GRADLOSS_HOME=str(home), PYTHONPATH=str(REPO),
                     CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2",
                     GRADLOSS_PRESTART="on" if prestart else "off"))

    def readies(self) -> int:
        return self.log.read_text(errors="replace").count(READY)

    def wait_idle(self, readies: int) -> None:
        """Until the worker is idle: its spare number `readies` ready (prestart), or a pause."""
        if self.prestart:
            wait_for(lambda: self.readies() >= readies, 300, "the spare training process")
        else:
            time.sleep(5)  # nothing runs ahead; let the last run's process exit

    def stop(self) -> None:
        os.killpg(self.proc.pid, 9)
        self.proc.wait()


def one_round(worker: Worker, config) -> float:
    """Submit one run to the idle worker; seconds until its first metric row is stored."""
    from gradloss.service import client
    from gradloss.service.store import Store

    os.environ["GRADLOSS_HOME"] = str(worker.home)
    store = Store.default()
    started = time.perf_counter()
    run_id = client.submit(config, store)
    wait_for(lambda: len(store.results.metrics(run_id)) > 0, 300, "the first metric",
             interval=0.02)
    seconds = time.perf_counter() - started
    wait_for(lambda: store.runs.get(run_id).finished, 600, "the run to end", interval=0.5)
    if store.runs.get(run_id).status != "done":
        raise RuntimeError(f"run {run_id} {store.runs.get(run_id).status}: "
                           f"{store.runs.get(run_id).error}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--objective", default="gradient")
    args = p.parse_args()
    config = replace(TINY, objective=args.objective)
    figures: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        workers = {mode: Worker(Path(folder) / ("on" if mode else "off"), mode)
                   for mode in (False, True)}
        try:
            for mode, worker in workers.items():
                worker.wait_idle(1) if mode else time.sleep(20)  # started and idle
            for k in range(args.rounds):
                for mode, worker in workers.items():
                    seconds = one_round(worker, config)
                    figures[mode].append(seconds)
                    print(f"round {k + 1}, prestart {'on' if mode else 'off'}: first point "
                          f"after {seconds:.2f} s (load {os.getloadavg()[0]:.1f})", flush=True)
                    worker.wait_idle(k + 2)
        finally:
            for worker in workers.values():
                worker.stop()
    rows = [[f"prestart {'on' if mode else 'off'}", statistics.median(v), min(v), max(v)]
            for mode, v in figures.items()]
    print()
    print_table(["mode", "median s", "min s", "max s"], rows)
    ratio = statistics.median(figures[False]) / statistics.median(figures[True])
    print(f"\nfirst point {ratio:.1f}x sooner with the training process started ahead "
          f"(goal: <= 5 s; got {statistics.median(figures[True]):.2f} s)")
    append_result("first_point", args, [{"off": figures[False], "on": figures[True]}], rows)


if __name__ == "__main__":
    main()
