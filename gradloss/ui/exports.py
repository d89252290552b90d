"""The dashboard's exports to MLflow and TensorBoard, without Streamlit: `gradloss export ...` in
a child process, and what to tell the user afterwards.

A child, because TensorBoard's files are written by TensorFlow, which never loads in the
dashboard, and MLflow's import takes seconds; a failure there never takes a page down. A
tracking URI typed in the dashboard goes to the child through its environment
(GRADLOSS_MLFLOW_URI), never its command line, where any user could read its password; what
comes back is shown with that password masked.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gradloss.service.settings import MLFLOW_SETTING, default_tracking_uri, home
from gradloss.service.urls import redact, scrub
from gradloss.service.supervisor import child_env

TRACKERS = ("mlflow", "tensorboard")
TIMEOUT_S = 600


@dataclass(frozen=True)
class ExportResult:
    ok: bool
    message: str   # the export's last line: what it wrote and how to open it, or why it failed
    log: str       # everything it printed (password masked)


def default_uri() -> str:
    """Where an export goes when no URI is typed, password masked (GRADLOSS_MLFLOW_URI, else
    mlflow.db in GRADLOSS_HOME)."""
    try:
        return redact(default_tracking_uri())
    except Exception as e:  # noqa: BLE001  (a bad setting: the export will say so)
        return f"(unusable: {e})"


def default_folder() -> Path:
    """Where TensorBoard logs go when no folder is typed: GRADLOSS_HOME/tensorboard."""
    return home() / "tensorboard"


def command(tracker: str, *, run_ids=(), experiment_id: str | None = None,
            folder: str | Path | None = None) -> list[str]:
    """`gradloss export TRACKER` of one experiment or these runs (TensorBoard: into `folder`)."""
    if tracker not in TRACKERS:
        raise ValueError(f"The 'tracker' parameter of command must be a str among {TRACKERS}. "
                         f"Got {tracker!r} instead.")
    argv = [sys.executable, "-m", "gradloss", "export", tracker]
    if tracker == "tensorboard":
        argv.append(str(folder or default_folder()))
    if experiment_id is not None:
        argv += ["--experiment", experiment_id]
    elif run_ids:
        argv += ["--runs", *run_ids]
    return argv


def run_export(tracker: str, *, run_ids=(), experiment_id: str | None = None,
               uri: str | None = None, folder: str | Path | None = None,
               timeout: float = TIMEOUT_S) -> ExportResult:
    """Run the export in a child process; `uri`: the MLflow tracking URI (None: the default)."""
    uri = (uri or "").strip()
    extra = {MLFLOW_SETTING: uri} if uri else {}
    secret = uri or os.environ.get(MLFLOW_SETTING, "")  # the child's URI: its password goes
    try:
        done = subprocess.run(command(tracker, run_ids=run_ids, experiment_id=experiment_id,
                                      folder=folder), capture_output=True, text=True,
                              timeout=timeout, env=child_env(**extra),
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ExportResult(False, f"The export took longer than {timeout:.0f} s and was "
                                   "stopped.", "")
    log = scrub(done.stdout + done.stderr, secret) if secret else done.stdout + done.stderr
    lines = [line for line in (done.stdout if done.returncode == 0 else done.stderr).splitlines()
             if line.strip() and not line.startswith(("I0000", "W0000", "E0000", "WARNING: All"))]
    last = lines[-1] if lines else f"gradloss export exited with status {done.returncode}"
    return ExportResult(done.returncode == 0, scrub(last, secret) if secret else last, log)
