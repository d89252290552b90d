"""A trained model's corruptions and attacks, reported to a sink: in this process when Keras runs
on TensorFlow, else in a TensorFlow child process.

Every run's corruptions and attacks are measured on TensorFlow, whatever engine trained it: the
attacks (compiled in keras.ops, `perturbations.attacks`) are checked against ART's on TensorFlow,
and measuring every model on one backend keeps their results comparable, so a JAX process (a
JAX-trained run, a JAX CLI experiment) does not run them itself. The rule lives here, once: `evaluate` runs the suite in this
process or starts `python -m gradloss.pipeline.evaluation`, which loads the saved model file
under TensorFlow and streams its results back as JSON lines, forwarded to the same sink calls.
Results reach the sink perturbation by perturbation, so a stopped evaluation keeps what it
measured; a cancel asked for through the sink stops it between perturbations.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.progress import Progress
from gradloss.pipeline.sinks import Sink

log = logging.getLogger(__name__)

CANCELLED = "cancelled"


class _Stopped(Exception):
    """The sink asked to cancel while the evaluation ran."""


def evaluate(model, model_path: Path, x_test: np.ndarray, y_test: np.ndarray, dataset_spec: dict,
             config: EvaluationConfig, grid: list[int], sink: Sink, i: int
             ) -> tuple[str, str | None, pd.DataFrame | None, list[str] | None]:
    """Run `config` on the model; returns (status, error, rows, masking flags).

    `model` is the loaded model (used when this process runs TensorFlow), `model_path` its file
    (for the child otherwise); `dataset_spec` ({"name", "data_dir", "sha256"}) tells the child
    which test set to load; `grid` are the test rows whose predictions the dashboard shows."""
    import keras

    sink.evaluation_started(i)
    try:
        if keras.backend.backend() == "tensorflow":
            rows, flags = _evaluate_here(model, x_test, y_test, config, grid, sink, i)
        else:
            rows, flags = _evaluate_in_child(model_path, dataset_spec, config, grid, sink, i)
    except _Stopped:
        sink.evaluation_finished(i, "failed", CANCELLED)
        return "failed", CANCELLED, None, None
    except Exception as exc:  # noqa: BLE001  (the trained run stays; the evaluation says why)
        log.exception("evaluation of plan %d failed", i)
        error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        sink.evaluation_finished(i, "failed", error)
        return "failed", error, None, None
    sink.evaluation_finished(i, "done", None)
    return "done", None, rows, flags


class _Reporter:
    """Progress of the evaluation's phases as Progress records for the sink, each with the
    phase's ETA (its time so far per step done, times the steps left)."""

    def __init__(self, sink: Sink, i: int):
        self._sink, self._i = sink, i
        self._phase, self._t0 = None, time.perf_counter()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase:
            self._phase, self._t0 = phase, time.perf_counter()
        eta = (time.perf_counter() - self._t0) / done * (total - done) if done else None
        self._sink.evaluation_progress(self._i, Progress(fraction=1.0, phase=phase, eta_s=eta,
                                                         sweep_done=done, sweep_total=total))


def _evaluate_here(model, x, y, config, grid, sink: Sink, i: int):
    from gradloss.perturbations import suite

    report = _Reporter(sink, i)

    def on_table(rows: pd.DataFrame) -> None:
        sink.evaluation_rows(i, rows)
        if sink.should_cancel(i):
            raise _Stopped

    table, flags = suite.evaluate(model, x, y, config, on_table=on_table, on_progress=report)
    sink.masking_flags(i, flags)
    report("grid images", 0, 1)
    sink.evaluation_examples(i, suite.grid_examples(model, x, y, grid, config))
    report("grid images", 1, 1)
    return table, flags


