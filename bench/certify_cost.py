"""Certifying one run against training it: randomized smoothing's CERTIFY at the worker's settings
(500 test images, 100 selection + 1000 estimation samples each) beside the training it certifies.

    python bench/certify_cost.py [--dataset fashion_mnist] [--epochs-timed 1]

In one process (TensorFlow, the reference CNN, the gradient loss at its reference protocol:
batch 100, 10 epochs): train `--epochs-timed` epochs and time them; the run's training is that
time scaled to its 10 epochs (every epoch does the same work; with `--epochs-timed 10`, measured
whole). Then certify the trained model at σ = 0.25 on the worker's stratified subset (`suite
.certified`, `core.evaluation.EvaluationConfig` defaults) and time it. Goal (issue #23): one
run's certification costs no more than one training of that run. Fashion-MNIST is read from
GRADLOSS_DATA_DIR (or ../shared/data/fashion-mnist); digits works offline, but its training is
tiny (1437 images) while CERTIFY's cost does not shrink with the training set.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, append_result, print_table  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "fashion-mnist"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--epochs-timed", type=int, default=1)
    args = p.parse_args()
    if args.dataset == "fashion_mnist" and "GRADLOSS_DATA_DIR" not in os.environ \
            and SHARED.is_dir():
        os.environ["GRADLOSS_DATA_DIR"] = str(SHARED)
    os.environ.setdefault("GRADLOSS_HOME", tempfile.mkdtemp(prefix="certify_cost-"))
    from gradloss.engines.backend import use_backend
    use_backend("tensorflow")
    import keras

    from gradloss.core.config import TrainConfig
    from gradloss.core.evaluation import EvaluationConfig
    from gradloss.data import load_dataset
    from gradloss.perturbations import suite
    from gradloss.training import loop

    config = TrainConfig(objective="gradient", dataset=args.dataset, epochs=args.epochs_timed)
    full_epochs = TrainConfig(objective="gradient", dataset=args.dataset).epochs
    folder = Path(tempfile.mkdtemp(prefix="certify_cost-run-"))
    started = time.perf_counter()
    loop.train(config, folder)
    trained = time.perf_counter() - started
    training = trained * full_epochs / args.epochs_timed
    model = keras.saving.load_model(folder / "model.keras", compile=False)
    data = load_dataset(args.dataset)
    evaluation = EvaluationConfig(perturbations=("certified",))
    started = time.perf_counter()
    rows = suite.certified(model, data.x_test, data.y_test, evaluation)
    certifying = time.perf_counter() - started
    n = int(rows.n_images.iloc[0])
    print(f"certified accuracy at radii {list(evaluation.radii)}: "
          f"{[round(float(a), 3) for a in rows.accuracy]} ({n} images)")
    table = [["training (the run's " + f"{full_epochs} epochs" + (
                  f", from {args.epochs_timed} timed" if args.epochs_timed != full_epochs else "")
              + ")", training, 1.0],
             [f"CERTIFY: {n} images x ({evaluation.smoothing_selection} + "
              f"{evaluation.smoothing_samples}) samples", certifying, certifying / training]]
    print()
    print_table(["what", "seconds", "/ training"], table)
    print(f"\ncertification / training = {certifying / training:.2f} (goal <= 1)")
    append_result("certify_cost", args, [{"training_s": training, "certify_s": certifying,
                                          "epochs_timed": args.epochs_timed, "images": n}], table)


if __name__ == "__main__":
    main()
