"""Time and peak memory of the robustness sweep on the 10k Fashion-MNIST test set.

    python bench/sweep_cost.py                      # every installed engine, untrained CNN
    python bench/sweep_cost.py --engines tensorflow --model runs/<id>/model.keras

Runs `perturbations.sweep.accuracy_vs_noise` (8 reference sigmas x 3 draws, as the dashboard does) once
per engine, each in its own subprocess so the memory figures are that process's alone. Memory
added by the sweep is the peak resident set size sampled every 5 ms during the sweep, minus the
RSS just before it (data and model loaded, prediction compiled); tracemalloc's peak shows the
part that is NumPy/Python buffers. The sweep's time is also given in clean passes: one
prediction over the whole test set, timed in the same process just before.
Figures do not depend on the weights, so an untrained CNN is the default; --model gives
accuracies that mean something.
"""
from __future__ import annotations

import gc
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

MEMORY_TARGET_MB = 300  # peak memory the sweep may add, from the issue
MB = 2 ** 20


def measure(engine: str, model_path: str | None, data_dir: str | None, draws: int,
            batch_size: int) -> dict:
    """Sweep once in this process (Keras on `engine`); return time and memory figures."""
    import keras
    import numpy as np

    from gradloss.core.config import REFERENCE_SIGMAS, SweepConfig
    from gradloss.data import load_dataset
    from gradloss.engines.compiled import predict
    from gradloss.models import build_cnn
    from gradloss.perturbations.sweep import accuracy_vs_noise
    from gradloss.training.loop import load_model

    ds = load_dataset("fashion_mnist", data_dir=data_dir, train_size=10)  # test set is whole
    if model_path:
        model = load_model(model_path)
    else:
        keras.utils.set_random_seed(0)
        model = build_cnn(ds.x_test.shape[1:], ds.y_test.shape[1])
    predict(model, ds.x_test[:batch_size], batch_size)  # compile/warm up outside the measurement
    t0 = time.perf_counter()
    predict(model, ds.x_test, batch_size)
    clean_pass_s = time.perf_counter() - t0

    gc.collect()
    rss_before = _common.rss_bytes()
    tracemalloc.start()
    with _common.RssSampler() as sampler:
        t0 = time.perf_counter()
        curve = accuracy_vs_noise(model, ds.x_test, ds.y_test,
                                  SweepConfig(REFERENCE_SIGMAS, draws=draws, seed=0, batch_size=batch_size))
        seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"engine": engine, "model": model_path or "untrained", "images": len(ds.x_test),
            "sigmas": len(REFERENCE_SIGMAS), "draws": draws, "batch_size": batch_size,
            "seconds": seconds, "clean_pass_s": clean_pass_s,
            "rss_before_mb": rss_before / MB, "rss_peak_mb": sampler.peak / MB,
            "added_mb": (sampler.peak - rss_before) / MB, "tracemalloc_peak_mb": traced_peak / MB,
            # Linux reports ru_maxrss in KiB: the process's peak over its whole life
            "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "accuracy": dict(zip(map(str, curve["sigma"]), np.round(curve["accuracy"], 4)))}


def report(outcomes: list[dict]) -> list[list]:
    """Print the table of time and memory; return its rows."""
    rows = [[o["engine"], o["seconds"], o["clean_pass_s"], o["seconds"] / o["clean_pass_s"],
             o["rss_before_mb"], o["rss_peak_mb"], o["added_mb"], o["tracemalloc_peak_mb"]]
            for o in outcomes]
    _common.print_table(["engine", "sweep s", "clean pass s", "sweep/clean pass", "RSS before MB",
                         "RSS peak MB", "added MB", "tracemalloc peak MB"], rows)
    o = outcomes[0]
    passes = (o["sigmas"] - 1) * o["draws"] + 1  # sigma 0 is predicted once, not per draw
    print(f"\n{o['sigmas']} sigmas x {o['draws']} draws over {o['images']} images: "
          f"{passes} prediction passes, so sweep/clean pass near {passes} means noise costs little.")
    worst = max(r[6] for r in rows)
    print(f"largest memory added {worst:.0f} MB (target < {MEMORY_TARGET_MB} MB: "
          f"{'met' if worst < MEMORY_TARGET_MB else 'missed'})")
    for out in outcomes:
        print(f"{out['engine']} accuracy by sigma ({out['model']}): {out['accuracy']}")
    return rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--model", help="a saved model.keras to sweep (default: untrained CNN)")
    parser.add_argument("--data-dir", help="folder with the Fashion-MNIST files "
                                           "(default: $GRADLOSS_DATA_DIR, then the Keras cache)")
    parser.add_argument("--draws", type=int, default=3, help="noise draws per sigma")
    parser.add_argument("--batch-size", type=int, default=500, help="prediction batch")
    args = parser.parse_args(argv)
    if args.engine:
        _common.use_backend(args.engine)
        _common.emit_child_result(measure(args.engine, args.model, args.data_dir, args.draws,
                                          args.batch_size))
        return

    child_args = ["--draws", str(args.draws), "--batch-size", str(args.batch_size)]
    child_args += ["--model", str(Path(args.model).resolve())] if args.model else []
    child_args += ["--data-dir", str(Path(args.data_dir).resolve())] if args.data_dir else []
    outcomes = _common.run_engines(__file__, args.engines, child_args, "sweeping")
    _common.conclude("sweep_cost", args, outcomes, report)


if __name__ == "__main__":
    main()
