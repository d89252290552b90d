"""GPU check of `worker --gpus all`: one pinned consumer per GPU, and a run that records its GPU.

    python bench/gpu_workers_check.py

Starts the fleet on an embedded store in a temporary folder, submits one tiny digits run per GPU,
waits for them, and prints each run's host, GPU index and device, and each worker's record.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gradloss.engines.backend import list_gpus  # noqa: E402


def main() -> int:
    gpus = list_gpus()
    print(f"GPUs: {gpus}", flush=True)
    with tempfile.TemporaryDirectory() as home:
        os.environ["GRADLOSS_HOME"] = home
        from gradloss.service import client, consumer
        from gradloss.service.store import Store
        fleet = subprocess.Popen([sys.executable, "-m", "gradloss", "worker", "--gpus", "all"],
                                 cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        try:
            ids = [client.submit({"dataset": "digits", "epochs": 2, "train_size": 200,
                                  "batch_size": 50, "seed": i}) for i in range(max(1, len(gpus)))]
            store = Store.default()
            deadline = time.monotonic() + 300
            while not all(store.runs.get(r).status in ("done", "failed") for r in ids):
                if time.monotonic() > deadline:
                    raise TimeoutError("runs did not finish in 300 s")
                time.sleep(1)
            for worker in consumer.worker_status().workers:
                print("worker", {k: worker[k] for k in ("host", "pid", "device", "gpu", "alive")})
            for run_id in ids:
                run = store.runs.get(run_id)
                print("run", run_id, run.status, run.host, run.gpu, run.device, run.error or "")
        finally:
            fleet.send_signal(signal.SIGTERM)
            print("fleet exit code", fleet.wait(timeout=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
