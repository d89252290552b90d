"""The command line (`gradloss ...`, `python -m gradloss ...`): see `gradloss.cli.main`."""
from gradloss.cli.main import main

__all__ = ["main"]
