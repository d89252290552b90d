"""`gradloss worker`, `gradloss runs` and `gradloss dashboard`: the service from the terminal."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from gradloss.core.errors import GradlossError
from gradloss.core.validation import check_int


def cmd_worker(args) -> int:
    if args.gpus is not None:
        from gradloss.service.fleet import run_fleet
        return run_fleet(args.gpus)
    if args.processes is not None:
        from gradloss.service.fleet import run_cpu_fleet
        return run_cpu_fleet(args.processes)
    from gradloss.service.consumer import run_consumer
    run_consumer()
    return 0


def app_folder() -> Path:
    """The folder holding dashboard.py: this checkout's root, or <prefix>/share/gradloss once installed."""
    for folder in (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "gradloss"):
        if (folder / "dashboard.py").is_file():
            return folder
    raise GradlossError(f"The dashboard's files (dashboard.py, app_pages/) were found neither beside the "
                        f"gradloss package nor in {Path(sys.prefix) / 'share' / 'gradloss'}; "
                        "reinstall gradloss (`pip install .` from its repository).")


def cmd_dashboard(args, streamlit_args: list[str]) -> int:
    import subprocess

    from gradloss.service.settings import home
    folder = app_folder()
    # Streamlit reads .streamlit/config.toml from its working folder: run it in the app's, with
    # the run store every other command uses (GRADLOSS_HOME, else the user's data folder).
    env = dict(os.environ, GRADLOSS_HOME=str(home()))
    command = [sys.executable, "-m", "streamlit", "run", str(folder / "dashboard.py"), *streamlit_args]
    try:
        return subprocess.call(command, cwd=folder, env=env)
    except KeyboardInterrupt:
        return 0


def _last_test_accuracy(store, runs) -> dict:
    """Last recorded test accuracy of each run, by run id."""
    if not runs:
        return {}
    table = store.results.metrics([r.run_id for r in runs], name="test_accuracy")
    return table.sort_values("step").groupby("run_id").value.last().to_dict()


def _where(run) -> str:
    """host, or host:GPU index, of the machine that trains (trained) the run."""
    if run.host is None:
        return "-"
    return run.host if run.gpu is None else f"{run.host}:{run.gpu}"


def cmd_runs(args) -> int:
    from gradloss.service.store import Store

    check_int("runs", "limit", args.limit, 1)  # before the store: 0 or -1 is no listing
    store = Store.default()
    runs = store.runs.list(limit=args.limit)
    if not runs:
        print("no runs yet; start one with `python -m gradloss train --dataset digits --submit`")
        return 0
    accuracy = _last_test_accuracy(store, runs)
    print(f"{'run':<24} {'status':<10} {'objective':<15} {'dataset':<14} {'progress':>8} "
          f"{'test acc':>8}  {'engine':<10} {'device':<24} where")
    for run in runs:
        done = run.progress.fraction if run.status != "done" else 1.0
        acc = f"{accuracy[run.run_id]:.4f}" if run.run_id in accuracy else "-"
        print(f"{run.run_id:<24} {run.status:<10} {run.objective:<15} {run.dataset:<14} "
              f"{done:>8.0%} {acc:>8}  {run.engine:<10} {run.device or '-':<24} {_where(run)}"
              + (f"  unreadable: {run.unreadable}" if run.unreadable else "")
              + (f"  error: {run.error}" if run.error else ""))
    return 0
