"""Errors gradloss raises on purpose; each message says what went wrong and how to fix it."""


class GradlossError(Exception):
    """Base class of gradloss's own errors."""


class InvalidParameterError(ValueError, TypeError):
    """A configuration value is outside what is allowed (both a ValueError and a TypeError).

    Raised by gradloss.validation with `parameter`, `value` and `words` (the rule for people)."""

    parameter: str | None = None
    value: object = None
    words: str | None = None


class SettingsError(GradlossError, ValueError):
    """A setting (an environment variable, GRADLOSS_HOME, an output folder) cannot be used; the
    message names it, says why and how to fix it. The CLI exits with status 2."""


class DataError(GradlossError):
    """A dataset could not be found or read; the message names the file and the fix."""


class DataFolderError(DataError, SettingsError):
    """A data folder (GRADLOSS_DATA_DIR, a run's data folder, the Keras cache) lacks the dataset's
    files or holds damaged ones; the message names the folder, where it was set and the fix.
    The CLI exits with status 2: it is a setting to fix, found before any training."""
class InputFileError(DataError, ValueError):
    """A dataset or model the user gave (a .npz, an image folder, a .keras file) cannot be used;
    the message names it, says what is wrong and what is allowed. The CLI exits with status 2."""


class TrainingDiverged(GradlossError):
    """The training loss became NaN or infinite."""


class ServiceUnavailable(SettingsError):
    """The run store or the queue named by a setting is malformed or cannot be used; the message
    names the setting, with any password masked. The CLI exits with status 2."""


class RunNotFound(GradlossError, KeyError):
    """No run with that id is in the store."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else "run not found"


class ExperimentNotFound(GradlossError, KeyError):
    """No experiment with that id is in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "experiment not found"


class SearchNotFound(GradlossError, KeyError):
    """No strength search with that id is in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "search not found"


__all__ = ["GradlossError", "SettingsError", "DataError", "DataFolderError", "InputFileError",
           "TrainingDiverged", "RunNotFound", "ExperimentNotFound", "SearchNotFound",
           "InvalidParameterError",
           "ServiceUnavailable"]
