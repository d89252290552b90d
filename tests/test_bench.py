"""The benchmarks are not run by CI (they take minutes to hours), so it checks that each one
still compiles: a refactor that breaks a script is caught here, not when someone next measures."""
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_every_benchmark_script_compiles(script):
    """Check that the script is valid Python."""
    compile((BENCH / script).read_text(), script, "exec")
