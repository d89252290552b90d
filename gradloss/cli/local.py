"""`gradloss train`, `experiment`, `frontier`, `search` and `reproduce`: plans run here through the
pipeline (progress on the terminal, results in a folder), or queued for the worker with --submit
(a search always is)."""
from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pandas as pd

from gradloss.core.config import (OBJECTIVES, REFERENCE_ACCURACY, REFERENCE_SIGMAS, SweepConfig,
                                  TrainConfig)
from gradloss.core.errors import SettingsError
from gradloss.core.evaluation import EvaluationConfig, default_evaluation
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.frontier import DEFAULT_EPOCHS, SYMBOLS
from gradloss.core.plan import RunPlan
from gradloss.core.validation import check_choice, fail
from gradloss.data import submission_data_dir


def run_folder(out: Path | None, prefix: str = "cli") -> Path:
    """`out`, or a new folder of its own under home(); created now, so a path that cannot be a
    folder is refused before any training (SettingsError naming it)."""
    if out is None:
        from gradloss.service.settings import home
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


class Sources:
    """The dataset and architecture the arguments name, described and checked once (a file is
    read and hashed, a .keras file loaded in a TensorFlow child), before anything trains."""

    def __init__(self, args):
        from gradloss.architectures import describe_architecture
        from gradloss.data import describe

        self.data = describe(args.dataset)
        logits = getattr(args, "logits", False)
        self.architecture = describe_architecture(getattr(args, "architecture", "cnn"),
                                                  self.data.shape, self.data.classes, logits)
        self.fields = {**self.data.config_fields(), **self.architecture.config_fields(
            getattr(args, "initial_weights", False), logits)}
        if self.architecture.sha256 is None:  # flags for a file, given with a built-in: refused
            self.fields.update(initial_weights=getattr(args, "initial_weights", False),
                               from_logits=logits)
        self.data_dir = self.data.path if self.data.sha256 else submission_data_dir(self.data.name)
        self.architecture_path = self.architecture.path

    def plan(self, config: TrainConfig, sweep: SweepConfig, evaluation) -> RunPlan:
        return RunPlan(config, sweep, evaluation, self.data_dir, self.architecture_path)


def _train_config(args, objective: str, sources: Sources) -> TrainConfig:
    return TrainConfig(objective=objective, **sources.fields, epochs=args.epochs,
                       batch_size=getattr(args, "batch_size", None),
                       learning_rate=getattr(args, "learning_rate", 1e-3),
                       train_size=args.train_size, seed=args.seed, engine=args.engine,
                       deterministic=args.deterministic,
                       train_noise_sigma=getattr(args, "train_noise_sigma", None),
                       penalty_weight=getattr(args, "penalty_weight", None))


def _sweep(args) -> SweepConfig:
    return SweepConfig(sigmas=REFERENCE_SIGMAS, draws=args.draws, seed=0)


def _evaluation(args, by_default: bool) -> EvaluationConfig | None:
    """The corruptions and attacks to run after each noise sweep: --perturbations, else the
    dataset's full suite if `by_default` (reproduce), and none with --no-evaluate. Names are
    checked here, before Keras is imported (InvalidParameterError naming the allowed ones)."""
    names = getattr(args, "perturbations", None)
    if getattr(args, "no_evaluate", False) or not (names or by_default):
        return None
    evaluation = default_evaluation(args.dataset)
    return replace(evaluation, perturbations=tuple(names)) if names else evaluation


def _run_here(plans: list[RunPlan], folders: list[Path], labels: list[str] | None = None,
              experiment: ExperimentConfig | None = None, arms: list[str] | None = None):
    """Train and measure `plans` in this process (progress bars, files in `folders`), each
    recorded in the run store as it goes (`local_runs.recorded`: the dashboard lists it, and
    can cancel it), under a new experiment `experiment` if given (plan i in arm arms[i])."""
    from gradloss.engines.backend import use_backend

    first = plans[0].train
    use_backend(first.engine, first.deterministic)
    from gradloss.pipeline.run import run
    from gradloss.pipeline.sinks import Fanout, FolderSink, TerminalSink
    from gradloss.service.local_runs import recorded

    with recorded(plans, experiment, arms, warn=lambda text: print(f"gradloss: {text}",
                                                                  file=sys.stderr)) as (store, ids):
        sinks = [TerminalSink(plans, labels), FolderSink(folders)] + ([store] if store else [])
        if ids:
            print(f"recorded in the run store as {', '.join(ids)} (the dashboard lists them)",
                  file=sys.stderr)
        return run(plans, Fanout(*sinks), folders)


