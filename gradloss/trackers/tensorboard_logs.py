"""gradloss's runs as TensorBoard logs: one folder per run, written through `tf.summary`.

    DIR/<experiment id>/<arm>-seed<k>-<run id>/   a run of an experiment
    DIR/<experiment id>/summary/                  its summary over seeds, as a table (Text tab)
    DIR/runs/<objective>-seed<k>-<run id>/        a run of its own
    DIR/                                          the HParams plugin's set-up

Each run's folder holds the scalars of `mapping` (the store's metrics at their steps; the sweep
and evaluation points at step 0) and the run's hyperparameters for the HParams plugin, whose
table then compares runs by objective, strength, seed, ... against the clean and noisy
accuracies. A run's folder is written afresh on every export (event files only grow, so
writing twice would double every point). Scalars are float32, as TensorBoard keeps them.
Needs TensorFlow and the tensorboard package (`pip install "gradloss[tensorboard]"`).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from gradloss.core.errors import SettingsError
from gradloss.core.records import StoredRun
from gradloss.trackers import mapping
from gradloss.trackers.gather import ExperimentResults, RunResults

EXTRA = "pip install 'gradloss[tensorboard]'"
# The HParams table's columns, in order; each run has those that apply to it.
HPARAMS = ("objective", "strength", "arm", "seed", "dataset", "train_size", "epochs",
           "batch_size", "learning_rate", "engine", "protocol")
METRICS = ("test_accuracy",)  # then every accuracy/... point, the noise sweep's first


def _modules():
    try:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp
    except ImportError as exc:
        raise SettingsError(f"Writing TensorBoard logs needs TensorFlow and TensorBoard: "
                            f"{EXTRA} ({exc}).") from None
    return tf, hp


def _part(text: str) -> str:
    """`text` as one folder name."""
    return re.sub(r"[^\w.-]+", "_", str(text)).strip("._") or "_"


def run_folder(root: Path, run: StoredRun) -> Path:
    """Where run `run`'s log goes under `root`."""
    seed = f"-seed{run.config.seed}" if run.config is not None else ""
    if run.experiment_id is not None:
        return root / _part(run.experiment_id) / f"{_part(run.arm or run.objective)}{seed}-{run.run_id}"
    return root / "runs" / f"{_part(run.objective)}{seed}-{run.run_id}"


def write_run(root: Path, results: RunResults) -> Path:
    """Run `results.run`'s log folder under `root`, written afresh: its hparams and scalars."""
    tf, hp = _modules()
    folder = run_folder(Path(root), results.run)
    shutil.rmtree(folder, ignore_errors=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams(mapping.hparams(results.run), trial_id=results.run.run_id)
        for key, value, step in points(results):
            tf.summary.scalar(key, value, step=step)
    writer.close()
    return folder


def points(results: RunResults) -> list[mapping.Point]:
    """Every scalar of a run's log: training, sweep and evaluation."""
    return (mapping.training_points(results.metrics) + mapping.sweep_points(results.sweep)
            + mapping.evaluation_points(results.rows))


def write_experiment(root: Path, results: ExperimentResults) -> Path | None:
    """The experiment's summary tables as Markdown in its `summary` folder (TensorBoard's Text
    tab), or None before two seeds are paired."""
    if results.summary.empty:
        return None
    tf, _ = _modules()
    from gradloss.analysis import stats

    folder = Path(root) / _part(results.record.experiment_id) / "summary"
    shutil.rmtree(folder, ignore_errors=True)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        tf.summary.text("summary/noise", stats.to_markdown(results.summary), step=0)
        for name, rows in (results.perturbation_summary.groupby("perturbation", sort=False)
                           if not results.perturbation_summary.empty else []):
            tf.summary.text(f"summary/{mapping.safe(name)}",
                            stats.to_markdown(rows.drop(columns="perturbation")), step=0)
    writer.close()
    return folder


def write_hparams_config(root: Path, runs: list[RunResults]) -> None:
    """The HParams plugin's set-up in `root`: the columns (HPARAMS, with the values these runs
    take) and the metrics (METRICS, then each accuracy the runs measured), replacing an earlier
    export's."""
    tf, hp = _modules()
    root = Path(root)
    values: dict[str, set] = {name: set() for name in HPARAMS}
    counts: dict[str, int] = {name: 0 for name in HPARAMS}
    keys: set[str] = set()
    for results in runs:
        for name, value in mapping.hparams(results.run).items():
            values.setdefault(name, set()).add(value)
            counts[name] = counts.get(name, 0) + 1
        keys |= {p.key for p in points(results)}
    columns = []
    for name in HPARAMS:
        seen = values[name]
        if not seen:
            continue
        if all(isinstance(v, str) or isinstance(v, bool) for v in seen):
            columns.append(hp.HParam(name, hp.Discrete(sorted(seen, key=str))))
        else:
            columns.append(hp.HParam(name, hp.RealInterval(float(min(seen)), float(max(seen)))))
    metrics = [k for k in METRICS if k in keys]
    metrics += sorted((k for k in keys if k.startswith("accuracy/")),
                      key=lambda k: (not k.startswith("accuracy/sigma_"), k))  # noise first
    for old in root.glob("events.out.tfevents.*.hparams"):
        old.unlink()
    root.mkdir(parents=True, exist_ok=True)
    summary = hp.hparams_config_pb(hparams=columns, metrics=[hp.Metric(k) for k in metrics])
    _mark_differing(summary, {name for name, seen in values.items()  # a strength some lack too
                              if len(seen) > 1 or 0 < counts[name] < len(runs)})
    writer = tf.summary.create_file_writer(str(root), filename_suffix=".hparams")
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)
    writer.close()


def _mark_differing(summary, names: set[str]) -> None:
    """Mark the hparams whose values differ between runs, in the set-up `summary` (a Summary
    proto): TensorBoard's table lists those first and shows them by default, as it does when it
    infers the set-up itself (tensorboard/plugins/hparams/backend_context.py)."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    plugin_data = summary.value[0].metadata.plugin_data
    experiment = metadata.parse_experiment_plugin_data(plugin_data.content)
    for info in experiment.hparam_infos:
        info.differs = info.name in names
    plugin_data.content = plugin_data_pb2.HParamsPluginData(
        version=metadata.PLUGIN_DATA_VERSION, experiment=experiment).SerializeToString()


def export(root: str | Path, runs: list[RunResults],
           experiments: list[ExperimentResults]) -> list[Path]:
    """Write the runs' folders, the experiments' summaries and the HParams set-up under
    `root`; returns the run folders."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise SettingsError(f"The TensorBoard folder {root} is a file; give a folder.")
    folders = [write_run(root, r) for r in runs]
    for results in experiments:
        write_experiment(root, results)
    if runs:
        write_hparams_config(root, runs)
    return folders
