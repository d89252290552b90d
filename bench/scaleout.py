"""Scale-out: runs per minute and per-run overhead with 1, 2 and 4 workers on each backend.

    python bench/scaleout.py [--backends embedded,network] [--workers 1,2,4] [--runs-per-worker 2]
                             [--experiment-workers 1,2]

For each backend (embedded: SQLite store and queue; network: PostgreSQL and Redis, started here
on loopback ports by tests/services.py) and each worker count, N consumers with separate homes
train 2N tiny digits runs (200 images, batch 50, 1 epoch, then the robustness sweep), all
submitted at once. Per run it reports, from the store's own timestamps:
  pickup s  - queue latency: a free worker's wait from the run being queued (or its own previous
              run ending) to starting it
  worker s  - the run on its worker: child process start, TensorFlow import, data, training,
              sweep, store writes
  train s   - of which the training steps themselves (step_ms x steps)
  submit ms - client.submit (store insert + enqueue), timed here
  store ms  - one tiny run's store writes replayed against the backend (create, start, progress,
              metrics, a checkpoint and the model as artifacts, sweep, grid, finish)
Then the wall time of a 2 x 3 experiment on digits (gradient and baseline x seeds 0, 1, 2, two
epochs each, submitted as ordinary runs) with 1 and 2 workers, on each backend. Workers train on
CPU (CUDA_VISIBLE_DEVICES=-1): the figures are about the queue and the store, not a device.
"""
from __future__ import annotations

from dataclasses import replace
from gradloss.core.progress import Progress
from gradloss.core.records import MetricRow
from gradloss.core.plan import RunPlan

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test servers
from _common import REPO, append_result, print_table  # noqa: E402

from _worker_helpers import TINY, wait_for  # noqa: E402
from services import Postgres, Redis  # noqa: E402


def start_worker(home: Path, env: dict) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "gradloss", "worker"], cwd=REPO, stdout=open(home / "worker.log", "wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ, **env, GRADLOSS_HOME=str(home), CUDA_VISIBLE_DEVICES="-1",
                 PYTHONPATH=str(REPO)))


def replay_store_writes(store) -> float:
    """Seconds one tiny run's store writes take (as the runner makes them, in sequence)."""
    blob = os.urandom(600_000)  # about a model; a checkpoint is ~3x, sent once per epoch
    started = time.perf_counter()
    run_id = store.runs.create(RunPlan(TINY), task_id="t")
    store.runs.start(run_id, "bench:1", host="bench")
    store.runs.set_device(run_id, "CPU")
    for step in range(1, 5):
        store.runs.update_progress(run_id, Progress(fraction=step / 4, step=step))
        store.results.add_metrics(run_id, [MetricRow(step, 1, "loss", 1.0)])
        store.runs.cancel_requested(run_id)
    store.results.add_metrics(run_id, [MetricRow(4, 1, n, 0.5)
                               for n in ("epoch_loss", "train_accuracy", "test_accuracy", "step_ms")])
    store.artifacts.put(run_id, "checkpoint.tar", blob * 3)
    sweep = pd.DataFrame({"sigma": np.linspace(0, 0.7, 8), "accuracy": 0.9, "accuracy_std": 0.01})
    for done in range(1, 9):
        store.runs.update_progress(run_id, Progress(fraction=1.0, sweep_done=done, sweep_total=8))
    store.results.save_robustness(run_id, sweep, 3, 0)
    store.results.save_examples(run_id, pd.DataFrame({"sigma": 0.0, "index": range(16), "label": 1,
                                              "prediction": 1, "confidence": 0.9}))
    store.artifacts.put(run_id, "model.keras", blob)
    store.runs.finish(run_id, "done", worker_id="bench:1")
    return time.perf_counter() - started


