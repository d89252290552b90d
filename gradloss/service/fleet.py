"""`python -m gradloss worker --gpus all|0,1`: one consumer process per GPU, each pinned to its GPU;
`python -m gradloss worker --processes N`: N consumers sharing this machine's CPU cores.

Each child is an ordinary worker (`consumer.run_consumer`). On GPUs it is started with
CUDA_VISIBLE_DEVICES set to its GPU's UUID (robust to any renumbering) and GRADLOSS_GPU to the
machine's index of it, so it trains one run at a time on that GPU and the run records host and
GPU. On CPUs each gets an equal share of the cores (TF_NUM_INTRAOP_THREADS, OMP_NUM_THREADS; its
training processes inherit them): two runs on one core each get more done than one after another
on two, because what a run does besides its steps (Python, store writes, checkpoints) overlaps
the other's steps (bench/frontier_cost.py: 1.15x on 2 cores), at the price of each run taking
longer. This process only starts them, restarts one that dies, and passes Ctrl-C or SIGTERM on,
so each hands its run back.
"""
from __future__ import annotations

import logging
import os
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
MAX_PROCESSES = 64     # CPU workers of one `worker --processes`


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_slots(processes: int) -> list[tuple[str, dict]]:
    """(label, environment) of each of `processes` CPU workers sharing the cores equally."""
    if isinstance(processes, bool) or not isinstance(processes, int) \
            or not 1 <= processes <= MAX_PROCESSES:
        raise InvalidParameterError(
            f"The 'processes' parameter of worker must be an int in the range [1, "
            f"{MAX_PROCESSES}] (CPU workers sharing the {cores()} cores). Got {processes!r} "
            "instead.")
    threads = str(max(1, cores() // processes))
    env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1",
           "OMP_NUM_THREADS": threads}
    return [(f"CPU worker {i + 1} of {processes} ({threads} thread(s))", env)
            for i in range(processes)]


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

    gpus = choose_gpus(spec, list_gpus())
    if not gpus:
        log.warning("no NVIDIA GPU found; running one CPU worker")
        run_consumer()
        return 0
    return run_slots([(f"GPU {index} ({name})", {"CUDA_VISIBLE_DEVICES": uuid,
                                                 GPU_SETTING: str(index)})
                      for index, uuid, name in gpus])


def run_cpu_fleet(processes: int) -> int:
    """Run `processes` CPU consumers sharing the cores (`cpu_slots`) until interrupted; one
    consumer is run here, with every core."""
    slots = cpu_slots(processes)
    if processes == 1:
        from gradloss.service.consumer import run_consumer
        run_consumer()
        return 0
    return run_slots(slots)


def run_slots(slots: list[tuple[str, dict]]) -> int:
    """Run one consumer per (label, environment) slot until interrupted: restart one that dies,
    pass Ctrl-C or SIGTERM on to all."""
    from gradloss.service.tasks import check_queue
    from gradloss.service.store import Store

    Store.default()  # a wrong URL or password fails here, once, not in every child
    check_queue()
    stopping = False

    def start(slot: int) -> subprocess.Popen:
        label, env = slots[slot]
        log.warning("starting a worker: %s", label)
        return subprocess.Popen([sys.executable, "-m", "gradloss", "worker"], env=child_env(**env))

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    children = {slot: start(slot) for slot in range(len(slots))}
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while True:
        time.sleep(0.5)
        if stopping:
            for proc in children.values():
                proc.wait()
            return 0
        for slot, proc in list(children.items()):
            if proc.poll() is not None:
                log.warning("the worker %s exited with code %d; restarting it in %.0f s",
                            slots[slot][0], proc.returncode, RESTART_DELAY_S)
                time.sleep(RESTART_DELAY_S)
                if not stopping:
                    children[slot] = start(slot)
