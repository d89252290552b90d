"""gradloss: the gradient loss against ordinary training, and the noise robustness of each.

Importing the package stays light (no TensorFlow): the modules that need Keras import it
themselves. The map of the package is in the README's "Library" section.
"""
from gradloss.core.config import (OBJECTIVES, DATASETS, ENGINES, REFERENCE_PROTOCOL,
                                  REFERENCE_SIGMAS, REFERENCE_ACCURACY, SweepConfig, TrainConfig)
from gradloss.core.errors import (DataError, ExperimentNotFound, GradlossError,
                                  InvalidParameterError, RunNotFound, TrainingDiverged)

__all__ = [
    "OBJECTIVES", "DATASETS", "ENGINES", "REFERENCE_PROTOCOL", "REFERENCE_SIGMAS",
    "REFERENCE_ACCURACY", "SweepConfig", "TrainConfig",
    "DataError", "ExperimentNotFound", "GradlossError", "InvalidParameterError", "RunNotFound",
    "TrainingDiverged",
]
