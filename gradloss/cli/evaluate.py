"""`gradloss evaluate MODEL_OR_RUN`, and the perturbation summaries `reproduce` and `experiment`
print.

Arguments become an EvaluationConfig (validated before Keras is imported: a bad value exits
with status 2). A run id evaluates that run's saved model and stores the results with it, as the
worker would; a .keras file is measured here through the pipeline and only printed (and written
with --out).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradloss.core.config import SweepConfig
from gradloss.core.errors import GradlossError, InvalidParameterError
from gradloss.core.evaluation import (DEFAULT_EVALUATED, GAUSSIAN, PERTURBATIONS,
                                      SMALL_DATASET_EVALUATION, EvaluationConfig)
from gradloss.core.validation import check_choice
from gradloss.pipeline.sinks import Sink


def evaluation_config(args, dataset: str) -> tuple[bool, EvaluationConfig]:
    """(whether to sweep Gaussian noise, the rest as an EvaluationConfig) from the arguments;
    what is not given is the dataset's default, as the worker and `reproduce` use."""
    names = args.perturbations or [GAUSSIAN, *DEFAULT_EVALUATED]  # as the worker's suite
    for name in names:
        check_choice("evaluate", "perturbations", name, tuple(PERTURBATIONS))
    given = {"severities": args.severities, "epsilons": args.epsilons, "steps": args.steps,
             "attack_images": args.attack_images}
    defaults = SMALL_DATASET_EVALUATION.get(dataset, {})
    config = EvaluationConfig(perturbations=tuple(n for n in names if n != GAUSSIAN),
                              seed=args.seed, **{**defaults, **{k: v for k, v in given.items()
                                                                if v is not None}})
    return GAUSSIAN in names, config


def _print(table: pd.DataFrame) -> None:
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 140,
                           "display.max_rows", 500):
        print(table.to_string(index=False, na_rep="-"))


def cmd_evaluate(args) -> int:
    path = Path(args.model)
    looks_like_file = path.suffix == ".keras" or "/" in args.model
    if looks_like_file and not path.is_file():  # bad input: exit 2, as any bad argument
        raise InvalidParameterError(f"No model file {path}: give a saved .keras file or the id "
                                    "of a finished run (`gradloss runs` lists them).")
    if not looks_like_file:
        evaluation_config(args, args.dataset or "fashion_mnist")  # refuse bad values first
        return _evaluate_run(args)
    from gradloss.data import describe, submission_data_dir

    info = describe(args.dataset or "fashion_mnist")  # a bad file is refused here (exit 2)
    sweep_noise, config = evaluation_config(args, info.name)
    from gradloss.engines.backend import use_backend

    use_backend("tensorflow")  # every model is measured on TensorFlow; JAX-saved models load too
    from gradloss.analysis import summary
    from gradloss.models import user
    from gradloss.pipeline.run import measure

    try:
        import keras
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001  (any unreadable file)
        raise GradlossError(f"Could not load a Keras model from {path}: {exc}") from exc
    user.check(model, path, info.shape, info.classes)  # it must fit the test set's images
    data_dir = info.path if info.sha256 else submission_data_dir(info.name)
    outcome = measure(path, info.name, _Lines(), sweep=SweepConfig() if sweep_noise else None,
                      evaluation=config if config.perturbations else None,
                      grid_seed=SweepConfig().seed, data_dir=data_dir, sha256=info.sha256)
    frames = []
    if outcome.sweep is not None:
        frames.append(summary.results(outcome.sweep.assign(run_id=path.stem), pd.DataFrame()))
    if outcome.evaluation is not None:
        frames.append(outcome.evaluation.assign(run_id=path.stem)[summary.RESULT_COLUMNS])
    if outcome.evaluation_status == "failed":
        raise GradlossError(f"The evaluation failed: {outcome.evaluation_error}")
    _report(pd.concat(frames, ignore_index=True), outcome.masking_flags, args.out)
    return 0


