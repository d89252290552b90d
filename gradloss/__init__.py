"""gradloss: the gradient loss against ordinary training, and the noise robustness of each.

Importing the package stays light (no TensorFlow): the modules that need Keras import it
themselves. The package map is docs/architecture.md; the public API is below.
"""
from gradloss.core.config import (DATASETS, ENGINES, OBJECTIVES, REFERENCE_ACCURACY,
                                  REFERENCE_PROTOCOL, REFERENCE_SIGMAS, SweepConfig, TrainConfig)
from gradloss.core.errors import (DataError, ExperimentNotFound, GradlossError,
                                  InvalidParameterError, RunNotFound, TrainingDiverged)
from gradloss.core.evaluation import EvaluationConfig
from gradloss.core.experiment import ExperimentConfig
from gradloss.core.plan import RunPlan

__all__ = [
    "OBJECTIVES", "DATASETS", "ENGINES", "REFERENCE_PROTOCOL", "REFERENCE_SIGMAS",
    "REFERENCE_ACCURACY", "SweepConfig", "TrainConfig", "EvaluationConfig", "ExperimentConfig",
    "RunPlan", "DataError", "ExperimentNotFound", "GradlossError", "InvalidParameterError",
    "RunNotFound", "TrainingDiverged",
]
