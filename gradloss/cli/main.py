"""Command line: `gradloss {train,experiment,reproduce,evaluate,worker,runs,dashboard}` (or
`python -m gradloss ...`).

Arguments are validated through the config classes before anything heavy is imported; a bad
value, an unusable GRADLOSS_HOME or --out folder, or a bad environment setting prints one
message and exits with status 2. Keras is imported only after
KERAS_BACKEND is set from the requested engine.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path

from gradloss.analysis import stats
from gradloss.core.config import (DATASETS, ENGINES, OBJECTIVES, REFERENCE_ACCURACY,
                                  REFERENCE_PROTOCOL, REFERENCE_SIGMAS, SweepConfig, TrainConfig)
from gradloss.engines.backend import use_backend
from gradloss.core.errors import GradlossError, InvalidParameterError, SettingsError
from gradloss.cli.evaluate import (cmd_evaluate, evaluate_seed, experiment_perturbation_summary,
                                   reproduce_summary)
from gradloss.perturbations.family import PERTURBATIONS, EvaluationConfig, default_evaluation
from gradloss.analysis.experiments import MAX_SEEDS, MIN_SEEDS_INTERVAL, ExperimentConfig
from gradloss.core.progress import Progress

PERTURBATION_NAMES = tuple(PERTURBATIONS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradloss", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log each epoch")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, objective=True, seed=True):
        if objective:
            p.add_argument("--objective", choices=OBJECTIVES, default="gradient")
        p.add_argument("--dataset", choices=DATASETS, default="fashion_mnist")
        p.add_argument("--epochs", type=int, help="default: the reference protocol's")
        p.add_argument("--train-size", type=int, help="stratified training subset (default: all)")
        if seed:
            p.add_argument("--seed", type=int, default=0)
        p.add_argument("--engine", choices=ENGINES, default="tensorflow")
        p.add_argument("--deterministic", action="store_true",
                       help="deterministic GPU kernels: bit-repeatable runs, slower GPU steps "
                            "(CPU runs repeat exactly either way)")

    train = sub.add_parser("train", help="train one model (here, or through the queue with --submit)")
    common(train)
    train.add_argument("--batch-size", type=int, help="default: the reference protocol's")
    train.add_argument("--train-noise-sigma", type=float,
                       help="noise_augmented only: sigma of the training noise (default: "
                            f"{REFERENCE_PROTOCOL['noise_augmented']['train_noise_sigma']})")
    train.add_argument("--penalty-weight", type=float,
                       help="input_gradient only: lambda of the input-gradient penalty (default: "
                            f"{REFERENCE_PROTOCOL['input_gradient']['penalty_weight']})")
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--out", type=Path,
                       help="run folder (default: $GRADLOSS_HOME/cli-<time>-<random>)")
    train.add_argument("--submit", action="store_true", help="queue it for the background worker")

    exp = sub.add_parser("experiment", help="arms x seeds, summarised with 95 %% intervals "
                                            "(here, or through the queue with --submit)")
    common(exp, objective=False, seed=False)
    exp.add_argument("--objectives", default=",".join(OBJECTIVES),
                     help="comma-separated arms (default: every objective)")
    exp.add_argument("--seeds", type=int, default=3,
                     help=f"seeds 0..N-1, N in [{MIN_SEEDS_INTERVAL}, {MAX_SEEDS}] (default 3)")
    exp.add_argument("--batch-size", type=int, help="default: each objective's reference")
    exp.add_argument("--reference", default="baseline", help="the arm the others are compared with")
    exp.add_argument("--draws", type=int, default=3, help="noise draws per sigma")
    exp.add_argument("--out", type=Path, help="results folder (default: results/experiment-<time>)")
    exp.add_argument("--perturbations", nargs="+", metavar="NAME",
                     help="corruptions and attacks on every run after its noise sweep, each "
                          "summarised over the seeds with intervals, among "
                          f"{', '.join(PERTURBATION_NAMES[1:])} (default: none)")
    exp.add_argument("--submit", action="store_true", help="queue its runs for the background worker")

    rep = sub.add_parser("reproduce", help="train every objective and compare robustness")
    common(rep, objective=False)
    rep.add_argument("--seeds", type=int, default=1,
                     help="1: one run per objective (default); N >= 2: seeds 0..N-1 with intervals")
    rep.add_argument("--draws", type=int, default=3, help="noise draws per sigma")
    rep.add_argument("--out", type=Path, help="results folder (default: results/reproduce-<time>)")
    rep.add_argument("--perturbations", nargs="+", metavar="NAME",
                     help="corruptions and attacks to run after the noise sweep, among "
                          f"{', '.join(PERTURBATION_NAMES[1:])} (default: all; with --seeds N, "
                          "each summarised over the seeds with intervals)")
    rep.add_argument("--no-evaluate", action="store_true",
                     help="skip the corruptions and attacks (no summary table)")

    ev = sub.add_parser("evaluate", help="accuracy of a saved model (a .keras file or a run id) "
                                         "under noise, corruptions and attacks, as a summary table")
    ev.add_argument("model", help="a saved model.keras, or the id of a finished run in the store")
    ev.add_argument("--perturbations", nargs="+", metavar="NAME",
                    help=f"among {', '.join(PERTURBATION_NAMES)} (default: all)")
    ev.add_argument("--dataset", choices=DATASETS,
                    help="test set (default: the run's, or fashion_mnist for a file)")
    ev.add_argument("--severities", nargs="+", type=int, metavar="S", help="corruption severities, 1-5")
    ev.add_argument("--epsilons", nargs="+", type=float, metavar="EPS",
                    help="attack budgets in [0, 1] (L-infinity, pixels in [0, 1])")
    ev.add_argument("--steps", type=int, help="PGD steps (default 10)")
    ev.add_argument("--attack-images", type=int, help="attacked test images (default 1000)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", type=Path, help="also write the rows and the summary as CSV here")

    worker = sub.add_parser("worker", help="run the background training worker (Huey consumer)")
    worker.add_argument("--gpus", help="'all' or GPU indices such as 0,1: one worker per GPU, "
                                       "each pinned to its GPU (default: one worker)")
    sub.add_parser("dashboard", help="start the Streamlit dashboard, as `streamlit run dashboard.py`; "
                                     "other arguments go to streamlit (e.g. --server.port 8502)")
    runs = sub.add_parser("runs", help="list the runs in the store")
    runs.add_argument("--limit", type=int, default=20)
    return parser


def _train_config(args, objective: str) -> TrainConfig:
    return TrainConfig(objective=objective, dataset=args.dataset, epochs=args.epochs,
                       batch_size=getattr(args, "batch_size", None),
                       learning_rate=getattr(args, "learning_rate", 1e-3),
                       train_size=args.train_size, seed=args.seed, engine=args.engine,
                       deterministic=args.deterministic,
                       train_noise_sigma=getattr(args, "train_noise_sigma", None),
                       penalty_weight=getattr(args, "penalty_weight", None))


def _train_with_bar(config: TrainConfig, run_dir: Path, dataset=None):
    from tqdm import tqdm

    from gradloss.training.loop import train

    label = f"{config.objective} ({config.epochs} epochs, batch {config.batch_size})"
    with tqdm(total=config.epochs * config.steps_per_epoch, desc=label, unit="step") as bar:
        def on_progress(p):
            bar.update(p.step - bar.n)
            bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.4g}")
        return train(config, run_dir, on_progress=on_progress, dataset=dataset)


def run_folder(out: Path | None, prefix: str = "cli") -> Path:
    """`out`, or a new folder of its own under home(); created now, so a path that cannot be a
    folder is refused before any training (SettingsError naming it)."""
    if out is None:
        from gradloss.service.store.runs import home
        out = home() / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise SettingsError(f"--out {out} is a file, not a folder: name a folder (new or "
                            "existing) for the results.") from exc
    except OSError as exc:
        raise SettingsError(f"--out {out} cannot be created: {exc.strerror or exc}. Name a folder "
                            "you can write.") from exc
    return out


def cmd_train(args) -> int:
    config = _train_config(args, args.objective)
    if args.submit:
        from gradloss.service.client import submit
        run_id = submit(config)
        print(f"queued run {run_id}; follow it with `python -m gradloss runs`")
        return 0
    run_dir = run_folder(args.out)
    use_backend(config.engine, config.deterministic)
    result = _train_with_bar(config, run_dir)
    print(json.dumps({"status": result.status, "model": str(result.model_path),
                      "device": result.device, **result.final}, indent=2))
    return 0


def _evaluation(args, by_default: bool) -> EvaluationConfig | None:
    """The corruptions and attacks to run after each noise sweep: --perturbations, else the
    dataset's full suite if `by_default` (reproduce), and none with --no-evaluate. Names are
    checked here, before Keras is imported (InvalidParameterError naming the allowed ones)."""
    names = getattr(args, "perturbations", None)
    if getattr(args, "no_evaluate", False) or not (names or by_default):
        return None
    evaluation = default_evaluation(args.dataset)
    return replace(evaluation, perturbations=tuple(names)) if names else evaluation


def _experiment_config(args, objectives, evaluation: EvaluationConfig | None) -> ExperimentConfig:
    return ExperimentConfig(arms=tuple(objectives), seeds=args.seeds, dataset=args.dataset,
                            train_size=args.train_size, epochs=args.epochs,
                            batch_size=getattr(args, "batch_size", None), engine=args.engine,
                            deterministic=args.deterministic,
                            reference=getattr(args, "reference", "baseline"), evaluation=evaluation)


def cmd_experiment(args) -> int:
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    spec = _experiment_config(args, objectives, _evaluation(args, by_default=False))
    sweep = SweepConfig(sigmas=REFERENCE_SIGMAS, draws=args.draws, seed=0)
    if args.submit:
        from gradloss.service.client import submit_experiment
        experiment_id = submit_experiment(spec)
        print(f"queued experiment {experiment_id}: {spec.n_runs} runs "
              f"({len(spec.arms)} arms x {len(spec.seeds)} seeds); follow it on the dashboard "
              "or with `python -m gradloss runs`")
        return 0
    out = run_folder(args.out or Path("results") / time.strftime("experiment-%Y%m%d-%H%M%S"))
    return _run_experiment(spec, sweep, out)


def _run_experiment(spec: ExperimentConfig, sweep: SweepConfig, out: Path) -> int:
    """Train and sweep every run of `spec` here, one after the other; print and write the summary."""
    use_backend(spec.engine, spec.deterministic)
    import pandas as pd

    from gradloss.analysis import experiments
    from gradloss.data import load_dataset
    from gradloss.perturbations.sweep import accuracy_vs_noise
    from gradloss.training.loop import load_model

    out.mkdir(parents=True, exist_ok=True)
    evaluation = EvaluationConfig.from_dict(spec.evaluation) if spec.evaluation else None
    rows, evaluated, data, data_seed, configs = [], [], None, None, spec.configs()
    for k, (arm, config) in enumerate(configs, 1):
        if data_seed != config.seed:  # seed-major: one load per seed
            data, data_seed = load_dataset(spec.dataset, train_size=spec.train_size,
                                           seed=config.seed), config.seed
        print(f"run {k} of {len(configs)}: arm {arm}, seed {config.seed}", flush=True)
        result = _train_with_bar(config, out / "runs" / f"{arm}-seed{config.seed}", dataset=data)
        model = load_model(result.model_path)
        curve = accuracy_vs_noise(model, data.x_test, data.y_test, sweep)
        rows += [{"arm": arm, "seed": config.seed, "sigma": sigma, "accuracy": accuracy}
                 for sigma, accuracy in zip(curve.sigma, curve.accuracy)]
        if evaluation is not None:
            evaluated.append(evaluate_seed(model, data, evaluation, arm, config.seed))
    per_seed = pd.DataFrame(rows)
    print(f"data: {data.source}; {len(data.x_train)} training images, {len(data.x_test)} test images")
    summary = experiments.summary_table(per_seed, spec.reference)
    print(stats.to_markdown(summary))
    for sigma in (0.1, 0.2):
        for sentence in experiments.sentences(summary, spec.reference, sigma):
            print(sentence)
    paths = experiments.write_exports(per_seed, summary, out)
    if evaluated:
        paths += experiment_perturbation_summary(pd.concat(evaluated, ignore_index=True),
                                                 spec.reference, out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_reproduce(args) -> int:
    evaluation = _evaluation(args, by_default=True)
    if args.seeds != 1:  # an experiment over seeds; intervals need at least 2
        spec = _experiment_config(args, OBJECTIVES, evaluation)
        out = run_folder(args.out or Path("results") / time.strftime("reproduce-%Y%m%d-%H%M%S"))
        return _run_experiment(spec, SweepConfig(sigmas=REFERENCE_SIGMAS, draws=args.draws), out)
    configs = [_train_config(args, objective) for objective in REFERENCE_ACCURACY]
    sweep = SweepConfig(sigmas=REFERENCE_SIGMAS, draws=args.draws, seed=0)
    out = run_folder(args.out or Path("results") / time.strftime("reproduce-%Y%m%d-%H%M%S"))
    use_backend(args.engine, args.deterministic)
    import pandas as pd

    from gradloss.data import load_dataset
    from gradloss.perturbations.sweep import accuracy_vs_noise

    data = load_dataset(args.dataset, train_size=args.train_size, seed=args.seed)
    print(f"data: {data.source}; {len(data.x_train)} training images, {len(data.x_test)} test images")
    tables, trained, models = {}, {}, {}
    for config in configs:
        result = _train_with_bar(config, out / config.objective, dataset=data)
        from gradloss.training.loop import load_model
        model = models[config.objective] = load_model(result.model_path)
        print(f"robustness sweep of the {config.objective} model ...", flush=True)
        tables[config.objective] = accuracy_vs_noise(model, data.x_test, data.y_test, sweep)
        trained[config.objective] = {"config": config.to_dict(), "seconds": result.seconds,
                                     "device": result.device, "model": str(result.model_path),
                                     **result.final}
    table = _side_by_side(tables, with_reference=args.dataset == "fashion_mnist")
    table.to_csv(out / "robustness.csv", index=False)
    (out / "results.json").write_text(json.dumps(
        {"dataset": data.source, "sweep": asdict(sweep), "runs": trained,
         "robustness": table.to_dict(orient="records"),
         "reference": {k: {str(s): a for s, a in v.items()} for k, v in REFERENCE_ACCURACY.items()}},
        indent=2))
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 120):
        print(table.to_string(index=False, na_rep="-"))
    for objective, run in trained.items():
        print(f"{objective}: {run['seconds']:.0f} s training, {run['step_ms']:.1f} ms/step "
              f"(last epoch) on {run['device']}")
    print(f"wrote {out / 'results.json'} and {out / 'robustness.csv'}")
    if evaluation is not None:
        reproduce_summary(models, data, tables, evaluation, out)
        print(f"wrote {out / 'evaluations.csv'} and {out / 'summary.csv'}")
    return 0


def _side_by_side(tables: dict, with_reference: bool):
    """One row per sigma: both models' accuracy (± std), their difference and the reference."""
    import pandas as pd

    g, b = (tables[objective] for objective in REFERENCE_ACCURACY)
    table = pd.DataFrame({"sigma": g.sigma, "gradient": g.accuracy, "gradient_std": g.accuracy_std,
                          "baseline": b.accuracy, "baseline_std": b.accuracy_std,
                          "difference": g.accuracy - b.accuracy})
    for objective in REFERENCE_ACCURACY if with_reference else ():
        table[f"reference_{objective}"] = table.sigma.map(REFERENCE_ACCURACY[objective])
    return table


