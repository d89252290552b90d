"""Command line: `gradloss {train,experiment,frontier,search,reproduce,evaluate,export,worker,runs,
dashboard}`
(or `python -m gradloss ...`).

Arguments are validated through the config classes before anything heavy is imported; a bad
value, an unusable GRADLOSS_HOME or --out folder, or a bad environment setting prints one
message and exits with status 2. Keras is imported only after KERAS_BACKEND is set from the
requested engine. Every command that trains or measures goes through the one pipeline
(`gradloss.pipeline`): `local` (train, experiment, reproduce), `evaluate`; `service` holds
the worker, the run listing and the dashboard; `export` sends stored results to MLflow or
TensorBoard.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gradloss.cli import evaluate, export, local, service
from gradloss.core.config import (ARCHITECTURES, DATASETS, ENGINES, OBJECTIVES,
                                  REFERENCE_PROTOCOL)
from gradloss.core.errors import (GradlossError, InputFileError, InvalidParameterError,
                                  SettingsError)
from gradloss.core.evaluation import PERTURBATIONS
from gradloss.core import frontier, search
from gradloss.core.experiment import MAX_SEEDS, MIN_SEEDS_INTERVAL
from gradloss.service.urls import scrub_environment, scrub_output

PERTURBATION_NAMES = tuple(PERTURBATIONS)


def folder(text: str) -> Path:
    """An --out value: a folder's path; an empty one would be the current folder, by accident."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder; got an empty string (write . for "
                                         "the current folder)")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradloss", description="Train image classifiers with the gradient loss or "
        "ordinary objectives and compare how robust each is to noise: here, or through the "
        "worker that the dashboard shows. Every run is kept in one home (GRADLOSS_HOME, else "
        "the user's data folder).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each epoch")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, objective=True, seed=True):
        if objective:
            p.add_argument("--objective", choices=OBJECTIVES, default="gradient")
        p.add_argument("--dataset", default="fashion_mnist", metavar="NAME_OR_PATH",
                       help=f"a built-in ({', '.join(DATASETS)}), a .npz file (x_train, y_train, "
                            "x_test, y_test) or an image folder (one sub-folder per class); "
                            "default fashion_mnist")
        p.add_argument("--architecture", default="cnn", metavar="NAME_OR_PATH",
                       help=f"a built-in ({', '.join(ARCHITECTURES)}; default cnn, the reference "
                            "CNN) or a .keras model file (loaded in safe mode; fresh weights "
                            "from each seed)")
        p.add_argument("--initial-weights", action="store_true",
                       help="a .keras architecture: start from its own weights, not fresh ones")
        p.add_argument("--logits", action="store_true",
                       help="a .keras architecture that outputs logits: append a softmax")
        p.add_argument("--epochs", type=int, help="default: the reference protocol's")
        p.add_argument("--train-size", type=int, help="stratified training subset (default: all)")
        if seed:
            p.add_argument("--seed", type=int, default=0)
        p.add_argument("--engine", choices=ENGINES, default="tensorflow")
        p.add_argument("--deterministic", action="store_true",
                       help="deterministic GPU kernels: bit-repeatable runs, slower GPU steps "
                            "(CPU runs repeat exactly either way)")

    def perturbations(p, default: str):
        p.add_argument("--perturbations", nargs="+", metavar="NAME",
                       help="corruptions and attacks on every run after its noise sweep, among "
                            f"{', '.join(PERTURBATION_NAMES[1:])} (default: {default})")

    train = sub.add_parser("train", help="train one model (here, or through the queue with --submit)")
    common(train)
    train.add_argument("--batch-size", type=int, help="default: the reference protocol's")
    train.add_argument("--train-noise-sigma", type=float,
                       help="noise_augmented only: sigma of the training noise (default: "
                            f"{REFERENCE_PROTOCOL['noise_augmented']['train_noise_sigma']})")
    train.add_argument("--penalty-weight", type=float,
                       help="input_gradient and mse_penalty only: lambda of the input-gradient "
                            "penalty (default: "
                            f"{REFERENCE_PROTOCOL['input_gradient']['penalty_weight']}; mse_penalty: "
                            "K²/4D, the gradient loss's)")
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--draws", type=int, default=3, help="noise draws per sigma")
    perturbations(train, "none")
    train.add_argument("--out", type=folder,
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
    exp.add_argument("--out", type=folder,
                     help="results folder (default: results/experiment-<time>)")
    perturbations(exp, "none")
    exp.add_argument("--submit", action="store_true", help="queue its runs for the background worker")

    front = sub.add_parser("frontier", help="objectives at several strengths under one protocol: "
                                            "clean against robust accuracy, compared at equal "
                                            "clean accuracy (here, or with --submit)")
    common(front, objective=False, seed=False)
    front.add_argument("--objectives", default=",".join(frontier.DEFAULT_OBJECTIVES),
                       help="comma-separated objectives (default: "
                            f"{','.join(frontier.DEFAULT_OBJECTIVES)})")
    front.add_argument("--grid", action="append", default=[], metavar="OBJECTIVE=S1,S2,...",
                       help="strengths of one objective (repeatable); default grids: " + "; ".join(
                           f"{o} {','.join(f'{v:g}' for v in g)}"
                           for o, g in frontier.DEFAULT_GRIDS.items()))
    front.add_argument("--seeds", type=int, default=3,
                       help=f"seeds 0..N-1, N in [{MIN_SEEDS_INTERVAL}, {MAX_SEEDS}] (default 3)")
    front.add_argument("--batch-size", type=int, default=frontier.DEFAULT_BATCH_SIZE,
                       help=f"every arm's (default {frontier.DEFAULT_BATCH_SIZE})")
    front.add_argument("--sigma", type=float, default=0.1,
                       help="the noise σ of the robust axis (default 0.1)")
    front.add_argument("--draws", type=int, default=3, help="noise draws per sigma")
    front.add_argument("--out", type=folder,
                       help="results folder (default: results/frontier-<time>)")
    front.add_argument("--submit", action="store_true", help="queue its runs for the background worker")

    hunt = sub.add_parser("search", help="Optuna searches one objective's strength, trading clean "
                                         "against robust accuracy; its trials are runs on the "
                                         "worker (queued, like --submit)")
    common(hunt, objective=False)
    hunt.add_argument("--objective", default="input_gradient",
                      choices=frontier.STRENGTH_OBJECTIVES,
                      help="the objective whose strength is searched (default input_gradient)")
    hunt.add_argument("--trials", type=int, default=search.DEFAULT_TRIALS,
                      help=f"runs in all, in [2, {search.MAX_TRIALS}] (default "
                           f"{search.DEFAULT_TRIALS})")
    hunt.add_argument("--low", type=float, help="the weakest strength tried (default: "
                      + "; ".join(f"{o} {lo:g}" for o, (lo, _) in search.DEFAULT_RANGES.items())
                      + ")")
    hunt.add_argument("--high", type=float, help="the strongest (default: " + "; ".join(
        f"{o} {hi:g}" for o, (_, hi) in search.DEFAULT_RANGES.items()) + ")")
    hunt.add_argument("--linear", action="store_true",
                      help="sample strengths on a linear scale (default: log)")
    hunt.add_argument("--parallel", type=int, default=1,
                      help="trials in flight at once, for several workers (default 1: each "
                           "trial knows every earlier result)")
    hunt.add_argument("--batch-size", type=int, default=frontier.DEFAULT_BATCH_SIZE,
                      help=f"every trial's (default {frontier.DEFAULT_BATCH_SIZE})")
    hunt.add_argument("--sigma", type=float, default=0.1,
                      help="the noise σ of the robust objective (default 0.1)")
    hunt.add_argument("--draws", type=int, default=3, help="noise draws per sigma")

    rep = sub.add_parser("reproduce", help="train every objective and compare robustness")
    common(rep, objective=False)
    rep.add_argument("--seeds", type=int, default=1,
                     help="1: one run per objective (default); N >= 2: seeds 0..N-1 with intervals")
    rep.add_argument("--batch-size", type=int, help="default: each objective's reference")
    rep.add_argument("--draws", type=int, default=3, help="noise draws per sigma")
    rep.add_argument("--out", type=folder,
                     help="results folder (default: results/reproduce-<time>)")
    perturbations(rep, "all; with --seeds N, each summarised over the seeds with intervals")
    rep.add_argument("--no-evaluate", action="store_true",
                     help="skip the corruptions and attacks (no summary table)")

    ev = sub.add_parser("evaluate", help="accuracy of a saved model (a .keras file or a run id) "
                                         "under noise, corruptions and attacks, as a summary table")
    ev.add_argument("model", help="a saved model.keras, or the id of a finished run in the store")
    ev.add_argument("--perturbations", nargs="+", metavar="NAME",
                    help=f"among {', '.join(PERTURBATION_NAMES)} (default: all but certified, "
                         "which costs about a training: name it to run it)")
    ev.add_argument("--dataset", metavar="NAME_OR_PATH",
                    help="test set: a built-in, a .npz file or an image folder (default: the "
                         "run's, or fashion_mnist for a model file)")
    ev.add_argument("--severities", nargs="+", type=int, metavar="S", help="corruption severities, 1-5")
    ev.add_argument("--epsilons", nargs="+", type=float, metavar="EPS",
                    help="attack budgets in [0, 1] (L-infinity, pixels in [0, 1])")
    ev.add_argument("--steps", type=int, help="PGD steps (default 10)")
    ev.add_argument("--attack-images", type=int, help="attacked test images (default: the "
                                                      "dataset's, as the worker attacks)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", type=folder, help="also write the rows and the summary as CSV here")

    out = sub.add_parser("export", help="stored runs and experiments out to MLflow or TensorBoard")
    trackers = out.add_subparsers(dest="tracker", required=True)
    to_mlflow = trackers.add_parser(
        "mlflow", help="each run an MLflow run, each experiment a parent run with its summary; "
                       "exporting again updates the same runs")
    to_mlflow.add_argument("--tracking-uri", help="MLflow tracking URI: http://HOST:PORT, "
                                                  "sqlite:///FILE, a folder, ... (default: "
                                                  "$GRADLOSS_MLFLOW_URI, else mlflow.db in "
                                                  "$GRADLOSS_HOME)")
    to_mlflow.add_argument("--mlflow-experiment", default="gradloss",
                           help="the MLflow experiment to export into (default: gradloss)")
    to_tensorboard = trackers.add_parser(
        "tensorboard", help="one TensorBoard log folder per run under DIR, with the HParams "
                            "table set up")
    to_tensorboard.add_argument("dir", type=Path, help="the log folder (tensorboard --logdir DIR)")
    for p in (to_mlflow, to_tensorboard):
        which = p.add_mutually_exclusive_group()
        which.add_argument("--experiment", metavar="ID", help="one experiment and its runs")
        which.add_argument("--runs", nargs="+", metavar="ID", help="these runs")

    worker = sub.add_parser("worker", help="run the background training worker (Huey consumer)")
    placement = worker.add_mutually_exclusive_group()
    placement.add_argument("--gpus", help="'all' or GPU indices such as 0,1: one worker per GPU, "
                                          "each pinned to its GPU (default: one worker)")
    placement.add_argument("--processes", type=int, metavar="N",
                           help="N CPU workers sharing the cores equally: more runs done per "
                                "hour when runs are small (a frontier, an experiment), each "
                                "slower (default: one worker, every core)")
    sub.add_parser("dashboard", help="start the Streamlit dashboard, as `streamlit run dashboard.py`; "
                                     "other arguments go to streamlit (e.g. --server.port 8502)")
    runs = sub.add_parser("runs", help="list the runs in the store")
    runs.add_argument("--limit", type=int, default=20)
    return parser


COMMANDS = {"train": local.cmd_train, "experiment": local.cmd_experiment,
            "frontier": local.cmd_frontier, "search": local.cmd_search,
            "reproduce": local.cmd_reproduce, "evaluate": evaluate.cmd_evaluate,
            "export": export.cmd_export,
            "worker": service.cmd_worker, "runs": service.cmd_runs}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "dashboard":
        return service.cmd_dashboard(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    scrub_output()  # logs and tracebacks never show the store's or the queue's password
    try:
        return COMMANDS[args.command](args)
    except InvalidParameterError as error:
        parser.error(scrub_environment(error))  # prints usage and the message, exits with status 2
    except InputFileError as error:  # a dataset or model file of the user's, refused
        print(f"gradloss: error: {scrub_environment(error)}", file=sys.stderr)
        return 2
    except SettingsError as error:  # a setting to fix (ServiceUnavailable too: password masked)
        print(f"gradloss: error: {scrub_environment(error)}", file=sys.stderr)
        return 2
    except GradlossError as error:
        print(f"gradloss: error: {scrub_environment(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
