"""The documentation stays true: its Python examples run, its links point at files that exist,
and the README stays a front page."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", [p for p in DOCS if _python_blocks(p)], ids=lambda p: p.name)
def test_the_python_examples_run(path, tmp_path):
    """Check that every ```python block of the page runs as written (from a fresh folder)."""
    for code in _python_blocks(path):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND":
                                   "tensorflow", "GRADLOSS_HOME": str(tmp_path / "home")})
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_relative_links_point_at_files_that_exist(path):
    """Check that every relative link (a page, an image) names a file of the repository."""
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text())
    missing = [link for link in links if not (path.parent / link).exists()]
    assert not missing, missing


def test_the_readme_is_a_front_page():
    """Check that the README stays short and shows the two commands exactly."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "pip install -r requirements.txt && streamlit run dashboard.py" in text
    assert "pip install -r requirements-dev.txt && python -m pytest" in text