def cmd_worker(args) -> int:
    if args.gpus is not None:
        from gradloss.service.fleet import run_fleet
        return run_fleet(args.gpus)
    from gradloss.service.consumer import run_consumer
    run_consumer()
    return 0


def app_folder() -> Path:
    """The folder holding dashboard.py: this checkout's root, or <prefix>/share/gradloss once installed."""
    for folder in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "gradloss"):
        if (folder / "dashboard.py").is_file():
            return folder
    raise GradlossError(f"The dashboard's files (dashboard.py, pages/) were found neither beside the "
                        f"gradloss package nor in {Path(sys.prefix) / 'share' / 'gradloss'}; "
                        "reinstall gradloss (`pip install .` from its repository).")


def cmd_dashboard(args, streamlit_args: list[str]) -> int:
    import subprocess

    from gradloss.service.store.runs import home
    folder = app_folder()
    # Streamlit reads .streamlit/config.toml from its working folder: run it in the app's, with
    # the run store kept where this command was started (GRADLOSS_HOME, else ./runs).
    env = dict(os.environ, GRADLOSS_HOME=str(home()))
    command = [sys.executable, "-m", "streamlit", "run", str(folder / "dashboard.py"), *streamlit_args]
    try:
        return subprocess.call(command, cwd=folder, env=env)
    except KeyboardInterrupt:
        return 0


