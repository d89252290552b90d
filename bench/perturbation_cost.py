"""Time and peak memory added by each perturbation family on the 10k Fashion-MNIST test set.

    python bench/perturbation_cost.py                   # a CNN trained 1 epoch on 10k images
    python bench/perturbation_cost.py --model runs/<id>/model.keras

Families, each measured alone in one TensorFlow subprocess: the Gaussian sweep (8 sigmas x 3
draws, the run's own), the 10 corruptions x 5 severities (all 10k images), FGSM, PGD and
Square at the 6 non-zero default eps (EvaluationConfig's 1000 attacked images), and the masking
check's extra PGD (default and strong, 200 images, one eps). Memory added is the peak RSS
sampled every 5 ms minus the RSS just before, as in sweep_cost.py. An untrained model would
flatter the attacks (Square stops on images already misclassified), so the default model is
trained briefly; the suite's total is compared with training the gradient loss on the
reference protocol (675 s on 2 CPU cores, README).
"""
from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

MEMORY_TARGET_MB = 300
REFERENCE_TRAINING_S = 675  # the gradient loss, reference protocol, 2 CPU cores (README)
MB = 2 ** 20


def _model(model_path, ds):
    import keras

    from gradloss.models import build_cnn
    from gradloss.training.loop import load_model

    if model_path:
        return load_model(model_path)
    keras.utils.set_random_seed(0)
    model = build_cnn(ds.x_test.shape[1:], ds.y_test.shape[1])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=1, batch_size=32, verbose=0)
    return model


def _families(model, ds, config):
    """(family name, zero-argument function measuring it)."""
    from gradloss.core.config import SweepConfig
    from gradloss.perturbations import suite
    from gradloss.core.evaluation import of_kind
    from gradloss.perturbations.sweep import accuracy_vs_noise

    x, y = ds.x_test, ds.y_test

    def only(*names, **changes):
        from dataclasses import replace
        return lambda: suite.evaluate(model, x, y, replace(config, perturbations=names,
                                                           **changes))[0]

    def masking():
        from gradloss.core.evaluation import EvaluationConfig
        return suite.masking_check(model, x, y, EvaluationConfig(perturbations=("pgd",)),
                                   lambda *a: None)

    return [("gaussian sweep", lambda: accuracy_vs_noise(model, x, y, SweepConfig())),
            ("corruptions", only(*of_kind("corruption"))),
            ("fgsm", only("fgsm")), ("pgd", only("pgd")), ("square", only("square")),
            ("masking check", masking)]


def measure(model_path, data_dir) -> dict:
    from gradloss.data import load_dataset
    from gradloss.engines.compiled import predict
    from gradloss.core.evaluation import EvaluationConfig

    ds = load_dataset("fashion_mnist", data_dir=data_dir, train_size=10_000)  # test set is whole
    model = _model(model_path, ds)
    predict(model, ds.x_test[:500])
    out = {"images": len(ds.x_test), "model": model_path or "trained 1 epoch on 10k",
           "families": []}
    for name, run in _families(model, ds, EvaluationConfig()):
        print(f"  {name} ...", file=sys.stderr, flush=True)
        gc.collect()
        before, load = _common.rss_bytes(), os.getloadavg()[0]
        with _common.RssSampler() as sampler:
            t0 = time.perf_counter()
            table = run()
            seconds = time.perf_counter() - t0
        if isinstance(table, list):  # the masking check's flags
            acc = table
        elif "perturbation" in table.columns:
            acc = table.groupby("perturbation").accuracy.mean().round(4).to_dict()
        else:
            acc = {"mean over sigmas": round(float(table.accuracy.mean()), 4)}
        out["families"].append({"family": name, "seconds": seconds, "load_before": load,
                                "added_mb": (sampler.peak - before) / MB,
                                "process_cpu_s": time.process_time(), "mean_accuracy": acc})
    return out


def report(outcomes: list[dict]) -> list[list]:
    o = outcomes[0]
    rows = [[f["family"], f["seconds"], f["added_mb"], f["load_before"]] for f in o["families"]]
    _common.print_table(["family", "seconds", "added MB", "load avg before"], rows)
    suite = sum(f["seconds"] for f in o["families"] if f["family"] != "gaussian sweep")
    worst = max(f["added_mb"] for f in o["families"])
    print(f"\nfull suite after the sweep (corruptions, 3 attacks, masking check): {suite:.0f} s "
          f"against {REFERENCE_TRAINING_S} s of gradient-loss training on the reference protocol")
    print(f"largest memory added {worst:.0f} MB (target < {MEMORY_TARGET_MB} MB: "
          f"{'met' if worst < MEMORY_TARGET_MB else 'missed'})")
    for f in o["families"]:
        print(f"{f['family']}: {f['mean_accuracy']}")
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.set_defaults(engines="tensorflow")  # as the pipeline evaluates: in a TensorFlow process
    parser.add_argument("--model", help="a saved model.keras (default: trained 1 epoch here)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST files")
    args = parser.parse_args(argv)
    if args.engine:
        _common.use_backend(args.engine)
        _common.emit_child_result(measure(args.model, args.data_dir))
        return
    child_args = ["--model", str(Path(args.model).resolve())] if args.model else []
    child_args += ["--data-dir", str(Path(args.data_dir).resolve())] if args.data_dir else []
    outcomes = _common.run_engines(__file__, "tensorflow", child_args, "evaluating")
    _common.conclude("perturbation_cost", args, outcomes, report)


if __name__ == "__main__":
    main()
