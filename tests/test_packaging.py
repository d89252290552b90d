"""Packaging: `pip install .` gives a `gradloss` command whose CLI and dashboard work outside the checkout."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with gradloss installed from a wheel of this checkout.

    --system-site-packages lends it the dependencies already installed here (no download);
    gradloss itself comes only from the wheel."""
    root = tmp_path_factory.mktemp("pkg")
    # Build from a copy of the tracked files: setuptools leaves build/ in its source folder, and
    # a stale build/ in the checkout would ship modules that no longer exist.
    source = root / "source"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(source)], check=True, cwd=root, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")],
                   check=True, timeout=120)
    [wheel] = (root / "dist").glob("gradloss-*.whl")
    subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)],
                   check=True, timeout=300)
    return root


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the installed copy
    return dict(env, GRADLOSS_HOME=str(home), GRADLOSS_NO_LOCAL_WORKER="1")


def test_installed_command_validates_arguments_away_from_the_checkout(installed, tmp_path):
    """Check that the console script runs from another folder and refuses a bad value with exit 2."""
    gradloss = installed / "venv" / "bin" / "gradloss"
    done = subprocess.run([str(gradloss), "train", "--dataset", "digits", "--epochs", "0"], cwd=tmp_path,
                          capture_output=True, text=True, env=_env(tmp_path / "home"), timeout=120)
    assert done.returncode == 2
    assert "The 'epochs' parameter of TrainConfig must be" in done.stderr
    where = subprocess.run([str(installed / "venv" / "bin" / "python"), "-c",
                            "import gradloss; print(gradloss.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=_env(tmp_path / "home"), timeout=60)
    assert str(installed) in where.stdout, "gradloss must come from the virtual environment"


def test_installed_dashboard_serves_on_localhost(installed, tmp_path):
    """Check that `gradloss dashboard` starts the app shipped in the wheel, listening on 127.0.0.1."""
    port = _free_port()
    proc = subprocess.Popen([str(installed / "venv" / "bin" / "gradloss"), "dashboard",
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=tmp_path, env=_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200, "the installed dashboard did not answer"
    finally:
        os.killpg(proc.pid, 15)
        out = proc.communicate(timeout=30)[0].decode()
    assert f"127.0.0.1:{port}" in out  # the shipped .streamlit/config.toml: this machine only