def _last_test_accuracy(runs) -> dict:
    """Last recorded test accuracy of each run, by run id."""
    from gradloss.service.store.runs import RunStore
    if not runs:
        return {}
    table = RunStore.default().metrics([r.run_id for r in runs], name="test_accuracy")
    return table.sort_values("step").groupby("run_id").value.last().to_dict()


def _where(run) -> str:
    """host, or host:GPU index, of the machine that trains (trained) the run."""
    if run.host is None:
        return "-"
    return run.host if run.gpu is None else f"{run.host}:{run.gpu}"


def cmd_runs(args) -> int:
    from gradloss.service.store.runs import RunStore
    runs = RunStore.default().list_runs(limit=args.limit)
    if not runs:
        print("no runs yet; start one with `python -m gradloss train --dataset digits --submit`")
        return 0
    accuracy = _last_test_accuracy(runs)
    print(f"{'run':<24} {'status':<10} {'objective':<15} {'dataset':<14} {'progress':>8} "
          f"{'test acc':>8}  {'engine':<10} {'device':<24} where")
    for run in runs:
        done = (Progress.from_dict(run.progress).fraction if run.progress
                else 1.0 if run.status == "done" else 0.0)
        acc = f"{accuracy[run.run_id]:.4f}" if run.run_id in accuracy else "-"
        print(f"{run.run_id:<24} {run.status:<10} {run.objective:<15} {run.dataset:<14} "
              f"{done:>8.0%} {acc:>8}  {run.engine:<10} {run.device or '-':<24} {_where(run)}"
              + (f"  unreadable: {run.unreadable}" if run.unreadable else "")
              + (f"  error: {run.error}" if run.error else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "dashboard":
        return cmd_dashboard(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    command = {"train": cmd_train, "experiment": cmd_experiment, "reproduce": cmd_reproduce,
               "evaluate": cmd_evaluate, "worker": cmd_worker, "runs": cmd_runs}[args.command]
    try:
        return command(args)
    except InvalidParameterError as error:
        parser.error(str(error))  # prints usage and the message, exits with status 2
    except SettingsError as error:  # a setting to fix (ServiceUnavailable too: password masked)
        print(f"gradloss: error: {error}", file=sys.stderr)
        return 2
    except GradlossError as error:
        print(f"gradloss: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