def cmd_train(args) -> int:
    sources = Sources(args)
    plan = sources.plan(_train_config(args, args.objective, sources), _sweep(args),
                        _evaluation(args, by_default=False))
    if args.submit:
        from gradloss.service.client import submit
        run_id = submit(plan)
        print(f"queued run {run_id}; follow it with `python -m gradloss runs`")
        return 0
    run_dir = run_folder(args.out)
    from gradloss.pipeline.sinks import outcome_summary

    [outcome] = _run_here([plan], [run_dir])
    summary = outcome_summary(outcome)
    if outcome.sweep is not None:
        summary["accuracy_vs_sigma"] = dict(zip(map(str, outcome.sweep.sigma),
                                                map(float, outcome.sweep.accuracy)))
    print(json.dumps(summary, indent=2))
    return 0 if outcome.status == "done" else 1


def _experiment_config(args, objectives, evaluation: EvaluationConfig | None,
                       sources: Sources) -> ExperimentConfig:
    return ExperimentConfig(arms=tuple(objectives), seeds=args.seeds, **sources.fields,
                            train_size=args.train_size, epochs=args.epochs,
                            batch_size=getattr(args, "batch_size", None), engine=args.engine,
                            deterministic=args.deterministic,
                            reference=getattr(args, "reference", "baseline"),
                            evaluation=evaluation, sweep=_sweep(args))


def cmd_experiment(args) -> int:
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    sources = Sources(args)
    spec = _experiment_config(args, objectives, _evaluation(args, by_default=False), sources)
    if args.submit:
        from gradloss.service.client import submit_experiment
        experiment_id = submit_experiment(spec, data_dir=sources.data_dir,
                                          architecture_path=sources.architecture_path)
        print(f"queued experiment {experiment_id}: {spec.n_runs} runs "
              f"({len(spec.arms)} arms x {len(spec.seeds)} seeds); follow it on the dashboard "
              "or with `python -m gradloss runs`")
        return 0
    out = run_folder(args.out or Path("results") / time.strftime("experiment-%Y%m%d-%H%M%S"))
    return _run_experiment(spec, out, sources)


def _grids(entries: list[str]) -> dict[str, tuple[float, ...]]:
    """--grid OBJECTIVE=S1,S2,... values as {objective: strengths}; a malformed one is refused
    naming it (the strengths themselves are checked by core.frontier)."""
    grids = {}
    for entry in entries:
        objective, equals, values = entry.partition("=")
        try:
            grids[objective.strip()] = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            grids[objective.strip()] = None
        if not equals or not grids[objective.strip()]:
            fail("frontier", "grid", "OBJECTIVE=S1,S2,... (strengths as numbers, e.g. "
                 "input_gradient=0.01,0.1,1)", entry)
    return grids


def cmd_frontier(args) -> int:
    from gradloss.core.frontier import frontier_experiment

    names = [o.strip() for o in args.objectives.split(",") if o.strip()]
    for name in names or [""]:
        check_choice("frontier", "objectives", name, OBJECTIVES)
    sweep = _sweep(args)
    if not any(abs(args.sigma - s) < 1e-12 for s in sweep.sigmas if s > 0):
        fail("frontier", "sigma", f"one of the sweep's noise levels {list(sweep.sigmas[1:])}",
             args.sigma)
    sources = Sources(args)
    spec = frontier_experiment(names, _grids(args.grid), seeds=args.seeds,
                               epochs=args.epochs or DEFAULT_EPOCHS, batch_size=args.batch_size,
                               train_size=args.train_size, engine=args.engine,
                               deterministic=args.deterministic, sweep=sweep, **sources.fields)
    if args.submit:
        from gradloss.service.client import submit_experiment
        experiment_id = submit_experiment(spec, data_dir=sources.data_dir,
                                          architecture_path=sources.architecture_path)
        print(f"queued frontier {experiment_id}: {spec.n_runs} runs ({len(spec.arms)} arms x "
              f"{len(spec.seeds)} seeds); see it on the dashboard's Frontier page")
        return 0
    out = run_folder(args.out or Path("results") / time.strftime("frontier-%Y%m%d-%H%M%S"))
    return _run_experiment(spec, out, sources, frontier_sigma=args.sigma)


