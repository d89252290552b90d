"""`python -m gradloss ...`: see gradloss.cli."""
import sys

from gradloss.cli.main import main

sys.exit(main())
