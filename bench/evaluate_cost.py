"""`gradloss evaluate` on a digits model against training that model, before and after, in one run.

    python bench/evaluate_cost.py                     # 2 rounds, before = main before issue 26
    python bench/evaluate_cost.py --rounds 3 --before <commit>

The yardstick is the training of the model evaluated: `gradloss train --dataset digits` (the
gradient loss, its reference protocol: 10 epochs, batch 100, on 1437 images) as a whole process.
Each round then runs `gradloss evaluate model.keras --dataset digits` (every perturbation at the
digits settings the worker uses, `core.evaluation.default_evaluation`) from the code of commit
`--before` (extracted under bench/.trees/) and from the working tree, in rotated order so that
load on the machine hits them alike. Per process: wall seconds, CPU seconds, peak memory.

Then, once per tree, in-process, what each family costs (the Gaussian sweep, the corruptions,
FGSM, PGD, Square, the masking check's strong PGD), and the accuracies each family gives: the
attacks' must agree within their random-start noise (FGSM exactly), the rest be identical.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BEFORE = "8e7bcb9"  # main before issue 26: attacks through ART, eager input-gradient norm
TARGET = 1.0        # the evaluation within one training of the same model

# In a tree's own code: each family of the digits suite alone, timed; printed as JSON.
FAMILIES = r'''
import json, sys, time
from dataclasses import replace
from gradloss.engines.backend import use_backend
use_backend("tensorflow")
import keras
from gradloss.core.config import SweepConfig
from gradloss.core.evaluation import default_evaluation, of_kind
from gradloss.data import load_dataset
from gradloss.perturbations import suite
from gradloss.perturbations.sweep import accuracy_vs_noise

model = keras.saving.load_model(sys.argv[1], compile=False)
ds = load_dataset("digits")
x, y = ds.x_test, ds.y_test
config = default_evaluation("digits")
suite.evaluate(model, x[:50], y[:50], replace(config, perturbations=("fgsm",)))  # warm-up
out = []

def timed(name, run):
    t0, c0 = time.perf_counter(), time.process_time()
    table = run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if isinstance(table, list):
        accuracy = [str(flag) for flag in table]
    else:
        accuracy = [round(float(a), 4) for a in table.accuracy]
    out.append({"family": name, "seconds": seconds, "cpu_s": cpu, "accuracy": accuracy})
    print(f"  {name}: {seconds:.1f} s", file=sys.stderr, flush=True)

timed("gaussian sweep", lambda: accuracy_vs_noise(model, x, y, SweepConfig()))
names = [n for n in config.perturbations if n not in ("gaussian",)]
corruptions = tuple(n for n in names if n in of_kind("corruption"))
timed("corruptions", lambda: suite.evaluate(model, x, y, replace(
    config, perturbations=corruptions))[0])
for attack in ("fgsm", "pgd", "square"):
    if attack in names:
        timed(attack, lambda: suite.evaluate(model, x, y, replace(
            config, perturbations=(attack,)))[0])
timed("masking check", lambda: suite.masking_check(
    model, x, y, replace(config, perturbations=("pgd",)), lambda *a: None))
print(json.dumps(out))
'''


def measure(args) -> dict:
    trees = {"before": _common.checkout(args.before), "after": _common.REPO}
    home = Path(tempfile.mkdtemp(prefix="evaluate_cost-"))
    env = dict(os.environ, GRADLOSS_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="3")
    model_dir = home / "model"
    print("training the digits model (the yardstick's first round)", file=sys.stderr)
    train = [sys.executable, "-m", "gradloss", "train", "--dataset", "digits", "--objective",
             "gradient", "--engine", "tensorflow"]
    runs = {name: [] for name in ("train", "before", "after")}
    for r in range(args.rounds):
        order = ["train", "before", "after"]
        for name in order[r % 3:] + order[:r % 3]:
            if name == "train":
                cmd, cwd = [*train, "--out", str(home / f"train-{r}")], _common.REPO
            else:
                if not (model_dir / "model.keras").is_file():
                    done = _common.run_process([*train, "--out", str(model_dir)], _common.REPO,
                                               env, timeout=1800)
                    if done["returncode"] != 0:
                        raise RuntimeError("training the model to evaluate failed")
                cmd = [sys.executable, "-m", "gradloss", "evaluate",
                       str(model_dir / "model.keras"), "--dataset", "digits", "--out",
                       str(home / f"{name}-{r}")]
                cwd = trees[name]
            load = os.getloadavg()[0]
            done = _common.run_process(cmd, cwd, dict(env, PYTHONPATH=str(cwd)), timeout=3600)
            if done["returncode"] != 0:
                raise RuntimeError(f"{name} exited with {done['returncode']}")
            runs[name].append({"wall_s": done["wall_s"], "cpu_s": done["cpu_s"],
                               "peak_mib": done["peak_mib"], "load_before": load})
            print(f"  round {r + 1} {name}: {done['wall_s']:.1f} s (load {load:.1f})",
                  file=sys.stderr, flush=True)
    families = {}
    for name, tree in trees.items():
        print(f"families, {name}:", file=sys.stderr, flush=True)
        done = _common.run_process([sys.executable, "-c", FAMILIES,
                                    str(model_dir / "model.keras")], tree,
                                   dict(env, PYTHONPATH=str(tree)), timeout=3600)
        if done["returncode"] != 0:
            raise RuntimeError(f"the families of {name} exited with {done['returncode']}")
        families[name] = json.loads(done["stdout"].strip().splitlines()[-1])
    return {"before": args.before, "runs": runs, "families": families}


def report(outcome: dict) -> list[list]:
    runs = outcome["runs"]
    med = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
    rows = [[name, _common.min_median([r["wall_s"] for r in rs]),
             f"{med[name] / med['train']:.2f}", _common.min_median([r["cpu_s"] for r in rs]),
             _common.min_median([r["peak_mib"] for r in rs])] for name, rs in runs.items()]
    _common.print_table(["process", "wall s min / median", "/ training", "CPU s min / median",
                         "peak MiB min / median"], rows)
    loads = [r["load_before"] for rs in runs.values() for r in rs]
    print(f"\n{len(runs['train'])} rounds; load average {min(loads):.1f}-{max(loads):.1f}")
    ratio = med["after"] / med["train"]
    print(f"evaluate after / training: {ratio:.2f} (target <= {TARGET}: "
          f"{'met' if ratio <= TARGET else 'missed'}); before / training: "
          f"{med['before'] / med['train']:.2f}\n")
    before, after = ({f["family"]: f for f in outcome["families"][k]} for k in ("before", "after"))
    family_rows = [[name, f"{before[name]['seconds']:.1f}", f"{after[name]['seconds']:.1f}",
                    f"{before[name]['seconds'] / max(after[name]['seconds'], 1e-9):.1f}x",
                    before[name]["accuracy"], after[name]["accuracy"]] for name in before]
    _common.print_table(["family", "before s", "after s", "faster", "accuracy before",
                         "accuracy after"], family_rows)
    return rows + family_rows


def main(argv=None) -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    args = parser.parse_args(argv)
    outcome = measure(args)
    _common.conclude("evaluate_cost", args, [outcome], lambda outcomes: report(outcomes[0]))


if __name__ == "__main__":
    main()