def cmd_search(args) -> int:
    from gradloss.core.search import SearchConfig
    from gradloss.service.search import submit_search

    sources = Sources(args)
    train = TrainConfig(objective=args.objective, **sources.fields,
                        epochs=args.epochs or DEFAULT_EPOCHS, batch_size=args.batch_size,
                        train_size=args.train_size, seed=args.seed, engine=args.engine,
                        deterministic=args.deterministic)
    spec = SearchConfig(train, low=args.low, high=args.high, log=not args.linear,
                        trials=args.trials, parallel=args.parallel, sigma=args.sigma,
                        sweep=_sweep(args))
    search_id = submit_search(spec, data_dir=sources.data_dir,
                              architecture_path=sources.architecture_path)
    print(f"queued strength search {search_id}: {spec.trials} trials of {spec.objective}, "
          f"{SYMBOLS[spec.parameter]} ({spec.parameter}) in [{spec.low:g}, {spec.high:g}] "
          f"({'log' if spec.log else 'linear'} scale), {spec.parallel} at a time; the worker "
          "trains them and the dashboard's Frontier page shows each as it finishes")
    return 0


def _print_frontier(spec: ExperimentConfig, per_seed: pd.DataFrame, sigma: float,
                    out: Path) -> list[Path]:
    """The frontier's points at `sigma` and its comparisons at equal clean accuracy: printed,
    and written as frontier_points.csv and frontier_comparisons.csv."""
    from gradloss.analysis.frontier import frontier
    from gradloss.core.frontier import arm_strengths

    found = frontier(per_seed, arm_strengths(spec), sigma)
    shown = found.points.assign(front=found.points.on_front.map({True: "*", False: ""}))
    print(f"\nFrontier at σ = {sigma:g} (mean over {int(shown.n.max()) if len(shown) else 0} "
          "seeds; * no other arm is better on both axes):")
    print(shown[["arm", "clean", "clean_low", "clean_high", "robust", "robust_low",
                 "robust_high", "front"]].to_string(index=False, float_format="%.4f"))
    for sentence in found.sentences():
        print(sentence)
    paths = [out / "frontier_points.csv", out / "frontier_comparisons.csv"]
    found.points.to_csv(paths[0], index=False)
    found.comparisons.to_csv(paths[1], index=False)
    return paths


