"""`python -m gradloss worker --gpus all|0,1`: one consumer process per GPU, each pinned to its GPU.

Each child is an ordinary worker (`consumer.run_consumer`) started with CUDA_VISIBLE_DEVICES set to
its GPU's UUID (robust to any renumbering) and GRADLOSS_GPU to the machine's index of it, so it
trains one run at a time on that GPU and the run records host and GPU. This process only starts
them, restarts one that dies, and passes Ctrl-C or SIGTERM on, so each hands its run back.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from gradloss.engines.backend import list_gpus
from gradloss.core.errors import InvalidParameterError
from gradloss.service.heartbeat import GPU_SETTING
from gradloss.service.supervisor import child_env

log = logging.getLogger(__name__)

RESTART_DELAY_S = 5.0  # before restarting a consumer that died, so a crash loop does not spin


def choose_gpus(spec: str, gpus: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The GPUs `spec` ("all" or comma-separated indices) names among `gpus`."""
    if spec.strip().lower() == "all":
        return gpus
    by_index = {g[0]: g for g in gpus}
    try:
        wanted = [int(part) for part in spec.split(",")]
    except ValueError:
        wanted = None
    if not wanted or any(i not in by_index for i in wanted) or len(set(wanted)) < len(wanted):
        raise InvalidParameterError(
            f"The 'gpus' parameter of worker must be 'all' or distinct GPU indices among "
            f"{sorted(by_index)}. Got {spec!r} instead.")
    return [by_index[i] for i in wanted]


def run_fleet(spec: str) -> int:
    """Run one consumer per GPU in `spec` until interrupted; without GPUs, one CPU consumer here."""
    from gradloss.service.consumer import run_consumer
    from gradloss.service.tasks import check_queue
    from gradloss.service.store import Store

    gpus = choose_gpus(spec, list_gpus())
    if not gpus:
        log.warning("no NVIDIA GPU found; running one CPU worker")
        run_consumer()
        return 0
    Store.default()  # a wrong URL or password fails here, once, not in every child
    check_queue()
    stopping = False

    def start(gpu: tuple[int, str, str]) -> subprocess.Popen:
        log.warning("starting a worker on GPU %d (%s)", gpu[0], gpu[2])
        return subprocess.Popen([sys.executable, "-m", "gradloss", "worker"], env=child_env(
            CUDA_VISIBLE_DEVICES=gpu[1], **{GPU_SETTING: str(gpu[0])}))

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    children = {gpu: start(gpu) for gpu in gpus}
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while True:
        time.sleep(0.5)
        if stopping:
            for proc in children.values():
                proc.wait()
            return 0
        for gpu, proc in list(children.items()):
            if proc.poll() is not None:
                log.warning("the worker on GPU %d exited with code %d; restarting it in %.0f s",
                            gpu[0], proc.returncode, RESTART_DELAY_S)
                time.sleep(RESTART_DELAY_S)
                if not stopping:
                    children[gpu] = start(gpu)
