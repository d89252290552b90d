"""A frontier end to end through the real worker, and where its time goes: total, per-run
overhead (start-up, build and compile, sweep, store) and the hand-off between runs, side by side
for each way of running the same arms.

    python bench/frontier_cost.py [--objectives mse_penalty,input_gradient,noise_augmented]
        [--strengths 5] [--seeds 3] [--epochs 10]
        [--modes worker,two-workers,process-per-run,one-by-one]

The frontier is the Train page's: `core.frontier.frontier_experiment` on the bundled digits
(the first `--strengths` of each objective's default grid, batch 100, `--epochs` for every arm),
submitted with `client.submit_experiment` as the page does. Modes, each on a fresh
GRADLOSS_HOME, one after another (never together: they would share the 2 cores):
- worker: a real worker (`python -m gradloss worker`), its training process started ahead and
  handed run after run (this version);
- two-workers: `python -m gradloss worker --processes 2`, two such workers sharing the cores
  (one thread each on 2 cores), two runs at a time;
- process-per-run: the same worker with GRADLOSS_TRAINER_RUNS=1, a fresh training process per
  run (started ahead while the worker is idle: the previous version);
- one-by-one: each run as its own `gradloss train` command, one after another (no worker).

Per run, from the store: wall = finished - started; steps = the run's steps at its measured
step time (`step_ms`, which leaves out the compiling first chunk); overhead = wall - steps (model
build, compile, the noise sweep, store writes); gap = started - the previous run's finished (the
hand-off: dispatch, and process start-up where a run waits for one; with two workers, runs
overlap and the gap is negative). Goal (issue #23): 3
objectives x 5 strengths x 3 seeds in <= 10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test helpers
from _common import REPO, append_result, print_table  # noqa: E402

from _worker_helpers import wait_for  # noqa: E402

MODES = ("worker", "two-workers", "process-per-run", "one-by-one")


def frontier_spec(args):
    from gradloss.core.frontier import DEFAULT_GRIDS, frontier_experiment

    names = args.objectives.split(",")
    grids = {o: DEFAULT_GRIDS[o][:args.strengths] for o in names if o in DEFAULT_GRIDS}
    return frontier_experiment(names, grids, seeds=args.seeds, epochs=args.epochs,
                               dataset="digits")


def _env(home: Path, **extra) -> dict:
    return dict(os.environ, GRADLOSS_HOME=str(home), PYTHONPATH=str(REPO),
                CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2", **extra)


def through_worker(spec, home: Path, processes: int = 1, **env) -> tuple[float, str]:
    """Start a worker (`processes` CPU workers sharing the cores), wait until every one is idle,
    submit the frontier, time until every run ended."""
    from gradloss.service import client
    from gradloss.service.store import Store

    home.mkdir(parents=True)
    os.environ["GRADLOSS_HOME"] = str(home)
    log = home / "worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "gradloss", "worker",
                             *(["--processes", str(processes)] if processes > 1 else [])], cwd=REPO,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=_env(home, **env))
    try:
        wait_for(lambda: log.read_text(errors="replace").count("ready (started") >= processes,
                 300, "the workers' training processes started ahead")
        store = Store.default()
        started = time.perf_counter()
        experiment_id = client.submit_experiment(spec, store)
        wait_for(lambda: all(r.finished for r in store.runs.of_experiment(experiment_id)),
                 3600, "the frontier's runs", interval=0.5)
        return time.perf_counter() - started, experiment_id
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def one_by_one(spec, home: Path) -> tuple[float, str]:
    """Each run as `gradloss train` (a process of its own, no worker), one after another,
    recorded in the store as an experiment's runs would be: a store of its own per mode."""
    from gradloss.service.store import Store

    home.mkdir(parents=True)
    os.environ["GRADLOSS_HOME"] = str(home)
    started = time.perf_counter()
    for _arm, config in spec.configs():
        flags = ["--objective", config.objective, "--dataset", "digits", "--epochs",
                 str(config.epochs), "--batch-size", str(config.batch_size), "--seed",
                 str(config.seed), "--draws", str(spec.sweep.draws)]
        for name, flag in (("penalty_weight", "--penalty-weight"),
                           ("train_noise_sigma", "--train-noise-sigma")):
            if name in config.objective_params:
                flags += [flag, str(config.objective_params[name])]
        subprocess.run([sys.executable, "-m", "gradloss", "train", *flags], cwd=REPO,
                       env=_env(home), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, ""


def breakdown(home: Path, experiment_id: str) -> dict:
    """Per-run wall, steps, overhead and gap (module docstring), as medians, from the store."""
    from gradloss.service.store import Store

    os.environ["GRADLOSS_HOME"] = str(home)
    store = Store.default()
    runs = store.runs.of_experiment(experiment_id) if experiment_id else store.runs.list()[::-1]
    runs = sorted(runs, key=lambda r: r.started_at or 0)
    bad = [r for r in runs if r.status != "done"]
    if bad:
        raise RuntimeError(f"{len(bad)} runs did not end done: {bad[0].run_id} {bad[0].status}: "
                           f"{bad[0].error}")
    metrics = store.results.metrics([r.run_id for r in runs])
    walls, steps, gaps = [], [], []
    for k, run in enumerate(runs):
        mine = metrics[metrics.run_id == run.run_id]
        n_steps = int((mine.name == "loss").sum())
        per_step = mine[mine.name == "step_ms"].value.mean() / 1000
        walls.append(run.finished_at - run.started_at)
        steps.append(n_steps * per_step)
        if k:
            gaps.append(run.started_at - runs[k - 1].finished_at)
    overhead = [w - s for w, s in zip(walls, steps)]
    return {"runs": len(runs), "wall": statistics.median(walls),
            "steps": statistics.median(steps), "overhead": statistics.median(overhead),
            "gap": statistics.median(gaps) if gaps else 0.0,
            "overhead_total": sum(overhead) + sum(gaps)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", default="mse_penalty,input_gradient,noise_augmented")
    p.add_argument("--strengths", type=int, default=5)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--modes", default=",".join(MODES))
    args = p.parse_args()
    spec = frontier_spec(args)
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        p.error(f"--modes: unknown {unknown}; choose among {list(MODES)}")
    print(f"frontier: {len(spec.arms)} arms x {len(spec.seeds)} seeds = {spec.n_runs} digits "
          f"runs, {args.epochs} epochs, batch 100; modes {', '.join(modes)}", flush=True)
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            home = Path(folder) / mode
            if mode == "one-by-one":
                total, experiment_id = one_by_one(spec, home)
            else:
                total, experiment_id = through_worker(
                    spec, home, processes=2 if mode == "two-workers" else 1,
                    **({"GRADLOSS_TRAINER_RUNS": "1"} if mode == "process-per-run" else {}))
            found[mode] = {"total": total, **breakdown(home, experiment_id)}
            print(f"{mode}: {total:.0f} s for {found[mode]['runs']} runs", flush=True)
    first = found[modes[0]]["total"]
    rows = [[mode, f["total"], f["total"] / first, f["wall"], f["steps"], f["overhead"], f["gap"],
             f["overhead_total"]] for mode, f in found.items()]
    print()
    print_table(["mode", "total s", f"/ {modes[0]}", "run wall s (median)", "steps s",
                 "overhead s", "gap s", "overhead + gaps, all runs s"], rows)
    if "worker" in found:
        minutes = found["worker"]["total"] / 60
        print(f"\nthrough the worker: {minutes:.1f} min end to end for {spec.n_runs} runs "
              f"(goal for 45 runs: <= 10 min)")
    append_result("frontier_cost", args, [found], rows)


if __name__ == "__main__":
    main()