def _run_experiment(spec: ExperimentConfig, out: Path, sources: Sources,
                    frontier_sigma: float | None = None) -> int:
    """Train and measure every run of `spec` here, one after the other; print and write the
    summary over the seeds (and, with `frontier_sigma`, the frontier at that σ)."""
    from gradloss.analysis import experiments, stats
    from gradloss.cli.evaluate import experiment_perturbation_summary

    arms_plans = spec.plans(sources.data_dir, sources.architecture_path)
    plans = [plan for _, plan in arms_plans]
    labels = [f"run {k} of {len(plans)}: arm {arm}, seed {plan.train.seed}"
              for k, (arm, plan) in enumerate(arms_plans, 1)]
    folders = [out / "runs" / f"{arm}-seed{plan.train.seed}" for arm, plan in arms_plans]
    outcomes = _run_here(plans, folders, labels, spec, [arm for arm, _ in arms_plans])
    rows, evaluated = [], []
    for (arm, plan), outcome in zip(arms_plans, outcomes):
        if outcome.sweep is not None:
            rows += [{"arm": arm, "seed": plan.train.seed, "sigma": s, "accuracy": a}
                     for s, a in zip(outcome.sweep.sigma, outcome.sweep.accuracy)]
        if outcome.evaluation is not None:
            evaluated.append(outcome.evaluation.assign(arm=arm, seed=plan.train.seed)[
                ["arm", "seed", "perturbation", "level", "accuracy"]])
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        print(f"{len(failed)} run(s) did not finish; the summary pairs the seeds that did.")
    per_seed = pd.DataFrame(rows, columns=["arm", "seed", "sigma", "accuracy"])
    per_seed = _complete_pairs(per_seed, spec.arm_names)
    perturbations = (_complete_pairs(pd.concat(evaluated, ignore_index=True), spec.arm_names)
                     if evaluated else None)
    found = experiments.summaries(per_seed, perturbations, spec.reference)
    print(stats.to_markdown(found.noise))
    for sigma in (0.1, 0.2):
        for sentence in experiments.sentences(found.noise, spec.reference, sigma):
            print(sentence)
    paths = experiments.write_exports(per_seed, found.noise, out)
    if perturbations is not None:
        paths += experiment_perturbation_summary(perturbations, found.headlines, out)
    if frontier_sigma is not None:
        paths += _print_frontier(spec, per_seed, frontier_sigma, out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _complete_pairs(per_seed: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """The rows of the seeds every arm finished (seeds are paired)."""
    seeds = [set(per_seed.seed[per_seed.arm == a]) for a in arms]
    paired = set.intersection(*seeds) if seeds else set()
    return per_seed[per_seed.seed.isin(paired)].reset_index(drop=True)


def cmd_reproduce(args) -> int:
    evaluation = _evaluation(args, by_default=True)
    sources = Sources(args)
    if args.seeds != 1:  # an experiment over seeds; intervals need at least 2
        spec = _experiment_config(args, OBJECTIVES, evaluation, sources)
        out = run_folder(args.out or Path("results") / time.strftime("reproduce-%Y%m%d-%H%M%S"))
        return _run_experiment(spec, out, sources)
    plans = [sources.plan(_train_config(args, objective, sources), _sweep(args), evaluation)
             for objective in REFERENCE_ACCURACY]
    out = run_folder(args.out or Path("results") / time.strftime("reproduce-%Y%m%d-%H%M%S"))
    outcomes = _run_here(plans, [out / p.train.objective for p in plans])
    for outcome in outcomes:
        if outcome.status != "done":
            print(f"{outcome.plan.train.objective}: {outcome.status}: {outcome.error}")
            return 1
    tables = {o.plan.train.objective: o.sweep for o in outcomes}
    table = _side_by_side(tables, with_reference=args.dataset == "fashion_mnist")
    table.to_csv(out / "robustness.csv", index=False)
    trained = {o.plan.train.objective: {"config": o.plan.train.to_dict(), "seconds": o.seconds,
                                        "device": o.device, "model": str(o.model_path),
                                        **o.final.to_dict()}
               for o in outcomes}
    (out / "results.json").write_text(json.dumps(
        {"dataset": plans[0].train.dataset_label, "pixel_scaling": sources.data.scaling,
         "architecture": plans[0].train.architecture_label,
         "sweep": plans[0].sweep.to_dict(), "runs": trained,
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
        from gradloss.cli.evaluate import reproduce_summary
        reproduce_summary(outcomes, out)
        print(f"wrote {out / 'evaluations.csv'} and {out / 'summary.csv'}")
    return 0


def _side_by_side(tables: dict, with_reference: bool) -> pd.DataFrame:
    """One row per sigma: both models' accuracy (± std), their difference and the reference."""
    g, b = (tables[objective] for objective in REFERENCE_ACCURACY)
    table = pd.DataFrame({"sigma": g.sigma, "gradient": g.accuracy, "gradient_std": g.accuracy_std,
                          "baseline": b.accuracy, "baseline_std": b.accuracy_std,
                          "difference": g.accuracy - b.accuracy})
    for objective in REFERENCE_ACCURACY if with_reference else ():
        table[f"reference_{objective}"] = table.sigma.map(REFERENCE_ACCURACY[objective])
    return table
