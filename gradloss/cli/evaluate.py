"""The CLI's evaluations: `gradloss evaluate MODEL_OR_RUN`, and the summary `reproduce` prints.

Arguments become an EvaluationConfig (validated before Keras is imported: a bad value exits
with status 2). A run id evaluates that run's saved model and stores the results with it, as
the worker would; a .keras file is evaluated here and only printed (and written with --out).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradloss.core.config import SweepConfig
from gradloss.perturbations.family import GAUSSIAN, PERTURBATIONS, EvaluationConfig
from gradloss.core.validation import check_choice


def evaluation_config(args) -> tuple[bool, EvaluationConfig]:
    """(whether to sweep Gaussian noise, the rest as an EvaluationConfig) from the arguments."""
    names = args.perturbations or list(PERTURBATIONS)
    for name in names:
        check_choice("evaluate", "perturbations", name, tuple(PERTURBATIONS))
    given = {"severities": args.severities, "epsilons": args.epsilons, "steps": args.steps,
             "attack_images": args.attack_images}
    config = EvaluationConfig(perturbations=tuple(n for n in names if n != GAUSSIAN),
                              seed=args.seed, **{k: v for k, v in given.items() if v is not None})
    return GAUSSIAN in names, config


def _say_done(phase: str, done: int, total: int) -> None:
    if done == total:
        print(f"{phase}: done", flush=True)


def _print(table: pd.DataFrame) -> None:
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 140,
                           "display.max_rows", 500):
        print(table.to_string(index=False, na_rep="-"))


def _evaluate_model(model, ds, sweep_noise: bool, config: EvaluationConfig, run_id: str):
    """(RESULT_COLUMNS rows, masking flags) of one model, with a line per finished step."""
    from gradloss.perturbations import suite
    from gradloss.analysis import summary
    from gradloss.perturbations.sweep import accuracy_vs_noise

    frames = []
    if sweep_noise:
        print("Gaussian noise sweep ...", flush=True)
        noise = accuracy_vs_noise(model, ds.x_test, ds.y_test, SweepConfig())
        frames.append(summary.results(noise.assign(run_id=run_id), pd.DataFrame()))
    table, flags = suite.evaluate(model, ds.x_test, ds.y_test, config, on_progress=_say_done)
    frames.append(table.assign(run_id=run_id)[summary.RESULT_COLUMNS])
    return pd.concat([f for f in frames if len(f)], ignore_index=True), flags


def cmd_evaluate(args) -> int:
    from gradloss.engines.backend import use_backend
    from gradloss.core.errors import GradlossError

    sweep_noise, config = evaluation_config(args)
    path = Path(args.model)
    if not path.is_file():
        return _evaluate_run(args, sweep_noise, config)
    use_backend("tensorflow")  # ART attacks Keras models on TensorFlow; JAX-saved models load too
    from gradloss.data import load_dataset
    from gradloss.training.loop import load_model

    try:
        model = load_model(path)
    except Exception as exc:  # noqa: BLE001  (any unreadable file)
        raise GradlossError(f"Could not load a Keras model from {path}: {exc}") from exc
    ds = load_dataset(args.dataset or "fashion_mnist", train_size=10)  # the test set is whole
    rows, flags = _evaluate_model(model, ds, sweep_noise, config, path.stem)
    _report(rows, flags, args.out)
    return 0


def _evaluate_run(args, sweep_noise: bool, config: EvaluationConfig) -> int:
    from gradloss.core.errors import GradlossError
    from gradloss.service.store.runs import RunStore

    store = RunStore.default()
    run = store.get_run(args.model)  # RunNotFound names the id and the store
    if run.status != "done" or not run.model_path:
        raise GradlossError(f"Run {run.run_id} is {run.status}; only a finished run with a "
                            "saved model can be evaluated.")
    if args.dataset and args.dataset != run.dataset:
        raise GradlossError(f"Run {run.run_id} was trained on {run.dataset}; evaluate a saved "
                            f"model file to test it on {args.dataset}.")
    from gradloss.engines.backend import use_backend
    use_backend("tensorflow")
    from gradloss.analysis import summary
    from gradloss.service.evaluator import evaluate_stored

    if config.perturbations:
        store.plan_evaluation(run.run_id, config.to_dict())
        evaluate_stored(run.run_id, store,
                        on_progress=lambda p: _say_done(p.phase, p.sweep_done, p.sweep_total))
    rows = summary.results(store.robustness(run.run_id) if sweep_noise else pd.DataFrame(
        columns=["run_id", "sigma", "accuracy", "accuracy_std"]), store.evaluations(run.run_id))
    rows = rows[rows.perturbation.isin([GAUSSIAN] * sweep_noise + list(config.perturbations))]
    plan = store.evaluation_plan(run.run_id)
    _report(rows, plan.masking_flags if plan else None, args.out)
    return 0


def _report(rows: pd.DataFrame, flags, out: Path | None) -> None:
    from gradloss.analysis import summary

    table = summary.summarize_runs(rows).drop(columns="run_id")
    print()
    _print(table)
    for flag in flags or []:
        print(f"possible gradient masking: {flag}")
    if flags == []:
        print("gradient-masking check: nothing flagged")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        rows.to_csv(out / "evaluations.csv", index=False)
        table.to_csv(out / "summary.csv", index=False)
        print(f"wrote {out / 'evaluations.csv'} and {out / 'summary.csv'}")


def evaluate_seed(model, ds, config: EvaluationConfig, arm: str, seed: int) -> pd.DataFrame:
    """One experiment run's corruptions and attacks: columns arm, seed (the training seed),
    perturbation, level, accuracy; masking flags are printed."""
    from gradloss.perturbations import suite

    print(f"corruptions and attacks on arm {arm}, seed {seed} ...", flush=True)
    table, flags = suite.evaluate(model, ds.x_test, ds.y_test, config, on_progress=_say_done)
    for flag in flags or []:
        print(f"arm {arm}, seed {seed}: possible gradient masking: {flag}")
    return table.assign(arm=arm, seed=seed)[["arm", "seed", "perturbation", "level", "accuracy"]]


def experiment_perturbation_summary(per_seed: pd.DataFrame, reference: str, out: Path) -> list[Path]:
    """Print each perturbation's headline over the seeds (mean, 95 % interval and the paired
    difference to `reference`, as on the dashboard's Experiments tab) and write the per-seed
    rows and that summary as CSV in `out`; returns the paths written."""
    from gradloss.ui.experiment_views import overview_table
    from gradloss.analysis import summary

    headlines = summary.headline_summary(per_seed, reference)
    print("\ncorruptions and attacks, each at its headline (95 % intervals over the seeds):")
    _print(overview_table(headlines)[0])
    paths = [out / "perturbations_per_seed.csv", out / "perturbations_summary.csv"]
    per_seed.to_csv(paths[0], index=False)
    headlines.to_csv(paths[1], index=False)
    return paths


def reproduce_summary(models: dict, ds, noise: dict, config: EvaluationConfig, out: Path):
    """Evaluate each trained model ({objective: model}) and print the side-by-side summary
    (headline accuracy, AUC, difference, mCE relative to the baseline); returns it."""
    from gradloss.ui import perturbation_views
    from gradloss.analysis import summary

    frames, flags = [], {}
    for objective, model in models.items():
        print(f"corruptions and attacks on the {objective} model ...", flush=True)
        rows, flags[objective] = _evaluate_model(model, ds, False, config, objective)
        sweep = summary.results(noise[objective].assign(run_id=objective), pd.DataFrame())
        frames += [sweep, rows]
    rows = pd.concat(frames, ignore_index=True)
    labels = {o: (o, o) for o in models}
    table = perturbation_views.summary_table(rows, labels, reference="baseline")
    rows.to_csv(out / "evaluations.csv", index=False)
    table.to_csv(out / "summary.csv", index=False)
    print()
    _print(table)
    for objective, sentences in flags.items():
        for flag in sentences or []:
            print(f"{objective}: possible gradient masking: {flag}")
    return table, flags
