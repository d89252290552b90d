"""`python -m gradloss ...`: see gradloss.cli."""
import sys

from gradloss.cli import main

sys.exit(main())