def measure(urls: dict, n_workers: int, configs: list[dict], scratch: Path) -> dict:
    """Start n_workers, submit `configs` at once, wait; wall time and per-run figures."""
    os.environ.update(urls)
    from gradloss.service import client
    from gradloss.service.store import Store
    store = Store.default()
    workers = [start_worker(scratch / f"w{i}", urls) for i in range(n_workers)]
    try:
        from gradloss.service.consumer import worker_status
        wait_for(lambda: sum(w["alive"] for w in worker_status(store).workers) == n_workers, 120,
                 "every worker in the store")
        t0, submit_s = time.time(), []
        ids = []
        for config in configs:
            started = time.perf_counter()
            ids.append(client.submit(config))
            submit_s.append(time.perf_counter() - started)
        wait_for(lambda: all(store.runs.get(r).status in ("done", "failed") for r in ids), 1800,
                 "the runs to finish")
        wall = max(store.runs.get(r).finished_at for r in ids) - t0
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=60)
    runs = [store.runs.get(r) for r in ids]
    assert all(r.status == "done" for r in runs), [r.error for r in runs]
    metrics = store.results.metrics(ids, name="step_ms")
    steps = {r.run_id: len(store.results.metrics(r.run_id, name="loss")) / r.config.epochs for r in runs}
    train_s = [metrics.query("run_id == @r.run_id")["value"].sum() * steps[r.run_id] / 1000 for r in runs]
    pickup = []
    for worker in {r.worker_id for r in runs}:  # a worker's runs in order: ready = previous end
        mine = sorted((r for r in runs if r.worker_id == worker), key=lambda r: r.started_at)
        ready = [t0] + [r.finished_at for r in mine[:-1]]
        pickup += [r.started_at - max(r.created_at, prev) for r, prev in zip(mine, ready)]
    return {"runs": len(runs), "wall_s": wall, "runs_per_min": 60 * len(runs) / wall,
            "submit_ms": 1000 * statistics.median(submit_s), "pickup_s": statistics.median(pickup),
            "worker_s": statistics.median(r.finished_at - r.started_at for r in runs),
            "train_s": statistics.median(train_s), "store_ms": 1000 * replay_store_writes(store)}


def backend_urls(name: str, servers: dict, scratch: Path) -> dict:
    if name == "embedded":
        return {"GRADLOSS_STORE_URL": f"sqlite:///{scratch / 'runs.sqlite'}",
                "GRADLOSS_QUEUE_URL": f"sqlite:///{scratch / 'queue.sqlite'}"}
    servers["redis"].flush()
    return {"GRADLOSS_STORE_URL": servers["postgres"].database(),
            "GRADLOSS_QUEUE_URL": servers["redis"].url}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="embedded,network")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--runs-per-worker", type=int, default=2)
    p.add_argument("--experiment-workers", default="1,2")
    args = p.parse_args()
    backends = args.backends.split(",")
    servers = {}
    if "network" in backends:
        servers = {"redis": Redis(), "postgres": Postgres()}
        servers["redis"].start()
        servers["postgres"].init()
    rows, outcomes = [], []
    try:
        for backend in backends:
            for n in [int(w) for w in args.workers.split(",") if w]:
                with tempfile.TemporaryDirectory() as scratch:
                    urls = backend_urls(backend, servers, Path(scratch))
                    print(f"{backend}: {n} worker(s) ...", flush=True)
                    out = measure(urls, n, [replace(TINY, seed=i) for i in range(args.runs_per_worker * n)],
                                  Path(scratch))
                outcomes.append({"backend": backend, "workers": n, "kind": "tiny", **out})
                rows.append([backend, n, out["runs"], out["runs_per_min"], out["submit_ms"],
                             out["pickup_s"], out["store_ms"], out["worker_s"], out["train_s"], "-"])
            for n in [int(w) for w in args.experiment_workers.split(",") if w]:
                experiment = [{"dataset": "digits", "objective": o, "seed": s, "epochs": 2}
                              for o in ("gradient", "baseline") for s in (0, 1, 2)]
                with tempfile.TemporaryDirectory() as scratch:
                    urls = backend_urls(backend, servers, Path(scratch))
                    print(f"{backend}: 2 x 3 experiment on {n} worker(s) ...", flush=True)
                    out = measure(urls, n, experiment, Path(scratch))
                outcomes.append({"backend": backend, "workers": n, "kind": "experiment", **out})
                rows.append([backend, n, "2x3 exp", out["runs_per_min"], out["submit_ms"],
                             out["pickup_s"], out["store_ms"], out["worker_s"], out["train_s"],
                             out["wall_s"]])
    finally:
        for server in servers.values():
            server.close()
    header = ["backend", "workers", "runs", "runs/min", "submit ms", "pickup s", "store ms",
              "worker s", "train s", "wall s"]
    print()
    print_table(header, rows)
    append_result("scaleout", args, outcomes, rows)


if __name__ == "__main__":
    main()
