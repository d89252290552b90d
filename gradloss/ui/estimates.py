"""Every time the dashboard states before work starts, with the measurement it comes from.

Once work runs, the pages show a live ETA instead (a run's steps, its sweep, an experiment's
remaining runs). Re-measure (the bench/ script named) when the work changes, and update here.
"""
from __future__ import annotations

# The evaluation suite (10 corruptions x 5 severities, FGSM, PGD, Square, the masking check)
# after one run, in minutes on 2 CPU cores, quiet to loaded: bench/perturbation_cost.py
# (bench/README.md): Fashion-MNIST 378 CPU-s, about 4 min on quiet cores, 39 min at load 12-22;
# a digits run's suite ~0.5 min quiet, 4 min at load 13 (issue #21: 4 min 16 s through the worker).
EVALUATION_MINUTES = {"digits": "0.5 to 4", "fashion_mnist": "4 to 40"}

# Home's quick compare (2 objectives x 3 seeds), all runs through the worker, in minutes on the
# shared 2-core machine: digits measured 8.2 min through the dashboard (issue #21: six runs of
# 63-118 s, each starting TensorFlow; bench/first_point.py measures what the pre-started
# training process saves per run); Fashion-MNIST 5000 images: bench/quick_compare.py, 4.7 to
# 9.5 min unloaded, 37 min at load 21.
QUICK_MINUTES = {"digits": "about 8", "fashion_mnist": "5 to 37"}

# `Reproduce the reference` (both objectives, all 60 000 images, reference epochs) on 2 CPU
# cores: bench/reference.py, about 20 minutes per engine.
REFERENCE_MINUTES = "about 20"