def _evaluate_in_child(model_path: Path, dataset_spec: dict, config: EvaluationConfig, grid,
                       sink: Sink, i: int):
    """Run the suite in a TensorFlow child on the saved model; forward its events to the sink."""
    from gradloss.engines.backend import child_environment

    request = {"model": str(model_path), "dataset": dataset_spec, "evaluation": config.to_dict(),
               "grid": [int(g) for g in grid]}
    env = child_environment("tensorflow", False, dict(os.environ, GRADLOSS_PARENT_PID=str(
        os.getpid())))
    proc = subprocess.Popen([sys.executable, "-m", "gradloss.pipeline.evaluation"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps(request))
    proc.stdin.close()
    frames, flags, error = [], None, None
    report = _Reporter(sink, i)
    try:
        for line in proc.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "progress":
                report(event["phase"], event["done"], event["total"])
            elif kind == "rows":
                rows = pd.DataFrame(event["rows"])
                frames.append(rows)
                sink.evaluation_rows(i, rows)
                if sink.should_cancel(i):
                    raise _Stopped
            elif kind == "flags":
                flags = event["flags"]
                sink.masking_flags(i, flags)
            elif kind == "examples":
                sink.evaluation_examples(i, _examples_from_json(event["rows"]))
            elif kind == "error":
                error = event["error"]
    except BaseException:  # cancelled, or the sink failed: the child must not run on
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    if error is not None or code != 0:
        raise RuntimeError(error or f"the evaluation process exited with code {code}")
    return (pd.concat(frames, ignore_index=True) if frames else None), flags


def _examples_to_json(table: pd.DataFrame) -> list[dict]:
    records = table.to_dict("records")
    for r in records:
        r["image"] = None if r["image"] is None else base64.b64encode(r["image"]).decode()
        for key in ("index", "label", "prediction"):
            r[key] = int(r[key])
        r["level"], r["confidence"] = float(r["level"]), float(r["confidence"])
    return records


def _examples_from_json(records: list[dict]) -> pd.DataFrame:
    for r in records:
        r["image"] = None if r["image"] is None else base64.b64decode(r["image"])
    return pd.DataFrame(records, columns=["perturbation", "level", "index", "label",
                                          "prediction", "confidence", "image"])


class _EventSink(Sink):
    """The child's side: every sink call becomes a JSON line on stdout."""

    def __init__(self, out):
        self._out = out

    def _send(self, **event) -> None:
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()

    def evaluation_progress(self, i: int, progress: Progress) -> None:
        self._send(event="progress", phase=progress.phase, done=progress.sweep_done,
                   total=progress.sweep_total)

    def evaluation_rows(self, i: int, rows: pd.DataFrame) -> None:
        self._send(event="rows", rows=json.loads(rows.to_json(orient="records")))

    def masking_flags(self, i: int, flags) -> None:
        self._send(event="flags", flags=flags)

    def evaluation_examples(self, i: int, table: pd.DataFrame) -> None:
        self._send(event="examples", rows=_examples_to_json(table))


def main() -> int:
    """The TensorFlow child: read the request on stdin, evaluate, write events on stdout."""
    from gradloss.engines.backend import die_with_parent

    die_with_parent()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s evaluation[%(process)d] %(name)s %(levelname)s "
                               "%(message)s")
    request = json.loads(sys.stdin.read())
    events = _EventSink(sys.stdout)
    sys.stdout = sys.stderr  # anything else printed (Keras, ART) stays out of the event stream
    try:
        from gradloss.data import load_dataset
        from gradloss.training.loop import load_model

        spec = request["dataset"]
        ds = load_dataset(spec["name"], data_dir=spec.get("data_dir"), sha256=spec.get("sha256"))
        model = load_model(request["model"])
        config = EvaluationConfig.from_dict(request["evaluation"])
        _evaluate_here(model, ds.x_test, ds.y_test, config, request["grid"], events, 0)
    except Exception as exc:  # noqa: BLE001  (the parent reports it on the sink)
        log.exception("evaluation failed")
        events._send(event="error",
                     error=f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