class _Lines(Sink):
    """A sink printing a line per finished evaluation step (no bars: one model, no training)."""

    def evaluation_progress(self, i, progress) -> None:
        if progress.sweep_total and progress.sweep_done == progress.sweep_total:
            print(f"{progress.phase}: done", flush=True)


def _evaluate_run(args) -> int:
    from gradloss.service.store import Store

    store = Store.default()
    run = store.runs.get(args.model)  # RunNotFound names the id and the store
    if run.status != "done" or not run.model_path:
        raise GradlossError(f"Run {run.run_id} is {run.status}; only a finished run with a "
                            "saved model can be evaluated.")
    if args.dataset and args.dataset not in (run.dataset, run.config and run.config.dataset):
        raise GradlossError(f"Run {run.run_id} was trained on {run.dataset}; evaluate a saved "
                            f"model file to test it on {args.dataset}.")
    sweep_noise, config = evaluation_config(args, run.dataset)
    from gradloss.engines.backend import use_backend
    use_backend("tensorflow")
    from gradloss.analysis import summary
    from gradloss.service.evaluator import evaluate_stored

    if config.perturbations:
        store.evaluations.plan(run.run_id, config)
        evaluate_stored(run.run_id, store)
    rows = summary.results(store.results.robustness(run.run_id) if sweep_noise else pd.DataFrame(
        columns=["run_id", "sigma", "accuracy", "accuracy_std"]),
        store.evaluations.rows(run.run_id))
    rows = rows[rows.perturbation.isin([GAUSSIAN] * sweep_noise + list(config.perturbations))]
    plan = store.evaluations.plan_of(run.run_id)
    if plan is not None and plan.status == "failed":
        raise GradlossError(f"The evaluation of run {run.run_id} failed: {plan.error}")
    _report(rows, None if plan is None else plan.masking_flags, args.out)
    return 0


def _report(rows: pd.DataFrame, flags, out: Path | None) -> None:
    from gradloss.analysis import summary

    table = summary.summarize_runs(rows).drop(columns="run_id")
    print()
    _print(table)
    for flag in flags or []:
        print(f"possible gradient masking: {flag}")
    if flags is not None and not flags:
        print("gradient-masking check: nothing flagged")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        rows.to_csv(out / "evaluations.csv", index=False)
        table.to_csv(out / "summary.csv", index=False)
        print(f"wrote {out / 'evaluations.csv'} and {out / 'summary.csv'}")


def experiment_perturbation_summary(per_seed: pd.DataFrame, headlines: pd.DataFrame,
                                    out: Path) -> list[Path]:
    """Print each perturbation's headline over the seeds (mean, 95 % interval, the paired
    difference to the reference arm and its adjusted p-value, as on the dashboard's
    Experiments tab) and write the per-seed rows and that summary as CSV in `out`; returns the
    paths written."""
    from gradloss.analysis.report import overview_table

    print("\ncorruptions and attacks, each at its headline (95 % intervals over the seeds):")
    _print(overview_table(headlines)[0])
    paths = [out / "perturbations_per_seed.csv", out / "perturbations_summary.csv"]
    per_seed.to_csv(paths[0], index=False)
    headlines.to_csv(paths[1], index=False)
    return paths


def reproduce_summary(outcomes, out: Path) -> pd.DataFrame:
    """The side-by-side summary of `reproduce`'s models (headline accuracy, AUC, difference,
    mCE relative to the baseline), printed and written with the rows; returns it."""
    from gradloss.analysis import summary

    frames = []
    for outcome in outcomes:
        name = outcome.plan.train.objective
        frames.append(summary.results(outcome.sweep.assign(run_id=name), pd.DataFrame()))
        if outcome.evaluation is not None:
            frames.append(outcome.evaluation.assign(run_id=name)[summary.RESULT_COLUMNS])
    rows = pd.concat(frames, ignore_index=True)
    labels = {o.plan.train.objective: (o.plan.train.objective, o.plan.train.objective)
              for o in outcomes}
    table = summary.comparison_table(rows, labels, reference="baseline")
    rows.to_csv(out / "evaluations.csv", index=False)
    table.to_csv(out / "summary.csv", index=False)
    print()
    _print(table)
    return table
